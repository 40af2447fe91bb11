//! The `debug` exporter: prints what reaches it, for people looking at a pipeline: to
//! stderr, beside the agent's own log (`use_internal_logger: true`, the default), or to
//! stdout (`false`), as the Collector's debug exporter does.
//!
//! - `verbosity: basic` (default): one line per batch, `<id>: N log records`.
//! - `normal`: one line per record: its time (the observed time if it has none), severity,
//!   body and attributes as compact JSON.
//! - `detailed`: every field of every record, grouped by resource and scope as the OTLP
//!   exporter would send them.
//!
//! `sampling_initial`/`sampling_thereafter` (defaults 2 and 1, as in the Collector) thin the
//! per-record output: in each second the first `sampling_initial` records are printed, then
//! every `sampling_thereafter`-th (0: none). The Collector samples its log messages with
//! these settings; per-record lines are our nearest equivalent. A batch is delivered as soon
//! as it is printed.

use crate::config::Fields;
use crate::convert;
use crate::stats::ExporterStats;
use centimane_core::config::ComponentId;
use centimane_core::entry::severity_name;
use centimane_core::{Entry, SharedBatch, Timestamp};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The `debug` exporter's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugConfig {
    pub verbosity: Verbosity,
    pub sampling_initial: u64,
    pub sampling_thereafter: u64,
    /// `true`: stderr, where the agent logs; `false`: stdout.
    pub use_internal_logger: bool,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Basic,
    Normal,
    Detailed,
}

const KEYS: &[&str] = &[
    "verbosity",
    "sampling_initial",
    "sampling_thereafter",
    "use_internal_logger",
];

pub(crate) fn parse(config: serde_json::Value) -> Result<DebugConfig, String> {
    let mut f = Fields::new("", config, KEYS)?;
    let d = DebugConfig::default();
    let verbosity = match f.take::<String>("verbosity")?.as_deref() {
        None | Some("basic") => Verbosity::Basic,
        Some("normal") => Verbosity::Normal,
        Some("detailed") => Verbosity::Detailed,
        Some(other) => {
            return Err(format!(
                "`verbosity` must be `basic`, `normal` or `detailed`, not {other:?}"
            ));
        }
    };
    Ok(DebugConfig {
        verbosity,
        sampling_initial: f.take("sampling_initial")?.unwrap_or(d.sampling_initial),
        sampling_thereafter: f
            .take("sampling_thereafter")?
            .unwrap_or(d.sampling_thereafter),
        use_internal_logger: f
            .take("use_internal_logger")?
            .unwrap_or(d.use_internal_logger),
    })
}

/// Decides which records are printed (see the module docs).
struct Sampler {
    initial: u64,
    thereafter: u64,
    window_start: Option<Instant>,
    seen: u64,
}

impl Sampler {
    fn new(config: &DebugConfig) -> Self {
        Sampler {
            initial: config.sampling_initial,
            thereafter: config.sampling_thereafter,
            window_start: None,
            seen: 0,
        }
    }

    fn admit(&mut self, now: Instant) -> bool {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if expired {
            self.window_start = Some(now);
            self.seen = 0;
        }
        self.seen += 1;
        if self.seen <= self.initial {
            return true;
        }
        // With `thereafter` 0 nothing more is printed: only 0 is a multiple of 0.
        (self.seen - self.initial).is_multiple_of(self.thereafter)
    }
}

pub(crate) async fn run<W: Write>(
    id: ComponentId,
    config: DebugConfig,
    mut out: W,
    stats: Arc<ExporterStats>,
    mut input: mpsc::Receiver<SharedBatch>,
    abandon: CancellationToken,
) {
    let mut sampler = Sampler::new(&config);
    while let Some(batch) = crate::next_batch(&mut input, &abandon).await {
        let now = Instant::now();
        let text = match config.verbosity {
            Verbosity::Basic => format!("{id}: {} log records\n", batch.len()),
            Verbosity::Normal => batch
                .entries
                .iter()
                .filter(|_| sampler.admit(now))
                .map(|entry| normal_line(entry) + "\n")
                .collect(),
            Verbosity::Detailed => {
                let request = convert::to_otlp_request(&batch.entries);
                detailed(&request, &mut || sampler.admit(now))
            }
        };
        // A synchronous write: this is a tool for looking at a pipeline by hand, and stderr
        // is expected to be read. A failed write is ignored: nobody could read an error
        // about stderr, and holding the acks back would only stall the receiver.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        stats.sent(batch.len() as u64, 0);
        batch.acks.delivered();
    }
}

/// `normal` verbosity: one line for one record.
fn normal_line(entry: &Entry) -> String {
    let time = entry.timestamp.unwrap_or(entry.observed_timestamp);
    let severity = if entry.severity_text.is_empty() {
        severity_name(entry.severity)
    } else {
        entry.severity_text.as_str()
    };
    let mut line = format!("{time} {severity} {}", one_line(&entry.body.to_text()));
    if !entry.attributes.is_empty() {
        // NaN and infinities print as null here; this output is for people, not parsers.
        if let Ok(attributes) = serde_json::to_string(&entry.attributes) {
            line.push(' ');
            line.push_str(&attributes);
        }
    }
    line
}

