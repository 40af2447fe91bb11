//! `key_value_parser` (stanza.md §5.5): `k=v k2="v 2"` becomes a map of strings. Pairs are
//! split on `pair_delimiter` outside quotes; each pair on its first `delimiter`; keys and
//! values are trimmed and lose one surrounding pair of matching quotes. The last duplicate
//! key wins.

use super::{Parse, ParserOp, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Map, Value};
use serde_json::{Map as JsonMap, Value as Json};

parser_config!(KeyValueConfig {
    delimiter: Option<String>,
    pair_delimiter: Option<String>,
});

pub(crate) struct KeyValueParser {
    delimiter: String,
    pair_delimiter: String,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: KeyValueConfig = crate::config::from_block(block)?;
    let delimiter = cfg.delimiter.take().unwrap_or_else(|| "=".to_owned());
    let pair_delimiter = cfg.pair_delimiter.take().unwrap_or_else(|| " ".to_owned());
    if delimiter.is_empty() {
        return Err("`delimiter` must not be empty".to_owned());
    }
    if pair_delimiter.is_empty() {
        return Err("`pair_delimiter` must not be empty".to_owned());
    }
    if delimiter == pair_delimiter {
        return Err(format!(
            "`delimiter` and `pair_delimiter` are both `{delimiter}`; they must differ"
        ));
    }
    let parser = KeyValueParser {
        delimiter,
        pair_delimiter,
    };
    Ok(Box::new(ParserOp::new(cfg.base()?, parser)))
}

/// Removes one pair of matching surrounding quotes.
fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

impl KeyValueParser {
    /// The pairs of `text`: split on the pair delimiter outside quotes, empty items skipped.
    fn pairs<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, ProcessError> {
        let mut pairs = Vec::new();
        let mut quote: Option<char> = None;
        let mut start = 0;
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if quote.is_none() && rest.starts_with(&self.pair_delimiter) {
                if i > start {
                    pairs.push(&text[start..i]);
                }
                i += self.pair_delimiter.len();
                start = i;
                continue;
            }
            let c = rest.chars().next().unwrap_or_default();
            match quote {
                None if c == '"' || c == '\'' => quote = Some(c),
                Some(q) if q == c => quote = None,
                _ => {}
            }
            i += c.len_utf8();
        }
        if quote.is_some() {
            return Err(ProcessError::KeyValue(
                "never reached the end of a quoted value".to_owned(),
            ));
        }
        if start < text.len() {
            pairs.push(&text[start..]);
        }
        Ok(pairs)
    }
}

impl Parse for KeyValueParser {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let Value::Str(text) = value else {
            return Err(ProcessError::WrongType {
                what: "key value pairs",
                got: value.type_name(),
            });
        };
        if text.is_empty() {
            return Err(ProcessError::KeyValue(
                "parse from field is empty".to_owned(),
            ));
        }
        let mut map = Map::new();
        for pair in self.pairs(text)? {
            let (key, val) = pair.split_once(self.delimiter.as_str()).ok_or_else(|| {
                ProcessError::KeyValue(format!("cannot split '{pair}' into 2 items, got 1 item(s)"))
            })?;
            let key = unquote(key.trim());
            let val = unquote(val.trim());
            map.insert(key.to_owned(), Value::Str(val.to_owned()));
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Entry;
    use serde_json::json;

    fn parse(cfg: Json, text: Value) -> Result<Map, String> {
        let Json::Object(map) = cfg else {
            panic!("object")
        };
        let mut op = build(map)?;
        let mut e = Entry {
            body: text,
            ..Entry::default()
        };
        op.apply(&mut e).map_err(|e| e.to_string())?;
        Ok(e.attributes)
    }

    #[test]
    fn pairs_quotes_and_duplicates() {
        let m = parse(json!({}), r#"a=1  b="two words" 'c d'=x a=3"#.into()).unwrap();
        assert_eq!(m["a"], Value::from("3"));
        assert_eq!(m["b"], Value::from("two words"));
        assert_eq!(m["c d"], Value::from("x"));
        assert_eq!(m.len(), 3);
        let m = parse(
            json!({"delimiter": ":", "pair_delimiter": "|"}),
            "k: v|x:y:z".into(),
        )
        .unwrap();
        assert_eq!(m["k"], Value::from("v"));
        assert_eq!(m["x"], Value::from("y:z"), "split on the first delimiter");
    }

    #[test]
    fn bad_input_is_an_error() {
        for (text, needle) in [
            (
                Value::from("a=1 b"),
                "cannot split 'b' into 2 items, got 1 item(s)",
            ),
            (Value::from(""), "empty"),
            (Value::from("a=\"open"), "quoted value"),
            (Value::Int(1), "cannot be parsed"),
        ] {
            let err = parse(json!({}), text).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn delimiters_must_differ_and_not_be_empty() {
        for cfg in [
            json!({"delimiter": " "}),
            json!({"delimiter": ""}),
            json!({"pair_delimiter": ""}),
        ] {
            assert!(parse(cfg, "a=b".into()).is_err());
        }
    }
}
