//! `unquote` (stanza.md §6): Go's `strconv.Unquote` on a string field. Accepted: `"…"` with
//! Go escapes, `` `…` `` raw (carriage returns dropped), and `'x'` holding exactly one
//! character. Anything else is an error (Go's "invalid syntax"); a missing field is left
//! alone. Escapes such as `\xff` can spell bytes that are not UTF-8, which a Rust string
//! cannot hold: each run of them becomes U+FFFD.

use super::Built;
use super::sanitize::to_valid_utf8;
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnquoteConfig {
    #[serde(default = "Field::body")]
    field: Field,
}

struct Unquote {
    field: Field,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Built {
    let cfg: UnquoteConfig = crate::config::from_block(block)?;
    Ok(Box::new(Unquote { field: cfg.field }))
}

impl Operator for Unquote {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let text = match self.field.get(entry) {
            None => return Ok(()),
            Some(Value::Str(s)) => unquote(s).ok_or_else(|| {
                ProcessError::Invalid(format!("cannot unquote {s:?}: invalid syntax"))
            })?,
            Some(other) => {
                return Err(ProcessError::WrongType {
                    what: "a quoted string",
                    got: other.type_name(),
                });
            }
        };
        self.field.set(entry, Value::Str(text.into()))?;
        Ok(())
    }
}

/// Go's `strconv.Unquote`; `None` is its `ErrSyntax`.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let (&quote, rest) = bytes.split_first()?;
    let inner = rest.strip_suffix(&[quote])?;
    match quote {
        b'`' => {
            if inner.contains(&b'`') {
                return None;
            }
            Some(s[1..s.len() - 1].replace('\r', ""))
        }
        b'"' | b'\'' => {
            let mut out = Vec::with_capacity(inner.len());
            let mut rest = &s[1..s.len() - 1];
            let mut chars = 0;
            while !rest.is_empty() {
                if rest.starts_with('\n') {
                    return None;
                }
                rest = unquote_char(rest, quote, &mut out)?;
                chars += 1;
            }
            if quote == b'\'' && chars != 1 {
                return None;
            }
            Some(match String::from_utf8(out) {
                Ok(text) => text,
                Err(e) => to_valid_utf8(e.as_bytes()),
            })
        }
        _ => None,
    }
}

/// Go's `strconv.UnquoteChar`: decodes the first character or escape of `s` into `out` and
/// returns the rest.
fn unquote_char<'s>(s: &'s str, quote: u8, out: &mut Vec<u8>) -> Option<&'s str> {
    let c = s.chars().next()?;
    if c != '\\' {
        if c.is_ascii() && c as u8 == quote {
            return None;
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        return Some(&s[c.len_utf8()..]);
    }
    let b = s.as_bytes();
    let escape = *b.get(1)?;
    let rest = &s[2..];
    let simple = match escape {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        b'\'' | b'"' if escape == quote => Some(escape),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Some(rest);
    }
    match escape {
        b'x' | b'u' | b'U' => {
            let len = match escape {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..len)?;
            let value = u32::from_str_radix(digits, 16).ok()?;
            // `from_str_radix` accepts a leading `+`; Go does not.
            if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                return None;
            }
            if escape == b'x' {
                // A single byte, which need not be valid UTF-8 on its own.
                out.push(u8::try_from(value).ok()?);
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice(char::from_u32(value)?.encode_utf8(&mut buf).as_bytes());
            }
            Some(&rest[len..])
        }
        b'0'..=b'7' => {
            let digits = s.get(1..4)?;
            if !digits.bytes().all(|d| (b'0'..=b'7').contains(&d)) {
                return None;
            }
            out.push(u8::try_from(u32::from_str_radix(digits, 8).ok()?).ok()?);
            Some(&s[4..])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_unquote_rules() {
        for (input, want) in [
            (r#""val""#, Some("val")),
            (
                r#""a\tb\"c\\d\x41\101\u00e9\U0001F600""#,
                Some("a\tb\"c\\dAAé😀"),
            ),
            ("'v'", Some("v")),
            ("'é'", Some("é")),
            (r"'\''", Some("'")),
            ("`raw\\n\r`", Some("raw\\n")),
            ("'val'", None),
            ("val", None),
            ("\"", None),
            (r#""a"b""#, None),
            (r#""\'""#, None),
            ("\"a\nb\"", None),
            (r#""\400""#, None),
            (r#""\ud800""#, None),
            (r#""\x+1""#, None),
            ("``x`", None),
            ("''", None),
        ] {
            assert_eq!(unquote(input).as_deref(), want, "{input}");
        }
        assert_eq!(unquote(r#""\xff""#).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn operator_leaves_missing_fields_and_fails_on_others() {
        let Json::Object(m) = serde_json::json!({"field": "attributes.q"}) else {
            unreachable!()
        };
        let mut op = build(m).unwrap();
        op.apply(&mut Entry::default()).unwrap();
        let mut e = Entry::default();
        e.attributes.insert("q".into(), "\"x\"".into());
        op.apply(&mut e).unwrap();
        assert_eq!(e.attributes["q"], Value::from("x"));
        e.attributes.insert("q".into(), Value::Int(1));
        assert!(op.apply(&mut e).is_err());
    }
}
