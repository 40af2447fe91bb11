//! Tokenizing: where one record ends and the next begins (stanza.md §7.2), and how a
//! token's bytes become a body.

use centimane_core::value::{self, Value};
use encoding_rs::Encoding;
use regex::bytes::Regex;
use std::ops::Range;

/// How a file's bytes are cut into tokens.
#[derive(Debug, Clone)]
pub(crate) enum Split {
    /// Lines ending at the encoded newline; `unit` is the code unit size (2 for UTF-16), so
    /// a newline is only recognised at a character boundary.
    Newline { newline: Vec<u8>, unit: usize },
    /// A token starts at each match; text before the first match is a token of its own.
    LineStart { pattern: Regex, omit: bool },
    /// A token ends at the end of each match.
    LineEnd { pattern: Regex, omit: bool },
    /// `encoding: nop`: raw chunks of `max_log_size` bytes, no delimiter, no trimming.
    Raw,
}

/// A complete token found in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// The token's bytes (delimiter and omitted pattern text excluded).
    pub token: Range<usize>,
    /// Where the next token starts.
    pub next: usize,
}

impl Split {
    /// The first complete token in `data`, if any. `None` means more data is needed (or
    /// a flush). For `Raw`, a token is complete once `max` bytes are there.
    pub fn find(&self, data: &[u8], max: usize) -> Option<Found> {
        match self {
            Split::Newline { newline, unit } => {
                if let ([byte], 1) = (newline.as_slice(), *unit) {
                    // One-byte newlines (UTF-8, ASCII, Latin-1: the common case) need no
                    // substring search, whose searcher would be built for every line.
                    let at = memchr::memchr(*byte, data)?;
                    return Some(Found {
                        token: 0..at,
                        next: at + 1,
                    });
                }
                let mut from = 0;
                loop {
                    let at = from + memchr::memmem::find(&data[from..], newline)?;
                    if at % unit == 0 {
                        return Some(Found {
                            token: 0..at,
                            next: at + newline.len(),
                        });
                    }
                    from = at + 1;
                }
            }
            Split::LineEnd { pattern, omit } => {
                let mut from = 0;
                loop {
                    let m = pattern.find_at(data, from)?;
                    if m.is_empty() {
                        // An empty match can't end a token; look further.
                        from = m.end() + 1;
                        if from > data.len() {
                            return None;
                        }
                        continue;
                    }
                    let end = if *omit { m.start() } else { m.end() };
                    return Some(Found {
                        token: 0..end,
                        next: m.end(),
                    });
                }
            }
            Split::LineStart { pattern, omit } => {
                let first = pattern.find(data)?;
                if first.start() > 0 {
                    // Text before the first start match is its own token.
                    return Some(Found {
                        token: 0..first.start(),
                        next: first.start(),
                    });
                }
                // The token starts at 0; it ends where the next match starts.
                let search_from = first.end().max(1);
                if search_from > data.len() {
                    return None;
                }
                let next = pattern.find_at(data, search_from)?;
                let begin = if *omit { first.end() } else { 0 };
                Some(Found {
                    token: begin..next.start(),
                    next: next.start(),
                })
            }
            Split::Raw => (data.len() >= max).then_some(Found {
                token: 0..max,
                next: max,
            }),
        }
    }

    /// The token a flush makes of unterminated data (line-start tokens drop their start
    /// pattern when `omit` is set).
    pub fn flush_range(&self, data: &[u8]) -> Range<usize> {
        match self {
            Split::LineStart {
                pattern,
                omit: true,
            } => match pattern.find(data) {
                Some(m) if m.start() == 0 => m.end()..data.len(),
                _ => 0..data.len(),
            },
            _ => 0..data.len(),
        }
    }

    pub fn trims(&self) -> bool {
        !matches!(self, Split::Raw)
    }
}

/// How token bytes become a body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decode {
    /// UTF-8; invalid sequences become U+FFFD.
    Utf8,
    /// UTF-8 kept as is: a token that is not valid UTF-8 becomes a bytes body instead of
    /// being altered.
    Utf8Raw,
    /// `nop`: the body is the raw bytes.
    Bytes,
    /// Any other encoding, decoded to UTF-8 (invalid sequences become U+FFFD).
    Other(&'static Encoding),
}

