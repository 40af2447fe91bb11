//! The `extensions.opamp` config block, with the Collector's opamp extension names where
//! Centimane has an equivalent (`server.ws|http`, `instance_uid`, `capabilities.*`,
//! `agent_description.non_identifying_attributes`, `polling_interval`).

use crate::fields::{Fields, json_type};
use crate::policy::{AllowPolicy, EndpointPattern, PathGlob};
use centimane_core::config::GoDuration;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// A validated `opamp` extension config.
#[derive(Debug, Clone, PartialEq)]
pub struct OpampConfig {
    pub server: ServerConfig,
    /// `instance_uid`: pins the agent's instance UID. Unset: the one persisted in the state
    /// directory, or a new UUIDv7 that is then persisted.
    pub instance_uid: Option<Uuid>,
    pub capabilities: Capabilities,
    /// `agent_description.non_identifying_attributes`, in config order.
    pub non_identifying_attributes: Vec<(String, AttributeValue)>,
    /// `remote_config.allow`: what a remote config may touch.
    pub allow: AllowPolicy,
    /// `config_apply_timeout`: how long a remote config may take to apply before it is
    /// reported FAILED (the apply itself is never cut short; see `remote_config`).
    pub config_apply_timeout: Duration,
    /// `heartbeat_interval` (WebSocket): a message at least this often; zero disables.
    pub heartbeat_interval: Duration,
    /// `own_metrics_interval`: how often the agent's own metrics go to the destination the
    /// server offers (`own_metrics`); the spec recommends 10 s.
    pub own_metrics_interval: Duration,
    /// `config_version_attribute`: when set, every record gets this resource attribute
    /// holding the hash of the config that produced it, so a backend can tell which config
    /// a line went through.
    pub config_version_attribute: Option<String>,
    /// Reconnect timing. Not a config key: the defaults follow the spec's advice and tests
    /// shorten them.
    pub reconnect: Backoff,
}

/// `server`: exactly one of `ws` and `http`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: Transport,
    /// `ws://`/`wss://` for WebSocket, `http://`/`https://` for plain HTTP; the scheme
    /// decides between plaintext and TLS.
    pub endpoint: String,
    pub headers: Headers,
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    /// Plain HTTP: the agent POSTs a message at least every `polling_interval`.
    Http {
        polling_interval: Duration,
    },
}

/// `headers`: sent on the WebSocket upgrade request or on every HTTP POST. Names and
/// values were checked to be valid HTTP headers when parsed. Values are left out of
/// `Debug`, since they are usually credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, _)| (name, "<redacted>")))
            .finish()
    }
}

/// `tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Kept for Collector configs: the endpoint's scheme decides, so `insecure: true` is
    /// only accepted with a `ws://`/`http://` endpoint (with `wss://`/`https://` it is an
    /// error rather than silently meaning nothing).
    pub insecure: bool,
    /// PEM file of the CA certificates that verify the server, instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (tests and lab setups only).
    pub insecure_skip_verify: bool,
}

/// `capabilities`: what the agent declares and does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub reports_effective_config: bool,
    pub reports_health: bool,
    /// Remote config is off unless asked for (`capabilities.accepts_remote_config` or
    /// `remote_config.accept`), as the spec recommends.
    pub accepts_remote_config: bool,
    pub reports_remote_config: bool,
    pub reports_heartbeat: bool,
    /// `ReportsOwnMetrics`: push the agent's metrics where the server offers. On by
    /// default, as in the Collector's supervisor: nothing is sent until a server offers a
    /// destination.
    pub reports_own_metrics: bool,
    /// Declares the custom capability `io.centimane.snapshot`: the server may ask for the
    /// last records seen at a pipeline point. Off by default: records may hold personal
    /// data the server should not see.
    pub snapshot: bool,
}

/// A scalar attribute value from `non_identifying_attributes`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
}

/// Reconnect backoff: exponential with full jitter, `delay = random(0, min(max, initial·2ⁿ))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

