//! The time parser (stanza.md §5.7): the standalone `time_parser` operator and the embedded
//! `timestamp:` block of every parser. Layouts are translated into tokens when the chain is
//! built; per entry only the value is read.

mod epoch;
mod fixed;
mod layout;
mod parse;
mod zone;

use crate::error::ProcessError;
use crate::operator::Operator;
use centimane_core::{Entry, Field, Value};
use epoch::EpochLayout;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use layout::{Layout, OffsetStyle, Token};
use serde::Deserialize;

/// Keys of the `time_parser` operator and of the `timestamp:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeConfig {
    #[serde(default = "Field::body")]
    parse_from: Field,
    #[serde(default)]
    layout_type: LayoutType,
    layout: String,
    location: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LayoutType {
    #[default]
    Strptime,
    Gotime,
    Epoch,
}

/// A built time parser.
#[derive(Debug)]
pub(crate) struct TimeParser {
    parse_from: Field,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Layout(LayoutIn),
    Epoch(EpochLayout),
}

/// A translated layout and the location that applies when a value names no zone. Parsers
/// that read times of a fixed shape (syslog, container) use one directly.
#[derive(Debug)]
pub(crate) struct LayoutIn {
    layout: Layout,
    /// The fast path, for layouts it covers.
    fixed: Option<fixed::FixedLayout>,
    location: TimeZone,
    zones: zone::ZoneCache,
    /// The last value the general parser read for a layout with a year, and its time:
    /// lines written in the same second carry the same text, read once.
    last_text: String,
    last: Option<Timestamp>,
}

impl LayoutIn {
    fn new(layout: Layout, location: TimeZone) -> LayoutIn {
        LayoutIn {
            fixed: fixed::FixedLayout::new(&layout),
            layout,
            location,
            zones: zone::ZoneCache::default(),
            last_text: String::new(),
            last: None,
        }
    }

    /// The general parser alone, to check the fast path against.
    #[cfg(test)]
    fn general_only(layout: Layout, location: TimeZone) -> LayoutIn {
        LayoutIn {
            fixed: None,
            ..LayoutIn::new(layout, location)
        }
    }

    /// A Go reference layout read in `location`.
    pub(crate) fn gotime(layout: &str, location: TimeZone) -> Result<LayoutIn, String> {
        Ok(LayoutIn::new(Layout::gotime(layout)?, location))
    }

    /// A strptime layout read in `location`.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn strptime(layout: &str, location: TimeZone) -> Result<LayoutIn, String> {
        Ok(LayoutIn::new(Layout::strptime(layout)?, location))
    }

    /// Reads `text`; `now` is called only for layouts without a year (this year, or last
    /// year if that puts the time more than a week ahead).
    pub(crate) fn parse(
        &mut self,
        text: &str,
        now: impl FnOnce() -> Timestamp,
    ) -> Result<Timestamp, TimeError> {
        if let Some(ts) = self.fixed.as_mut().and_then(|f| f.parse(text)) {
            return Ok(ts);
        }
        if let Some(ts) = self.last
            && self.last_text == text
        {
            return Ok(ts);
        }
        let parsed = parse::parse(&self.layout, text)?;
        let out_of_range = |e: jiff::Error| TimeError::OutOfRange(e.to_string());
        if self.layout.has_year {
            let civil = civil(i32::from(parsed.year), &parsed).map_err(out_of_range)?;
            let tz = zone::zone_for(&parsed, civil, &self.location, &mut self.zones);
            let ts = tz.to_timestamp(civil).map_err(out_of_range)?;
            // Without a year the time depends on today's date, so only these are kept.
            self.last_text.clear();
            self.last_text.push_str(text);
            self.last = Some(ts);
            return Ok(ts);
        }
        let now = now();
        let year = i32::from(self.location.to_datetime(now).year());
        let this_year = civil(year, &parsed).map_err(out_of_range)?;
        let tz = zone::zone_for(&parsed, this_year, &self.location, &mut self.zones);
        let ts = tz.to_timestamp(this_year).map_err(out_of_range)?;
        let limit = now.checked_add(MAX_FUTURE).map_err(out_of_range)?;
        if ts <= limit {
            return Ok(ts);
        }
        let last_year = civil(year - 1, &parsed).map_err(out_of_range)?;
        tz.to_timestamp(last_year).map_err(out_of_range)
    }
}

