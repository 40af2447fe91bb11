//! Loading an agent config: the OpenTelemetry Collector's shape (`receivers`, `processors`,
//! `exporters`, `extensions`, `service.pipelines`), `${env:VAR}` substitution, and errors
//! that name the component, the key and the line, with a suggestion when a name is close
//! to a valid one. Every error in a file is reported, not just the first.

use centimane_core::config::ComponentId;
use centimane_exporters::ExporterConfig;
use centimane_processors::ProcessorConfig;
use centimane_receivers::ReceiverConfig;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub line: Option<u64>,
    /// Where in the config: `receivers.filelog/app`, `service.pipelines.logs`.
    pub place: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.place, self.message),
            None => write!(f, "{}: {}", self.place, self.message),
        }
    }
}

/// All the problems found in a config file.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A loaded, validated agent config.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub receivers: IndexMap<ComponentId, ReceiverConfig>,
    pub processors: IndexMap<ComponentId, ProcessorConfig>,
    pub exporters: IndexMap<ComponentId, ExporterConfig>,
    pub storages: IndexMap<ComponentId, FileStorageConfig>,
    /// The enabled `opamp` extension, and the directory its state is kept in (`opamp/`
    /// under the first enabled `file_storage` directory).
    pub opamp: Option<(centimane_opamp_ext::OpampConfig, PathBuf)>,
    pub pipelines: IndexMap<String, Pipeline>,
    pub telemetry: Telemetry,
    /// A stable hash of the config text (FNV-1a, hex): what `centimane_config_info` and
    /// the OpAMP `config_version_attribute` show.
    pub config_hash: String,
    /// The enabled `health_check` extension.
    pub health_check: Option<HealthCheckConfig>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// The `file_storage` extension: a directory for checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStorageConfig {
    #[serde(default = "default_storage_directory")]
    pub directory: PathBuf,
    /// Create the directory if it is missing (the Collector's default is not to).
    #[serde(default)]
    pub create_directory: bool,
}

fn default_storage_directory() -> PathBuf {
    PathBuf::from("/var/lib/otelcol/file_storage")
}

pub const EXTENSION_TYPES: &[&str] = &["file_storage", "health_check", "opamp"];

#[derive(Debug, Clone)]
enum ExtensionConfig {
    FileStorage(FileStorageConfig),
    HealthCheck(HealthCheckConfig),
    Opamp(Box<centimane_opamp_ext::OpampConfig>),
}

type Section = IndexMap<String, Spanned<serde_json::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    receivers: Section,
    #[serde(default)]
    processors: Section,
    #[serde(default)]
    exporters: Section,
    #[serde(default)]
    extensions: Section,
    service: Option<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    extensions: Vec<String>,
    #[serde(default)]
    pipelines: IndexMap<String, Spanned<RawPipeline>>,
    #[serde(default)]
    telemetry: Telemetry,
}

/// `service.telemetry`: the agent's own logs and metrics.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    #[serde(default)]
    pub logs: TelemetryLogs,
    #[serde(default)]
    pub metrics: TelemetryMetrics,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryLogs {
    /// `debug`, `info` (default), `warn` or `error`; `RUST_LOG` overrides it.
    pub level: Option<String>,
    #[serde(default)]
    pub encoding: LogEncoding,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryMetrics {
    /// `none` turns the endpoint off; other levels serve every metric.
    #[serde(default = "default_metrics_level")]
    pub level: String,
    /// Where `/metrics` is served (Prometheus text format).
    #[serde(default = "default_metrics_address")]
    pub address: String,
}

impl Default for TelemetryMetrics {
    fn default() -> Self {
        TelemetryMetrics {
            level: default_metrics_level(),
            address: default_metrics_address(),
        }
    }
}

fn default_metrics_level() -> String {
    "normal".into()
}

fn default_metrics_address() -> String {
    "127.0.0.1:8888".into()
}

/// The `health_check` extension: an HTTP endpoint answering 200 while every pipeline runs
/// and no exporter is failing, 503 otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    #[serde(default = "default_health_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_health_path")]
    pub path: String,
}

impl HealthCheckConfig {
    fn validated(self) -> Result<Self, String> {
        if !self.path.starts_with('/') {
            return Err(format!("`path` {:?} must start with `/`", self.path));
        }
        let port_ok = self
            .endpoint
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "`endpoint` {:?} must be host:port, like 127.0.0.1:13133",
                self.endpoint
            ));
        }
        Ok(self)
    }
}

fn default_health_endpoint() -> String {
    "127.0.0.1:13133".into()
}

