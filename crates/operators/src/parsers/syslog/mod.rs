//! `syslog_parser` (stanza.md §5.11): RFC 3164, RFC 5424 (optionally framed by octet
//! counting or a trailer, RFC 6587) or `none` (just an optional `<PRI>`). The fields go to
//! `parse_to` (default attributes) and the body is kept; the message's timestamp becomes the
//! entry's timestamp and PRI % 8 its severity.
//!
//! Stanza builds this from its generic parser plus two fix-ups, and their order shows in
//! the results, so it is kept: the parsed map carries `timestamp` and `severity` keys; an
//! implicit time parser then reads `attributes.timestamp` (unless a `timestamp:` block is
//! configured), the embedded parsers run, and only when all of that succeeded is the
//! severity moved from `attributes.severity` onto the entry and `attributes.timestamp`
//! removed. So a message without a timestamp is an error (the entry goes on, per
//! `on_error`, with the syslog severity still in its attributes), as is any `parse_to`
//! other than the attributes root.

mod framing;
mod message;
mod rfc3164;
mod rfc5424;

use super::{ParserBase, parser_config};
use crate::error::ProcessError;
use crate::operator::Operator;
use crate::time::LayoutIn;
use centimane_core::{Entry, Field, FieldRoot, Timestamp, Value};
use message::{Message, SEVERITIES, read_pri};
use serde_json::{Map as JsonMap, Value as Json};
use std::borrow::Cow;

parser_config!(SyslogConfig {
    protocol: String,
    location: Option<String>,
    #[serde(default)]
    enable_octet_counting: bool,
    non_transparent_framing_trailer: Option<String>,
    #[serde(default)]
    allow_skip_pri_header: bool,
    max_octets: Option<usize>,
});

/// How the text is read.
enum Protocol {
    /// RFC 3164, with its year-less stamp read in this location.
    Rfc3164(LayoutIn),
    Rfc5424(Framing),
    /// No syslog structure: an optional `<PRI>`, then the message.
    None {
        octet_counting: bool,
    },
}

enum Framing {
    Plain,
    OctetCounting { max_octets: usize },
    Trailer(u8),
}

struct SyslogParser {
    base: ParserBase,
    protocol: Protocol,
    allow_skip_pri_header: bool,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: SyslogConfig = crate::config::from_block(block)?;
    let location_name = cfg.location.take().unwrap_or_else(|| "UTC".to_owned());
    let location = match location_name.as_str() {
        "Local" => crate::time::local_zone(),
        name => jiff::tz::TimeZone::get(name)
            .map_err(|e| format!("`location`: unknown time zone `{name}`: {e}"))?,
    };
    let protocol = cfg.protocol.to_lowercase();
    let trailer = cfg.non_transparent_framing_trailer.take();
    let framed = trailer.is_some() || cfg.enable_octet_counting;
    let protocol = match protocol.as_str() {
        "" => return Err("missing field `protocol`".to_owned()),
        "rfc3164" if framed => {
            return Err(
                "octet counting and non-transparent framing are only compatible with protocol rfc5424"
                    .to_owned(),
            );
        }
        "rfc3164" => Protocol::Rfc3164(LayoutIn::gotime("Jan _2 15:04:05", location)?),
        "rfc5424" => Protocol::Rfc5424(match (trailer.as_deref(), cfg.enable_octet_counting) {
            (Some(_), true) => {
                return Err(
                    "only one of octet counting or non-transparent framing can be enabled"
                        .to_owned(),
                );
            }
            (Some("LF"), false) => Framing::Trailer(b'\n'),
            (Some("NUL"), false) => Framing::Trailer(0),
            (Some(other), false) => {
                return Err(format!(
                    "`non_transparent_framing_trailer`: {other:?} must be LF or NUL"
                ));
            }
            (None, true) => Framing::OctetCounting {
                max_octets: cfg
                    .max_octets
                    .filter(|m| *m > 0)
                    .unwrap_or(framing::DEFAULT_MAX_OCTETS),
            },
            (None, false) => Framing::Plain,
        }),
        "none" if trailer.is_some() => {
            return Err(
                "non-transparent framing is only compatible with protocol rfc5424".to_owned(),
            );
        }
        "none" => Protocol::None {
            octet_counting: cfg.enable_octet_counting,
        },
        other => {
            return Err(format!(
                "`protocol`: unsupported protocol `{other}` (use rfc3164, rfc5424 or none)"
            ));
        }
    };
    Ok(Box::new(SyslogParser {
        base: cfg.base()?,
        protocol,
        allow_skip_pri_header: cfg.allow_skip_pri_header,
    }))
}

