//! The trace parser (stanza.md §5.9): the standalone `trace_parser` operator and the embedded
//! `trace:` block. Each of `trace_id`, `span_id` and `trace_flags` is read from its
//! `parse_from` field (default `body.trace_id`, `body.span_id`, `body.trace_flags`), written
//! as text and hex-decoded. A missing field clears that id (not an error); an undecodable
//! one clears it and is an error, after the other ids were still parsed. Lengths are not
//! checked, and the source fields are kept.

use crate::config::Block;
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, FieldRoot, Value};
use serde::Deserialize;

/// Keys of the `trace_parser` operator and of the `trace:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TraceConfig {
    trace_id: Option<Block<IdConfig>>,
    span_id: Option<Block<IdConfig>>,
    trace_flags: Option<Block<IdConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdConfig {
    parse_from: Option<Field>,
}

#[derive(Debug)]
pub(crate) struct TraceParser {
    trace_id: Field,
    span_id: Field,
    trace_flags: Field,
}

fn source(cfg: Option<Block<IdConfig>>, default: &str) -> Field {
    cfg.and_then(|Block(c)| c.parse_from)
        .unwrap_or_else(|| Field::new(FieldRoot::Body, vec![default.to_owned()]))
}

impl TraceParser {
    pub(crate) fn build(cfg: TraceConfig) -> TraceParser {
        TraceParser {
            trace_id: source(cfg.trace_id, "trace_id"),
            span_id: source(cfg.span_id, "span_id"),
            trace_flags: source(cfg.trace_flags, "trace_flags"),
        }
    }
}

/// The bytes `field` spells in hex; `Ok(empty)` when the field is missing.
fn decode(entry: &Entry, field: &Field) -> Result<Vec<u8>, String> {
    let text = match field.get(entry) {
        None => return Ok(Vec::new()),
        Some(Value::Str(s)) => s.to_string(),
        // Go formats the value with `%v`; only numbers can come out as hex digits.
        Some(v @ (Value::Int(_) | Value::Double(_))) => v.to_text(),
        Some(other) => return Err(format!("{field}: a {} is not hex", other.type_name())),
    };
    hex_decode(&text).ok_or_else(|| format!("{field}: {text:?} is not valid hex"))
}

/// Decodes hex digits of either case; `None` for an odd length or a non-hex character.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |d: u8| char::from(d).to_digit(16).map(|n| n as u8);
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

impl Operator for TraceParser {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let mut errors = Vec::new();
        let mut read = |field: &Field, entry: &Entry| {
            decode(entry, field).unwrap_or_else(|e| {
                errors.push(e);
                Vec::new()
            })
        };
        entry.trace_id = read(&self.trace_id, entry);
        entry.span_id = read(&self.span_id, entry);
        entry.trace_flags = read(&self.trace_flags, entry);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ProcessError::Invalid(format!(
                "error decoding traces for logs: {}",
                errors.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::value::NumberMode;
    use serde_json::json;

    fn parser(cfg: serde_json::Value) -> TraceParser {
        let serde_json::Value::Object(m) = cfg else {
            panic!("object")
        };
        TraceParser::build(crate::config::from_block(m).unwrap())
    }

    fn entry(body: &str) -> Entry {
        Entry::new(Value::from_json_str(body, NumberMode::IntsWhenIntegral).unwrap())
    }

    #[test]
    fn decodes_each_id_independently() {
        let mut p = parser(json!({}));
        let mut e = entry(r#"{"trace_id":"0A0b","span_id":"zz","trace_flags":1}"#);
        e.span_id = vec![9];
        assert!(p.apply(&mut e).is_err());
        assert_eq!(e.trace_id, [0x0a, 0x0b]);
        assert!(e.span_id.is_empty(), "invalid: cleared");
        assert!(e.trace_flags.is_empty(), "\"1\" has an odd length");
        let mut e = entry(r#"{"trace_flags":"01"}"#);
        e.trace_id = vec![1];
        p.apply(&mut e).unwrap();
        assert!(e.trace_id.is_empty(), "missing: cleared, no error");
        assert_eq!(e.trace_flags, [1]);
    }

    #[test]
    fn custom_sources() {
        let mut p = parser(json!({"trace_id": {"parse_from": "attributes.t"}, "span_id": {}}));
        let mut e = entry("{}");
        e.attributes.insert("t".into(), "ff".into());
        p.apply(&mut e).unwrap();
        assert_eq!(e.trace_id, [0xff]);
        assert_eq!(hex_decode("+1"), None);
    }
}