/// Escapes line breaks so that one record stays on one line.
fn one_line(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// `detailed` verbosity: the request, with every record for which `admit` says yes, and
/// the resource and scope headers of those records.
fn detailed(request: &ExportLogsServiceRequest, admit: &mut dyn FnMut() -> bool) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_detailed(&mut out, request, admit);
    out
}

fn write_detailed(
    out: &mut String,
    request: &ExportLogsServiceRequest,
    admit: &mut dyn FnMut() -> bool,
) -> fmt::Result {
    for (r, resource_logs) in request.resource_logs.iter().enumerate() {
        let mut resource_shown = false;
        for (s, scope_logs) in resource_logs.scope_logs.iter().enumerate() {
            let mut scope_shown = false;
            for (l, record) in scope_logs.log_records.iter().enumerate() {
                if !admit() {
                    continue;
                }
                if !resource_shown {
                    resource_shown = true;
                    writeln!(out, "ResourceLog #{r}")?;
                    writeln!(out, "Resource SchemaURL: {}", resource_logs.schema_url)?;
                    if let Some(resource) = &resource_logs.resource {
                        write_attributes(out, "Resource attributes", &resource.attributes)?;
                    }
                }
                if !scope_shown {
                    scope_shown = true;
                    writeln!(out, "ScopeLogs #{s}")?;
                    writeln!(out, "ScopeLogs SchemaURL: {}", scope_logs.schema_url)?;
                    let (name, version) = scope_logs
                        .scope
                        .as_ref()
                        .map_or(("", ""), |sc| (sc.name.as_str(), sc.version.as_str()));
                    writeln!(out, "InstrumentationScope {name} {version}")?;
                }
                writeln!(out, "LogRecord #{l}")?;
                writeln!(
                    out,
                    "ObservedTimestamp: {}",
                    nanos_text(record.observed_time_unix_nano)
                )?;
                writeln!(out, "Timestamp: {}", nanos_text(record.time_unix_nano))?;
                writeln!(out, "SeverityText: {}", record.severity_text)?;
                let name = u8::try_from(record.severity_number).map_or("DEFAULT", severity_name);
                writeln!(out, "SeverityNumber: {name}({})", record.severity_number)?;
                write!(out, "Body: ")?;
                match &record.body {
                    Some(body) => write_any(out, body)?,
                    None => write!(out, "Empty()")?,
                }
                writeln!(out)?;
                write_attributes(out, "Attributes", &record.attributes)?;
                writeln!(out, "Trace ID: {}", hex::encode(&record.trace_id))?;
                writeln!(out, "Span ID: {}", hex::encode(&record.span_id))?;
                writeln!(out, "Flags: {}", record.flags)?;
            }
        }
    }
    Ok(())
}

fn nanos_text(nanos: u64) -> String {
    Timestamp::from_nanosecond(i128::from(nanos))
        .map_or_else(|_| nanos.to_string(), |t| t.to_string())
}

