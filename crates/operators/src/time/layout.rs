//! Time layouts, translated once into a list of [`Token`]s: from Go reference layouts
//! (`gotime`) and from strptime directives (Stanza's table, stanza.md §5.7). Both front ends
//! produce the same tokens, so one parser serves both, as in Stanza where strptime layouts are
//! converted to Go layouts.

/// One element of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Text to match as is; a space matches any run of spaces (Go's rule).
    Lit(String),
    /// `2006`: four digits.
    Year4,
    /// `06`: two digits, 69..99 → 19xx, else 20xx.
    Year2,
    /// `01`: two digits.
    MonthZero,
    /// `1`: one or two digits.
    MonthNum,
    /// strptime `%o`: an optional leading space, then one or two digits.
    MonthSpace,
    /// `Jan`, case-insensitive.
    MonthShort,
    /// `January`, case-insensitive.
    MonthLong,
    /// `02`: two digits.
    DayZero,
    /// `2`: one or two digits.
    DayNum,
    /// `_2`: an optional leading space, then one or two digits.
    DaySpace,
    /// `002`: day of the year, three digits.
    YearDayZero,
    /// `__2`: day of the year, up to two leading spaces.
    YearDaySpace,
    /// `Mon`: checked, then ignored (Go ignores the weekday).
    WeekdayShort,
    /// `Monday`: checked, then ignored.
    WeekdayLong,
    /// `15`: one or two digits, 0..23.
    Hour24,
    /// `3`: one or two digits, 0..12.
    Hour12,
    /// `03`: two digits, 0..12.
    Hour12Zero,
    /// `4` / `04`.
    Minute { fixed: bool },
    /// `5` / `05`; a fraction right after is accepted even when the layout has none.
    Second { fixed: bool },
    /// `PM` (`upper`) or `pm`.
    AmPm { upper: bool },
    /// `.000` (exactly `digits` digits) or `.999` (any number of digits, or none at all,
    /// `exact == false`). The separator may be `.` or `,`.
    Frac { digits: u8, exact: bool },
    /// `MST`: a zone abbreviation.
    ZoneName,
    /// A numeric zone offset; `z` also accepts `Z` for UTC.
    Offset { style: OffsetStyle, z: bool },
}

/// Shapes of numeric zone offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetStyle {
    /// `-0700`
    Hhmm,
    /// `-07:00`
    HhColonMm,
    /// `-07`
    Hh,
    /// `-070000`
    Hhmmss,
    /// `-07:00:00`
    HhColonMmColonSs,
}

/// A translated layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub tokens: Vec<Token>,
    /// The layout names a year; without one the year is inferred (stanza.md §5.7).
    pub has_year: bool,
    /// The (Go form of the) layout ends with a literal `Z`: with no `location` configured,
    /// values are then read as UTC.
    pub ends_with_z: bool,
}

impl Layout {
    fn from_tokens(tokens: Vec<Token>) -> Layout {
        let has_year = tokens
            .iter()
            .any(|t| matches!(t, Token::Year4 | Token::Year2));
        let ends_with_z = matches!(tokens.last(), Some(Token::Lit(s)) if s.ends_with('Z'));
        Layout {
            tokens,
            has_year,
            ends_with_z,
        }
    }

    /// Translates a Go reference layout (`2006-01-02T15:04:05.999Z07:00`).
    pub(crate) fn gotime(layout: &str) -> Result<Layout, String> {
        if layout.is_empty() {
            return Err("the layout is empty".to_owned());
        }
        let mut tokens = Vec::new();
        push_go(&mut tokens, layout);
        Ok(Layout::from_tokens(tokens))
    }

