//! Reconnect timing: exponential backoff with full jitter, and the server's `Retry-After`.
//!
//! Full jitter (`delay = random(0, min(max, initial·2ⁿ))`) spreads the reconnects of many
//! agents that lost the same server at the same instant, so they don't come back as one
//! burst when it restarts.

use crate::config::Backoff;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// The longest wait a server's Retry-After or retry_info is honoured for.
pub(crate) const MAX_SERVER_WAIT: Duration = Duration::from_secs(3600);

/// The delay sequence of one client. Reset after a connection worked.
pub(crate) struct BackoffState {
    config: Backoff,
    attempt: u32,
    rng: Rng,
}

impl BackoffState {
    pub(crate) fn new(config: Backoff) -> Self {
        BackoffState {
            config,
            attempt: 0,
            rng: Rng::seeded(),
        }
    }

    /// The next delay: uniform in `[0, min(max, initial·2ⁿ)]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(30);
        self.attempt = self.attempt.saturating_add(1);
        let cap = self
            .config
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.config.max);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
    }

    /// The delay after the server asked to wait `retry_after`: never earlier, plus a jitter
    /// step so that agents told the same instant don't all return at it. The request is
    /// capped at [`MAX_SERVER_WAIT`], so a wrong value can't silence the agent for good.
    pub(crate) fn after_server_asked(&mut self, retry_after: Duration) -> Duration {
        retry_after.min(MAX_SERVER_WAIT) + self.next_delay()
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A small xorshift generator: jitter needs spread, not unpredictability. Seeded from std's
/// per-process random hash keys, so two agents (or two clients in one process) differ.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        Rng(RandomState::new().hash_one(0x9e37_79b9_7f4a_7c15u64) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough in `[0, bound)` (the modulo bias is irrelevant for jitter).
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

/// Parses an HTTP `Retry-After` value: delta-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some(
        jiff::Timestamp::now()
            .duration_until(at)
            .try_into()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let config = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let mut b = BackoffState::new(config);
        let caps = [100, 200, 400, 800, 1000, 1000, 1000];
        for cap in caps {
            let d = b.next_delay();
            assert!(d <= Duration::from_millis(cap), "{d:?} > {cap}ms");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let config = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        let delays: Vec<Duration> = (0..50)
            .map(|_| BackoffState::new(config).next_delay())
            .collect();
        let min = delays.iter().min().unwrap();
        let max = delays.iter().max().unwrap();
        assert!(*max - *min > Duration::from_millis(300), "{min:?}..{max:?}");
    }

    #[test]
    fn server_waits_are_honoured_and_capped() {
        let mut b = BackoffState::new(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
        });
        let d = b.after_server_asked(Duration::from_secs(2));
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_millis(2010),
            "{d:?}"
        );
        let d = b.after_server_asked(Duration::MAX);
        assert!(d <= MAX_SERVER_WAIT + Duration::from_millis(10), "{d:?}");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(100);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        let d = parse_retry_after(&text).unwrap();
        assert!(
            d > Duration::from_secs(90) && d <= Duration::from_secs(100),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
