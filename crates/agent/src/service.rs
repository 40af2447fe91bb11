//! The service: builds the pipelines of a config, runs them, and drains them on shutdown.
//!
//! Data flows receiver → pipeline channel → processors → fan-out → one channel per exporter.
//! Every channel is bounded, so a slow or unreachable backend fills them and the file
//! readers stop reading (backpressure) instead of buffering without limit.
//!
//! Shutdown order: receivers stop reading and close their side; each stage flushes and
//! closes the next when its input closes; exporters deliver what they hold. If that takes
//! longer than the drain timeout, exporters are told to abandon: their batches' acks fail
//! and those offsets stay uncommitted, so the lines are read again at the next start.

use crate::config::AgentConfig;
use crate::taps::Taps;
use anyhow::{Context, Result};
use centimane_core::config::ComponentId;
use centimane_core::{Batch, RecordEncoder, SharedBatch, Value};
use centimane_exporters::ExporterStats;
use centimane_processors::ProcessorConfig;
use centimane_receivers::filelog::FilelogStats;
use centimane_receivers::{Outputs, ReceiverContext, ReceiverHandle};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Batches buffered between a receiver and its pipeline (receiver batches are small, up to
/// 256 lines), unless the receiver gathers encoded records (see `receiver_encoder`).
const INPUT_CAPACITY: usize = 2;
/// Batches buffered between later stages. One: a processed batch holds thousands of
/// entries, and every extra slot is held in memory while the backend is down.
const STAGE_CAPACITY: usize = 1;

/// A running set of pipelines.
pub struct Service {
    receivers: Vec<ReceiverHandle>,
    tasks: Vec<JoinHandle<()>>,
    exporters: Vec<JoinHandle<()>>,
    abandon: CancellationToken,
    /// What self-metrics and health checks read.
    exporter_stats: Vec<(ComponentId, Arc<ExporterStats>)>,
    receiver_stats: Vec<ReceiverStats>,
}

/// A receiver's figures for self-metrics.
pub struct ReceiverStats {
    pub id: ComponentId,
    pub accepted: Arc<AtomicU64>,
    pub filelog: Option<Arc<FilelogStats>>,
}

impl Service {
    /// Builds and starts everything in `config`. If any component fails to start, the ones
    /// already started are stopped again (drained) before the error is returned, so a
    /// failed start leaves nothing running.
    pub async fn start(
        config: &AgentConfig,
        drain_timeout: Duration,
        taps: Option<Arc<Taps>>,
    ) -> Result<Service> {
        let mut service = Service::idle();
        match service.build(config, drain_timeout, taps) {
            Ok(()) => Ok(service),
            Err(e) => {
                service.shutdown(drain_timeout).await;
                Err(e)
            }
        }
    }

    /// Starts the components of `config`, recording each in `self` as soon as it runs.
    fn build(
        &mut self,
        config: &AgentConfig,
        drain_timeout: Duration,
        taps: Option<Arc<Taps>>,
    ) -> Result<()> {
        let runtime = tokio::runtime::Handle::current();
        let mut storage_dirs: HashMap<ComponentId, PathBuf> = HashMap::new();
        for (id, s) in &config.storages {
            if s.create_directory {
                std::fs::create_dir_all(&s.directory).with_context(|| {
                    format!(
                        "extension {id}: can't create directory {}",
                        s.directory.display()
                    )
                })?;
            }
            anyhow::ensure!(
                s.directory.is_dir(),
                "extension {id}: directory {} does not exist (create it, or set `create_directory: true`)",
                s.directory.display()
            );
            storage_dirs.insert(id.clone(), s.directory.clone());
        }

        // Exporters first: one instance per id, shared by every pipeline that lists it.
        let mut exporter_inputs: HashMap<&ComponentId, mpsc::Sender<SharedBatch>> = HashMap::new();
        for (id, c) in &config.exporters {
            if !config.pipelines.values().any(|p| p.exporters.contains(id)) {
                continue;
            }
            let (tx, rx) = mpsc::channel(STAGE_CAPACITY);
            // `storage_dirs`: where an exporter's persistent sending queue lives.
            let exporter = centimane_exporters::spawn(
                id.clone(),
                c.clone(),
                rx,
                self.abandon.clone(),
                &storage_dirs,
            )
            .map_err(|e| anyhow::anyhow!("exporter {id}: {e}"))?;
            self.exporters.push(exporter.task);
            self.exporter_stats.push((id.clone(), exporter.stats));
            exporter_inputs.insert(id, tx);
        }

        // Each receiver's pipelines: their input, and the encoder the receiver may encode
        // with if it feeds only that pipeline (see `Outputs::encoding`).
        type Input = (mpsc::Sender<Batch>, Option<(Arc<dyn RecordEncoder>, usize)>);
        let mut receiver_outputs: HashMap<&ComponentId, Vec<Input>> = HashMap::new();
        for (name, pipeline) in &config.pipelines {
            let receiver_encoder = receiver_encoder(config, pipeline, taps.is_some());
            // Receivers that encode hand over whole gathered batches (`send_batch_size`
            // records, megabytes): one of them waits, as between the later stages.
            let capacity = match receiver_encoder {
                Some(_) => STAGE_CAPACITY,
                None => INPUT_CAPACITY,
            };
            let (input_tx, mut rx) = mpsc::channel::<Batch>(capacity);
            let encoder = record_encoder(config, pipeline, taps.is_some());
            for r in &pipeline.receivers {
                receiver_outputs
                    .entry(r)
                    .or_default()
                    .push((input_tx.clone(), receiver_encoder.clone()));
            }
            for (i, id) in pipeline.processors.iter().enumerate() {
                let (tx, next_rx) = mpsc::channel(STAGE_CAPACITY);
                let c = config.processors[id].clone();
                let last = i + 1 == pipeline.processors.len();
                let encoder = encoder.clone().filter(|_| last);
                self.tasks
                    .push(centimane_processors::spawn(id.clone(), c, encoder, rx, tx));
                rx = next_rx;
            }
            let outputs: Vec<mpsc::Sender<SharedBatch>> = pipeline
                .exporters
                .iter()
                .map(|id| exporter_inputs[id].clone())
                .collect();
            let tap = taps.clone().map(|t| (t, format!("pipeline:{name}")));
            let stamp = config
                .opamp
                .as_ref()
                .and_then(|(o, _)| o.config_version_attribute.clone())
                .map(|key| (key, Value::Str(config.config_hash.clone().into())));
            self.tasks
                .push(tokio::spawn(fan_out(rx, outputs, tap, stamp)));
        }
        drop(exporter_inputs);

        for (id, c) in &config.receivers {
            let Some(inputs) = receiver_outputs.remove(id) else {
                continue;
            };
            let chain: Box<dyn centimane_core::OperatorChain> = match c.operators() {
                Some(ops) => Box::new(
                    centimane_operators::build_chain(&ops)
                        .map_err(|e| anyhow::anyhow!("receiver {id}: {e}"))?,
                ),
                None => Box::new(centimane_core::operator::Passthrough),
            };
            let header_chain = match c.header_operators() {
                Some(ops) => Some(Box::new(
                    centimane_operators::build_chain(ops)
                        .map_err(|e| anyhow::anyhow!("receiver {id}: header: {e}"))?,
                ) as Box<dyn centimane_core::OperatorChain>),
                None => None,
            };
            let storage_dir = match c.storage() {
                Some(s) => {
                    let sid: ComponentId = s.parse().map_err(anyhow::Error::msg)?;
                    Some(storage_dirs.get(&sid).cloned().with_context(|| {
                        format!(
                            "receiver {id}: storage {s} is not an enabled file_storage extension"
                        )
                    })?)
                }
                None => None,
            };
            let outputs = match <[Input; 1]>::try_from(inputs) {
                Ok([(sender, Some((encoder, batch_size)))]) => {
                    Outputs::new(vec![sender]).encoding(encoder, batch_size)
                }
                Ok([(sender, None)]) => Outputs::new(vec![sender]),
                Err(inputs) => Outputs::new(inputs.into_iter().map(|(s, _)| s).collect()),
            };
            let accepted = outputs.accepted();
            let ctx = ReceiverContext {
                id: id.clone(),
                chain,
                header_chain,
                storage_dir,
                outputs,
                runtime: runtime.clone(),
                drain_timeout: drain_timeout + Duration::from_secs(1),
            };
            let handle = centimane_receivers::start(c.clone(), ctx)
                .map_err(|e| anyhow::anyhow!("receiver {id}: {e}"))?;
            self.receiver_stats.push(ReceiverStats {
                id: id.clone(),
                accepted,
                filelog: handle.filelog_stats(),
            });
            self.receivers.push(handle);
        }
        Ok(())
    }

    /// A service running nothing (the moment between two configs).
    pub fn idle() -> Service {
        Service {
            receivers: Vec::new(),
            tasks: Vec::new(),
            exporters: Vec::new(),
            abandon: CancellationToken::new(),
            exporter_stats: Vec::new(),
            receiver_stats: Vec::new(),
        }
    }

    pub fn exporter_stats(&self) -> &[(ComponentId, Arc<ExporterStats>)] {
        &self.exporter_stats
    }

    pub fn receiver_stats(&self) -> &[ReceiverStats] {
        &self.receiver_stats
    }

    /// Healthy: something runs and no exporter is failing to reach its backend.
    pub fn health(&self) -> Result<(), String> {
        if self.receivers.is_empty() {
            return Err("no pipeline is running".into());
        }
        let failing: Vec<String> = self
            .exporter_stats
            .iter()
            .filter(|(_, s)| s.failing())
            .map(|(id, _)| id.to_string())
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "exporters failing to reach their backend: {}",
                failing.join(", ")
            ))
        }
    }

    /// Stops receiving, drains the pipelines (bounded by `drain_timeout`), and waits for
    /// the receivers to save their checkpoints.
    pub async fn shutdown(self, drain_timeout: Duration) {
        for r in &self.receivers {
            r.stop();
        }
        let drain = async {
            for t in self.tasks {
                let _ = t.await;
            }
            for t in self.exporters {
                let _ = t.await;
            }
        };
        tokio::pin!(drain);
        if tokio::time::timeout(drain_timeout, &mut drain)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?drain_timeout,
                "pipelines did not drain in time; unsent data will be read again at the next start"
            );
            self.abandon.cancel();
            drain.await;
        }
        let receivers = self.receivers;
        let _ = tokio::task::spawn_blocking(move || {
            receivers.into_iter().for_each(ReceiverHandle::join)
        })
        .await;
    }
}

