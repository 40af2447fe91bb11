//! A small, fast pseudo-random generator for `filter`'s `drop_ratio`. Sampling log lines
//! needs no cryptographic quality (Stanza's use of `crypto/rand` there is incidental); it
//! needs to be cheap per entry and independent between chains, so each chain draws a fresh
//! seed and each operator derives its own stream from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: turns nearby inputs into unrelated outputs.
pub(crate) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for a new chain: the clock mixed with a process-wide counter, so two chains built
/// in the same instant still differ.
pub(crate) fn chain_seed() -> u64 {
    static BUILT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(nanos, BUILT.fetch_add(1, Ordering::Relaxed))
}

/// wyrand: one multiply per draw, full 2^64 period.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        (t as u64) ^ ((t >> 64) as u64)
    }

    /// A number in `0..bound` (Lemire's multiply-shift; the bias is below 2^-54 for the
    /// bounds used here).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_spread() {
        let mut rng = Rng::new(mix(42, 0));
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let n = rng.below(1000);
            assert!(n < 1000);
            counts[(n / 100) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn streams_differ() {
        assert_ne!(mix(1, 0), mix(1, 1));
        assert_ne!(chain_seed(), chain_seed());
    }
}
