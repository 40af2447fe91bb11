//! RFC 3164 (BSD) messages, with the grammar of the go-syslog machine Stanza uses:
//! `<PRI> SP* TIMESTAMP SP+ [HOSTNAME SP+] [TAG ["[" CONTENT "]"] ":" SP] MESSAGE ["\n"]`,
//! where the timestamp is `Mmm dd hh:mm:ss` (a one-digit day padded with a space or a zero)
//! and everything after it must be printable (or non-ASCII).
//!
//! The machine is a DFA that tries the readings with and without a hostname and a tag at
//! once; the one that consumes the most structure wins. Here that is decided directly: the
//! first word is the hostname when it can be one (printable, no `:`, followed by spaces and
//! more text); a tag is recognised when the text continues with `tag[content]: ` or
//! `tag: `; the message is what follows.

use super::message::{Message, present, read_pri};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Visible characters: printable ASCII, or any byte of a non-ASCII character.
fn is_visible(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) || b >= 0x80
}

/// A tag character: printable, not a space, `:` or `[`.
fn is_tag(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && !matches!(b, b' ' | b':' | b'[')
}

/// A content (PID) character: printable, not a space or a bracket.
fn is_content(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && !matches!(b, b' ' | b'[' | b']')
}

/// Checks `Mmm dd hh:mm:ss` at the start of `text` and returns its length (15).
fn stamp_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let stamp = b.get(..15)?;
    if !MONTHS.iter().any(|m| m.as_bytes() == &stamp[..3]) || stamp[3] != b' ' {
        return None;
    }
    let day_ok = matches!(
        (stamp[4], stamp[5]),
        (b' ' | b'0', b'1'..=b'9') | (b'1' | b'2', b'0'..=b'9') | (b'3', b'0' | b'1')
    );
    let digit = |i: usize, max: u8| stamp[i].is_ascii_digit() && stamp[i] <= max;
    let time_ok = ((stamp[7] <= b'1' && digit(7, b'1') && digit(8, b'9'))
        || (stamp[7] == b'2' && digit(8, b'3')))
        && stamp[9] == b':'
        && digit(10, b'5')
        && digit(11, b'9')
        && stamp[12] == b':'
        && digit(13, b'5')
        && digit(14, b'9');
    (day_ok && stamp[6] == b' ' && time_ok).then_some(15)
}

/// The parts of a message after the timestamp.
pub(crate) struct Parsed<'a> {
    pub message: Message,
    /// `Mmm dd hh:mm:ss`, to be read as a time by the caller (it needs a year and a zone).
    pub stamp: &'a str,
}

/// Parses one RFC 3164 message.
pub(crate) fn parse(text: &str) -> Result<Parsed<'_>, String> {
    let (priority, rest) = read_pri(text).ok_or_else(|| {
        "expecting a priority value in the range 1-191 or equal to 0 within angle brackets [col 0]"
            .to_owned()
    })?;
    let rest = rest.trim_start_matches(' ');
    let len = stamp_len(rest).ok_or("expecting a Stamp timestamp")?;
    let stamp = &rest[..len];
    let after = &rest[len..];
    let body = after.strip_suffix('\n').unwrap_or(after);
    if !body.bytes().all(is_visible) {
        return Err("expecting a content part composed by visible characters only".to_owned());
    }
    // At least one space after the timestamp, then a message of at least one character.
    let words = body
        .strip_prefix(' ')
        .filter(|w| !w.is_empty())
        .ok_or("expecting a message after the timestamp")?;
    let mut message = Message {
        priority: Some(priority),
        ..Message::default()
    };
    let mut msg = skip_spaces(words);
    if let Some((host, rest)) = hostname(msg) {
        message.hostname = present(host);
        msg = skip_spaces(rest);
    }
    if let Some((tag, content, rest)) = tag(msg) {
        message.appname = present(tag);
        message.proc_id = content.and_then(present);
        msg = rest;
    }
    message.message = (!msg.is_empty()).then(|| msg.to_owned());
    Ok(Parsed { message, stamp })
}

/// `text` without its leading spaces; a run of spaces alone keeps its last one (the machine
/// can only end a message on a character it read).
fn skip_spaces(text: &str) -> &str {
    let trimmed = text.trim_start_matches(' ');
    if trimmed.is_empty() && !text.is_empty() {
        &text[text.len() - 1..]
    } else {
        trimmed
    }
}

/// A hostname at the start of `text`: printable, no `:`, 1 to 255 bytes, followed by at
/// least one space and then at least one more character.
fn hostname(text: &str) -> Option<(&str, &str)> {
    let len = text
        .bytes()
        .take_while(|b| (0x21..=0x7e).contains(b) && *b != b':')
        .count();
    if len == 0 || len > 255 {
        return None;
    }
    let rest = text[len..].strip_prefix(' ')?;
    (!rest.is_empty()).then(|| (&text[..len], rest))
}

/// `TAG ["[" CONTENT "]"] ":" SP` at the start of `text`, followed by a message of at
/// least one character: the tag, the content and the message.
fn tag(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let len = text.bytes().take_while(|b| is_tag(*b)).count();
    if len == 0 || len > 48 {
        return None;
    }
    let mut rest = &text[len..];
    let mut content = None;
    if let Some(inner) = rest.strip_prefix('[') {
        let clen = inner.bytes().take_while(|b| is_content(*b)).count();
        rest = inner[clen..].strip_prefix(']')?;
        content = Some(&inner[..clen]);
    }
    let message = rest.strip_prefix(": ")?;
    (!message.is_empty()).then_some((&text[..len], content, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(
        text: &str,
    ) -> (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        let m = parse(text).unwrap().message;
        (m.hostname, m.appname, m.proc_id, m.message)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn common_shapes() {
        assert_eq!(
            fields("<34>Jan 12 06:30:00 1.2.3.4 apache_server: test message"),
            (
                some("1.2.3.4"),
                some("apache_server"),
                None,
                some("test message")
            )
        );
        assert_eq!(
            fields("<13>Feb  5 17:32:18 host sshd[42]: Accepted\n"),
            (some("host"), some("sshd"), some("42"), some("Accepted"))
        );
        assert_eq!(
            fields("<13>Feb 05 17:32:18 su: x"),
            (None, some("su"), None, some("x"))
        );
        assert_eq!(
            fields("<13>Feb 05 17:32:18 only"),
            (None, None, None, some("only"))
        );
        assert_eq!(
            fields("<13>   Feb 05 17:32:18 host  two words"),
            (some("host"), None, None, some("two words"))
        );
        assert_eq!(
            parse("<13>Feb 05 17:32:18 x").unwrap().stamp,
            "Feb 05 17:32:18"
        );
    }

    #[test]
    fn grammar_violations() {
        for bad in [
            "Jan 12 06:30:00 h m",
            "<34>Jan 2 06:30:00 h m",
            "<34>Jan 32 06:30:00 h m",
            "<34>Jan 12 24:30:00 h m",
            "<34>Jan 12 06:30:00",
            "<34>Jan 12 06:30:00 ",
            "<34>Jan 12 06:30:00 h\tm",
            "<34>Foo 12 06:30:00 h m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
