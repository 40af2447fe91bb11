//! The component docs in `docs/components` against the real binary:
//!
//! - every type `centimane components` prints has a page `<kind>/<type>.md`, every page is
//!   a type of this build, and the index (`README.md`) links every page;
//! - every ```` ```yaml ```` block is a complete config that `centimane validate` accepts and
//!   that uses the page's component;
//! - every key of a page's key table (a Markdown table whose first column is `Key`) appears
//!   in one of the page's examples, at that path inside the component's block (for an
//!   operator: inside an operator of that type), unless its row says "not shown";
//! - every key the component's parser knows (as `validate` lists them when given an unknown
//!   key) is in the page's key table, at the top of the block and in every nested block
//!   whose keys the table documents.
//!
//! Key paths are dotted; `[]` marks a list (`sort_by[].sort_type`) and `*` stands for any
//! one key (`logs.*.match_type`).

mod common;

use common::BIN;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The sections of `centimane components`, which are also the docs' directories.
const KINDS: [&str; 5] = [
    "receivers",
    "processors",
    "exporters",
    "extensions",
    "operators",
];

/// A key no component has, for asking `validate` which keys a block takes.
const PROBE: &str = "zzz_undocumented";

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/components")
}

/// One documentation page.
struct Page {
    /// Relative to `docs/components`, e.g. `receivers/filelog.md`.
    name: String,
    kind: &'static str,
    /// The component type; `None` for `operators/README.md` (the keys all operators share).
    component: Option<String>,
    text: String,
}

impl Page {
    /// The fenced YAML blocks with the line each starts on.
    fn examples(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut current: Option<(usize, String)> = None;
        for (i, line) in self.text.lines().enumerate() {
            match &mut current {
                None if line.trim_end() == "```yaml" => current = Some((i + 2, String::new())),
                None => {}
                Some(_) if line.trim_end() == "```" => out.extend(current.take()),
                Some((_, block)) => {
                    block.push_str(line);
                    block.push('\n');
                }
            }
        }
        assert!(current.is_none(), "{}: unclosed ```yaml block", self.name);
        out
    }

    /// The keys of the page's key tables, as path segments, with whether the row says
    /// "not shown".
    fn keys(&self) -> Vec<(String, Vec<String>, bool)> {
        let mut out = Vec::new();
        let mut in_key_table = false;
        for line in self.text.lines() {
            let line = line.trim();
            if !line.starts_with('|') {
                in_key_table = false;
                continue;
            }
            let first_cell = line[1..].split('|').next().unwrap_or_default().trim();
            if first_cell == "Key" {
                in_key_table = true;
                continue;
            }
            if !in_key_table || first_cell.starts_with("---") {
                continue;
            }
            let key = first_cell
                .split('`')
                .nth(1)
                .unwrap_or_else(|| panic!("{}: a key without backticks: {line}", self.name));
            let not_shown = line.to_ascii_lowercase().contains("not shown");
            out.push((key.to_owned(), segments(key), not_shown));
        }
        out
    }

    /// Where the page's keys start in one example: the blocks of the page's component, or
    /// the operators of the page's type (any operator for the shared-keys page).
    fn roots<'a>(&self, config: &'a Value) -> Vec<&'a Value> {
        self.root_positions(config)
            .iter()
            .map(|at| node(config, at))
            .collect()
    }

    /// The positions (see [`node`]) of [`Page::roots`].
    fn root_positions(&self, config: &Value) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        if self.kind == "operators" {
            operator_positions(config, self.component.as_deref(), &mut Vec::new(), &mut out);
            return out;
        }
        let component = self.component.as_deref().unwrap_or_default();
        let Value::Object(top) = config else {
            return out;
        };
        for (i, (section, blocks)) in top.iter().enumerate() {
            let Value::Object(blocks) = blocks else {
                continue;
            };
            if section != self.kind {
                continue;
            }
            for (j, id) in blocks.keys().enumerate() {
                if id.split('/').next() == Some(component) {
                    out.push(vec![i, j]);
                }
            }
        }
        out
    }
}

