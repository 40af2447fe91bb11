//! Reads a value with a translated [`Layout`], following Go's `time.Parse` rules: numeric
//! fields take one or two digits unless zero-padded in the layout, names match
//! case-insensitively, a space in the layout matches any run of spaces, a fraction may follow
//! the seconds even when the layout has none, and the day is checked against the month.

use super::TimeError;
use super::layout::{Layout, OffsetStyle, Token};

/// The fields read from a value. `year` is 0 when the layout has no year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'s> {
    pub year: i16,
    pub month: i8,
    pub day: i8,
    pub hour: i8,
    pub minute: i8,
    pub second: i8,
    pub nanos: i32,
    pub zone: ZoneText<'s>,
}

/// What the value said about its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZoneText<'s> {
    /// Nothing: the configured location applies.
    None,
    Utc,
    /// A numeric offset in seconds east of UTC.
    Offset(i32),
    /// An abbreviation such as `MST`, with the offset it spells itself (`GMT+3`, `+07`),
    /// zero when it spells none.
    Name {
        name: &'s str,
        offset: i32,
    },
}

const SHORT_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// One or two leading digits (exactly two when `fixed`).
fn getnum(s: &str, fixed: bool) -> Option<(i32, &str)> {
    let b = s.as_bytes();
    if !is_digit(b, 0) {
        return None;
    }
    if !is_digit(b, 1) {
        return (!fixed).then(|| (i32::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        i32::from(b[0] - b'0') * 10 + i32::from(b[1] - b'0'),
        &s[2..],
    ))
}

/// One to three leading digits (exactly three when `fixed`).
fn getnum3(s: &str, fixed: bool) -> Option<(i32, &str)> {
    let b = s.as_bytes();
    let n = b.iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || (fixed && n < 3) {
        return None;
    }
    let v = b[..n]
        .iter()
        .fold(0, |acc, d| acc * 10 + i32::from(d - b'0'));
    Some((v, &s[n..]))
}

/// The index of the name `s` starts with (ASCII case-insensitive) and its length.
fn lookup(names: &[&str], s: &str) -> Option<(usize, usize)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let prefix = s.get(..name.len())?;
        prefix.eq_ignore_ascii_case(name).then_some((i, name.len()))
    })
}

/// Matches literal layout text. A space matches a run of spaces (none at the end of input).
fn skip<'s>(mut value: &'s str, mut prefix: &str) -> Option<&'s str> {
    while let Some(c) = prefix.chars().next() {
        if c == ' ' {
            if !value.is_empty() && !value.starts_with(' ') {
                return None;
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        value = value.strip_prefix(c)?;
        prefix = &prefix[c.len_utf8()..];
    }
    Some(value)
}

/// Nanoseconds from `s[0..len]`, a separator then digits (digits past the ninth are ignored).
fn nanos(s: &str, len: usize) -> Option<i32> {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'.' | b',')) {
        return None;
    }
    let digits = b.get(1..len)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let used = &digits[..digits.len().min(9)];
    let v = used
        .iter()
        .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
    Some(v * 10i32.pow(9 - used.len() as u32))
}

/// Length of a zone abbreviation at the start of `s` (Go's `parseTimeZone`).
fn zone_name_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if s.starts_with("ChST") || s.starts_with("MeST") {
        return Some(4);
    }
    if let Some(offset) = s.strip_prefix("GMT") {
        return Some(3 + signed_offset_len(offset));
    }
    if b[0] == b'+' || b[0] == b'-' {
        return Some(signed_offset_len(s)).filter(|n| *n > 0);
    }
    let upper = b
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || s.starts_with("WITA") => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Length of `+h`/`-hh` (hours 0..23) at the start of `s`, or 0.
fn signed_offset_len(s: &str) -> usize {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    let hours = s[1..1 + n].parse::<u32>().ok();
    match hours {
        Some(h) if n > 0 && h <= 23 => 1 + n,
        _ => 0,
    }
}

/// The seconds a zone abbreviation spells itself: `GMT+3`, `-07`.
fn name_offset(name: &str) -> i32 {
    let signed = name.strip_prefix("GMT").unwrap_or(name);
    signed.parse::<i32>().map_or(0, |h| h * 3600)
}