impl Decode {
    /// Resolves an `encoding` name (the Collector's names and common aliases).
    pub fn from_name(name: &str) -> Option<Decode> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "" | "utf-8" | "utf8" => Decode::Utf8,
            "utf8-raw" | "utf-8-raw" => Decode::Utf8Raw,
            "nop" => Decode::Bytes,
            "ascii" | "us-ascii" => Decode::Other(encoding_rs::WINDOWS_1252),
            "latin1" | "latin-1" | "iso-8859-1" => Decode::Other(encoding_rs::WINDOWS_1252),
            "utf-16" => Decode::Other(encoding_rs::UTF_16LE),
            "shift_jis" | "shift-jis" | "sjis" => Decode::Other(encoding_rs::SHIFT_JIS),
            _ => Decode::Other(Encoding::for_label(lower.as_bytes())?),
        })
    }

    /// The newline as this encoding writes it, and the code unit size.
    pub fn newline(&self) -> (Vec<u8>, usize) {
        match self {
            Decode::Other(e) if *e == encoding_rs::UTF_16LE => (vec![b'\n', 0], 2),
            Decode::Other(e) if *e == encoding_rs::UTF_16BE => (vec![0, b'\n'], 2),
            _ => (vec![b'\n'], 1),
        }
    }

    /// The body of a token, trimmed as configured; `None` when nothing is left.
    pub fn body(&self, token: &[u8], trim: Trim) -> Option<Value> {
        match self {
            Decode::Bytes => (!token.is_empty()).then(|| Value::Bytes(token.into())),
            Decode::Utf8 | Decode::Utf8Raw => {
                let token = trim.bytes(token);
                if token.is_empty() {
                    return None;
                }
                Some(match simdutf8::basic::from_utf8(token) {
                    Ok(s) => Value::Str(value::text(s)),
                    Err(_) if matches!(self, Decode::Utf8Raw) => Value::Bytes(token.into()),
                    Err(_) => Value::Str(String::from_utf8_lossy(token).into_owned().into()),
                })
            }
            Decode::Other(encoding) => {
                let (text, _) = encoding.decode_without_bom_handling(token);
                let text = trim.text(&text);
                (!text.is_empty()).then(|| Value::Str(text.into()))
            }
        }
    }
}

impl Decode {
    /// True for the UTF-8 decodings, whose bodies [`Decode::body_text`] can make from
    /// text validated ahead, many lines at once.
    pub fn is_utf8(&self) -> bool {
        matches!(self, Decode::Utf8 | Decode::Utf8Raw)
    }

    /// The text of the body [`Decode::body`] makes of a token's bytes, for a UTF-8
    /// decoding and a token already known to be valid UTF-8: trimmed, not validated again.
    pub fn body_text<'a>(&self, text: &'a str, trim: Trim) -> Option<&'a str> {
        debug_assert!(self.is_utf8());
        let kept = trim.range(text.as_bytes());
        // The trimmed bytes are ASCII, so the range's ends are character boundaries.
        (!kept.is_empty()).then(|| &text[kept])
    }
}

/// Which ends of a token lose their whitespace (space, tab, CR, LF).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trim {
    pub leading: bool,
    pub trailing: bool,
}

const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

