//! The `memory_limiter` processor: keeps the agent's memory under a limit by refusing data
//! before the process gets near it. Same keys as the Collector's: `check_interval`
//! (required), and either `limit_mib` (+ `spike_limit_mib`, default 20% of the limit) or
//! `limit_percentage` (+ `spike_limit_percentage`) of the memory available to the process
//! (the cgroup's limit when there is one, else the machine's total).
//!
//! How it refuses: the soft limit is `limit - spike`. Every `check_interval` it reads the
//! process's resident set size (`/proc/self/statm`). While that is above the soft limit it
//! stops taking batches from its input channel. Nothing is dropped: the bounded channels
//! before it fill up, the receivers' sends block, and the readers stop reading (file
//! offsets stay uncommitted until the data is delivered). It takes batches again once the
//! RSS is back under the soft limit. Above the hard limit it also asks the allocator to
//! give freed memory back to the system (`malloc_trim`, the counterpart of the Collector's
//! forced GC), since freed-but-kept heap pages would otherwise keep the RSS high forever.
//!
//! Differences from the Collector: it measures the RSS, not the Go heap; and a refused
//! batch is never an error for the sender, only a wait.
//!
//! Shutdown: when its input is closed (the pipeline drains) it stops refusing and passes
//! on whatever is still queued, so a drain never waits on memory.
//!
//! Put it first in a pipeline's `processors`, as the Collector advises: stages before it
//! keep taking data while it refuses.

use centimane_core::Batch;
use centimane_core::config::{ComponentId, GoDuration};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::mpsc;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    check_interval: Option<GoDuration>,
    #[serde(default)]
    limit_mib: u64,
    #[serde(default)]
    spike_limit_mib: u64,
    #[serde(default)]
    limit_percentage: u64,
    #[serde(default)]
    spike_limit_percentage: u64,
}

/// Validated limits, in bytes.
#[derive(Debug, Clone)]
pub struct MemoryLimiterConfig {
    check_interval: Duration,
    /// The hard limit.
    limit: u64,
    /// The soft limit: `limit - spike`; above it, data is refused.
    soft_limit: u64,
}

pub(crate) fn parse(config: serde_json::Value) -> Result<MemoryLimiterConfig, String> {
    let raw: RawConfig =
        serde_json::from_value(crate::object_or_empty(config)).map_err(|e| e.to_string())?;
    let check_interval = match raw.check_interval {
        Some(d) if !d.0.is_zero() => d.0,
        _ => return Err("`check_interval` is required and must be greater than 0".into()),
    };
    if raw.limit_percentage > 100 || raw.spike_limit_percentage > 100 {
        return Err(
            "`limit_percentage` and `spike_limit_percentage` must be between 0 and 100".into(),
        );
    }
    let (limit, spike) = if raw.limit_mib > 0 {
        (raw.limit_mib * MIB, raw.spike_limit_mib * MIB)
    } else if raw.limit_percentage > 0 {
        let total = available_memory()
            .ok_or("`limit_percentage` needs the machine's memory size, which can't be read")?;
        (
            total / 100 * raw.limit_percentage,
            total / 100 * raw.spike_limit_percentage,
        )
    } else {
        return Err("set `limit_mib` or `limit_percentage` (greater than 0)".into());
    };
    limits(check_interval, limit, spike)
}

/// The Collector's rule: the spike defaults to a fifth of the limit and must stay below it.
fn limits(check_interval: Duration, limit: u64, spike: u64) -> Result<MemoryLimiterConfig, String> {
    let spike = if spike == 0 { limit / 5 } else { spike };
    if spike >= limit {
        return Err(format!(
            "`spike_limit_mib` ({} MiB) must be smaller than the limit ({} MiB)",
            spike / MIB,
            limit / MIB
        ));
    }
    Ok(MemoryLimiterConfig {
        check_interval,
        limit,
        soft_limit: limit - spike,
    })
}

pub(crate) async fn run(
    id: ComponentId,
    config: MemoryLimiterConfig,
    input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) {
    run_with(id, config, input, output, resident_bytes).await;
}

/// The loop, with the memory reading injected (tests use a fake one).
async fn run_with(
    id: ComponentId,
    config: MemoryLimiterConfig,
    mut input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
    mut measure: impl FnMut() -> Option<u64> + Send,
) {
    let mut next_check = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_check {
            wait_under_soft_limit(&id, &config, &input, &mut measure).await;
            next_check = tokio::time::Instant::now() + config.check_interval;
        }
        let batch = tokio::select! {
            b = input.recv() => b,
            _ = tokio::time::sleep_until(next_check) => continue,
        };
        let Some(batch) = batch else { break };
        if output.send(batch).await.is_err() {
            break;
        }
    }
    tracing::debug!(processor = %id, "stopped");
}

