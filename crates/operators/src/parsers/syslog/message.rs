//! A parsed syslog message and what every protocol shares: the PRI header, facility and
//! severity names, and the map the parser writes.

use centimane_core::{Map, Timestamp, Value};
use indexmap::IndexMap;

/// Structured data: SD-ID → parameter name → value.
pub(crate) type StructuredData = IndexMap<String, IndexMap<String, String>>;

/// The fields of one message. `None` is an absent or nil (`-`) field.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Message {
    pub priority: Option<u8>,
    pub version: Option<u16>,
    pub timestamp: Option<Timestamp>,
    pub hostname: Option<String>,
    pub appname: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    pub structured_data: Option<StructuredData>,
    pub message: Option<String>,
}

/// RFC 5427 facility keywords, by facility number.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Severity keyword and OpenTelemetry severity number, by syslog severity (PRI % 8).
pub(crate) const SEVERITIES: [(&str, u8); 8] = [
    ("emerg", 21),
    ("alert", 19),
    ("crit", 18),
    ("err", 17),
    ("warning", 13),
    ("notice", 10),
    ("info", 9),
    ("debug", 5),
];

/// A value that is absent when empty or the nil value `-`.
pub(crate) fn present(text: &str) -> Option<String> {
    (!text.is_empty() && text != "-").then(|| text.to_owned())
}

/// Reads `<PRI>` at the start of `text`: 0, or 1..=191 without leading zeros. Returns the
/// value and the rest.
pub(crate) fn read_pri(text: &str) -> Option<(u8, &str)> {
    let rest = text.strip_prefix('<')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let value: u16 = rest[..digits].parse().ok()?;
    let after = rest[digits..].strip_prefix('>')?;
    u8::try_from(value)
        .ok()
        .filter(|v| *v <= 191)
        .map(|v| (v, after))
}

impl Message {
    /// The attribute map Stanza builds: absent fields are left out; with `with_pri`, the
    /// priority, facility and the syslog severity (removed again when the entry's severity
    /// is set) are included. The timestamp is handled by the caller.
    pub(crate) fn into_map(self, with_pri: bool) -> Map {
        let mut map = Map::default();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(key.into(), v);
            }
        };
        put("hostname", self.hostname.map(Value::from));
        put("appname", self.appname.map(Value::from));
        put("proc_id", self.proc_id.map(Value::from));
        put("msg_id", self.msg_id.map(Value::from));
        put("message", self.message.map(Value::from));
        put(
            "structured_data",
            self.structured_data.map(|sd| {
                Value::from(
                    sd.into_iter()
                        .map(|(id, params)| {
                            let params: Map = params
                                .into_iter()
                                .map(|(k, v)| (k.into(), Value::Str(v.into())))
                                .collect();
                            (id.into(), Value::from(params))
                        })
                        .collect::<Map>(),
                )
            }),
        );
        put("version", self.version.map(|v| Value::Int(i64::from(v))));
        if with_pri && let Some(pri) = self.priority {
            put("priority", Some(Value::Int(i64::from(pri))));
            put("severity", Some(Value::Int(i64::from(pri % 8))));
            put("facility", Some(Value::Int(i64::from(pri / 8))));
            put(
                "facility_text",
                FACILITIES
                    .get(usize::from(pri / 8))
                    .map(|f| Value::Str((*f).into())),
            );
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_values() {
        assert_eq!(read_pri("<0>x"), Some((0, "x")));
        assert_eq!(read_pri("<191>"), Some((191, "")));
        for bad in ["<192>", "<01>", "<>", "<1234>", "1>", "<12", "<a>"] {
            assert_eq!(read_pri(bad), None, "{bad}");
        }
    }

    #[test]
    fn map_leaves_out_absent_fields() {
        let m = Message {
            priority: Some(123),
            hostname: Some("h".into()),
            ..Message::default()
        }
        .into_map(true);
        assert_eq!(m.len(), 5);
        assert_eq!(m["facility_text"], Value::from("cron2"));
        assert_eq!(m["severity"], Value::Int(3));
        let m = Message::default().into_map(true);
        assert!(m.is_empty());
    }
}
