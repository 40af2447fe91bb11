//! A one-pass matcher for the regexes log parsers are usually written as: anchored at the
//! start, a plain sequence of literals and character-class runs, each run stopped by a
//! character it cannot contain (`^(?P<ip>\S+) \S+ \[(?P<time>[^\]]+)\] "(?P<req>[^"]*)"`).
//!
//! Such a pattern can match the start of a text in at most one way: a run cannot end
//! before the character that stops it (the next piece could not start there) nor go past
//! it (the run cannot contain it). So the match, and every group's span, is found by
//! walking the text once, with a table lookup per byte (or `memchr`, or eight bytes at a
//! time, for the usual classes). The regex crate has to consider every way a pattern could
//! match (its one-pass DFA moves through a state per byte and records capture slots as it
//! goes): on Apache lines its captures were 4,700 instructions a line, a third of
//! `regex_parser`'s whole pipeline; this walk takes about 1,800.
//!
//! [`LinearRegex::new`] reads the pattern with `regex-syntax` (the regex crate's own
//! parser, with the same defaults) and accepts it only when the uniqueness argument above
//! holds; everything else (alternations, optional groups, unanchored patterns, word
//! boundaries, a run followed by something that could continue it) stays with the regex
//! crate. A class that contains some non-ASCII characters but not all of them (Unicode
//! `\w`, `(?i)k`) is decided per byte: meeting a non-ASCII byte in such a run returns
//! [`Outcome::Undecided`] and the caller asks the regex crate.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// What [`LinearRegex::find`] learned about a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The pattern matches; the group spans are in the slots.
    Matched,
    /// The pattern cannot match.
    NoMatch,
    /// A non-ASCII character met a class only the regex crate can decide.
    Undecided,
}

/// A byte's place in a run's class.
const OUT: u8 = 0;
const IN: u8 = 1;
/// A non-ASCII byte where the class holds some non-ASCII characters but not all.
const ASK: u8 = 2;

/// A character class repeated `min..=max` times.
#[derive(Debug)]
struct Run {
    /// [`OUT`], [`IN`] or [`ASK`] for every byte. Non-ASCII bytes are all `IN` (the class
    /// holds every non-ASCII character), all `OUT` (it holds none) or all `ASK`.
    table: [u8; 256],
    min: u32,
    max: Option<u32>,
    /// How an unbounded run looks for its end.
    stop: Stop,
    /// Lazy runs (`*?`) match as few characters as they can; this only matters for a run
    /// that ends the pattern, where nothing stops it.
    greedy: bool,
}

/// The fastest way to find the first byte a run does not take (a run's "stop" bytes are
/// those its table does not mark [`IN`]).
#[derive(Debug)]
enum Stop {
    /// The run takes every byte: it goes to the end.
    Never,
    /// One to three stop bytes (`[^"]`, `[^\]]`): `memchr`.
    One(u8),
    Two(u8, u8),
    Three(u8, u8, u8),
    /// Every byte above this ASCII byte is taken (`\S`, `[^ ]` with control characters):
    /// eight bytes at a time are skipped while none is at or below it, then the table.
    AtOrBelow(u8),
    /// A table lookup per byte.
    Table,
}

impl Stop {
    fn of(table: &[u8; 256]) -> Stop {
        let stops: Vec<u8> = (0..=255u8)
            .filter(|&b| table[usize::from(b)] != IN)
            .collect();
        match *stops.as_slice() {
            [] => Stop::Never,
            [a] => Stop::One(a),
            [a, b] => Stop::Two(a, b),
            [a, b, c] => Stop::Three(a, b, c),
            [.., last] if last < 0x80 => Stop::AtOrBelow(last),
            _ => Stop::Table,
        }
    }
}

#[derive(Debug)]
enum Piece {
    Literal(Box<[u8]>),
    Run(Box<Run>),
    /// A group opens here (its start slot is `2 * index`).
    Open(usize),
    /// A group closes here (its end slot is `2 * index + 1`).
    Close(usize),
    /// The end of the text (`$`, `\z`).
    End,
}