const KEYS: &[&str] = &[
    "server",
    "instance_uid",
    "capabilities",
    "agent_description",
    "remote_config",
    "config_apply_timeout",
    "heartbeat_interval",
    "own_metrics_interval",
    "config_version_attribute",
];
const SERVER_KEYS: &[&str] = &["ws", "http"];
const WS_KEYS: &[&str] = &["endpoint", "headers", "tls"];
const HTTP_KEYS: &[&str] = &["endpoint", "headers", "tls", "polling_interval"];
const TLS_KEYS: &[&str] = &["insecure", "ca_file", "insecure_skip_verify"];
const CAPABILITY_KEYS: &[&str] = &[
    "reports_effective_config",
    "reports_health",
    "accepts_remote_config",
    "reports_remote_config",
    "reports_heartbeat",
    "reports_own_metrics",
    "reports_available_components",
    "snapshot",
];
const DESCRIPTION_KEYS: &[&str] = &["non_identifying_attributes"];
const REMOTE_KEYS: &[&str] = &["accept", "allow"];
const ALLOW_KEYS: &[&str] = &["include_globs", "exporter_endpoints", "exporter_paths"];

/// Parses and validates the `extensions.opamp` block (YAML already turned into JSON,
/// `${env:...}` substituted). Unknown keys, wrong types and missing required keys are
/// errors whose text names the key in backticks (`server.ws.tls.ca_file`).
pub fn parse_config(config: Value) -> Result<OpampConfig, String> {
    let mut f = Fields::new("", config, KEYS)?;
    let server = parse_server(f.take_raw("server"))?;
    let instance_uid = match f.take::<String>("instance_uid")? {
        None => None,
        Some(text) => Some(Uuid::parse_str(&text).map_err(|e| {
            format!("`instance_uid`: {text:?} is not a UUID ({e}); leave it unset to generate one")
        })?),
    };
    let (accept, allow) = parse_remote_config(f.take_raw("remote_config"))?;
    let capabilities = parse_capabilities(f.take_raw("capabilities"), accept)?;
    let non_identifying_attributes = match f.take_raw("agent_description") {
        None => Vec::new(),
        Some(block) => {
            let mut d = Fields::new("agent_description.", block, DESCRIPTION_KEYS)?;
            parse_attributes(d.take_raw("non_identifying_attributes"))?
        }
    };
    let config_apply_timeout = duration(&mut f, "config_apply_timeout", Duration::from_secs(30))?;
    if config_apply_timeout.is_zero() {
        return Err("`config_apply_timeout` must be more than zero".into());
    }
    let heartbeat_interval = duration(&mut f, "heartbeat_interval", Duration::from_secs(30))?;
    let own_metrics_interval = duration(&mut f, "own_metrics_interval", Duration::from_secs(10))?;
    if own_metrics_interval < Duration::from_secs(1) {
        return Err("`own_metrics_interval` must be at least 1s".into());
    }
    let config_version_attribute = f.take::<String>("config_version_attribute")?;
    if config_version_attribute.as_deref() == Some("") {
        return Err("`config_version_attribute` must be a non-empty attribute name".into());
    }
    Ok(OpampConfig {
        server,
        instance_uid,
        capabilities,
        non_identifying_attributes,
        allow,
        config_apply_timeout,
        heartbeat_interval,
        own_metrics_interval,
        config_version_attribute,
        reconnect: Backoff::default(),
    })
}

fn duration(f: &mut Fields, key: &str, default: Duration) -> Result<Duration, String> {
    Ok(f.take::<GoDuration>(key)?.map_or(default, Duration::from))
}

