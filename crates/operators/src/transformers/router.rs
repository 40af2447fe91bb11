//! `router` (stanza.md §6): sends each entry to the outputs of the first route whose `expr`
//! is true, after adding that route's `attributes` (`EXPR(...)` templates). `default` acts as
//! a final route that always matches; with no match and no default the entry is discarded.
//! A route whose expression fails counts as no match. Each route is one output port of the
//! router's node (the default is the last).

use crate::config::{Outputs, from_block};
use crate::expr::{Expr, Template};
use crate::operator::Stage;
use crate::registry::{Built, Spec};
use centimane_core::{Entry, Value};
use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterConfig {
    #[serde(default)]
    routes: Vec<crate::config::Block<RouteConfig>>,
    default: Option<Outputs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteConfig {
    expr: String,
    output: Outputs,
    #[serde(default)]
    attributes: IndexMap<String, String>,
}

struct Route {
    /// `None` for the default route.
    expr: Option<Expr>,
    attributes: Vec<(String, Template)>,
}

struct Router {
    id: String,
    /// Route `i` writes to port `i`.
    routes: Vec<Route>,
}

pub(crate) fn build(spec: Spec) -> Result<Built, String> {
    if spec.has_output {
        return Err(
            "a router has no `output`; list the outputs in its `routes` and `default`".to_owned(),
        );
    }
    if spec.condition.is_some() {
        return Err("a router takes no `if`; put the condition in a route's `expr`".to_owned());
    }
    let cfg: RouterConfig = from_block(spec.block)?;
    let mut routes = Vec::with_capacity(cfg.routes.len() + 1);
    let mut ports = Vec::with_capacity(cfg.routes.len() + 1);
    for (i, crate::config::Block(route)) in cfg.routes.into_iter().enumerate() {
        let expr = Expr::parse(&route.expr).map_err(|e| format!("`routes`[{i}]: `expr`: {e}"))?;
        let attributes = route
            .attributes
            .into_iter()
            .map(|(key, value)| {
                Template::parse(&value)
                    .map(|t| (key.clone(), t))
                    .map_err(|e| format!("`routes`[{i}]: `attributes`: `{key}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        routes.push(Route {
            expr: Some(expr),
            attributes,
        });
        ports.push(route.output.into_vec());
    }
    if let Some(default) = cfg.default {
        routes.push(Route {
            expr: None,
            attributes: Vec::new(),
        });
        ports.push(default.into_vec());
    }
    Ok(Built {
        stage: Box::new(Router {
            id: spec.id,
            routes,
        }),
        ports: Some(ports),
    })
}

impl Router {
    /// The port `entry` goes to, with the route's attributes added; `None` discards it.
    fn route(&self, entry: &mut Entry) -> Option<usize> {
        let index = self.routes.iter().position(|route| match &route.expr {
            None => true,
            Some(expr) => expr.eval_bool(entry).unwrap_or_else(|e| {
                tracing::debug!(operator = %self.id, "route expression failed: {e}");
                false
            }),
        })?;
        for (key, template) in &self.routes[index].attributes {
            match template.render(entry) {
                Ok(value) => {
                    entry
                        .attributes
                        .insert(key.as_str().into(), Value::Str(value.into()));
                }
                Err(e) => {
                    tracing::error!(operator = %self.id, "failed to label entry, dropping it: {e}");
                    return None;
                }
            }
        }
        Some(index)
    }
}

impl Stage for Router {
    fn run(&mut self, batch: &mut Vec<Entry>, ports: &mut [Vec<Entry>]) {
        for mut entry in batch.drain(..) {
            if let Some(port) = self.route(&mut entry).and_then(|i| ports.get_mut(i)) {
                port.push(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnError;
    use serde_json::{Value as Json, json};

    fn router(cfg: Json) -> Result<Built, String> {
        let Json::Object(block) = cfg else {
            panic!("object")
        };
        build(Spec {
            id: "router".into(),
            block,
            condition: None,
            on_error: OnError::Send,
            has_output: false,
            seed: 0,
        })
    }

    #[test]
    fn first_matching_route_wins_and_labels() {
        let built = router(json!({
            "routes": [
                {"expr": "body == 'a'", "output": "one"},
                {"expr": "body matches '^[ab]'", "output": ["two", "three"],
                 "attributes": {"seen": "EXPR(body)!"}},
            ],
            "default": "other",
        }))
        .unwrap();
        assert_eq!(
            built.ports.as_deref().unwrap(),
            [
                vec!["one".to_owned()],
                vec!["two".into(), "three".into()],
                vec!["other".into()]
            ]
        );
        let mut stage = built.stage;
        let mut batch: Vec<Entry> = ["a", "b", "c", "a"].map(|b| Entry::new(b.into())).into();
        let mut ports = vec![Vec::new(), Vec::new(), Vec::new()];
        stage.run(&mut batch, &mut ports);
        let bodies = |p: &Vec<Entry>| p.iter().map(|e| e.body.clone()).collect::<Vec<_>>();
        assert_eq!(bodies(&ports[0]), ["a".into(), "a".into()]);
        assert_eq!(bodies(&ports[1]), [Value::from("b")]);
        assert_eq!(ports[1][0].attributes["seen"], Value::from("b!"));
        assert_eq!(bodies(&ports[2]), [Value::from("c")]);
    }

    #[test]
    fn no_match_without_default_discards() {
        let mut stage = router(json!({"routes": [{"expr": "body.x == 1", "output": "o"}]}))
            .unwrap()
            .stage;
        let mut batch = vec![Entry::new("text".into())];
        let mut ports = vec![Vec::new()];
        stage.run(&mut batch, &mut ports);
        assert!(ports[0].is_empty(), "a failing expression is no match");
    }

    #[test]
    fn config_errors() {
        for cfg in [
            json!({"routes": [{"expr": "((", "output": "o"}]}),
            json!({"routes": [{"output": "o"}]}),
            json!({"routes": [{"expr": "true", "output": "o", "attributes": {"k": "EXPR(==)"}}]}),
            json!({"routs": []}),
        ] {
            assert!(router(cfg).is_err());
        }
    }
}
