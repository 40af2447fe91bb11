//! Building a chain from an `operators:` list and running entries through it (stanza.md
//! §4.1). Operators form a directed graph through `output`; by default each feeds the next,
//! and the last (or one with an empty `output`) emits to the chain's output. Cycles are
//! refused, so each `process` call visits the operators once, in topological order, passing
//! whole batches along.

use crate::config::{COMMON_KEYS, Common, ConfigError, OperatorLabel, from_block, suggest};
use crate::expr::Expr;
use crate::operator::{Operator, Step};
use crate::{parsers, scope, severity, time, transformers};
use centimane_core::{Entry, OperatorChain};
use serde_json::{Map as JsonMap, Value as Json};
use std::collections::HashMap;

type Builder = fn(JsonMap<String, Json>) -> Result<Box<dyn Operator>, String>;

/// Every operator type and its builder. [`crate::OPERATOR_TYPES`] lists the same names.
const BUILDERS: [(&str, Builder); 11] = [
    ("add", transformers::build_add),
    ("copy", transformers::build_copy),
    ("json_parser", parsers::json::build),
    ("key_value_parser", parsers::key_value::build),
    ("move", transformers::build_move),
    ("noop", transformers::build_noop),
    ("regex_parser", parsers::regex::build),
    ("remove", transformers::build_remove),
    ("scope_name_parser", build_scope_name_parser),
    ("severity_parser", build_severity_parser),
    ("time_parser", build_time_parser),
];

fn build_time_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(time::TimeParser::build(from_block(block)?)?))
}

fn build_severity_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(severity::SeverityParser::build(from_block(
        block,
    )?)?))
}

fn build_scope_name_parser(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(scope::ScopeNameParser::build(from_block(block)?)))
}

/// Where a node sends its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Node(usize),
    ChainOutput,
}

struct Node {
    step: Step,
    targets: Vec<Target>,
    /// Entries waiting for this node; empty between `process` calls (its capacity is reused).
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
    let mut nodes = Vec::with_capacity(parsed.len());
    for (i, op) in parsed.into_iter().enumerate() {
        let Parsed {
            label,
            common,
            rest,
        } = op;
        let fail = |message: String| ConfigError::operator(label.clone(), message);
        let builder = BUILDERS
            .iter()
            .find(|(kind, _)| *kind == common.kind)
            .map(|(_, b)| *b)
            .ok_or_else(|| fail(unknown_type(&common.kind)))?;
        let operator = builder(rest).map_err(&fail)?;
        let condition = common
            .condition
            .as_deref()
            .map(Expr::parse)
            .transpose()
            .map_err(|e| fail(format!("`if`: {e}")))?;
        let targets = match common.output.map(|o| o.into_vec()) {
            None if i + 1 < list.len() => vec![Target::Node(i + 1)],
            None => vec![Target::ChainOutput],
            Some(outputs) if outputs.is_empty() => vec![Target::ChainOutput],
            Some(outputs) => outputs
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
                .collect::<Result<_, _>>()?,
        };
        let id = label.id.clone().unwrap_or_default();
        nodes.push(Node {
            step: Step::new(id, operator, condition, common.on_error),
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

/// Kahn's algorithm over the `output` edges; a cycle is a config error.
fn topological_order(nodes: &[Node]) -> Result<Vec<usize>, ConfigError> {
    let mut incoming = vec![0usize; nodes.len()];
    for node in nodes {
        for target in &node.targets {
            if let Target::Node(t) = target {
                incoming[*t] += 1;
            }
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len())
        .rev()
        .filter(|&i| incoming[i] == 0)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for target in nodes[i].targets.iter().rev() {
            if let Target::Node(t) = *target {
                incoming[t] -= 1;
                if incoming[t] == 0 {
                    ready.push(t);
                }
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

impl OperatorChain for Chain {
    fn process(&mut self, mut entries: Vec<Entry>, out: &mut Vec<Entry>) {
        let Some(first) = self.nodes.first_mut() else {
            out.append(&mut entries);
            return;
        };
        hand_over(&mut first.inbox, entries);
        for &i in &self.order {
            let mut batch = std::mem::take(&mut self.nodes[i].inbox);
            if !batch.is_empty() {
                self.nodes[i].step.run_batch(&mut batch);
                // Every output but the last gets a copy; the last gets the batch itself.
                let outputs = self.nodes[i].targets.len();
                for k in 0..outputs {
                    let target = self.nodes[i].targets[k];
                    let entries = if k + 1 < outputs {
                        batch.clone()
                    } else {
                        std::mem::take(&mut batch)
                    };
                    let spare = match target {
                        Target::Node(t) => hand_over(&mut self.nodes[t].inbox, entries),
                        Target::ChainOutput => hand_over(out, entries),
                    };
                    if k + 1 == outputs {
                        batch = spare;
                    }
                }
            }
            // Keep the (now empty) allocation for the next call.
            self.nodes[i].inbox = batch;
        }
    }
}

/// Moves `batch` into `dest` without copying entries when `dest` is empty, and returns an
/// empty vector (with whatever capacity is spare) for reuse.
fn hand_over(dest: &mut Vec<Entry>, mut batch: Vec<Entry>) -> Vec<Entry> {
    if dest.is_empty() {
        std::mem::swap(dest, &mut batch);
    } else {
        dest.append(&mut batch);
    }
    batch
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
