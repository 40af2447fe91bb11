//! `regex_parser` (stanza.md §5.1): the named groups of the first match become a map of
//! strings (a group that took no part is `""`). The regex is compiled once and its capture
//! slots are reused; a pattern of literals and runs that can match only one way (most log
//! formats) is matched by [`LinearRegex`] in one pass, the regex crate deciding only what
//! that cannot. `cache.size` memoizes results per input string.

use super::{Parse, ParserOp, parser_config};
use crate::config::Block;
use crate::error::ProcessError;
use crate::linear_regex::{LinearRegex, Outcome};
use crate::operator::Operator;
use centimane_core::{Map, Value};
use regex::{CaptureLocations, Regex};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value as Json};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

parser_config!(RegexConfig {
    regex: String,
    cache: Option<Block<CacheConfig>>,
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheConfig {
    #[serde(default)]
    size: u16,
}

pub(crate) struct RegexParser {
    regex: Regex,
    locations: CaptureLocations,
    /// The one-pass matcher, if the pattern has its shape.
    linear: Option<LinearRegex>,
    /// The last match's group spans, two slots (start, end) per group index; a group that
    /// took no part is `0..0`.
    slots: Vec<usize>,
    /// Capture group index of each named group, in the order of `template`'s keys.
    groups: Vec<usize>,
    /// The result's keys (the group names), with empty values.
    template: Map,
    cache: Option<MemoCache>,
}

pub(crate) fn build(block: JsonMap<String, Json>) -> Result<Box<dyn Operator>, String> {
    let mut cfg: RegexConfig = crate::config::from_block(block)?;
    let pattern = crate::go_regex::translate(&cfg.regex);
    let regex = Regex::new(&pattern).map_err(|e| format!("`regex`: {e}"))?;
    let linear = LinearRegex::new(&pattern);
    let names: Vec<(usize, &str)> = regex
        .capture_names()
        .enumerate()
        .filter_map(|(i, name)| Some((i, name?)))
        .collect();
    if names.is_empty() {
        return Err("`regex`: no named capture groups in regex pattern".to_owned());
    }
    let cache = match cfg.cache.take() {
        Some(Block(CacheConfig { size })) if size > 0 => Some(MemoCache::new(usize::from(size))),
        _ => None,
    };
    // The regex crate refuses duplicate group names, so every name is one key.
    let template: Map = names
        .iter()
        .map(|(_, name)| ((*name).into(), Value::Null))
        .collect();
    let groups = names.iter().map(|(i, _)| *i).collect();
    let parser = RegexParser {
        locations: regex.capture_locations(),
        slots: vec![0; 2 * regex.captures_len()],
        linear,
        regex,
        groups,
        template,
        cache,
    };
    Ok(Box::new(ParserOp::new(cfg.base()?, parser)))
}

impl Parse for RegexParser {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let text = matched_text(value)?;
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(text)) {
            return Ok(Value::Map(Box::new(hit.clone())));
        }
        let map = self.result(text)?;
        if let Some(cache) = &mut self.cache {
            cache.insert(text, &map);
        }
        Ok(Value::Map(Box::new(map)))
    }

    fn parse_into(&mut self, value: &Value, into: &mut Map) -> Option<Result<(), ProcessError>> {
        let text = match matched_text(value) {
            Ok(text) => text,
            Err(e) => return Some(Err(e)),
        };
        if self.cache.is_some() {
            return Some(self.parse(value).map(|parsed| {
                if let Value::Map(map) = parsed {
                    into.merge(*map);
                }
            }));
        }
        if let Err(e) = self.find(text) {
            return Some(Err(e));
        }
        // The group names are distinct (the regex crate refuses duplicates).
        let values = self
            .groups
            .iter()
            .map(|index| group(&self.slots, *index, text));
        into.merge_unique(self.template.keys().cloned().zip(values));
        Some(Ok(()))
    }
}

/// The text a regex is matched against.
fn matched_text(value: &Value) -> Result<&str, ProcessError> {
    match value {
        Value::Str(text) => Ok(text),
        other => Err(ProcessError::WrongType {
            what: "regex",
            got: other.type_name(),
        }),
    }
}

/// The value of capture group `index` in the last match (`""` if it took no part).
fn group(slots: &[usize], index: usize, text: &str) -> Value {
    Value::Str(text[slots[2 * index]..slots[2 * index + 1]].into())
}

