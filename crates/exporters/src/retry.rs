//! Delivering one batch with retries: exponential backoff with jitter (`retry_on_failure`,
//! the Collector's `configretry.BackOffConfig`), cut short when the agent abandons the
//! drain, and the rules for settling the batch's acknowledgements afterwards.

use crate::config::Fields;
use crate::stats::ExporterStats;
use centimane_core::AckSet;
use centimane_core::config::{ComponentId, GoDuration};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `retry_on_failure`. Defaults are the Collector's, except `max_elapsed_time`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// `false`: one attempt per batch; a failed batch is dropped and reported failed.
    pub enabled: bool,
    /// The first wait (before jitter). Never zero, so a failing backend is not hammered.
    pub initial_interval: Duration,
    /// The longest wait (before jitter). Never zero.
    pub max_interval: Duration,
    /// Each wait is the previous one times this (at least 1).
    pub multiplier: f64,
    /// Each wait is moved at random by up to this fraction either way (0..=1), so agents
    /// that failed together do not retry together.
    pub randomization_factor: f64,
    /// Give up on a batch when the next wait would end later than this after its first
    /// attempt. Zero (the default) means never: retry until delivered or abandoned. This
    /// deliberately departs from the Collector's 5m: DESIGN §5 promises no loss, and a batch
    /// given up on here is only re-read after a restart.
    pub max_elapsed_time: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            multiplier: 1.5,
            randomization_factor: 0.5,
            max_elapsed_time: Duration::ZERO,
        }
    }
}

const KEYS: &[&str] = &[
    "enabled",
    "initial_interval",
    "max_interval",
    "multiplier",
    "randomization_factor",
    "max_elapsed_time",
];

/// Parses a `retry_on_failure` block; missing keys keep their defaults.
pub(crate) fn parse(value: serde_json::Value) -> Result<RetryConfig, String> {
    let mut f = Fields::new("retry_on_failure.", value, KEYS)?;
    let d = RetryConfig::default();
    let duration = |f: &mut Fields, key: &str, default: Duration| {
        f.take::<GoDuration>(key)
            .map(|d| d.map_or(default, Duration::from))
    };
    let cfg = RetryConfig {
        enabled: f.take("enabled")?.unwrap_or(d.enabled),
        initial_interval: duration(&mut f, "initial_interval", d.initial_interval)?,
        max_interval: duration(&mut f, "max_interval", d.max_interval)?,
        multiplier: f.take("multiplier")?.unwrap_or(d.multiplier),
        randomization_factor: f
            .take("randomization_factor")?
            .unwrap_or(d.randomization_factor),
        max_elapsed_time: duration(&mut f, "max_elapsed_time", d.max_elapsed_time)?,
    };
    if cfg.initial_interval.is_zero() {
        return Err(format!(
            "`{}` must be greater than 0 (a zero wait would retry in a busy loop)",
            f.path("initial_interval")
        ));
    }
    if cfg.max_interval.is_zero() {
        return Err(format!(
            "`{}` must be greater than 0 (a zero wait would retry in a busy loop)",
            f.path("max_interval")
        ));
    }
    if !(cfg.multiplier.is_finite() && cfg.multiplier >= 1.0) {
        return Err(format!(
            "`{}` must be a number of at least 1, not {}",
            f.path("multiplier"),
            cfg.multiplier
        ));
    }
    if !(0.0..=1.0).contains(&cfg.randomization_factor) {
        return Err(format!(
            "`{}` must be between 0 and 1, not {}",
            f.path("randomization_factor"),
            cfg.randomization_factor
        ));
    }
    Ok(cfg)
}

/// The backoff state of one batch.
pub(crate) struct Backoff<'a> {
    cfg: &'a RetryConfig,
    /// The next wait before jitter: `initial_interval`, growing by `multiplier` up to
    /// `max_interval`.
    interval: Duration,
    started: Instant,
    rng: u64,
}

impl<'a> Backoff<'a> {
    pub(crate) fn new(cfg: &'a RetryConfig, started: Instant) -> Self {
        Backoff {
            cfg,
            interval: cfg.initial_interval,
            started,
            // Seeded from std's per-process random keys: jitter needs no better randomness.
            rng: RandomState::new().hash_one(0u64),
        }
    }

    /// How long to wait before the next attempt, or `None` when retrying is over (retries
    /// are disabled, or the wait would end past `max_elapsed_time`). `at_least` is a delay
    /// the server asked for; the wait is never shorter than it.
    pub(crate) fn next_delay(
        &mut self,
        now: Instant,
        at_least: Option<Duration>,
    ) -> Option<Duration> {
        if !self.cfg.enabled {
            return None;
        }
        let jittered = jitter(
            self.interval,
            self.cfg.randomization_factor,
            self.next_unit(),
        );
        self.interval =
            Duration::try_from_secs_f64(self.interval.as_secs_f64() * self.cfg.multiplier)
                .unwrap_or(self.cfg.max_interval)
                .min(self.cfg.max_interval);
        let delay = jittered.max(at_least.unwrap_or_default());
        let limit = self.cfg.max_elapsed_time;
        if !limit.is_zero() {
            // checked_add: a server may ask for an absurd delay; that must not overflow.
            let ends = now
                .saturating_duration_since(self.started)
                .checked_add(delay);
            if ends.is_none_or(|ends| ends > limit) {
                return None;
            }
        }
        Some(delay)
    }

