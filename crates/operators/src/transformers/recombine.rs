//! `recombine` (stanza.md §6.1): joins the `combine_field` of consecutive entries of one
//! source into one entry. The batching itself ([`Recombiner`]) is shared with the container
//! parser, which recombines partial CRI lines.
//!
//! Invariants: there is at most one open batch per source; a batch holds at least one entry;
//! batches are flushed in the order they were opened. Like Stanza's, the operator ignores
//! `if`; `on_error` applies when the first/last-entry expression fails.

use crate::config::from_block;
use crate::error::ProcessError;
use crate::expr::Expr;
use crate::operator::{Flush, Guard, Stage};
use crate::registry::{Built, Spec};
use centimane_core::config::{ByteSize, GoDuration};
use centimane_core::{Entry, Field, FieldRoot, Value};
use indexmap::IndexMap;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// The source of entries whose `source_identifier` is missing, empty or not a string.
const DEFAULT_SOURCE: &str = "DefaultSourceIdentifier";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecombineConfig {
    combine_field: Field,
    is_first_entry: Option<String>,
    is_last_entry: Option<String>,
    #[serde(default = "default_combine_with")]
    combine_with: String,
    #[serde(default = "default_max_batch_size")]
    max_batch_size: usize,
    #[serde(default = "default_max_unmatched_batch_size")]
    max_unmatched_batch_size: usize,
    #[serde(default = "default_max_sources")]
    max_sources: usize,
    #[serde(default)]
    overwrite_with: OverwriteWith,
    #[serde(default = "default_force_flush_period")]
    force_flush_period: GoDuration,
    #[serde(default = "log_file_path")]
    source_identifier: Field,
    max_log_size: Option<ByteSize>,
}

fn default_combine_with() -> String {
    "\n".to_owned()
}
fn default_max_batch_size() -> usize {
    1000
}
fn default_max_unmatched_batch_size() -> usize {
    100
}
fn default_max_sources() -> usize {
    1000
}
fn default_force_flush_period() -> GoDuration {
    GoDuration::from_secs(5)
}
/// `attributes["log.file.path"]`, the file input's path attribute.
pub(crate) fn log_file_path() -> Field {
    Field::new(FieldRoot::Attributes, vec!["log.file.path".to_owned()])
}

/// Which entry of a batch the combined entry is a copy of. Stanza's code defaults to the
/// oldest (its docs say newest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OverwriteWith {
    #[default]
    Oldest,
    Newest,
}

/// Whether a match of the expression starts or ends a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchMeans {
    First,
    Last,
}

/// The batching settings of a [`Recombiner`].
pub(crate) struct Settings {
    pub combine_field: Field,
    pub combine_with: String,
    pub match_means: MatchMeans,
    /// 0 = unlimited (for each of the limits).
    pub max_batch_size: usize,
    pub max_unmatched_batch_size: usize,
    pub max_sources: usize,
    pub max_log_size: u64,
    pub overwrite_with: OverwriteWith,
    pub force_flush_period: Duration,
    pub source_identifier: Field,
}

/// One source's open batch.
struct Batch {
    /// The entry the combined entry is built from (the first or the latest).
    base: Entry,
    entries: usize,
    combined: String,
    /// When the first entry arrived; `force_flush_period` counts from here.
    opened: Instant,
    /// Whether an entry matched the expression (the unmatched-size limit no longer applies).
    matched: bool,
}

/// Per-source batches of entries waiting to be combined.
pub(crate) struct Recombiner {
    settings: Settings,
    batches: IndexMap<String, Batch>,
}

impl Recombiner {
    pub(crate) fn new(settings: Settings) -> Recombiner {
        Recombiner {
            settings,
            batches: IndexMap::new(),
        }
    }

    /// Adds `entry`, whose expression evaluated to `matches`, and writes to `out` whatever
    /// that completes. Only a new batch costs an allocation for its source key.
    pub(crate) fn push(&mut self, entry: Entry, matches: bool, out: &mut Vec<Entry>) {
        if !matches!(
            self.settings.combine_field.get(&entry),
            Some(Value::Str(_) | Value::Bytes(_))
        ) {
            // Nothing to combine: the entry goes on alone.
            out.push(entry);
            return;
        }
        let source = match self.settings.source_identifier.get(&entry) {
            Some(Value::Str(s)) if !s.is_empty() => s.as_str(),
            _ => DEFAULT_SOURCE,
        };
        let slot = self.batches.get_index_of(source);
        let index = match (slot, matches, self.settings.match_means) {
            // A first line closes the source's open batch and starts a new one.
            (Some(i), true, MatchMeans::First) => {
                let key = match self.batches.shift_remove_index(i) {
                    Some((key, batch)) => {
                        out.push(self.combine(batch));
                        key
                    }
                    None => source.to_owned(),
                };
                self.open(key, entry, matches, out)
            }
            (Some(i), _, _) => {
                self.append(i, entry, matches);
                i
            }
            (None, _, _) => {
                let key = source.to_owned();
                self.open(key, entry, matches, out)
            }
        };
        let s = &self.settings;
        let full = self.batches.get_index(index).is_some_and(|(_, b)| {
            (s.max_log_size > 0 && b.combined.len() as u64 > s.max_log_size)
                || (s.max_batch_size > 0 && b.entries >= s.max_batch_size)
                || (!b.matched
                    && s.max_unmatched_batch_size > 0
                    && b.entries >= s.max_unmatched_batch_size)
        });
        let last = matches && self.settings.match_means == MatchMeans::Last;
        if (full || last)
            && let Some((_, batch)) = self.batches.shift_remove_index(index)
        {
            out.push(self.combine(batch));
        }
    }

