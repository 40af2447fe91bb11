//! Epoch layouts (`s ms us ns s.ms s.us s.ns`) with Stanza's quirks (stanza.md §5.7):
//! whole-unit layouts take an integer (a float is truncated); sub-second layouts split a
//! string at `.` and add the digits after it as a plain count of the unit, unscaled; a float
//! is first written with exactly 3/6/9 decimals, which scales correctly; an int is whole
//! seconds. Results are absolute (UTC).

use super::TimeError;
use centimane_core::Value;
use jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochLayout {
    S,
    Ms,
    Us,
    Ns,
    SMs,
    SUs,
    SNs,
}

const LAYOUTS: [(&str, EpochLayout); 7] = [
    ("s", EpochLayout::S),
    ("ms", EpochLayout::Ms),
    ("us", EpochLayout::Us),
    ("ns", EpochLayout::Ns),
    ("s.ms", EpochLayout::SMs),
    ("s.us", EpochLayout::SUs),
    ("s.ns", EpochLayout::SNs),
];

impl EpochLayout {
    pub(crate) fn from_name(name: &str) -> Result<EpochLayout, String> {
        LAYOUTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
            .ok_or_else(|| {
                format!("`layout`: `{name}` is not an epoch layout (use s, ms, us, ns, s.ms, s.us or s.ns)")
            })
    }

    fn name(self) -> &'static str {
        LAYOUTS
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("", |(n, _)| n)
    }

    /// Nanoseconds per unit: of the whole value, or of the digits after the `.`.
    fn unit_nanos(self) -> i128 {
        match self {
            EpochLayout::S => 1_000_000_000,
            EpochLayout::Ms | EpochLayout::SMs => 1_000_000,
            EpochLayout::Us | EpochLayout::SUs => 1_000,
            EpochLayout::Ns | EpochLayout::SNs => 1,
        }
    }

    fn is_split(self) -> bool {
        matches!(self, EpochLayout::SMs | EpochLayout::SUs | EpochLayout::SNs)
    }

    /// Reads `value` (a string, bytes, an int or a float).
    pub(crate) fn parse(self, value: &Value) -> Result<Timestamp, TimeError> {
        match value {
            Value::Str(s) => self.parse_text(s),
            Value::Bytes(b) => self.parse_text(&String::from_utf8_lossy(b)),
            Value::Int(i) if self.is_split() => self.at(i128::from(*i) * 1_000_000_000, value),
            Value::Int(i) => self.at(i128::from(*i) * self.unit_nanos(), value),
            Value::Double(f) if !f.is_finite() => Err(TimeError::EpochValue {
                value: value.to_text(),
                layout: self.name(),
            }),
            Value::Double(f) => match self {
                EpochLayout::SMs => self.parse_text(&format!("{f:.3}")),
                EpochLayout::SUs => self.parse_text(&format!("{f:.6}")),
                EpochLayout::SNs => self.parse_text(&format!("{f:.9}")),
                // Go's int64(f): truncation (saturating here, where Go's result is undefined).
                _ => self.at(i128::from(*f as i64) * self.unit_nanos(), value),
            },
            other => Err(TimeError::WrongType(other.type_name())),
        }
    }

    fn parse_text(self, text: &str) -> Result<Timestamp, TimeError> {
        let invalid = || TimeError::EpochValue {
            value: text.to_owned(),
            layout: self.name(),
        };
        let nanos = if self.is_split() {
            let (secs, sub) = text.split_once('.').ok_or_else(invalid)?;
            let secs: i64 = secs.parse().map_err(|_| invalid())?;
            let sub: i64 = sub.parse().map_err(|_| invalid())?;
            i128::from(secs) * 1_000_000_000 + i128::from(sub) * self.unit_nanos()
        } else {
            let whole: i64 = text.parse().map_err(|_| invalid())?;
            i128::from(whole) * self.unit_nanos()
        };
        Timestamp::from_nanosecond(nanos).map_err(|_| invalid())
    }

    fn at(self, nanos: i128, value: &Value) -> Result<Timestamp, TimeError> {
        Timestamp::from_nanosecond(nanos).map_err(|_| TimeError::EpochValue {
            value: value.to_text(),
            layout: self.name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(layout: &str, v: Value) -> Result<String, TimeError> {
        EpochLayout::from_name(layout)
            .unwrap()
            .parse(&v)
            .map(|t| t.to_string())
    }

    #[test]
    fn whole_units() {
        assert_eq!(
            at("s", Value::Int(1136214245)).unwrap(),
            "2006-01-02T15:04:05Z"
        );
        assert_eq!(
            at("s", "1136214245".into()).unwrap(),
            "2006-01-02T15:04:05Z"
        );
        assert_eq!(
            at("s", Value::Double(1136214245.9)).unwrap(),
            "2006-01-02T15:04:05Z"
        );
        assert_eq!(
            at("ms", Value::Double(1136214245123.0)).unwrap(),
            "2006-01-02T15:04:05.123Z"
        );
        assert_eq!(
            at("ns", "1136214245123456789".into()).unwrap(),
            "2006-01-02T15:04:05.123456789Z"
        );
        assert_eq!(
            at("us", Value::Int(-1)).unwrap(),
            "1969-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn split_units_keep_stanzas_quirks() {
        assert_eq!(
            at("s.ms", "1136214245.1".into()).unwrap(),
            "2006-01-02T15:04:05.001Z"
        );
        assert_eq!(
            at("s.ms", Value::Double(1136214245.1)).unwrap(),
            "2006-01-02T15:04:05.1Z"
        );
        assert_eq!(
            at("s.us", Value::Int(1136214245)).unwrap(),
            "2006-01-02T15:04:05Z"
        );
        assert_eq!(
            at("s.ns", "1136214245.123456789".into()).unwrap(),
            "2006-01-02T15:04:05.123456789Z"
        );
    }

    #[test]
    fn invalid_values_are_errors() {
        for (layout, v) in [
            ("s", Value::from("1.5")),
            ("s", Value::from("")),
            ("s", Value::from("abc")),
            ("s.ms", Value::from("1136214245")),
            ("s.ms", Value::from("1.2.3")),
            ("ns", Value::Bool(true)),
            ("s", Value::Int(i64::MAX)),
            ("s", Value::Double(f64::NAN)),
            ("s.ns", Value::Double(f64::INFINITY)),
        ] {
            assert!(at(layout, v.clone()).is_err(), "{layout} {v:?}");
        }
        assert!(EpochLayout::from_name("minutes").is_err());
    }
}
