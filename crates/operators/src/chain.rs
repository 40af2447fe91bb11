//! Building a chain from an `operators:` list and running entries through it (stanza.md
//! §4.1). Operators form a directed graph through `output` (and the router's routes); by
//! default each feeds the next, and the last (or one with an empty `output`) emits to the
//! chain's output. Cycles are refused, so each `process` call visits the operators once, in
//! topological order, passing whole batches along.

use crate::config::{COMMON_KEYS, Common, ConfigError, OperatorLabel, from_block, suggest};
use crate::expr::Expr;
use crate::operator::{Flush, Stage, hand_over};
use crate::registry::{self, BUILDERS, Spec};
use crate::rng;
use centimane_core::{Entry, OperatorChain};
use serde_json::{Map as JsonMap, Value as Json};
use std::collections::HashMap;

/// Where a port sends its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Node(usize),
    ChainOutput,
}

struct Node {
    stage: Box<dyn Stage>,
    /// The targets of each output port.
    targets: Vec<Vec<Target>>,
    /// What the stage wrote to each port during the current call; empty between calls.
    ports: Vec<Vec<Entry>>,
    /// Entries waiting for this node; empty between calls (its capacity is reused).
    inbox: Vec<Entry>,
}

/// A built operator chain. Implements [`OperatorChain`].
pub struct Chain {
    nodes: Vec<Node>,
    /// Node indexes in topological order: every node comes after all that feed it.
    order: Vec<usize>,
}

/// One operator block with its common keys read.
struct Parsed {
    label: OperatorLabel,
    common: Common,
    rest: JsonMap<String, Json>,
}

/// Builds a chain from an `operators:` list as it appears in a filelog config, already
/// parsed from YAML into JSON (ints are JSON integers, floats JSON floats). `null` or an
/// empty list gives a chain that passes entries through.
pub fn build_chain(operators: &Json) -> Result<Chain, ConfigError> {
    let list = match operators {
        Json::Null => &Vec::new(),
        Json::Array(list) => list,
        other => {
            return Err(ConfigError::chain(format!(
                "`operators` must be a list, got {}",
                json_kind(other)
            )));
        }
    };
    let mut parsed = list
        .iter()
        .enumerate()
        .map(|(i, op)| read_common(i + 1, op))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = assign_ids(&mut parsed)?;
    let seed = rng::chain_seed();
    let count = parsed.len();
    let mut nodes = Vec::with_capacity(count);
    for (i, op) in parsed.into_iter().enumerate() {
        let Parsed {
            label,
            common,
            rest,
        } = op;
        let fail = |message: String| ConfigError::operator(label.clone(), message);
        let builder =
            registry::builder(&common.kind).ok_or_else(|| fail(unknown_type(&common.kind)))?;
        let condition = common
            .condition
            .as_deref()
            .map(Expr::parse)
            .transpose()
            .map_err(|e| fail(format!("`if`: {e}")))?;
        let spec = Spec {
            id: label.id.clone().unwrap_or_default(),
            block: rest,
            condition,
            on_error: common.on_error,
            has_output: common.output.is_some(),
            seed: rng::mix(seed, i as u64),
        };
        let built = builder.build(spec).map_err(&fail)?;
        let resolve = |outputs: &[String]| -> Result<Vec<Target>, ConfigError> {
            outputs
                .iter()
                .map(|out| {
                    ids.get(out.as_str())
                        .map(|&n| Target::Node(n))
                        .ok_or_else(|| {
                            fail(format!(
                                "`output`: no operator in this list has the id `{out}`"
                            ))
                        })
                })
                .collect()
        };
        let targets = match built.ports {
            Some(ports) => ports
                .iter()
                .map(|port| resolve(port))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![match common.output.map(|o| o.into_vec()) {
                None if i + 1 < count => vec![Target::Node(i + 1)],
                None => vec![Target::ChainOutput],
                Some(outputs) if outputs.is_empty() => vec![Target::ChainOutput],
                Some(outputs) => resolve(&outputs)?,
            }],
        };
        nodes.push(Node {
            stage: built.stage,
            ports: targets.iter().map(|_| Vec::new()).collect(),
            targets,
            inbox: Vec::new(),
        });
    }
    let order = topological_order(&nodes)?;
    Ok(Chain { nodes, order })
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    }
}

fn unknown_type(kind: &str) -> String {
    let known: Vec<&str> = BUILDERS.iter().map(|(k, _)| *k).collect();
    match suggest(kind, &known) {
        Some(close) => format!("unknown operator type `{kind}`; did you mean `{close}`?"),
        None => format!(
            "unknown operator type `{kind}` (known: {})",
            known.join(", ")
        ),
    }
}

