//! Reading a config block key by key, so that every error names the key it is about.
//!
//! serde's own errors for a wrong type ("invalid type: string, expected a boolean") do not
//! say which key was wrong, and the block arrives as an untyped `serde_json::Value`, so each
//! exporter takes its keys one at a time through [`Fields`].

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The keys of one config object (an exporter block or a nested block such as `tls`).
///
/// Invariant: after [`Fields::new`] succeeded, every key left in the object is one of the
/// known keys, so taking the known keys consumes the whole object.
pub(crate) struct Fields {
    /// Printed before a key in errors: `""` at the top of a block, `"tls."` inside `tls`.
    prefix: String,
    map: Map<String, Value>,
}

impl Fields {
    /// Accepts an object or `null` (a block written with no settings, like `debug:`), and
    /// refuses any key outside `known`, suggesting the nearest known key.
    pub(crate) fn new(prefix: &str, value: Value, known: &[&str]) -> Result<Fields, String> {
        let map = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                let what = if prefix.is_empty() {
                    "the exporter config".to_owned()
                } else {
                    format!("`{}`", prefix.trim_end_matches('.'))
                };
                return Err(format!(
                    "{what} must be a mapping of keys to values, not {}",
                    json_type(&other)
                ));
            }
        };
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(unknown_key(prefix, unknown, known));
        }
        Ok(Fields {
            prefix: prefix.to_owned(),
            map,
        })
    }

    /// The key's full name as errors print it, e.g. `retry_on_failure.multiplier`.
    pub(crate) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Removes `key` and deserializes it. A missing key and an explicit `null` both give
    /// `None` (the Collector's config decoder treats `key:` with no value as unset).
    pub(crate) fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| format!("`{}`: {e}", self.path(key))),
        }
    }

    /// Removes `key` and returns it untouched (for nested blocks), `None` if absent or null.
    pub(crate) fn take_raw(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }
}

fn unknown_key(prefix: &str, key: &str, known: &[&str]) -> String {
    let nearest = known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min_by_key(|(distance, _)| *distance);
    let valid = known
        .iter()
        .map(|k| format!("`{prefix}{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match nearest {
        Some((_, k)) => format!(
            "unknown key `{prefix}{key}`; did you mean `{prefix}{k}`? (valid keys: {valid})"
        ),
        None => format!("unknown key `{prefix}{key}` (valid keys: {valid})"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let err = Fields::new("", json!({"endpont": "x"}), &["endpoint", "headers"])
            .err()
            .unwrap();
        assert!(err.contains("unknown key `endpont`"), "{err}");
        assert!(err.contains("did you mean `endpoint`"), "{err}");
        let err = Fields::new("tls.", json!({"zzz": 1}), &["insecure"])
            .err()
            .unwrap();
        assert!(err.contains("unknown key `tls.zzz`"), "{err}");
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let mut f = Fields::new("tls.", json!({"insecure": "yes please"}), &["insecure"]).unwrap();
        let err = f.take::<bool>("insecure").unwrap_err();
        assert!(err.starts_with("`tls.insecure`: invalid type"), "{err}");
    }

    #[test]
    fn null_means_unset() {
        let mut f = Fields::new("", json!({"a": null}), &["a"]).unwrap();
        assert_eq!(f.take::<bool>("a"), Ok(None));
        assert!(Fields::new("", Value::Null, &["a"]).is_ok());
        let err = Fields::new("tls.", json!([1]), &["a"]).err().unwrap();
        assert_eq!(err, "`tls` must be a mapping of keys to values, not a list");
    }
}