impl Trim {
    fn bytes<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        &b[self.range(b)]
    }

    /// The part of `b` left after trimming.
    fn range(&self, b: &[u8]) -> Range<usize> {
        let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
        let mut kept = 0..b.len();
        if self.leading {
            kept.start = b.iter().take_while(|c| is_space(c)).count();
        }
        if self.trailing {
            kept.end -= b[kept.start..]
                .iter()
                .rev()
                .take_while(|c| is_space(c))
                .count();
        }
        kept
    }

    fn text<'a>(&self, mut t: &'a str) -> &'a str {
        if self.leading {
            t = t.trim_start_matches(SPACE);
        }
        if self.trailing {
            t = t.trim_end_matches(SPACE);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(split: &Split, data: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(f) = split.find(&data[at..], max) {
            out.push(
                String::from_utf8_lossy(&data[at + f.token.start..at + f.token.end]).into_owned(),
            );
            at += f.next;
        }
        out
    }

    #[test]
    fn line_start() {
        let s = Split::LineStart {
            pattern: Regex::new("(?m)^LOGSTART \\d+").unwrap(),
            omit: false,
        };
        let data = b"garbage\nLOGSTART 1 a\nb\nLOGSTART 2 c\nLOGSTART 3";
        assert_eq!(
            all(&s, data, 1 << 20),
            ["garbage\n", "LOGSTART 1 a\nb\n", "LOGSTART 2 c\n"]
        );
        let s = Split::LineStart {
            pattern: Regex::new("(?m)^LOGSTART \\d+ ").unwrap(),
            omit: true,
        };
        assert_eq!(all(&s, b"LOGSTART 1 a\nLOGSTART 2 b\n", 1 << 20), ["a\n"]);
    }

    #[test]
    fn line_end() {
        let s = Split::LineEnd {
            pattern: Regex::new("(?m)LOGEND \\d+").unwrap(),
            omit: false,
        };
        assert_eq!(
            all(&s, b"a LOGEND 1\nb LOGEND 2 tail", 1 << 20),
            ["a LOGEND 1", "\nb LOGEND 2"]
        );
        let s = Split::LineEnd {
            pattern: Regex::new("(?m)LOGEND \\d+").unwrap(),
            omit: true,
        };
        assert_eq!(all(&s, b"a LOGEND 1\n", 1 << 20), ["a "]);
    }

    #[test]
    fn utf16_newline_only_at_character_boundaries() {
        let (newline, unit) = Decode::Other(encoding_rs::UTF_16LE).newline();
        let s = Split::Newline { newline, unit };
        // "\u{0A41}" is 0x41 0x0A in UTF-16LE: its second byte must not end a line.
        let data: Vec<u8> = "a\u{0A41}\nb\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let found = s.find(&data, 1 << 20).unwrap();
        assert_eq!(found.token, 0..4);
    }

    #[test]
    fn raw_chunks() {
        assert_eq!(
            all(&Split::Raw, b"testlog1\n\ttestlog2\n\t", 8),
            ["testlog1", "\n\ttestlo"]
        );
    }

    #[test]
    fn bodies() {
        let t = Trim {
            leading: true,
            trailing: true,
        };
        assert_eq!(Decode::Utf8.body(b"  x \r", t), Some(Value::from("x")));
        assert_eq!(Decode::Utf8.body(b"   ", t), None);
        assert_eq!(
            Decode::Utf8Raw.body(b"\xff", t),
            Some(Value::Bytes(vec![0xff].into()))
        );
        assert_eq!(
            Decode::Bytes.body(b" a ", t),
            Some(Value::Bytes(b" a ".as_slice().into()))
        );
        let latin1 = Decode::from_name("latin1").unwrap();
        assert_eq!(latin1.body(b"caf\xe9", t), Some(Value::from("café")));
        let utf16 = Decode::from_name("utf-16be").unwrap();
        assert_eq!(utf16.body(&[0, b'h', 0, b'i'], t), Some(Value::from("hi")));
        assert!(Decode::from_name("klingon").is_none());
    }

    proptest::proptest! {
        /// Bodies of any bytes, mostly text with some invalid or cut sequences: a valid
        /// token is kept as is, an invalid one is replaced as std's lossy decoding does
        /// (`utf8`) or kept as bytes (`utf8-raw`).
        #[test]
        fn utf8_bodies_match_std(
            text in "[a-zé€😀 ]{0,80}",
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3),
        ) {
            let mut token = text.into_bytes();
            let at = cut.index(token.len() + 1);
            token.splice(at..at, noise);
            let keep = Trim { leading: false, trailing: false };
            let lossy = String::from_utf8_lossy(&token).into_owned();
            let expected = (!token.is_empty()).then(|| Value::from(lossy.as_str()));
            proptest::prop_assert_eq!(Decode::Utf8.body(&token, keep), expected);
            let raw = match std::str::from_utf8(&token) {
                _ if token.is_empty() => None,
                Ok(s) => Some(Value::from(s)),
                Err(_) => Some(Value::Bytes(token.as_slice().into())),
            };
            proptest::prop_assert_eq!(Decode::Utf8Raw.body(&token, keep), raw);
        }

        /// A token validated ahead gets the body its bytes would, trimmed or not.
        #[test]
        fn bodies_of_valid_text_match_bodies_of_bytes(
            text in "[ \t\r\na-zé€😀]{0,40}",
            leading in proptest::prelude::any::<bool>(),
            trailing in proptest::prelude::any::<bool>(),
        ) {
            let trim = Trim { leading, trailing };
            for decode in [Decode::Utf8, Decode::Utf8Raw] {
                proptest::prop_assert_eq!(
                    decode.body_text(&text, trim).map(|t| Value::Str(t.into())),
                    decode.body(text.as_bytes(), trim)
                );
            }
        }
    }
}
