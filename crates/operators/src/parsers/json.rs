//! `json_parser` (stanza.md §5.2): a string holding a JSON object becomes a map. Numbers are
//! doubles unless `parse_ints: true` keeps integral ones as ints. The text is parsed straight
//! into `Value`, with no intermediate tree.

use super::{Parse, ParserOp, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::value::{JsonObjectError, NumberMode};
use centimane_core::{Map, Value};
use serde_json::{Map as JsonMap, Value as Json};

parser_config!(JsonConfig {
    #[serde(default)]
    parse_ints: bool,
});

pub(crate) struct JsonParser {
    numbers: NumberMode,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: JsonConfig = crate::config::from_block(block)?;
    let numbers = if cfg.parse_ints {
        NumberMode::IntsWhenIntegral
    } else {
        NumberMode::AllDouble
    };
    Ok(Box::new(ParserOp::new(cfg.base()?, JsonParser { numbers })))
}

impl Parse for JsonParser {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let Value::Str(text) = value else {
            return Err(ProcessError::WrongType {
                what: "JSON",
                got: value.type_name(),
            });
        };
        match Value::from_json_str(text, self.numbers)? {
            map @ Value::Map(_) => Ok(map),
            other => Err(ProcessError::JsonNotObject(other.type_name())),
        }
    }

    fn parse_into(&mut self, value: &Value, into: &mut Map) -> Option<Result<(), ProcessError>> {
        let Value::Str(text) = value else {
            return Some(self.parse(value).map(drop));
        };
        Some(
            into.merge_json_object(text, self.numbers)
                .map_err(|e| match e {
                    JsonObjectError::Json(e) => ProcessError::Json(e),
                    JsonObjectError::NotObject(type_name) => ProcessError::JsonNotObject(type_name),
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::{Entry, Field};
    use serde_json::json;
    use std::str::FromStr;

    fn run(cfg: Json, body: Value) -> (Result<(), ProcessError>, Entry) {
        let Json::Object(map) = cfg else {
            panic!("object")
        };
        let mut op = build(map).unwrap();
        let mut e = Entry {
            body,
            ..Entry::default()
        };
        (op.apply(&mut e), e)
    }

    #[test]
    fn numbers_follow_parse_ints() {
        let (r, e) = run(json!({}), r#"{"i":1,"f":1.5,"a":[2]}"#.into());
        r.unwrap();
        assert_eq!(e.attributes["i"], Value::Double(1.0));
        assert_eq!(
            e.attributes["a"],
            Value::Array(Box::new(vec![Value::Double(2.0)]))
        );
        let (r, e) = run(
            json!({"parse_ints": true}),
            r#"{"i":1,"f":1.5,"a":[2]}"#.into(),
        );
        r.unwrap();
        assert_eq!(e.attributes["i"], Value::Int(1));
        assert_eq!(e.attributes["f"], Value::Double(1.5));
        assert_eq!(
            e.attributes["a"],
            Value::Array(Box::new(vec![Value::Int(2)]))
        );
    }

    #[test]
    fn bad_input_is_an_error_and_leaves_the_entry() {
        for body in [
            Value::from("not json"),
            Value::from(r#"{"a":"#),
            Value::from("[1,2]"),
            Value::from("3"),
            Value::from(r#"{"a":1} trailing"#),
            Value::Bytes(b"{}".as_slice().into()),
            Value::Int(1),
            Value::Null,
        ] {
            let (r, e) = run(json!({}), body.clone());
            assert!(r.is_err(), "{body:?}");
            assert_eq!(e.body, body);
            assert!(e.attributes.is_empty());
        }
        let (r, _) = run(
            json!({"parse_from": "body.missing"}),
            Value::Map(Default::default()),
        );
        assert!(matches!(r, Err(ProcessError::MissingField(_))));
    }

    /// Parsed straight into the attributes (`parse_into`), the result is what setting the
    /// parsed map there gives: existing keys keep their place and take the new value, a
    /// repeated key its last value; a failed parse leaves them as they were.
    #[test]
    fn parsing_into_attributes_merges_as_setting_the_map_would() {
        let mut op = build(JsonMap::new()).unwrap();
        let via_set = Field::from_str("attributes").unwrap();
        for text in [
            r#"{"a":1,"log.file.name":"x","b":{"c":2},"a":3}"#,
            r#"{"level":"info","msg":"m"}"#,
            r#"{"level":"info","msg":"m"}"#,
            r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"log.file.name":"y"}"#,
            r#"{"a": 1, "a": "#,
            "[1]",
        ] {
            let mut e = Entry::new(Value::from(text));
            e.attributes
                .insert("log.file.name".into(), Value::from("f"));
            e.attributes.insert("keep".into(), Value::Int(0));
            let mut want = e.clone();
            let parsed = JsonParser {
                numbers: NumberMode::AllDouble,
            }
            .parse(&want.body);
            let r = op.apply(&mut e);
            match parsed {
                Ok(parsed) => {
                    via_set.set(&mut want, parsed).unwrap();
                    r.unwrap();
                }
                Err(_) => assert!(r.is_err(), "{text}"),
            }
            let keys = |e: &Entry| e.attributes.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(&e), keys(&want), "{text}");
            assert_eq!(e.attributes, want.attributes, "{text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let Json::Object(map) = json!({"parse_form": "body"}) else {
            unreachable!()
        };
        let err = build(map).err().unwrap();
        assert!(err.contains("unknown field `parse_form`"), "{err}");
    }
}
