//! `key_value_parser` (stanza.md §5.5): `k=v k2="v 2"` becomes a map of strings. The text
//! is split into pairs on `pair_delimiter` outside quotes, with Stanza's quote and escape
//! rules (quote characters that open or close a quoted section are dropped; a backslash
//! escapes the next character); each pair is split on its first `delimiter`, and key and
//! value are whitespace-trimmed. The last duplicate key wins. A pair without the delimiter
//! fails the whole entry.

use super::{Parse, ParserOp, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::Value;
use serde_json::{Map as JsonMap, Value as Json};

parser_config!(KeyValueConfig {
    delimiter: Option<String>,
    pair_delimiter: Option<String>,
});

pub(crate) struct KeyValueParser {
    delimiter: String,
    pair_delimiter: String,
    /// The pairs of the current value, kept to reuse the allocation.
    pairs: Vec<String>,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: KeyValueConfig = crate::config::from_block(block)?;
    let delimiter = cfg.delimiter.take().unwrap_or_else(|| "=".to_owned());
    // An empty pair delimiter means the default, as in Stanza.
    let pair_delimiter = cfg
        .pair_delimiter
        .take()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| " ".to_owned());
    if delimiter.is_empty() {
        return Err("`delimiter` must not be empty".to_owned());
    }
    if delimiter == pair_delimiter {
        return Err(format!(
            "`delimiter` and `pair_delimiter` are both `{delimiter}`; they must differ"
        ));
    }
    let parser = KeyValueParser {
        delimiter,
        pair_delimiter,
        pairs: Vec::new(),
    };
    Ok(Box::new(ParserOp::new(cfg.base()?, parser)))
}

/// Stanza's `SplitString`: splits `input` on `delimiter` outside quotes into `out`, dropping
/// empty items. Quote characters that open or close a quoted section are removed; a
/// backslash escapes the next character (and is kept unless that character is the current
/// quote or another backslash).
pub(crate) fn split_pairs(
    input: &str,
    delimiter: &str,
    out: &mut Vec<String>,
) -> Result<(), String> {
    out.clear();
    let bytes = input.as_bytes();
    let delim = delimiter.as_bytes();
    let mut current: Vec<u8> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut i = 0;
    // Only ASCII bytes are ever dropped or inserted, and the delimiter (valid UTF-8) can only
    // match at character boundaries, so every item stays valid UTF-8.
    let finish = |current: &mut Vec<u8>, out: &mut Vec<String>| {
        let item = std::mem::take(current);
        out.push(
            String::from_utf8(item)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        );
    };
    while i < bytes.len() {
        let b = bytes[i];
        if quote.is_none() && bytes[i..].starts_with(delim) {
            if !current.is_empty() {
                finish(&mut current, out);
            }
            i += delim.len();
            continue;
        }
        if !escaped {
            match (quote, b) {
                (None, b'"' | b'\'') => {
                    quote = Some(b);
                    i += 1;
                    continue;
                }
                (Some(q), _) if q == b => {
                    quote = None;
                    i += 1;
                    continue;
                }
                (_, b'\\') => {
                    escaped = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        } else {
            if Some(b) != quote && b != b'\\' {
                current.push(b'\\');
            }
            escaped = false;
        }
        current.push(b);
        i += 1;
    }
    if escaped {
        return Err("found a trailing escape character".to_owned());
    }
    if quote.is_some() {
        return Err("never reached the end of a quoted value".to_owned());
    }
    if !current.is_empty() {
        finish(&mut current, out);
    }
    Ok(())
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
            return Err(ProcessError::Invalid(
                "parse from field is empty".to_owned(),
            ));
        }
        split_pairs(text, &self.pair_delimiter, &mut self.pairs)
            .map_err(|e| ProcessError::Invalid(format!("failed to parse pairs from input: {e}")))?;
        let mut map = centimane_core::Map::with_capacity(self.pairs.len());
        let mut errors = Vec::new();
        for pair in &self.pairs {
            match pair.split_once(self.delimiter.as_str()) {
                Some((key, val)) => {
                    map.insert(key.trim().into(), Value::Str(val.trim().into()));
                }
                None => errors.push(format!("cannot split {pair:?} into 2 items, got 1 item(s)")),
            }
        }
        if !errors.is_empty() {
            return Err(ProcessError::Invalid(errors.join("; ")));
        }
        Ok(Value::Map(Box::new(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::{Entry, Map};
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
                "cannot split \"b\" into 2 items, got 1 item(s)",
            ),
            (Value::from(""), "empty"),
            (Value::from("a=\"open"), "quoted value"),
            (Value::from("a=b\\"), "trailing escape"),
            (Value::Int(1), "cannot be parsed"),
        ] {
            let err = parse(json!({}), text).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn delimiters_must_differ_and_not_be_empty() {
        for cfg in [json!({"delimiter": " "}), json!({"delimiter": ""})] {
            assert!(parse(cfg, "a=b".into()).is_err());
        }
        let m = parse(json!({"pair_delimiter": ""}), "a=b c=d".into()).unwrap();
        assert_eq!(m.len(), 2, "an empty pair delimiter is the default space");
    }

    #[test]
    fn quotes_are_removed_while_splitting() {
        let m = parse(json!({}), r#"" name "=" v " c='a "b c"' é=ü"#.into()).unwrap();
        assert_eq!(m["name"], Value::from("v"));
        assert_eq!(m["c"], Value::from(r#"a "b c""#));
        assert_eq!(m["é"], Value::from("ü"));
        let mut out = Vec::new();
        split_pairs(r#"a\ b "x\"y" \q"#, " ", &mut out).unwrap();
        assert_eq!(out, ["a", r"\b", r#"x"y"#, r"\q"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            text in "[a-c=\"' \\\\|é:]{0,30}",
            delimiter in "(=|:|==|é)",
            pair_delimiter in "( |\\||,|ab)",
        ) {
            if delimiter != pair_delimiter {
                let _ = parse(json!({"delimiter": delimiter, "pair_delimiter": pair_delimiter}), text.into());
            }
        }
    }
}
