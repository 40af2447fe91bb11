//! Black-box tests of the CLI contract: config errors, `validate`, `components`, `process`.

mod common;

use common::BIN;
use std::process::{Command, Stdio};

const GOOD: &str = r#"
receivers:
  filelog:
    include: [/tmp/centimane-cli-test/*.log]
    poll_interval: 200ms
processors:
  batch:
    timeout: 1s
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [debug]
"#;

/// Runs `centimane <args> --config <file with text>`; returns (exit code, stdout, stderr).
fn with_config(args: &[&str], text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_config_validates() {
    let (code, stdout, stderr) = with_config(&["validate"], GOOD);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"));
}

#[test]
fn config_errors_exit_1_naming_the_problem() {
    let cases = [
        // a misspelt key: named, with its line and a suggestion
        (
            GOOD.replace("poll_interval:", "poll_intervall:"),
            vec![
                "line 5",
                "receivers.filelog",
                "`poll_intervall`",
                "did you mean `poll_interval`",
            ],
        ),
        // a bad duration
        (
            GOOD.replace("timeout: 1s", "timeout: 1 second"),
            vec!["processors.batch", "invalid duration \"1 second\""],
        ),
        // an unknown component type
        (
            GOOD.replace("  debug:\n", "  loki:\n"),
            vec!["exporters.loki", "unknown exporter type `loki`"],
        ),
        // a pipeline naming an undefined component
        (
            GOOD.replace("processors: [batch]", "processors: [batch/2]"),
            vec![
                "service.pipelines.logs",
                "processor `batch/2` is not defined",
            ],
        ),
    ];
    for (text, wants) in cases {
        for args in [&["validate"][..], &["run"][..]] {
            let (code, _, stderr) = with_config(args, &text);
            assert_eq!(code, 1, "{args:?} {stderr}");
            for want in &wants {
                assert!(
                    stderr.contains(want),
                    "{args:?}: missing {want:?} in:\n{stderr}"
                );
            }
        }
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let text = GOOD
        .replace("poll_interval:", "poll_intervall:")
        .replace("timeout: 1s", "timeout: soon");
    let (code, _, stderr) = with_config(&["validate"], &text);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`poll_intervall`") && stderr.contains("\"soon\""),
        "{stderr}"
    );
}

#[test]
fn malformed_yaml_is_an_error_with_a_line() {
    let (code, _, stderr) = with_config(&["validate"], "receivers:\n  filelog: [\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("line "), "{stderr}");
}

#[test]
fn components_lists_every_kind() {
    let out = Command::new(BIN).arg("components").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "filelog",
        "batch",
        "otlp",
        "debug",
        "file",
        "file_storage",
        "json_parser",
        "regex_parser",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[test]
fn process_runs_an_operator_chain_on_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ops = dir.path().join("ops.yaml");
    std::fs::write(&ops, "operators:\n  - type: json_parser\n  - type: move\n    from: attributes.msg\n    to: body\n").unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"body\":\"{\\\"msg\\\":\\\"hi\\\",\\\"n\\\":1}\"}\n{\"body\":\"not json\"}\nnot an entry\n").unwrap();
    let out = Command::new(BIN)
        .args(["process", "--config"])
        .arg(&ops)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["body"], "hi");
    assert_eq!(lines[0]["attributes"]["n"], 1.0);
    assert_eq!(
        lines[1]["body"], "not json",
        "on_error send keeps the entry"
    );
    assert_eq!(out.status.code(), Some(1), "a bad input line fails the run");
    assert!(stderr.contains("input line 3"), "{stderr}");
}

#[test]
fn version_prints_the_components() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("centimane "), "{text}");
    assert!(text.contains("receivers:\n  filelog"), "{text}");
}

#[test]
fn process_reads_raw_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ops = dir.path().join("ops.yaml");
    std::fs::write(
        &ops,
        "operators:\n  - type: regex_parser\n    regex: '^(?P<level>[A-Z]+) (?P<msg>.*)$'\n",
    )
    .unwrap();
    let input = dir.path().join("in.log");
    std::fs::write(&input, "INFO started\n\nWARN disk full\n").unwrap();
    let out = Command::new(BIN)
        .args(["process", "--lines", "--config"])
        .arg(&ops)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["body"], "WARN disk full");
    assert_eq!(lines[1]["attributes"]["level"], "WARN");
}
