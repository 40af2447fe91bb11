//! `csv_parser` (stanza.md §5.4): a delimited line becomes a map from header names to
//! strings. The header is static (`header`) or read per entry from an attribute
//! (`header_attribute`). Values are read with Go's `encoding/csv` rules ([`reader`]); a
//! value that spans several lines is stitched back together the way Stanza does: each
//! further line continues the last field of the line before. `ignore_quotes` splits on the
//! delimiter with no quote handling.

mod reader;

use super::{Parse, ParserBase, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Map, Text, Value};
use reader::{Reader, Record};
use serde_json::{Map as JsonMap, Value as Json};

parser_config!(CsvConfig {
    header: Option<String>,
    header_attribute: Option<String>,
    delimiter: Option<String>,
    header_delimiter: Option<String>,
    #[serde(default)]
    lazy_quotes: bool,
    #[serde(default)]
    ignore_quotes: bool,
});

/// How a line is cut into fields.
#[derive(Debug, Clone, Copy)]
struct Splitter {
    delimiter: char,
    lazy_quotes: bool,
    ignore_quotes: bool,
}

enum Header {
    Static(Vec<String>),
    /// The attribute holding the header, split on `delimiter` per entry.
    Attribute {
        name: String,
        delimiter: char,
    },
}

struct CsvParser {
    base: ParserBase,
    header: Header,
    splitter: Splitter,
}

/// The one character of a delimiter setting.
fn single_char(key: &str, text: &str) -> Result<char, String> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!("`{key}`: {text:?} must be exactly one character")),
    }
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: CsvConfig = crate::config::from_block(block)?;
    let delimiter = single_char("delimiter", cfg.delimiter.as_deref().unwrap_or(","))?;
    if !reader::valid_delimiter(delimiter) {
        return Err(format!("`delimiter`: {delimiter:?} cannot separate fields"));
    }
    let header_delimiter = match cfg.header_delimiter.as_deref() {
        Some(d) => single_char("header_delimiter", d)?,
        None => delimiter,
    };
    if cfg.lazy_quotes && cfg.ignore_quotes {
        return Err("only one of `lazy_quotes` and `ignore_quotes` can be true".to_owned());
    }
    let header = match (cfg.header.take(), cfg.header_attribute.take()) {
        (Some(header), None) => {
            if !header.contains(header_delimiter) {
                return Err(format!(
                    "`header`: missing field delimiter {header_delimiter:?} in header"
                ));
            }
            Header::Static(header.split(header_delimiter).map(str::to_owned).collect())
        }
        (None, Some(name)) => Header::Attribute {
            name,
            delimiter: header_delimiter,
        },
        (Some(_), Some(_)) => {
            return Err("set only one of `header` and `header_attribute`".to_owned());
        }
        (None, None) => return Err("set one of `header` and `header_attribute`".to_owned()),
    };
    Ok(Box::new(CsvParser {
        base: cfg.base()?,
        header,
        splitter: Splitter {
            delimiter,
            lazy_quotes: cfg.lazy_quotes,
            ignore_quotes: cfg.ignore_quotes,
        },
    }))
}

impl Splitter {
    /// The fields of `line`.
    fn fields(self, line: &str) -> Result<Vec<String>, ProcessError> {
        if self.ignore_quotes {
            return Ok(line.split(self.delimiter).map(str::to_owned).collect());
        }
        let mut reader = Reader::new(line, self.delimiter, self.lazy_quotes);
        let mut joined: Option<Vec<String>> = None;
        while let Record::Fields { fields, complete } = reader.read() {
            if fields.is_empty() && !complete {
                return Err(ProcessError::Invalid(
                    "read csv line: misplaced quote".to_owned(),
                ));
            }
            let mut fields = fields.into_iter();
            match &mut joined {
                None => joined = Some(fields.collect()),
                Some(joined) => {
                    // The first field of a further line continues the last field so far.
                    if let (Some(last), Some(first)) = (joined.last_mut(), fields.next()) {
                        last.push('\n');
                        last.push_str(&first);
                    }
                    joined.extend(fields);
                }
            }
        }
        joined.ok_or_else(|| ProcessError::Invalid("no csv lines found".to_owned()))
    }
}

/// Pairs header names with fields.
fn zip(header: &[String], fields: Vec<String>) -> Result<Value, ProcessError> {
    if header.len() != fields.len() {
        return Err(ProcessError::Invalid(format!(
            "wrong number of fields: expected {}, found {}",
            header.len(),
            fields.len()
        )));
    }
    let map: Map = header
        .iter()
        .map(|h| Text::from(h.as_str()))
        .zip(fields.into_iter().map(Value::from))
        .collect();
    Ok(Value::Map(Box::new(map)))
}

/// The text of a csv value: a string, or bytes read as text.
fn text(value: &Value) -> Result<std::borrow::Cow<'_, str>, ProcessError> {
    match value {
        Value::Str(s) => Ok(s.as_str().into()),
        Value::Bytes(b) => Ok(String::from_utf8_lossy(b)),
        other => Err(ProcessError::WrongType {
            what: "csv",
            got: other.type_name(),
        }),
    }
}

/// The parse step with the header already known.
struct WithHeader<'h> {
    header: &'h [String],
    splitter: Splitter,
}

