//! The basic field transformers (stanza.md §6): `noop`, `add`, `copy`, `move` and `remove`.

use super::{Built, plain};
use crate::error::ProcessError;
use crate::expr::Expr;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

/// `noop`: forwards entries unchanged.
struct Noop;

impl Operator for Noop {
    fn apply(&mut self, _entry: &mut Entry) -> Result<(), ProcessError> {
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoopConfig {}

pub(crate) fn build_noop(block: JsonMap<String, Json>) -> Built {
    let NoopConfig {} = crate::config::from_block(block)?;
    Ok(Box::new(Noop))
}

/// `add`: sets a field to a literal value or to the result of `EXPR(...)`.
struct Add {
    field: Field,
    value: AddValue,
}

enum AddValue {
    Literal(Value),
    Expr(Expr),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddConfig {
    field: Field,
    value: Value,
}

pub(crate) fn build_add(block: JsonMap<String, Json>) -> Built {
    let cfg: AddConfig = crate::config::from_block(block)?;
    let value = match &cfg.value {
        Value::Str(s) if s.starts_with("EXPR(") && s.ends_with(')') => {
            let inner = &s["EXPR(".len()..s.len() - 1];
            AddValue::Expr(Expr::parse(inner).map_err(|e| format!("`value`: {e}"))?)
        }
        _ => AddValue::Literal(cfg.value),
    };
    Ok(Box::new(Add {
        field: plain("field", cfg.field)?,
        value,
    }))
}

impl Operator for Add {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let value = match &self.value {
            AddValue::Literal(v) => v.clone(),
            AddValue::Expr(e) => e.eval_value(entry)?,
        };
        self.field.set(entry, value)?;
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromTo {
    from: Field,
    to: Field,
}

/// `copy`: deep-copies `from` to `to`.
struct Copy {
    from: Field,
    to: Field,
}

pub(crate) fn build_copy(block: JsonMap<String, Json>) -> Built {
    let cfg: FromTo = crate::config::from_block(block)?;
    Ok(Box::new(Copy {
        from: plain("from", cfg.from)?,
        to: plain("to", cfg.to)?,
    }))
}

impl Operator for Copy {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let value = self
            .from
            .get(entry)
            .ok_or_else(|| ProcessError::MissingField(self.from.clone()))?
            .clone();
        self.to.set(entry, value)?;
        Ok(())
    }
}

/// `move`: deletes `from`, then sets `to` (a map onto a map merges).
struct Move {
    from: Field,
    to: Field,
}

pub(crate) fn build_move(block: JsonMap<String, Json>) -> Built {
    let cfg: FromTo = crate::config::from_block(block)?;
    Ok(Box::new(Move {
        from: plain("from", cfg.from)?,
        to: plain("to", cfg.to)?,
    }))
}

impl Operator for Move {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let value = self
            .from
            .delete(entry)
            .ok_or_else(|| ProcessError::MissingField(self.from.clone()))?;
        self.to.set(entry, value)?;
        Ok(())
    }
}

/// `remove`: deletes a field; the bare `attributes`/`resource` are cleared, `body` becomes
/// nil. A missing field is an error.
struct Remove {
    field: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveConfig {
    field: Field,
}

pub(crate) fn build_remove(block: JsonMap<String, Json>) -> Built {
    let cfg: RemoveConfig = crate::config::from_block(block)?;
    Ok(Box::new(Remove { field: cfg.field }))
}

impl Operator for Remove {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        self.field
            .delete(entry)
            .map(drop)
            .ok_or_else(|| ProcessError::MissingField(self.field.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(
        build: fn(JsonMap<String, Json>) -> Built,
        cfg: Json,
    ) -> Result<Box<dyn Operator>, String> {
        let Json::Object(map) = cfg else {
            panic!("object")
        };
        build(map)
    }

    fn entry() -> Entry {
        let body = Value::from_json_str(
            r#"{"key":"val","nested":{"k":"v"}}"#,
            centimane_core::value::NumberMode::IntsWhenIntegral,
        )
        .unwrap();
        Entry {
            body,
            ..Entry::default()
        }
    }

    #[test]
    fn noop_changes_nothing() {
        let mut e = entry();
        op(build_noop, json!({})).unwrap().apply(&mut e).unwrap();
        assert_eq!(e, entry());
        assert!(op(build_noop, json!({"x": 1})).is_err());
    }

    #[test]
    fn add_literal_and_expr() {
        let mut e = entry();
        let mut add = op(build_add, json!({"field": "attributes.n", "value": 1})).unwrap();
        add.apply(&mut e).unwrap();
        assert_eq!(e.attributes["n"], Value::Int(1));
        let cfg = json!({"field": "body.k2", "value": "EXPR(body.key + '_x')"});
        op(build_add, cfg).unwrap().apply(&mut e).unwrap();
        assert_eq!(e.body.as_map().unwrap()["k2"], Value::from("val_x"));
        let cfg = json!({"field": "body.n", "value": "EXPR(body.nested)"});
        op(build_add, cfg).unwrap().apply(&mut e).unwrap();
        assert_eq!(
            e.body.as_map().unwrap()["n"].as_map().unwrap()["k"],
            Value::from("v")
        );
    }

    #[test]
    fn add_errors() {
        let cfg = json!({"field": "body.x", "value": "EXPR(body.key.deeper)"});
        let mut e = entry();
        assert!(op(build_add, cfg).unwrap().apply(&mut e).is_err());
        assert_eq!(e, entry(), "failed expression leaves the entry");
        for (cfg, needle) in [
            (json!({"field": "attributes", "value": 1}), "`field`"),
            (
                json!({"field": "body.x", "value": "EXPR(body.)"}),
                "`value`: invalid expression",
            ),
            (json!({"field": "body.x"}), "missing field `value`"),
            (json!({"value": 1}), "missing field `field`"),
            (
                json!({"field": "nope", "value": 1}),
                "`field`: field `nope`",
            ),
        ] {
            let err = op(build_add, cfg).err().unwrap();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn copy_and_move() {
        let mut e = entry();
        let cfg = json!({"from": "body.nested", "to": "attributes.n"});
        op(build_copy, cfg).unwrap().apply(&mut e).unwrap();
        assert_eq!(e.attributes["n"], entry().body.as_map().unwrap()["nested"]);
        assert!(e.body.as_map().unwrap().contains_key("nested"));
        let cfg = json!({"from": "body.nested", "to": "body"});
        op(build_move, cfg).unwrap().apply(&mut e).unwrap();
        let body = e.body.as_map().unwrap();
        assert_eq!(
            body["k"],
            Value::from("v"),
            "map moved onto the body merges"
        );
        assert!(!body.contains_key("nested"));
    }

    #[test]
    fn copy_and_move_of_missing_fields_fail() {
        for build in [build_copy, build_move] {
            let mut e = entry();
            let cfg = json!({"from": "body.missing", "to": "body.x"});
            let r = op(build, cfg).unwrap().apply(&mut e);
            assert!(matches!(r, Err(ProcessError::MissingField(_))));
            assert_eq!(e, entry());
            let err = op(build, json!({"from": "body.a", "to": "resource"}))
                .err()
                .unwrap();
            assert!(err.contains("`to`"), "{err}");
        }
    }

    #[test]
    fn remove_fields_and_roots() {
        let mut e = entry();
        e.attributes.insert("a".into(), Value::Int(1));
        op(build_remove, json!({"field": "attributes"}))
            .unwrap()
            .apply(&mut e)
            .unwrap();
        assert!(e.attributes.is_empty());
        op(build_remove, json!({"field": "body.nested.k"}))
            .unwrap()
            .apply(&mut e)
            .unwrap();
        assert_eq!(
            e.body.as_map().unwrap()["nested"],
            Value::Map(Default::default())
        );
        let r = op(build_remove, json!({"field": "body.nested.k"}))
            .unwrap()
            .apply(&mut e);
        assert!(matches!(r, Err(ProcessError::MissingField(_))));
        op(build_remove, json!({"field": "body"}))
            .unwrap()
            .apply(&mut e)
            .unwrap();
        assert!(e.body.is_null());
    }
}