    /// Translates a strptime layout (`%Y-%m-%dT%H:%M:%S.%L%z`). Unknown directives, and a
    /// fractional-second directive not written after `.` or `,`, are errors.
    pub(crate) fn strptime(layout: &str) -> Result<Layout, String> {
        if layout.is_empty() {
            return Err("the layout is empty".to_owned());
        }
        let mut tokens = Vec::new();
        let mut chars = layout.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                push_lit(&mut tokens, c);
                continue;
            }
            let Some(d) = chars.next() else {
                return Err("the layout ends with a lone `%`".to_owned());
            };
            let token = match d {
                'Y' => Token::Year4,
                'y' => Token::Year2,
                'm' => Token::MonthZero,
                'o' => Token::MonthSpace,
                'q' => Token::MonthNum,
                'b' | 'h' => Token::MonthShort,
                'B' => Token::MonthLong,
                'd' => Token::DayZero,
                'e' => Token::DaySpace,
                'g' => Token::DayNum,
                'a' => Token::WeekdayShort,
                'A' => Token::WeekdayLong,
                'H' => Token::Hour24,
                'I' => Token::Hour12Zero,
                'l' => Token::Hour12,
                'p' => Token::AmPm { upper: true },
                'P' => Token::AmPm { upper: false },
                'M' => Token::Minute { fixed: true },
                'S' => Token::Second { fixed: true },
                'L' | 'f' | 's' => {
                    let digits = match d {
                        'L' => 3,
                        'f' => 6,
                        _ => 9,
                    };
                    // Stanza maps these to Go's `999...` after the separator the user wrote.
                    match tokens.last_mut() {
                        Some(Token::Lit(s)) if s.ends_with(['.', ',']) => {
                            s.pop();
                            if s.is_empty() {
                                tokens.pop();
                            }
                        }
                        _ => {
                            return Err(format!(
                                "directive `%{d}` must be written after `.` or `,`"
                            ));
                        }
                    }
                    Token::Frac {
                        digits,
                        exact: false,
                    }
                }
                'Z' => Token::ZoneName,
                'z' => Token::Offset {
                    style: OffsetStyle::Hhmm,
                    z: true,
                },
                'w' => Token::Offset {
                    style: OffsetStyle::Hhmmss,
                    z: false,
                },
                'i' => Token::Offset {
                    style: OffsetStyle::Hh,
                    z: false,
                },
                'j' => Token::Offset {
                    style: OffsetStyle::HhColonMm,
                    z: false,
                },
                'k' => Token::Offset {
                    style: OffsetStyle::HhColonMmColonSs,
                    z: false,
                },
                'D' | 'x' => {
                    push_go(&mut tokens, "01/02/2006");
                    continue;
                }
                'F' => {
                    push_go(&mut tokens, "2006-01-02");
                    continue;
                }
                'T' | 'X' => {
                    push_go(&mut tokens, "15:04:05");
                    continue;
                }
                'r' => {
                    push_go(&mut tokens, "03:04:05 pm");
                    continue;
                }
                'R' => {
                    push_go(&mut tokens, "15:04");
                    continue;
                }
                'c' => {
                    push_go(&mut tokens, "Mon Jan 02 15:04:05 2006");
                    continue;
                }
                'n' | 't' | '%' => {
                    push_lit(
                        &mut tokens,
                        match d {
                            'n' => '\n',
                            't' => '\t',
                            _ => '%',
                        },
                    );
                    continue;
                }
                other => return Err(format!("unsupported strptime directive `%{other}`")),
            };
            tokens.push(token);
        }
        Ok(Layout::from_tokens(tokens))
    }
}

fn push_lit(tokens: &mut Vec<Token>, c: char) {
    match tokens.last_mut() {
        Some(Token::Lit(s)) => s.push(c),
        _ => tokens.push(Token::Lit(c.to_string())),
    }
}