/// Splits an operator block into its common keys and the operator's own keys.
fn read_common(position: usize, op: &Json) -> Result<Parsed, ConfigError> {
    let mut label = OperatorLabel {
        position,
        id: None,
        kind: None,
    };
    let Json::Object(block) = op else {
        return Err(ConfigError::operator(
            label,
            format!("an operator must be a map, got {}", json_kind(op)),
        ));
    };
    label.id = block.get("id").and_then(Json::as_str).map(str::to_owned);
    label.kind = block.get("type").and_then(Json::as_str).map(str::to_owned);
    let (common, rest): (JsonMap<_, _>, JsonMap<_, _>) = block
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
    let common: Common = from_block(common).map_err(|e| ConfigError::operator(label.clone(), e))?;
    Ok(Parsed {
        label,
        common,
        rest,
    })
}

/// Gives every operator its id and indexes them. An operator without an `id` (or whose id is
/// its type) is named after its type; like Stanza, repeats of such default ids become
/// `type1`, `type2`, ... so a list with two `move` operators works unchanged. Explicit ids
/// must be unique.
fn assign_ids(parsed: &mut [Parsed]) -> Result<HashMap<String, usize>, ConfigError> {
    let given: Vec<String> = parsed
        .iter()
        .map(|p| p.common.id.clone().unwrap_or_else(|| p.common.kind.clone()))
        .collect();
    let mut repeats: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, p) in parsed.iter_mut().enumerate() {
        let kind = p.common.kind.clone();
        let mut id = given[i].clone();
        if id == kind {
            let seen = repeats.entry(kind.clone()).or_insert(0);
            if *seen > 0 {
                id = format!("{kind}{seen}");
                while given.contains(&id) {
                    *seen += 1;
                    id = format!("{kind}{seen}");
                }
            }
            *seen += 1;
        }
        if let Some(&first) = ids.get(&id) {
            return Err(ConfigError::operator(
                p.label.clone(),
                format!("id `{id}` is already used by operator #{}", first + 1),
            ));
        }
        p.label.id = Some(id.clone());
        ids.insert(id, i);
    }
    Ok(ids)
}

/// Kahn's algorithm over the port edges; a cycle is a config error.
fn topological_order(nodes: &[Node]) -> Result<Vec<usize>, ConfigError> {
    let edges = |node: &Node| -> Vec<usize> {
        node.targets
            .iter()
            .flatten()
            .filter_map(|t| match t {
                Target::Node(n) => Some(*n),
                Target::ChainOutput => None,
            })
            .collect()
    };
    let mut incoming = vec![0usize; nodes.len()];
    for node in nodes {
        for t in edges(node) {
            incoming[t] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len())
        .rev()
        .filter(|&i| incoming[i] == 0)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for t in edges(&nodes[i]).into_iter().rev() {
            incoming[t] -= 1;
            if incoming[t] == 0 {
                ready.push(t);
            }
        }
    }
    if order.len() < nodes.len() {
        return Err(ConfigError::chain(
            "the operators' `output`s form a cycle, so entries would loop forever",
        ));
    }
    Ok(order)
}

impl Chain {
    /// One pass over the nodes in topological order: each runs its inbox (the input batch
    /// for the first node), then optionally flushes, then hands its ports to their targets.
    fn pass(&mut self, input: Option<Vec<Entry>>, flush: Option<Flush>, out: &mut Vec<Entry>) {
        if let Some(mut entries) = input {
            match self.nodes.first_mut() {
                Some(first) => hand_over(&mut first.inbox, &mut entries),
                None => hand_over(out, &mut entries),
            }
            // The vector the input was swapped with goes back to this thread's spares.
            centimane_core::recycle::keep(entries);
        }
        for k in 0..self.order.len() {
            let i = self.order[k];
            let node = &mut self.nodes[i];
            if !node.inbox.is_empty() {
                node.stage.run(&mut node.inbox, &mut node.ports);
            }
            if let Some(mode) = flush {
                node.stage.flush(mode, &mut node.ports);
            }
            self.deliver(i, out);
        }
    }

    /// Sends what node `i` wrote to its ports on to their targets: every target but the
    /// last gets a copy, the last gets the entries themselves.
    fn deliver(&mut self, i: usize, out: &mut Vec<Entry>) {
        for p in 0..self.nodes[i].ports.len() {
            if self.nodes[i].ports[p].is_empty() {
                continue;
            }
            let mut batch = std::mem::take(&mut self.nodes[i].ports[p]);
            let count = self.nodes[i].targets[p].len();
            for k in 0..count {
                let target = self.nodes[i].targets[p][k];
                let dest = match target {
                    Target::Node(t) => &mut self.nodes[t].inbox,
                    Target::ChainOutput => &mut *out,
                };
                if k + 1 < count {
                    dest.extend(batch.iter().cloned());
                } else {
                    hand_over(dest, &mut batch);
                }
            }
            // A port without targets discards; either way `batch` is now empty and its
            // capacity goes back to the port for the next call.
            batch.clear();
            self.nodes[i].ports[p] = batch;
        }
    }
}

