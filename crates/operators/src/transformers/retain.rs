//! `retain` (stanza.md §6): keeps only the listed fields. Each category (body, attributes,
//! resource) named by at least one field is rebuilt from the listed fields alone; categories
//! not named, and the timestamp, severity, trace ids and scope, are left as they are. A body
//! whose listed fields are all missing becomes nil.

use super::{Built, plain};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, FieldRoot};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetainConfig {
    fields: Vec<Field>,
}

struct Retain {
    fields: Vec<Field>,
    /// Which categories are rebuilt: body, attributes, resource.
    body: bool,
    attributes: bool,
    resource: bool,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Built {
    let cfg: RetainConfig = crate::config::from_block(block)?;
    if cfg.fields.is_empty() {
        return Err("`fields`: list at least one field to keep".to_owned());
    }
    let fields = cfg
        .fields
        .into_iter()
        .map(|f| plain("fields", f))
        .collect::<Result<Vec<_>, _>>()?;
    let names = |root| fields.iter().any(|f| f.root() == root);
    Ok(Box::new(Retain {
        body: names(FieldRoot::Body),
        attributes: names(FieldRoot::Attributes),
        resource: names(FieldRoot::Resource),
        fields,
    }))
}

impl Operator for Retain {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        // The kept values go into an entry holding only the rebuilt categories, which then
        // replace the old ones; the rest of `entry` is never touched.
        let mut kept = Entry::default();
        for field in &self.fields {
            if let Some(value) = field.get(entry) {
                field.set(&mut kept, value.clone())?;
            }
        }
        if self.body {
            entry.body = kept.body;
        }
        if self.attributes {
            entry.attributes = kept.attributes;
        }
        if self.resource {
            entry.resource = kept.resource;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::{Map, Text, Value};
    use serde_json::json;

    fn map(pairs: &[(&str, Value)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| (Text::from(*k), v.clone()))
            .collect()
    }

    fn op(cfg: Json) -> Result<Box<dyn Operator>, String> {
        let Json::Object(m) = cfg else {
            panic!("object")
        };
        build(m)
    }

    #[test]
    fn keeps_listed_fields_per_category() {
        let mut e = Entry {
            body: Value::Map(Box::new(map(&[("a", 1.into()), ("b", 2.into())]))),
            attributes: map(&[("x", "1".into()), ("y", "2".into())]),
            resource: map(&[("r", "1".into())]),
            severity: 9,
            ..Entry::default()
        };
        op(json!({"fields": ["body.a", "attributes.y"]}))
            .unwrap()
            .apply(&mut e)
            .unwrap();
        assert_eq!(e.body, Value::Map(Box::new(map(&[("a", 1.into())]))));
        assert_eq!(e.attributes, map(&[("y", "2".into())]));
        assert_eq!(e.resource.len(), 1, "resource not named: untouched");
        assert_eq!(e.severity, 9);
    }

    #[test]
    fn missing_body_fields_leave_a_nil_body() {
        let mut e = Entry::new("text".into());
        op(json!({"fields": ["body.a"]}))
            .unwrap()
            .apply(&mut e)
            .unwrap();
        assert!(e.body.is_null());
    }

    #[test]
    fn config_errors() {
        assert!(op(json!({"fields": []})).is_err());
        assert!(op(json!({"fields": ["attributes"]})).is_err());
        assert!(op(json!({})).is_err());
    }
}
