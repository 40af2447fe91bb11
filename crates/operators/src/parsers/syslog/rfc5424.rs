//! RFC 5424 messages, with the grammar of the go-syslog machine Stanza uses:
//! `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]`.
//! Header fields are printable US-ASCII of bounded length or the nil value `-`; the
//! timestamp is RFC 3339 with at most six fractional digits; structured data is `-` or
//! `[id param="value" ...]...` with `\"`, `\]` and `\\` escapes, SD names of 1 to 32
//! characters and no repeated SD-ID. Anything else fails the whole message.

use super::message::{Message, StructuredData, present, read_pri};
use centimane_core::Timestamp;
use indexmap::IndexMap;
use jiff::civil::DateTime;
use jiff::tz::Offset;

/// A cursor over the message text.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

fn is_graph(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// An SD-NAME character: printable, not `=`, space, `]` or `"`.
fn is_sd_name(b: u8) -> bool {
    is_graph(b) && !matches!(b, b'=' | b']' | b'"')
}

impl<'a> Scanner<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expecting {what} [col {}]", self.pos))
        }
    }

    /// A run of bytes satisfying `ok`, of `1..=max` bytes.
    fn take(&mut self, max: usize, ok: fn(u8) -> bool, what: &str) -> Result<&'a str, String> {
        let len = self.rest().bytes().take_while(|b| ok(*b)).count();
        if len == 0 || len > max {
            return Err(format!("expecting {what} [col {}]", self.pos));
        }
        let out = &self.rest()[..len];
        self.pos += len;
        Ok(out)
    }

    /// Exactly `n` digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let d = self.rest().get(..n)?;
        if !d.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.pos += n;
        d.parse().ok()
    }
}

/// Parses one RFC 5424 message.
pub(crate) fn parse(text: &str) -> Result<Message, String> {
    let (priority, rest) = read_pri(text)
        .ok_or_else(|| "expecting a priority value in the range 1-191 or equal to 0 within angle brackets [col 0]".to_owned())?;
    let mut s = Scanner {
        text,
        pos: text.len() - rest.len(),
    };
    let version = s.take(
        3,
        |b| b.is_ascii_digit(),
        "a version value in the range 1-999",
    )?;
    if version.starts_with('0') {
        return Err(format!(
            "expecting a version value in the range 1-999 [col {}]",
            s.pos
        ));
    }
    let mut msg = Message {
        priority: Some(priority),
        version: version.parse().ok(),
        ..Message::default()
    };
    s.expect(b' ', "a space")?;
    if s.peek() == Some(b'-') {
        s.pos += 1;
    } else {
        msg.timestamp = Some(timestamp(&mut s)?);
    }
    s.expect(b' ', "a space")?;
    msg.hostname = present(s.take(
        255,
        is_graph,
        "an hostname (from 1 to max 255 US-ASCII characters) or a nil value",
    )?);
    s.expect(b' ', "a space")?;
    msg.appname = present(s.take(
        48,
        is_graph,
        "an app-name (from 1 to max 48 US-ASCII characters) or a nil value",
    )?);
    s.expect(b' ', "a space")?;
    msg.proc_id = present(s.take(
        128,
        is_graph,
        "a procid (from 1 to max 128 US-ASCII characters) or a nil value",
    )?);
    s.expect(b' ', "a space")?;
    msg.msg_id = present(s.take(
        32,
        is_graph,
        "a msgid (from 1 to max 32 US-ASCII characters) or a nil value",
    )?);
    s.expect(b' ', "a space")?;
    if s.peek() == Some(b'-') {
        s.pos += 1;
    } else {
        msg.structured_data = Some(structured_data(&mut s)?);
    }
    match s.peek() {
        None => {}
        Some(b' ') => msg.message = present_message(&s.rest()[1..]),
        Some(_) => return Err(format!("parsing error [col {}]", s.pos)),
    }
    Ok(msg)
}

/// The free-form message; empty means absent.
fn present_message(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// `FULL-DATE "T" FULL-TIME`, checked digit by digit as the grammar does, then as a date.
fn timestamp(s: &mut Scanner<'_>) -> Result<Timestamp, String> {
    let start = s.pos;
    let bad = |s: &Scanner<'_>| {
        format!(
            "expecting a RFC3339MICRO timestamp or a nil value [col {}]",
            s.pos
        )
    };
    let num = |s: &mut Scanner<'_>, n: usize, max: u32| s.digits(n).filter(|v| *v <= max);
    let year = num(s, 4, 9999).ok_or_else(|| bad(s))?;
    s.expect(b'-', "'-'").map_err(|_| bad(s))?;
    let month = num(s, 2, 12).filter(|m| *m >= 1).ok_or_else(|| bad(s))?;
    s.expect(b'-', "'-'").map_err(|_| bad(s))?;
    let day = num(s, 2, 31).filter(|d| *d >= 1).ok_or_else(|| bad(s))?;
    s.expect(b'T', "'T'").map_err(|_| bad(s))?;
    let hour = num(s, 2, 23).ok_or_else(|| bad(s))?;
    s.expect(b':', "':'").map_err(|_| bad(s))?;
    let minute = num(s, 2, 59).ok_or_else(|| bad(s))?;
    s.expect(b':', "':'").map_err(|_| bad(s))?;
    let second = num(s, 2, 59).ok_or_else(|| bad(s))?;
    let mut nanos = 0i32;
    if s.peek() == Some(b'.') {
        s.pos += 1;
        let frac = s
            .take(6, |b| b.is_ascii_digit(), "a fraction of 1 to 6 digits")
            .map_err(|_| bad(s))?;
        let scale = 10i32.pow(9 - frac.len() as u32);
        nanos = frac.parse::<i32>().map_err(|_| bad(s))? * scale;
    }
    let offset_seconds = match s.peek() {
        Some(b'Z') => {
            s.pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            s.pos += 1;
            let h = num(s, 2, 23).ok_or_else(|| bad(s))?;
            s.expect(b':', "':'").map_err(|_| bad(s))?;
            let m = num(s, 2, 59).ok_or_else(|| bad(s))?;
            let secs = (h * 3600 + m * 60) as i32;
            if sign == b'-' { -secs } else { secs }
        }
        _ => return Err(bad(s)),
    };
    // Every number was range-checked above, so the narrowing casts are exact.
    let civil = DateTime::new(
        year as i16,
        month as i8,
        day as i8,
        hour as i8,
        minute as i8,
        second as i8,
        nanos,
    )
    .map_err(|e| format!("parsing time {:?}: {e}", &s.text[start..s.pos]))?;
    let offset = Offset::from_seconds(offset_seconds).map_err(|e| e.to_string())?;
    offset.to_timestamp(civil).map_err(|e| e.to_string())
}

