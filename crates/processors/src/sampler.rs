//! The `probabilistic_sampler` processor for logs, in the Collector's `hash_seed` mode (its
//! default), deciding exactly as the Collector does:
//!
//! - randomness comes from the FNV-1a hash (32 bits) of `hash_seed` (4 little-endian
//!   bytes) followed by the record's trace id (`attribute_source: traceID`, the default,
//!   when the trace id is set) or else the value of the `from_attribute` attribute (raw
//!   bytes for a bytes value, its text otherwise); the low 14 bits decide: a record is kept
//!   when they are below `sampling_percentage` × 163.84 (computed in 32-bit floats and
//!   truncated, as the Collector does);
//! - a record with no randomness (no trace id, no usable attribute) or that already
//!   carries `sampling.randomness`/`sampling.threshold` is dropped while `fail_closed` is
//!   true (the default) and kept otherwise;
//! - `sampling_priority` names an attribute whose int or double value, read as a
//!   percentage, replaces the configured one for that record (rounded to
//!   `sampling_precision` hex digits, default 4); 0 or a value outside (0, 100] is ignored;
//! - a kept record gets the attributes `sampling.randomness` (14 hex digits) and
//!   `sampling.threshold` (the OTEP 235 t-value of the applied probability).
//!
//! Only `mode: hash_seed` is supported; `proportional` and `equalizing` are config errors.

use crate::text::as_string;
use centimane_core::{Batch, Entry, Value};
use serde::Deserialize;

/// 2^56: thresholds and randomness are 56-bit numbers (OTEP 235).
const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// Randomness that every threshold below "never" samples.
const ALL_PROBABILITIES: u64 = MAX_ADJUSTED_COUNT - 1;
const NEVER: u64 = MAX_ADJUSTED_COUNT;
const ALWAYS: u64 = 0;
const HASH_BUCKETS: u32 = 0x4000;
const HEX_DIGITS: i32 = 14;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    sampling_percentage: f32,
    #[serde(default)]
    hash_seed: u32,
    #[serde(default)]
    mode: String,
    #[serde(default = "default_true")]
    fail_closed: bool,
    #[serde(default = "default_precision")]
    sampling_precision: i32,
    #[serde(default = "default_source")]
    attribute_source: String,
    #[serde(default)]
    from_attribute: String,
    #[serde(default)]
    sampling_priority: String,
}

fn default_true() -> bool {
    true
}
fn default_precision() -> i32 {
    4
}
fn default_source() -> String {
    "traceID".into()
}

#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// The reject threshold for the configured percentage; `None` when it is 0% (the
    /// Collector's "never" sampler, which still honours priorities).
    threshold: Option<u64>,
    hash_seed: u32,
    fail_closed: bool,
    precision: i32,
    use_trace_id: bool,
    from_attribute: String,
    sampling_priority: String,
}

pub(crate) fn parse(config: serde_json::Value) -> Result<SamplerConfig, String> {
    let raw: RawConfig =
        serde_json::from_value(crate::object_or_empty(config)).map_err(|e| e.to_string())?;
    let pct = raw.sampling_percentage;
    if !pct.is_finite() || pct < 0.0 {
        return Err(format!(
            "`sampling_percentage` must be a number from 0 to 100, not {pct}"
        ));
    }
    match raw.mode.as_str() {
        "" | "hash_seed" => {}
        other => {
            return Err(format!(
                "`mode` {other:?} is not supported by this build (only hash_seed)"
            ));
        }
    }
    let use_trace_id = match raw.attribute_source.as_str() {
        "traceID" => true,
        "record" => false,
        other => {
            return Err(format!(
                "`attribute_source` {other:?} is not one of traceID, record"
            ));
        }
    };
    if !(1..=HEX_DIGITS).contains(&raw.sampling_precision) {
        return Err(format!(
            "`sampling_precision` must be from 1 to 14, not {}",
            raw.sampling_precision
        ));
    }
    // The Collector's arithmetic: percentages above 100 are 100; the scale is applied in
    // 32-bit floats and truncated.
    let scaled = (pct.min(100.0) * (HASH_BUCKETS as f32 / 100.0)) as u32;
    let threshold = (scaled > 0).then(|| u64::from(HASH_BUCKETS - scaled) << 42);
    Ok(SamplerConfig {
        threshold,
        hash_seed: raw.hash_seed,
        fail_closed: raw.fail_closed,
        precision: raw.sampling_precision,
        use_trace_id,
        from_attribute: raw.from_attribute,
        sampling_priority: raw.sampling_priority,
    })
}

impl SamplerConfig {
    pub(crate) fn apply(&self, batch: &mut Batch) {
        batch.entries.retain_mut(|e| self.keep(e));
    }

