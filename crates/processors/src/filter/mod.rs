//! The `filter` processor: drops log records, with the Collector's `filter` config for
//! logs. Two ways to say which records go, which can't be combined:
//!
//! **`logs.log_record`**: a list of OTTL conditions; a record matching *any* of them is
//! dropped. The supported subset of OTTL (anything else is a config error naming it):
//! - paths: `body`, `attributes`, `resource.attributes`, `severity_number`, `severity_text`
//!   (each also with the `log.` prefix, e.g. `log.body`), followed by any number of
//!   indexes: `attributes["http.method"]`, `body["user"]["id"]`, `body["items"][0]`;
//! - literals: strings (`"..."` with `\"`, `\\`, `\n`, `\t`), ints, floats, `true`,
//!   `false`, `nil`, and the enums `SEVERITY_NUMBER_UNSPECIFIED`, `SEVERITY_NUMBER_TRACE` …
//!   `SEVERITY_NUMBER_FATAL4`;
//! - comparisons `==`, `!=`, `<`, `<=`, `>`, `>=` with OTTL's rules: ints and floats
//!   compare as numbers, strings lexicographically, `nil` equals only `nil` (a missing
//!   attribute is `nil`), bools only with `==`/`!=`, any other mix of types is unequal;
//! - the function `IsMatch(target, "regex")` (unanchored; a number or bool target is
//!   matched as text, a missing one never matches);
//! - `and`, `or`, `not` and parentheses, with OTTL's precedence (`not` > `and` > `or`).
//!
//! **`logs.include` / `logs.exclude`** (the legacy match properties): a record is dropped
//! when `include` is set and it does not match it, or when it matches `exclude`. Keys:
//! `match_type` (`strict` or `regexp`, required; regexps are unanchored), `bodies` and
//! `severity_texts` (the record matches if any entry does), `record_attributes` and
//! `resource_attributes` (lists of `{key, value}`; every one must match; without `value`
//! only the key's presence counts; `regexp` values must be strings), and
//! `severity_number: {min, match_undefined}` (`min` as a name like `INFO` or `warn2` or
//! a number 1–24; a record with no severity matches only with `match_undefined: true`).
//! Every property that is set must match.
//!
//! `error_mode` (`ignore`, `silent`, `propagate`) is accepted for compatibility; the
//! supported subset has no run-time errors, so it changes nothing.

mod legacy;
mod ottl;

use centimane_core::Batch;
#[cfg(test)]
use centimane_core::Entry;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    error_mode: Option<String>,
    #[serde(default)]
    logs: Option<RawLogs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    #[serde(default)]
    log_record: Option<Vec<String>>,
    #[serde(default)]
    include: Option<serde_json::Value>,
    #[serde(default)]
    exclude: Option<serde_json::Value>,
}

/// A validated filter.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    /// Drop a record matching any condition.
    Conditions(Vec<ottl::Condition>),
    Legacy(Box<legacy::Skip>),
    /// Nothing configured: every record passes, as in the Collector.
    KeepAll,
}

pub(crate) fn parse(config: serde_json::Value) -> Result<FilterConfig, String> {
    let raw: RawConfig =
        serde_json::from_value(crate::object_or_empty(config)).map_err(|e| e.to_string())?;
    if let Some(mode) = raw.error_mode.as_deref()
        && !matches!(mode, "ignore" | "silent" | "propagate")
    {
        return Err(format!(
            "`error_mode` {mode:?} is not one of ignore, silent, propagate"
        ));
    }
    let Some(logs) = raw.logs else {
        return Ok(FilterConfig {
            rule: Rule::KeepAll,
        });
    };
    let legacy_set = logs.include.is_some() || logs.exclude.is_some();
    let rule = match logs.log_record {
        Some(_) if legacy_set => {
            return Err(
                "`log_record` conditions and `include`/`exclude` can't be used together".into(),
            );
        }
        Some(conditions) => Rule::Conditions(
            conditions
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    ottl::Condition::parse(c).map_err(|e| format!("`log_record[{i}]` {c:?}: {e}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        None if legacy_set => {
            Rule::Legacy(Box::new(legacy::Skip::parse(logs.include, logs.exclude)?))
        }
        None => Rule::KeepAll,
    };
    Ok(FilterConfig { rule })
}

impl FilterConfig {
    pub(crate) fn apply(&self, batch: &mut Batch) {
        match &self.rule {
            Rule::KeepAll => {}
            Rule::Conditions(conditions) => batch
                .entries
                .retain(|e| !conditions.iter().any(|c| c.matches(e))),
            Rule::Legacy(skip) => batch.entries.retain(|e| !skip.skips(e)),
        }
    }

    /// Whether the filter keeps `entry` (for tests and diagnostics).
    #[cfg(test)]
    fn keeps(&self, entry: &Entry) -> bool {
        let mut batch = Batch::new(vec![entry.clone()], Default::default());
        self.apply(&mut batch);
        !batch.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Value;
    use serde_json::json;

    fn entry(body: &str, severity: u8) -> Entry {
        let mut e = Entry::new(body.into());
        e.severity = severity;
        e
    }

    #[test]
    fn conditions_drop_what_any_matches() {
        let f = parse(json!({"logs": {"log_record": [
            "IsMatch(body, \"password\")",
            "severity_number < SEVERITY_NUMBER_INFO and severity_number != SEVERITY_NUMBER_UNSPECIFIED",
        ]}}))
        .unwrap();
        assert!(!f.keeps(&entry("my password is x", 9)));
        assert!(!f.keeps(&entry("debugging", 5)));
        assert!(f.keeps(&entry("no severity", 0)));
        assert!(f.keeps(&entry("hello", 13)));
    }

    #[test]
    fn legacy_include_and_exclude() {
        let f = parse(json!({"logs": {
            "include": {"match_type": "regexp", "bodies": ["^GET", "^POST"]},
            "exclude": {"match_type": "strict", "record_attributes": [{"key": "path", "value": "/health"}]},
        }}))
        .unwrap();
        let mut health = entry("GET /health", 9);
        health
            .attributes
            .insert("path".into(), Value::from("/health"));
        assert!(f.keeps(&entry("GET /", 9)));
        assert!(!f.keeps(&entry("DELETE /", 9)), "not included");
        assert!(!f.keeps(&health), "excluded");
    }

    #[test]
    fn nothing_configured_keeps_everything() {
        assert!(
            parse(serde_json::Value::Null)
                .unwrap()
                .keeps(&entry("x", 1))
        );
        assert!(
            parse(json!({"error_mode": "ignore", "logs": {}}))
                .unwrap()
                .keeps(&entry("x", 1))
        );
    }

    #[test]
    fn config_errors() {
        for (bad, want) in [
            (
                json!({"logs": {"log_record": ["body == \"x\""], "exclude": {"match_type": "strict", "bodies": ["x"]}}}),
                "can't be used together",
            ),
            (
                json!({"logs": {"log_record": ["IsString(body)"]}}),
                "`IsString`",
            ),
            (json!({"logs": {"log_records": []}}), "`log_records`"),
            (json!({"error_mode": "loud"}), "`error_mode`"),
            (json!({"traces": {"span": []}}), "`traces`"),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
