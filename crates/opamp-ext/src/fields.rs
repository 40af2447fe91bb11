//! Reading a config block key by key, so that every error names the key it is about.
//!
//! The block arrives as an untyped `serde_json::Value` (the agent turned the YAML into
//! JSON and substituted `${env:...}`), and serde's own errors for a wrong type do not say
//! which key was wrong, so each key is taken one at a time through [`Fields`].

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The keys of one config object (the `opamp` block or a nested block such as `tls`).
///
/// Invariant: after [`Fields::new`] succeeded, every key left in the object is one of the
/// known keys, so taking the known keys consumes the whole object.
pub(crate) struct Fields {
    /// Printed before a key in errors: `""` at the top of the block, `"server.ws."` inside.
    prefix: String,
    map: Map<String, Value>,
}

impl Fields {
    /// Accepts an object or `null` (a block written with no settings), and refuses any key
    /// outside `known`, suggesting the nearest known key.
    pub(crate) fn new(prefix: &str, value: Value, known: &[&str]) -> Result<Fields, String> {
        let map = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                let what = if prefix.is_empty() {
                    "the `opamp` extension config".to_owned()
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

    /// The key's full name as errors print it, e.g. `server.ws.tls.ca_file`.
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

    /// Removes `key`, which must be a mapping of names to strings (`headers`), in order.
    pub(crate) fn take_string_map(&mut self, key: &str) -> Result<Vec<(String, String)>, String> {
        let Some(value) = self.take_raw(key) else {
            return Ok(Vec::new());
        };
        let Value::Object(map) = value else {
            return Err(format!(
                "`{}` must be a mapping of names to strings",
                self.path(key)
            ));
        };
        map.into_iter()
            .map(|(name, value)| match value {
                Value::String(s) => Ok((name, s)),
                other => Err(format!(
                    "`{}.{name}` must be a string, not {}",
                    self.path(key),
                    json_type(&other)
                )),
            })
            .collect()
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

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