/// A year-less value later than this after now belongs to the previous year.
const MAX_FUTURE: SignedDuration = SignedDuration::from_hours(7 * 24);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TimeError {
    #[error("parsing time {value:?}: cannot parse {rest:?} as {element:?}")]
    Mismatch {
        value: String,
        rest: String,
        element: &'static str,
    },
    #[error("parsing time {value:?}: {what} out of range")]
    Range { value: String, what: &'static str },
    #[error("parsing time {value:?}: extra text {extra:?}")]
    Extra { value: String, extra: String },
    #[error("type '{0}' cannot be parsed as a time")]
    WrongType(&'static str),
    #[error("invalid value '{value}' for layout '{layout}'")]
    EpochValue { value: String, layout: &'static str },
    #[error("time {0} is outside the supported range")]
    OutOfRange(String),
}

impl TimeError {
    fn mismatch(value: &str, rest: &str, token: &Token) -> TimeError {
        TimeError::Mismatch {
            value: value.to_owned(),
            rest: rest.to_owned(),
            element: element_name(token),
        }
    }

    fn range(value: &str, what: &'static str) -> TimeError {
        TimeError::Range {
            value: value.to_owned(),
            what,
        }
    }

    fn extra(value: &str, extra: &str) -> TimeError {
        TimeError::Extra {
            value: value.to_owned(),
            extra: extra.to_owned(),
        }
    }
}

/// The Go layout element a token stands for, for error messages.
fn element_name(token: &Token) -> &'static str {
    match token {
        Token::Lit(_) => "literal text",
        Token::Year4 => "2006",
        Token::Year2 => "06",
        Token::MonthZero => "01",
        Token::MonthNum => "1",
        Token::MonthSpace => "_1",
        Token::MonthShort => "Jan",
        Token::MonthLong => "January",
        Token::DayZero => "02",
        Token::DayNum => "2",
        Token::DaySpace => "_2",
        Token::YearDayZero => "002",
        Token::YearDaySpace => "__2",
        Token::WeekdayShort => "Mon",
        Token::WeekdayLong => "Monday",
        Token::Hour24 => "15",
        Token::Hour12 => "3",
        Token::Hour12Zero => "03",
        Token::Minute { fixed: true } => "04",
        Token::Minute { fixed: false } => "4",
        Token::Second { fixed: true } => "05",
        Token::Second { fixed: false } => "5",
        Token::AmPm { upper: true } => "PM",
        Token::AmPm { upper: false } => "pm",
        Token::Frac { exact: true, .. } => ".000",
        Token::Frac { exact: false, .. } => ".999",
        Token::ZoneName => "MST",
        Token::Offset { style, z } => match (style, z) {
            (OffsetStyle::Hhmm, false) => "-0700",
            (OffsetStyle::Hhmm, true) => "Z0700",
            (OffsetStyle::HhColonMm, false) => "-07:00",
            (OffsetStyle::HhColonMm, true) => "Z07:00",
            (OffsetStyle::Hh, false) => "-07",
            (OffsetStyle::Hh, true) => "Z07",
            (OffsetStyle::Hhmmss, false) => "-070000",
            (OffsetStyle::Hhmmss, true) => "Z070000",
            (OffsetStyle::HhColonMmColonSs, false) => "-07:00:00",
            (OffsetStyle::HhColonMmColonSs, true) => "Z07:00:00",
        },
    }
}

/// The host's zone (`Local`), honouring `TZ`. Read afresh at each build, so a config reload
/// sees a changed `TZ`; UTC if the zone cannot be determined.
pub(crate) fn local_zone() -> TimeZone {
    jiff::tz::reset_system_time_zone_cache();
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

impl TimeParser {
    pub(crate) fn build(cfg: TimeConfig) -> Result<TimeParser, String> {
        let kind = match cfg.layout_type {
            LayoutType::Epoch => Kind::Epoch(EpochLayout::from_name(&cfg.layout)?),
            LayoutType::Strptime | LayoutType::Gotime => {
                let layout = match cfg.layout_type {
                    LayoutType::Gotime => Layout::gotime(&cfg.layout),
                    _ => Layout::strptime(&cfg.layout),
                }
                .map_err(|e| format!("`layout`: {e}"))?;
                let location = match cfg.location.as_deref() {
                    Some("Local") => local_zone(),
                    Some(name) => TimeZone::get(name)
                        .map_err(|e| format!("`location`: unknown time zone `{name}`: {e}"))?,
                    // Stanza: a layout ending in a literal `Z` is UTC unless told otherwise.
                    None if layout.ends_with_z => TimeZone::UTC,
                    None => local_zone(),
                };
                Kind::Layout(LayoutIn::new(layout, location))
            }
        };
        Ok(TimeParser {
            parse_from: cfg.parse_from,
            kind,
        })
    }

    /// Reads `value`; `now` is called only for layouts without a year.
    fn parse_value(
        &mut self,
        value: &Value,
        now: impl FnOnce() -> Timestamp,
    ) -> Result<Timestamp, TimeError> {
        let layout = match &mut self.kind {
            Kind::Epoch(epoch) => return epoch.parse(value),
            Kind::Layout(layout) => layout,
        };
        match value {
            Value::Str(s) => layout.parse(s, now),
            Value::Bytes(b) => layout.parse(&String::from_utf8_lossy(b), now),
            other => Err(TimeError::WrongType(other.type_name())),
        }
    }
}

impl Operator for TimeParser {
    /// Sets `entry.timestamp` from the `parse_from` field (which is kept).
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let value = self
            .parse_from
            .get(entry)
            .ok_or_else(|| ProcessError::MissingField(self.parse_from.clone()))?;
        let ts = self.parse_value(value, Timestamp::now)?;
        entry.timestamp = Some(ts);
        Ok(())
    }
}

/// The civil time of `parsed` in `year`. Feb 29 in a common year rolls to Mar 1, as Go's
/// `time.Date` normalizes it.
fn civil(year: i32, p: &parse::Parsed<'_>) -> Result<DateTime, jiff::Error> {
    let year = i16::try_from(year).unwrap_or(i16::MAX);
    let (month, day) = match jiff::civil::Date::new(year, p.month, p.day) {
        Ok(_) => (p.month, p.day),
        Err(_) if p.month == 2 && p.day == 29 => (3, 1),
        Err(e) => return Err(e),
    };
    DateTime::new(year, month, day, p.hour, p.minute, p.second, p.nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parser(cfg: serde_json::Value) -> TimeParser {
        let serde_json::Value::Object(map) = cfg else {
            panic!("config is an object")
        };
        TimeParser::build(crate::config::from_block(map).unwrap()).unwrap()
    }

    fn utc(layout_type: &str, layout: &str) -> TimeParser {
        parser(json!({"layout_type": layout_type, "layout": layout, "location": "UTC"}))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn strptime_and_gotime_read_the_same_value() {
        let mut a = utc("strptime", "%a %b %e %H:%M:%S %Z %Y");
        let mut b = utc("gotime", "Mon Jan _2 15:04:05 MST 2006");
        for p in [&mut a, &mut b] {
            let got = p.parse_value(&"Mon Jan  2 15:04:05 MST 2006".into(), Timestamp::now);
            assert_eq!(got.unwrap(), ts("2006-01-02T22:04:05Z"));
        }
    }

    #[test]
    fn location_applies_only_without_a_zone_in_the_value() {
        let mut p = parser(json!({"layout": "%Y-%m-%d %H:%M %z", "location": "Asia/Tokyo"}));
        let got = p.parse_value(&"2020-01-01 00:00 +0100".into(), Timestamp::now);
        assert_eq!(got.unwrap(), ts("2019-12-31T23:00:00Z"));
        let mut p = parser(json!({"layout": "%Y-%m-%d %H:%M", "location": "Asia/Tokyo"}));
        let got = p.parse_value(&"2020-01-01 09:00".into(), Timestamp::now);
        assert_eq!(got.unwrap(), ts("2020-01-01T00:00:00Z"));
    }

    #[test]
    fn repeated_values_read_as_fresh_ones() {
        // The apache layout takes the general parser, which keeps the last value read.
        let values = [
            "01/May/2024:12:00:00 +0000",
            "01/May/2024:12:00:00 +0000",
            "01/May/2024:12:00:00 +0200",
            "01/May/2024:12:00:0 +0200",
            "01/May/2024:12:00:00 +0200",
            "01/May/2024:12:00:00 +0000x",
            "01/May/2024:12:00:00 +0000",
            "31/Dec/1999:23:59:59 -0130",
            "31/Dec/1999:23:59:59 -0130",
        ];
        let mut seasoned = utc("gotime", "02/Jan/2006:15:04:05 -0700");
        for v in values.iter().chain(values.iter().rev()) {
            let mut fresh = utc("gotime", "02/Jan/2006:15:04:05 -0700");
            let want = fresh.parse_value(&(*v).into(), Timestamp::now);
            let got = seasoned.parse_value(&(*v).into(), Timestamp::now);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{v}"),
                (Err(_), Err(_)) => {}
                (w, g) => panic!("{v}: {g:?}, fresh parser {w:?}"),
            }
        }
    }

    #[test]
    fn missing_year_uses_this_or_last_year() {
        let mut p = utc("gotime", "Jan 2 15:04:05");
        let now = ts("2021-01-03T00:00:00Z");
        let got = p.parse_value(&"Jan 5 00:00:00".into(), || now).unwrap();
        assert_eq!(
            got,
            ts("2021-01-05T00:00:00Z"),
            "within a week ahead: this year"
        );
        let got = p.parse_value(&"Dec 31 00:00:00".into(), || now).unwrap();
        assert_eq!(got, ts("2020-12-31T00:00:00Z"), "far ahead: last year");
        let got = p.parse_value(&"Feb 29 00:00:00".into(), || now).unwrap();
        assert_eq!(
            got,
            ts("2020-02-29T00:00:00Z"),
            "Feb 29 of last year (a leap year)"
        );
        let now = ts("2023-03-05T00:00:00Z");
        let got = p.parse_value(&"Feb 29 00:00:00".into(), || now).unwrap();
        assert_eq!(
            got,
            ts("2023-03-01T00:00:00Z"),
            "Feb 29 in a common year rolls over"
        );
    }

    #[test]
    fn build_errors_name_the_key() {
        let build = |cfg: serde_json::Value| {
            let serde_json::Value::Object(map) = cfg else {
                panic!("object")
            };
            crate::config::from_block::<TimeConfig>(map).and_then(TimeParser::build)
        };
        let err = build(json!({"layout": "%Q"})).unwrap_err();
        assert!(err.contains("`layout`") && err.contains("%Q"), "{err}");
        let err = build(json!({"layout": "%Y", "location": "Mars/Olympus"})).unwrap_err();
        assert!(err.contains("`location`"), "{err}");
        let err = build(json!({"layout": "x", "layout_type": "epoch"})).unwrap_err();
        assert!(err.contains("`layout`"), "{err}");
        let err = build(json!({"layout": "x", "layout_type": "native"})).unwrap_err();
        assert!(err.contains("`layout_type`"), "{err}");
        let err = build(json!({"layout_type": "gotime"})).unwrap_err();
        assert!(err.contains("missing field `layout`"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        let mut p = utc("gotime", "2006-01-02");
        for v in [
            Value::Int(1),
            Value::Null,
            Value::Map(Default::default()),
            "2006-01-32".into(),
            "yesterday".into(),
            Value::Bytes(vec![0xff, 0xfe].into()),
        ] {
            assert!(p.parse_value(&v, Timestamp::now).is_err(), "{v:?}");
        }
        assert_eq!(
            p.parse_value(
                &Value::Bytes(b"2006-01-02".as_slice().into()),
                Timestamp::now
            )
            .unwrap(),
            ts("2006-01-02T00:00:00Z")
        );
    }

    #[test]
    fn missing_field_is_an_error_and_the_source_is_kept() {
        let mut p = parser(json!({"parse_from": "body.t", "layout_type": "epoch", "layout": "s"}));
        let mut e = Entry::default();
        assert!(matches!(
            p.apply(&mut e),
            Err(ProcessError::MissingField(_))
        ));
        e.body = Value::Map(Box::new(
            [("t".into(), Value::Int(1))].into_iter().collect(),
        ));
        p.apply(&mut e).unwrap();
        assert_eq!(e.timestamp, Some(ts("1970-01-01T00:00:01Z")));
        assert!(e.body.as_map().unwrap().contains_key("t"));
    }

    /// strptime directives jiff's strftime writes the same way.
    const ROUND_TRIP_LAYOUTS: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%z",
        "%a %b %d %H:%M:%S %Y",
        "%A, %d %B %Y %I:%M:%S %p",
        "%y%m%d %H%M%S",
        "%e/%m/%Y %H:%M:%S",
        "%Y-%m-%d %H:%M:%S.%f",
    ];

    /// Go layouts, the strftime spelling jiff writes them with, and how many fractional
    /// digits survive the round trip (-1: not even the seconds).
    const GO_ROUND_TRIP_LAYOUTS: [(&str, &str, i32); 6] = [
        (
            "2006-01-02T15:04:05.999999999Z07:00",
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            9,
        ),
        ("Mon Jan _2 15:04:05 2006", "%a %b %e %H:%M:%S %Y", 0),
        ("02 Jan 06 15:04 -0700", "%d %b %y %H:%M %z", -1),
        (
            "Monday, 02-Jan-2006 15:04:05.000 -07:00",
            "%A, %d-%b-%Y %H:%M:%S%.3f %:z",
            3,
        ),
        ("20060102150405", "%Y%m%d%H%M%S", 0),
        (
            "January 2, 2006 3:04:05.000000 PM -07",
            "%B %-d, %Y %-I:%M:%S%.6f %p %z",
            6,
        ),
    ];

    proptest! {
        #[test]
        fn gotime_round_trips_through_jiff(
            secs in -2_000_000_000i64..4_000_000_000i64,
            nanos in 0i32..1_000_000_000,
            offset_hours in -12i32..=14,
            which in 0usize..GO_ROUND_TRIP_LAYOUTS.len(),
        ) {
            let (layout, strftime, digits) = GO_ROUND_TRIP_LAYOUTS[which];
            let has_offset = strftime.contains('z');
            let offset = jiff::tz::Offset::from_hours(offset_hours as i8).unwrap();
            // Layouts without an offset are read in the location: a whole-hour Etc/GMT zone
            // standing for the offset (the sign is inverted in those names).
            let location = if has_offset { "UTC".to_owned() } else { format!("Etc/GMT{:+}", -offset_hours) };
            // Two-digit years only cover 1969..2068.
            let secs = if layout.contains(" 06 ") { secs.rem_euclid(3_000_000_000) } else { secs };
            let t = Timestamp::new(secs, nanos).unwrap();
            let zoned = t.to_zoned_datetime(TimeZone::fixed(offset));
            let mut text = zoned.strftime(strftime).to_string();
            if layout.ends_with("-07") {
                // `%z` writes minutes too; this layout has hours only.
                text.truncate(text.len() - 2);
            }
            let mut p = parser(json!({"layout_type": "gotime", "layout": layout, "location": location}));
            let got = p.parse_value(&Value::Str(text.clone().into()), Timestamp::now).unwrap();
            let scale = 10i32.pow(9 - digits.max(0) as u32);
            let mut want = zoned.datetime().with().subsec_nanosecond(nanos / scale * scale);
            if digits < 0 {
                want = want.second(0);
            }
            let want = want.build().unwrap();
            let want = TimeZone::fixed(offset).to_timestamp(want).unwrap();
            prop_assert_eq!(got, want, "{} as {}", text, layout);
        }

        #[test]
        fn never_panics_on_arbitrary_input(value in "\\PC{0,40}", layout in "[%a-zA-Z0-9 :./-]{0,20}") {
            if let Ok(l) = Layout::strptime(&layout) {
                let _ = parse::parse(&l, &value);
            }
            if let Ok(l) = Layout::gotime(&layout) {
                let _ = parse::parse(&l, &value);
            }
        }

        #[test]
        fn time_shaped_input_never_panics(value in "[0-9 :.,+Z-]{0,30}") {
            let mut p = utc("gotime", "2006-01-02T15:04:05.999999999Z07:00");
            let _ = p.parse_value(&value.as_str().into(), Timestamp::now);
            let mut p = utc("strptime", "%d/%b/%Y:%H:%M:%S %z");
            let _ = p.parse_value(&value.as_str().into(), Timestamp::now);
        }

        #[test]
        fn strptime_round_trips_through_jiff(
            secs in -2_000_000_000i64..4_000_000_000i64,
            micros in 0i64..1_000_000,
            offset_hours in -12i32..=14,
            offset_extra_minutes in 0i32..60,
            which in 0usize..ROUND_TRIP_LAYOUTS.len(),
        ) {
            let layout = ROUND_TRIP_LAYOUTS[which];
            let has_offset = layout.contains("%z");
            // A value without an offset is read in the location, so the location must be the
            // zone it was written in: a whole-hour Etc/GMT zone (whose sign is inverted).
            let (minutes, location) = if has_offset {
                (offset_hours * 60 + offset_extra_minutes, "UTC".to_owned())
            } else {
                (offset_hours * 60, format!("Etc/GMT{:+}", -offset_hours))
            };
            let offset = jiff::tz::Offset::from_seconds(minutes * 60).unwrap();
            // Two-digit years only cover 1969..2068.
            let secs = if layout.contains("%y") { secs.rem_euclid(3_000_000_000) } else { secs };
            let t = Timestamp::new(secs, (micros * 1000) as i32).unwrap();
            let zoned = t.to_zoned_datetime(TimeZone::fixed(offset));
            let text = zoned.strftime(layout).to_string();
            let mut p = parser(json!({"layout": layout, "location": location}));
            let got = p.parse_value(&Value::Str(text.clone().into()), Timestamp::now).unwrap();
            let mut want = zoned.datetime();
            if !layout.contains("%f") {
                want = want.with().subsec_nanosecond(0).build().unwrap();
            }
            let want = TimeZone::fixed(offset).to_timestamp(want).unwrap();
            prop_assert_eq!(got, want, "{} as {}", text, layout);
        }
    }
}