    /// Decides for one record, and marks a kept one with its sampling attributes.
    fn keep(&self, entry: &mut Entry) -> bool {
        let has =
            |key: &str| matches!(entry.attributes.get(key), Some(Value::Str(s)) if !s.is_empty());
        let already_sampled = has("sampling.randomness") || has("sampling.threshold");
        let (randomness, mut threshold, may_mark) = match self.threshold {
            None => (ALL_PROBABILITIES, NEVER, !already_sampled),
            Some(configured) => {
                let randomness = self.randomness(entry);
                let failed = already_sampled || randomness.is_none();
                let threshold = match (failed, self.fail_closed) {
                    (false, _) => configured,
                    (true, true) => NEVER,
                    (true, false) => ALWAYS,
                };
                if let (Some(r), false) = (randomness, already_sampled) {
                    entry
                        .attributes
                        .insert("sampling.randomness".into(), Value::Str(r_value(r).into()));
                }
                (
                    randomness.unwrap_or(ALL_PROBABILITIES),
                    threshold,
                    !already_sampled,
                )
            }
        };
        if let Some(t) = self.priority_threshold(entry) {
            threshold = t;
        }
        let keep = threshold <= randomness;
        if keep && may_mark {
            entry.attributes.insert(
                "sampling.threshold".into(),
                Value::Str(t_value(threshold).into()),
            );
        }
        keep
    }

    /// The record's 56-bit randomness, or `None` when it has no source of it.
    fn randomness(&self, entry: &Entry) -> Option<u64> {
        if self.use_trace_id && entry.trace_id.iter().any(|&b| b != 0) {
            return Some(randomness_from_bytes(&entry.trace_id, self.hash_seed));
        }
        if self.from_attribute.is_empty() {
            return None;
        }
        let bytes = match entry.attributes.get(self.from_attribute.as_str())? {
            Value::Bytes(b) => b.to_vec(),
            other => as_string(other).into_bytes(),
        };
        (!bytes.is_empty()).then(|| randomness_from_bytes(&bytes, self.hash_seed))
    }

    fn priority_threshold(&self, entry: &Entry) -> Option<u64> {
        if self.sampling_priority.is_empty() {
            return None;
        }
        let probability = match entry.attributes.get(self.sampling_priority.as_str())? {
            Value::Double(d) => d / 100.0,
            Value::Int(i) => *i as f64 / 100.0,
            _ => return None,
        };
        if probability == 0.0 {
            return None;
        }
        probability_to_threshold(probability, self.precision)
    }
}

/// FNV-1a, 32 bits, over the seed's little-endian bytes then `data` (the Collector's
/// `computeHash`).
fn fnv1a(seed: u32, data: &[u8]) -> u32 {
    seed.to_le_bytes()
        .iter()
        .chain(data)
        .fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
}

/// The Collector's `randomnessFromBytes`: 14 hash bits, inverted, on top so that
/// `threshold <= randomness` is the legacy "hash < scaled rate" decision, then the unused
/// hash bits mixed, then the 14 bits again.
fn randomness_from_bytes(data: &[u8], seed: u32) -> u64 {
    let hashed32 = fnv1a(seed, data);
    let hashed = u64::from(hashed32 & (HASH_BUCKETS - 1));
    let rprime14 = u64::from(HASH_BUCKETS) - 1 - hashed;
    let unused18 = u64::from(hashed32 >> 14);
    let mixed28 = unused18 ^ (unused18 << 10);
    (rprime14 << 42) | (mixed28 << 14) | hashed
}

/// `sampling.ProbabilityToThresholdWithPrecision`; `None` outside [2^-56, 1].
fn probability_to_threshold(fraction: f64, precision: i32) -> Option<u64> {
    if !(fraction >= 1.0 / MAX_ADJUSTED_COUNT as f64 && fraction <= 1.0) {
        return None;
    }
    if fraction == 1.0 {
        return Some(ALWAYS);
    }
    // More digits near 0 and 1, where leading 0s or fs would eat the precision.
    let exp_f = frexp_exponent(fraction);
    let exp_r = frexp_exponent(1.0 - fraction);
    let precision = HEX_DIGITS.min((precision + exp_f / -4).max(precision + exp_r / -4));
    let scaled = (fraction * MAX_ADJUSTED_COUNT as f64).round() as u64;
    let mut threshold = MAX_ADJUSTED_COUNT - scaled;
    let shift = 4 * (HEX_DIGITS - precision);
    if shift != 0 {
        let half = 1u64 << (shift - 1);
        threshold = ((threshold + half) >> shift) << shift;
    }
    Some(threshold)
}

/// The exponent Go's `math.Frexp` returns for a positive normal number (x = f·2^e with f
/// in [0.5, 1)), and 0 for 0.
fn frexp_exponent(x: f64) -> i32 {
    if x == 0.0 {
        return 0;
    }
    let biased = ((x.to_bits() >> 52) & 0x7ff) as i32;
    biased - 1022
}

/// The 14-hex-digit r-value.
fn r_value(randomness: u64) -> String {
    format!("{randomness:014x}")
}

