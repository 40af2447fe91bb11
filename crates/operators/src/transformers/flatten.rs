//! `flatten` (stanza.md §6): lifts the keys of a map field one level up into its parent and
//! removes the field. A lifted key replaces a same-named key of the parent (maps merge, as
//! every set does). A missing field is an error; a non-map field is put back and is an error.

use super::Built;
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlattenConfig {
    field: Field,
}

struct Flatten {
    field: Field,
    parent: Field,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Built {
    let cfg: FlattenConfig = crate::config::from_block(block)?;
    let Some((_, parents)) = cfg.field.keys().split_last() else {
        return Err(format!(
            "`field`: `{}` has no parent to flatten into; name a map below it, like `{}.name`",
            cfg.field, cfg.field
        ));
    };
    let parent = Field::new(cfg.field.root(), parents.to_vec());
    Ok(Box::new(Flatten {
        field: cfg.field,
        parent,
    }))
}

impl Operator for Flatten {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let value = self
            .field
            .delete(entry)
            .ok_or_else(|| ProcessError::MissingField(self.field.clone()))?;
        let map = match value {
            Value::Map(map) => map,
            other => {
                let got = other.type_name();
                self.field.set(entry, other)?;
                return Err(ProcessError::WrongType {
                    what: "a map to flatten",
                    got,
                });
            }
        };
        let mut keys = self.parent.keys().to_vec();
        for (key, value) in *map {
            keys.push(key);
            Field::new(self.parent.root(), keys.clone()).set(entry, value)?;
            keys.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::value::NumberMode;
    use serde_json::json;

    fn op(field: &str) -> Result<Box<dyn Operator>, String> {
        let Json::Object(m) = json!({ "field": field }) else {
            unreachable!()
        };
        build(m)
    }

    fn body(text: &str) -> Entry {
        Entry::new(Value::from_json_str(text, NumberMode::IntsWhenIntegral).unwrap())
    }

    #[test]
    fn lifts_one_level() {
        let mut e = body(r#"{"k":"v","n":{"k":"inner","deep":{"x":1}}}"#);
        op("body.n").unwrap().apply(&mut e).unwrap();
        assert_eq!(e.body, body(r#"{"k":"inner","deep":{"x":1}}"#).body);
    }

    #[test]
    fn errors_keep_the_value() {
        let mut e = body(r#"{"n":"text"}"#);
        assert!(op("body.n").unwrap().apply(&mut e).is_err());
        assert_eq!(e.body, body(r#"{"n":"text"}"#).body);
        assert!(matches!(
            op("body.missing").unwrap().apply(&mut e),
            Err(ProcessError::MissingField(_))
        ));
        assert!(op("body").is_err());
        assert!(op("attributes").is_err());
    }
}
