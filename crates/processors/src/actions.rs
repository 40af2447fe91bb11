//! Attribute actions, as the Collector's `attributes` processor (`actions:`) and `resource`
//! processor (`attributes:`) define them (`internal/coreinternal/attraction`):
//!
//! | action | keys | effect |
//! |---|---|---|
//! | `insert` | `key` + one of `value`, `from_attribute` | sets `key` if it is absent |
//! | `update` | same | sets `key` if it is present |
//! | `upsert` | same | sets `key` either way |
//! | `delete` | `key` and/or `pattern` | removes `key` and every key the regex matches |
//! | `hash` | `key` and/or `pattern` | replaces the value with the hex SHA-256 of its bytes |
//! | `extract` | `key`, `pattern` | named groups of the first match on the string value of `key` become string attributes |
//! | `convert` | `key`, `converted_type` | converts to `int`, `double` or `string` when it can |
//!
//! Actions run in order. `from_attribute` reads the map being changed; a missing source
//! attribute means no action. `action` is case-insensitive. `from_context` is refused: this
//! agent carries no client metadata.

use crate::sha256;
use crate::text::as_string;
use centimane_core::{Map, Value};
use regex::Regex;
use serde::Deserialize;

/// A validated list of actions.
#[derive(Debug, Clone)]
pub(crate) struct Actions(Vec<Action>);

#[derive(Debug, Clone)]
enum Action {
    Insert(String, Source),
    Update(String, Source),
    Upsert(String, Source),
    Delete(KeySelector),
    Hash(KeySelector),
    Extract { key: String, regex: Regex },
    Convert { key: String, to: ConvertTo },
}

#[derive(Debug, Clone)]
enum Source {
    Value(Value),
    FromAttribute(String),
}

/// `delete` and `hash` act on `key` and on every key matching `pattern`.
#[derive(Debug, Clone)]
struct KeySelector {
    key: Option<String>,
    pattern: Option<Regex>,
}

impl KeySelector {
    fn keys(&self, map: &Map) -> Vec<String> {
        let mut keys: Vec<String> = self.key.iter().cloned().collect();
        if let Some(re) = &self.pattern {
            keys.extend(
                map.keys()
                    .filter(|k| re.is_match(k) && Some(k.as_str()) != self.key.as_deref())
                    .map(|k| k.to_string()),
            );
        }
        keys
    }
}

#[derive(Debug, Clone, Copy)]
enum ConvertTo {
    Int,
    Double,
    Str,
}

/// One action as written in the config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    from_attribute: String,
    #[serde(default)]
    from_context: String,
    #[serde(default)]
    converted_type: String,
    #[serde(default)]
    action: String,
}