/// One or more `[SD-ID (SP PARAM="VALUE")*]` elements.
fn structured_data(s: &mut Scanner<'_>) -> Result<StructuredData, String> {
    let mut data = StructuredData::new();
    let bad_sd = |s: &Scanner<'_>| {
        format!(
            "expecting a structured data section containing one or more elements (`[id( key=\"value\")*]+`) or a nil value [col {}]",
            s.pos
        )
    };
    if s.peek() != Some(b'[') {
        return Err(bad_sd(s));
    }
    while s.peek() == Some(b'[') {
        s.pos += 1;
        let id = s.take(32, is_sd_name, "a structured data element id (from 1 to max 32 US-ASCII characters; except `=`, ` `, `]`, and `\"`")?;
        if data.contains_key(id) {
            return Err(format!(
                "duplicate structured data element id [col {}]",
                s.pos
            ));
        }
        let mut params = IndexMap::new();
        while s.peek() == Some(b' ') {
            s.pos += 1;
            let name = s.take(32, is_sd_name, "a structured data parameter name")?;
            s.expect(b'=', "'=' after a structured data parameter name")?;
            s.expect(b'"', "'\"' before a structured data parameter value")?;
            params.insert(name.to_owned(), param_value(s)?);
        }
        s.expect(b']', "']' closing a structured data element")?;
        data.insert(id.to_owned(), params);
    }
    Ok(data)
}

/// A parameter value up to its closing quote, with its escapes resolved.
fn param_value(s: &mut Scanner<'_>) -> Result<String, String> {
    let mut value = String::new();
    let rest = s.rest();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                s.pos += i + 1;
                return Ok(value);
            }
            ']' => break,
            '\\' => match chars.next() {
                Some((_, e @ ('"' | ']' | '\\'))) => value.push(e),
                _ => {
                    return Err(format!(
                        "expecting chars `]`, `\"`, and `\\` to be escaped within param value [col {}]",
                        s.pos + i
                    ));
                }
            },
            c => value.push(c),
        }
    }
    Err(format!(
        "expecting a structured data parameter value closed by '\"' [col {}]",
        s.pos
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<86>1 2015-08-05T21:58:59.693Z 192.168.2.132 SecureAuth0 23108 ID52020 [SecureAuth@27389 UserHostAddress="192.168.2.132" Realm="SecureAuth0"][x a="\"q\]\\"] Found the user"#;

    #[test]
    fn full_message() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.priority, Some(86));
        assert_eq!(m.version, Some(1));
        assert_eq!(m.timestamp.unwrap().to_string(), "2015-08-05T21:58:59.693Z");
        assert_eq!(m.hostname.as_deref(), Some("192.168.2.132"));
        assert_eq!(m.msg_id.as_deref(), Some("ID52020"));
        let sd = m.structured_data.unwrap();
        assert_eq!(sd["SecureAuth@27389"]["Realm"], "SecureAuth0");
        assert_eq!(sd["x"]["a"], r#""q]\"#);
        assert_eq!(m.message.as_deref(), Some("Found the user"));
    }

    #[test]
    fn nil_values_and_offsets() {
        let m = parse("<0>12 2003-10-11T22:14:15.003-07:00 - - - - -  spaced ").unwrap();
        assert_eq!(m.timestamp.unwrap().to_string(), "2003-10-12T05:14:15.003Z");
        assert_eq!(
            (m.hostname, m.appname, m.structured_data),
            (None, None, None)
        );
        assert_eq!(m.message.as_deref(), Some(" spaced "));
        assert_eq!(parse("<1>1 - h a p m -").unwrap().message, None);
    }

    #[test]
    fn grammar_violations() {
        for bad in [
            "1 - - - - - -",
            "<1>0 - - - - - -",
            "<1>1000 - - - - - -",
            "<1>1 2003-02-30T00:00:00Z - - - - -",
            "<1>1 2003-10-11T22:14:15.0000001Z - - - - -",
            "<1>1 2003-10-11 - - - - -",
            "<1>1 - - - - - [a b]",
            "<1>1 - - - - - [a b=\"\\x\"]",
            "<1>1 - - - - - [a][a]",
            "<1>1 - - - - - [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]",
            "<1>1 - - - - - -x",
            "<1>1 - - - - -",
            "<1>1 - - - - - [a b=\"open]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
