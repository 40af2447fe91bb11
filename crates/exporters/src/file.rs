//! The `file` exporter: appends every batch to a file, as one OTLP/JSON
//! `ExportLogsServiceRequest` per line (DESIGN §8, like the Collector's file exporter) or,
//! with `format: proto`, as the Collector's length-prefixed protobuf.
//!
//! A batch is delivered once its bytes were written and flushed to the operating system,
//! which survives a crash of the agent (not of the machine: there is no fsync per batch).
//! On an I/O error the exporter cuts the partial record off again, reopens the file and
//! retries with backoff until it succeeds or the agent abandons the drain.
//!
//! With `rotation`, the file is renamed to a timestamped backup before a batch would take
//! it past `max_megabytes` (see [`rotate`]).

mod rotate;

use crate::config::Fields;
use crate::retry::{self, Attempt, RetryConfig};
use crate::stats::ExporterStats;
use crate::{convert, otlp_json};
use centimane_core::SharedBatch;
use centimane_core::config::ComponentId;
use prost::Message;
use rotate::Output;
pub use rotate::Rotation;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The `file` exporter's config.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    /// The file to append to; missing parent directories are created.
    pub path: PathBuf,
    pub format: FileFormat,
    /// `None`: the file grows without bound.
    pub rotation: Option<Rotation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One OTLP/JSON request per line (the default).
    Json,
    /// Each request as protobuf bytes after their length as a 4-byte big-endian integer,
    /// as the Collector's file exporter writes `format: proto`.
    Proto,
}

const KEYS: &[&str] = &["path", "format", "rotation"];

pub(crate) fn parse(config: serde_json::Value) -> Result<FileConfig, String> {
    let mut f = Fields::new("", config, KEYS)?;
    let path: String = f
        .take("path")?
        .filter(|p: &String| !p.is_empty())
        .ok_or("`path` is required: the file to write to")?;
    let format = match f.take::<String>("format")?.as_deref() {
        None | Some("json") => FileFormat::Json,
        Some("proto") => FileFormat::Proto,
        Some(other) => return Err(format!("`format` must be `json` or `proto`, not {other:?}")),
    };
    let rotation = f.take_raw("rotation").map(rotate::parse).transpose()?;
    Ok(FileConfig {
        path: PathBuf::from(path),
        format,
        rotation,
    })
}

/// Backoff between attempts after an I/O error. The `file` exporter has no
/// `retry_on_failure` key; a full disk or a lost mount needs an operator, so this only
/// keeps the retries from spinning.
pub(crate) fn io_retry() -> RetryConfig {
    RetryConfig {
        initial_interval: Duration::from_secs(1),
        ..RetryConfig::default()
    }
}