fn write_attributes(out: &mut String, title: &str, attributes: &[KeyValue]) -> fmt::Result {
    if attributes.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title}:")?;
    for kv in attributes {
        write!(out, "     -> {}: ", kv.key)?;
        match &kv.value {
            Some(value) => write_any(out, value)?,
            None => write!(out, "Empty()")?,
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A value with its type, as the Collector's debug exporter prints it: `Str(x)`, `Int(1)`.
fn write_any(out: &mut String, value: &AnyValue) -> fmt::Result {
    use any_value::Value as V;
    match &value.value {
        None => write!(out, "Empty()"),
        Some(V::StringValue(s)) => write!(out, "Str({})", one_line(s)),
        Some(V::BoolValue(b)) => write!(out, "Bool({b})"),
        Some(V::IntValue(i)) => write!(out, "Int({i})"),
        Some(V::DoubleValue(d)) => write!(out, "Double({d})"),
        Some(V::BytesValue(b)) => write!(out, "Bytes({})", hex::encode(b)),
        Some(V::StringValueStrindex(i)) => write!(out, "StrIndex({i})"),
        Some(V::ArrayValue(array)) => {
            write!(out, "Slice([")?;
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    write!(out, ", ")?;
                }
                write_any(out, item)?;
            }
            write!(out, "])")
        }
        Some(V::KvlistValue(list)) => {
            write!(out, "Map({{")?;
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    write!(out, ", ")?;
                }
                write!(out, "{}: ", kv.key)?;
                match &kv.value {
                    Some(v) => write_any(out, v)?,
                    None => write!(out, "Empty()")?,
                }
            }
            write!(out, "}})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Acks, entry_with_all_fields};
    use centimane_core::{AckStatus, Batch, Value};
    use serde_json::json;
    use std::sync::Mutex;

    #[test]
    fn config() {
        assert_eq!(parse(json!(null)), Ok(DebugConfig::default()));
        let c = parse(
            json!({"verbosity": "detailed", "sampling_initial": 5, "sampling_thereafter": 200}),
        )
        .unwrap();
        assert_eq!(
            c,
            DebugConfig {
                verbosity: Verbosity::Detailed,
                sampling_initial: 5,
                sampling_thereafter: 200,
                use_internal_logger: true,
            }
        );
        assert!(
            !parse(json!({"use_internal_logger": false}))
                .unwrap()
                .use_internal_logger
        );
        for (block, key) in [
            (json!({"verbosity": "loud"}), "`verbosity`"),
            (json!({"sampling_initial": -1}), "`sampling_initial`"),
            (json!({"loglevel": "debug"}), "`loglevel`"),
        ] {
            let err = parse(block.clone()).unwrap_err();
            assert!(err.contains(key), "{block}: {err}");
        }
    }

    #[test]
    fn sampling_keeps_the_first_then_every_nth_per_second() {
        let mut s = Sampler {
            initial: 2,
            thereafter: 3,
            window_start: None,
            seen: 0,
        };
        let t0 = Instant::now();
        let kept: Vec<bool> = (0..8).map(|_| s.admit(t0)).collect();
        assert_eq!(kept, [true, true, false, false, true, false, false, true]);
        // A new second starts over.
        assert!(s.admit(t0 + Duration::from_secs(1)));
        let mut none_after = Sampler {
            initial: 1,
            thereafter: 0,
            window_start: None,
            seen: 0,
        };
        assert_eq!([none_after.admit(t0), none_after.admit(t0)], [true, false]);
    }

    #[test]
    fn normal_lines() {
        let line = normal_line(&entry_with_all_fields());
        assert_eq!(
            line,
            r#"2026-11-23T21:00:00.123456789Z INFO user logged in\nagain {"n":5,"ratio":0.25}"#
        );
        let mut bare = Entry::new(Value::Int(3));
        bare.observed_timestamp = Timestamp::from_second(1).unwrap();
        bare.severity = 13;
        assert_eq!(normal_line(&bare), "1970-01-01T00:00:01Z WARN 3");
    }

    #[test]
    fn detailed_shows_every_field() {
        let request = convert::to_otlp_request(&[entry_with_all_fields()]);
        let text = detailed(&request, &mut || true);
        for want in [
            "ResourceLog #0\n",
            "Resource attributes:\n     -> host.name: Str(web-1)\n",
            "InstrumentationScope app \n",
            "LogRecord #0\n",
            "Timestamp: 2026-11-23T21:00:00.123456789Z\n",
            "SeverityText: INFO\nSeverityNumber: INFO(9)\n",
            "Body: Str(user logged in\\nagain)\n",
            "     -> n: Int(5)\n     -> ratio: Double(0.25)\n",
            "Trace ID: 0102030405060708090a0b0c0d0e0f10\n",
            "Span ID: a1a2a3a4a5a6a7a8\n",
            "Flags: 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(detailed(&request, &mut || false), "");
    }

    #[test]
    fn nested_values_print_with_types() {
        let inner: centimane_core::Map = [("k".into(), Value::Bytes(vec![1].into()))]
            .into_iter()
            .collect();
        let value = Value::Array(Box::new(vec![
            Value::Bool(true),
            Value::from(inner),
            Value::Null,
        ]));
        let mut out = String::new();
        write_any(&mut out, &convert::any_value(&value)).unwrap();
        assert_eq!(out, "Slice([Bool(true), Map({k: Bytes(01)}), Empty()])");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn prints_and_delivers() {
        for (verbosity, want) in [
            (Verbosity::Basic, "debug/x: 2 log records\n"),
            (
                Verbosity::Normal,
                "1970-01-01T00:00:00Z DEFAULT a\n1970-01-01T00:00:00Z DEFAULT b\n",
            ),
        ] {
            let out = Shared::default();
            let (tx, rx) = mpsc::channel(1);
            let config = DebugConfig {
                verbosity,
                ..DebugConfig::default()
            };
            let task = tokio::spawn(run(
                "debug/x".parse().unwrap(),
                config,
                out.clone(),
                Arc::default(),
                rx,
                CancellationToken::new(),
            ));
            let acks = Acks::new();
            let entries = vec![Entry::default(), Entry::default()]
                .into_iter()
                .zip(["a", "b"])
                .map(|(mut e, body)| {
                    e.body = Value::from(body);
                    e
                })
                .collect();
            tx.send(Batch::new(entries, acks.token(1).into()).into_shared())
                .await
                .unwrap();
            drop(tx);
            task.await.unwrap();
            assert_eq!(acks.wait_for(1).await, [(1, AckStatus::Delivered)]);
            assert_eq!(
                String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
                want
            );
        }
    }
}