/// An anchored pattern of literals and runs that has at most one match (module docs).
#[derive(Debug)]
pub(crate) struct LinearRegex {
    pieces: Vec<Piece>,
}

/// How many Unicode scalar values lie above ASCII.
const NON_ASCII_SCALARS: u32 = (0x10FFFF - 0x80 + 1) - (0xDFFF - 0xD800 + 1);

impl LinearRegex {
    /// The matcher for `pattern` (regex crate syntax, default flags), if it has the shape
    /// the module docs describe.
    pub(crate) fn new(pattern: &str) -> Option<LinearRegex> {
        let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
        let HirKind::Concat(items) = hir.kind() else {
            return None;
        };
        let (first, rest) = items.split_first()?;
        if !matches!(first.kind(), HirKind::Look(Look::Start)) {
            return None;
        }
        let mut pieces = vec![Piece::Open(0)];
        for item in rest {
            flatten(item, &mut pieces)?;
        }
        // `$` may only come last; the whole match closes before it.
        let ends = matches!(pieces.last(), Some(Piece::End));
        if ends {
            pieces.pop();
        }
        if pieces.iter().any(|p| matches!(p, Piece::End)) {
            return None;
        }
        pieces.push(Piece::Close(0));
        if ends {
            pieces.push(Piece::End);
        }
        for (at, piece) in pieces.iter().enumerate() {
            if let Piece::Run(run) = piece
                && run.max != Some(run.min)
                && !stops_before(run, &pieces[at + 1..])
            {
                return None;
            }
        }
        Some(LinearRegex { pieces })
    }

    /// Matches `text` from its start; on [`Outcome::Matched`] `slots[2 * g]..slots[2 * g + 1]`
    /// is group `g`'s span (every group takes part in a match). `slots` must hold two
    /// slots for each of the pattern's groups, group 0 (the whole match) first.
    pub(crate) fn find(&self, text: &[u8], slots: &mut [usize]) -> Outcome {
        let mut at = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(literal) => {
                    // Byte by byte: literals between fields are a few bytes, shorter than
                    // what a call to `memcmp` costs.
                    let rest = &text[at..];
                    if rest.len() < literal.len() || !literal.iter().zip(rest).all(|(a, b)| a == b)
                    {
                        return Outcome::NoMatch;
                    }
                    at += literal.len();
                }
                Piece::Run(run) => match run.scan(text, at) {
                    Ok(end) => at = end,
                    Err(outcome) => return outcome,
                },
                Piece::Open(group) => slots[2 * group] = at,
                Piece::Close(group) => slots[2 * group + 1] = at,
                Piece::End => {
                    if at != text.len() {
                        return Outcome::NoMatch;
                    }
                }
            }
        }
        Outcome::Matched
    }
}

impl Run {
    fn new(table: [u8; 256], min: u32, max: Option<u32>, greedy: bool) -> Run {
        Run {
            stop: Stop::of(&table),
            table,
            min,
            max,
            greedy,
        }
    }

    /// How many bytes at the start of `rest` the run takes, at most (its class only).
    fn taken(&self, rest: &[u8]) -> usize {
        let end = match self.stop {
            Stop::Never => None,
            Stop::One(a) => memchr::memchr(a, rest),
            Stop::Two(a, b) => memchr::memchr2(a, b, rest),
            Stop::Three(a, b, c) => memchr::memchr3(a, b, c, rest),
            Stop::AtOrBelow(last) => {
                let skipped = words_above(rest, last);
                self.table_end(&rest[skipped..]).map(|end| skipped + end)
            }
            Stop::Table => self.table_end(rest),
        };
        end.unwrap_or(rest.len())
    }

    fn table_end(&self, rest: &[u8]) -> Option<usize> {
        rest.iter().position(|&b| self.table[usize::from(b)] != IN)
    }