/// Whether `text` holds `<` 1-3 digits `>` anywhere (Stanza's test for a PRI header).
fn has_pri(text: &str) -> bool {
    text.match_indices('<').any(|(i, _)| {
        let rest = &text[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (1..=3).contains(&digits) && rest[digits..].starts_with('>')
    })
}

impl SyslogParser {
    fn octet_counting(&self) -> bool {
        matches!(
            self.protocol,
            Protocol::Rfc5424(Framing::OctetCounting { .. })
                | Protocol::None {
                    octet_counting: true
                }
        )
    }

    /// Whether PRI-derived fields are left out: a PRI-less message that was accepted
    /// because of `allow_skip_pri_header`. Stanza looks at the body here, not `parse_from`.
    fn skips_pri(&self, body: &str) -> bool {
        !self.octet_counting()
            && self.allow_skip_pri_header
            && body.len() > 1
            && !body.starts_with('<')
    }

    /// Parses `text` into a message (for RFC 3164 with the time of its stamp filled in).
    fn parse_text(&mut self, text: &str) -> Result<Message, ProcessError> {
        let allow_skip = self.allow_skip_pri_header;
        let parsed = match &self.protocol {
            Protocol::Rfc3164(_) => {
                let text = with_pri(text, allow_skip);
                let parsed = rfc3164::parse(&text).map_err(ProcessError::Invalid)?;
                let mut message = parsed.message;
                if let Protocol::Rfc3164(stamp_layout) = &mut self.protocol {
                    message.timestamp = Some(stamp_layout.parse(parsed.stamp, Timestamp::now)?);
                }
                Ok(message)
            }
            Protocol::Rfc5424(Framing::Plain) => rfc5424::parse(&with_pri(text, allow_skip)),
            Protocol::Rfc5424(Framing::OctetCounting { max_octets }) => {
                framing::octet_counted(text, *max_octets)
            }
            Protocol::Rfc5424(Framing::Trailer(trailer)) => {
                framing::non_transparent(text, *trailer)
            }
            Protocol::None { octet_counting } => Ok(raw_message(text, *octet_counting)),
        };
        parsed.map_err(ProcessError::Invalid)
    }

    /// Stanza's implicit `timestamp:` block: reads `attributes.timestamp`, which holds the
    /// message's time only when the map went to the attributes root.
    fn native_time(&self, entry: &mut Entry, time: Option<Timestamp>) -> Result<(), ProcessError> {
        let to_attributes = self.base.parse_to() == &Field::attributes();
        match time {
            Some(t) if to_attributes => {
                entry.timestamp = Some(t);
                Ok(())
            }
            _ if entry.attributes.contains_key("timestamp") => Err(ProcessError::WrongType {
                what: "a time",
                got: entry.attributes["timestamp"].type_name(),
            }),
            _ => Err(ProcessError::MissingField(Field::new(
                FieldRoot::Attributes,
                vec!["timestamp".to_owned()],
            ))),
        }
    }
}

/// `text` with `<0>` in front when it has no PRI and that is allowed, as Stanza does.
fn with_pri(text: &str, allow_skip: bool) -> Cow<'_, str> {
    if allow_skip && !has_pri(text) {
        Cow::Owned(format!("<0>{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `protocol: none`: an optional octet count (stripped only when followed by a space), an
/// optional `<PRI>`, and the rest as the message.
fn raw_message(text: &str, octet_counting: bool) -> Message {
    let mut rest = text;
    if octet_counting {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(' ') {
            rest = &rest[digits + 1..];
        }
    }
    let mut message = Message::default();
    if let Some((pri, after)) = read_pri(rest) {
        message.priority = Some(pri);
        rest = after;
    }
    message.message = (!rest.is_empty()).then(|| rest.to_owned());
    message
}

impl Operator for SyslogParser {
    fn apply(&mut self, entry: &mut Entry) -> Result<(), ProcessError> {
        let skip_pri = match &entry.body {
            Value::Str(body) => self.skips_pri(body),
            other if self.allow_skip_pri_header && !self.octet_counting() => {
                return Err(ProcessError::WrongType {
                    what: "syslog",
                    got: other.type_name(),
                });
            }
            _ => false,
        };
        let message = match self.base.read(entry)? {
            Value::Str(text) => self.parse_text(text)?,
            other => {
                return Err(ProcessError::WrongType {
                    what: "syslog",
                    got: other.type_name(),
                });
            }
        };
        let is_raw = matches!(self.protocol, Protocol::None { .. });
        let time = message.timestamp;
        let mut map = message.into_map(!skip_pri);
        if let Some(t) = time {
            map.insert("timestamp".into(), Value::Str(t.to_string().into()));
        }
        self.base.write(entry, Value::Map(Box::new(map)))?;
        // Stanza's `none` protocol carries no time, so it has no implicit time parser.
        let mut errors = Vec::new();
        if !is_raw
            && !self.base.has_time_parser()
            && let Err(e) = self.native_time(entry, time)
        {
            errors.push(e);
        }
        self.base.run_embedded(entry, errors)?;
        // The fix-ups after a successful parse: the severity moves onto the entry and the
        // intermediate timestamp goes.
        if !skip_pri {
            match entry.attributes.shift_remove("severity") {
                Some(Value::Int(s @ 0..=7)) => {
                    let (text, number) = SEVERITIES[s as usize];
                    entry.severity = number;
                    entry.severity_text = text.into();
                }
                // `none` without a PRI has no severity to move.
                None if is_raw => {}
                _ => {
                    return Err(ProcessError::Invalid(
                        "severity field does not exist".to_owned(),
                    ));
                }
            }
        }
        if entry.attributes.shift_remove("timestamp").is_none() && !is_raw {
            return Err(ProcessError::Invalid(
                "failed to cleanup timestamp".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(cfg: Json) -> Result<Box<dyn Operator>, String> {
        let Json::Object(m) = cfg else {
            panic!("object")
        };
        build(m)
    }

    fn run(cfg: Json, body: &str) -> (Result<(), ProcessError>, Entry) {
        let mut e = Entry::new(body.into());
        let r = op(cfg).unwrap().apply(&mut e);
        (r, e)
    }

    #[test]
    fn rfc5424_sets_time_and_severity() {
        let (r, e) = run(
            json!({"protocol": "rfc5424"}),
            "<86>1 2015-08-05T21:58:59.693Z host app 1 ID [a b=\"c\"] msg",
        );
        r.unwrap();
        assert_eq!(e.timestamp.unwrap().to_string(), "2015-08-05T21:58:59.693Z");
        assert_eq!((e.severity, e.severity_text.as_str()), (9, "info"));
        assert_eq!(e.attributes["facility_text"], Value::from("authpriv"));
        assert!(!e.attributes.contains_key("severity"));
        assert!(!e.attributes.contains_key("timestamp"));
        assert_eq!(
            e.body,
            Value::from("<86>1 2015-08-05T21:58:59.693Z host app 1 ID [a b=\"c\"] msg")
        );
    }

    #[test]
    fn rfc5424_without_a_timestamp_is_an_error_like_stanza() {
        let (r, e) = run(json!({"protocol": "rfc5424"}), "<86>1 - host - - - - msg");
        assert!(r.is_err());
        assert_eq!(e.attributes["severity"], Value::Int(6), "fix-ups skipped");
        assert_eq!(e.severity, 0);
    }

    #[test]
    fn rfc3164_reads_the_stamp_in_the_location() {
        let (r, e) = run(
            json!({"protocol": "rfc3164", "location": "America/Detroit"}),
            "<34>Jan 12 06:30:00 1.2.3.4 apache_server: test message",
        );
        r.unwrap();
        let t = e
            .timestamp
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC);
        assert_eq!((t.month(), t.day(), t.hour()), (1, 12, 11));
        assert_eq!(e.attributes["appname"], Value::from("apache_server"));
        assert_eq!((e.severity, e.severity_text.as_str()), (18, "crit"));
    }

    #[test]
    fn skip_pri_header() {
        let cfg = json!({"protocol": "rfc3164", "allow_skip_pri_header": true});
        let (r, e) = run(cfg, "Jan 12 06:30:00 1.2.3.4 app: m");
        r.unwrap();
        assert_eq!(e.severity, 0);
        assert!(!e.attributes.contains_key("priority"));
        assert!(e.timestamp.is_some());
    }

    #[test]
    fn none_protocol() {
        let (r, e) = run(
            json!({"protocol": "none", "enable_octet_counting": true}),
            "33 <34>raw message",
        );
        r.unwrap();
        assert_eq!(e.attributes["message"], Value::from("raw message"));
        assert_eq!(
            (e.severity, e.attributes["facility"].clone()),
            (18, Value::Int(4))
        );
        let (r, e) = run(json!({"protocol": "none"}), "no pri");
        r.unwrap();
        assert_eq!(e.attributes.len(), 1);
        assert!(e.timestamp.is_none());
    }

    #[test]
    fn config_errors() {
        for cfg in [
            json!({}),
            json!({"protocol": "rfc9999"}),
            json!({"protocol": "rfc3164", "enable_octet_counting": true}),
            json!({"protocol": "rfc5424", "enable_octet_counting": true, "non_transparent_framing_trailer": "LF"}),
            json!({"protocol": "rfc5424", "non_transparent_framing_trailer": "CR"}),
            json!({"protocol": "rfc5424", "location": "Mars/Base"}),
        ] {
            assert!(op(cfg.clone()).is_err(), "{cfg}");
        }
    }

    #[test]
    fn pri_detection() {
        assert!(has_pri("x <1> y") && has_pri("<123>") && !has_pri("<1234>") && !has_pri("<>"));
    }
}