/// The record encoder for a pipeline whose last processor can encode its batches as they
/// arrive (see `centimane_processors::batch`): it is a `batch` processor that never cuts a
/// batch (`send_batch_max_size: 0`), every exporter of the pipeline sends OTLP, and no
/// snapshot tap reads the pipeline's entries.
fn record_encoder(
    config: &AgentConfig,
    pipeline: &crate::config::Pipeline,
    tapped: bool,
) -> Option<Arc<dyn RecordEncoder>> {
    let last = config.processors.get(pipeline.processors.last()?)?;
    let batch_whole = matches!(last, ProcessorConfig::Batch(b) if b.send_batch_max_size == 0);
    let otlp_only = !pipeline.exporters.is_empty()
        && pipeline
            .exporters
            .iter()
            .all(|id| config.exporters[id].takes_encoded_records());
    (batch_whole && otlp_only && !tapped)
        .then(|| Arc::new(centimane_exporters::OtlpRecords) as Arc<dyn RecordEncoder>)
}

/// The record encoder a receiver that feeds only this pipeline encodes its batches with
/// (`Outputs::encoding`), and the batch size to gather: the pipeline's, when its one
/// processor is the `batch` that encodes, which then merges the records instead of
/// encoding them.
fn receiver_encoder(
    config: &AgentConfig,
    pipeline: &crate::config::Pipeline,
    tapped: bool,
) -> Option<(Arc<dyn RecordEncoder>, usize)> {
    let [only] = pipeline.processors.as_slice() else {
        return None;
    };
    let ProcessorConfig::Batch(batch) = &config.processors[only] else {
        return None;
    };
    Some((
        record_encoder(config, pipeline, tapped)?,
        batch.send_batch_size,
    ))
}