    /// Where the run starting at `from` ends.
    fn scan(&self, text: &[u8], from: usize) -> Result<usize, Outcome> {
        let rest = &text[from..];
        let (len, count) = match self.max {
            None => {
                let len = self.taken(rest);
                if rest
                    .get(len)
                    .is_some_and(|&b| self.table[usize::from(b)] == ASK)
                {
                    return Err(Outcome::Undecided);
                }
                // Only the first `min` characters need counting, and one byte is enough
                // to know a run is not empty.
                let count = if self.min > 1 {
                    char_count(&rest[..len])
                } else {
                    len
                };
                (len, count)
            }
            Some(max) => {
                let (mut len, mut count) = (0, 0);
                while let Some(&b) = rest.get(len) {
                    match self.table[usize::from(b)] {
                        IN => {}
                        ASK => return Err(Outcome::Undecided),
                        _ => break,
                    }
                    if !is_continuation(b) {
                        if count == max as usize {
                            break;
                        }
                        count += 1;
                    }
                    len += 1;
                }
                (len, count)
            }
        };
        if count < self.min as usize {
            return Err(Outcome::NoMatch);
        }
        Ok(from + len)
    }
}

/// How many leading bytes of `bytes`, a multiple of eight, are all above `last` (< 0x80).
fn words_above(bytes: &[u8], last: u8) -> usize {
    const ONES: u64 = u64::MAX / 255;
    let below = ONES * (u64::from(last) + 1);
    let chunks = bytes.chunks_exact(8);
    let mut skipped = 0;
    for chunk in chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Whether a byte is below `last + 1` (exact for any bound up to 128).
        if word.wrapping_sub(below) & !word & (ONES * 0x80) != 0 {
            break;
        }
        skipped += 8;
    }
    skipped
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

fn char_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| !is_continuation(b)).count()
}

/// Appends `hir` as pieces, or returns `None` if it is not a literal, a class, a repeated
/// class, a group of those or `$`.
fn flatten(hir: &Hir, pieces: &mut Vec<Piece>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(literal) => pieces.push(Piece::Literal(literal.0.clone())),
        HirKind::Class(class) => pieces.push(Piece::Run(Box::new(Run::new(
            class_table(class)?,
            1,
            Some(1),
            true,
        )))),
        HirKind::Repetition(repetition) => {
            let table = match repetition.sub.kind() {
                HirKind::Class(class) => class_table(class)?,
                HirKind::Literal(literal) => char_table(&literal.0)?,
                _ => return None,
            };
            if repetition.max != Some(0) {
                pieces.push(Piece::Run(Box::new(Run::new(
                    table,
                    repetition.min,
                    repetition.max,
                    repetition.greedy,
                ))));
            }
        }
        HirKind::Capture(capture) => {
            let index = usize::try_from(capture.index).ok()?;
            pieces.push(Piece::Open(index));
            flatten(&capture.sub, pieces)?;
            pieces.push(Piece::Close(index));
        }
        HirKind::Concat(items) => {
            for item in items {
                flatten(item, pieces)?;
            }
        }
        HirKind::Look(Look::End) => pieces.push(Piece::End),
        HirKind::Look(_) | HirKind::Alternation(_) => return None,
    }
    Some(())
}

/// The byte table of a class (see [`Run::table`]).
fn class_table(class: &Class) -> Option<[u8; 256]> {
    let mut table = [OUT; 256];
    match class {
        Class::Unicode(class) => {
            let mut non_ascii = 0;
            for range in class.ranges() {
                let (start, end) = (u32::from(range.start()), u32::from(range.end()));
                for b in start..=end.min(0x7F) {
                    table[b as usize] = IN;
                }
                let (start, end) = (start.max(0x80), end);
                if start <= end {
                    let surrogates = end.min(0xDFFF).saturating_sub(start.max(0xD800) - 1);
                    non_ascii += (end - start + 1) - surrogates.min(end - start + 1);
                }
            }
            let fill = match non_ascii {
                0 => OUT,
                NON_ASCII_SCALARS => IN,
                _ => ASK,
            };
            table[0x80..].fill(fill);
        }
        Class::Bytes(class) => {
            for range in class.ranges() {
                if range.end() >= 0x80 {
                    // Byte classes over non-ASCII bytes count bytes, not characters.
                    return None;
                }
                table[usize::from(range.start())..=usize::from(range.end())].fill(IN);
            }
        }
    }
    Some(table)
}

