//! `filter` (stanza.md §6): drops entries for which `expr` is true, each with probability
//! `drop_ratio` (draw r in 0..1000, drop when r < ratio × 1000). An expression that fails or
//! is not a bool drops the entry too. Like Stanza's, this operator ignores `if` and
//! `on_error`.

use crate::config::from_block;
use crate::expr::Expr;
use crate::operator::{Stage, hand_over};
use crate::registry::{Built, Spec};
use crate::rng::Rng;
use centimane_core::Entry;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterConfig {
    expr: String,
    #[serde(default = "always")]
    drop_ratio: f64,
}

fn always() -> f64 {
    1.0
}

/// Draws are in `0..DRAWS`.
const DRAWS: u64 = 1000;

struct Filter {
    id: String,
    expr: Expr,
    /// Entries whose draw is below this are dropped (`DRAWS` drops all matches).
    cutoff: u64,
    rng: Rng,
}

pub(crate) fn build(spec: Spec) -> Result<Built, String> {
    let cfg: FilterConfig = from_block(spec.block)?;
    if !(0.0..=1.0).contains(&cfg.drop_ratio) {
        return Err(format!(
            "`drop_ratio`: {} is not between 0 and 1",
            cfg.drop_ratio
        ));
    }
    let expr = Expr::parse(&cfg.expr).map_err(|e| format!("`expr`: {e}"))?;
    Ok(Built::single(Box::new(Filter {
        id: spec.id,
        expr,
        // Stanza truncates ratio × 1000 to an integer.
        cutoff: (cfg.drop_ratio * DRAWS as f64) as u64,
        rng: Rng::new(spec.seed),
    })))
}

impl Filter {
    /// `true` to keep the entry.
    fn keep(&mut self, entry: &Entry) -> bool {
        match self.expr.eval_bool(entry) {
            Ok(false) => true,
            Ok(true) => match self.cutoff {
                DRAWS => false,
                0 => true,
                cutoff => self.rng.below(DRAWS) >= cutoff,
            },
            Err(e) => {
                tracing::debug!(operator = %self.id, "filter expression failed, dropping the entry: {e}");
                false
            }
        }
    }
}

impl Stage for Filter {
    fn run(&mut self, batch: &mut Vec<Entry>, ports: &mut [Vec<Entry>]) {
        batch.retain(|entry| self.keep(entry));
        if let Some(port) = ports.first_mut() {
            hand_over(port, batch);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnError;
    use centimane_core::Value;
    use serde_json::{Value as Json, json};

    fn filter(cfg: Json) -> Result<Built, String> {
        let Json::Object(block) = cfg else {
            panic!("object")
        };
        build(Spec {
            id: "filter".into(),
            block,
            condition: None,
            on_error: OnError::Send,
            has_output: false,
            seed: 7,
        })
    }

    fn kept(cfg: Json, bodies: &[Value]) -> usize {
        let mut stage = filter(cfg).unwrap().stage;
        let mut batch: Vec<Entry> = bodies.iter().cloned().map(Entry::new).collect();
        let mut ports = vec![Vec::new()];
        stage.run(&mut batch, &mut ports);
        ports[0].len()
    }

    #[test]
    fn drops_matches_and_failures() {
        let bodies = ["drop".into(), "keep".into(), Value::Int(1)];
        assert_eq!(kept(json!({"expr": "body == 'drop'"}), &bodies), 2);
        assert_eq!(
            kept(json!({"expr": "body matches 'd'"}), &bodies),
            1,
            "failed expr drops"
        );
        assert_eq!(
            kept(json!({"expr": "body"}), &["x".into()]),
            0,
            "non-bool drops"
        );
    }

    #[test]
    fn drop_ratio_samples() {
        let bodies: Vec<Value> = (0..10_000).map(Value::Int).collect();
        let n = kept(json!({"expr": "true", "drop_ratio": 0.25}), &bodies);
        assert!((7_000..8_000).contains(&n), "{n}");
        assert_eq!(
            kept(json!({"expr": "true", "drop_ratio": 0}), &bodies),
            10_000
        );
    }

    #[test]
    fn config_errors() {
        for cfg in [
            json!({}),
            json!({"expr": "true", "drop_ratio": 1.5}),
            json!({"expr": "true", "drop_ratio": -0.1}),
            json!({"expr": "(("}),
        ] {
            assert!(filter(cfg).is_err());
        }
    }
}
