//! `regex_replace` and `strip_ansi_escape_codes` (stanza.md §6): replace every match of a
//! regex in a string field. `replace_with` takes Go-style `$1` / `${name}` references (the
//! regex crate expands them the same way, longest name first). A missing field is left
//! alone; a non-string field is an error. The regex is compiled once, when the chain is built.

use super::Built;
use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};
use std::borrow::Cow;

/// `regex_name: ansi_control_sequences`, and what `strip_ansi_escape_codes` removes.
const ANSI_CONTROL_SEQUENCES: &str = r"\x1B\[[\x30-\x3F]*[\x20-\x2F]*[\x40-\x7E]";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexReplaceConfig {
    #[serde(default = "Field::body")]
    field: Field,
    regex: Option<String>,
    regex_name: Option<String>,
    #[serde(default)]
    replace_with: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StripAnsiConfig {
    field: Field,
}

struct Replace {
    field: Field,
    regex: Regex,
    replace_with: String,
    /// How a non-string value is reported (the two operators word it differently).
    what: &'static str,
}

pub(crate) fn build_regex_replace(block: JsonMap<String, Json>) -> Built {
    let cfg: RegexReplaceConfig = crate::config::from_block(block)?;
    let pattern = match (cfg.regex.as_deref(), cfg.regex_name.as_deref()) {
        (Some(regex), None) => regex,
        (None, Some("ansi_control_sequences")) => ANSI_CONTROL_SEQUENCES,
        (None, Some(other)) => {
            return Err(format!(
                "`regex_name`: unknown name `{other}` (known: ansi_control_sequences)"
            ));
        }
        _ => return Err("set exactly one of `regex` and `regex_name`".to_owned()),
    };
    let regex = crate::go_regex::compile(pattern).map_err(|e| format!("`regex`: {e}"))?;
    Ok(Box::new(Replace {
        field: cfg.field,
        regex,
        replace_with: cfg.replace_with,
        what: "a string to replace in",
    }))
}

pub(crate) fn build_strip_ansi(block: JsonMap<String, Json>) -> Built {
    let cfg: StripAnsiConfig = crate::config::from_block(block)?;
    let regex = crate::go_regex::compile(ANSI_CONTROL_SEQUENCES).map_err(|e| e.to_string())?;
    Ok(Box::new(Replace {
        field: cfg.field,
        regex,
        replace_with: String::new(),
        what: "a string to strip",
    }))
}

impl Operator for Replace {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let replaced = match self.field.get(entry) {
            None => return Ok(()),
            Some(Value::Str(text)) => match self.regex.replace_all(text, &self.replace_with) {
                // Nothing matched: leave the value as it is, without a copy.
                Cow::Borrowed(_) => return Ok(()),
                Cow::Owned(new) => new,
            },
            Some(other) => {
                return Err(ProcessError::WrongType {
                    what: self.what,
                    got: other.type_name(),
                });
            }
        };
        self.field.set(entry, Value::Str(replaced.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(build: fn(JsonMap<String, Json>) -> Built, cfg: Json, body: Value) -> Entry {
        let Json::Object(m) = cfg else {
            panic!("object")
        };
        let mut e = Entry::new(body);
        let _ = build(m).unwrap().apply(&mut e);
        e
    }

    #[test]
    fn replaces_with_group_references() {
        let cfg = json!({"regex": "\\{(?P<c>.)\\}", "replace_with": "<${c}$1>"});
        let e = run(build_regex_replace, cfg, "{a}{b}".into());
        assert_eq!(e.body, Value::from("<aa><bb>"));
        let cfg = json!({"regex": "_+", "replace_with": ","});
        assert_eq!(
            run(build_regex_replace, cfg, "a__b".into()).body,
            "a,b".into()
        );
    }

    #[test]
    fn strips_ansi_sequences() {
        let e = run(
            build_strip_ansi,
            json!({"field": "body"}),
            "x\u{1b}[31;1mred\u{1b}[0M".into(),
        );
        assert_eq!(e.body, Value::from("xred"));
        let cfg = json!({"regex_name": "ansi_control_sequences"});
        assert_eq!(
            run(build_regex_replace, cfg, "\u{1b}[m".into()).body,
            "".into()
        );
    }

    #[test]
    fn non_strings_are_errors_and_missing_fields_are_not() {
        let Json::Object(m) = json!({"field": "body"}) else {
            unreachable!()
        };
        let mut op = build_strip_ansi(m).unwrap();
        assert!(op.apply(&mut Entry::new(Value::Int(1))).is_err());
        let Json::Object(m) = json!({"field": "attributes.x", "regex": "a"}) else {
            unreachable!()
        };
        let mut op = build_regex_replace(m).unwrap();
        op.apply(&mut Entry::default()).unwrap();
    }

    #[test]
    fn config_errors() {
        for cfg in [
            json!({}),
            json!({"regex": "a", "regex_name": "ansi_control_sequences"}),
            json!({"regex_name": "nope"}),
            json!({"regex": "("}),
        ] {
            let Json::Object(m) = cfg else { unreachable!() };
            assert!(build_regex_replace(m).is_err());
        }
    }
}