/// The operators of type `kind` (any type for `None`) in every `operators` or
/// `metadata_operators` list under `value`, by position.
fn operator_positions(
    value: &Value,
    kind: Option<&str>,
    at: &mut Vec<usize>,
    out: &mut Vec<Vec<usize>>,
) {
    match value {
        Value::Object(map) => {
            for (i, (key, child)) in map.iter().enumerate() {
                at.push(i);
                if let ("operators" | "metadata_operators", Value::Array(list)) =
                    (key.as_str(), child)
                {
                    for (j, op) in list.iter().enumerate() {
                        let t = op.get("type").and_then(Value::as_str);
                        if t.is_some() && (kind.is_none() || t == kind) {
                            at.push(j);
                            out.push(at.clone());
                            at.pop();
                        }
                    }
                }
                operator_positions(child, kind, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i);
                operator_positions(item, kind, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The node reached from `value` by `at`: at each step the position of a map's entry (in
/// the map's order) or of a list's item.
fn node<'a>(value: &'a Value, at: &[usize]) -> &'a Value {
    at.iter().fold(value, |v, &i| match v {
        Value::Object(map) => map.values().nth(i).expect("a position from this value"),
        Value::Array(items) => &items[i],
        _ => unreachable!("a position from this value"),
    })
}

fn node_mut<'a>(value: &'a mut Value, at: &[usize]) -> &'a mut Value {
    at.iter().fold(value, |v, &i| match v {
        Value::Object(map) => map.values_mut().nth(i).expect("a position from this value"),
        Value::Array(items) => &mut items[i],
        _ => unreachable!("a position from this value"),
    })
}

/// `a.b[].c` as `["a", "b", "c"]`.
fn segments(key: &str) -> Vec<String> {
    key.split('.').map(|s| s.replace("[]", "")).collect()
}

/// Whether `path` can be followed from `value`; lists are looked into, `*` is any key.
fn has_path(value: &Value, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    match value {
        Value::Object(map) if first == "*" => map.values().any(|v| has_path(v, rest)),
        Value::Object(map) => map.get(first).is_some_and(|v| has_path(v, rest)),
        Value::Array(items) => items.iter().any(|v| has_path(v, path)),
        _ => false,
    }
}

/// Every page under `docs/components` (the index excepted).
fn pages() -> Vec<Page> {
    let root = docs_dir();
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(&root).expect("docs/components exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() {
            assert_eq!(
                name, "README.md",
                "docs/components/{name}: pages go in a directory per kind ({KINDS:?})"
            );
            continue;
        }
        let kind = *KINDS
            .iter()
            .find(|k| **k == name)
            .unwrap_or_else(|| panic!("docs/components/{name}/: not one of {KINDS:?}"));
        for file in std::fs::read_dir(&path).unwrap() {
            let file = file.unwrap().path();
            let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
            let component = file_name
                .strip_suffix(".md")
                .unwrap_or_else(|| panic!("docs/components/{kind}/{file_name}: not a .md page"));
            let component = match (kind, component) {
                ("operators", "README") => None,
                (_, c) => Some(c.to_owned()),
            };
            pages.push(Page {
                name: format!("{kind}/{file_name}"),
                kind,
                component,
                text: std::fs::read_to_string(&file).unwrap(),
            });
        }
    }
    pages.sort_by(|a, b| a.name.cmp(&b.name));
    pages
}

/// The types `centimane components` lists, by kind, with their stability when it is
/// printed. Reads `kind:` lines followed by indented `type  stability` lines, and also
/// `kind: a, b` lines.
fn components() -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let out = Command::new(BIN).arg("components").output().unwrap();
    assert!(out.status.success(), "centimane components failed");
    let text = String::from_utf8(out.stdout).unwrap();
    // `filelog  beta` → ("filelog", Some("beta")); `filelog` → ("filelog", None).
    let entry = |item: &str| -> Option<(String, Option<String>)> {
        let mut words = item.split_whitespace();
        let name: String = words
            .next()?
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let stability = words
            .next()
            .map(|w| {
                w.chars()
                    .filter(char::is_ascii_alphabetic)
                    .collect::<String>()
            })
            .filter(|w| !w.is_empty());
        (!name.is_empty()).then_some((name, stability))
    };
    let mut by_kind: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    let mut kind = None;
    for line in text.lines() {
        if let Some((head, rest)) = line.split_once(':')
            && KINDS.contains(&head.trim())
        {
            kind = Some(head.trim().to_owned());
            let types = by_kind.entry(head.trim().to_owned()).or_default();
            types.extend(rest.split(',').filter_map(entry));
        } else if let Some(k) = &kind
            && line.starts_with(char::is_whitespace)
            && let Some((t, stability)) = entry(line)
        {
            by_kind.get_mut(k).unwrap().insert(t, stability);
        }
    }
    for k in KINDS {
        assert!(
            by_kind.get(k).is_some_and(|t| !t.is_empty()),
            "no {k} read from `centimane components`:\n{text}"
        );
    }
    by_kind
}