impl OperatorChain for Chain {
    fn process(&mut self, entries: Vec<Entry>, out: &mut Vec<Entry>) {
        self.pass(Some(entries), Some(Flush::Expired), out);
    }

    fn flush(&mut self, out: &mut Vec<Entry>) {
        self.pass(None, Some(Flush::All), out);
    }

    /// Emits the entries that operators have held longer than their `force_flush_period`
    /// (recombine, the container parser's partial lines); `process` also does it after
    /// each batch.
    fn flush_expired(&mut self, out: &mut Vec<Entry>) {
        self.pass(None, Some(Flush::Expired), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Value;
    use serde_json::json;

    fn chain(ops: Json) -> Chain {
        build_chain(&ops).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(ops: Json) -> String {
        build_chain(&ops)
            .err()
            .expect("config should be refused")
            .to_string()
    }

    fn run(chain: &mut Chain, bodies: &[&str]) -> Vec<Entry> {
        let input = bodies.iter().map(|b| Entry::new(Value::from(*b))).collect();
        let mut out = Vec::new();
        chain.process(input, &mut out);
        out
    }

    #[test]
    fn operator_types_match_the_builders() {
        let builders: Vec<&str> = BUILDERS.iter().map(|(k, _)| *k).collect();
        assert_eq!(builders, crate::OPERATOR_TYPES);
    }

    #[test]
    fn empty_lists_pass_entries_through() {
        for ops in [json!([]), Json::Null] {
            let out = run(&mut chain(ops), &["a", "b"]);
            assert_eq!(out.len(), 2);
        }
    }

    #[test]
    fn operators_run_in_order_and_batches_keep_order() {
        let mut c = chain(json!([
            {"type": "add", "field": "attributes.step", "value": 1},
            {"type": "add", "field": "attributes.step", "value": "EXPR(attributes.step + 1)"},
        ]));
        let out = run(&mut c, &["a", "b", "c"]);
        let bodies: Vec<_> = out.iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, ["a", "b", "c"].map(Value::from));
        assert!(out.iter().all(|e| e.attributes["step"] == Value::Int(2)));
        // A second call reuses the buffers and still works.
        assert_eq!(run(&mut c, &["d"]).len(), 1);
    }

    #[test]
    fn outputs_route_and_fan_out() {
        let mut c = chain(json!([
            {"type": "noop", "output": ["a", "b"]},
            {"type": "add", "id": "a", "field": "attributes.via", "value": "a", "output": "done"},
            {"type": "add", "id": "b", "field": "attributes.via", "value": "b", "output": []},
            {"type": "noop", "id": "done"},
        ]));
        let out = run(&mut c, &["x"]);
        let mut via: Vec<_> = out.iter().map(|e| e.attributes["via"].clone()).collect();
        via.sort_by_key(|v| v.to_text());
        assert_eq!(via, [Value::from("a"), Value::from("b")]);
    }

    #[test]
    fn on_error_and_if_are_applied_per_operator() {
        let mut c = chain(json!([
            {"type": "regex_parser", "regex": "^(?P<n>\\d+)$", "on_error": "drop",
             "if": "body != 'skip'"},
        ]));
        let out = run(&mut c, &["12", "x", "skip"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].attributes["n"], Value::from("12"));
        assert_eq!(out[1].body, Value::from("skip"));
        assert!(out[1].attributes.is_empty());
    }

    #[test]
    fn malformed_input_follows_on_error() {
        for (mode, kept) in [
            ("send", 1),
            ("send_quiet", 1),
            ("drop", 0),
            ("drop_quiet", 0),
        ] {
            let mut c = chain(json!([{"type": "json_parser", "on_error": mode}]));
            let out = run(&mut c, &["{not json", "{\"ok\":true}"]);
            assert_eq!(out.len(), 1 + kept, "{mode}");
            let parsed = out.iter().filter(|e| !e.attributes.is_empty()).count();
            assert_eq!(parsed, 1, "{mode}: the good line is parsed");
        }
    }

    #[test]
    fn default_ids_are_made_unique_like_stanza() {
        let ops = json!([
            {"type": "noop"},
            {"type": "noop"},
            {"type": "noop", "id": "noop1"},
            {"type": "noop"},
            {"type": "move", "from": "body.a", "to": "body.b"},
        ]);
        let mut parsed: Vec<Parsed> = ops
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, op)| read_common(i + 1, op).unwrap())
            .collect();
        let ids = assign_ids(&mut parsed).unwrap();
        let mut names: Vec<(&str, usize)> = ids.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        names.sort_by_key(|(_, i)| *i);
        assert_eq!(
            names,
            [
                ("noop", 0),
                ("noop2", 1),
                ("noop1", 2),
                ("noop3", 3),
                ("move", 4)
            ]
        );
        assert_eq!(chain(ops).nodes.len(), 5);
        let err = error(json!([
            {"type": "noop", "id": "x"},
            {"type": "move", "id": "x", "from": "body.a", "to": "body.b"},
        ]));
        assert_eq!(
            err,
            "operator #2 (id `x`, type `move`): id `x` is already used by operator #1"
        );
    }

