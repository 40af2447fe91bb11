//! A fast path for the timestamps log lines mostly carry: RFC 3339 and the ISO 8601 forms
//! like it (`2006-01-02T15:04:05.000Z07:00`, `%Y-%m-%dT%H:%M:%S.%L%z`): fixed-width
//! numbers and literals with an explicit zone offset, so the configured location plays no
//! part.
//!
//! [`FixedLayout::new`] accepts only layouts made of such tokens; [`FixedLayout::parse`]
//! accepts only values that match them exactly and are in range, and gives `None` for
//! anything else, which the general parser then reads (and reports). For what it accepts
//! it gives the instant the general parser gives; `tests` compare the two.

use super::layout::{Layout, OffsetStyle, Token};
use jiff::Timestamp;

#[derive(Debug)]
enum Step {
    Year4,
    Month2,
    Day2,
    Hour2,
    Minute2,
    /// `frac_next`: a fraction token follows. Without one, the general parser still
    /// accepts a fraction after the seconds; the fast path leaves such values to it.
    Second2 {
        frac_next: bool,
    },
    Frac(u8),
    Lit(Box<[u8]>),
    Offset {
        colon: bool,
        z: bool,
    },
}

#[derive(Debug)]
pub(crate) struct FixedLayout {
    steps: Vec<Step>,
    /// Where the fraction's digits are and how many, when every step before them has a
    /// fixed width.
    frac: Option<(usize, usize)>,
    /// The last value read, and its whole seconds since the epoch. Lines written in the
    /// same second carry values that differ only in the fraction: for those the seconds
    /// are taken from here and only the fraction is read.
    last: Vec<u8>,
    last_secs: Option<i64>,
}

impl FixedLayout {
    /// `None` unless the layout names a four-digit year, month, day, hours, minutes and
    /// seconds (two digits each), at most an exact fraction, literals without spaces, and
    /// ends with a numeric offset (`-07:00` or `-0700`, `Z` allowed or not).
    pub(crate) fn new(layout: &Layout) -> Option<FixedLayout> {
        let mut steps = Vec::with_capacity(layout.tokens.len());
        let mut seen = [false; 6];
        for (i, token) in layout.tokens.iter().enumerate() {
            let (step, field) = match token {
                Token::Year4 => (Step::Year4, Some(0)),
                Token::MonthZero => (Step::Month2, Some(1)),
                Token::DayZero => (Step::Day2, Some(2)),
                Token::Hour24 => (Step::Hour2, Some(3)),
                Token::Minute { fixed: true } => (Step::Minute2, Some(4)),
                Token::Second { fixed: true } => {
                    let frac_next = matches!(layout.tokens.get(i + 1), Some(Token::Frac { .. }));
                    (Step::Second2 { frac_next }, Some(5))
                }
                Token::Frac {
                    digits: d @ 1..=9,
                    exact: true,
                } => (Step::Frac(*d), None),
                Token::Lit(text) if !text.is_empty() && !text.contains(' ') => {
                    (Step::Lit(text.as_bytes().into()), None)
                }
                Token::Offset {
                    style: OffsetStyle::HhColonMm,
                    z,
                } => (Step::Offset { colon: true, z: *z }, None),
                Token::Offset {
                    style: OffsetStyle::Hhmm,
                    z,
                } => (
                    Step::Offset {
                        colon: false,
                        z: *z,
                    },
                    None,
                ),
                _ => return None,
            };
            if let Some(f) = field {
                if seen[f] {
                    return None;
                }
                seen[f] = true;
            }
            steps.push(step);
        }
        let ends_with_offset = matches!(steps.last(), Some(Step::Offset { .. }));
        let offsets = steps
            .iter()
            .filter(|s| matches!(s, Step::Offset { .. }))
            .count();
        if !(seen.iter().all(|s| *s) && ends_with_offset && offsets == 1) {
            return None;
        }
        let mut width = 0;
        let mut frac = None;
        for step in &steps {
            width += match step {
                Step::Year4 => 4,
                Step::Month2 | Step::Day2 | Step::Hour2 | Step::Minute2 | Step::Second2 { .. } => 2,
                Step::Lit(text) => text.len(),
                Step::Frac(n) => {
                    frac = Some((width + 1, usize::from(*n)));
                    break;
                }
                Step::Offset { .. } => break,
            };
        }
        Some(FixedLayout {
            steps,
            frac,
            last: Vec::new(),
            last_secs: None,
        })
    }

