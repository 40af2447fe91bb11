//! Splits expression source into tokens. Keywords (`and`, `in`, `matches` ...) come out as
//! words; the parser decides their role, so `body.in` still reads as a member access.

use centimane_core::Value;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// An identifier or keyword, including `$`.
    Word(String),
    /// A number literal: `Int` or `Double`.
    Num(Value),
    Str(String),
    Punct(&'static str),
}

/// Longest first, so `<=` wins over `<` and `?.` over `?`.
const PUNCTS: [&str; 26] = [
    "?.", "??", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", "{", "}", ",", ".", "?",
    ":", "+", "-", "*", "/", "%", "<", ">", "!",
];

/// Tokenizes `src`. Errors name the byte offset of the problem.
pub(super) fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut rest = src;
    while let Some(c) = rest.chars().next() {
        let at = src.len() - rest.len();
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c.is_ascii_digit() {
            let (num, len) = number(rest).map_err(|e| format!("{e} at offset {at}"))?;
            toks.push(Tok::Num(num));
            rest = &rest[len..];
        } else if c == '"' || c == '\'' || c == '`' {
            let (text, len) = string(rest, c).map_err(|e| format!("{e} at offset {at}"))?;
            toks.push(Tok::Str(text));
            rest = &rest[len..];
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let len = rest
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '$'))
                .unwrap_or(rest.len());
            toks.push(Tok::Word(rest[..len].to_owned()));
            rest = &rest[len..];
        } else if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            // `?.` followed by a digit is a ternary with a fraction (`a ?.5 : 1`), not chaining.
            if *p == "?." && rest[2..].starts_with(|ch: char| ch.is_ascii_digit()) {
                toks.push(Tok::Punct("?"));
                rest = &rest[1..];
            } else {
                toks.push(Tok::Punct(p));
                rest = &rest[p.len()..];
            }
        } else {
            return Err(format!("unexpected character {c:?} at offset {at}"));
        }
    }
    Ok(toks)
}

/// Reads a number: decimal or `0x` hex integers (with `_` separators), or a float with a
/// fraction and/or exponent. Returns the value and the bytes consumed.
fn number(text: &str) -> Result<(Value, usize), String> {
    let bytes = text.as_bytes();
    if text.starts_with("0x") || text.starts_with("0X") {
        let len = 2 + text[2..]
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '_'))
            .unwrap_or(text.len() - 2);
        let digits: String = text[2..len].chars().filter(|c| *c != '_').collect();
        let n = i64::from_str_radix(&digits, 16)
            .map_err(|_| format!("invalid hex number {:?}", &text[..len]))?;
        return Ok((Value::Int(n), len));
    }
    let digits_end = |from: usize| {
        from + bytes[from..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'_'))
            .unwrap_or(bytes.len() - from)
    };
    let mut end = digits_end(0);
    let mut float = false;
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits_end(end + 1);
        float = true;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        if bytes.get(exp).is_some_and(u8::is_ascii_digit) {
            end = digits_end(exp);
            float = true;
        }
    }
    let literal: String = text[..end].chars().filter(|c| *c != '_').collect();
    let value = if float {
        Value::Double(
            literal
                .parse()
                .map_err(|_| format!("invalid number {literal:?}"))?,
        )
    } else {
        Value::Int(
            literal
                .parse()
                .map_err(|_| format!("integer {literal} does not fit in 64 bits"))?,
        )
    };
    Ok((value, end))
}

/// Reads a quoted string starting at `text[0] == quote`. Backquoted strings are raw; the
/// others take Go-style escapes. Returns the text and the bytes consumed.
fn string(text: &str, quote: char) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' || quote == '`' {
            out.push(c);
            continue;
        }
        let (_, esc) = chars.next().ok_or("unterminated string")?;
        let mut hex = |n: usize| -> Result<char, String> {
            let digits: String = (0..n)
                .filter_map(|_| chars.next().map(|(_, c)| c))
                .collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("invalid escape \\{esc}{digits}"))
        };
        out.push(match esc {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            '0' => '\0',
            '\\' | '\'' | '"' | '`' => esc,
            'x' => hex(2)?,
            'u' => hex(4)?,
            'U' => hex(8)?,
            other => return Err(format!("invalid escape \\{other}")),
        });
    }
    Err("unterminated string".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap()
    }

    #[test]
    fn splits_operators_words_and_literals() {
        assert_eq!(
            words("body.a >= 1.5 && $ != 'x'"),
            vec![
                Tok::Word("body".into()),
                Tok::Punct("."),
                Tok::Word("a".into()),
                Tok::Punct(">="),
                Tok::Num(Value::Double(1.5)),
                Tok::Punct("&&"),
                Tok::Word("$".into()),
                Tok::Punct("!="),
                Tok::Str("x".into()),
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(words("0x1F"), vec![Tok::Num(Value::Int(31))]);
        assert_eq!(words("1_000"), vec![Tok::Num(Value::Int(1000))]);
        assert_eq!(words("2e3"), vec![Tok::Num(Value::Double(2000.0))]);
        assert!(tokenize("99999999999999999999").is_err());
    }

    #[test]
    fn string_escapes() {
        assert_eq!(words(r#""a\n\"b\u00e9""#), vec![Tok::Str("a\n\"bé".into())]);
        assert_eq!(words(r"`raw\n`"), vec![Tok::Str(r"raw\n".into())]);
        assert!(tokenize(r#""open"#).is_err());
        assert!(tokenize(r#""bad \q""#).is_err());
        assert!(tokenize(r#""\u12""#).is_err());
    }

    #[test]
    fn optional_chaining_is_not_a_ternary_fraction() {
        assert_eq!(
            words("a?.b"),
            vec![
                Tok::Word("a".into()),
                Tok::Punct("?."),
                Tok::Word("b".into())
            ]
        );
        assert_eq!(words("a?.5:1")[1], Tok::Punct("?"));
    }

    #[test]
    fn rejects_stray_characters() {
        assert!(tokenize("a # b").is_err());
    }
}
