//! The `filelog` receiver's keys, with the Collector's names and defaults (stanza.md §7.1).

use centimane_core::config::{ByteSize, ComponentId, GoDuration};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilelogConfig {
    /// Glob patterns of files to read (`**` and `{a,b}` supported).
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files found by the first poll that have no checkpoint.
    #[serde(default = "default_start_at")]
    pub start_at: StartAt,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: GoDuration,
    /// How many leading bytes identify a file.
    #[serde(default = "default_fingerprint_size")]
    pub fingerprint_size: ByteSize,
    /// Longer lines are split into pieces of this size.
    #[serde(default = "default_max_log_size")]
    pub max_log_size: ByteSize,
    /// Emit an unterminated last line once it has not grown for this long (0 = never).
    #[serde(default = "default_force_flush_period")]
    pub force_flush_period: GoDuration,
    #[serde(default = "default_true")]
    pub include_file_name: bool,
    #[serde(default)]
    pub include_file_path: bool,
    #[serde(default)]
    pub include_file_name_resolved: bool,
    #[serde(default)]
    pub include_file_path_resolved: bool,
    #[serde(default)]
    pub preserve_leading_whitespaces: bool,
    #[serde(default)]
    pub preserve_trailing_whitespaces: bool,
    /// Only `utf-8` for now; others are refused with a clear message rather than misread.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// At most this many files are open at once.
    #[serde(default = "default_max_concurrent_files")]
    pub max_concurrent_files: usize,
    /// The `file_storage` extension holding checkpoints; without it offsets live in memory
    /// and a restart applies `start_at` again (the Collector's behaviour).
    #[serde(default)]
    pub storage: Option<String>,
    /// Stanza operators, built by the agent into an operator chain.
    #[serde(default)]
    pub operators: serde_json::Value,
}

fn default_start_at() -> StartAt {
    StartAt::End
}
fn default_poll_interval() -> GoDuration {
    GoDuration::from_millis(200)
}
fn default_fingerprint_size() -> ByteSize {
    ByteSize(1000)
}
fn default_max_log_size() -> ByteSize {
    ByteSize(1024 * 1024)
}
fn default_force_flush_period() -> GoDuration {
    GoDuration::from_millis(500)
}
fn default_true() -> bool {
    true
}
fn default_encoding() -> String {
    "utf-8".into()
}
fn default_max_concurrent_files() -> usize {
    1024
}

impl FilelogConfig {
    /// Parses and validates a `filelog` block. Errors name the key in backticks.
    pub fn parse(config: serde_json::Value) -> Result<Self, String> {
        let c: FilelogConfig = serde_json::from_value(config).map_err(|e| e.to_string())?;
        if c.include.is_empty() {
            return Err("`include` must list at least one glob pattern".into());
        }
        for pattern in c.include.iter().chain(&c.exclude) {
            crate::filelog::discover::compile(pattern)?;
        }
        if c.fingerprint_size.0 < 16 {
            return Err(format!(
                "`fingerprint_size` must be at least 16 bytes, got {}",
                c.fingerprint_size.0
            ));
        }
        if c.max_log_size.0 == 0 {
            return Err("`max_log_size` must be greater than 0".into());
        }
        if c.poll_interval.0.is_zero() {
            return Err("`poll_interval` must be greater than 0".into());
        }
        if c.max_concurrent_files == 0 {
            return Err("`max_concurrent_files` must be at least 1".into());
        }
        if !matches!(c.encoding.to_ascii_lowercase().as_str(), "utf-8" | "utf8") {
            return Err(format!(
                "`encoding` {:?} is not supported by this build yet (supported: utf-8)",
                c.encoding
            ));
        }
        if let Some(s) = &c.storage {
            s.parse::<ComponentId>()
                .map_err(|e| format!("`storage`: {e}"))?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_the_collector() {
        let c = FilelogConfig::parse(json!({"include": ["/var/log/*.log"]})).unwrap();
        assert_eq!(c.start_at, StartAt::End);
        assert_eq!(c.poll_interval, GoDuration::from_millis(200));
        assert_eq!(c.fingerprint_size, ByteSize(1000));
        assert_eq!(c.max_log_size, ByteSize(1 << 20));
        assert!(c.include_file_name && !c.include_file_path);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            (
                json!({"include": ["a"], "poll_intervall": "1s"}),
                "`poll_intervall`",
            ),
            (json!({"include": []}), "`include`"),
            (
                json!({"include": ["a"], "fingerprint_size": 8}),
                "`fingerprint_size`",
            ),
            (json!({"include": ["a"], "start_at": "middle"}), "`middle`"),
            (
                json!({"include": ["a"], "poll_interval": "often"}),
                "invalid duration",
            ),
            (json!({"include": ["a["]}), "a["),
            (
                json!({"include": ["a"], "encoding": "utf-16le"}),
                "`encoding`",
            ),
        ];
        for (config, want) in cases {
            let e = FilelogConfig::parse(config.clone()).unwrap_err();
            assert!(e.contains(want), "{config}: {e}");
        }
        let e = FilelogConfig::parse(json!({"exclude": []})).unwrap_err();
        assert!(e.contains("`include`"), "{e}");
    }
}