/// Runs `centimane validate` on `config`; `Err(stderr)` when it is refused.
fn validate(dir: &Path, name: &str, config: &str) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn parse_yaml(page: &Page, line: usize, text: &str) -> Value {
    serde_saphyr::from_str(text)
        .unwrap_or_else(|e| panic!("{} line {line}: not YAML: {e}", page.name))
}

#[test]
fn every_component_type_has_a_page_and_every_page_a_type() {
    let built = components();
    let pages = pages();
    let documented: BTreeSet<(String, String)> = pages
        .iter()
        .filter_map(|p| Some((p.kind.to_owned(), p.component.clone()?)))
        .collect();
    let built_types: BTreeSet<(String, String)> = built
        .iter()
        .flat_map(|(k, types)| types.keys().map(move |t| (k.clone(), t.clone())))
        .collect();
    let missing: Vec<String> = built_types
        .difference(&documented)
        .map(|(k, t)| format!("docs/components/{k}/{t}.md"))
        .collect();
    assert!(missing.is_empty(), "components without a page: {missing:?}");
    let stale: Vec<String> = documented
        .difference(&built_types)
        .map(|(k, t)| format!("docs/components/{k}/{t}.md"))
        .collect();
    assert!(
        stale.is_empty(),
        "pages of types this build does not have: {stale:?}"
    );
    for page in &pages {
        let Some(component) = &page.component else {
            continue;
        };
        if let Some(Some(stability)) = built[page.kind].get(component) {
            let line = format!("Stability: {stability}");
            assert!(
                page.text.lines().any(|l| l.trim() == line),
                "{}: should say `{line}` on a line of its own, as `centimane components` does",
                page.name
            );
        }
    }
}

#[test]
fn the_index_links_every_page_and_every_link_resolves() {
    let root = docs_dir();
    let index = std::fs::read_to_string(root.join("README.md")).unwrap();
    let links: BTreeSet<String> = index
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split('#').next().unwrap_or_default().to_owned())
        .filter(|target| !target.contains("://"))
        .collect();
    for page in pages() {
        assert!(
            links.contains(&page.name),
            "docs/components/README.md does not link {}",
            page.name
        );
    }
    for link in &links {
        assert!(
            root.join(link).is_file(),
            "docs/components/README.md links {link}, which does not exist"
        );
    }
}

