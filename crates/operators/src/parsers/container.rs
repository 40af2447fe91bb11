//! `container` (stanza.md §5.12): Kubernetes container logs in docker (JSON), CRI-O or
//! containerd format. The line's `log` becomes the body, `stream` the `log.iostream`
//! attribute and `time` the timestamp; with `add_metadata_from_filepath` (default on) the
//! pod's namespace, name, uid, container name and restart count are read from the file path
//! into the resource. CRI lines split by the runtime (logtag `P`) are joined again: they go
//! through a [`Recombiner`] until the line tagged `F`, keyed by file path.
//!
//! Order of work, as in Stanza: `if`; format detection (a failure drops the entry whatever
//! `on_error` says); the parser base with the format's parse step (errors follow
//! `on_error`); then the time and field mappings.

use super::{Parse, ParserBase, parser_config};
use crate::error::ProcessError;
use crate::operator::{Flush, Gate, Guard, Stage};
use crate::registry::{Built, Spec};
use crate::time::LayoutIn;
use crate::transformers::recombine::{
    MatchMeans, OverwriteWith, Recombiner, Settings, log_file_path,
};
use centimane_core::config::ByteSize;
use centimane_core::value::NumberMode;
use centimane_core::{Entry, Field, FieldRoot, Map, Value};
use jiff::tz::TimeZone;
use regex::Regex;
use std::time::Duration;

parser_config!(ContainerConfig {
    format: Option<String>,
    #[serde(default = "yes")]
    add_metadata_from_filepath: bool,
    max_log_size: Option<ByteSize>,
});

fn yes() -> bool {
    true
}

const CRIO_PATTERN: &str =
    r"^(?P<time>[^ Z]+) (?P<stream>stdout|stderr) (?P<logtag>[^ ]*) ?(?P<log>.*)$";
const CONTAINERD_PATTERN: &str =
    r"^(?P<time>[^ ^Z]+Z) (?P<stream>stdout|stderr) (?P<logtag>[^ ]*) ?(?P<log>.*)$";
/// Forward or back slashes; a rotated file (`1.log.20250219-233547`) is accepted too.
const LOG_PATH_PATTERN: &str = r"^.*(\/|\\)(?P<namespace>[^_]+)_(?P<pod_name>[^_]+)_(?P<uid>[a-f0-9\-]+)(\/|\\)(?P<container_name>[^\._]+)(\/|\\)(?P<restart_count>\d+)\.log(\.\d{8}-\d{6})?$";
/// Path regex group → resource key.
const K8S_METADATA: [(&str, &str); 5] = [
    ("namespace", "k8s.namespace.name"),
    ("pod_name", "k8s.pod.name"),
    ("uid", "k8s.pod.uid"),
    ("container_name", "k8s.container.name"),
    ("restart_count", "k8s.container.restart_count"),
];
const DOCKER_TIME_LAYOUT: &str = "2006-01-02T15:04:05.999Z";
const CRIO_TIME_LAYOUT: &str = "2006-01-02T15:04:05.999999999Z07:00";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Docker,
    Crio,
    Containerd,
}

/// A compiled CRI line regex and its named groups.
struct LineRegex {
    regex: Regex,
    names: Vec<(usize, String)>,
}

impl LineRegex {
    fn new(pattern: &str) -> Result<LineRegex, String> {
        let regex = crate::go_regex::compile(pattern).map_err(|e| e.to_string())?;
        let names = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((i, n?.to_owned())))
            .collect();
        Ok(LineRegex { regex, names })
    }

    /// The named groups of the first match (a group that took no part is `""`).
    fn groups(&self, text: &str) -> Option<Map> {
        let caps = self.regex.captures(text)?;
        Some(
            self.names
                .iter()
                .map(|(i, name)| {
                    let value = caps.get(*i).map_or("", |m| m.as_str());
                    (name.as_str().into(), Value::Str(value.into()))
                })
                .collect(),
        )
    }
}

struct Container {
    guard: Guard,
    base: ParserBase,
    format: Option<Format>,
    add_metadata: bool,
    crio: LineRegex,
    containerd: LineRegex,
    log_path: LineRegex,
    docker_time: LayoutIn,
    crio_time: LayoutIn,
    recombiner: Recombiner,
}

