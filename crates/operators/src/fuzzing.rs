//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the pieces that are not
//! reachable through a chain with arbitrary text alone. Parser targets build chains instead.
//! Each function must return (never panic) for every input.

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
