//! `sanitize_utf8` (stanza.md §6): replaces each maximal run of invalid UTF-8 bytes with one
//! U+FFFD, as Go's `strings.ToValidUTF8` does.
//!
//! A `Value::Str` is always valid UTF-8 (Rust strings are), so it passes unchanged. Text that
//! Go would carry as a string with invalid bytes arrives here as `Value::Bytes` (for example
//! from a receiver reading raw bytes); that is the one case with work to do, and it becomes a
//! string. Any other type is an error; a missing field is left alone.

use super::Built;
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SanitizeConfig {
    #[serde(default = "Field::body")]
    field: Field,
}

struct Sanitize {
    field: Field,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Built {
    let cfg: SanitizeConfig = crate::config::from_block(block)?;
    Ok(Box::new(Sanitize { field: cfg.field }))
}

/// `bytes` as UTF-8, each maximal run of invalid bytes replaced by one U+FFFD.
pub(crate) fn to_valid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut in_invalid_run = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(chunk.valid());
            in_invalid_run = false;
        }
        if !chunk.invalid().is_empty() && !in_invalid_run {
            out.push(char::REPLACEMENT_CHARACTER);
            in_invalid_run = true;
        }
    }
    out
}

impl Operator for Sanitize {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let text = match self.field.get(entry) {
            None | Some(Value::Str(_)) => return Ok(()),
            Some(Value::Bytes(bytes)) => to_valid_utf8(bytes),
            Some(other) => {
                return Err(ProcessError::WrongType {
                    what: "a string to sanitize",
                    got: other.type_name(),
                });
            }
        };
        self.field.set(entry, Value::Str(text.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_of_invalid_bytes_become_one_marker() {
        assert_eq!(to_valid_utf8(b"ok \xfe"), "ok \u{fffd}");
        assert_eq!(to_valid_utf8(b"ok \xfe\xfe\xc3"), "ok \u{fffd}");
        assert_eq!(to_valid_utf8(b"\xffa\xffb"), "\u{fffd}a\u{fffd}b");
        assert_eq!(to_valid_utf8("é".as_bytes()), "é");
    }

    #[test]
    fn bytes_become_strings_and_other_types_fail() {
        let Json::Object(m) = json!({}) else {
            unreachable!()
        };
        let mut op = build(m).unwrap();
        let mut e = Entry::new(Value::Bytes(b"a\xff".as_slice().into()));
        op.apply(&mut e).unwrap();
        assert_eq!(e.body, Value::from("a\u{fffd}"));
        let mut e = Entry::new(Value::Map(Default::default()));
        assert!(op.apply(&mut e).is_err());
        let mut e = Entry::new("fine".into());
        op.apply(&mut e).unwrap();
        assert_eq!(e.body, Value::from("fine"));
    }
}
