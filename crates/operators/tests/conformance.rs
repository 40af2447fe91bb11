//! Runs the shared conformance vectors (`shared/conformance/cases/*.json`) through
//! `build_chain` + `process`/`flush`, comparing with the rules of `shared/conformance/run.py`:
//! missing keys mean empty, numbers compare by type (1 is an int, 1.0 a double), trace ids
//! compare in lowercase with all-zero meaning empty, timestamps within `max_loss_ns`.
//! Cases with `rng`, `now_dependent`, `input_body_hex` or `input_attribute_hex` are skipped.
//! A case with `expected_error` and no expected entries also passes when the config is refused.
//! As in the runner, a router's route targets that the case does not define are added as
//! `noop` operators. Every case file in the directory must have a test below.

use centimane_core::OperatorChain;
use centimane_core::transport::{entry_from_json, entry_to_json};
use centimane_operators::build_chain;
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::sync::Mutex;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/cases"
);
const SKIP_KEYS: [&str; 4] = [
    "rng",
    "now_dependent",
    "input_body_hex",
    "input_attribute_hex",
];

/// Cases set process environment variables (`env`, `tz`); one file runs at a time.
static ENV_LOCK: Mutex<()> = Mutex::new(());

struct Outcome {
    passed: usize,
    skipped: usize,
    failed: Vec<(String, String)>,
}

fn run_file(name: &str) -> Outcome {
    let dir = PathBuf::from(CASES);
    assert!(
        dir.is_dir(),
        "conformance cases not found at {} (expected the shared/ folder beside the repository)",
        dir.display()
    );
    let path = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let cases: Vec<Json> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a JSON list: {e}", path.display()));
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut outcome = Outcome {
        passed: 0,
        skipped: 0,
        failed: Vec::new(),
    };
    for case in &cases {
        let label = case["name"].as_str().unwrap_or("?").to_owned();
        if SKIP_KEYS.iter().any(|k| case.get(k).is_some()) {
            outcome.skipped += 1;
            continue;
        }
        match with_env(case, || run_case(case)) {
            Ok(()) => outcome.passed += 1,
            Err(why) => outcome.failed.push((label, why)),
        }
    }
    eprintln!(
        "{name}: {} passed, {} failed, {} skipped",
        outcome.passed,
        outcome.failed.len(),
        outcome.skipped
    );
    for (case, why) in &outcome.failed {
        eprintln!("  FAIL {name}/{case}: {why}");
    }
    outcome
}

/// Runs `f` with the case's `env` and `tz` set, restoring the previous values after.
fn with_env<T>(case: &Json, f: impl FnOnce() -> T) -> T {
    let mut vars: Vec<(String, String)> = case
        .get("env")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(tz) = case.get("tz").and_then(Json::as_str) {
        vars.push(("TZ".to_owned(), tz.to_owned()));
    }
    let saved: Vec<(String, Option<String>)> = vars
        .iter()
        .map(|(k, _)| (k.clone(), std::env::var(k).ok()))
        .collect();
    for (k, v) in &vars {
        // SAFETY: ENV_LOCK is held, and no other test in this binary touches the environment.
        unsafe { std::env::set_var(k, v) };
    }
    let result = f();
    for (k, old) in saved {
        // SAFETY: as above.
        unsafe {
            match old {
                Some(v) => std::env::set_var(&k, v),
                None => std::env::remove_var(&k),
            }
        }
    }
    result
}