fn parse_server(block: Option<Value>) -> Result<ServerConfig, String> {
    let block =
        block.ok_or("`server` is required: `server.ws.endpoint` or `server.http.endpoint`")?;
    let mut s = Fields::new("server.", block, SERVER_KEYS)?;
    let (ws, http) = (s.take_raw("ws"), s.take_raw("http"));
    let (prefix, block, known) = match (ws, http) {
        (Some(_), Some(_)) => {
            return Err("`server`: set `ws` or `http`, not both".into());
        }
        (None, None) => {
            return Err("`server` needs `ws` (WebSocket) or `http` (plain HTTP polling)".into());
        }
        (Some(b), None) => ("server.ws.", b, WS_KEYS),
        (None, Some(b)) => ("server.http.", b, HTTP_KEYS),
    };
    let is_ws = prefix == "server.ws.";
    let mut t = Fields::new(prefix, block, known)?;
    let endpoint: String = t
        .take("endpoint")?
        .ok_or_else(|| format!("`{}` is required", t.path("endpoint")))?;
    let secure =
        check_endpoint(&endpoint, is_ws).map_err(|e| format!("`{}`: {e}", t.path("endpoint")))?;
    let headers = t.take_string_map("headers")?;
    for (name, value) in &headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            format!(
                "`{}.{name}`: not a valid HTTP header name",
                t.path("headers")
            )
        })?;
        HeaderValue::from_str(value).map_err(|_| {
            format!(
                "`{}.{name}`: not a valid HTTP header value",
                t.path("headers")
            )
        })?;
    }
    let tls = parse_tls(t.take_raw("tls"), prefix)?;
    if tls.insecure && secure {
        return Err(format!(
            "`{prefix}tls.insecure` asks for plaintext, but {endpoint:?} uses TLS; use a {} endpoint or drop `insecure`",
            if is_ws { "ws://" } else { "http://" }
        ));
    }
    let transport = if is_ws {
        Transport::WebSocket
    } else {
        let polling_interval = duration(&mut t, "polling_interval", Duration::from_secs(30))?;
        if polling_interval.is_zero() {
            return Err("`server.http.polling_interval` must be more than zero".into());
        }
        Transport::Http { polling_interval }
    };
    Ok(ServerConfig {
        transport,
        endpoint,
        headers: Headers(headers),
        tls,
    })
}

/// Checks the URL and returns whether it uses TLS.
fn check_endpoint(endpoint: &str, ws: bool) -> Result<bool, String> {
    let url =
        reqwest::Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL ({e})"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{endpoint:?} has no host"));
    }
    match (url.scheme(), ws) {
        ("ws", true) | ("http", false) => Ok(false),
        ("wss", true) | ("https", false) => Ok(true),
        (scheme, true) => Err(format!(
            "{endpoint:?}: a WebSocket endpoint starts with ws:// or wss://, not {scheme}://"
        )),
        (scheme, false) => Err(format!(
            "{endpoint:?}: an HTTP endpoint starts with http:// or https://, not {scheme}://"
        )),
    }
}

fn parse_tls(block: Option<Value>, prefix: &str) -> Result<TlsConfig, String> {
    let Some(block) = block else {
        return Ok(TlsConfig::default());
    };
    let mut t = Fields::new(&format!("{prefix}tls."), block, TLS_KEYS)?;
    let ca_file = t.take::<PathBuf>("ca_file")?;
    if ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return Err(format!("`{}` must not be empty", t.path("ca_file")));
    }
    Ok(TlsConfig {
        insecure: t.take("insecure")?.unwrap_or(false),
        ca_file,
        insecure_skip_verify: t.take("insecure_skip_verify")?.unwrap_or(false),
    })
}

/// `remote_config.accept` and `capabilities.accepts_remote_config` are two spellings of
/// one switch; when both are written they must agree, so no config says yes and no at once.
fn parse_capabilities(block: Option<Value>, accept: Option<bool>) -> Result<Capabilities, String> {
    let mut c = Fields::new(
        "capabilities.",
        block.unwrap_or(Value::Null),
        CAPABILITY_KEYS,
    )?;
    let declared = c.take::<bool>("accepts_remote_config")?;
    let accepts_remote_config = match (declared, accept) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "`capabilities.accepts_remote_config: {a}` and `remote_config.accept: {b}` disagree; set one of them"
            ));
        }
        (a, b) => a.or(b).unwrap_or(false),
    };
    if c.take::<bool>("reports_available_components")? == Some(true) {
        return Err(
            "`capabilities.reports_available_components`: Centimane does not report available components; remove the key or set it to false"
                .into(),
        );
    }
    let reports_remote_config = c
        .take::<bool>("reports_remote_config")?
        .unwrap_or(accepts_remote_config);
    Ok(Capabilities {
        reports_effective_config: c.take("reports_effective_config")?.unwrap_or(true),
        reports_health: c.take("reports_health")?.unwrap_or(true),
        accepts_remote_config,
        reports_remote_config,
        reports_heartbeat: c.take("reports_heartbeat")?.unwrap_or(true),
        reports_own_metrics: c.take("reports_own_metrics")?.unwrap_or(true),
        snapshot: c.take("snapshot")?.unwrap_or(false),
    })
}

