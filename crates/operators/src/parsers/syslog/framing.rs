//! RFC 6587 framing around RFC 5424 messages, as go-syslog's stream parsers read it when
//! Stanza hands them one entry: octet counting (`LEN SP MSG`, repeated) and non-transparent
//! framing (messages ended by LF or NUL). The parsers report each frame; Stanza keeps the
//! last report, so the result is that of the last frame, and any framing error ends the
//! stream with that error.

use super::message::Message;
use super::rfc5424;

/// go-syslog's default maximum frame length (RFC 5425 §4.3.1).
pub(crate) const DEFAULT_MAX_OCTETS: usize = 8192;

/// Reads octet-counted frames from `text`; the outcome is that of the last frame.
pub(crate) fn octet_counted(text: &str, max_octets: usize) -> Result<Message, String> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    loop {
        // MSG-LEN: go-syslog's digit test also lets `/` through, which then fails to parse.
        let digits = bytes[pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'/')
            .count();
        if digits == 0 {
            return Err(match bytes.get(pos) {
                None => "found EOF, expecting a MSGLEN".to_owned(),
                Some(b) => format!("found {:?}, expecting a MSGLEN", char::from(*b)),
            });
        }
        let len: u64 = text[pos..pos + digits]
            .parse()
            .map_err(|_| "invalid message length".to_owned())?;
        if len > max_octets as u64 {
            return Err(format!(
                "message length ({len}) exceeds maximum length ({max_octets})"
            ));
        }
        pos += digits;
        if bytes.get(pos) != Some(&b' ') {
            return Err("expecting a WS after the message length".to_owned());
        }
        pos += 1;
        if len == 0 || bytes.get(pos) != Some(&b'<') {
            return Err(format!("expecting a SYSLOGMSG containing {len} octets"));
        }
        // `len` is at most `max_octets`, a usize.
        let len = len as usize;
        let end = pos + len;
        let Some(frame) = bytes.get(pos..end) else {
            // Fewer bytes than announced: the rest is parsed, and the result is an error.
            let parsed = rfc5424::parse(&String::from_utf8_lossy(&bytes[pos..]));
            return Err(match parsed {
                Ok(_) => format!(
                    "found EOF after {:?}, expecting a SYSLOGMSG containing {len} octets",
                    &text[pos..]
                ),
                Err(e) => e,
            });
        };
        // A frame boundary inside a character makes the frame invalid UTF-8: an error.
        let frame = std::str::from_utf8(frame)
            .map_err(|_| "expecting a free-form optional message in UTF-8".to_owned())?;
        let result = rfc5424::parse(frame);
        pos = end;
        match bytes.get(pos) {
            None => return result,
            // A newline between frames is skipped; anything else must start the next frame.
            Some(b'\n') => pos += 1,
            Some(_) => {}
        }
    }
}

/// Reads frames ended by `trailer` from `text`; the outcome is that of the last frame.
pub(crate) fn non_transparent(text: &str, trailer: u8) -> Result<Message, String> {
    let mut last = None;
    for frame in text.as_bytes().split(|b| *b == trailer) {
        if frame.is_empty() {
            continue;
        }
        if frame[0] != b'<' {
            return Err("expecting a frame starting with '<'".to_owned());
        }
        // Splitting on an ASCII byte keeps every frame valid UTF-8.
        let frame = String::from_utf8_lossy(frame);
        last = Some(rfc5424::parse(&frame));
    }
    last.unwrap_or_else(|| Err("parsed value was not rfc3164 or rfc5424 compliant".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "<86>1 - host app - - - hello";

    #[test]
    fn octet_counting() {
        let framed = format!("{} {MSG}", MSG.len());
        assert_eq!(
            octet_counted(&framed, DEFAULT_MAX_OCTETS)
                .unwrap()
                .message
                .as_deref(),
            Some("hello")
        );
        let two = format!("5 <1>1 - - - - -\n{} {MSG}", MSG.len());
        assert!(
            octet_counted(&two, DEFAULT_MAX_OCTETS).is_err(),
            "first frame too short"
        );
        let two = format!(
            "{} <1>1 - - - - -{} {MSG}",
            "<1>1 - - - - -".len(),
            MSG.len()
        );
        assert_eq!(
            octet_counted(&two, DEFAULT_MAX_OCTETS)
                .unwrap()
                .message
                .as_deref(),
            Some("hello")
        );
        for bad in [
            format!("{} {MSG}", MSG.len() + 1),
            format!("{} {MSG}\n", MSG.len()),
            format!("{}{MSG}", MSG.len()),
            format!("1/ {MSG}"),
            format!("0 {MSG}"),
            format!("99999999999999999999999 {MSG}"),
            MSG.to_owned(),
        ] {
            assert!(octet_counted(&bad, DEFAULT_MAX_OCTETS).is_err(), "{bad}");
        }
        assert!(octet_counted(&format!("{} {MSG}", MSG.len()), MSG.len() - 1).is_err());
    }

    #[test]
    fn trailers() {
        let m = non_transparent(&format!("{MSG}\0"), 0).unwrap();
        assert_eq!(m.message.as_deref(), Some("hello"));
        assert!(non_transparent(&format!("{MSG}\n"), b'\n').is_ok());
        assert!(non_transparent("\0", 0).is_err());
        assert!(non_transparent("x\0", 0).is_err());
    }
}