/// The t-value: `0` for always, 14 hex digits without trailing zeros otherwise.
fn t_value(threshold: u64) -> String {
    match threshold {
        ALWAYS => "0".into(),
        NEVER => String::new(),
        t => format!("{t:014x}").trim_end_matches('0').to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sampler(config: serde_json::Value) -> SamplerConfig {
        parse(config).unwrap()
    }

    fn with_attr(key: &str, v: Value) -> Entry {
        let mut e = Entry::new("x".into());
        e.attributes.insert(key.into(), v);
        e
    }

    #[test]
    fn fnv_and_thresholds_match_the_collector() {
        // FNV-1a test vectors with the 4 seed bytes (zero seed) in front.
        assert_eq!(fnv1a(0, b""), 0x4b95f515);
        assert_eq!(
            t_value(u64::from(HASH_BUCKETS - 4096) << 42),
            "c",
            "25% is th:c"
        );
        assert_eq!(t_value(u64::from(HASH_BUCKETS - 8192) << 42), "8");
        assert_eq!(t_value(ALWAYS), "0");
        assert_eq!(probability_to_threshold(0.5, 4), Some(1 << 55));
        assert_eq!(probability_to_threshold(1.0, 4), Some(0));
        assert_eq!(probability_to_threshold(1.5, 4), None);
        // 1/3 at 4 digits: 0xaaab rounded.
        assert_eq!(
            t_value(probability_to_threshold(1.0 / 3.0, 4).unwrap()),
            "aaab"
        );
        assert_eq!(frexp_exponent(0.25), -1);
        assert_eq!(frexp_exponent(0.5), 0);
    }

    #[test]
    fn decision_is_the_legacy_hash_comparison() {
        let s = sampler(
            json!({"sampling_percentage": 30, "attribute_source": "record", "from_attribute": "id", "hash_seed": 22}),
        );
        let scaled = (30f32 * (16384f32 / 100.0)) as u32;
        let mut kept = 0;
        for i in 0..2000 {
            let id = format!("req-{i}");
            let mut e = with_attr("id", Value::from(id.as_str()));
            let legacy = fnv1a(22, id.as_bytes()) & 0x3fff < scaled;
            assert_eq!(s.keep(&mut e), legacy, "{id}");
            if legacy {
                kept += 1;
                assert_eq!(
                    e.attributes["sampling.threshold"],
                    Value::from(t_value(s.threshold.unwrap()))
                );
                assert_eq!(
                    e.attributes["sampling.randomness"].as_str().unwrap().len(),
                    14
                );
            }
        }
        assert!((500..700).contains(&kept), "about 30%: {kept}");
    }

    #[test]
    fn trace_id_first_then_attribute() {
        let s = sampler(json!({"sampling_percentage": 50, "from_attribute": "id"}));
        let mut e = with_attr("id", Value::from("abc"));
        e.trace_id = vec![7; 16];
        let by_trace = fnv1a(0, &[7; 16]) & 0x3fff < 8192;
        assert_eq!(s.keep(&mut e.clone()), by_trace);
        e.trace_id = vec![0; 16];
        let by_attr = fnv1a(0, b"abc") & 0x3fff < 8192;
        assert_eq!(s.keep(&mut e), by_attr);
    }

    #[test]
    fn missing_randomness_follows_fail_closed() {
        let closed = sampler(json!({"sampling_percentage": 100}));
        assert!(!closed.keep(&mut Entry::new("x".into())));
        let open = sampler(json!({"sampling_percentage": 1, "fail_closed": false}));
        let mut e = Entry::new("x".into());
        assert!(open.keep(&mut e));
        assert_eq!(e.attributes["sampling.threshold"], Value::from("0"));
    }

    #[test]
    fn percentages_at_the_edges_and_priority() {
        let all = sampler(
            json!({"sampling_percentage": 150, "attribute_source": "record", "from_attribute": "id"}),
        );
        let none = sampler(
            json!({"sampling_percentage": 0, "attribute_source": "record", "from_attribute": "id", "sampling_priority": "prio"}),
        );
        for i in 0..100 {
            let mut e = with_attr("id", Value::from(format!("{i}")));
            assert!(all.keep(&mut e.clone()));
            assert!(!none.keep(&mut e), "0% keeps nothing");
        }
        let mut important = with_attr("id", Value::from("x"));
        important.attributes.insert("prio".into(), Value::Int(100));
        assert!(none.keep(&mut important), "a priority of 100 keeps it");
        let mut zero = with_attr("prio", Value::Double(0.0));
        assert!(!none.keep(&mut zero), "priority 0 leaves the configured 0%");
    }

    #[test]
    fn already_sampled_records_fail() {
        let s = sampler(json!({"sampling_percentage": 100, "from_attribute": "id"}));
        let mut e = with_attr("id", Value::from("x"));
        e.attributes
            .insert("sampling.threshold".into(), Value::from("8"));
        assert!(!s.keep(&mut e));
    }

    #[test]
    fn config_errors() {
        for (bad, want) in [
            (json!({"sampling_percentage": -1}), "`sampling_percentage`"),
            (
                json!({"mode": "proportional"}),
                "\"proportional\" is not supported",
            ),
            (json!({"attribute_source": "span"}), "`attribute_source`"),
            (json!({"sampling_precision": 15}), "`sampling_precision`"),
            (json!({"sampling_percent": 1}), "`sampling_percent`"),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
