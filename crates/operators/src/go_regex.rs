//! User regexes are written for Go's RE2 (`regexp`); the regex crate reads nearly the same
//! syntax, with differences that change what a pattern means. [`compile`] rewrites a Go
//! pattern so the regex crate gives Go's result:
//!
//! - `\d \w \s \b` (and their negations) are ASCII-only in Go, Unicode-aware here;
//! - a `{` that does not start a valid repetition (`{n}`, `{n,}`, `{n,m}`) is a literal in Go
//!   and an error here, and a lone `}` is written escaped to be safe;
//! - inside a character class Go takes `[`, `&&`, `~~` and `--` literally, while the regex
//!   crate reads nested classes and set operations;
//! - `\Q...\E` quotes literal text in Go only.
//!
//! Everything else is passed through; a pattern Go refuses may still compile here.

use regex::Regex;

/// Go's `\d`, `\w` and `\s` as class contents (for use inside `[...]`).
const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = r"\t\n\f\r ";

/// Compiles a Go regex.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&translate(pattern))
}

/// The class contents of a Perl class escape (`d`, `w`, `s`), if `c` is one.
fn perl_class(c: char) -> Option<(&'static str, bool)> {
    match c {
        'd' => Some((DIGIT, false)),
        'D' => Some((DIGIT, true)),
        'w' => Some((WORD, false)),
        'W' => Some((WORD, true)),
        's' => Some((SPACE, false)),
        'S' => Some((SPACE, true)),
        _ => None,
    }
}

/// How many characters after a `{` complete a valid Go repetition (`n}`, `n,}`, `n,m}`).
fn repeat_len(mut after: impl Iterator<Item = char>) -> Option<usize> {
    let (mut len, mut min_digits, mut comma) = (0, 0, false);
    loop {
        let c = after.next()?;
        len += 1;
        match c {
            '0'..='9' if !comma => min_digits += 1,
            '0'..='9' => {}
            ',' if !comma && min_digits > 0 => comma = true,
            '}' if min_digits > 0 => return Some(len),
            _ => return None,
        }
    }
}

/// Copies an escape that takes an argument (`\p{..}`, `\pL`, `\x{..}`, `\xHH`) from
/// `chars` after its letter.
fn copy_argument(
    letter: char,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) {
    if chars.peek() == Some(&'{') {
        for c in chars.by_ref() {
            out.push(c);
            if c == '}' {
                break;
            }
        }
    } else {
        let count = if letter == 'x' { 2 } else { 1 };
        for _ in 0..count {
            if let Some(c) = chars.next() {
                out.push(c);
            }
        }
    }
}

/// Rewrites a Go pattern for the regex crate (see the module docs).
pub(crate) fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                None => out.push('\\'),
                Some('Q') => {
                    let mut literal = String::new();
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        literal.push(q);
                    }
                    out.push_str(&regex::escape(&literal));
                }
                Some(e) if perl_class(e).is_some() => {
                    if let Some((set, negated)) = perl_class(e) {
                        out.push_str(if negated { "[^" } else { "[" });
                        out.push_str(set);
                        out.push(']');
                    }
                }
                Some(b @ ('b' | 'B')) => {
                    out.push_str("(?-u:\\");
                    out.push(b);
                    out.push(')');
                }
                Some(e @ ('p' | 'P' | 'x')) => {
                    out.push('\\');
                    out.push(e);
                    copy_argument(e, &mut chars, &mut out);
                }
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
            },
            '[' => class(&mut chars, &mut out),
            '{' => match repeat_len(chars.clone()) {
                Some(len) => {
                    out.push('{');
                    out.extend(chars.by_ref().take(len));
                }
                None => out.push_str("\\{"),
            },
            '}' => out.push_str("\\}"),
            other => out.push(other),
        }
    }
    out
}

/// Rewrites a character class whose `[` was just read.
fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    out.push('[');
    if chars.peek() == Some(&'^') {
        chars.next();
        out.push('^');
    }
    // A `]` right at the start is a literal in Go.
    if chars.peek() == Some(&']') {
        chars.next();
        out.push_str("\\]");
    }
    let mut previous = '[';
    while let Some(c) = chars.next() {
        match c {
            ']' => {
                out.push(']');
                return;
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class `[:name:]` is the same in both.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '-' if previous == '-' => out.push_str("\\-"),
            '\\' => match chars.next() {
                Some(e) if perl_class(e).is_some() => {
                    if let Some((set, negated)) = perl_class(e) {
                        if negated {
                            out.push_str("[^");
                            out.push_str(set);
                            out.push(']');
                        } else {
                            out.push_str(set);
                        }
                    }
                }
                Some(e @ ('p' | 'P' | 'x')) => {
                    out.push('\\');
                    out.push(e);
                    copy_argument(e, chars, out);
                }
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            },
            other => out.push(other),
        }
        previous = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> Option<String> {
        compile(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .find(text)
            .map(|m| m.as_str().to_owned())
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert_eq!(matches(r"\w+", "José"), Some("Jos".into()));
        assert_eq!(matches(r"\d+", "٣42"), Some("42".into()));
        assert_eq!(matches(r"[\w.]+", "a.bé"), Some("a.b".into()));
        assert_eq!(matches(r"[^\W]+", "éab"), Some("ab".into()));
        assert_eq!(
            matches(r"\bé", "xé"),
            Some("é".into()),
            "ASCII word boundary"
        );
    }

    #[test]
    fn braces_and_classes_follow_go() {
        assert_eq!(matches("{(.)}", "{a}"), Some("{a}".into()));
        assert_eq!(matches("a{2}", "aaa"), Some("aa".into()));
        assert_eq!(matches("a{,2}", "a{,2}"), Some("a{,2}".into()));
        assert_eq!(matches("[[]+", "[["), Some("[[".into()));
        assert_eq!(matches("[a&&b]+", "&&"), Some("&&".into()));
        assert_eq!(matches("[]a]+", "]a"), Some("]a".into()));
        assert_eq!(matches("[[:digit:]x]+", "1x2"), Some("1x2".into()));
        assert_eq!(matches(r"\Q.*\E", "a.*"), Some(".*".into()));
        assert_eq!(matches(r"\p{Greek}\x41\x{42}", "αAB"), Some("αAB".into()));
        assert_eq!(matches("(?P<n>x)", "x"), Some("x".into()));
    }

    #[test]
    fn translation_never_panics_on_odd_input() {
        for p in [
            "\\", "[", "[^", "\\Q", "{", "{1", "[\\", "\\p", "\\x", "[[:",
        ] {
            let _ = compile(p);
        }
    }
}