fn run_case(case: &Json) -> Result<(), String> {
    let expected = case["expected"].as_array().cloned().unwrap_or_default();
    let expects_error = case.get("expected_error").and_then(Json::as_bool) == Some(true);
    let mut chain = match build_chain(&chain_of(&case["operators"])) {
        Ok(chain) => chain,
        Err(_) if expects_error && expected.is_empty() => return Ok(()),
        Err(e) => return Err(format!("config refused: {e}")),
    };
    let input = case["input"]
        .as_array()
        .ok_or("the case has no input list")?
        .iter()
        .map(|e| entry_from_json(&e.to_string()).map_err(|err| format!("bad input {e}: {err}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    chain.process(input, &mut out);
    chain.flush(&mut out);
    if out.len() != expected.len() {
        let got: Vec<String> = out.iter().map(entry_to_json).collect();
        return Err(format!(
            "expected {} entries, got {}: {got:?}",
            expected.len(),
            out.len()
        ));
    }
    let max_loss = case.get("max_loss_ns").and_then(Json::as_i64).unwrap_or(0);
    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
        let got: Json = serde_json::from_str(&entry_to_json(got)).map_err(|e| e.to_string())?;
        if let Some(key) = differs(&normalize(&got), &normalize(want), max_loss) {
            return Err(format!(
                "entry {i} differs at {key}: got {}, want {}",
                normalize(&got)[key],
                normalize(want)[key]
            ));
        }
    }
    Ok(())
}

/// The case's operators plus a `noop` for every route target they lack (the Go tests wire
/// router outputs to fakes).
fn chain_of(operators: &Json) -> Json {
    let mut ops = operators.as_array().cloned().unwrap_or_default();
    let id_of = |op: &Json| {
        op.get("id")
            .or_else(|| op.get("type"))
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut ids: Vec<String> = ops.iter().map(id_of).collect();
    let mut targets = Vec::new();
    for op in &ops {
        let routes = op
            .get("routes")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let outputs = routes
            .iter()
            .map(|r| r.get("output").cloned().unwrap_or(Json::Null))
            .chain(std::iter::once(
                op.get("default").cloned().unwrap_or(Json::Null),
            ));
        for out in outputs {
            match out {
                Json::String(s) => targets.push(s),
                Json::Array(list) => {
                    targets.extend(list.iter().filter_map(Json::as_str).map(str::to_owned))
                }
                _ => {}
            }
        }
    }
    for target in targets {
        if !ids.contains(&target) {
            ops.push(json!({"type": "noop", "id": target}));
            ids.push(target);
        }
    }
    Json::Array(ops)
}

const KEYS: [&str; 10] = [
    "body",
    "attributes",
    "resource",
    "timestamp",
    "severity",
    "severity_text",
    "trace_id",
    "span_id",
    "trace_flags",
    "scope_name",
];

fn empty_of(key: &str) -> Json {
    match key {
        "body" | "timestamp" => Json::Null,
        "attributes" | "resource" => json!({}),
        "severity" => json!(0),
        _ => json!(""),
    }
}

fn normalize(entry: &Json) -> Json {
    let mut out = serde_json::Map::new();
    for key in KEYS {
        let empty = empty_of(key);
        let mut v = entry.get(key).cloned().unwrap_or(Json::Null);
        if v.is_null() || v == empty {
            v = empty;
        }
        if let (true, Some(s)) = (key.ends_with("_id") || key == "trace_flags", v.as_str()) {
            let lower = s.to_lowercase();
            v = if lower.chars().all(|c| c == '0') {
                json!("")
            } else {
                json!(lower)
            };
        }
        out.insert(key.to_owned(), v);
    }
    Json::Object(out)
}

/// The first key whose values differ, if any.
fn differs(got: &Json, want: &Json, max_loss_ns: i64) -> Option<&'static str> {
    KEYS.into_iter().find(|key| {
        if *key == "timestamp" {
            let ts = |v: &Json| v.as_str().map(|s| s.parse::<jiff::Timestamp>());
            match (ts(&got[key]), ts(&want[key])) {
                (None, None) => false,
                (Some(Ok(g)), Some(Ok(w))) => {
                    (g.as_nanosecond() - w.as_nanosecond()).abs() > i128::from(max_loss_ns)
                }
                _ => true,
            }
        } else {
            !same_value(&got[key], &want[key])
        }
    })
}

/// Equality with numeric types kept apart: an int never equals a float.
fn same_value(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x.is_f64() == y.is_f64() && x.as_f64() == y.as_f64() && x.as_i64() == y.as_i64()
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Runs a file; every case must pass.
fn must_pass(name: &str) {
    let outcome = run_file(name);
    assert!(
        outcome.failed.is_empty(),
        "{name}: {} case(s) failed: {:?}",
        outcome.failed.len(),
        outcome.failed
    );
    assert!(outcome.passed > 0, "{name}: no case ran");
}

/// Every case file, by name; [`every_case_file_has_a_test`] keeps this list complete.
const FILES: [&str; 28] = [
    "add",
    "assign_keys",
    "container",
    "copy",
    "csv_parser",
    "filter",
    "flatten",
    "json_array_parser",
    "json_parser",
    "key_value_parser",
    "move",
    "noop",
    "parser_common",
    "recombine",
    "regex_parser",
    "regex_replace",
    "remove",
    "retain",
    "router",
    "sanitize_utf8",
    "scope_name_parser",
    "severity_parser",
    "strip_ansi_escape_codes",
    "syslog_parser",
    "time_parser",
    "trace_parser",
    "unquote",
    "uri_parser",
];

#[test]
fn every_case_file_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(CASES)
        .expect("the conformance cases directory")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_owned)
        })
        .collect();
    found.sort();
    assert_eq!(found, FILES, "add a test for each new case file");
}

macro_rules! case_files {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                must_pass($file);
            }
        )*
    };
}

case_files! {
    add => "add",
    assign_keys => "assign_keys",
    container => "container",
    copy => "copy",
    csv_parser => "csv_parser",
    filter => "filter",
    flatten => "flatten",
    json_array_parser => "json_array_parser",
    json_parser => "json_parser",
    key_value_parser => "key_value_parser",
    move_operator => "move",
    noop => "noop",
    parser_common => "parser_common",
    recombine => "recombine",
    regex_parser => "regex_parser",
    regex_replace => "regex_replace",
    remove => "remove",
    retain => "retain",
    router => "router",
    sanitize_utf8 => "sanitize_utf8",
    scope_name_parser => "scope_name_parser",
    severity_parser => "severity_parser",
    strip_ansi_escape_codes => "strip_ansi_escape_codes",
    syslog_parser => "syslog_parser",
    time_parser => "time_parser",
    trace_parser => "trace_parser",
    unquote => "unquote",
    uri_parser => "uri_parser",
}
