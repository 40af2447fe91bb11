//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the pieces that are not
//! reachable through a chain with arbitrary text alone. Parser targets build chains instead.
//! Each function must return (never panic) for every input, except where it checks one
//! implementation against another: a disagreement panics, for the fuzzer to report.

use crate::expr::{Expr, Template};
use crate::time::LayoutIn;
use centimane_core::value::NumberMode;
use centimane_core::{Entry, Timestamp, Value};

/// Parses `source` as an expression and as an `EXPR()` template; what parses is evaluated
/// against an entry with a little of everything in it.
pub fn expression(source: &str) {
    let mut entry = Entry::new(
        Value::from_json_str(
            r#"{"message":"hello","n":3,"f":1.5,"list":["a",1],"map":{"k.v":"x"},"nil":null}"#,
            NumberMode::IntsWhenIntegral,
        )
        .unwrap_or_default(),
    );
    entry.attributes.insert("level".into(), "error".into());
    entry.timestamp = Some(Timestamp::UNIX_EPOCH);
    if let Ok(expr) = Expr::parse(source) {
        let _ = expr.eval_value(&entry);
        let _ = expr.eval_bool(&entry);
    }
    if let Ok(template) = Template::parse(source) {
        let _ = template.render(&entry);
    }
}

/// Translates `layout` as a strptime and as a Go layout and reads `value` with each (in UTC,
/// with a fixed "now" for year-less layouts).
pub fn time(layout: &str, value: &str) {
    let now = || Timestamp::UNIX_EPOCH;
    if let Ok(mut l) = LayoutIn::strptime(layout, jiff::tz::TimeZone::UTC) {
        let _ = l.parse(value, now);
    }
    if let Ok(mut l) = LayoutIn::gotime(layout, jiff::tz::TimeZone::UTC) {
        let _ = l.parse(value, now);
    }
}

/// Matches `text` against the Go regex `pattern` with `regex_parser`'s one-pass matcher, if
/// it takes the pattern, and panics if the result differs from the regex crate's.
pub fn linear_regex(pattern: &str, text: &str) {
    use crate::linear_regex::{LinearRegex, Outcome};
    let translated = crate::go_regex::translate(pattern);
    let Ok(regex) = regex::Regex::new(&translated) else {
        return;
    };
    let Some(linear) = LinearRegex::new(&translated) else {
        return;
    };
    let mut slots = vec![0; 2 * regex.captures_len()];
    match linear.find(text.as_bytes(), &mut slots) {
        Outcome::Matched => {
            let caps = regex
                .captures(text)
                .unwrap_or_else(|| panic!("{translated:?} does not match {text:?}"));
            for (i, group) in caps.iter().enumerate() {
                let span = group.map(|m| (m.start(), m.end()));
                assert_eq!(
                    span,
                    Some((slots[2 * i], slots[2 * i + 1])),
                    "group {i} of {translated:?} in {text:?}"
                );
            }
        }
        Outcome::NoMatch => assert!(!regex.is_match(text), "{translated:?} matches {text:?}"),
        Outcome::Undecided => {}
    }
}