/// The byte table of a one-character literal under a repetition (`a+`, `é{2}`).
fn char_table(literal: &[u8]) -> Option<[u8; 256]> {
    let text = std::str::from_utf8(literal).ok()?;
    let mut chars = text.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let mut table = [OUT; 256];
    if c.is_ascii() {
        table[c as usize] = IN;
    } else {
        table[0x80..].fill(ASK);
    }
    Some(table)
}

/// Whether a run of variable length followed by `next` always ends at one place: the
/// piece after it must start with a byte the run cannot take, or be the end of the text.
fn stops_before(run: &Run, next: &[Piece]) -> bool {
    let takes = |b: u8| run.table[usize::from(b)] != OUT;
    let mut after = next
        .iter()
        .filter(|p| !matches!(p, Piece::Open(_) | Piece::Close(_)));
    match after.next() {
        // A run that ends the pattern takes all it can if greedy, as little if lazy.
        None => run.greedy,
        Some(Piece::End) => true,
        Some(Piece::Literal(literal)) => literal.first().is_some_and(|&b| !takes(b)),
        Some(Piece::Run(next)) => {
            next.min >= 1 && (0..=255u8).all(|b| !takes(b) || next.table[usize::from(b)] == OUT)
        }
        Some(Piece::Open(_) | Piece::Close(_)) => unreachable!("filtered out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    /// The groups the regex crate finds, as `find` writes them (`None`: no match).
    fn by_regex(regex: &Regex, text: &str) -> Option<Vec<usize>> {
        let caps = regex.captures(text)?;
        let mut slots = Vec::new();
        for group in caps.iter() {
            let group = group.expect("every group takes part");
            slots.extend([group.start(), group.end()]);
        }
        Some(slots)
    }

    /// Checks `find` against the regex crate on `text`; returns the outcome.
    fn check(pattern: &str, text: &str) -> Outcome {
        let linear = LinearRegex::new(pattern).expect("linear");
        let regex = Regex::new(pattern).unwrap();
        let mut slots = vec![usize::MAX; 2 * regex.captures_len()];
        let outcome = linear.find(text.as_bytes(), &mut slots);
        match outcome {
            Outcome::Matched => assert_eq!(
                Some(slots),
                by_regex(&regex, text),
                "{pattern:?} on {text:?}"
            ),
            Outcome::NoMatch => {
                assert!(!regex.is_match(text), "{pattern:?} matches {text:?}")
            }
            Outcome::Undecided => {}
        }
        outcome
    }

    const APACHE: &str = r#"^(?P<client>[^\t\n\f\r ]+) [^\t\n\f\r ]+ [^\t\n\f\r ]+ \[(?P<time>[^\]]+)\] "(?P<method>[^\t\n\f\r ]+) (?P<path>[^\t\n\f\r ]+) (?P<proto>[^"]+)" (?P<status>[0-9]+) (?P<bytes>[0-9]+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" seq=(?P<seq>[0-9]+)$"#;

    #[test]
    fn apache_lines() {
        let line = r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "http://x/é" "Mozilla/4.08 [en]" seq=17"#;
        assert_eq!(check(APACHE, line), Outcome::Matched);
        assert_eq!(check(APACHE, &line[..line.len() - 1]), Outcome::Matched);
        for bad in [
            "",
            "10.0.0.1",
            &line.replace(" 200 ", " 2x0 "),
            &line.replace(" 2326", " 23é6"),
            &format!("{line} "),
            &line.replace("[10", "10"),
        ] {
            assert_eq!(check(APACHE, bad), Outcome::NoMatch, "{bad:?}");
        }
    }

    #[test]
    fn accepted_shapes() {
        for pattern in [
            r"^(?P<a>[a-z]+)=(?P<b>[0-9]*)$",
            r"^(?P<a>\S+) (?P<rest>.*)",
            r"^a+b+c",
            r"^(?P<a>[a-z]{2,4})[0-9]{3}",
            r"^(?:(?P<x>[a-z]+):)(?P<y>[^\n]*)$",
            r"^[a-z]*?:",
            r"^(?i)get (?P<p>\S+)",
            r"^(?P<a>é+)x",
        ] {
            assert!(LinearRegex::new(pattern).is_some(), "{pattern}");
        }
    }

    #[test]
    fn refused_shapes() {
        for pattern in [
            r"(?P<a>[a-z]+)",         // unanchored
            r"^(?P<a>\S+)(?P<b>\S+)", // the first run could stop anywhere
            r"^[a-z]*[a-z0-9]",       // the next run could start inside this one
            r"^[a-z]+[0-9]*x",        // a run that may be empty follows
            r"^(?P<a>ab|cd)",         // alternation
            r"^(?P<a>x)?y",           // optional group
            r"^\w+\b",                // word boundary
            r"^[a-z]*?",              // a lazy run that ends the pattern
            r"^(?m)a$",               // multi-line anchor
            r"^a$b",                  // `$` in the middle
            r"^(?:ab)+",              // a repeated sequence
            r"^.*x",                  // `.` takes `x`
            r"^(?-u:\xFF)+",          // not valid for text; refused by the parser
        ] {
            assert!(LinearRegex::new(pattern).is_none(), "{pattern}");
        }
    }

    #[test]
    fn runs_find_their_end_the_fastest_way() {
        let stop = |class: &str| {
            let linear = LinearRegex::new(&format!("^{class}+")).unwrap();
            match &linear.pieces[1] {
                Piece::Run(run) => format!("{:?}", run.stop),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(stop(r"(?s:.)"), "Never");
        assert_eq!(stop(r#"[^"]"#), "One(34)");
        assert_eq!(stop(r#"[^"\]]"#), "Two(34, 93)");
        assert_eq!(stop(r"[^\n a]"), "Three(10, 32, 97)");
        assert_eq!(stop(r"[^\t\n\f\r ]"), "AtOrBelow(32)");
        assert_eq!(stop(r"[0-9]"), "Table");
        assert_eq!(
            stop(r"\S"),
            "Table",
            "Unicode spaces are decided per character"
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        for text in ["ééé1", "éé1", "éééé1", "aéb1", "é1"] {
            check(r"^(?P<a>[^0-9]{2,3})1", text);
            check(r"^(?P<a>[^0-9]{2,})1", text);
            check(r"^(?P<a>.{3})", text);
        }
    }

    #[test]
    fn mixed_classes_are_undecided_on_non_ascii() {
        assert_eq!(check(r"^(?P<w>\w+) ", "abc def"), Outcome::Matched);
        assert_eq!(check(r"^(?P<w>\w+) ", "abé def"), Outcome::Undecided);
        assert_eq!(check(r"^(?P<w>\w+) ", "ab-def"), Outcome::NoMatch);
    }

    /// A piece of a random linear-ish pattern.
    fn piece() -> impl Strategy<Value = String> {
        // Every way of finding a run's end: a table (`\w`, `[0-9]`), `memchr` for one to
        // three stop bytes, words above a control byte (`[^\t\n\f\r ]`), never.
        let class = prop::sample::select(vec![
            r"[^\t\n\f\r ]",
            r"[0-9]",
            r"[a-z]",
            r#"[^"]"#,
            r"[^\]]",
            ".",
            r"\w",
            r"\s",
            "é",
            "a",
            r"[^a]",
            r"[^ab]",
            r#"[^ab"]"#,
            r"(?s:.)",
            r"\S",
        ]);
        let repeat = prop::sample::select(vec!["", "+", "*", "?", "{2}", "{1,3}", "{2,}", "+?"]);
        let literal = prop::sample::select(vec![" ", "a", "\"", r"\]", "é", "x=", "0"]);
        // Runs with a character that stops them, so that many patterns are accepted.
        let stopped = prop::sample::select(vec![
            r"\S+ ",
            r#"[^"]*""#,
            r"[^\]]+\]",
            r"[0-9]+x",
            r"\w* ",
            r"[a-z]{1,3}0",
            r".{2}",
            r"[^a]*?a",
            r"é*=",
        ]);
        prop_oneof![
            2 => stopped.prop_map(str::to_owned),
            1 => (class, repeat).prop_map(|(c, r)| format!("{c}{r}")),
            1 => literal.prop_map(str::to_owned),
            1 => (any::<bool>(), prop::sample::select(vec![r"[a-z]+", r"[0-9]*", r"\S+"]))
                .prop_map(|(named, body)| if named {
                    format!("(?P<g>{body})")
                } else {
                    format!("({body})")
                }),
        ]
    }

    /// A random pattern: `^`, up to five pieces with distinct group names, maybe `$`.
    fn pattern() -> impl Strategy<Value = String> {
        (prop::collection::vec(piece(), 1..6), any::<bool>()).prop_map(|(pieces, end)| {
            let mut pattern = String::from("^");
            for (i, p) in pieces.iter().enumerate() {
                pattern.push_str(&p.replace("?P<g>", &format!("?P<g{i}>")));
            }
            if end {
                pattern.push('$');
            }
            pattern
        })
    }

    /// Texts made of the pieces' characters, so that some of them match.
    fn texts() -> impl Strategy<Value = Vec<String>> {
        let chunk = prop::sample::select(vec![
            "ab",
            " ",
            "\"",
            "]",
            "0",
            "12",
            "x",
            "é",
            "=",
            "a",
            "\n",
            "-",
            "x=",
            "cdefghijk",
            "\t",
            "\u{1}",
            "1234567890",
        ]);
        prop::collection::vec(
            prop::collection::vec(chunk, 0..8).prop_map(|c| c.concat()),
            1..8,
        )
    }

    /// How `pattern` fares on `texts`: `None` if refused, else whether `find` agrees with the
    /// regex crate on every text and how many matched.
    fn compare(pattern: &str, texts: &[String]) -> Option<Result<usize, String>> {
        let regex = Regex::new(pattern).ok()?;
        let linear = LinearRegex::new(pattern)?;
        let mut matched = 0;
        for text in texts {
            let mut slots = vec![usize::MAX; 2 * regex.captures_len()];
            let agrees = match linear.find(text.as_bytes(), &mut slots) {
                Outcome::Matched => {
                    matched += 1;
                    Some(slots) == by_regex(&regex, text)
                }
                Outcome::NoMatch => !regex.is_match(text),
                Outcome::Undecided => true,
            };
            if !agrees {
                return Some(Err(format!("{pattern:?} on {text:?}")));
            }
        }
        Some(Ok(matched))
    }

    /// The property below is not vacuous: many random patterns are accepted, and match.
    #[test]
    fn random_patterns_are_often_accepted_and_matched() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut accepted, mut matched) = (0, 0);
        for _ in 0..500 {
            let pattern = pattern().new_tree(&mut runner).unwrap().current();
            let texts = texts().new_tree(&mut runner).unwrap().current();
            if let Some(result) = compare(&pattern, &texts) {
                accepted += 1;
                matched += result.unwrap();
            }
        }
        assert!(accepted > 100, "{accepted} of 500 patterns accepted");
        assert!(matched > 100, "{matched} matches");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever pattern is accepted agrees with the regex crate on every text.
        #[test]
        fn agrees_with_the_regex_crate(pattern in pattern(), texts in texts()) {
            if let Some(Err(disagreement)) = compare(&pattern, &texts) {
                prop_assert!(false, "{}", disagreement);
            }
        }

        /// Random bytes never panic and never disagree on a fixed log pattern.
        #[test]
        fn apache_on_any_text(text in "\\PC{0,80}") {
            check(APACHE, &text);
        }
    }
}
