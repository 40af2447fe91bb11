//! The JSON-lines entry format of `centimane process` (DESIGN §6): one object per line with
//! `body`, `attributes`, `resource`, `timestamp` (RFC 3339), `observed_timestamp`, `severity`,
//! `severity_text`, `trace_id`/`span_id`/`trace_flags` (hex) and `scope_name`. A missing key
//! means empty or zero. Numbers without a fraction or exponent are int64, others doubles.

use crate::entry::{Entry, Timestamp};
use crate::value::{Map, NumberMode, Text, Value};
use serde::ser::SerializeMap;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the entry must be a JSON object")]
    NotAnObject,
    #[error("`{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("`{key}` is not valid: {reason}")]
    Invalid { key: String, reason: String },
    #[error(
        "unknown key `{0}` (known: body, attributes, resource, timestamp, observed_timestamp, severity, severity_text, trace_id, span_id, trace_flags, scope_name)"
    )]
    UnknownKey(String),
}

fn wrong(key: &str, expected: &'static str) -> TransportError {
    TransportError::WrongType {
        key: key.to_owned(),
        expected,
    }
}

fn take_map(key: &str, v: Value) -> Result<Map, TransportError> {
    match v {
        Value::Map(m) => Ok(*m),
        Value::Null => Ok(Map::default()),
        _ => Err(wrong(key, "an object")),
    }
}

fn take_string(key: &str, v: Value) -> Result<Text, TransportError> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Null => Ok(Text::default()),
        _ => Err(wrong(key, "a string")),
    }
}

fn take_hex(key: &str, v: Value) -> Result<Vec<u8>, TransportError> {
    let text = take_string(key, v)?;
    hex::decode(&text).map_err(|e| TransportError::Invalid {
        key: key.to_owned(),
        reason: format!("{e} in {text:?}"),
    })
}

fn take_time(key: &str, v: Value) -> Result<Option<Timestamp>, TransportError> {
    let text = take_string(key, v)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<Timestamp>()
        .map(Some)
        .map_err(|e| TransportError::Invalid {
            key: key.to_owned(),
            reason: e.to_string(),
        })
}

/// Reads one entry from its JSON line.
pub fn entry_from_json(line: &str) -> Result<Entry, TransportError> {
    let Value::Map(fields) = Value::from_json_str(line, NumberMode::IntsWhenIntegral)? else {
        return Err(TransportError::NotAnObject);
    };
    let mut entry = Entry::new(Value::Null);
    for (key, v) in *fields {
        match key.as_str() {
            "body" => entry.body = v,
            "attributes" => entry.attributes = take_map(&key, v)?,
            "resource" => entry.resource = take_map(&key, v)?,
            "timestamp" => entry.timestamp = take_time(&key, v)?,
            "observed_timestamp" => {
                if let Some(t) = take_time(&key, v)? {
                    entry.observed_timestamp = t;
                }
            }
            "severity" => {
                entry.severity = match v {
                    Value::Int(i @ 0..=24) => i as u8,
                    Value::Null => 0,
                    _ => return Err(wrong(&key, "an integer from 0 to 24")),
                }
            }
            "severity_text" => entry.severity_text = take_string(&key, v)?,
            "trace_id" => entry.trace_id = take_hex(&key, v)?,
            "span_id" => entry.span_id = take_hex(&key, v)?,
            "trace_flags" => entry.trace_flags = take_hex(&key, v)?,
            "scope_name" => entry.scope_name = take_string(&key, v)?,
            _ => return Err(TransportError::UnknownKey(key.into())),
        }
    }
    Ok(entry)
}

/// Writes one entry as a JSON line (without the newline).
pub fn entry_to_json(entry: &Entry) -> String {
    serde_json::to_string(&EntryJson(entry)).expect("serializing to a String cannot fail")
}

struct EntryJson<'a>(&'a Entry);

impl serde::Serialize for EntryJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("body", &e.body)?;
        m.serialize_entry("attributes", &e.attributes)?;
        m.serialize_entry("resource", &e.resource)?;
        m.serialize_entry("timestamp", &e.timestamp.map(|t| t.to_string()))?;
        m.serialize_entry("observed_timestamp", &e.observed_timestamp.to_string())?;
        m.serialize_entry("severity", &e.severity)?;
        m.serialize_entry("severity_text", &e.severity_text)?;
        m.serialize_entry("trace_id", &hex::encode(&e.trace_id))?;
        m.serialize_entry("span_id", &hex::encode(&e.span_id))?;
        m.serialize_entry("trace_flags", &hex::encode(&e.trace_flags))?;
        m.serialize_entry("scope_name", &e.scope_name)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let line = r#"{"body":{"a":1,"b":2.0},"attributes":{"k":"v"},"resource":{"r":true},"timestamp":"2026-11-23T21:00:00.123456789Z","severity":9,"severity_text":"INFO","trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708","trace_flags":"01","scope_name":"s"}"#;
        let e = entry_from_json(line).unwrap();
        assert_eq!(e.severity, 9);
        assert_eq!(e.trace_id.len(), 16);
        let back = entry_from_json(&entry_to_json(&e)).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn missing_keys_mean_empty() {
        let e = entry_from_json("{}").unwrap();
        assert_eq!(e.body, Value::Null);
        assert!(e.timestamp.is_none());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            "[]",
            "{",
            r#"{"severity":99}"#,
            r#"{"trace_id":"zz"}"#,
            r#"{"timestamp":"yesterday"}"#,
            r#"{"attributes":3}"#,
            r#"{"nope":1}"#,
        ] {
            assert!(entry_from_json(bad).is_err(), "{bad}");
        }
    }
}