pub(crate) fn build(mut spec: Spec) -> Result<Built, String> {
    let guard = spec.guard();
    let mut cfg: ContainerConfig = crate::config::from_block(std::mem::take(&mut spec.block))?;
    let format = match cfg.format.as_deref() {
        None | Some("") => None,
        Some("docker") => Some(Format::Docker),
        Some("crio") => Some(Format::Crio),
        Some("containerd") => Some(Format::Containerd),
        Some(other) => {
            return Err(format!(
                "`format`: unknown format `{other}` (use docker, crio or containerd)"
            ));
        }
    };
    let settings = Settings {
        combine_field: Field::body(),
        combine_with: String::new(),
        match_means: MatchMeans::Last,
        max_batch_size: 1000,
        max_unmatched_batch_size: 100,
        max_sources: 1000,
        max_log_size: cfg.max_log_size.map_or(0, |b| b.0),
        overwrite_with: OverwriteWith::Oldest,
        force_flush_period: Duration::from_secs(5),
        source_identifier: log_file_path(),
    };
    Ok(Built::single(Box::new(Container {
        guard,
        base: cfg.base()?,
        format,
        add_metadata: cfg.add_metadata_from_filepath,
        crio: LineRegex::new(CRIO_PATTERN)?,
        containerd: LineRegex::new(CONTAINERD_PATTERN)?,
        log_path: LineRegex::new(LOG_PATH_PATTERN)?,
        docker_time: LayoutIn::gotime(DOCKER_TIME_LAYOUT, TimeZone::UTC)?,
        crio_time: LayoutIn::gotime(CRIO_TIME_LAYOUT, crate::time::local_zone())?,
        recombiner: Recombiner::new(settings),
    })))
}

/// Docker's JSON line; numbers are doubles, as Go decodes them into `any`.
struct DockerParse;

impl Parse for DockerParse {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let Value::Str(text) = value else {
            return Err(ProcessError::WrongType {
                what: "docker container logs",
                got: value.type_name(),
            });
        };
        match Value::from_json_str(text, NumberMode::AllDouble)? {
            map @ Value::Map(_) => Ok(map),
            other => Err(ProcessError::JsonNotObject(other.type_name())),
        }
    }
}

/// A CRI line read with its regex.
struct CriParse<'r>(&'r LineRegex);

impl Parse for CriParse<'_> {
    fn parse(&mut self, value: &Value) -> Result<Value, ProcessError> {
        let Value::Str(text) = value else {
            return Err(ProcessError::WrongType {
                what: "CRI container logs",
                got: value.type_name(),
            });
        };
        self.0
            .groups(text)
            .map(Value::from)
            .ok_or(ProcessError::NoMatch)
    }
}

fn attribute(key: &str) -> Field {
    Field::new(FieldRoot::Attributes, vec![key.to_owned()])
}

impl Container {
    fn detect(&self, entry: &Entry) -> Result<Format, ProcessError> {
        let text = match self.base.read(entry)? {
            Value::Str(text) => text,
            other => {
                return Err(ProcessError::WrongType {
                    what: "container logs",
                    got: other.type_name(),
                });
            }
        };
        if text.starts_with('{') {
            Ok(Format::Docker)
        } else if self.crio.regex.is_match(text) {
            Ok(Format::Crio)
        } else if self.containerd.regex.is_match(text) {
            Ok(Format::Containerd)
        } else {
            Err(ProcessError::Invalid(
                "entry cannot be parsed as container logs".to_owned(),
            ))
        }
    }

    /// The time, body, stream and path mappings after a successful parse.
    fn map_fields(&mut self, entry: &mut Entry, format: Format) -> Result<(), ProcessError> {
        let time = match entry.attributes.get("time") {
            Some(Value::Str(t)) => t.clone(),
            Some(other) => {
                return Err(ProcessError::WrongType {
                    what: "a container log time",
                    got: other.type_name(),
                });
            }
            None => return Err(ProcessError::MissingField(attribute("time"))),
        };
        let layout = match format {
            Format::Crio => &mut self.crio_time,
            Format::Docker | Format::Containerd => &mut self.docker_time,
        };
        entry.timestamp = Some(layout.parse(&time, centimane_core::Timestamp::now)?);
        entry.attributes.shift_remove("time");
        let log = entry
            .attributes
            .shift_remove("log")
            .ok_or_else(|| ProcessError::MissingField(attribute("log")))?;
        Field::body().set(entry, log)?;
        let stream = entry
            .attributes
            .shift_remove("stream")
            .ok_or_else(|| ProcessError::MissingField(attribute("stream")))?;
        entry.attributes.insert("log.iostream".into(), stream);
        if self.add_metadata {
            self.add_k8s_metadata(entry)?;
        }
        Ok(())
    }

    fn add_k8s_metadata(&self, entry: &mut Entry) -> Result<(), ProcessError> {
        let path = match entry.attributes.get("log.file.path") {
            Some(Value::Str(p)) => p,
            other => {
                return Err(ProcessError::Invalid(format!(
                    "type '{}' cannot be parsed as log path field",
                    other.map_or("<nil>", Value::type_name)
                )));
            }
        };
        let mut groups = self
            .log_path
            .groups(path)
            .ok_or_else(|| ProcessError::Invalid("failed to detect a valid log path".to_owned()))?;
        for (group, key) in K8S_METADATA {
            let value = groups.shift_remove(group).unwrap_or_default();
            entry.resource.insert(key.into(), value);
        }
        Ok(())
    }