    #[test]
    fn config_errors_name_operator_and_key() {
        for (ops, want) in [
            (
                json!([{"type": "noop"}, {"type": "json_parser", "id": "parse", "parse_form": "body"}]),
                "operator #2 (id `parse`, type `json_parser`): unknown field `parse_form`",
            ),
            (
                json!([{"type": "jsn_parser"}]),
                "did you mean `json_parser`?",
            ),
            (
                json!([{"type": "zzz"}]),
                "unknown operator type `zzz` (known: add,",
            ),
            (
                json!([{"id": "x"}]),
                "operator #1 (id `x`): missing field `type`",
            ),
            (
                json!([{"type": "noop", "on_error": "ignore"}]),
                "`on_error`: unknown variant `ignore`",
            ),
            (
                json!([{"type": "noop", "if": "body =="}]),
                "`if`: invalid expression `body ==`",
            ),
            (
                json!([{"type": "noop", "output": "nowhere"}]),
                "no operator in this list has the id `nowhere`",
            ),
            (json!([{"type": "noop", "output": 3}]), "`output`"),
            (json!([{"type": "regex_parser"}]), "missing field `regex`"),
            (
                json!([{"type": "move", "from": "body.a"}]),
                "missing field `to`",
            ),
            (json!([{"type": "noop", "id": 5}]), "`id`: invalid type"),
            (json!(["noop"]), "operator #1: an operator must be a map"),
            (json!({"type": "noop"}), "`operators` must be a list"),
            (
                json!([{"type": "time_parser", "layout": "%Y", "timestamp": {}}]),
                "unknown field `timestamp`",
            ),
        ] {
            let err = error(ops);
            assert!(err.contains(want), "{err}\n  does not contain: {want}");
        }
    }

    #[test]
    fn router_ports_reach_their_targets() {
        let mut c = chain(json!([
            {"type": "router", "routes": [
                {"expr": "body == 'a'", "output": "to_a"},
                {"expr": "body == 'b'", "output": ["to_b", "to_a"]},
            ]},
            {"type": "add", "id": "to_a", "field": "attributes.via", "value": "a", "output": []},
            {"type": "add", "id": "to_b", "field": "attributes.via", "value": "b", "output": []},
        ]));
        let out = run(&mut c, &["a", "b", "c"]);
        let mut got: Vec<(Value, Value)> = out
            .iter()
            .map(|e| (e.body.clone(), e.attributes["via"].clone()))
            .collect();
        got.sort_by_key(|(b, v)| (b.to_text(), v.to_text()));
        assert_eq!(
            got,
            [
                ("a".into(), "a".into()),
                ("b".into(), "a".into()),
                ("b".into(), "b".into())
            ],
            "c matches no route and is discarded"
        );
        assert!(error(json!([{"type": "router", "output": "x"}])).contains("no `output`"));
    }

    #[test]
    fn flush_runs_held_entries_through_later_operators() {
        let mut c = chain(json!([
            {"type": "recombine", "combine_field": "body", "is_first_entry": "body startsWith 'S'"},
            {"type": "add", "field": "attributes.after", "value": true},
        ]));
        let out = run(&mut c, &["S1", "x", "S2", "y"]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].body, Value::from("S1\nx"));
        let mut held = Vec::new();
        c.flush_expired(&mut held);
        assert!(held.is_empty(), "the default period has not passed");
        c.flush(&mut held);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].body, Value::from("S2\ny"));
        assert_eq!(held[0].attributes["after"], Value::Bool(true));
    }

    #[test]
    fn cycles_are_refused() {
        let err = error(json!([
            {"type": "noop", "id": "a", "output": "b"},
            {"type": "noop", "id": "b", "output": "a"},
        ]));
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn chain_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Chain>();
    }
}