fn parse_remote_config(block: Option<Value>) -> Result<(Option<bool>, AllowPolicy), String> {
    let Some(block) = block else {
        return Ok((None, AllowPolicy::default()));
    };
    let mut r = Fields::new("remote_config.", block, REMOTE_KEYS)?;
    let accept = r.take::<bool>("accept")?;
    let allow = match r.take_raw("allow") {
        None => AllowPolicy::default(),
        Some(block) => {
            let mut a = Fields::new("remote_config.allow.", block, ALLOW_KEYS)?;
            let globs = |a: &mut Fields, key: &str| -> Result<Option<Vec<PathGlob>>, String> {
                let path = a.path(key);
                a.take::<Vec<String>>(key)?
                    .map(|list| {
                        list.iter()
                            .map(|g| PathGlob::parse(g).map_err(|e| format!("`{path}`: {e}")))
                            .collect()
                    })
                    .transpose()
            };
            let include_globs = globs(&mut a, "include_globs")?;
            let exporter_paths = globs(&mut a, "exporter_paths")?;
            let path = a.path("exporter_endpoints");
            let exporter_endpoints = a
                .take::<Vec<String>>("exporter_endpoints")?
                .map(|list| {
                    list.iter()
                        .map(|p| EndpointPattern::parse(p).map_err(|e| format!("`{path}`: {e}")))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            AllowPolicy {
                include_globs,
                exporter_endpoints,
                exporter_paths,
            }
        }
    };
    Ok((accept, allow))
}

fn parse_attributes(block: Option<Value>) -> Result<Vec<(String, AttributeValue)>, String> {
    const KEY: &str = "agent_description.non_identifying_attributes";
    let map = match block {
        None => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "`{KEY}` must be a mapping of attribute names to values, not {}",
                json_type(&other)
            ));
        }
    };
    map.into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => AttributeValue::String(s),
                Value::Bool(b) => AttributeValue::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => AttributeValue::Int(i),
                    None => AttributeValue::Double(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => {
                    return Err(format!(
                        "`{KEY}.{name}` must be a string, number or boolean, not {}",
                        json_type(&other)
                    ));
                }
            };
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ws() -> Value {
        json!({"server": {"ws": {"endpoint": "ws://127.0.0.1:4320/v1/opamp"}}})
    }

    #[test]
    fn minimal_ws_config_has_collector_defaults() {
        let c = parse_config(ws()).unwrap();
        assert_eq!(c.server.transport, Transport::WebSocket);
        assert_eq!(c.instance_uid, None);
        assert!(c.capabilities.reports_effective_config);
        assert!(c.capabilities.reports_health);
        assert!(c.capabilities.reports_heartbeat);
        assert!(!c.capabilities.accepts_remote_config);
        assert!(!c.capabilities.reports_remote_config);
        assert!(!c.capabilities.snapshot);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.config_apply_timeout, Duration::from_secs(30));
        assert_eq!(c.allow, AllowPolicy::default());
    }

    #[test]
    fn full_http_config() {
        let c = parse_config(json!({
            "server": {"http": {
                "endpoint": "https://opamp.example.com/v1/opamp",
                "headers": {"Authorization": "Bearer x"},
                "tls": {"ca_file": "/etc/ca.pem", "insecure_skip_verify": false},
                "polling_interval": "10s"
            }},
            "instance_uid": "01a20a48-f8c9-723a-aa62-89027ba90a1f",
            "capabilities": {"reports_health": false, "snapshot": true, "reports_available_components": false},
            "agent_description": {"non_identifying_attributes": {"env": "prod", "rack": 7, "canary": true, "w": 0.5}},
            "remote_config": {"accept": true, "allow": {
                "include_globs": ["/var/log/**"],
                "exporter_endpoints": ["collector:4317", "https://*.example.com:4318"],
                "exporter_paths": ["/var/spool/centimane/*.jsonl"]
            }},
            "config_apply_timeout": "1m",
            "heartbeat_interval": "0"
        }))
        .unwrap();
        assert_eq!(
            c.server.transport,
            Transport::Http {
                polling_interval: Duration::from_secs(10)
            }
        );
        assert_eq!(
            c.server.headers.0,
            vec![("Authorization".into(), "Bearer x".into())]
        );
        assert!(!format!("{:?}", c.server.headers).contains("Bearer"));
        assert_eq!(c.server.tls.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(c.capabilities.accepts_remote_config && c.capabilities.reports_remote_config);
        assert!(!c.capabilities.reports_health && c.capabilities.snapshot);
        assert_eq!(c.non_identifying_attributes.len(), 4);
        assert_eq!(
            c.non_identifying_attributes[1],
            ("rack".into(), AttributeValue::Int(7))
        );
        assert_eq!(c.allow.include_globs.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.allow.exporter_endpoints.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.config_apply_timeout, Duration::from_secs(60));
        assert_eq!(c.heartbeat_interval, Duration::ZERO);
        assert_eq!(
            c.instance_uid.unwrap().to_string(),
            "01a20a48-f8c9-723a-aa62-89027ba90a1f"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                json!({"server": {"ws": {"endpoint": "ws://h/v1/opamp"}}, "instanceuid": "x"}),
                "`instanceuid`",
            ),
            (
                json!({"server": {"ws": {"endpont": "ws://h"}}}),
                "did you mean `server.ws.endpoint`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "http://h/v1/opamp"}}}),
                "`server.ws.endpoint`",
            ),
            (
                json!({"server": {"http": {"endpoint": "ws://h/v1/opamp"}}}),
                "`server.http.endpoint`",
            ),
            (
                json!({"server": {"http": {"endpoint": "http://h", "polling_interval": "0"}}}),
                "`server.http.polling_interval`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}, "http": {"endpoint": "http://h"}}}),
                "not both",
            ),
            (json!({}), "`server` is required"),
            (
                json!({"server": {"ws": {"endpoint": "wss://h", "tls": {"insecure": true}}}}),
                "`server.ws.tls.insecure`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h", "tls": {"ca": "x"}}}}),
                "`server.ws.tls.ca`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h", "headers": {"a b": "x"}}}}),
                "`server.ws.headers.a b`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h", "headers": {"x": 1}}}}),
                "`server.ws.headers.x`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "instance_uid": "nope"}),
                "`instance_uid`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "capabilities": {"reports_helth": true}}),
                "did you mean `capabilities.reports_health`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "capabilities": {"reports_available_components": true}}),
                "`capabilities.reports_available_components`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "capabilities": {"accepts_remote_config": true}, "remote_config": {"accept": false}}),
                "disagree",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "remote_config": {"allow": {"include": []}}}),
                "`remote_config.allow.include`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "remote_config": {"allow": {"include_globs": ["var/[log"]}}}),
                "`remote_config.allow.include_globs`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "heartbeat_interval": "soon"}),
                "`heartbeat_interval`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "config_apply_timeout": "0s"}),
                "`config_apply_timeout`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "agent_description": {"non_identifying_attributes": {"a": [1]}}}),
                "`agent_description.non_identifying_attributes.a`",
            ),
            (
                json!({"server": {"ws": {"endpoint": "ws://h"}}, "ppid": 1}),
                "`ppid`",
            ),
        ];
        for (config, needle) in cases {
            let err = parse_config(config.clone()).expect_err(&config.to_string());
            assert!(err.contains(needle), "{config}: {err}");
        }
    }

    #[test]
    fn accept_spellings_agree() {
        let mut v = ws();
        v["remote_config"] = json!({"accept": true});
        assert!(
            parse_config(v.clone())
                .unwrap()
                .capabilities
                .accepts_remote_config
        );
        v["capabilities"] = json!({"accepts_remote_config": true, "reports_remote_config": false});
        let c = parse_config(v).unwrap();
        assert!(c.capabilities.accepts_remote_config && !c.capabilities.reports_remote_config);
    }
}