    /// The instant `value` names, or `None` to leave it to the general parser.
    pub(crate) fn parse(&mut self, value: &str) -> Option<Timestamp> {
        let b = value.as_bytes();
        if let Some(secs) = self.same_second(b) {
            let nanos = match self.frac {
                Some((at, n)) => fraction(b, at, n)?,
                None => 0,
            };
            return Timestamp::new(secs, nanos).ok();
        }
        let (secs, nanos) = self.parts(b)?;
        let ts = Timestamp::new(secs, nanos).ok()?;
        self.last.clear();
        self.last.extend_from_slice(b);
        self.last_secs = Some(secs);
        Some(ts)
    }

    /// The seconds of the last value read, if `b` differs from it at most in the
    /// fraction's digits.
    fn same_second(&self, b: &[u8]) -> Option<i64> {
        let secs = self.last_secs?;
        let last = self.last.as_slice();
        if b.len() != last.len() {
            return None;
        }
        let same = match self.frac {
            Some((at, n)) => b[..at] == last[..at] && b[at + n..] == last[at + n..],
            None => b == last,
        };
        same.then_some(secs)
    }

    /// Whole seconds since the epoch and nanoseconds, read step by step.
    fn parts(&self, b: &[u8]) -> Option<(i64, i32)> {
        let mut at = 0usize;
        let (mut year, mut month, mut day) = (0i64, 0i64, 0i64);
        let (mut hour, mut minute, mut second, mut offset) = (0i64, 0i64, 0i64, 0i64);
        let mut nanos = 0i32;
        for step in &self.steps {
            match step {
                Step::Year4 => {
                    year = digits(b, at, 4)?;
                    at += 4;
                }
                Step::Month2 => {
                    month = digits(b, at, 2)?;
                    at += 2;
                }
                Step::Day2 => {
                    day = digits(b, at, 2)?;
                    at += 2;
                }
                Step::Hour2 => {
                    hour = digits(b, at, 2)?;
                    at += 2;
                }
                Step::Minute2 => {
                    minute = digits(b, at, 2)?;
                    at += 2;
                }
                Step::Second2 { frac_next } => {
                    second = digits(b, at, 2)?;
                    at += 2;
                    if !frac_next && matches!(b.get(at), Some(b'.' | b',')) {
                        return None;
                    }
                }
                Step::Frac(n) => {
                    if !matches!(b.get(at), Some(b'.' | b',')) {
                        return None;
                    }
                    let n = usize::from(*n);
                    nanos = fraction(b, at + 1, n)?;
                    at += 1 + n;
                }
                Step::Lit(text) => {
                    if !b.get(at..)?.starts_with(text) {
                        return None;
                    }
                    at += text.len();
                }
                Step::Offset { colon, z } => {
                    if *z && b.get(at) == Some(&b'Z') {
                        at += 1;
                        continue;
                    }
                    let sign = match b.get(at)? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    let h = digits(b, at + 1, 2)?;
                    let m_at = if *colon {
                        (b.get(at + 3) == Some(&b':')).then_some(at + 4)?
                    } else {
                        at + 3
                    };
                    let m = digits(b, m_at, 2)?;
                    // The general parser's limits (Go's): up to 24 hours and 60 minutes.
                    if h > 24 || m > 60 {
                        return None;
                    }
                    offset = sign * (h * 60 + m) * 60;
                    at = m_at + 2;
                }
            }
        }
        if at != b.len()
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(month, year)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Some((secs, nanos))
    }
}

/// `n` (1 to 9) digits of a fraction at `at`, as nanoseconds.
fn fraction(b: &[u8], at: usize, n: usize) -> Option<i32> {
    let v = digits(b, at, n)? * 10i64.pow(9 - n as u32);
    i32::try_from(v).ok()
}