    /// Processes one entry, writing to `out` whatever goes on now; CRI entries go through
    /// the recombiner.
    fn process(&mut self, mut entry: Entry, out: &mut Vec<Entry>) {
        match self.guard.check(&entry) {
            Gate::Run => {}
            Gate::Skip => return out.push(entry),
            Gate::Drop => return,
        }
        let format = match self.format.map_or_else(|| self.detect(&entry), Ok) {
            Ok(format) => format,
            Err(e) => {
                // Stanza returns a detection failure without its `on_error` handling.
                self.guard.failed(&ProcessError::Discard(format!(
                    "failed to detect a valid container log format: {e}"
                )));
                return;
            }
        };
        let parsed = match format {
            Format::Docker => self.base.apply_with(&mut DockerParse, &mut entry),
            Format::Crio => self.base.apply_with(&mut CriParse(&self.crio), &mut entry),
            Format::Containerd => self
                .base
                .apply_with(&mut CriParse(&self.containerd), &mut entry),
        };
        if let Err(e) = parsed.and_then(|()| self.map_fields(&mut entry, format)) {
            if self.guard.failed(&e) {
                out.push(entry);
            }
            return;
        }
        if format == Format::Docker {
            out.push(entry);
        } else {
            let last = entry.attributes.get("logtag") == Some(&Value::Str("F".into()));
            self.recombiner.push(entry, last, out);
        }
    }
}

impl Stage for Container {
    fn run(&mut self, batch: &mut Vec<Entry>, ports: &mut [Vec<Entry>]) {
        let [out] = ports else { return };
        for entry in batch.drain(..) {
            self.process(entry, out);
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

    const PATH: &str = "/var/log/pods/ns_pod-name_49cc7c1f-d370/ctr/1.log";

    fn stage(cfg: Json) -> Box<dyn Stage> {
        let Json::Object(block) = cfg else {
            panic!("object")
        };
        build(Spec {
            id: "container".into(),
            block,
            condition: None,
            on_error: OnError::Send,
            has_output: false,
            seed: 0,
        })
        .unwrap()
        .stage
    }

    fn entry(body: &str) -> Entry {
        let mut e = Entry::new(body.into());
        e.attributes.insert("log.file.path".into(), PATH.into());
        e
    }

    fn run(s: &mut Box<dyn Stage>, bodies: &[&str]) -> Vec<Entry> {
        let mut batch = bodies.iter().map(|b| entry(b)).collect();
        let mut ports = vec![Vec::new()];
        s.run(&mut batch, &mut ports);
        ports.remove(0)
    }

    #[test]
    fn docker_lines() {
        let mut s = stage(json!({}));
        let out = run(
            &mut s,
            &[r#"{"log":"hi\n","stream":"stderr","time":"2029-03-30T08:31:20.545192187Z","n":1}"#],
        );
        let e = &out[0];
        assert_eq!(e.body, Value::from("hi\n"));
        assert_eq!(e.attributes["log.iostream"], Value::from("stderr"));
        assert_eq!(e.attributes["n"], Value::Double(1.0));
        assert!(!e.attributes.contains_key("time"));
        assert_eq!(
            e.timestamp.unwrap().to_string(),
            "2029-03-30T08:31:20.545192187Z"
        );
        assert_eq!(e.resource["k8s.pod.name"], Value::from("pod-name"));
        assert_eq!(e.resource["k8s.container.restart_count"], Value::from("1"));
    }

    #[test]
    fn cri_partials_are_joined() {
        let mut s = stage(json!({}));
        let out = run(
            &mut s,
            &[
                "2024-04-13T07:59:37.505201169-10:00 stdout P part one, ",
                "2024-04-13T07:59:38.505201169-10:00 stdout F part two",
                "2024-04-13T07:59:39Z stderr P held",
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].body, Value::from("part one, part two"));
        assert_eq!(out[0].attributes["logtag"], Value::from("P"));
        assert_eq!(
            out[0].timestamp.unwrap().to_string(),
            "2024-04-13T17:59:37.505201169Z"
        );
        let mut ports = vec![Vec::new()];
        s.flush(Flush::All, &mut ports);
        assert_eq!(ports[0][0].body, Value::from("held"));
    }

    #[test]
    fn failures() {
        let mut s = stage(json!({}));
        assert!(
            run(&mut s, &["not a container line"]).is_empty(),
            "detection failure drops"
        );
        let mut s = stage(json!({"format": "docker"}));
        let mut batch = vec![Entry::new(
            r#"{"log":"x","stream":"stdout","time":"2029-03-30T08:31:20Z"}"#.into(),
        )];
        let mut ports = vec![Vec::new()];
        s.run(&mut batch, &mut ports);
        assert_eq!(ports[0].len(), 1, "missing path: error, sent per on_error");
        let mut s = stage(json!({"add_metadata_from_filepath": false}));
        assert_eq!(
            run(&mut s, &[r#"{"log":"x"}"#]).len(),
            1,
            "missing time: sent per on_error"
        );
    }
}
