//! The severity parser (stanza.md §5.8): the standalone `severity_parser` operator and the
//! embedded `severity:` block. The lookup table (preset plus `mapping`) is built once; per
//! entry the value is turned into a key (lowercased text, or the decimal form of a number)
//! in a reused buffer and looked up.

use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::entry::{SEVERITY_NAMES, severity_name};
use centimane_core::{Entry, Field, Text, Value};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;
use std::fmt::Write;

/// Keys of the `severity_parser` operator and of the `severity:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeverityConfig {
    parse_from: Field,
    preset: Option<String>,
    #[serde(default)]
    mapping: IndexMap<String, Json>,
    #[serde(default)]
    overwrite_text: bool,
}

/// Lookup key → severity number. Hashed with foldhash: the keys are a few bytes long, where
/// SipHash costs several times more, once per record.
type Table = std::collections::HashMap<String, u8, foldhash::fast::RandomState>;

/// A range bigger than this is surely a mistake (and would fill memory).
const MAX_RANGE: i64 = 100_000;

#[derive(Debug)]
pub(crate) struct SeverityParser {
    parse_from: Field,
    /// Lookup key (lowercase text or decimal number) → severity number.
    table: Table,
    overwrite_text: bool,
    /// Holds the lookup key of the current value, so lookups don't allocate.
    key: String,
    /// The last few distinct string values and what the table gave for them: a source
    /// writes its levels with a handful of strings, so most values are found here without
    /// lowercasing and hashing them.
    recent: Vec<(Text, Option<u8>)>,
    /// Where the next string value not in `recent` goes once it is full.
    recent_next: usize,
}

/// How many string values [`SeverityParser::recent`] keeps.
const RECENT_MAX: usize = 8;

/// The longest string value [`SeverityParser::recent`] keeps: what `Text` holds inline.
const RECENT_TEXT_MAX: usize = 24;

/// The `aliases`/`otel` preset: `trace`..`fatal4` and `"1"`..`"24"`.
fn aliases() -> Table {
    let mut table = Table::default();
    for (n, name) in (1u8..).zip(&SEVERITY_NAMES[1..]) {
        table.insert(name.to_ascii_lowercase(), n);
        table.insert(n.to_string(), n);
    }
    table
}

/// The `default` preset: the aliases plus `warning`..`warning4` and `err`..`err4`.
fn default_preset() -> Table {
    let mut table = aliases();
    for (i, suffix) in ["", "2", "3", "4"].iter().enumerate() {
        let i = i as u8;
        table.insert(format!("warning{suffix}"), 13 + i);
        table.insert(format!("err{suffix}"), 17 + i);
    }
    table
}

fn preset(name: Option<&str>) -> Result<Table, String> {
    match name {
        None | Some("default") => Ok(default_preset()),
        Some("none") => Ok(Table::default()),
        Some("otel" | "aliases") => Ok(aliases()),
        Some(other) => Err(format!(
            "`preset`: unknown preset `{other}` (use default, none, otel or aliases)"
        )),
    }
}

/// The lookup keys one mapping value stands for.
fn keys_of(value: &Json, out: &mut Vec<String>, nested: bool) -> Result<(), String> {
    match value {
        Json::String(s) => match s.as_str() {
            "2xx" | "3xx" | "4xx" | "5xx" => {
                let base = i64::from(s.as_bytes()[0] - b'0') * 100;
                out.extend((base..base + 100).map(|n| n.to_string()));
            }
            _ => out.push(s.to_lowercase()),
        },
        Json::Number(n) => match n.as_i64() {
            Some(i) => out.push(i.to_string()),
            None => return Err(format!("{n} is not an integer")),
        },
        Json::Array(items) if !nested => {
            for item in items {
                keys_of(item, out, true)?;
            }
        }
        Json::Object(range) => {
            let bound = |key: &str| {
                range
                    .get(key)
                    .and_then(Json::as_i64)
                    .ok_or_else(|| format!("a range needs integer `min` and `max`, got {value}"))
            };
            if let Some(extra) = range.keys().find(|k| *k != "min" && *k != "max") {
                return Err(format!(
                    "unknown field `{extra}` in a range (use min and max)"
                ));
            }
            let (a, b) = (bound("min")?, bound("max")?);
            let (lo, hi) = (a.min(b), a.max(b));
            if hi - lo >= MAX_RANGE {
                return Err(format!(
                    "range {lo}..{hi} is too large (at most {MAX_RANGE} values)"
                ));
            }
            out.extend((lo..=hi).map(|n| n.to_string()));
        }
        other => return Err(format!("{other} cannot be a severity value")),
    }
    Ok(())
}