impl Actions {
    /// Validates the list found under `list_key` (`actions` or `attributes`), with the
    /// Collector's rules about which keys each action takes.
    pub(crate) fn parse(list_key: &str, raw: serde_json::Value) -> Result<Actions, String> {
        let raw: Vec<RawAction> =
            serde_json::from_value(raw).map_err(|e| format!("`{list_key}`: {e}"))?;
        if raw.is_empty() {
            return Err(format!(
                "`{list_key}` is required: list at least one action"
            ));
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, a)| parse_action(a).map_err(|e| format!("`{list_key}[{i}]`: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Actions)
    }

    /// Applies every action, in order, to `map`.
    pub(crate) fn apply(&self, map: &mut Map) {
        for action in &self.0 {
            match action {
                Action::Insert(key, source) => {
                    if !map.contains_key(key.as_str())
                        && let Some(v) = source.get(map)
                    {
                        map.insert(key.as_str().into(), v);
                    }
                }
                Action::Update(key, source) => {
                    if map.contains_key(key.as_str())
                        && let Some(v) = source.get(map)
                    {
                        map.insert(key.as_str().into(), v);
                    }
                }
                Action::Upsert(key, source) => {
                    if let Some(v) = source.get(map) {
                        map.insert(key.as_str().into(), v);
                    }
                }
                Action::Delete(selector) => {
                    for key in selector.keys(map) {
                        // shift_remove keeps the order of the remaining attributes.
                        map.shift_remove(key.as_str());
                    }
                }
                Action::Hash(selector) => {
                    for key in selector.keys(map) {
                        if let Some(v) = map.get_mut(key.as_str()) {
                            *v = Value::Str(hash(v).into());
                        }
                    }
                }
                Action::Extract { key, regex } => extract(map, key, regex),
                Action::Convert { key, to } => {
                    if let Some(v) = map.get_mut(key.as_str()) {
                        convert(v, *to);
                    }
                }
            }
        }
    }
}

impl Source {
    fn get(&self, map: &Map) -> Option<Value> {
        match self {
            Source::Value(v) => Some(v.clone()),
            Source::FromAttribute(k) => map.get(k.as_str()).cloned(),
        }
    }
}

fn parse_action(a: RawAction) -> Result<Action, String> {
    let action = a.action.to_ascii_lowercase();
    if !a.from_context.is_empty() {
        return Err(
            "`from_context` is not supported: Centimane carries no client metadata with entries"
                .into(),
        );
    }
    let has_pattern = !a.pattern.is_empty();
    let has_convert = !a.converted_type.is_empty();
    let key = a.key;
    let needs_key = |action: &str| {
        if key.is_empty() {
            Err(format!("`key` is required for action `{action}`"))
        } else {
            Ok(key.clone())
        }
    };
    let source = match (a.value, a.from_attribute.is_empty()) {
        (Some(_), false) => {
            return Err("set only one of `value` and `from_attribute`".into());
        }
        (Some(v), true) => Some(Source::Value(v)),
        (None, false) => Some(Source::FromAttribute(a.from_attribute)),
        (None, true) => None,
    };
    let unused = |field: &str, action: &str| format!("action `{action}` does not use `{field}`");
    match action.as_str() {
        "insert" | "update" | "upsert" => {
            let key = needs_key(&action)?;
            let source = source
                .ok_or_else(|| format!("action `{action}` needs `value` or `from_attribute`"))?;
            if has_pattern {
                return Err(unused("pattern", &action));
            }
            if has_convert {
                return Err(unused("converted_type", &action));
            }
            Ok(match action.as_str() {
                "insert" => Action::Insert(key, source),
                "update" => Action::Update(key, source),
                _ => Action::Upsert(key, source),
            })
        }
        "delete" | "hash" => {
            if key.is_empty() && !has_pattern {
                return Err(format!("action `{action}` needs `key`, `pattern` or both"));
            }
            if source.is_some() {
                return Err(unused("value` or `from_attribute", &action));
            }
            if has_convert {
                return Err(unused("converted_type", &action));
            }
            let selector = KeySelector {
                key: (!key.is_empty()).then_some(key),
                pattern: has_pattern.then(|| compile(&a.pattern)).transpose()?,
            };
            Ok(if action == "delete" {
                Action::Delete(selector)
            } else {
                Action::Hash(selector)
            })
        }
        "extract" => {
            let key = needs_key(&action)?;
            if source.is_some() {
                return Err(unused("value` or `from_attribute", &action));
            }
            if has_convert {
                return Err(unused("converted_type", &action));
            }
            if !has_pattern {
                return Err("`pattern` is required for action `extract`".into());
            }
            let regex = compile(&a.pattern)?;
            let names: Vec<Option<&str>> = regex.capture_names().skip(1).collect();
            if names.is_empty() {
                return Err(format!(
                    "`pattern` {:?} has no named groups to extract into, like (?P<name>...)",
                    a.pattern
                ));
            }
            if names.iter().any(Option::is_none) {
                return Err(format!(
                    "`pattern` {:?}: every group must be named, like (?P<name>...)",
                    a.pattern
                ));
            }
            Ok(Action::Extract { key, regex })
        }
        "convert" => {
            let key = needs_key(&action)?;
            if source.is_some() || has_pattern {
                return Err(unused("value`, `from_attribute` or `pattern", &action));
            }
            let to = match a.converted_type.as_str() {
                "int" => ConvertTo::Int,
                "double" => ConvertTo::Double,
                "string" => ConvertTo::Str,
                "" => return Err("`converted_type` is required for action `convert`".into()),
                other => {
                    return Err(format!(
                        "`converted_type` {other:?} is not one of int, double, string"
                    ));
                }
            };
            Ok(Action::Convert { key, to })
        }
        "" => Err(
            "`action` is required (insert, update, upsert, delete, hash, extract or convert)"
                .into(),
        ),
        other => Err(format!(
            "`action` {other:?} is not one of insert, update, upsert, delete, hash, extract, convert"
        )),
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("`pattern` {pattern:?} is not a valid regex: {e}"))
}

/// The Collector's `sha2Hasher`: strings hash their UTF-8 bytes, bools one byte (1/0), ints
/// and doubles their 8 little-endian bytes; anything else hashes to the empty string.
fn hash(value: &Value) -> String {
    let bytes: Vec<u8> = match value {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int(i) => i.to_le_bytes().to_vec(),
        Value::Double(d) => d.to_bits().to_le_bytes().to_vec(),
        Value::Null | Value::Bytes(_) | Value::Array(_) | Value::Map(_) => return String::new(),
    };
    if bytes.is_empty() {
        return String::new();
    }
    sha256::hex_digest(&bytes)
}

/// Only string values are extracted from; a group that took no part yields `""`, as Go's
/// `FindStringSubmatch` does.
fn extract(map: &mut Map, key: &str, regex: &Regex) {
    let Some(Value::Str(text)) = map.get(key) else {
        return;
    };
    let Some(caps) = regex.captures(text) else {
        return;
    };
    let found: Vec<(String, String)> = regex
        .capture_names()
        .enumerate()
        .skip(1)
        .filter_map(|(i, name)| {
            let value = caps.get(i).map_or("", |m| m.as_str());
            name.map(|n| (n.to_owned(), value.to_owned()))
        })
        .collect();
    for (name, value) in found {
        map.insert(name.into(), Value::Str(value.into()));
    }
}

/// Values that can't be converted stay as they are (the Collector logs and moves on).
fn convert(value: &mut Value, to: ConvertTo) {
    let converted = match (to, &*value) {
        (ConvertTo::Str, Value::Str(_)) => None,
        (ConvertTo::Str, v) => Some(Value::Str(as_string(v).into())),
        (ConvertTo::Int, Value::Double(d)) => Some(Value::Int(*d as i64)),
        (ConvertTo::Int, Value::Bool(b)) => Some(Value::Int(i64::from(*b))),
        (ConvertTo::Int, Value::Str(s)) => s.parse::<i64>().ok().map(Value::Int),
        (ConvertTo::Double, Value::Int(i)) => Some(Value::Double(*i as f64)),
        (ConvertTo::Double, Value::Bool(b)) => Some(Value::Double(f64::from(u8::from(*b)))),
        (ConvertTo::Double, Value::Str(s)) => s.parse::<f64>().ok().map(Value::Double),
        _ => None,
    };
    if let Some(v) = converted {
        *value = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, Value)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    fn run(actions: serde_json::Value, m: &mut Map) {
        Actions::parse("actions", actions).unwrap().apply(m);
    }

    #[test]
    fn insert_update_upsert() {
        let mut m = map(&[("a", "1".into()), ("src", Value::Int(7))]);
        run(
            json!([
                {"key": "a", "value": "new", "action": "insert"},
                {"key": "b", "value": 2, "action": "INSERT"},
                {"key": "c", "value": "x", "action": "update"},
                {"key": "a", "from_attribute": "src", "action": "update"},
                {"key": "d", "from_attribute": "missing", "action": "upsert"},
                {"key": "e", "value": [1, "two"], "action": "upsert"},
            ]),
            &mut m,
        );
        assert_eq!(m["a"], Value::Int(7));
        assert_eq!(m["b"], Value::Int(2));
        assert!(!m.contains_key("c"), "update never inserts");
        assert!(!m.contains_key("d"), "a missing source means no action");
        assert_eq!(
            m["e"],
            Value::Array(Box::new(vec![Value::Int(1), Value::from("two")]))
        );
    }

    #[test]
    fn delete_by_key_and_pattern_keeps_order() {
        let mut m = map(&[
            ("keep1", Value::Null),
            ("secret.a", Value::Null),
            ("x", Value::Null),
            ("secret.b", Value::Null),
            ("keep2", Value::Null),
        ]);
        run(
            json!([{"key": "x", "pattern": "^secret\\.", "action": "delete"}]),
            &mut m,
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), ["keep1", "keep2"]);
    }

    #[test]
    fn hash_matches_the_collector() {
        let mut m = map(&[
            ("s", "abc".into()),
            ("i", Value::Int(1)),
            ("t", Value::Bool(true)),
            ("d", Value::Double(1.5)),
            ("b", Value::Bytes(vec![1].into())),
        ]);
        run(
            json!([{"key": "s", "pattern": "^[itdb]$", "action": "hash"}]),
            &mut m,
        );
        assert_eq!(
            m["s"],
            Value::from("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        // sha256 of the 8 little-endian bytes 01 00 .. 00 and of the single byte 01.
        assert_eq!(m["i"], Value::from(sha256::hex_digest(&1i64.to_le_bytes())));
        assert_eq!(
            m["t"],
            Value::from("4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a")
        );
        assert_eq!(
            m["d"],
            Value::from(sha256::hex_digest(&1.5f64.to_bits().to_le_bytes()))
        );
        assert_eq!(
            m["b"],
            Value::from(""),
            "bytes hash to empty, as in the Collector"
        );
    }

    #[test]
    fn extract_named_groups() {
        let mut m = map(&[("url", "/api/v1/users/42?x=1".into())]);
        run(
            json!([{
                "key": "url",
                "pattern": "^/api/(?P<version>v\\d+)/(?P<kind>\\w+)/(?P<id>\\d+)(?P<rest>#.*)?",
                "action": "extract"
            }]),
            &mut m,
        );
        assert_eq!(m["version"], Value::from("v1"));
        assert_eq!(m["kind"], Value::from("users"));
        assert_eq!(m["id"], Value::from("42"));
        assert_eq!(
            m["rest"],
            Value::from(""),
            "a group that took no part is empty"
        );
        let mut not_string = map(&[("url", Value::Int(1))]);
        run(
            json!([{"key": "url", "pattern": "(?P<a>.)", "action": "extract"}]),
            &mut not_string,
        );
        assert_eq!(not_string.len(), 1);
    }

    #[test]
    fn convert_like_the_collector() {
        let mut m = map(&[
            ("i", "42".into()),
            ("bad", "4x".into()),
            ("d", "2.5".into()),
            ("f", Value::Double(3.9)),
            ("b", Value::Bool(true)),
            ("s", Value::Double(2.0)),
        ]);
        run(
            json!([
                {"key": "i", "action": "convert", "converted_type": "int"},
                {"key": "bad", "action": "convert", "converted_type": "int"},
                {"key": "d", "action": "convert", "converted_type": "double"},
                {"key": "f", "action": "convert", "converted_type": "int"},
                {"key": "b", "action": "convert", "converted_type": "double"},
                {"key": "s", "action": "convert", "converted_type": "string"},
            ]),
            &mut m,
        );
        assert_eq!(m["i"], Value::Int(42));
        assert_eq!(m["bad"], Value::from("4x"), "unconvertible values stay");
        assert_eq!(m["d"], Value::Double(2.5));
        assert_eq!(m["f"], Value::Int(3), "truncates");
        assert_eq!(m["b"], Value::Double(1.0));
        assert_eq!(m["s"], Value::from("2"));
    }

    #[test]
    fn config_errors_are_clear() {
        let cases = [
            (json!([]), "at least one action"),
            (
                json!([{"key": "a", "action": "insert"}]),
                "`value` or `from_attribute`",
            ),
            (
                json!([{"value": 1, "action": "insert"}]),
                "`key` is required",
            ),
            (
                json!([{"key": "a", "action": "frobnicate"}]),
                "\"frobnicate\"",
            ),
            (
                json!([{"key": "a", "pattern": "(", "action": "delete"}]),
                "not a valid regex",
            ),
            (
                json!([{"key": "a", "pattern": "abc", "action": "extract"}]),
                "no named groups",
            ),
            (
                json!([{"key": "a", "pattern": "(?P<x>.)(.)", "action": "extract"}]),
                "every group must be named",
            ),
            (
                json!([{"key": "a", "action": "convert", "converted_type": "bool"}]),
                "\"bool\"",
            ),
            (
                json!([{"key": "a", "action": "delete", "value": 1}]),
                "does not use",
            ),
            (
                json!([{"key": "a", "action": "insert", "from_context": "x"}]),
                "`from_context`",
            ),
            (
                json!([{"key": "a", "action": "insert", "vaule": 1}]),
                "`vaule`",
            ),
        ];
        for (config, want) in cases {
            let e = Actions::parse("actions", config.clone()).unwrap_err();
            assert!(e.contains(want), "{config}: {e}");
        }
    }
}
