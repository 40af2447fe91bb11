//! `exclude_older_than` and `ordering_criteria`: which of the matched files are read.

use super::config::{OrderingCriteria, SortRule, SortType};
use regex::Regex;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Filters and orders the files found by a poll.
pub(crate) struct Selector {
    exclude_older_than: Duration,
    ordering: Option<Ranking>,
}

struct Ranking {
    regex: Option<Regex>,
    group_by: Option<Regex>,
    top_n: usize,
    rules: Vec<SortRule>,
}

/// A file and its sort keys, one per rule.
type Ranked = (PathBuf, Vec<Option<Key>>);

/// What a sort rule compares for one file.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Number(f64),
    Text(String),
    Time(i128),
}

impl Selector {
    pub fn new(
        exclude_older_than: Duration,
        ordering: Option<&OrderingCriteria>,
    ) -> Result<Self, String> {
        let ordering = match ordering {
            None => None,
            Some(o) => Some(Ranking {
                regex: o
                    .regex
                    .as_deref()
                    .map(Regex::new)
                    .transpose()
                    .map_err(|e| e.to_string())?,
                group_by: o
                    .group_by
                    .as_deref()
                    .map(Regex::new)
                    .transpose()
                    .map_err(|e| e.to_string())?,
                top_n: o.top_n,
                rules: o.sort_by.clone(),
            }),
        };
        Ok(Selector {
            exclude_older_than,
            ordering,
        })
    }

    /// The files to read, in reading order.
    pub fn select(&self, paths: Vec<PathBuf>) -> Vec<PathBuf> {
        let paths: Vec<PathBuf> = if self.exclude_older_than.is_zero() {
            paths
        } else {
            let cutoff = SystemTime::now().checked_sub(self.exclude_older_than);
            paths
                .into_iter()
                .filter(|p| {
                    let mtime = p.metadata().and_then(|m| m.modified()).ok();
                    match (mtime, cutoff) {
                        (Some(m), Some(c)) => m >= c,
                        _ => true,
                    }
                })
                .collect()
        };
        let Some(o) = &self.ordering else {
            return paths;
        };
        let mut groups: BTreeMap<String, Vec<Ranked>> = BTreeMap::new();
        for path in paths {
            let text = path.to_string_lossy().into_owned();
            let captures = match &o.regex {
                Some(re) => match re.captures(&text) {
                    Some(c) => Some(c),
                    None => continue, // not matching the ordering regex: not read
                },
                None => None,
            };
            let keys = o
                .rules
                .iter()
                .map(|rule| sort_key(rule, &path, captures.as_ref()))
                .collect();
            let group = o
                .group_by
                .as_ref()
                .and_then(|g| g.captures(&text))
                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            groups.entry(group).or_default().push((path, keys));
        }
        let mut out = Vec::new();
        for (_, mut files) in groups {
            files.sort_by(|(pa, ka), (pb, kb)| {
                for (i, rule) in o.rules.iter().enumerate() {
                    let ord = compare(&ka[i], &kb[i], rule.ascending);
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                pa.cmp(pb)
            });
            out.extend(files.into_iter().take(o.top_n).map(|(p, _)| p));
        }
        out
    }
}

/// Orders two keys in the rule's direction; files whose key can't be computed sort last
/// in either direction, so `top_n` never picks them over files it can rank.
fn compare(a: &Option<Key>, b: &Option<Key>, ascending: bool) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => {
            let ord = a.partial_cmp(b).unwrap_or(Ordering::Equal);
            if ascending { ord } else { ord.reverse() }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn sort_key(
    rule: &SortRule,
    path: &std::path::Path,
    captures: Option<&regex::Captures>,
) -> Option<Key> {
    let captured = || {
        captures?
            .name(rule.regex_key.as_deref()?)
            .map(|m| m.as_str())
    };
    match rule.sort_type {
        SortType::Mtime => {
            let mtime = path.metadata().ok()?.modified().ok()?;
            let nanos = mtime
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some(Key::Time(nanos as i128))
        }
        SortType::Numeric => captured()?.parse::<f64>().ok().map(Key::Number),
        SortType::Alphabetical => captured().map(|s| Key::Text(s.to_owned())),
        SortType::Timestamp => {
            let text = captured()?;
            let layout = rule.layout.as_deref()?;
            let civil = jiff::fmt::strtime::parse(layout, text)
                .ok()?
                .to_datetime()
                .ok()?;
            let zone = match rule.location.as_deref() {
                Some(name) if name != "Local" => jiff::tz::TimeZone::get(name).ok()?,
                Some(_) => jiff::tz::TimeZone::system(),
                None => jiff::tz::TimeZone::UTC,
            };
            let ts = civil.to_zoned_datetime(zone).ok()?.timestamp();
            Some(Key::Time(ts.as_nanosecond()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(sort_type: SortType, key: &str, ascending: bool) -> SortRule {
        SortRule {
            sort_type,
            regex_key: Some(key.into()),
            ascending,
            layout: None,
            location: None,
        }
    }

    fn names(v: Vec<PathBuf>) -> Vec<String> {
        v.into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn numeric_descending_top_n() {
        let o = OrderingCriteria {
            regex: Some(r"app-(?P<n>\d+)\.log".into()),
            top_n: 2,
            sort_by: vec![rule(SortType::Numeric, "n", false)],
            group_by: None,
        };
        let s = Selector::new(Duration::ZERO, Some(&o)).unwrap();
        let files = [
            "/l/app-2.log",
            "/l/app-10.log",
            "/l/app-1.log",
            "/l/other.log",
        ]
        .map(PathBuf::from)
        .to_vec();
        assert_eq!(names(s.select(files)), ["/l/app-10.log", "/l/app-2.log"]);
    }

    #[test]
    fn timestamp_ascending_and_groups() {
        let o = OrderingCriteria {
            regex: Some(r"(?P<svc>[a-z]+)-(?P<ts>\d{10})\.log".into()),
            top_n: 1,
            sort_by: vec![SortRule {
                layout: Some("%Y%m%d%H".into()),
                ..rule(SortType::Timestamp, "ts", true)
            }],
            group_by: Some(r"/([a-z]+)-".into()),
        };
        let s = Selector::new(Duration::ZERO, Some(&o)).unwrap();
        let files = [
            "/l/a-2026010102.log",
            "/l/a-2026010101.log",
            "/l/b-2026010105.log",
        ]
        .map(PathBuf::from)
        .to_vec();
        assert_eq!(
            names(s.select(files)),
            ["/l/a-2026010101.log", "/l/b-2026010105.log"]
        );
    }
}
