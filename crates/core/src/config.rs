//! Config value types every component shares: Go-style durations, byte sizes and component
//! ids, with the Collector's syntax.

use std::fmt;
use std::time::Duration;

/// Deserializes a component's config block, naming the key of any error in backticks
/// (`` `retry.max_interval`: invalid duration ... ``) so the agent can point at its line.
pub fn from_json<T: serde::de::DeserializeOwned>(config: serde_json::Value) -> Result<T, String> {
    let config = if config.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        config
    };
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || inner.contains("unknown field") {
            inner
        } else {
            format!("`{path}`: {inner}")
        }
    })
}

/// A duration written the Go way (`200ms`, `1.5s`, `1h30m`, `0`); a bare integer is
/// nanoseconds, as the Collector's config decoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn from_millis(ms: u64) -> Self {
        GoDuration(Duration::from_millis(ms))
    }
    pub fn from_secs(s: u64) -> Self {
        GoDuration(Duration::from_secs(s))
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Duration {
        d.0
    }
}

/// Parses Go's `time.ParseDuration` syntax. Negative durations are refused: no setting of
/// ours means anything with one.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: expected a number and a unit (ns, us, ms, s, m, h), like 200ms, 1.5s or 1h30m"
        )
    };
    let mut rest = text.trim();
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(format!(
            "invalid duration {text:?}: it must not be negative"
        ));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut frac_ns: u128 = 0;
        let mut divisor: u128 = 1;
        for digit in frac.bytes().take(18) {
            frac_ns = frac_ns * 10 + u128::from(digit - b'0');
            divisor *= 10;
        }
        total_ns = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_ns * scale / divisor))
            .and_then(|t| total_ns.checked_add(t))
            .ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000)
        .map_err(|_| format!("invalid duration {text:?}: too long"))?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like 200ms, 5s or 1m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_go_duration(v).map(GoDuration).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GoDuration, E> {
                u64::try_from(v)
                    .map(|n| GoDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom("a duration must not be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes: an integer, or a string such as `16KiB`, `1kb`, `1MiB`, `1.5MB`
/// (`kb`/`mb`/`gb` are powers of 1000, `kib`/`mib`/`gib` powers of 1024, as in Stanza).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let number: f64 = number.parse().map_err(|_| {
        format!("invalid byte size {text:?}: expected a number like 1024, 16KiB or 1MB")
    })?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" | "ki" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "invalid byte size {text:?}: unknown unit {unit:?} (use B, KB, KiB, MB, MiB, GB or GiB)"
            ));
        }
    };
    let bytes = number * scale;
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("invalid byte size {text:?}: out of range"));
    }
    Ok(bytes as u64)
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size like 1048576, 16KiB or 1MB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_byte_size(v).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a byte size must not be negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ByteSize, E> {
                if v >= 0.0 && v.fract() == 0.0 {
                    Ok(ByteSize(v as u64))
                } else {
                    Err(E::custom(
                        "a byte size must be a whole, non-negative number",
                    ))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A component id, `type` or `type/name` (e.g. `filelog/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub kind: String,
    pub name: Option<String>,
}

impl std::str::FromStr for ComponentId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, name) = match text.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (text, None),
        };
        let kind_ok = kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !kind_ok {
            return Err(format!(
                "invalid component id {text:?}: the type must start with a letter and hold only letters, digits and `_`"
            ));
        }
        if let Some(n) = name
            && (n.is_empty() || n.chars().any(|c| c.is_whitespace() || c == '/'))
        {
            return Err(format!(
                "invalid component id {text:?}: the name after `/` must be non-empty, without spaces or `/`"
            ));
        }
        Ok(ComponentId {
            kind: kind.to_owned(),
            name: name.map(str::to_owned),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.kind, n),
            None => f.write_str(&self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("0", Duration::ZERO),
            ("200ms", Duration::from_millis(200)),
            ("1.5s", Duration::from_millis(1500)),
            ("1h30m", Duration::from_secs(5400)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            (".5s", Duration::from_millis(500)),
            ("1m0.5s", Duration::from_millis(60500)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "1", "5 seconds", "1x", "-1s", "s", ".s", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1024"), Ok(1024));
        assert_eq!(parse_byte_size("1kb"), Ok(1000));
        assert_eq!(parse_byte_size("1KiB"), Ok(1024));
        assert_eq!(parse_byte_size("16MiB"), Ok(16 << 20));
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("1 parsec").is_err());
    }

    #[test]
    fn component_ids() {
        let id: ComponentId = "filelog/app".parse().unwrap();
        assert_eq!(
            (id.kind.as_str(), id.name.as_deref()),
            ("filelog", Some("app"))
        );
        assert_eq!(id.to_string(), "filelog/app");
        for bad in ["", "/x", "1abc", "a/", "a b", "a/b/c"] {
            assert!(bad.parse::<ComponentId>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn durations_never_panic(text in ".{0,16}") {
            let _ = parse_go_duration(&text);
        }

        #[test]
        fn whole_milliseconds_round_trip(ms in 0u64..10_000_000) {
            prop_assert_eq!(parse_go_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }
    }
}