/// Returns once the RSS is under the soft limit (or can't be read, or the input is closed).
async fn wait_under_soft_limit(
    id: &ComponentId,
    config: &MemoryLimiterConfig,
    input: &mpsc::Receiver<Batch>,
    measure: &mut (impl FnMut() -> Option<u64> + Send),
) {
    let mut refusing = false;
    while let Some(used) = measure() {
        if used <= config.soft_limit || input.is_closed() {
            break;
        }
        if !refusing {
            refusing = true;
            tracing::warn!(
                processor = %id,
                rss_mib = used / MIB,
                soft_limit_mib = config.soft_limit / MIB,
                "memory above the soft limit: refusing data until it goes down"
            );
        }
        if used > config.limit {
            release_free_memory();
        }
        tokio::time::sleep(config.check_interval).await;
    }
    if refusing {
        tracing::info!(processor = %id, "memory back under the soft limit: taking data again");
    }
}

/// The process's resident set size, from the second field of `/proc/self/statm` (pages).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; it only reads a system setting.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok().filter(|&p| p > 0)?)
}

/// The memory available to the process: its cgroup's limit (v2, then v1) when one is set,
/// else the machine's total (`/proc/meminfo`).
fn available_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)?;
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .find_map(|v| v.trim().parse::<u64>().ok());
    // An unlimited cgroup v1 reports a huge number rather than "max".
    Some(cgroup.map_or(total, |c| c.min(total)))
}

/// Returns freed heap pages to the system so the RSS reflects what is really in use.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::test_support::*;
    use centimane_core::{AckStatus, Entry};
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn config_rules() {
        let c = parse(json!({"check_interval": "1s", "limit_mib": 100})).unwrap();
        assert_eq!(c.limit, 100 * MIB);
        assert_eq!(c.soft_limit, 80 * MIB, "spike defaults to 20%");
        let c = parse(json!({"check_interval": "1s", "limit_mib": 100, "spike_limit_mib": 30}))
            .unwrap();
        assert_eq!(c.soft_limit, 70 * MIB);
        let c = parse(
            json!({"check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 10}),
        )
        .unwrap();
        assert!(c.limit > c.soft_limit && c.soft_limit > 0);
        for (bad, want) in [
            (json!({"limit_mib": 100}), "`check_interval`"),
            (
                json!({"check_interval": "0s", "limit_mib": 1}),
                "`check_interval`",
            ),
            (
                json!({"check_interval": "1s"}),
                "`limit_mib` or `limit_percentage`",
            ),
            (
                json!({"check_interval": "1s", "limit_mib": 10, "spike_limit_mib": 10}),
                "`spike_limit_mib`",
            ),
            (
                json!({"check_interval": "1s", "limit_percentage": 101}),
                "between 0 and 100",
            ),
            (json!({"check_interval": "1s", "limit_mb": 1}), "`limit_mb`"),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn reads_this_process_memory() {
        let rss = resident_bytes().unwrap();
        assert!(rss > MIB, "{rss}");
        assert!(available_memory().unwrap() >= rss);
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_above_the_soft_limit_and_resumes_below_it() {
        let usage = Arc::new(AtomicU64::new(90 * MIB));
        let config = limits(Duration::from_millis(100), 100 * MIB, 20 * MIB).unwrap();
        let (in_tx, in_rx) = mpsc::channel(1);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let u = usage.clone();
        tokio::spawn(run_with(
            "memory_limiter".parse().unwrap(),
            config,
            in_rx,
            out_tx,
            move || Some(u.load(Ordering::Relaxed)),
        ));
        let rec = Arc::new(Recorder::default());
        in_tx
            .send(batch_with_token(vec![Entry::new("a".into())], 1, &rec))
            .await
            .unwrap();
        // Refusing: the batch stays in the channel, and a second send has to wait.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            out_rx.try_recv().is_err(),
            "nothing passes above the soft limit"
        );
        assert!(in_tx.try_send(Batch::default()).is_err(), "backpressure");
        assert!(rec.heard().is_empty(), "nothing was dropped");
        usage.store(50 * MIB, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let got = out_rx.try_recv().expect("flows again under the soft limit");
        assert_eq!(got.len(), 1);
        got.acks.delivered();
        assert_eq!(rec.heard(), [(1, AckStatus::Delivered)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_input_drains_even_above_the_limit() {
        let config = limits(Duration::from_millis(100), 100 * MIB, 20 * MIB).unwrap();
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let task = tokio::spawn(run_with(
            "memory_limiter".parse().unwrap(),
            config,
            in_rx,
            out_tx,
            || Some(500 * MIB),
        ));
        in_tx
            .send(Batch::new(vec![Entry::new("a".into())], Default::default()))
            .await
            .unwrap();
        drop(in_tx);
        assert_eq!(out_rx.recv().await.unwrap().len(), 1);
        assert!(out_rx.recv().await.is_none());
        task.await.unwrap();
    }
}