impl SeverityParser {
    pub(crate) fn build(cfg: SeverityConfig) -> Result<SeverityParser, String> {
        let mut table = preset(cfg.preset.as_deref())?;
        // Mapping keys are severity names or numbers, validated against the default preset.
        let names = default_preset();
        let mut keys = Vec::new();
        for (level, values) in &cfg.mapping {
            let severity = *names.get(&level.to_lowercase()).ok_or_else(|| {
                format!("`mapping`: `{level}` is not a severity (use trace .. fatal4 or 1 .. 24)")
            })?;
            keys.clear();
            keys_of(values, &mut keys, false).map_err(|e| format!("`mapping`: `{level}`: {e}"))?;
            // Later entries override earlier ones and the preset.
            for key in keys.drain(..) {
                table.insert(key, severity);
            }
        }
        Ok(SeverityParser {
            parse_from: cfg.parse_from,
            table,
            overwrite_text: cfg.overwrite_text,
            key: String::new(),
            recent: Vec::with_capacity(RECENT_MAX),
            recent_next: 0,
        })
    }

    /// Sets the entry's severity from what the table gave for the value `text`.
    fn set(&self, entry: &mut Entry, found: Option<u8>, text: Text) {
        entry.severity = found.unwrap_or(0);
        entry.severity_text = match found {
            Some(level) if self.overwrite_text => severity_name(level).into(),
            _ => text,
        };
    }
}

impl Operator for SeverityParser {
    /// Sets `severity` and `severity_text` from the `parse_from` field.
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let value = self
            .parse_from
            .get(entry)
            .ok_or_else(|| ProcessError::MissingField(self.parse_from.clone()))?;
        if let Value::Str(s) = value
            && let Some((_, found)) = self.recent.iter().find(|(r, _)| r == s)
        {
            let found = *found;
            let text = s.clone();
            self.set(entry, found, text);
            return Ok(());
        }
        self.key.clear();
        // `text` is the original value as text; `self.key` is the lookup key.
        let text: Text = match value {
            Value::Str(s) => {
                lowercase_into(s, &mut self.key);
                s.clone()
            }
            Value::Bytes(b) => {
                let s = String::from_utf8_lossy(b);
                lowercase_into(&s, &mut self.key);
                s.into()
            }
            Value::Int(i) => {
                let _ = write!(self.key, "{i}");
                self.key.as_str().into()
            }
            Value::Double(d) if d.fract() == 0.0 && d.is_finite() => {
                let _ = write!(self.key, "{d:.0}");
                self.key.as_str().into()
            }
            Value::Double(d) => return Err(ProcessError::NotWholeFloat(*d)),
            other => {
                return Err(ProcessError::WrongType {
                    what: "a severity",
                    got: other.type_name(),
                });
            }
        };
        let found = self.table.get(self.key.as_str()).copied();
        // Only strings kept inline (no allocation): levels are short, and a long value is
        // no level a source repeats.
        if matches!(value, Value::Str(_)) && text.len() <= RECENT_TEXT_MAX {
            let remembered = (text.clone(), found);
            if self.recent.len() < RECENT_MAX {
                self.recent.push(remembered);
            } else {
                self.recent[self.recent_next] = remembered;
                self.recent_next = (self.recent_next + 1) % RECENT_MAX;
            }
        }
        self.set(entry, found, text);
        Ok(())
    }
}

