//! The `otlp` receiver's config: the Collector's keys for `protocols.grpc` and
//! `protocols.http`. A protocol is enabled by its key being present, even with no settings
//! (`grpc:` alone), as in the Collector.

use serde::Deserialize;

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub grpc: Option<GrpcConfig>,
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// The largest request accepted, after decompression.
    pub max_recv_msg_size_mib: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "localhost:4317".into(),
            max_recv_msg_size_mib: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// The path logs are posted to.
    pub logs_url_path: String,
    /// The largest request body accepted, compressed or not (bytes).
    pub max_request_body_size: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "localhost:4318".into(),
            logs_url_path: "/v1/logs".into(),
            max_request_body_size: 20 * MIB,
        }
    }
}

impl GrpcConfig {
    pub fn max_message_bytes(&self) -> usize {
        self.max_recv_msg_size_mib.saturating_mul(MIB)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    protocols: Option<serde_json::Map<String, serde_json::Value>>,
}

impl OtlpConfig {
    /// Parses and validates a receiver block. Errors name the offending key in backticks.
    pub fn parse(config: serde_json::Value) -> Result<OtlpConfig, String> {
        let config = if config.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            config
        };
        let raw: Raw = serde_json::from_value(config).map_err(|e| e.to_string())?;
        let mut protocols = raw.protocols.unwrap_or_default();
        let grpc = take_protocol::<GrpcConfig>(&mut protocols, "grpc")?;
        let http = take_protocol::<HttpConfig>(&mut protocols, "http")?;
        if let Some(other) = protocols.keys().next() {
            return Err(format!(
                "unknown field `protocols.{other}`, expected `grpc` or `http`"
            ));
        }
        if grpc.is_none() && http.is_none() {
            return Err(
                "`protocols` must enable at least one of `grpc` and `http` (e.g. `protocols: {grpc: }`)"
                    .into(),
            );
        }
        if let Some(g) = &grpc {
            check_endpoint("protocols.grpc.endpoint", &g.endpoint)?;
            if g.max_recv_msg_size_mib == 0 {
                return Err("`max_recv_msg_size_mib` must be at least 1".into());
            }
        }
        if let Some(h) = &http {
            check_endpoint("protocols.http.endpoint", &h.endpoint)?;
            if !h.logs_url_path.starts_with('/') {
                return Err(format!(
                    "`logs_url_path` {:?} must start with `/`",
                    h.logs_url_path
                ));
            }
            if h.max_request_body_size == 0 {
                return Err("`max_request_body_size` must be greater than 0".into());
            }
        }
        Ok(OtlpConfig { grpc, http })
    }
}

/// A protocol present with a null value is enabled with its defaults.
fn take_protocol<T: Default + for<'de> Deserialize<'de>>(
    protocols: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<T>, String> {
    match protocols.remove(name) {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(T::default())),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| format!("`protocols.{name}`: {e}")),
    }
}

/// `host:port` with a numeric port; the host is resolved when the receiver starts.
fn check_endpoint(key: &str, endpoint: &str) -> Result<(), String> {
    let port = endpoint
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| p.parse::<u16>().is_ok());
    match port {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{key}` {endpoint:?} must be host:port, like 0.0.0.0:4317 or localhost:4318"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn protocols_are_enabled_by_presence_with_collector_defaults() {
        let c = OtlpConfig::parse(json!({"protocols": {"grpc": null}})).unwrap();
        assert_eq!(c.grpc, Some(GrpcConfig::default()));
        assert_eq!(c.grpc.unwrap().endpoint, "localhost:4317");
        assert_eq!(c.http, None);
        let c = OtlpConfig::parse(
            json!({"protocols": {"http": {"endpoint": "127.0.0.1:9999", "logs_url_path": "/logs"}}}),
        )
        .unwrap();
        let http = c.http.unwrap();
        assert_eq!(http.endpoint, "127.0.0.1:9999");
        assert_eq!(http.logs_url_path, "/logs");
        assert_eq!(http.max_request_body_size, 20 * MIB);
    }

    #[test]
    fn errors_name_the_key() {
        for (bad, want) in [
            (json!({}), "at least one"),
            (json!({"protocols": {}}), "at least one"),
            (json!({"protocols": {"thrift": null}}), "`protocols.thrift`"),
            (
                json!({"protocols": {"grpc": {"endpont": "x:1"}}}),
                "`endpont`",
            ),
            (
                json!({"protocols": {"grpc": {"endpoint": "nowhere"}}}),
                "must be host:port",
            ),
            (
                json!({"protocols": {"http": {"logs_url_path": "v1/logs"}}}),
                "`logs_url_path`",
            ),
            (json!({"protocol": {"grpc": null}}), "`protocol`"),
        ] {
            let e = OtlpConfig::parse(bad.clone()).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