/// `n` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    b.get(at..at + n)?.iter().try_fold(0i64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(month: i64, year: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::super::LayoutIn;
    use super::*;
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    fn layouts() -> Vec<Layout> {
        vec![
            Layout::gotime("2006-01-02T15:04:05.000Z07:00").unwrap(),
            Layout::gotime("2006-01-02T15:04:05Z07:00").unwrap(),
            Layout::gotime("2006-01-02 15:04:05.000000-0700").unwrap(),
            Layout::gotime("2006-01-02T15:04:05.999999999Z07:00").unwrap(),
            Layout::strptime("%Y-%m-%dT%H:%M:%S.%L%z").unwrap(),
            Layout::strptime("%Y-%m-%dT%H:%M:%S%z").unwrap(),
        ]
    }

    #[test]
    fn only_fixed_layouts_with_an_offset_take_the_fast_path() {
        let fast: Vec<bool> = layouts()
            .iter()
            .map(|l| FixedLayout::new(l).is_some())
            .collect();
        // A space in a literal matches any run of spaces; `.999` and strptime's `%L` take
        // any number of digits: those stay with the general parser.
        assert_eq!(fast, [true, true, false, false, false, true]);
        for layout in [
            "2006-01-02T15:04:05.000Z",
            "Jan 2 15:04:05",
            "2006-01-02T15:04:05 MST",
        ] {
            assert!(
                FixedLayout::new(&Layout::gotime(layout).unwrap()).is_none(),
                "{layout}"
            );
        }
    }

    /// What the general parser gives for `value`, in a location that is neither UTC nor
    /// the offset in the value.
    fn general(layout: &Layout, value: &str) -> Option<Timestamp> {
        let mut general =
            LayoutIn::general_only(layout.clone(), TimeZone::fixed(jiff::tz::offset(3)));
        general.parse(value, Timestamp::now).ok()
    }

    #[test]
    fn agrees_with_the_general_parser_on_examples() {
        let layout = Layout::gotime("2006-01-02T15:04:05.000Z07:00").unwrap();
        let mut fixed = FixedLayout::new(&layout).unwrap();
        for value in [
            "2024-05-01T12:00:00.000Z",
            "2024-05-01T12:00:00.123+05:30",
            "2024-02-29T23:59:59.999-11:00",
            "1970-01-01T00:00:00.000Z",
            "0001-01-01T00:00:00.000+24:00",
            "9999-12-31T23:59:59.999-24:00",
            "1600-03-01T00:00:00,500Z",
        ] {
            assert_eq!(fixed.parse(value), general(&layout, value), "{value}");
            assert!(
                fixed.parse(value).is_some() || value.starts_with("9999"),
                "{value}"
            );
        }
        for value in [
            "2023-02-29T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-05-01T24:00:00.000Z",
            "2024-05-01T12:00:60.000Z",
            "2024-05-01T12:00:00.0000Z",
            "2024-05-01T12:00:00.000",
            "2024-05-01T12:00:00.000+0530",
            "2024-05-01T12:00:00.000+25:00",
            "2024-05-01T2:00:00.000Z",
            "2024-05-01T12:00:00.000Zextra",
            "",
        ] {
            assert_eq!(
                fixed.parse(value),
                None,
                "{value}: left to the general parser"
            );
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_general_parser(
            layout in 0usize..6,
            y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62,
            s in 0u32..62, frac in "[.,]?[0-9]{0,4}", sep in prop_oneof![Just("T"), Just(" "), Just("t")],
            zone in prop_oneof![Just("Z".to_owned()), "[+-][0-2][0-9]:?[0-6][0-9]"],
        ) {
            let layout = &layouts()[layout];
            let value = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}");
            if let Some(mut fixed) = FixedLayout::new(layout)
                && let Some(ts) = fixed.parse(&value)
            {
                prop_assert_eq!(Some(ts), general(layout, &value), "{}", value);
            }
        }

        /// Values read one after another, most of them in the same second as the one
        /// before, as a log's lines are.
        #[test]
        fn values_of_the_same_second_agree_with_the_general_parser(
            layout in 0usize..6,
            values in proptest::collection::vec(
                (0u32..3, 0u32..62, "[.,]?[0-9]{0,4}", prop_oneof![Just("Z".to_owned()), "[+-]0[0-2]:?[0-6][0-9]"]),
                1..20,
            ),
        ) {
            let layout = &layouts()[layout];
            let Some(mut fixed) = FixedLayout::new(layout) else { return Ok(()) };
            for (d, s, frac, zone) in values {
                let value = format!("2024-02-{:02}T12:34:{s:02}{frac}{zone}", 28 + d);
                if let Some(ts) = fixed.parse(&value) {
                    prop_assert_eq!(Some(ts), general(layout, &value), "{}", value);
                }
            }
        }
    }

    #[test]
    fn a_value_of_the_same_second_is_read_from_its_fraction() {
        let layout = Layout::gotime("2006-01-02T15:04:05.000Z07:00").unwrap();
        let mut fixed = FixedLayout::new(&layout).unwrap();
        for value in [
            "2024-05-01T12:00:00.000Z",
            "2024-05-01T12:00:00.250Z",
            "2024-05-01T12:00:00,999Z",
            "2024-05-01T12:00:00.25xZ",
            "2024-05-01T12:00:00.001Z",
            "2024-05-01T12:00:01.001Z",
            "2024-05-01T12:00:01.002+01:00",
            "2024-05-01T12:00:01.003+01:00",
        ] {
            assert_eq!(fixed.parse(value), general(&layout, value), "{value}");
        }
    }
}