fn lowercase_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        out.push_str(s);
        out.make_ascii_lowercase();
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parser(cfg: Json) -> Result<SeverityParser, String> {
        let Json::Object(map) = cfg else {
            panic!("object")
        };
        crate::config::from_block(map).and_then(SeverityParser::build)
    }

    fn run(p: &mut SeverityParser, body: Value) -> (u8, String) {
        let mut e = Entry {
            body,
            ..Entry::default()
        };
        p.apply(&mut e).unwrap();
        (e.severity, e.severity_text.into())
    }

    #[test]
    fn presets() {
        let mut p = parser(json!({"parse_from": "body"})).unwrap();
        assert_eq!(run(&mut p, "WARNING3".into()), (15, "WARNING3".into()));
        assert_eq!(run(&mut p, "eRr".into()), (17, "eRr".into()));
        assert_eq!(run(&mut p, "24".into()), (24, "24".into()));
        assert_eq!(run(&mut p, "nope".into()), (0, "nope".into()));
        let mut p = parser(json!({"parse_from": "body", "preset": "otel"})).unwrap();
        assert_eq!(run(&mut p, "warning".into()).0, 0);
        assert_eq!(run(&mut p, "Fatal2".into()).0, 22);
        let mut p = parser(json!({"parse_from": "body", "preset": "none"})).unwrap();
        assert_eq!(run(&mut p, "error".into()).0, 0);
        assert!(parser(json!({"parse_from": "body", "preset": "loud"})).is_err());
    }

    #[test]
    fn mappings() {
        let mut p = parser(json!({"parse_from": "body", "mapping": {
            "error": ["oops", 500, {"min": 600, "max": 601}],
            "warn": "4xx",
            "INFO": "ÉTÉ",
        }}))
        .unwrap();
        assert_eq!(run(&mut p, "OOPS".into()).0, 17);
        assert_eq!(run(&mut p, Value::Int(500)).0, 17);
        assert_eq!(run(&mut p, Value::Double(601.0)), (17, "601".into()));
        assert_eq!(run(&mut p, "404".into()).0, 13);
        assert_eq!(run(&mut p, Value::Int(499)).0, 13);
        assert_eq!(run(&mut p, "été".into()).0, 9);
        assert_eq!(run(&mut p, Value::Bytes(b"Oops".as_slice().into())).0, 17);
    }

    #[test]
    fn overwrite_text_only_on_a_hit() {
        let mut p = parser(json!({"parse_from": "body", "overwrite_text": true})).unwrap();
        assert_eq!(run(&mut p, "warning2".into()), (14, "WARN2".into()));
        assert_eq!(run(&mut p, "other".into()), (0, "other".into()));
    }

    #[test]
    fn bad_mappings_are_config_errors() {
        for (mapping, needle) in [
            (json!({"loud": "x"}), "`loud` is not a severity"),
            (json!({"error": 1.5}), "not an integer"),
            (json!({"error": true}), "cannot be a severity value"),
            (json!({"error": [["x"]]}), "cannot be a severity value"),
            (
                json!({"error": {"min": 1}}),
                "needs integer `min` and `max`",
            ),
            (
                json!({"error": {"min": 1, "max": 2, "step": 1}}),
                "unknown field `step`",
            ),
            (json!({"error": {"min": 0, "max": 10_000_000}}), "too large"),
        ] {
            let err = parser(json!({"parse_from": "body", "mapping": mapping})).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let err = parser(json!({"mapping": {}})).unwrap_err();
        assert!(err.contains("missing field `parse_from`"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        let mut p = parser(json!({"parse_from": "body"})).unwrap();
        for v in [
            Value::Double(1.5),
            Value::Null,
            Value::Array(Box::default()),
            Value::Bool(true),
        ] {
            let mut e = Entry {
                body: v.clone(),
                severity: 5,
                ..Entry::default()
            };
            assert!(p.apply(&mut e).is_err(), "{v:?}");
            assert_eq!(e.severity, 5, "untouched on error");
        }
        let mut p = parser(json!({"parse_from": "body.level"})).unwrap();
        assert!(matches!(
            p.apply(&mut Entry::default()),
            Err(ProcessError::MissingField(_))
        ));
    }

    #[test]
    fn remembered_values_map_as_fresh_ones() {
        // More distinct strings than are remembered, cycling, mixed with other types: each
        // value gets what a parser that never saw another value gives it.
        let values: Vec<Value> = [
            "info",
            "INFO",
            "Info",
            "warn",
            "nope",
            "err",
            "error",
            "debug",
            "fatal",
            "WARN",
            "trace",
            "x",
            "",
            "ü",
            "info",
            "a level far longer than any level is",
            "info",
        ]
        .into_iter()
        .map(Value::from)
        .chain([Value::Int(9), Value::Bytes(b"Warn".as_slice().into())])
        .collect();
        for cfg in [
            json!({"parse_from": "body"}),
            json!({"parse_from": "body", "overwrite_text": true}),
            json!({"parse_from": "body", "mapping": {"error": ["nope", "x"]}}),
        ] {
            let mut seasoned = parser(cfg.clone()).unwrap();
            for round in 0..3 {
                for v in values.iter().chain(values.iter().rev()) {
                    let mut fresh = parser(cfg.clone()).unwrap();
                    let mut want = Entry::new(v.clone());
                    fresh.apply(&mut want).unwrap();
                    let mut got = Entry::new(v.clone());
                    seasoned.apply(&mut got).unwrap();
                    assert_eq!(
                        (got.severity, &got.severity_text),
                        (want.severity, &want.severity_text),
                        "round {round}: {v:?} with {cfg}"
                    );
                }
            }
        }
    }
}