#[test]
fn every_example_is_a_valid_config_using_its_component() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for page in pages() {
        let examples = page.examples();
        if examples.is_empty() {
            failures.push(format!("{}: no ```yaml example", page.name));
        }
        for (n, (line, text)) in examples.iter().enumerate() {
            let place = format!("{} (example at line {line})", page.name);
            let config = parse_yaml(&page, *line, text);
            if config.get("service").is_none() {
                failures.push(format!(
                    "{place}: not a complete config (no `service`); write every example as one"
                ));
                continue;
            }
            if page.roots(&config).is_empty() {
                failures.push(format!(
                    "{place}: does not use a `{}` {}",
                    page.component.as_deref().unwrap_or("any"),
                    page.kind
                ));
            }
            let file = format!("{}-{n}.yaml", page.name.replace('/', "-"));
            if let Err(stderr) = validate(dir.path(), &file, text) {
                failures.push(format!("{place}: refused by validate:\n{stderr}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_documented_key_is_in_an_example() {
    let mut failures = Vec::new();
    for page in pages() {
        let configs: Vec<Value> = page
            .examples()
            .iter()
            .map(|(line, text)| parse_yaml(&page, *line, text))
            .collect();
        for (key, path, not_shown) in page.keys() {
            let shown = configs
                .iter()
                .flat_map(|c| page.roots(c))
                .any(|root| has_path(root, &path));
            if !shown && !not_shown {
                failures.push(format!(
                    "{}: key `{key}` is in no example (show it, or say \"not shown\" in its row)",
                    page.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The keys `validate` says a block takes when it finds `PROBE` in it, or `None` if it
/// did not complain about `PROBE` as an unknown key.
fn known_keys(stderr: &str) -> Option<BTreeSet<String>> {
    let line = stderr.lines().find(|l| l.contains(PROBE))?;
    let (_, after) = ["unknown field `", "unknown key `"]
        .iter()
        .find_map(|marker| line.split_once(marker))?;
    let (unknown, rest) = after.split_once('`')?;
    if !unknown.ends_with(PROBE) {
        return None;
    }
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(|k| k.rsplit('.').next().unwrap_or(k).to_owned())
            .collect(),
    )
}

/// The maps under `value` (itself included), with their key paths (list items add
/// nothing to a path) and positions. Operator lists are left out: operators have pages of
/// their own.
fn objects(
    value: &Value,
    path: &mut Vec<String>,
    at: &mut Vec<usize>,
    out: &mut Vec<(Vec<String>, Vec<usize>)>,
) {
    match value {
        Value::Object(map) => {
            out.push((path.clone(), at.clone()));
            for (i, (key, child)) in map.iter().enumerate() {
                if key == "operators" || key == "metadata_operators" {
                    continue;
                }
                path.push(key.clone());
                at.push(i);
                objects(child, path, at, out);
                at.pop();
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i);
                objects(item, path, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Which keys of the block at `path` the page documents; `None` if it documents none
/// below that path (a map of free-form keys, or a block documented as a whole), which is
/// then not probed.
fn documented_at(keys: &[Vec<String>], path: &[String]) -> Option<BTreeSet<String>> {
    let below: BTreeSet<String> = keys
        .iter()
        .filter(|k| k.len() > path.len() && k.iter().zip(path).all(|(d, p)| d == "*" || d == p))
        .map(|k| k[path.len()].clone())
        .collect();
    (!below.is_empty() || path.is_empty()).then_some(below)
}

#[test]
fn every_key_the_parser_knows_is_documented() {
    let all = pages();
    let shared: Vec<Vec<String>> = all
        .iter()
        .find(|p| p.kind == "operators" && p.component.is_none())
        .map(|p| p.keys().into_iter().map(|(_, path, _)| path).collect())
        .unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut probes = 0;
    for page in all.iter().filter(|p| p.component.is_some()) {
        let mut keys: Vec<Vec<String>> = page.keys().into_iter().map(|(_, p, _)| p).collect();
        if page.kind == "operators" {
            keys.extend(shared.iter().cloned());
        }
        // Each block path is probed once per page, in the first example that has it.
        let mut probed = BTreeSet::new();
        for (line, text) in page.examples() {
            let config = parse_yaml(page, line, &text);
            for root in page.root_positions(&config) {
                let mut nodes = Vec::new();
                objects(
                    node(&config, &root),
                    &mut Vec::new(),
                    &mut Vec::new(),
                    &mut nodes,
                );
                for (path, at) in nodes {
                    let Some(documented) = documented_at(&keys, &path) else {
                        continue;
                    };
                    if !probed.insert(path.clone()) {
                        continue;
                    }
                    let mut probe = config.clone();
                    let at: Vec<usize> = root.iter().chain(&at).copied().collect();
                    let Value::Object(map) = node_mut(&mut probe, &at) else {
                        unreachable!("`objects` yields maps");
                    };
                    map.insert(PROBE.to_owned(), Value::String("x".to_owned()));
                    probes += 1;
                    let file = format!("probe-{probes}.yaml");
                    // JSON is YAML.
                    let place = if path.is_empty() {
                        "the top of the block".to_owned()
                    } else {
                        format!("`{}`", path.join("."))
                    };
                    // The table lists this block's keys, so any other key must be refused.
                    let Err(stderr) = validate(dir.path(), &file, &probe.to_string()) else {
                        failures.push(format!(
                            "{}: an unknown key at {place} is accepted without an error",
                            page.name
                        ));
                        continue;
                    };
                    let Some(known) = known_keys(&stderr) else {
                        failures.push(format!(
                            "{}: an unknown key at {place} is refused, but not as an unknown key:\n{stderr}",
                            page.name
                        ));
                        continue;
                    };
                    for key in known.difference(&documented) {
                        failures.push(format!(
                            "{}: key `{key}` at {place} is accepted but not in the key table",
                            page.name
                        ));
                    }
                }
            }
        }
    }
    assert!(probes > 0, "nothing was probed");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
