//! `assign_keys` (stanza.md §6): turns a list field into a map, pairing the configured keys
//! with the list's elements in order. The list must have exactly as many elements as there
//! are keys.

use super::Built;
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Map, Text, Value};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignKeysConfig {
    field: Field,
    keys: Vec<String>,
}

struct AssignKeys {
    field: Field,
    keys: Vec<String>,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Built {
    let cfg: AssignKeysConfig = crate::config::from_block(block)?;
    if cfg.keys.is_empty() {
        return Err("`keys`: list at least one key".to_owned());
    }
    Ok(Box::new(AssignKeys {
        field: cfg.field,
        keys: cfg.keys,
    }))
}

impl Operator for AssignKeys {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let items = match self.field.get(entry) {
            None => return Err(ProcessError::MissingField(self.field.clone())),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(ProcessError::WrongType {
                    what: "a list to assign keys to",
                    got: other.type_name(),
                });
            }
        };
        if items.len() != self.keys.len() {
            return Err(ProcessError::Invalid(format!(
                "field {} holds {} values but {} keys are configured",
                self.field,
                items.len(),
                self.keys.len()
            )));
        }
        let map: Map = self
            .keys
            .iter()
            .map(|k| Text::from(k.as_str()))
            .zip(items.iter().cloned())
            .collect();
        self.field.set(entry, Value::Map(Box::new(map)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(cfg: Json) -> Result<Box<dyn Operator>, String> {
        let Json::Object(m) = cfg else {
            panic!("object")
        };
        build(m)
    }

    #[test]
    fn pairs_keys_with_elements() {
        let mut e = Entry::new(Value::Array(Box::new(vec![1.into(), "b".into()])));
        op(json!({"field": "body", "keys": ["a", "b"]}))
            .unwrap()
            .apply(&mut e)
            .unwrap();
        let m = e.body.as_map().unwrap();
        assert_eq!((m["a"].clone(), m["b"].clone()), (1.into(), "b".into()));
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let mut p = op(json!({"field": "body", "keys": ["a"]})).unwrap();
        for body in [Value::from("x"), Value::Array(Box::default()), Value::Null] {
            let mut e = Entry::new(body.clone());
            assert!(p.apply(&mut e).is_err());
            assert_eq!(e.body, body);
        }
        assert!(op(json!({"field": "body", "keys": []})).is_err());
    }
}