    /// The combine field's text (a string, or bytes read as text); `push` checked the type.
    fn text(field: &Field, entry: &Entry) -> String {
        match field.get(entry) {
            Some(Value::Str(s)) => s.clone().into(),
            Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    /// Opens a batch for `source` with `entry`; returns its index.
    fn open(&mut self, source: String, entry: Entry, matches: bool, out: &mut Vec<Entry>) -> usize {
        // Stanza compares with `>=` even when `max_sources` is 0, so 0 keeps one source.
        if self.batches.len() >= self.settings.max_sources {
            tracing::warn!(
                "recombine: more than max_sources ({}) sources; flushing all batches",
                self.settings.max_sources
            );
            self.flush_all(out);
        }
        let combined = Self::text(&self.settings.combine_field, &entry);
        let (index, _) = self.batches.insert_full(
            source,
            Batch {
                base: entry,
                entries: 1,
                combined,
                opened: Instant::now(),
                matched: matches,
            },
        );
        index
    }

    /// Adds `entry` to the open batch at `index`.
    fn append(&mut self, index: usize, entry: Entry, matches: bool) {
        let s = &self.settings;
        let Some((_, batch)) = self.batches.get_index_mut(index) else {
            return;
        };
        batch.entries += 1;
        batch.matched |= matches;
        // As Stanza's buffer: the separator goes between non-empty texts.
        let text = match s.combine_field.get(&entry) {
            Some(Value::Str(t)) => std::borrow::Cow::Borrowed(t.as_str()),
            Some(Value::Bytes(b)) => String::from_utf8_lossy(b),
            _ => std::borrow::Cow::Borrowed(""),
        };
        if !batch.combined.is_empty() {
            batch.combined.push_str(&s.combine_with);
        }
        batch.combined.push_str(&text);
        if s.overwrite_with == OverwriteWith::Newest {
            batch.base = entry;
        }
    }

    fn combine(&self, batch: Batch) -> Entry {
        let mut entry = batch.base;
        if let Err(e) = self
            .settings
            .combine_field
            .set(&mut entry, Value::Str(batch.combined.into()))
        {
            // Only a bare `attributes`/`resource` combine field can fail, and those never
            // hold text, so no batch is ever opened for them.
            tracing::error!("recombine: cannot set the combined field: {e}");
        }
        entry
    }

    fn flush_all(&mut self, out: &mut Vec<Entry>) {
        for (_, batch) in std::mem::take(&mut self.batches) {
            out.push(self.combine(batch));
        }
    }

    /// Flushes every batch (`Flush::All`) or those open longer than `force_flush_period`.
    pub(crate) fn flush(&mut self, mode: Flush, out: &mut Vec<Entry>) {
        match mode {
            Flush::All => self.flush_all(out),
            Flush::Expired => {
                if self.batches.is_empty() {
                    return;
                }
                let period = self.settings.force_flush_period;
                let now = Instant::now();
                let is_expired = |b: &Batch| now.duration_since(b.opened) >= period;
                if !self.batches.values().any(is_expired) {
                    return;
                }
                // Keep the open order of what stays and of what goes.
                let (expired, kept): (IndexMap<_, _>, IndexMap<_, _>) =
                    std::mem::take(&mut self.batches)
                        .into_iter()
                        .partition(|(_, b)| is_expired(b));
                self.batches = kept;
                for (_, batch) in expired {
                    out.push(self.combine(batch));
                }
            }
        }
    }
}

/// The `recombine` operator: the expression plus a [`Recombiner`].
struct Recombine {
    expr: Expr,
    guard: Guard,
    recombiner: Recombiner,
}

pub(crate) fn build(spec: Spec) -> Result<Built, String> {
    let cfg: RecombineConfig = from_block(spec.block)?;
    let (source, match_means) = match (cfg.is_first_entry, cfg.is_last_entry) {
        (Some(first), None) => (first, MatchMeans::First),
        (None, Some(last)) => (last, MatchMeans::Last),
        (Some(_), Some(_)) => {
            return Err("set only one of `is_first_entry` and `is_last_entry`".to_owned());
        }
        (None, None) => return Err("set one of `is_first_entry` and `is_last_entry`".to_owned()),
    };
    let key = match match_means {
        MatchMeans::First => "is_first_entry",
        MatchMeans::Last => "is_last_entry",
    };
    let expr = Expr::parse(&source).map_err(|e| format!("`{key}`: {e}"))?;
    let settings = Settings {
        combine_field: cfg.combine_field,
        combine_with: cfg.combine_with,
        match_means,
        max_batch_size: cfg.max_batch_size,
        max_unmatched_batch_size: cfg.max_unmatched_batch_size,
        max_sources: cfg.max_sources,
        max_log_size: cfg.max_log_size.map_or(0, |b| b.0),
        overwrite_with: cfg.overwrite_with,
        force_flush_period: cfg.force_flush_period.0,
        source_identifier: cfg.source_identifier,
    };
    Ok(Built::single(Box::new(Recombine {
        expr,
        guard: Guard::new(spec.id, None, spec.on_error),
        recombiner: Recombiner::new(settings),
    })))
}

impl Stage for Recombine {
    fn run(&mut self, batch: &mut Vec<Entry>, ports: &mut [Vec<Entry>]) {
        let [out] = ports else { return };
        for entry in batch.drain(..) {
            match self.expr.eval_bool(&entry) {
                Ok(matches) => self.recombiner.push(entry, matches, out),
                Err(e) => {
                    if self.guard.failed(&ProcessError::Expr(e)) {
                        out.push(entry);
                    }
                }
            }
        }
    }

    fn flush(&mut self, mode: Flush, ports: &mut [Vec<Entry>]) {
        if let [out] = ports {
            self.recombiner.flush(mode, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnError;
    use serde_json::{Value as Json, json};

    fn stage(cfg: Json) -> Result<Box<dyn Stage>, String> {
        let Json::Object(block) = cfg else {
            panic!("object")
        };
        build(Spec {
            id: "recombine".into(),
            block,
            condition: None,
            on_error: OnError::Send,
            has_output: false,
            seed: 0,
        })
        .map(|b| b.stage)
    }

    fn feed(stage: &mut Box<dyn Stage>, bodies: &[&str]) -> Vec<Value> {
        let mut batch: Vec<Entry> = bodies.iter().map(|b| Entry::new((*b).into())).collect();
        let mut ports = vec![Vec::new()];
        stage.run(&mut batch, &mut ports);
        ports.remove(0).into_iter().map(|e| e.body).collect()
    }

    fn flush(stage: &mut Box<dyn Stage>, mode: Flush) -> Vec<Value> {
        let mut ports = vec![Vec::new()];
        stage.flush(mode, &mut ports);
        ports.remove(0).into_iter().map(|e| e.body).collect()
    }

    #[test]
    fn first_entry_mode_holds_until_the_next_start() {
        let mut s =
            stage(json!({"combine_field": "body", "is_first_entry": "body startsWith 'S'"}))
                .unwrap();
        assert_eq!(
            feed(&mut s, &["S1", "a", "b", "S2"]),
            [Value::from("S1\na\nb")]
        );
        assert!(flush(&mut s, Flush::Expired).is_empty(), "not yet expired");
        assert_eq!(flush(&mut s, Flush::All), [Value::from("S2")]);
        assert!(flush(&mut s, Flush::All).is_empty());
    }

    #[test]
    fn last_entry_mode_and_limits() {
        let mut s = stage(
            json!({"combine_field": "body", "is_last_entry": "body == 'end'",
            "combine_with": "", "max_batch_size": 3}),
        )
        .unwrap();
        assert_eq!(
            feed(&mut s, &["a", "end", "b", "c", "d", "e"]),
            ["aend".into(), Value::from("bcd")]
        );
        assert_eq!(flush(&mut s, Flush::All), [Value::from("e")]);
    }

    #[test]
    fn expired_batches_flush_on_their_period() {
        let mut s = stage(json!({"combine_field": "body", "is_first_entry": "true",
            "force_flush_period": "1ms"}))
        .unwrap();
        assert!(feed(&mut s, &["a"]).is_empty());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(flush(&mut s, Flush::Expired), [Value::from("a")]);
    }

    #[test]
    fn non_text_entries_pass_alone_and_expression_errors_follow_on_error() {
        let mut s =
            stage(json!({"combine_field": "body.m", "is_first_entry": "body.m == 'x'"})).unwrap();
        let mut batch = vec![Entry::new(Value::Int(3)), Entry::new("str".into())];
        let mut ports = vec![Vec::new()];
        s.run(&mut batch, &mut ports);
        assert_eq!(ports[0].len(), 2, "no combine field: forwarded at once");
    }

    #[test]
    fn config_errors() {
        for cfg in [
            json!({"combine_field": "body"}),
            json!({"combine_field": "body", "is_first_entry": "true", "is_last_entry": "true"}),
            json!({"is_first_entry": "true"}),
            json!({"combine_field": "body", "is_first_entry": "(("}),
            json!({"combine_field": "body", "is_first_entry": "true", "overwrite_with": "middle"}),
            json!({"combine_field": "body", "is_first_entry": "true", "force_flush_period": "soon"}),
        ] {
            assert!(stage(cfg).is_err());
        }
    }
}