/// Hands each batch to every exporter of the pipeline; each gets its own holders of the
/// batch's acknowledgement tokens.
async fn fan_out(
    mut input: mpsc::Receiver<Batch>,
    outputs: Vec<mpsc::Sender<SharedBatch>>,
    tap: Option<(Arc<Taps>, String)>,
    stamp: Option<(String, Value)>,
) {
    while let Some(mut batch) = input.recv().await {
        if let Some((key, hash)) = &stamp {
            for e in &mut batch.entries {
                e.resource.insert(key.as_str().into(), hash.clone());
            }
            // Encoded records: their groups' resources are written when the request is.
            if let Some(logs) = &mut batch.encoded {
                for group in &mut logs.groups {
                    group.resource.insert(key.as_str().into(), hash.clone());
                }
            }
        }
        if let Some((taps, point)) = &tap {
            taps.record(point, &batch.entries);
        }
        if batch.is_empty() {
            // Everything was filtered out: nothing to deliver.
            batch.acks.delivered();
            continue;
        }
        // The last exporter gets `shared` itself, so that nothing here still holds encoded
        // records when it takes them (it then writes the request around them in place).
        let mut shared = Some(batch.into_shared());
        for (i, tx) in outputs.iter().enumerate() {
            let copy = if i + 1 == outputs.len() {
                shared.take().expect("sent once")
            } else {
                shared.clone().expect("kept until the last")
            };
            if tx.send(copy).await.is_err() {
                tracing::error!(
                    "an exporter stopped early; its batches will be read again at the next start"
                );
            }
        }
        // With no exporter, the tokens have nothing left to wait for.
        if let Some(shared) = shared {
            shared.acks.delivered();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the pipeline `logs` of a config with these processors and exporters gets a
    /// record encoder, and whether its receiver does.
    fn encoders(processors: &str, exporters: &str, tapped: bool) -> (bool, bool) {
        let text = format!(
            "receivers:\n  filelog:\n    include: [/tmp/x.log]\n\
             processors:\n  batch:\n  batch/cut:\n    send_batch_max_size: 10000\n  attributes:\n    actions: [{{key: a, value: b, action: insert}}]\n\
             exporters:\n  otlphttp:\n    endpoint: http://127.0.0.1:4318\n  otlp:\n    endpoint: 127.0.0.1:4317\n    tls: {{insecure: true}}\n  debug:\n\
             service:\n  pipelines:\n    logs:\n      receivers: [filelog]\n      processors: [{processors}]\n      exporters: [{exporters}]\n"
        );
        let config = crate::config::parse(&text, &|_| None).expect("valid config");
        let pipeline = &config.pipelines["logs"];
        (
            record_encoder(&config, pipeline, tapped).is_some(),
            receiver_encoder(&config, pipeline, tapped).is_some(),
        )
    }

    fn encodes(processors: &str, exporters: &str, tapped: bool) -> bool {
        encoders(processors, exporters, tapped).0
    }

    #[test]
    fn only_a_last_whole_batch_before_otlp_exporters_encodes() {
        assert!(encodes("batch", "otlphttp", false));
        assert!(encodes("attributes, batch", "otlphttp, otlp", false));
        assert!(
            !encodes("batch", "otlphttp, debug", false),
            "debug reads entries"
        );
        assert!(!encodes("batch, attributes", "otlphttp", false), "not last");
        assert!(!encodes("batch/cut", "otlphttp", false), "cuts batches");
        assert!(!encodes("", "otlphttp", false), "no batch processor");
        assert!(
            !encodes("batch", "otlphttp", true),
            "a snapshot tap reads entries"
        );
    }

    #[test]
    fn the_receiver_encodes_for_a_lone_encoding_batch() {
        assert_eq!(encoders("batch", "otlphttp, otlp", false), (true, true));
        assert_eq!(
            encoders("attributes, batch", "otlphttp", false),
            (true, false),
            "the attributes processor reads entries"
        );
        assert_eq!(encoders("batch", "debug", false), (false, false));
        assert_eq!(encoders("batch", "otlphttp", true), (false, false));
    }
}
