//! The `filelog` receiver's keys, with the Collector's names and defaults (stanza.md §7.1).

use super::split::Decode;
use centimane_core::config::{ByteSize, ComponentId, GoDuration};
use serde::Deserialize;

/// A multiline pattern compiled as Stanza does: with `(?m)`, over bytes.
pub(crate) fn multiline_regex(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(&format!("(?m){pattern}"))
        .map_err(|e| format!("`multiline`: invalid pattern {pattern:?}: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MaxLogSizeBehavior {
    #[default]
    Split,
    Truncate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnTruncate {
    /// Read nothing until the file grows past the old offset.
    #[default]
    Ignore,
    /// Read the file again from the start.
    ReadWholeFile,
    /// Continue from the new, smaller size.
    ReadNew,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    #[serde(rename = "")]
    None,
    Gzip,
    /// gzip when the file name ends in `.gz`.
    Auto,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    #[serde(default)]
    pub line_start_pattern: Option<String>,
    #[serde(default)]
    pub line_end_pattern: Option<String>,
    /// Remove the matched start or end text from the token.
    #[serde(default)]
    pub omit_pattern: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderConfig {
    /// Lines at the start of a file matching this are header lines.
    pub pattern: String,
    /// Operators run on each header line; the attributes they produce are added to every
    /// entry of the file.
    pub metadata_operators: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderingCriteria {
    /// Named groups captured from each file path, used by `sort_by`.
    #[serde(default)]
    pub regex: Option<String>,
    /// Read only the first this many files after sorting (default 1).
    #[serde(default = "default_top_n")]
    pub top_n: usize,
    #[serde(default)]
    pub sort_by: Vec<SortRule>,
    /// Sort and cut within groups of files sharing this regex's first capture.
    #[serde(default)]
    pub group_by: Option<String>,
}

fn default_top_n() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortType {
    Numeric,
    Alphabetical,
    Timestamp,
    Mtime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortRule {
    pub sort_type: SortType,
    #[serde(default)]
    pub regex_key: Option<String>,
    #[serde(default)]
    pub ascending: bool,
    /// strptime layout for `timestamp` sorting.
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOnFailure {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_retry_initial")]
    pub initial_interval: GoDuration,
    #[serde(default = "default_retry_max")]
    pub max_interval: GoDuration,
    #[serde(default = "default_retry_elapsed")]
    pub max_elapsed_time: GoDuration,
}

fn default_retry_initial() -> GoDuration {
    GoDuration::from_secs(1)
}
fn default_retry_max() -> GoDuration {
    GoDuration::from_secs(30)
}
fn default_retry_elapsed() -> GoDuration {
    GoDuration::from_secs(300)
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
    /// `utf-8`, `utf8-raw`, `utf-16le`, `utf-16be`, `ascii`, `latin1`, `big5`,
    /// `shift_jis`, `euc-jp`, other WHATWG labels, or `nop` (raw bytes).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    #[serde(default)]
    pub max_log_size_behavior: MaxLogSizeBehavior,
    /// Skip files last modified longer ago than this (0 = off).
    #[serde(default)]
    pub exclude_older_than: GoDuration,
    /// Limit the batches of `max_concurrent_files / 2` files read per poll (0 = no limit).
    #[serde(default)]
    pub max_batches: usize,
    #[serde(default)]
    pub include_file_owner_name: bool,
    #[serde(default)]
    pub include_file_owner_group_name: bool,
    #[serde(default)]
    pub include_file_permissions: bool,
    #[serde(default)]
    pub include_file_record_number: bool,
    #[serde(default)]
    pub include_file_record_offset: bool,
    /// Delete each file once everything in it was read and acknowledged.
    #[serde(default)]
    pub delete_after_read: bool,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub ordering_criteria: Option<OrderingCriteria>,
    #[serde(default)]
    pub header: Option<HeaderConfig>,
    #[serde(default)]
    pub on_truncate: OnTruncate,
    /// Take an advisory lock (flock) on each file while reading it.
    #[serde(default)]
    pub acquire_fs_lock: bool,
    /// Attributes and resource entries added to every entry; `EXPR(...)` values are
    /// evaluated per entry.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub resource: serde_json::Map<String, serde_json::Value>,
    /// Accepted for compatibility: here a batch is retried by the exporters until it is
    /// delivered (the receiver never drops a batch), which covers what this setting does in
    /// the Collector.
    #[serde(default)]
    pub retry_on_failure: Option<RetryOnFailure>,
    /// Accepted for compatibility; known files are remembered for 3 polls after they
    /// disappear, and for as long as they are in the checkpoint.
    #[serde(default)]
    pub polls_to_archive: usize,
    /// Accepted for compatibility: the read buffer starts at 64 KiB and grows up to
    /// `max_log_size` as needed, whatever this says.
    #[serde(default)]
    pub initial_buffer_size: Option<ByteSize>,
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
        let c: FilelogConfig = centimane_core::config::from_json(config)?;
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
        let decode = Decode::from_name(&c.encoding).ok_or_else(|| {
            format!(
                "`encoding`: unknown encoding {:?} (use utf-8, utf8-raw, utf-16le, utf-16be, ascii, latin1, big5, shift_jis, euc-jp or nop)",
                c.encoding
            )
        })?;
        if let Some(m) = &c.multiline {
            match (&m.line_start_pattern, &m.line_end_pattern) {
                (Some(_), Some(_)) => {
                    return Err(
                        "`multiline`: only one of line_start_pattern or line_end_pattern can be set"
                            .into(),
                    );
                }
                (None, None) => {
                    return Err(
                        "`multiline`: set `line_start_pattern` or `line_end_pattern`".into(),
                    );
                }
                (Some(p), None) | (None, Some(p)) => {
                    if matches!(decode, Decode::Bytes) {
                        return Err("`multiline` can't be used with `encoding: nop`".into());
                    }
                    multiline_regex(p)?;
                }
            }
        }
        if c.delete_after_read && c.start_at == StartAt::End {
            return Err("`delete_after_read` requires `start_at: beginning` (otherwise existing lines would be deleted unread)".into());
        }
        if let Some(h) = &c.header {
            if c.start_at == StartAt::End {
                return Err("`header` requires `start_at: beginning`".into());
            }
            regex::Regex::new(&h.pattern).map_err(|e| format!("`header.pattern`: {e}"))?;
        }
        if let Some(o) = &c.ordering_criteria {
            for (key, re) in [("regex", &o.regex), ("group_by", &o.group_by)] {
                if let Some(re) = re {
                    regex::Regex::new(re).map_err(|e| format!("`ordering_criteria.{key}`: {e}"))?;
                }
            }
            for rule in &o.sort_by {
                if rule.sort_type != SortType::Mtime {
                    if o.regex.is_none() {
                        return Err(
                            "`ordering_criteria.regex` is required to sort by a captured value"
                                .into(),
                        );
                    }
                    if rule.regex_key.is_none() {
                        return Err("`ordering_criteria.sort_by.regex_key` is required for this `sort_type`".into());
                    }
                }
                if rule.sort_type == SortType::Timestamp && rule.layout.is_none() {
                    return Err(
                        "`ordering_criteria.sort_by.layout` is required for `sort_type: timestamp`"
                            .into(),
                    );
                }
            }
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
                json!({"include": ["a"], "encoding": "klingon"}),
                "`encoding`",
            ),
            (
                json!({"include": ["a"], "multiline": {"line_start_pattern": "a", "line_end_pattern": "b"}}),
                "`multiline`",
            ),
            (
                json!({"include": ["a"], "encoding": "nop", "multiline": {"line_start_pattern": "a"}}),
                "`multiline`",
            ),
            (
                json!({"include": ["a"], "multiline": {"line_start_pattern": "("}}),
                "`multiline`",
            ),
            (
                json!({"include": ["a"], "delete_after_read": true}),
                "`delete_after_read`",
            ),
            (
                json!({"include": ["a"], "header": {"pattern": "^#", "metadata_operators": []}}),
                "`header`",
            ),
            (
                json!({"include": ["a"], "ordering_criteria": {"sort_by": [{"sort_type": "numeric", "regex_key": "n"}]}}),
                "`ordering_criteria.regex`",
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
