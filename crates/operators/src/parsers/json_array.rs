//! `json_array_parser` (stanza.md §5.3): a string holding a JSON array becomes a list, or,
//! with `header`, a map from the header names to the elements. Integral numbers become ints,
//! others doubles; a nested object becomes its compact JSON text; a nested array is an error.
//!
//! Stanza reads the text with fastjson, which takes raw control characters (a newline, say)
//! inside strings; serde_json does not, so such characters are escaped before parsing.

use super::{Parse, ParserOp, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::value::NumberMode;
use centimane_core::{Map, Text, Value};
use serde_json::value::RawValue;
use serde_json::{Map as JsonMap, Value as Json};
use std::borrow::Cow;

parser_config!(JsonArrayConfig {
    header: Option<String>,
});

struct JsonArrayParser {
    header: Option<Vec<String>>,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: JsonArrayConfig = crate::config::from_block(block)?;
    let header = cfg
        .header
        .take()
        .map(|h| h.split(',').map(str::to_owned).collect());
    Ok(Box::new(ParserOp::new(
        cfg.base()?,
        JsonArrayParser { header },
    )))
}

/// `text` with control characters inside strings written as `\u00XX` escapes.
fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b < 0x20) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ if (c as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                    continue;
                }
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// `raw` (valid JSON) without the whitespace outside strings.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

fn element(raw: &RawValue) -> Result<Value, ProcessError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => Ok(Value::Str(compact(text).into())),
        Some(b'[') => Err(ProcessError::Invalid(
            "nested arrays are not supported".to_owned(),
        )),
        _ => Ok(Value::from_json_str(text, NumberMode::IntsWhenIntegral)?),
    }
}

impl Parse for JsonArrayParser {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let Value::Str(text) = value else {
            return Err(ProcessError::WrongType {
                what: "a JSON array",
                got: value.type_name(),
            });
        };
        let text = escape_controls(text);
        let raw: Vec<&RawValue> = serde_json::from_str(&text)?;
        let items = raw
            .into_iter()
            .map(element)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(header) = &self.header else {
            return Ok(Value::Array(Box::new(items)));
        };
        if header.len() != items.len() {
            return Err(ProcessError::Invalid(format!(
                "wrong number of fields: expected {}, found {}",
                header.len(),
                items.len()
            )));
        }
        let map: Map = header
            .iter()
            .map(|h| Text::from(h.as_str()))
            .zip(items)
            .collect();
        Ok(Value::Map(Box::new(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Entry;
    use serde_json::json;

    fn parse(cfg: Json, body: &str) -> Result<Value, String> {
        let Json::Object(mut m) = cfg else {
            panic!("object")
        };
        m.insert("parse_to".into(), json!("body"));
        let mut op = build(m)?;
        let mut e = Entry::new(body.into());
        op.apply(&mut e).map_err(|e| e.to_string())?;
        Ok(e.body)
    }

    #[test]
    fn converts_elements() {
        let v = parse(
            json!({}),
            "[\"a\nb\", 1, 1.5, 2.0, true, null, {\"k\": [1, 2.50]}]",
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Array(Box::new(vec![
                "a\nb".into(),
                Value::Int(1),
                Value::Double(1.5),
                Value::Double(2.0),
                Value::Bool(true),
                Value::Null,
                r#"{"k":[1,2.50]}"#.into(),
            ]))
        );
    }

    #[test]
    fn header_makes_a_map() {
        let v = parse(json!({"header": "a,b"}), r#"["x", 2]"#).unwrap();
        assert_eq!(v.as_map().unwrap()["b"], Value::Int(2));
        let err = parse(json!({"header": "a,b,c"}), r#"["x", 2]"#).unwrap_err();
        assert!(err.contains("wrong number of fields"), "{err}");
    }

    #[test]
    fn bad_input_is_an_error() {
        for body in ["[[1]]", "{\"a\":1}", "[1,", "3", "[1] x", ""] {
            assert!(parse(json!({}), body).is_err(), "{body}");
        }
    }

    #[test]
    fn escaping_only_touches_strings() {
        assert_eq!(
            escape_controls("[\n\"a\tb\\\"\n\"]"),
            "[\n\"a\\u0009b\\\"\\u000a\"]"
        );
        assert!(matches!(escape_controls("[1, 2]"), Cow::Borrowed(_)));
    }
}