impl Parse for WithHeader<'_> {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let fields = self.splitter.fields(&text(value)?)?;
        zip(self.header, fields)
    }
}

impl Operator for CsvParser {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let dynamic;
        let header = match &self.header {
            Header::Static(header) => header.as_slice(),
            Header::Attribute { name, delimiter } => match entry.attributes.get(name.as_str()) {
                Some(Value::Str(h)) => {
                    dynamic = h.split(*delimiter).map(str::to_owned).collect::<Vec<_>>();
                    dynamic.as_slice()
                }
                // Stanza fails here before its `on_error` handling: the entry is not
                // forwarded, whatever `on_error` says.
                Some(other) => {
                    return Err(ProcessError::Discard(format!(
                        "header attribute {name} is a {}, not a string",
                        other.type_name()
                    )));
                }
                None => {
                    return Err(ProcessError::Discard(format!(
                        "failed to read dynamic header attribute {name}"
                    )));
                }
            },
        };
        let mut step = WithHeader {
            header,
            splitter: self.splitter,
        };
        self.base.apply_with(&mut step, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn op(cfg: Json) -> Result<Box<dyn Operator>, String> {
        let Json::Object(m) = cfg else {
            panic!("object")
        };
        build(m)
    }

    fn parse(cfg: Json, body: &str) -> Result<Map, String> {
        let mut e = Entry::new(body.into());
        op(cfg)?.apply(&mut e).map_err(|e| e.to_string())?;
        Ok(e.attributes)
    }

    fn values(m: &Map) -> Vec<&str> {
        m.values().filter_map(Value::as_str).collect()
    }

    #[test]
    fn multiline_values_are_stitched() {
        let cfg = json!({"header": "A,B,C,D,E"});
        let m = parse(cfg.clone(), "aa\n\naa,bbbb,c\n\nccc,dddd,eee\n\ne").unwrap();
        assert_eq!(values(&m), ["aa\naa", "bbbb", "c\nccc", "dddd", "eee\ne"]);
        let m = parse(cfg.clone(), "aaaa,\nbbbb,\ncccc,\ndddd,eeee").unwrap();
        assert_eq!(values(&m), ["aaaa", "\nbbbb", "\ncccc", "\ndddd", "eeee"]);
        let m = parse(cfg, "a,\"\"\"b\"\"\",\"c\nc\",d,e").unwrap();
        assert_eq!(values(&m), ["a", "\"b\"", "c\nc", "d", "e"]);
    }

    #[test]
    fn field_count_must_match() {
        let err = parse(json!({"header": "a,b"}), "x:y").unwrap_err();
        assert!(
            err.contains("wrong number of fields: expected 2, found 1"),
            "{err}"
        );
        let err = parse(json!({"header": "a,b"}), "").unwrap_err();
        assert!(err.contains("no csv lines"), "{err}");
    }

    #[test]
    fn ignore_quotes_splits_plainly() {
        let m = parse(
            json!({"header": "a,b,c", "ignore_quotes": true}),
            "x,\"y,z\"",
        )
        .unwrap();
        assert_eq!(values(&m), ["x", "\"y", "z\""]);
    }

    #[test]
    fn header_attribute_is_read_per_entry() {
        let mut p = op(json!({"header_attribute": "h", "header_delimiter": "|"})).unwrap();
        let mut e = Entry::new("1,2".into());
        e.attributes.insert("h".into(), "x|y".into());
        p.apply(&mut e).unwrap();
        assert_eq!(e.attributes["y"], Value::from("2"));
        let mut e = Entry::new("1,2".into());
        assert!(matches!(p.apply(&mut e), Err(ProcessError::Discard(_))));
    }

    #[test]
    fn config_errors() {
        for cfg in [
            json!({}),
            json!({"header": "a"}),
            json!({"header": "a,b", "header_attribute": "h"}),
            json!({"header": "a,b", "delimiter": ",,"}),
            json!({"header": "a\"b", "delimiter": "\""}),
            json!({"header": "a,b", "lazy_quotes": true, "ignore_quotes": true}),
            json!({"header": "a,b", "header_delimiter": ""}),
        ] {
            assert!(op(cfg.clone()).is_err(), "{cfg}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(
            line in "[a-c,\"\r\n ]{0,40}",
            lazy in any::<bool>(),
            ignore in any::<bool>(),
            delimiter in "[,;|\t→]",
        ) {
            let cfg = json!({"header": format!("x{delimiter}y"), "delimiter": delimiter,
                "lazy_quotes": lazy && !ignore, "ignore_quotes": ignore});
            let _ = parse(cfg, &line);
        }

        #[test]
        fn quoted_fields_round_trip(fields in proptest::collection::vec("[a-z,\"\n ]{0,8}", 1..6)) {
            let line = fields
                .iter()
                .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(",");
            let header = (0..fields.len()).map(|i| format!("h{i}")).collect::<Vec<_>>().join(",");
            let header = if fields.len() == 1 { format!("{header},") } else { header };
            let cfg = json!({"header": header});
            let result = parse(cfg, &line);
            if fields.len() > 1 {
                let m = result.unwrap();
                prop_assert_eq!(values(&m), fields.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
}
