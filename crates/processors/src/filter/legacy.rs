//! The legacy `logs.include` / `logs.exclude` match properties of the `filter` processor
//! (the Collector's `filterlog` package); semantics are in the parent module's docs.

use crate::text::as_string;
use centimane_core::{Entry, Map, Value};
use regex::Regex;
use serde::Deserialize;

/// Decides which records are dropped: those not matching `include` (when set) and those
/// matching `exclude`.
#[derive(Debug, Clone)]
pub(crate) struct Skip {
    include: Option<Properties>,
    exclude: Option<Properties>,
}

impl Skip {
    pub(crate) fn parse(
        include: Option<serde_json::Value>,
        exclude: Option<serde_json::Value>,
    ) -> Result<Skip, String> {
        Ok(Skip {
            include: Properties::parse("include", include)?,
            exclude: Properties::parse("exclude", exclude)?,
        })
    }

    pub(crate) fn skips(&self, entry: &Entry) -> bool {
        self.include.as_ref().is_some_and(|p| !p.matches(entry))
            || self.exclude.as_ref().is_some_and(|p| p.matches(entry))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProperties {
    #[serde(default)]
    match_type: String,
    #[serde(default)]
    resource_attributes: Vec<RawAttribute>,
    #[serde(default)]
    record_attributes: Vec<RawAttribute>,
    #[serde(default)]
    severity_texts: Vec<String>,
    #[serde(default)]
    severity_number: Option<RawSeverityNumber>,
    #[serde(default)]
    bodies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverityNumber {
    #[serde(default)]
    min: Option<Value>,
    #[serde(default)]
    match_undefined: bool,
}

/// One `include` or `exclude` block: every property that is set must match.
#[derive(Debug, Clone)]
struct Properties {
    bodies: Option<StringSet>,
    severity_texts: Option<StringSet>,
    /// Minimum severity and whether a record without one matches.
    severity_number: Option<(u8, bool)>,
    record_attributes: Vec<AttributeMatcher>,
    resource_attributes: Vec<AttributeMatcher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Strict,
    Regexp,
}

/// Strings compared for equality, or unanchored regexps: a string matches the set if it
/// matches any member.
#[derive(Debug, Clone)]
enum StringSet {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

#[derive(Debug, Clone)]
struct AttributeMatcher {
    key: String,
    value: AttributeValue,
}

#[derive(Debug, Clone)]
enum AttributeValue {
    /// Only the key's presence counts.
    Present,
    Equals(Value),
    Matches(Regex),
}

impl Properties {
    fn parse(place: &str, raw: Option<serde_json::Value>) -> Result<Option<Properties>, String> {
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let raw: RawProperties =
            serde_json::from_value(raw).map_err(|e| format!("`{place}`: {e}"))?;
        let is_empty = raw.bodies.is_empty()
            && raw.severity_texts.is_empty()
            && raw.severity_number.is_none()
            && raw.record_attributes.is_empty()
            && raw.resource_attributes.is_empty();
        if is_empty {
            // As in the Collector: a block with no properties filters nothing.
            return Ok(None);
        }
        let match_type = match raw.match_type.as_str() {
            "strict" => MatchType::Strict,
            "regexp" => MatchType::Regexp,
            "" => {
                return Err(format!(
                    "`{place}.match_type` is required (strict or regexp)"
                ));
            }
            other => {
                return Err(format!(
                    "`{place}.match_type` {other:?} is not one of strict, regexp"
                ));
            }
        };
        let set = |field: &str, items: Vec<String>| -> Result<Option<StringSet>, String> {
            if items.is_empty() {
                return Ok(None);
            }
            Ok(Some(match match_type {
                MatchType::Strict => StringSet::Strict(items),
                MatchType::Regexp => StringSet::Regexp(
                    items
                        .iter()
                        .map(|p| compile(&format!("{place}.{field}"), p))
                        .collect::<Result<_, _>>()?,
                ),
            }))
        };
        let severity_number = raw
            .severity_number
            .map(|s| {
                let min = match s.min {
                    None | Some(Value::Null) => 0,
                    Some(v) => severity_from_config(&v).ok_or_else(|| {
                        format!(
                            "`{place}.severity_number.min` {} is not a valid severity (a name like INFO or warn2, or 1-24)",
                            as_string(&v)
                        )
                    })?,
                };
                Ok::<_, String>((min, s.match_undefined))
            })
            .transpose()?;
        Ok(Some(Properties {
            bodies: set("bodies", raw.bodies)?,
            severity_texts: set("severity_texts", raw.severity_texts)?,
            severity_number,
            record_attributes: attributes(
                place,
                "record_attributes",
                match_type,
                raw.record_attributes,
            )?,
            resource_attributes: attributes(
                place,
                "resource_attributes",
                match_type,
                raw.resource_attributes,
            )?,
        }))
    }

    fn matches(&self, entry: &Entry) -> bool {
        if let Some(set) = &self.bodies
            && !set.matches(&as_string(&entry.body))
        {
            return false;
        }
        if let Some(set) = &self.severity_texts
            && !set.matches(&entry.severity_text)
        {
            return false;
        }
        if let Some((min, match_undefined)) = self.severity_number {
            let ok = if entry.severity == 0 {
                match_undefined
            } else {
                entry.severity >= min
            };
            if !ok {
                return false;
            }
        }
        all_match(&self.resource_attributes, &entry.resource)
            && all_match(&self.record_attributes, &entry.attributes)
    }
}

impl StringSet {
    fn matches(&self, text: &str) -> bool {
        match self {
            StringSet::Strict(items) => items.iter().any(|s| s == text),
            StringSet::Regexp(res) => res.iter().any(|re| re.is_match(text)),
        }
    }
}

fn compile(place: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("`{place}`: {pattern:?} is not a valid regex: {e}"))
}

fn attributes(
    place: &str,
    field: &str,
    match_type: MatchType,
    raw: Vec<RawAttribute>,
) -> Result<Vec<AttributeMatcher>, String> {
    raw.into_iter()
        .map(|a| {
            if a.key.is_empty() {
                return Err(format!("`{place}.{field}`: every entry needs a `key`"));
            }
            let value = match (a.value, match_type) {
                (None | Some(Value::Null), _) => AttributeValue::Present,
                (Some(v), MatchType::Strict) => AttributeValue::Equals(v),
                (Some(Value::Str(p)), MatchType::Regexp) => {
                    AttributeValue::Matches(compile(&format!("{place}.{field}"), &p)?)
                }
                (Some(v), MatchType::Regexp) => {
                    return Err(format!(
                        "`{place}.{field}`: match_type regexp needs a string value for {:?}, found {}",
                        a.key,
                        v.type_name()
                    ));
                }
            };
            Ok(AttributeMatcher { key: a.key, value })
        })
        .collect()
}

/// Every matcher must match; with matchers, an empty map never matches (as in the
/// Collector's `AttributesMatcher`).
fn all_match(matchers: &[AttributeMatcher], map: &Map) -> bool {
    matchers.iter().all(|m| {
        let Some(found) = map.get(m.key.as_str()) else {
            return false;
        };
        match &m.value {
            AttributeValue::Present => true,
            AttributeValue::Equals(want) => want == found,
            AttributeValue::Matches(re) => {
                // Only scalars have a text form here (the Collector's attributeStringValue).
                let text = match found {
                    Value::Str(s) => s.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::Double(d) => d.to_string(),
                    _ => return false,
                };
                re.is_match(&text)
            }
        }
    })
}

/// `min` as the Collector reads it: a severity name (any case) or a number 1–24.
fn severity_from_config(v: &Value) -> Option<u8> {
    let text = match v {
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.to_ascii_uppercase().to_string(),
        _ => return None,
    };
    if let Ok(n) = text.parse::<u8>() {
        return (1..=24).contains(&n).then_some(n);
    }
    centimane_core::entry::SEVERITY_NAMES
        .iter()
        .skip(1)
        .position(|n| *n == text)
        .map(|i| i as u8 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn skip(include: serde_json::Value, exclude: serde_json::Value) -> Skip {
        Skip::parse(Some(include), Some(exclude)).unwrap()
    }

    fn entry(body: &str, severity: u8, text: &str) -> Entry {
        let mut e = Entry::new(body.into());
        e.severity = severity;
        e.severity_text = text.into();
        e
    }

    #[test]
    fn severity_number_min_and_undefined() {
        let s = skip(
            json!({"match_type": "strict", "severity_number": {"min": "warn"}}),
            serde_json::Value::Null,
        );
        assert!(s.skips(&entry("x", 9, "")));
        assert!(!s.skips(&entry("x", 13, "")));
        assert!(
            s.skips(&entry("x", 0, "")),
            "undefined doesn't match by default"
        );
        let s = skip(
            json!({"match_type": "strict", "severity_number": {"min": 17, "match_undefined": true}}),
            serde_json::Value::Null,
        );
        assert!(!s.skips(&entry("x", 0, "")));
        assert!(s.skips(&entry("x", 16, "")));
    }

    #[test]
    fn strict_and_regexp_strings() {
        let s = skip(
            serde_json::Value::Null,
            json!({"match_type": "strict", "severity_texts": ["DEBUG", "TRACE"]}),
        );
        assert!(s.skips(&entry("x", 5, "DEBUG")));
        assert!(!s.skips(&entry("x", 5, "debug")));
        let s = skip(
            serde_json::Value::Null,
            json!({"match_type": "regexp", "bodies": ["health"]}),
        );
        assert!(s.skips(&entry("GET /healthz", 9, "")), "unanchored");
        assert!(!s.skips(&entry("GET /", 9, "")));
    }

    #[test]
    fn attributes_all_must_match_with_typed_strict_values() {
        let s = skip(
            json!({"match_type": "strict", "record_attributes": [
                {"key": "code", "value": 200},
                {"key": "route"},
            ], "resource_attributes": [{"key": "env", "value": "prod"}]}),
            serde_json::Value::Null,
        );
        let mut e = entry("x", 9, "");
        e.attributes.insert("code".into(), Value::Int(200));
        e.attributes.insert("route".into(), Value::from("/"));
        e.resource.insert("env".into(), Value::from("prod"));
        assert!(!s.skips(&e));
        e.attributes.insert("code".into(), Value::from("200"));
        assert!(s.skips(&e), "strict compares types");
        let r = skip(
            json!({"match_type": "regexp", "record_attributes": [{"key": "code", "value": "^2"}]}),
            serde_json::Value::Null,
        );
        e.attributes.insert("code".into(), Value::Int(204));
        assert!(!r.skips(&e), "regexp matches a number's text");
    }

    #[test]
    fn config_errors() {
        for (include, want) in [
            (json!({"bodies": ["x"]}), "`include.match_type` is required"),
            (json!({"match_type": "glob", "bodies": ["x"]}), "\"glob\""),
            (
                json!({"match_type": "regexp", "bodies": ["("]}),
                "not a valid regex",
            ),
            (
                json!({"match_type": "strict", "severity_number": {"min": "LOUD"}}),
                "LOUD",
            ),
            (
                json!({"match_type": "regexp", "record_attributes": [{"key": "a", "value": 1}]}),
                "string value",
            ),
            (
                json!({"match_type": "strict", "record_attributes": [{"value": 1}]}),
                "`key`",
            ),
            (
                json!({"match_type": "strict", "log_bodies": ["x"]}),
                "`log_bodies`",
            ),
        ] {
            let e = Skip::parse(Some(include.clone()), None).unwrap_err();
            assert!(e.contains(want), "{include}: {e}");
        }
        let empty = Skip::parse(Some(json!({})), None).unwrap();
        assert!(
            !empty.skips(&entry("x", 1, "")),
            "an empty block filters nothing"
        );
    }
}