fn default_health_path() -> String {
    "/".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    #[serde(default)]
    receivers: Vec<String>,
    #[serde(default)]
    processors: Vec<String>,
    #[serde(default)]
    exporters: Vec<String>,
}

/// Parses and validates config text. `env` looks up environment variables (injected so
/// tests need not touch the process environment).
pub fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AgentConfig, ConfigErrors> {
    let raw: RawConfig =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let message = e.to_string();
            // The parser's message starts with its own position; keep only the first line.
            let message = message.lines().next().unwrap_or_default().to_owned();
            let message = suggest(&message).map_or(message.clone(), |s| {
                format!("{message}; did you mean `{s}`?")
            });
            ConfigErrors(vec![ConfigError {
                line,
                place: "config".into(),
                message,
            }])
        })?;
    let mut errors = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut ctx = Ctx {
        lines: &lines,
        env,
        errors: &mut errors,
        invalid: Vec::new(),
    };

    let extensions = ctx.section(
        "extensions",
        raw.extensions,
        EXTENSION_TYPES,
        |kind, v| match kind {
            "file_storage" => centimane_core::config::from_json::<FileStorageConfig>(v)
                .map(ExtensionConfig::FileStorage),
            "health_check" => centimane_core::config::from_json::<HealthCheckConfig>(v)
                .and_then(HealthCheckConfig::validated)
                .map(ExtensionConfig::HealthCheck),
            "opamp" => {
                centimane_opamp_ext::parse_config(v).map(|c| ExtensionConfig::Opamp(Box::new(c)))
            }
            other => Err(format!("unknown extension type `{other}`")),
        },
    );
    let storages: IndexMap<ComponentId, FileStorageConfig> = extensions
        .iter()
        .filter_map(|(id, e)| match e {
            ExtensionConfig::FileStorage(s) => Some((id.clone(), s.clone())),
            _ => None,
        })
        .collect();
    let mut opamp = None;
    let mut health_check = None;
    let mut telemetry = Telemetry::default();
    let receivers = ctx.section(
        "receivers",
        raw.receivers,
        centimane_receivers::RECEIVER_TYPES,
        |kind, v| {
            let c = centimane_receivers::parse_config(kind, v)?;
            // Build the chains once here so operator errors surface at validate time.
            if let Some(ops) = c.operators() {
                centimane_operators::build_chain(&ops).map_err(|e| format!("`operators`: {e}"))?;
            }
            if let Some(ops) = c.header_operators() {
                centimane_operators::build_chain(ops)
                    .map_err(|e| format!("`header.metadata_operators`: {e}"))?;
            }
            Ok(c)
        },
    );
    let processors = ctx.section(
        "processors",
        raw.processors,
        centimane_processors::PROCESSOR_TYPES,
        centimane_processors::parse_config,
    );
    let exporters = ctx.section(
        "exporters",
        raw.exporters,
        centimane_exporters::EXPORTER_TYPES,
        centimane_exporters::parse_config,
    );

    let mut pipelines = IndexMap::new();
    match raw.service {
        None => ctx.errors.push(ConfigError {
            line: None,
            place: "service".into(),
            message: "missing: a config needs `service.pipelines` with at least one logs pipeline"
                .into(),
        }),
        Some(service) => {
            let line = Some(service.defined.line());
            let service = service.value;
            telemetry = service.telemetry;
            if let Some(level) = &telemetry.logs.level {
                let known = ["trace", "debug", "info", "warn", "error"];
                if !known.contains(&level.to_ascii_lowercase().as_str()) {
                    ctx.errors.push(ConfigError {
                        line,
                        place: "service.telemetry.logs".into(),
                        message: format!("`level` {level:?} is not one of {}", known.join(", ")),
                    });
                }
            }
            let levels = ["none", "basic", "normal", "detailed"];
            if !levels.contains(&telemetry.metrics.level.as_str()) {
                ctx.errors.push(ConfigError {
                    line,
                    place: "service.telemetry.metrics".into(),
                    message: format!(
                        "`level` {:?} is not one of {}",
                        telemetry.metrics.level,
                        levels.join(", ")
                    ),
                });
            }
            let mut enabled_storages = Vec::new();
            let mut enabled_opamp = None;
            for name in &service.extensions {
                match name.parse::<ComponentId>().ok().and_then(|id| {
                    let e = extensions.get(&id)?;
                    Some((id, e))
                }) {
                    Some((id, ExtensionConfig::FileStorage(_))) => enabled_storages.push(id),
                    Some((_, ExtensionConfig::Opamp(c))) => enabled_opamp = Some(c.clone()),
                    Some((_, ExtensionConfig::HealthCheck(c))) => health_check = Some(c.clone()),
                    None if ctx.invalid.contains(&format!("extensions.{name}")) => {}
                    None => ctx.errors.push(ConfigError {
                        line,
                        place: "service.extensions".into(),
                        message: undefined("extension", name, extensions.keys()),
                    }),
                }
            }
            if let Some(c) = enabled_opamp {
                match enabled_storages.first() {
                    Some(s) => opamp = Some((*c, storages[s].directory.join("opamp"))),
                    None => ctx.errors.push(ConfigError {
                        line,
                        place: "service.extensions".into(),
                        message: "the `opamp` extension keeps its state (instance id, last good remote config) in a `file_storage` extension: define one and list it in `service.extensions`".into(),
                    }),
                }
            }
            if service.pipelines.is_empty() {
                ctx.errors.push(ConfigError {
                    line,
                    place: "service.pipelines".into(),
                    message: "no pipelines: add one, e.g. `logs: {receivers: [filelog], exporters: [debug]}`".into(),
                });
            }
            for (name, p) in service.pipelines {
                let line = Some(p.defined.line());
                let place = format!("service.pipelines.{name}");
                let signal = name.split('/').next().unwrap_or_default();
                if signal != "logs" {
                    ctx.errors.push(ConfigError {
                        line,
                        place,
                        message: format!("`{signal}` pipelines are not supported: Centimane is a log agent (use `logs` or `logs/<name>`)"),
                    });
                    continue;
                }
                let p = p.value;
                let mut resolve =
                    |kind: &str, names: &[String], known: Vec<&ComponentId>| -> Vec<ComponentId> {
                        let mut ids = Vec::new();
                        for n in names {
                            match n.parse::<ComponentId>() {
                                Ok(id) if known.contains(&&id) => ids.push(id),
                                _ if ctx.invalid.contains(&format!("{kind}s.{n}")) => {}
                                _ => ctx.errors.push(ConfigError {
                                    line,
                                    place: place.clone(),
                                    message: undefined(kind, n, known.iter().copied()),
                                }),
                            }
                        }
                        ids
                    };
                let receivers_ids = resolve("receiver", &p.receivers, receivers.keys().collect());
                let processor_ids =
                    resolve("processor", &p.processors, processors.keys().collect());
                let exporter_ids = resolve("exporter", &p.exporters, exporters.keys().collect());
                if p.receivers.is_empty() || p.exporters.is_empty() {
                    ctx.errors.push(ConfigError {
                        line,
                        place: place.clone(),
                        message: "a pipeline needs at least one receiver and one exporter".into(),
                    });
                }
                pipelines.insert(
                    name,
                    Pipeline {
                        receivers: receivers_ids,
                        processors: processor_ids,
                        exporters: exporter_ids,
                    },
                );
            }
            for (id, e) in &exporters {
                if let Some(storage) = e.storage()
                    && !enabled_storages.contains(storage)
                {
                    ctx.errors.push(ConfigError {
                        line: None,
                        place: format!("exporters.{id}"),
                        message: format!("`sending_queue.storage` names `{storage}`, which is not a `file_storage` extension listed in `service.extensions`"),
                    });
                }
            }
            for (id, r) in &receivers {
                if let Some(storage) = r.storage() {
                    let ok = storage
                        .parse::<ComponentId>()
                        .is_ok_and(|s| enabled_storages.contains(&s));
                    if !ok {
                        ctx.errors.push(ConfigError {
                            line: None,
                            place: format!("receivers.{id}"),
                            message: format!("`storage` names `{storage}`, which is not a `file_storage` extension listed in `service.extensions`"),
                        });
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(AgentConfig {
        receivers,
        processors,
        exporters,
        storages,
        opamp,
        pipelines,
        telemetry,
        config_hash: fnv1a_hex(text),
        health_check,
    })
}

/// How config YAML is read: YAML 1.2 booleans only (`true`/`false`), so `yes`, `no`, `on`,
/// `off`, `y`, `n` stay strings as the Collector (go-yaml v3) keeps them.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

/// A stable 64-bit FNV-1a hash in hex: the same config text gives the same value across
/// runs and builds.
pub fn fnv1a_hex(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

struct Ctx<'a> {
    lines: &'a [&'a str],
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: &'a mut Vec<ConfigError>,
    /// `section.id` of components that are defined but invalid: already reported, so a
    /// pipeline naming them is not also told they are undefined.
    invalid: Vec<String>,
}

impl Ctx<'_> {
    /// Parses every component of a section with `parse`, collecting errors.
    fn section<T>(
        &mut self,
        section: &str,
        raw: Section,
        kinds: &[&str],
        parse: impl Fn(&str, serde_json::Value) -> Result<T, String>,
    ) -> IndexMap<ComponentId, T> {
        let mut out = IndexMap::new();
        for (name, spanned) in raw {
            let line = spanned.defined.line();
            let place = format!("{section}.{name}");
            let id = match name.parse::<ComponentId>() {
                Ok(id) => id,
                Err(e) => {
                    self.invalid.push(format!("{section}.{name}"));
                    self.errors.push(ConfigError {
                        line: Some(line),
                        place,
                        message: e,
                    });
                    continue;
                }
            };
            if !kinds.contains(&id.kind.as_str()) {
                self.invalid.push(format!("{section}.{id}"));
                let hint = closest(&id.kind, kinds.iter().copied())
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                self.errors.push(ConfigError {
                    line: Some(line),
                    place,
                    message: format!(
                        "unknown {} type `{}` (this build has: {}){hint}",
                        singular(section),
                        id.kind,
                        kinds.join(", ")
                    ),
                });
                continue;
            }
            let value = match substitute_env(spanned.value, self.env) {
                Ok(v) => v,
                Err(message) => {
                    self.errors.push(ConfigError {
                        line: Some(line),
                        place,
                        message,
                    });
                    continue;
                }
            };
            match parse(&id.kind, value) {
                Ok(c) => {
                    out.insert(id, c);
                }
                Err(message) => {
                    self.invalid.push(format!("{section}.{id}"));
                    let line = key_line(self.lines, line, &message).unwrap_or(line);
                    let message = match suggest(&message) {
                        Some(s) if !message.contains("did you mean") => {
                            format!("{message}; did you mean `{s}`?")
                        }
                        _ => message,
                    };
                    self.errors.push(ConfigError {
                        line: Some(line),
                        place,
                        message,
                    });
                }
            }
        }
        out
    }
}

fn singular(section: &str) -> &str {
    section.strip_suffix('s').unwrap_or(section)
}

fn undefined<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a ComponentId>) -> String {
    let known: Vec<String> = known.map(ToString::to_string).collect();
    let hint = closest(name, known.iter().map(String::as_str))
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    format!("{kind} `{name}` is not defined in the config{hint}")
}

/// The nearest candidate to `word`, if any is close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the expected name nearest `x`.
fn suggest(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    closest(unknown, names.into_iter()).map(str::to_owned)
}

/// The line of the key an error names (the first backticked word that appears as a key
/// at or after the component's line), so the user is pointed at the exact line.
fn key_line(lines: &[&str], from_line: u64, message: &str) -> Option<u64> {
    let first = usize::try_from(from_line).ok()?.checked_sub(1)?;
    let mut indent_of_block = None;
    for word in message.split('`').skip(1).step_by(2) {
        let key = word.rsplit('.').next().unwrap_or(word);
        for (i, line) in lines.iter().enumerate().skip(first) {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if i > first && !trimmed.is_empty() && !trimmed.starts_with('#') {
                let block = *indent_of_block.get_or_insert(indent);
                if indent < block {
                    break; // left the component's block
                }
            }
            let trimmed = trimmed.trim_start_matches("- ");
            if trimmed.starts_with(&format!("{key}:"))
                || trimmed.starts_with(&format!("\"{key}\":"))
            {
                return Some(i as u64 + 1);
            }
        }
    }
    None
}

/// Replaces `${env:VAR}` and `${VAR}` in string values (the Collector's rules: `$$` is a
/// literal `$`; a value that is only a reference takes the variable's YAML type, so
/// `${env:PORT}` can fill an integer key). An unset variable is an empty string.
pub fn substitute_env(
    value: serde_json::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(s) => {
            if !s.contains('$') {
                return Ok(J::String(s));
            }
            let whole_reference =
                s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
            let replaced = expand(&s, env)?;
            if whole_reference {
                match serde_saphyr::from_str_with_options::<serde_json::Value>(
                    &replaced,
                    yaml_options(),
                ) {
                    Ok(v @ (J::Number(_) | J::Bool(_))) => v,
                    _ => J::String(replaced),
                }
            } else {
                J::String(replaced)
            }
        }
        J::Array(items) => J::Array(
            items
                .into_iter()
                .map(|v| substitute_env(v, env))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, substitute_env(v, env)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
            let reference = &r[..end];
            let name = reference.strip_prefix("env:").unwrap_or(reference);
            let (name, default) = match name.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (name, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "invalid environment variable reference `${{{reference}}}` in {text:?}"
                ));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {}
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "LOG_DIR" => Some("/var/log".into()),
            "PORT" => Some("4317".into()),
            _ => None,
        }
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        parse(text, &env).unwrap_err().0
    }

    const GOOD: &str = "\
receivers:
  filelog/app:
    include: [\"${env:LOG_DIR}/*.log\"]
    start_at: beginning
    operators:
      - type: json_parser
processors:
  batch:
exporters:
  debug:
    verbosity: basic
service:
  pipelines:
    logs:
      receivers: [filelog/app]
      processors: [batch]
      exporters: [debug]
";

    #[test]
    fn a_good_config_loads() {
        let c = parse(GOOD, &env).unwrap();
        let id: ComponentId = "filelog/app".parse().unwrap();
        let ReceiverConfig::Filelog(f) = &c.receivers[&id] else {
            panic!("filelog/app is a filelog receiver");
        };
        assert_eq!(f.include, ["/var/log/*.log"]);
        assert_eq!(c.pipelines["logs"].exporters.len(), 1);
    }

    #[test]
    fn a_misspelt_key_names_key_component_and_line() {
        let e = errors(&GOOD.replace("start_at:", "start_att:"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, Some(4));
        assert_eq!(e[0].place, "receivers.filelog/app");
        assert!(e[0].message.contains("`start_att`"), "{}", e[0].message);
        assert!(
            e[0].message.contains("did you mean `start_at`"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn unknown_type_undefined_component_and_bad_duration() {
        let text = GOOD
            .replace(
                "  debug:\n    verbosity: basic",
                "  debugg:\n    verbosity: basic",
            )
            .replace(
                "processors:\n  batch:",
                "processors:\n  batch:\n    timeout: 5 seconds",
            );
        let e = errors(&text);
        let all = ConfigErrors(e.clone()).to_string();
        assert!(all.contains("unknown exporter type `debugg`"), "{all}");
        assert!(all.contains("did you mean `debug`"), "{all}");
        assert!(all.contains("invalid duration"), "{all}");
        assert!(all.contains("exporter `debug` is not defined"), "{all}");
    }

    #[test]
    fn operator_errors_surface_at_load() {
        let e = errors(&GOOD.replace("json_parser", "json_parsr"));
        assert!(e[0].message.contains("json_parsr"), "{:?}", e[0]);
        assert_eq!(e[0].place, "receivers.filelog/app");
    }

    #[test]
    fn yaml_syntax_errors_have_a_line() {
        let e = errors("receivers:\n  filelog: [\n");
        assert!(e[0].line.is_some(), "{e:?}");
    }

    #[test]
    fn env_substitution() {
        let v = substitute_env(serde_json::json!({"a": "${env:PORT}", "b": "x${LOG_DIR}y", "c": "$${x}", "d": "${NOPE:-dflt}"}), &env).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 4317, "b": "x/var/logy", "c": "${x}", "d": "dflt"})
        );
        assert!(substitute_env(serde_json::json!("${bad name}"), &env).is_err());
        assert!(substitute_env(serde_json::json!("${unclosed"), &env).is_err());
    }

    #[test]
    fn storage_must_be_an_enabled_extension() {
        let text = GOOD.replace(
            "    start_at: beginning\n",
            "    start_at: beginning\n    storage: file_storage\n",
        );
        let all = ConfigErrors(errors(&text)).to_string();
        assert!(all.contains("`storage` names `file_storage`"), "{all}");
    }

    #[test]
    fn other_signals_are_refused() {
        let text = GOOD.replace("    logs:\n", "    traces:\n");
        let all = ConfigErrors(errors(&text)).to_string();
        assert!(
            all.contains("`traces` pipelines are not supported"),
            "{all}"
        );
    }

    #[test]
    fn yes_and_no_stay_strings() {
        let text = GOOD.replace(
            "      - type: json_parser",
            "      - type: add\n        id: n\n        field: attributes.flag\n        value: yes",
        );
        assert!(parse(&text, &env).is_ok(), "`id: n` is a string, not false");
    }

    #[test]
    fn extension_settings_are_checked_at_load() {
        let text = GOOD.replace("service:\n", "extensions:\n  health_check:\n    path: health\nservice:\n  extensions: [health_check]\n");
        let all = ConfigErrors(errors(&text)).to_string();
        assert!(
            all.contains("`path` \"health\" must start with `/`"),
            "{all}"
        );
        let text = GOOD
            .replace(
                "  debug:\n    verbosity: basic",
                "  otlp:\n    endpoint: h:1\n    sending_queue:\n      storage: file_storage",
            )
            .replace("exporters: [debug]", "exporters: [otlp]");
        let all = ConfigErrors(errors(&text)).to_string();
        assert!(
            all.contains("`sending_queue.storage` names `file_storage`"),
            "{all}"
        );
    }
}
