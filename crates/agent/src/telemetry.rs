//! The agent's own telemetry over HTTP: Prometheus metrics (`service.telemetry.metrics`)
//! named like the Collector's where it has an equivalent, and the `health_check`
//! extension. Both read the running service at request time, so they follow config swaps.

use crate::config::HealthCheckConfig;
use crate::control::{Control, SharedSupervisor};
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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

fn counter(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

fn gauge(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

fn label(key: &str, value: impl ToString) -> Labels {
    vec![(key.to_owned(), value.to_string())]
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn render(supervisor: &SharedSupervisor, control: &Control) -> axum::response::Response {
    let mut registry = Registry::default();
    let accepted = counter(
        &mut registry,
        "otelcol_receiver_accepted_log_records",
        "Log records the receiver handed to its pipelines.",
    );
    let sent = counter(
        &mut registry,
        "otelcol_exporter_sent_log_records",
        "Log records the backend accepted.",
    );
    let failed = counter(
        &mut registry,
        "otelcol_exporter_send_failed_log_records",
        "Log records given up on (not delivered).",
    );
    let rejected = counter(
        &mut registry,
        "centimane_exporter_rejected_log_records",
        "Log records the backend rejected permanently.",
    );
    let queue_size = gauge(
        &mut registry,
        "otelcol_exporter_queue_size",
        "Units in the sending queue.",
    );
    let queue_capacity = gauge(
        &mut registry,
        "otelcol_exporter_queue_capacity",
        "Capacity of the sending queue.",
    );
    let failing = gauge(
        &mut registry,
        "centimane_exporter_failing",
        "1 while the exporter fails to reach its backend.",
    );
    let files_open = gauge(
        &mut registry,
        "centimane_filelog_files_open",
        "Files the receiver holds open.",
    );
    let behind = gauge(
        &mut registry,
        "centimane_filelog_bytes_behind",
        "Bytes written to open files and not read yet.",
    );
    let checkpoint_age = gauge(
        &mut registry,
        "centimane_filelog_checkpoint_age_seconds",
        "Seconds since the checkpoint was last saved.",
    );
    let config = gauge(
        &mut registry,
        "centimane_config_info",
        "The running config's hash (label), always 1.",
    );
    let rss = gauge(
        &mut registry,
        "process_resident_memory_bytes",
        "Resident memory of the agent.",
    );
    let cpu = counter(
        &mut registry,
        "process_cpu_seconds",
        "CPU time (user+sys) of the agent, in seconds.",
    );
    if let Some(s) = supervisor.lock().await.as_ref() {
        let service = s.service();
        let now = centimane_core::Timestamp::now().as_nanosecond();
        for r in service.receiver_stats() {
            accepted
                .get_or_create(&label("receiver", &r.id))
                .inc_by(r.accepted.load(Ordering::Relaxed));
            if let Some(f) = &r.filelog {
                let l = label("receiver", &r.id);
                files_open
                    .get_or_create(&l)
                    .set(clamp(f.files_open.load(Ordering::Relaxed)));
                behind
                    .get_or_create(&l)
                    .set(clamp(f.bytes_behind.load(Ordering::Relaxed)));
                let saved = i128::from(f.checkpoint_saved_unix_nanos.load(Ordering::Relaxed));
                if saved > 0 {
                    let age = ((now - saved).max(0) / 1_000_000_000) as i64;
                    checkpoint_age.get_or_create(&l).set(age);
                }
            }
        }
        for (id, stats) in service.exporter_stats() {
            let l = label("exporter", id);
            let snap = stats.snapshot();
            sent.get_or_create(&l).inc_by(snap.sent_records);
            failed.get_or_create(&l).inc_by(snap.failed_records);
            rejected
                .get_or_create(&l)
                .inc_by(snap.rejected_records + snap.partially_rejected_records);
            queue_size.get_or_create(&l).set(clamp(snap.queued));
            queue_capacity
                .get_or_create(&l)
                .set(clamp(snap.queue_capacity));
            failing.get_or_create(&l).set(i64::from(stats.failing()));
        }
    }
    config
        .get_or_create(&label("hash", control.config_hash()))
        .set(1);
    if let Some((rss_bytes, cpu_seconds)) = process_usage() {
        rss.get_or_create(&Vec::new()).set(clamp(rss_bytes));
        cpu.get_or_create(&Vec::new()).inc_by(cpu_seconds);
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

/// Resident bytes and whole CPU seconds of this process, from /proc.
fn process_usage() -> Option<(u64, u64)> {
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
    Some((pages * u64::try_from(page).ok()?, ticks / hz))
}
