//! `json_parser` (stanza.md §5.2): a string holding a JSON object becomes a map. Numbers are
//! doubles unless `parse_ints: true` keeps integral ones as ints. The text is parsed straight
//! into `Value`, with no intermediate tree.

use super::{Parse, ParserOp, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::Value;
use centimane_core::value::NumberMode;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Entry;
    use serde_json::json;

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
        assert_eq!(e.attributes["a"], Value::Array(vec![Value::Double(2.0)]));
        let (r, e) = run(
            json!({"parse_ints": true}),
            r#"{"i":1,"f":1.5,"a":[2]}"#.into(),
        );
        r.unwrap();
        assert_eq!(e.attributes["i"], Value::Int(1));
        assert_eq!(e.attributes["f"], Value::Double(1.5));
        assert_eq!(e.attributes["a"], Value::Array(vec![Value::Int(2)]));
    }

    #[test]
    fn bad_input_is_an_error_and_leaves_the_entry() {
        for body in [
            Value::from("not json"),
            Value::from(r#"{"a":"#),
            Value::from("[1,2]"),
            Value::from("3"),
            Value::from(r#"{"a":1} trailing"#),
            Value::Bytes(b"{}".to_vec()),
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

    #[test]
    fn unknown_keys_are_refused() {
        let Json::Object(map) = json!({"parse_form": "body"}) else {
            unreachable!()
        };
        let err = build(map).err().unwrap();
        assert!(err.contains("unknown field `parse_form`"), "{err}");
    }
}