impl RegexParser {
    /// Matches `text`, leaving the groups in `slots`.
    fn find(&mut self, text: &str) -> Result<(), ProcessError> {
        if let Some(linear) = &self.linear {
            match linear.find(text.as_bytes(), &mut self.slots) {
                Outcome::Matched => return Ok(()),
                Outcome::NoMatch => return Err(ProcessError::NoMatch),
                Outcome::Undecided => {}
            }
        }
        if self
            .regex
            .captures_read(&mut self.locations, text)
            .is_none()
        {
            return Err(ProcessError::NoMatch);
        }
        for index in &self.groups {
            let (start, end) = self.locations.get(*index).unwrap_or((0, 0));
            self.slots[2 * index] = start;
            self.slots[2 * index + 1] = end;
        }
        Ok(())
    }

    /// The map of group names to what they matched in `text`.
    fn result(&mut self, text: &str) -> Result<Map, ProcessError> {
        self.find(text)?;
        let mut map = self.template.clone();
        for (value, index) in map.values_mut().zip(&self.groups) {
            *value = group(&self.slots, *index, text);
        }
        Ok(map)
    }
}

/// Input → result memo with FIFO eviction. At most a tenth of the capacity may be replaced
/// per window; past that, new results are not cached, so a stream of unique lines cannot
/// churn the cache.
struct MemoCache {
    capacity: usize,
    entries: HashMap<String, Map>,
    order: VecDeque<String>,
    window_start: Instant,
    evicted_in_window: usize,
}

impl MemoCache {
    const WINDOW: Duration = Duration::from_secs(5);

    fn new(capacity: usize) -> Self {
        MemoCache {
            capacity,
            entries: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            window_start: Instant::now(),
            evicted_in_window: 0,
        }
    }

    fn get(&self, key: &str) -> Option<&Map> {
        self.entries.get(key)
    }

    fn insert(&mut self, key: &str, value: &Map) {
        if self.entries.len() >= self.capacity {
            let now = Instant::now();
            if now.duration_since(self.window_start) >= Self::WINDOW {
                self.window_start = now;
                self.evicted_in_window = 0;
            }
            if self.evicted_in_window >= (self.capacity / 10).max(1) {
                return;
            }
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
            self.evicted_in_window += 1;
        }
        self.entries.insert(key.to_owned(), value.clone());
        self.order.push_back(key.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use centimane_core::Entry;
    use serde_json::json;

    fn op(cfg: Json) -> Result<Box<dyn Operator>, String> {
        let Json::Object(map) = cfg else {
            panic!("object")
        };
        build(map)
    }

    fn run(op: &mut Box<dyn Operator>, body: Value) -> (Result<(), ProcessError>, Entry) {
        let mut e = Entry {
            body,
            ..Entry::default()
        };
        (op.apply(&mut e), e)
    }

    #[test]
    fn named_groups_become_strings() {
        let mut p = op(json!({"regex": "^(?P<a>a)?(?P<b>b)(c)$"})).unwrap();
        let (r, e) = run(&mut p, "bc".into());
        r.unwrap();
        assert_eq!(e.attributes.len(), 2, "unnamed groups are ignored");
        assert_eq!(e.attributes["a"], Value::from(""));
        assert_eq!(e.attributes["b"], Value::from("b"));
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut p = op(json!({"regex": "^(?P<k>x)"})).unwrap();
        for body in [
            Value::from("y"),
            Value::Int(1),
            Value::Bytes(b"x".as_slice().into()),
            Value::Null,
        ] {
            let (r, e) = run(&mut p, body.clone());
            assert!(r.is_err(), "{body:?}");
            assert!(e.attributes.is_empty());
        }
    }

    #[test]
    fn build_errors() {
        for (cfg, needle) in [
            (json!({"regex": "(a)"}), "no named capture groups"),
            (json!({"regex": "(?P<a>"}), "`regex`"),
            (json!({}), "missing field `regex`"),
            (
                json!({"regex": "(?P<a>a)", "cache": {"sise": 1}}),
                "unknown field `sise`",
            ),
            (
                json!({"regex": "(?P<a>a)", "cache": {"size": -1}}),
                "`cache`: `size`",
            ),
        ] {
            let err = op(cfg).err().unwrap();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn cache_is_transparent_and_bounded() {
        let mut p = op(json!({"regex": "(?P<v>.*)", "cache": {"size": 20}})).unwrap();
        for round in 0..3 {
            for i in 0..50 {
                let (r, e) = run(&mut p, format!("line {i}").into());
                r.unwrap();
                assert_eq!(
                    e.attributes["v"],
                    Value::from(format!("line {i}")),
                    "round {round}"
                );
            }
        }
        let mut cache = MemoCache::new(20);
        for i in 0..100 {
            cache.insert(&i.to_string(), &Map::default());
        }
        assert_eq!(cache.entries.len(), 20);
        assert_eq!(cache.order.len(), 20);
        assert_eq!(
            cache.evicted_in_window, 2,
            "a tenth of the capacity per window"
        );
    }
}
