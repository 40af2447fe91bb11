//! The `attributes` processor (config key `actions`, acting on each record's attributes)
//! and the `resource` processor (config key `attributes`, acting on each record's resource).
//! The actions are described in [`crate::actions`].
//!
//! Not supported: the `attributes` processor's `include`/`exclude` match properties; a
//! config that sets them is refused rather than silently acting on every record.

use crate::actions::Actions;
use centimane_core::Batch;

/// Which map of each entry the actions change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `attributes` processor: the record's attributes.
    Record,
    /// `resource` processor: the resource attributes.
    Resource,
}

#[derive(Debug, Clone)]
pub struct AttributesConfig {
    target: Target,
    actions: Actions,
}

pub(crate) fn parse(target: Target, config: serde_json::Value) -> Result<AttributesConfig, String> {
    let list_key = match target {
        Target::Record => "actions",
        Target::Resource => "attributes",
    };
    let serde_json::Value::Object(mut fields) = crate::object_or_empty(config) else {
        return Err("the config must be a map".into());
    };
    let list = fields.remove(list_key).unwrap_or(serde_json::Value::Null);
    if let Some(key) = fields.keys().next() {
        let hint = match (target, key.as_str()) {
            (Target::Record, "include" | "exclude") => {
                format!(
                    "`{key}` is not supported by this build: the actions apply to every record (use a `filter` pipeline to select records)"
                )
            }
            _ => format!("unknown field `{key}`, expected `{list_key}`"),
        };
        return Err(hint);
    }
    let list = if list.is_null() {
        serde_json::Value::Array(Vec::new())
    } else {
        list
    };
    Ok(AttributesConfig {
        target,
        actions: Actions::parse(list_key, list)?,
    })
}

impl AttributesConfig {
    pub(crate) fn apply(&self, batch: &mut Batch) {
        for entry in &mut batch.entries {
            let map = match self.target {
                Target::Record => &mut entry.attributes,
                Target::Resource => &mut entry.resource,
            };
            self.actions.apply(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::{Entry, Value};
    use serde_json::json;

    #[test]
    fn attributes_act_on_records_and_resource_on_resources() {
        let mut e = Entry::new("x".into());
        e.attributes.insert("k".into(), "record".into());
        e.resource.insert("k".into(), "resource".into());
        let mut batch = Batch::new(vec![e], Default::default());
        parse(
            Target::Record,
            json!({"actions": [{"key": "k", "action": "delete"}]}),
        )
        .unwrap()
        .apply(&mut batch);
        parse(
            Target::Resource,
            json!({"attributes": [{"key": "host", "value": "h1", "action": "upsert"}]}),
        )
        .unwrap()
        .apply(&mut batch);
        let e = &batch.entries[0];
        assert!(e.attributes.is_empty());
        assert_eq!(e.resource["k"], Value::from("resource"));
        assert_eq!(e.resource["host"], Value::from("h1"));
    }

    #[test]
    fn config_errors() {
        let e = parse(Target::Record, serde_json::Value::Null).unwrap_err();
        assert!(e.contains("`actions` is required"), "{e}");
        let e = parse(Target::Resource, json!({"actions": []})).unwrap_err();
        assert!(e.contains("unknown field `actions`"), "{e}");
        let e = parse(
            Target::Record,
            json!({"actions": [{"key": "a", "action": "delete"}], "include": {}}),
        )
        .unwrap_err();
        assert!(e.contains("`include` is not supported"), "{e}");
    }
}
