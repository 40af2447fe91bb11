//! The log record. It maps one to one onto an OTLP `LogRecord` plus its resource and scope.

use crate::value::{Map, Text, Value};

pub use jiff::Timestamp;

/// A log record as Stanza's operators see it (DESIGN §3).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When the event happened; `None` until a parser sets it.
    pub timestamp: Option<Timestamp>,
    /// When the agent read the record.
    pub observed_timestamp: Timestamp,
    pub body: Value,
    pub attributes: Map,
    pub resource: Map,
    /// OpenTelemetry SeverityNumber, 0 (unset) to 24.
    pub severity: u8,
    pub severity_text: Text,
    /// Stored as given: a trace id is normally 16 bytes, but Stanza does not validate lengths.
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub trace_flags: Vec<u8>,
    pub scope_name: Text,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            timestamp: None,
            observed_timestamp: Timestamp::UNIX_EPOCH,
            body: Value::Null,
            attributes: Map::default(),
            resource: Map::default(),
            severity: 0,
            severity_text: Text::default(),
            trace_id: Vec::new(),
            span_id: Vec::new(),
            trace_flags: Vec::new(),
            scope_name: Text::default(),
        }
    }
}

impl Entry {
    /// A new entry with the given body, observed now.
    pub fn new(body: Value) -> Self {
        Entry {
            body,
            observed_timestamp: Timestamp::now(),
            ..Entry::default()
        }
    }
}

/// Names of the OpenTelemetry severity numbers 1..=24 (index 0 is the unset severity).
pub const SEVERITY_NAMES: [&str; 25] = [
    "DEFAULT", "TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3", "DEBUG4",
    "INFO", "INFO2", "INFO3", "INFO4", "WARN", "WARN2", "WARN3", "WARN4", "ERROR", "ERROR2",
    "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4",
];

/// The canonical short name of a severity number (`"DEFAULT"` for 0 or out of range).
pub fn severity_name(severity: u8) -> &'static str {
    SEVERITY_NAMES
        .get(usize::from(severity))
        .copied()
        .unwrap_or("DEFAULT")
}