/// A numeric offset (`-0700`, `+07:00`, ...) at the start of `s`.
fn offset(s: &str, style: OffsetStyle) -> Option<(i32, &str)> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |from: usize| -> Option<i32> {
        let d = b.get(from..from + 2)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| i32::from(d[0] - b'0') * 10 + i32::from(d[1] - b'0'))
    };
    let colon = |at: usize| (b.get(at) == Some(&b':')).then_some(());
    let (h, m, sec, len) = match style {
        OffsetStyle::Hh => (two(1)?, 0, 0, 3),
        OffsetStyle::Hhmm => (two(1)?, two(3)?, 0, 5),
        OffsetStyle::HhColonMm => {
            colon(3)?;
            (two(1)?, two(4)?, 0, 6)
        }
        OffsetStyle::Hhmmss => (two(1)?, two(3)?, two(5)?, 7),
        OffsetStyle::HhColonMmColonSs => {
            colon(3)?;
            colon(6)?;
            (two(1)?, two(4)?, two(7)?, 9)
        }
    };
    // Go accepts up to 24 hours, 60 minutes and 60 seconds here.
    if h > 24 || m > 60 || sec > 60 {
        return None;
    }
    Some((sign * ((h * 60 + m) * 60 + sec), &s[len..]))
}

fn days_in_month(month: i32, year: i32) -> i32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `value` with `layout`.
pub(crate) fn parse<'s>(layout: &Layout, value: &'s str) -> Result<Parsed<'s>, TimeError> {
    let mut rest = value;
    let (mut year, mut month, mut day, mut yday) = (0, -1, -1, -1);
    let (mut hour, mut minute, mut second, mut nano) = (0, 0, 0, 0);
    let mut pm: Option<bool> = None;
    let mut zone = ZoneText::None;
    let range = |what: &'static str| TimeError::range(value, what);
    for (i, token) in layout.tokens.iter().enumerate() {
        let before = rest;
        let fail = || TimeError::mismatch(value, before, token);
        match token {
            Token::Lit(text) => rest = skip(rest, text).ok_or_else(fail)?,
            Token::Year4 => {
                let digits = rest
                    .get(..4)
                    .filter(|d| d.bytes().all(|c| c.is_ascii_digit()));
                year = digits.and_then(|d| d.parse().ok()).ok_or_else(fail)?;
                rest = &rest[4..];
            }
            Token::Year2 => {
                let (y, r) = getnum(rest, true).ok_or_else(fail)?;
                year = if y >= 69 { 1900 + y } else { 2000 + y };
                rest = r;
            }
            Token::MonthZero | Token::MonthNum | Token::MonthSpace => {
                if *token == Token::MonthSpace {
                    rest = rest.strip_prefix(' ').unwrap_or(rest);
                }
                let (m, r) = getnum(rest, *token == Token::MonthZero).ok_or_else(fail)?;
                if !(1..=12).contains(&m) {
                    return Err(range("month"));
                }
                (month, rest) = (m, r);
            }
            Token::MonthShort | Token::MonthLong => {
                let names: &[&str] = if *token == Token::MonthShort {
                    &SHORT_MONTHS
                } else {
                    &LONG_MONTHS
                };
                let (idx, len) = lookup(names, rest).ok_or_else(fail)?;
                month = idx as i32 + 1;
                rest = &rest[len..];
            }
            Token::DayZero | Token::DayNum | Token::DaySpace => {
                if *token == Token::DaySpace {
                    rest = rest.strip_prefix(' ').unwrap_or(rest);
                }
                let (d, r) = getnum(rest, *token == Token::DayZero).ok_or_else(fail)?;
                // Checked against the month once it is known.
                if d > 31 {
                    return Err(range("day"));
                }
                (day, rest) = (d, r);
            }
            Token::YearDayZero | Token::YearDaySpace => {
                if *token == Token::YearDaySpace {
                    for _ in 0..2 {
                        rest = rest.strip_prefix(' ').unwrap_or(rest);
                    }
                }
                let (d, r) = getnum3(rest, *token == Token::YearDayZero).ok_or_else(fail)?;
                (yday, rest) = (d, r);
            }
            Token::WeekdayShort | Token::WeekdayLong => {
                let names: &[&str] = if *token == Token::WeekdayShort {
                    &SHORT_DAYS
                } else {
                    &LONG_DAYS
                };
                let (_, len) = lookup(names, rest).ok_or_else(fail)?;
                rest = &rest[len..];
            }
            Token::Hour24 => {
                let (h, r) = getnum(rest, false).ok_or_else(fail)?;
                if h > 23 {
                    return Err(range("hour"));
                }
                (hour, rest) = (h, r);
            }
            Token::Hour12 | Token::Hour12Zero => {
                let (h, r) = getnum(rest, *token == Token::Hour12Zero).ok_or_else(fail)?;
                if h > 12 {
                    return Err(range("hour"));
                }
                (hour, rest) = (h, r);
            }
            Token::Minute { fixed } => {
                let (m, r) = getnum(rest, *fixed).ok_or_else(fail)?;
                if m > 59 {
                    return Err(range("minute"));
                }
                (minute, rest) = (m, r);
            }
            Token::Second { fixed } => {
                let (s, r) = getnum(rest, *fixed).ok_or_else(fail)?;
                if s > 59 {
                    return Err(range("second"));
                }
                (second, rest) = (s, r);
                // A fraction the layout does not mention is still accepted after seconds.
                let next_is_frac = matches!(layout.tokens.get(i + 1), Some(Token::Frac { .. }));
                let b = rest.as_bytes();
                if !next_is_frac && matches!(b.first(), Some(b'.' | b',')) && is_digit(b, 1) {
                    let len = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nano = nanos(rest, len).ok_or_else(fail)?;
                    rest = &rest[len..];
                }
            }
            Token::AmPm { upper } => {
                let text = rest.get(..2).ok_or_else(fail)?;
                pm = Some(match (text, *upper) {
                    ("PM", true) | ("pm", false) => true,
                    ("AM", true) | ("am", false) => false,
                    _ => return Err(fail()),
                });
                rest = &rest[2..];
            }
            Token::Frac { digits, exact } => {
                let b = rest.as_bytes();
                if *exact {
                    let len = 1 + usize::from(*digits);
                    nano = nanos(rest, len).ok_or_else(fail)?;
                    rest = &rest[len..];
                } else if matches!(b.first(), Some(b'.' | b',')) && is_digit(b, 1) {
                    let len = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nano = nanos(rest, len).ok_or_else(fail)?;
                    rest = &rest[len..];
                }
            }
            Token::ZoneName => {
                if let Some(r) = rest.strip_prefix("UTC") {
                    zone = ZoneText::Utc;
                    rest = r;
                } else {
                    let len = zone_name_len(rest).ok_or_else(fail)?;
                    let name = &rest[..len];
                    zone = ZoneText::Name {
                        name,
                        offset: name_offset(name),
                    };
                    rest = &rest[len..];
                }
            }
            Token::Offset { style, z } => {
                if let (true, Some(r)) = (*z, rest.strip_prefix('Z')) {
                    zone = ZoneText::Utc;
                    rest = r;
                } else {
                    let (o, r) = offset(rest, *style).ok_or_else(fail)?;
                    zone = ZoneText::Offset(o);
                    rest = r;
                }
            }
        }
    }
    if !rest.is_empty() {
        return Err(TimeError::extra(value, rest));
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    if yday >= 0 {
        let leap = days_in_month(2, year) == 29;
        if yday < 1 || yday > 365 + i32::from(leap) {
            return Err(range("day-of-year"));
        }
        let (mut m, mut d) = (1, yday);
        while d > days_in_month(m, year) {
            d -= days_in_month(m, year);
            m += 1;
        }
        if (month >= 0 && month != m) || (day >= 0 && day != d) {
            return Err(range("day-of-year"));
        }
        (month, day) = (m, d);
    } else {
        if month < 0 {
            month = 1;
        }
        if day < 0 {
            day = 1;
        }
    }
    if day < 1 || day > days_in_month(month, year) {
        return Err(range("day"));
    }
    // Every field was range-checked above, so the narrowing casts cannot truncate.
    Ok(Parsed {
        year: year as i16,
        month: month as i8,
        day: day as i8,
        hour: hour as i8,
        minute: minute as i8,
        second: second as i8,
        nanos: nano,
        zone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(layout: &str, value: &str) -> Result<Parsed<'static>, TimeError> {
        let value: &'static str = Box::leak(value.to_owned().into_boxed_str());
        parse(&Layout::gotime(layout).unwrap(), value)
    }

    fn fields(p: &Parsed<'_>) -> (i16, i8, i8, i8, i8, i8, i32) {
        (p.year, p.month, p.day, p.hour, p.minute, p.second, p.nanos)
    }

    #[test]
    fn reads_go_layouts() {
        let p = go(
            "2006-01-02T15:04:05.999999999Z07:00",
            "2019-03-08T18:41:12.152531115Z",
        )
        .unwrap();
        assert_eq!(fields(&p), (2019, 3, 8, 18, 41, 12, 152_531_115));
        assert_eq!(p.zone, ZoneText::Utc);
        let p = go("02/Jan/2006:15:04:05 -0700", "05/Aug/2019:20:38:46 +0530").unwrap();
        assert_eq!(p.zone, ZoneText::Offset(5 * 3600 + 30 * 60));
        let p = go(
            "Mon Jan _2 3:04:05 PM MST 2006",
            "Tue Feb  3 1:02:03 pm UTC 2009",
        );
        assert!(p.is_err(), "PM is case-sensitive");
        let p = go(
            "Mon Jan _2 3:04:05 pm MST 2006",
            "Tue FEB  3 12:02:03 am HST 2009",
        )
        .unwrap();
        assert_eq!(fields(&p), (2009, 2, 3, 0, 2, 3, 0));
        assert_eq!(
            p.zone,
            ZoneText::Name {
                name: "HST",
                offset: 0
            }
        );
        let p = go("1/2/2006 15:04:05", "3/4/2018 9:52:29.5").unwrap();
        assert_eq!(fields(&p), (2018, 3, 4, 9, 52, 29, 500_000_000));
        let p = go("Jan 2 15:04:05 MST", "Feb 29 01:02:03 GMT+3").unwrap();
        assert_eq!(
            (p.year, p.month, p.day),
            (0, 2, 29),
            "no year: year 0 is a leap year"
        );
        assert_eq!(
            p.zone,
            ZoneText::Name {
                name: "GMT+3",
                offset: 3 * 3600
            }
        );
        let p = go("2006 002", "2020 060").unwrap();
        assert_eq!((p.month, p.day), (2, 29));
    }

    #[test]
    fn fractions() {
        assert_eq!(go("05.000", "01.123").unwrap().nanos, 123_000_000);
        assert!(
            go("05.000", "01.12").is_err(),
            ".000 needs exactly three digits"
        );
        assert_eq!(go("05.999", "01").unwrap().nanos, 0, ".999 may be omitted");
        assert_eq!(go("05.999", "01,1234567891234").unwrap().nanos, 123_456_789);
    }

    #[test]
    fn spaces_match_runs() {
        assert!(go("Jan _2 15:04", "Jan  2   10:00").is_ok());
        assert!(go("Jan _2", "Jan2").is_err());
    }

    #[test]
    fn rejects_bad_values_without_panicking() {
        for (layout, value) in [
            ("2006-01-02", "2006-13-02"),
            ("2006-01-02", "2006-02-30"),
            ("2006-01-02", "2006-1-02"),
            ("2006-01-02", "20a6-01-02"),
            ("2006-01-02", "2006-01-02x"),
            ("2006-01-02", ""),
            ("15:04:05", "24:00:00"),
            ("15:04:05", "23:60:00"),
            ("15:04:05", "23:59:60"),
            ("3 PM", "13 PM"),
            ("-0700", "+2500"),
            ("-07:00", "+0100"),
            ("MST", "Mst"),
            ("Z07:00", "z"),
            ("2006 002", "2019 366"),
            ("Jan", "Jaé"),
            ("2006", "é"),
        ] {
            assert!(go(layout, value).is_err(), "{layout} / {value}");
        }
    }
}