/// Appends the tokens of a Go layout, following Go's `nextStdChunk`.
fn push_go(tokens: &mut Vec<Token>, layout: &str) {
    let mut rest = layout;
    while let Some(c) = rest.chars().next() {
        match go_chunk(rest) {
            Some((token, len)) => {
                tokens.push(token);
                rest = &rest[len..];
            }
            None => {
                push_lit(tokens, c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
}

fn starts_lower(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The Go layout element at the start of `s`, with its length.
fn go_chunk(s: &str) -> Option<(Token, usize)> {
    use OffsetStyle::*;
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied();
    Some(match b[0] {
        b'J' if s.starts_with("January") => (Token::MonthLong, 7),
        b'J' if s.starts_with("Jan") && !starts_lower(&s[3..]) => (Token::MonthShort, 3),
        b'M' if s.starts_with("Monday") => (Token::WeekdayLong, 6),
        b'M' if s.starts_with("Mon") && !starts_lower(&s[3..]) => (Token::WeekdayShort, 3),
        b'M' if s.starts_with("MST") => (Token::ZoneName, 3),
        b'0' => match at(1)? {
            b'1' => (Token::MonthZero, 2),
            b'2' => (Token::DayZero, 2),
            b'3' => (Token::Hour12Zero, 2),
            b'4' => (Token::Minute { fixed: true }, 2),
            b'5' => (Token::Second { fixed: true }, 2),
            b'6' => (Token::Year2, 2),
            b'0' if at(2) == Some(b'2') => (Token::YearDayZero, 3),
            _ => return None,
        },
        b'1' if at(1) == Some(b'5') => (Token::Hour24, 2),
        b'1' => (Token::MonthNum, 1),
        b'2' if s.starts_with("2006") => (Token::Year4, 4),
        b'2' => (Token::DayNum, 1),
        // `_2006` is a literal `_` followed by the year: leave the `_` to the caller.
        b'_' if s.starts_with("_2") && !s.starts_with("_2006") => (Token::DaySpace, 2),
        b'_' if s.starts_with("__2") => (Token::YearDaySpace, 3),
        b'3' => (Token::Hour12, 1),
        b'4' => (Token::Minute { fixed: false }, 1),
        b'5' => (Token::Second { fixed: false }, 1),
        b'P' if s.starts_with("PM") => (Token::AmPm { upper: true }, 2),
        b'p' if s.starts_with("pm") => (Token::AmPm { upper: false }, 2),
        b'-' | b'Z' => {
            let z = b[0] == b'Z';
            let body = &s[1..];
            let (style, len) = [
                ("070000", Hhmmss),
                ("07:00:00", HhColonMmColonSs),
                ("0700", Hhmm),
                ("07:00", HhColonMm),
                ("07", Hh),
            ]
            .into_iter()
            .find(|(pat, _)| body.starts_with(pat))
            .map(|(pat, style)| (style, pat.len() + 1))?;
            (Token::Offset { style, z }, len)
        }
        b'.' | b',' => {
            let digit = at(1).filter(|d| *d == b'0' || *d == b'9')?;
            let run = b[1..].iter().take_while(|x| **x == digit).count();
            // Only a run of digits that ends there is a fraction (`.000`, not `.0001`).
            if at(1 + run).is_some_and(|x| x.is_ascii_digit()) {
                return None;
            }
            let digits = u8::try_from(run).ok()?;
            (
                Token::Frac {
                    digits,
                    exact: digit == b'0',
                },
                1 + run,
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Token::*;

    fn lit(s: &str) -> Token {
        Lit(s.to_owned())
    }

    #[test]
    fn go_layouts() {
        let l = Layout::gotime("2006-01-02T15:04:05.999999999Z07:00").unwrap();
        assert_eq!(
            l.tokens,
            vec![
                Year4,
                lit("-"),
                MonthZero,
                lit("-"),
                DayZero,
                lit("T"),
                Hour24,
                lit(":"),
                Minute { fixed: true },
                lit(":"),
                Second { fixed: true },
                Frac {
                    digits: 9,
                    exact: false
                },
                Offset {
                    style: OffsetStyle::HhColonMm,
                    z: true
                },
            ]
        );
        assert!(l.has_year && !l.ends_with_z);
        let l = Layout::gotime("Mon Jan _2 3:4:5 PM MST").unwrap();
        assert_eq!(
            l.tokens,
            vec![
                WeekdayShort,
                lit(" "),
                MonthShort,
                lit(" "),
                DaySpace,
                lit(" "),
                Hour12,
                lit(":"),
                Minute { fixed: false },
                lit(":"),
                Second { fixed: false },
                lit(" "),
                AmPm { upper: true },
                lit(" "),
                ZoneName,
            ]
        );
        assert!(!l.has_year);
        assert!(
            Layout::gotime("2006-01-02T15:04:05.000Z")
                .unwrap()
                .ends_with_z
        );
        assert_eq!(
            Layout::gotime("Janet _2006").unwrap().tokens,
            vec![lit("Janet _"), Year4]
        );
        assert_eq!(
            Layout::gotime(".0001").unwrap().tokens,
            vec![lit(".00"), MonthZero],
            "a digit run that continues is not a fraction"
        );
        assert!(Layout::gotime("").is_err());
    }

    #[test]
    fn strptime_layouts() {
        let l = Layout::strptime("%Y-%m-%dT%H:%M:%S.%L%z").unwrap();
        assert_eq!(
            l.tokens[l.tokens.len() - 2..],
            [
                Frac {
                    digits: 3,
                    exact: false
                },
                Offset {
                    style: OffsetStyle::Hhmm,
                    z: true
                }
            ]
        );
        assert!(
            Layout::strptime("%Y-%m-%dT%H:%M:%S.%sZ")
                .unwrap()
                .ends_with_z
        );
        assert!(!Layout::strptime("%H:%M %Z").unwrap().ends_with_z);
        assert_eq!(
            Layout::strptime("%F %T").unwrap(),
            Layout::gotime("2006-01-02 15:04:05").unwrap()
        );
        assert_eq!(
            Layout::strptime("1 %% %n").unwrap().tokens,
            vec![lit("1 % \n")],
            "strptime literals stay literal, even digits"
        );
        assert!(Layout::strptime("%Q").is_err());
        assert!(Layout::strptime("%S%L").is_err());
        assert!(Layout::strptime("%").is_err());
        assert!(Layout::strptime("").is_err());
    }
}