    /// A pseudo-random number in [0, 1) (splitmix64).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `interval` moved by up to `factor` of itself either way; `unit` is in [0, 1).
fn jitter(interval: Duration, factor: f64, unit: f64) -> Duration {
    let scale = 1.0 - factor + 2.0 * factor * unit;
    Duration::try_from_secs_f64(interval.as_secs_f64() * scale).unwrap_or(interval)
}

/// A backend's partial success: it accepted the request but refused `rejected` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partial {
    pub(crate) rejected: u64,
    pub(crate) message: String,
}

/// What one attempt at sending a batch came to.
pub(crate) enum Attempt {
    /// Accepted, possibly with some records refused (which resending would not change).
    Accepted(Option<Partial>),
    /// The backend will never accept this batch (e.g. a malformed request).
    Rejected(String),
    /// A transient failure; `at_least` is the server's requested delay, if it sent one.
    Retry {
        error: String,
        at_least: Option<Duration>,
    },
}

/// How delivering a batch ended.
pub(crate) enum Outcome {
    Accepted(Option<Partial>),
    Rejected(String),
    /// Retries are disabled or `max_elapsed_time` passed; holds the last error.
    GaveUp(String),
    /// `abandon` was cancelled before the batch got through.
    Abandoned,
    /// `stop` was cancelled while waiting to retry (a persistent queue shutting down: the
    /// batch stays stored and is sent after the next start).
    Stopped,
}