/// Opens the file for appending, creating it and its parent directories.
pub(crate) fn open(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// The bytes written for one batch.
fn encode(format: FileFormat, batch: &SharedBatch) -> Result<Vec<u8>, String> {
    let request = convert::to_otlp_request(&batch.entries);
    match format {
        FileFormat::Json => {
            let mut out = Vec::new();
            otlp_json::write_line(&request, &mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
        FileFormat::Proto => {
            let size = request.encoded_len();
            let len = u32::try_from(size).map_err(|_| {
                "the batch is larger than 4 GiB, too large for one record".to_owned()
            })?;
            let mut out = Vec::with_capacity(4 + size);
            out.extend_from_slice(&len.to_be_bytes());
            request.encode(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
    }
}

pub(crate) async fn run(
    id: ComponentId,
    config: FileConfig,
    file: File,
    retry: RetryConfig,
    stats: Arc<ExporterStats>,
    mut input: mpsc::Receiver<SharedBatch>,
    abandon: CancellationToken,
) {
    let path = Arc::new(config.path.clone());
    // Shared with the blocking writes.
    let output = Arc::new(Mutex::new(Output::new(config.path, file, config.rotation)));
    while let Some(batch) = crate::next_batch(&mut input, &abandon).await {
        let records = batch.len() as u64;
        if records == 0 {
            // Everything was filtered out upstream: no line to write, the tokens still settle.
            batch.acks.delivered();
            continue;
        }
        let bytes = match encode(config.format, &batch) {
            Ok(bytes) => Arc::new(bytes),
            Err(error) => {
                let rejected = retry::Outcome::Rejected(error);
                retry::settle(&id, &stats, batch.acks, records, rejected);
                continue;
            }
        };
        let outcome = retry::deliver(&id, records, &retry, &abandon, None, || {
            let (path, output, bytes) = (path.clone(), output.clone(), bytes.clone());
            async move {
                // std::fs on a blocking thread: tokio::fs would hop threads per call anyway.
                let written = tokio::task::spawn_blocking(move || {
                    output
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .append(&bytes)
                })
                .await;
                let error = match written {
                    Ok(Ok(())) => return Attempt::Accepted(None),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(), // the blocking task panicked or was cancelled
                };
                Attempt::Retry {
                    error: format!("writing {}: {error}", path.display()),
                    at_least: None,
                }
            }
        })
        .await;
        if !retry::settle(&id, &stats, batch.acks, records, outcome) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Acks, entry_with_all_fields};
    use crate::{ExporterConfig, parse_config, spawn};
    use centimane_core::{AckStatus, Batch, Entry, Value};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use serde_json::json;

    #[test]
    fn config() {
        let c = parse("file", json!({"path": "/tmp/x/out.json"}));
        assert_eq!(
            c,
            Ok(FileConfig {
                path: "/tmp/x/out.json".into(),
                format: FileFormat::Json,
                rotation: None,
            })
        );
        assert_eq!(
            parse("file", json!({"path": "p", "format": "proto"})).map(|c| c.format),
            Ok(FileFormat::Proto)
        );
        for (block, key) in [
            (json!({}), "`path`"),
            (json!({"path": ""}), "`path`"),
            (json!({"path": 5}), "`path`"),
            (json!({"path": "p", "format": "yaml"}), "`format`"),
            (json!({"path": "p", "rotation": 5}), "`rotation`"),
            (
                json!({"path": "p", "rotation": {"max_size": 1}}),
                "`rotation.max_size`",
            ),
        ] {
            let err = parse("file", block.clone()).unwrap_err();
            assert!(err.contains(key), "{block}: {err}");
        }
    }

    fn parse(kind: &str, v: serde_json::Value) -> Result<FileConfig, String> {
        match parse_config(kind, v)? {
            ExporterConfig::File(c) => Ok(c),
            other => Err(format!("{other:?}")),
        }
    }

    #[tokio::test]
    async fn appends_one_json_line_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.jsonl");
        let config = parse("file", json!({ "path": path })).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let task = spawn(
            "file".parse().unwrap(),
            ExporterConfig::File(config),
            rx,
            CancellationToken::new(),
            &Default::default(),
        )
        .unwrap()
        .task;
        let acks = Acks::new();
        let first = vec![entry_with_all_fields()];
        let second = vec![Entry::new(Value::from("two")), Entry::new(Value::Int(3))];
        // The empty batch (everything filtered upstream) settles without writing a line.
        for (n, entries) in [first.clone(), vec![], second.clone()]
            .into_iter()
            .enumerate()
        {
            let batch = Batch::new(entries, acks.token(n as u64).into());
            tx.send(batch.into_shared()).await.unwrap();
        }
        drop(tx);
        task.await.unwrap();
        assert_eq!(
            acks.wait_for(3).await,
            [
                (0, AckStatus::Delivered),
                (1, AckStatus::Delivered),
                (2, AckStatus::Delivered)
            ]
        );

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for (line, entries) in lines.iter().zip([&first, &second]) {
            let back: ExportLogsServiceRequest = serde_json::from_str(line).unwrap();
            assert_eq!(back, convert::to_otlp_request(entries));
        }
        assert!(lines[0].contains(r#""traceId":"0102030405060708090a0b0c0d0e0f10""#));
        assert!(lines[1].contains(r#""intValue":"3""#));
    }

    #[tokio::test]
    async fn proto_format_is_length_prefixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let config = parse("file", json!({ "path": path, "format": "proto" })).unwrap();
        let (tx, rx) = mpsc::channel(1);
        let task = spawn(
            "file".parse().unwrap(),
            ExporterConfig::File(config),
            rx,
            CancellationToken::new(),
            &Default::default(),
        )
        .unwrap()
        .task;
        let entries = vec![entry_with_all_fields()];
        tx.send(Batch::new(entries.clone(), Default::default()).into_shared())
            .await
            .unwrap();
        drop(tx);
        task.await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (len, body) = bytes.split_at(4);
        assert_eq!(
            u32::from_be_bytes(len.try_into().unwrap()) as usize,
            body.len()
        );
        let back = ExportLogsServiceRequest::decode(body).unwrap();
        assert_eq!(back, convert::to_otlp_request(&entries));
    }

    #[test]
    fn an_unopenable_path_is_a_startup_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileConfig {
            path: dir.path().to_owned(), // a directory
            format: FileFormat::Json,
            rotation: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let (_tx, rx) = mpsc::channel(1);
        let err = spawn(
            "file".parse().unwrap(),
            ExporterConfig::File(config),
            rx,
            CancellationToken::new(),
            &Default::default(),
        )
        .err()
        .unwrap();
        assert!(err.contains("cannot open"), "{err}");
    }

    /// /dev/full opens but fails every write with ENOSPC: the batch is retried, and when
    /// the drain is abandoned the task ends promptly with the ack failed.
    #[tokio::test]
    async fn write_errors_retry_until_abandoned() {
        let path = Path::new("/dev/full");
        let Ok(file) = open(path) else {
            return; // not on this system
        };
        let retry = RetryConfig {
            initial_interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(20),
            ..RetryConfig::default()
        };
        let (tx, rx) = mpsc::channel(1);
        let abandon = CancellationToken::new();
        let config = FileConfig {
            path: path.to_owned(),
            format: FileFormat::Json,
            rotation: None,
        };
        let task = tokio::spawn(run(
            "file".parse().unwrap(),
            config,
            file,
            retry,
            Arc::default(),
            rx,
            abandon.clone(),
        ));
        let acks = Acks::new();
        let batch = Batch::new(vec![Entry::new(Value::from("x"))], acks.token(9).into());
        tx.send(batch.into_shared()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(acks.seen().is_empty(), "still retrying");
        abandon.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("returns promptly")
            .unwrap();
        assert_eq!(acks.wait_for(1).await, [(9, AckStatus::Failed)]);
    }
}
