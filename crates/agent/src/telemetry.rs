//! The agent's own telemetry over HTTP: Prometheus metrics (`service.telemetry.metrics`)
//! named like the Collector's where it has an equivalent, and the `health_check`
//! extension. Both read the running service at request time, so they follow config swaps.

use crate::config::HealthCheckConfig;
use crate::control::{Control, SharedSupervisor};
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use centimane_opamp_ext::{MetricKind, MetricSample, MetricValue};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

type Labels = Vec<(String, String)>;

/// Binds `address` and serves `/metrics` until the runtime ends.
pub async fn serve_metrics(
    address: &str,
    supervisor: SharedSupervisor,
    control: Arc<Control>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (supervisor, control) = (supervisor.clone(), control.clone());
            async move { render(&supervisor, &control).await }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(())
}

/// Binds the health check endpoint and serves it until the runtime ends.
pub async fn serve_health(
    config: &HealthCheckConfig,
    supervisor: SharedSupervisor,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.endpoint).await?;
    let app = Router::new().route(
        &config.path,
        get(move || {
            let supervisor = supervisor.clone();
            async move {
                let guard = supervisor.lock().await;
                let health = match guard.as_ref() {
                    Some(s) => s.service().health(),
                    None => Err("shutting down".to_owned()),
                };
                match health {
                    Ok(()) => (
                        StatusCode::OK,
                        r#"{"status":"Server available"}"#.to_owned(),
                    ),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({"status": "Server not available", "error": why})
                            .to_string(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the health check endpoint stopped");
        }
    });
    Ok(())
}

/// One metric point, named for both outputs: Prometheus (`/metrics`) and OTLP (the
/// `own_metrics` destination an OpAMP server offers, where process metrics follow the
/// semantic conventions).
struct Sample {
    prometheus: &'static str,
    otlp: &'static str,
    help: &'static str,
    unit: &'static str,
    kind: MetricKind,
    attributes: Vec<(&'static str, String)>,
    value: MetricValue,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The agent's metrics now, read from the running service and /proc.
async fn collect(supervisor: &SharedSupervisor, control: &Control) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut push = |name: &'static str,
                    help: &'static str,
                    unit: &'static str,
                    kind: MetricKind,
                    attr: (&'static str, &str),
                    value: MetricValue| {
        out.push(Sample {
            prometheus: name,
            otlp: name,
            help,
            unit,
            kind,
            attributes: vec![(attr.0, attr.1.to_owned())],
            value,
        });
    };
    let (counter, gauge) = (MetricKind::Counter, MetricKind::Gauge);
    let int = |v: u64| MetricValue::Int(clamp(v));
    if let Some(s) = supervisor.lock().await.as_ref() {
        let service = s.service();
        let now = centimane_core::Timestamp::now().as_nanosecond();
        for r in service.receiver_stats() {
            let id = r.id.to_string();
            let l = ("receiver", id.as_str());
            push(
                "otelcol_receiver_accepted_log_records",
                "Log records the receiver handed to its pipelines.",
                "{records}",
                counter,
                l,
                int(r.accepted.load(Ordering::Relaxed)),
            );
            if let Some(f) = &r.filelog {
                push(
                    "centimane_filelog_files_open",
                    "Files the receiver holds open.",
                    "{files}",
                    gauge,
                    l,
                    int(f.files_open.load(Ordering::Relaxed)),
                );
                push(
                    "centimane_filelog_bytes_behind",
                    "Bytes written to open files and not read yet.",
                    "By",
                    gauge,
                    l,
                    int(f.bytes_behind.load(Ordering::Relaxed)),
                );
                let saved = i128::from(f.checkpoint_saved_unix_nanos.load(Ordering::Relaxed));
                if saved > 0 {
                    let age = ((now - saved).max(0) / 1_000_000_000) as i64;
                    push(
                        "centimane_filelog_checkpoint_age_seconds",
                        "Seconds since the checkpoint was last saved.",
                        "s",
                        gauge,
                        l,
                        MetricValue::Int(age),
                    );
                }
            }
        }
        for (id, stats) in service.exporter_stats() {
            let id = id.to_string();
            let l = ("exporter", id.as_str());
            let snap = stats.snapshot();
            push(
                "otelcol_exporter_sent_log_records",
                "Log records the backend accepted.",
                "{records}",
                counter,
                l,
                int(snap.sent_records),
            );
            push(
                "otelcol_exporter_send_failed_log_records",
                "Log records given up on (not delivered).",
                "{records}",
                counter,
                l,
                int(snap.failed_records),
            );
            push(
                "centimane_exporter_rejected_log_records",
                "Log records the backend rejected permanently.",
                "{records}",
                counter,
                l,
                int(snap.rejected_records + snap.partially_rejected_records),
            );
            push(
                "otelcol_exporter_queue_size",
                "Units in the sending queue.",
                "1",
                gauge,
                l,
                int(snap.queued),
            );
            push(
                "otelcol_exporter_queue_capacity",
                "Capacity of the sending queue.",
                "1",
                gauge,
                l,
                int(snap.queue_capacity),
            );
            push(
                "centimane_exporter_failing",
                "1 while the exporter fails to reach its backend.",
                "1",
                gauge,
                l,
                MetricValue::Int(i64::from(stats.failing())),
            );
        }
    }
    push(
        "centimane_config_info",
        "The running config's hash (label), always 1.",
        "1",
        gauge,
        ("hash", &control.config_hash()),
        MetricValue::Int(1),
    );
    if let Some((rss_bytes, cpu_seconds)) = process_usage() {
        out.push(Sample {
            prometheus: "process_resident_memory_bytes",
            otlp: "process.memory.usage",
            help: "Resident memory of the agent.",
            unit: "By",
            kind: gauge,
            attributes: Vec::new(),
            value: int(rss_bytes),
        });
        out.push(Sample {
            prometheus: "process_cpu_seconds",
            otlp: "process.cpu.time",
            help: "CPU time (user+sys) of the agent, in seconds.",
            unit: "s",
            kind: counter,
            attributes: Vec::new(),
            value: MetricValue::Double(cpu_seconds),
        });
    }
    out
}

/// The samples for an OpAMP `own_metrics` destination.
pub async fn own_metrics(supervisor: &SharedSupervisor, control: &Control) -> Vec<MetricSample> {
    collect(supervisor, control)
        .await
        .into_iter()
        .map(|s| MetricSample {
            name: s.otlp,
            description: s.help,
            unit: s.unit,
            kind: s.kind,
            attributes: s.attributes,
            value: s.value,
        })
        .collect()
}

/// The Prometheus families of one metric name.
enum PromFamily {
    IntCounter(Family<Labels, Counter>),
    FloatCounter(Family<Labels, Counter<f64, AtomicU64>>),
    IntGauge(Family<Labels, Gauge>),
    FloatGauge(Family<Labels, Gauge<f64, AtomicU64>>),
}

async fn render(supervisor: &SharedSupervisor, control: &Control) -> axum::response::Response {
    let mut registry = Registry::default();
    let mut families: HashMap<&'static str, PromFamily> = HashMap::new();
    for s in collect(supervisor, control).await {
        let family = families.entry(s.prometheus).or_insert_with(|| {
            let f = match (s.kind, s.value) {
                (MetricKind::Counter, MetricValue::Int(_)) => {
                    PromFamily::IntCounter(Family::default())
                }
                (MetricKind::Counter, MetricValue::Double(_)) => {
                    PromFamily::FloatCounter(Family::default())
                }
                (MetricKind::Gauge, MetricValue::Int(_)) => PromFamily::IntGauge(Family::default()),
                (MetricKind::Gauge, MetricValue::Double(_)) => {
                    PromFamily::FloatGauge(Family::default())
                }
            };
            match &f {
                PromFamily::IntCounter(f) => registry.register(s.prometheus, s.help, f.clone()),
                PromFamily::FloatCounter(f) => registry.register(s.prometheus, s.help, f.clone()),
                PromFamily::IntGauge(f) => registry.register(s.prometheus, s.help, f.clone()),
                PromFamily::FloatGauge(f) => registry.register(s.prometheus, s.help, f.clone()),
            }
            f
        });
        let labels: Labels = s
            .attributes
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        match (family, s.value) {
            (PromFamily::IntCounter(f), MetricValue::Int(v)) => {
                f.get_or_create(&labels).inc_by(v.max(0) as u64);
            }
            (PromFamily::FloatCounter(f), MetricValue::Double(v)) => {
                f.get_or_create(&labels).inc_by(v);
            }
            (PromFamily::IntGauge(f), MetricValue::Int(v)) => {
                f.get_or_create(&labels).set(v);
            }
            (PromFamily::FloatGauge(f), MetricValue::Double(v)) => {
                f.get_or_create(&labels).set(v);
            }
            // One name always comes with one value type.
            _ => {}
        }
    }
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Resident bytes and CPU seconds of this process, from /proc.
fn process_usage() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let (page, hz) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some((pages * u64::try_from(page).ok()?, ticks as f64 / hz as f64))
}