/// Runs `attempt` until it is accepted or rejected, waiting between failures as `cfg`
/// says. While this runs the exporter takes no new batches, so its bounded input channel
/// pushes back.
///
/// Returns `Abandoned` as soon as `abandon` is cancelled, even mid-attempt. An attempt
/// already handed to the network or the OS may still land after that; the batch is then
/// reported failed although it arrived, which means a duplicate after restart, never a loss.
/// `stop`, when given, ends the retrying only between attempts (`Stopped`): an attempt
/// under way is let finish, so that a clean shutdown sends nothing twice.
pub(crate) async fn deliver<F, Fut>(
    id: &ComponentId,
    records: u64,
    cfg: &RetryConfig,
    abandon: &CancellationToken,
    stop: Option<&CancellationToken>,
    mut attempt: F,
) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut backoff = Backoff::new(cfg, Instant::now());
    loop {
        let result = tokio::select! {
            biased;
            () = abandon.cancelled() => return Outcome::Abandoned,
            result = attempt() => result,
        };
        let (error, at_least) = match result {
            Attempt::Accepted(partial) => return Outcome::Accepted(partial),
            Attempt::Rejected(error) => return Outcome::Rejected(error),
            Attempt::Retry { error, at_least } => (error, at_least),
        };
        let Some(delay) = backoff.next_delay(Instant::now(), at_least) else {
            return Outcome::GaveUp(error);
        };
        tracing::warn!(exporter = %id, records, %error, retry_in = ?delay, "export failed, will retry");
        let stopped = async {
            match stop {
                Some(stop) => stop.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = abandon.cancelled() => return Outcome::Abandoned,
            () = stopped => return Outcome::Stopped,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Logs how delivering a request of `records` records ended and counts it in `stats`.
/// `later` says what happens to records not delivered now (read again after a restart, or
/// kept in a persistent queue).
pub(crate) fn report(
    id: &ComponentId,
    stats: &ExporterStats,
    records: u64,
    outcome: &Outcome,
    later: &str,
) {
    match outcome {
        Outcome::Accepted(partial) => {
            let rejected = partial.as_ref().map_or(0, |p| p.rejected);
            stats.sent(records, rejected);
            if let Some(Partial { rejected, message }) = partial.as_ref().filter(|p| p.rejected > 0)
            {
                let total = stats.snapshot().partially_rejected_records;
                // Resending would not change the backend's verdict: the request counts as sent.
                tracing::error!(exporter = %id, records, rejected, rejected_total = total, %message, "the backend accepted the request but rejected some of its records");
            }
        }
        Outcome::Rejected(error) => {
            let total = stats.rejected(records);
            tracing::error!(exporter = %id, records, rejected_total = total, %error, "the backend rejected the records permanently, dropping them");
        }
        Outcome::GaveUp(error) => {
            stats.failed(records);
            tracing::error!(exporter = %id, records, %error, "giving up on the records after the last failure; {later}");
        }
        Outcome::Abandoned => {
            stats.failed(records);
            tracing::warn!(exporter = %id, records, "shutdown deadline passed with records unsent; {later}");
        }
        Outcome::Stopped => {}
    }
}

/// Settles a batch's acknowledgements according to how its delivery ended, logging what
/// was lost. Returns `false` when the exporter must stop (abandoned).
pub(crate) fn settle(
    id: &ComponentId,
    stats: &ExporterStats,
    acks: AckSet,
    records: u64,
    outcome: Outcome,
) -> bool {
    report(
        id,
        stats,
        records,
        &outcome,
        "their lines will be read again after a restart",
    );
    match outcome {
        Outcome::Accepted(_) | Outcome::Rejected(_) => {
            // A rejection is settled as delivered on purpose: retrying can never succeed,
            // and an unsettled ack would hold the receiver's checkpoint back forever, so
            // every later line would be read again after each restart. The loss is logged
            // and counted by `report`.
            acks.delivered();
            true
        }
        Outcome::GaveUp(_) => {
            // Dropping the acks unsettled reports the failure: the offsets are not committed.
            drop(acks);
            true
        }
        Outcome::Abandoned | Outcome::Stopped => {
            drop(acks);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(rf: f64) -> RetryConfig {
        RetryConfig {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
            multiplier: 2.0,
            randomization_factor: rf,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn waits_grow_by_the_multiplier_up_to_the_maximum() {
        let cfg = cfg(0.0);
        let now = Instant::now();
        let mut b = Backoff::new(&cfg, now);
        let waits: Vec<_> = (0..5)
            .map(|_| b.next_delay(now, None).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 4, 4]);
    }

    #[test]
    fn jitter_stays_within_the_factor() {
        let cfg = cfg(0.5);
        let now = Instant::now();
        let mut b = Backoff::new(&cfg, now);
        let first = b.next_delay(now, None).unwrap();
        assert!(
            first >= Duration::from_millis(500) && first <= Duration::from_millis(1500),
            "{first:?}"
        );
        assert_eq!(
            jitter(Duration::from_secs(2), 0.5, 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            jitter(Duration::from_secs(2), 0.0, 0.9),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_server_delay_is_a_lower_bound() {
        let cfg = cfg(0.0);
        let now = Instant::now();
        let mut b = Backoff::new(&cfg, now);
        assert_eq!(
            b.next_delay(now, Some(Duration::from_secs(9))),
            Some(Duration::from_secs(9))
        );
        assert_eq!(
            b.next_delay(now, Some(Duration::from_millis(1))),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn max_elapsed_time_ends_retrying_and_zero_never_does() {
        let limited = RetryConfig {
            max_elapsed_time: Duration::from_secs(3),
            ..cfg(0.0)
        };
        let start = Instant::now();
        let mut b = Backoff::new(&limited, start);
        assert!(b.next_delay(start, None).is_some()); // ends at 1s
        assert!(b.next_delay(start + Duration::from_secs(1), None).is_some()); // ends at 3s
        assert_eq!(b.next_delay(start + Duration::from_secs(3), None), None);
        let mut b = Backoff::new(&limited, start);
        assert_eq!(
            b.next_delay(start, Some(Duration::MAX)),
            None,
            "no overflow"
        );

        let unlimited = cfg(0.0);
        let mut b = Backoff::new(&unlimited, start);
        assert!(
            b.next_delay(start + Duration::from_secs(1_000_000), None)
                .is_some()
        );

        let disabled = RetryConfig {
            enabled: false,
            ..cfg(0.0)
        };
        assert_eq!(Backoff::new(&disabled, start).next_delay(start, None), None);
    }

    #[test]
    fn parse_defaults_and_overrides() {
        assert_eq!(parse(json!(null)), Ok(RetryConfig::default()));
        let c =
            parse(json!({"initial_interval": "10ms", "max_elapsed_time": "1m", "multiplier": 2}))
                .unwrap();
        assert_eq!(c.initial_interval, Duration::from_millis(10));
        assert_eq!(c.max_elapsed_time, Duration::from_secs(60));
        assert_eq!(c.multiplier, 2.0);
    }

    #[test]
    fn parse_errors_name_the_key() {
        let cases = [
            (
                json!({"initial_interval": "5 seconds"}),
                "`retry_on_failure.initial_interval`",
            ),
            (
                json!({"initial_interval": "0s"}),
                "`retry_on_failure.initial_interval`",
            ),
            (
                json!({"max_interval": 0}),
                "`retry_on_failure.max_interval`",
            ),
            (json!({"multiplier": 0.5}), "`retry_on_failure.multiplier`"),
            (
                json!({"randomization_factor": 2}),
                "`retry_on_failure.randomization_factor`",
            ),
            (json!({"enabled": "no"}), "`retry_on_failure.enabled`"),
            (
                json!({"max_elapsed": "1s"}),
                "`retry_on_failure.max_elapsed`",
            ),
        ];
        for (block, key) in cases {
            let err = parse(block.clone()).unwrap_err();
            assert!(err.contains(key), "{block}: {err}");
        }
    }
}
