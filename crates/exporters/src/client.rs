//! Settings the two OTLP exporters (`otlp`, `otlphttp`) share: `headers`, `compression`.

use crate::config::Fields;
use std::fmt;
use std::io::Write;

/// `headers`: sent with every request, in config order. Each name and value was checked
/// when the config was parsed. Values are left out of `Debug` output, since they are
/// usually credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, _)| (name, "<redacted>")))
            .finish()
    }
}

/// Takes `headers`, checking each pair with `check` (which names the problem).
pub(crate) fn take_headers(
    f: &mut Fields,
    check: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<Headers, String> {
    let Some(map) = f.take::<serde_json::Map<String, serde_json::Value>>("headers")? else {
        return Ok(Headers::default());
    };
    let mut headers = Vec::with_capacity(map.len());
    for (name, value) in map {
        let serde_json::Value::String(value) = value else {
            return Err(format!("`headers.{name}`: the value must be a string"));
        };
        check(&name, &value)?;
        headers.push((name, value));
    }
    Ok(Headers(headers))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// The default, as in the Collector.
    Gzip,
    Zstd,
}

impl Compression {
    /// The `Content-Encoding` / `grpc-encoding` name; `None` for no compression.
    pub(crate) fn name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }

    /// `body` compressed (copied unchanged for `None`).
    pub(crate) fn apply(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(body.to_vec()),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::default(),
                );
                encoder.write_all(body)?;
                encoder.finish()
            }
            // Level 0 is zstd's default (3).
            Compression::Zstd => zstd::bulk::compress(body, 0),
        }
    }
}

/// Takes `compression` (default gzip).
pub(crate) fn take_compression(f: &mut Fields) -> Result<Compression, String> {
    match f.take::<String>("compression")?.as_deref() {
        None | Some("gzip") => Ok(Compression::Gzip),
        Some("none" | "") => Ok(Compression::None),
        Some("zstd") => Ok(Compression::Zstd),
        Some(other) => Err(format!(
            "`compression` must be `gzip`, `zstd` or `none`, not {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compression_round_trips() {
        let body = b"hello hello hello hello".repeat(50);
        let gz = Compression::Gzip.apply(&body).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        let zs = Compression::Zstd.apply(&body).unwrap();
        assert_eq!(zstd::bulk::decompress(&zs, body.len()).unwrap(), body);
        assert_eq!(Compression::None.apply(&body).unwrap(), body);
        assert!(gz.len() < body.len() && zs.len() < body.len());
    }
}
