//! Reading operator configs. Configs arrive as `serde_json` objects (the agent has already
//! turned YAML into JSON). Every block is read with [`from_block`], which refuses unknown keys
//! (the target structs use `deny_unknown_fields`) and names the key whose value is wrong, so a
//! user sees "`timestamp`: `layout`: invalid type ..." rather than a bare serde message.

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess};
use serde::{Deserialize, Deserializer};
use serde_json::{Map as JsonMap, Value as Json};
use std::fmt;

/// A config that cannot be built into a chain.
///
/// Display names the operator (its position in the list counting from 1, its id and type,
/// as far as they are known) and the offending key in backticks, e.g.
/// "operator #2 (id `parse`, type `json_parser`): unknown field `parse_form`, expected one of ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    operator: Option<OperatorLabel>,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperatorLabel {
    /// 1-based position in the `operators:` list.
    pub position: usize,
    pub id: Option<String>,
    pub kind: Option<String>,
}

impl ConfigError {
    /// An error about the list as a whole (not one operator).
    pub(crate) fn chain(message: impl Into<String>) -> Self {
        ConfigError {
            operator: None,
            message: message.into(),
        }
    }

    /// An error about one operator.
    pub(crate) fn operator(label: OperatorLabel, message: impl Into<String>) -> Self {
        ConfigError {
            operator: Some(label),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = &self.operator {
            write!(f, "operator #{}", op.position)?;
            match (&op.id, &op.kind) {
                (Some(id), Some(kind)) => write!(f, " (id `{id}`, type `{kind}`)")?,
                (None, Some(kind)) => write!(f, " (type `{kind}`)")?,
                (Some(id), None) => write!(f, " (id `{id}`)")?,
                (None, None) => {}
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Deserializes a config block from its JSON object. Unknown keys are refused by the target's
/// `deny_unknown_fields`; an error inside a value is prefixed with the key that holds it.
pub(crate) fn from_block<T: DeserializeOwned>(block: JsonMap<String, Json>) -> Result<T, String> {
    let access = KeyedMap {
        entries: block.into_iter(),
        pending: None,
    };
    T::deserialize(de::value::MapAccessDeserializer::new(access)).map_err(|e| e.to_string())
}

/// Walks a JSON object for serde, remembering the current key so value errors can name it.
struct KeyedMap {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Json)>,
}

impl<'de> MapAccess<'de> for KeyedMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let parsed = seed.deserialize(key.as_str().into_deserializer())?;
        self.pending = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was requested before its key"))?;
        seed.deserialize(value)
            .map_err(|e| de::Error::custom(format_args!("`{key}`: {e}")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A nested config block (`timestamp:`, `cache:` ...) read with the same key-naming errors as
/// the top level.
#[derive(Debug)]
pub(crate) struct Block<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Block<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = JsonMap::deserialize(d)?;
        from_block(map).map(Block).map_err(de::Error::custom)
    }
}

/// What to do with an entry whose processing failed (stanza.md §4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnError {
    #[default]
    Send,
    SendQuiet,
    Drop,
    DropQuiet,
}

impl OnError {
    pub(crate) fn keeps_entry(self) -> bool {
        matches!(self, OnError::Send | OnError::SendQuiet)
    }

    pub(crate) fn is_quiet(self) -> bool {
        matches!(self, OnError::SendQuiet | OnError::DropQuiet)
    }
}

/// `output:` is one id or a list of ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Outputs {
    One(String),
    Many(Vec<String>),
}

impl Outputs {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Outputs::One(id) => vec![id],
            Outputs::Many(ids) => ids,
        }
    }
}

/// The keys every operator accepts; the chain reads them, the operator never sees them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Common {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub output: Option<Outputs>,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(rename = "if")]
    pub condition: Option<String>,
}

/// Names of the keys [`Common`] takes out of every operator block.
pub(crate) const COMMON_KEYS: [&str; 5] = ["type", "id", "output", "on_error", "if"];

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        layout: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        nested: Option<Block<Inner>>,
    }

    fn read(v: Json) -> Result<Outer, String> {
        let Json::Object(map) = v else {
            panic!("test input is an object")
        };
        from_block(map)
    }

    #[test]
    fn reads_nested_blocks() {
        let outer = read(json!({"name": "x", "nested": {"layout": "y"}})).unwrap();
        assert_eq!(outer.name, "x");
        assert_eq!(
            outer.nested.map(|Block(inner)| inner.layout).as_deref(),
            Some("y")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = read(json!({"name": 5})).unwrap_err();
        assert!(err.starts_with("`name`: invalid type"), "{err}");
        let err = read(json!({"name": "x", "nested": {"layout": 1}})).unwrap_err();
        assert!(err.starts_with("`nested`: `layout`: invalid type"), "{err}");
        let err = read(json!({"name": "x", "nested": {"layuot": "a"}})).unwrap_err();
        assert!(err.contains("unknown field `layuot`"), "{err}");
        let err = read(json!({"nmae": "x"})).unwrap_err();
        assert!(err.contains("unknown field `nmae`"), "{err}");
        let err = read(json!({})).unwrap_err();
        assert_eq!(err, "missing field `name`");
    }

    #[test]
    fn display_names_the_operator() {
        let label = OperatorLabel {
            position: 2,
            id: Some("parse".into()),
            kind: Some("json_parser".into()),
        };
        let e = ConfigError::operator(label, "unknown field `parse_form`");
        assert_eq!(
            e.to_string(),
            "operator #2 (id `parse`, type `json_parser`): unknown field `parse_form`"
        );
        assert_eq!(ConfigError::chain("x").to_string(), "x");
    }

    #[test]
    fn suggests_close_names_only() {
        let known = ["json_parser", "regex_parser", "move"];
        assert_eq!(suggest("jsn_parser", &known), Some("json_parser"));
        assert_eq!(suggest("mvoe", &known), Some("move"));
        assert_eq!(suggest("completely_else", &known), None);
    }

    #[test]
    fn on_error_accepts_the_four_modes_only() {
        for (text, keep, quiet) in [
            ("send", true, false),
            ("send_quiet", true, true),
            ("drop", false, false),
            ("drop_quiet", false, true),
        ] {
            let mode: OnError = serde_json::from_value(json!(text)).unwrap();
            assert_eq!((mode.keeps_entry(), mode.is_quiet()), (keep, quiet));
        }
        assert!(serde_json::from_value::<OnError>(json!("ignore")).is_err());
    }
}
