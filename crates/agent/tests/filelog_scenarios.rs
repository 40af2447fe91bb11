//! The filelog scenarios of `shared/reference/filelog-scenarios.md`, each run against the
//! real binary on real files, with an OTLP sink on 127.0.0.1 receiving what it emits.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One scenario: a temp dir `DIR` of log files, an agent, and a sink.
struct Scenario {
    dir: tempfile::TempDir,
    sink: Sink,
    agent: Option<Agent>,
    config: String,
    seen: usize,
}

impl Scenario {
    /// Baseline: `include: [DIR/*.log]`, `poll_interval: 50ms`, `start_at: beginning`,
    /// plus `extra` filelog keys (YAML lines at 4-space indent; a key given there wins).
    fn new(extra: &str) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let sink = Sink::start();
        let logs = dir.path().join("logs");
        let mut keys = vec![
            format!("include: [\"{}/*.log\"]", logs.display()),
            "poll_interval: 50ms".to_owned(),
            "start_at: beginning".to_owned(),
        ];
        keys.retain(|k| {
            let name = k.split(':').next().unwrap();
            !extra
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name}:")))
        });
        let mut block = keys
            .iter()
            .map(|k| format!("    {k}\n"))
            .collect::<String>();
        block.push_str(extra);
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = format!(
            "extensions:\n  file_storage:\n    directory: {}\nreceivers:\n  filelog:\n{block}\nprocessors:\n  batch:\n    timeout: 10ms\nexporters:\n  otlp:\n    endpoint: http://{}\n    retry_on_failure:\n      initial_interval: 50ms\nservice:\n  extensions: [file_storage]\n  pipelines:\n    logs:\n      receivers: [filelog]\n      processors: [batch]\n      exporters: [otlp]\n",
            storage.display(),
            sink.addr
        );
        Scenario {
            dir,
            sink,
            agent: None,
            config,
            seen: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name)
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).unwrap();
    }

    fn append(&self, name: &str, bytes: &[u8]) {
        append(&self.path(name), bytes);
    }

    fn start(&mut self) {
        let dir = self.dir.path().join("agent");
        std::fs::create_dir_all(&dir).unwrap();
        self.agent = Some(Agent::start(&dir, &self.config));
    }

    fn stop(&mut self) {
        let agent = self.agent.take().expect("running");
        let log = agent.log();
        assert_eq!(agent.stop(), 0, "agent log:\n{log}");
    }

    /// Waits until no new record arrived for 300 ms (4 polls = 200 ms), at most 20 s, and
    /// returns the records that arrived since the last call.
    fn settle(&mut self) -> Vec<Received> {
        self.settle_for(Duration::from_millis(300))
    }

    fn settle_for(&mut self, quiet: Duration) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = self.sink.count();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
            let n = self.sink.count();
            if n != last {
                last = n;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        let all = self.sink.received();
        let new = all[self.seen..].to_vec();
        self.seen = all.len();
        new
    }

    /// Settles long enough for a flush (`force_flush_period` 500 ms + 4 polls).
    fn settle_flush(&mut self) -> Vec<Received> {
        self.settle_for(Duration::from_millis(900))
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn bodies(records: &[Received]) -> Vec<String> {
    records.iter().map(Received::body).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn raw_body(r: &Received) -> Vec<u8> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    match r.record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Any::BytesValue(b)) => b.clone(),
        Some(Any::StringValue(s)) => s.as_bytes().to_vec(),
        other => panic!("unexpected body {other:?}"),
    }
}

#[test]
fn fs01_defaults_start_at_end_trim_and_flush() {
    let mut s = Scenario::new("    start_at: end\n");
    s.write("a.log", b" testlog1 \n");
    s.start();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        s.settle().is_empty(),
        "pre-existing lines are not read with start_at: end"
    );
    s.append("a.log", b" testlog2 \n");
    let got = s.settle();
    assert_eq!(bodies(&got), ["testlog2"]);
    assert_eq!(got[0].record.attributes.len(), 1);
    assert_eq!(got[0].attr("log.file.name").as_deref(), Some("a.log"));
    s.append("a.log", b" testlog3 ");
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(
        s.sink.count(),
        1,
        "a partial line waits for the flush period"
    );
    assert_eq!(bodies(&s.settle_flush()), ["testlog3"]);
    s.stop();
}

#[test]
fn fs02_fs05_beginning_existing_then_appended_then_new_file() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\ntestlog2\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog1", "testlog2"]);
    s.append("a.log", b"testlog3\n");
    assert_eq!(bodies(&s.settle()), ["testlog3"]);
    s.write("b.log", b"testlog\n");
    let got = s.settle();
    assert_eq!(bodies(&got), ["testlog"]);
    assert_eq!(got[0].attr("log.file.name").as_deref(), Some("b.log"));
    s.stop();
}

#[test]
fn fs03_fs04_start_at_end_applies_only_to_the_first_poll() {
    let mut s = Scenario::new("    start_at: end\n    max_concurrent_files: 2\n");
    for i in 0..10 {
        s.write(
            &format!("f{i}.log"),
            format!("file {i}: written before start\n").as_bytes(),
        );
    }
    s.start();
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.settle().is_empty());
    for i in 10..20 {
        s.write(&format!("f{i}.log"), b"");
    }
    std::thread::sleep(Duration::from_millis(150));
    for i in 0..20 {
        s.append(
            &format!("f{i}.log"),
            format!("file {i}: written after start\n").as_bytes(),
        );
    }
    let got = sorted(bodies(&s.settle()));
    let want = sorted(
        (0..20)
            .map(|i| format!("file {i}: written after start"))
            .collect(),
    );
    assert_eq!(got, want);
    s.stop();
}

#[test]
fn fs06_a_line_written_in_two_parts() {
    let mut s = Scenario::new("    force_flush_period: 5s\n");
    s.write("a.log", b"testlog1");
    s.start();
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.settle().is_empty());
    s.append("a.log", b"testlog2\n");
    assert_eq!(bodies(&s.settle()), ["testlog1testlog2"]);
    s.stop();
}

#[test]
fn fs07_trailing_partial_line_flush_and_no_flush() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\ntestlog2");
    let start = Instant::now();
    s.start();
    assert_eq!(
        bodies(&s.sink.wait_for(1, Duration::from_secs(10))),
        ["testlog1"]
    );
    let got = s.sink.wait_for(2, Duration::from_secs(10));
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert_eq!(bodies(&got), ["testlog1", "testlog2"]);
    s.stop();

    let mut s = Scenario::new("    force_flush_period: 0s\n");
    s.write("a.log", b"testlog1\ntestlog2");
    s.start();
    s.sink.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bodies(&s.settle()), ["testlog1"]);
    s.append("a.log", b"\n");
    assert_eq!(bodies(&s.settle()), ["testlog2"]);
    s.stop();
}

#[test]
fn fs08_growing_partial_line_postpones_the_flush() {
    let mut s = Scenario::new("");
    s.write("a.log", &vec![b'a'; 20_480]);
    s.start();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        s.append("a.log", &[b'b'; 100]);
        assert_eq!(s.sink.count(), 0, "nothing while the line grows");
    }
    let got = s.settle_flush();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body(),
        format!("{}{}", "a".repeat(20_480), "b".repeat(500))
    );
    s.stop();
}

#[test]
fn fs09_fs30_blank_lines_and_record_numbers() {
    let mut s = Scenario::new(
        "    include_file_record_number: true\n    include_file_record_offset: true\n",
    );
    s.write("a.log", b"\n\ntestlog1\n\n   \ntestlog2\n");
    s.start();
    let got = s.settle();
    assert_eq!(bodies(&got), ["testlog1", "testlog2"]);
    let numbers: Vec<_> = got
        .iter()
        .map(|r| r.attr("log.file.record_number").unwrap())
        .collect();
    assert_eq!(numbers, ["3", "6"]);
    assert_eq!(got[0].attr("log.file.record_offset").as_deref(), Some("2"));
    s.append("a.log", b"testlog3\n");
    let got = s.settle();
    assert_eq!(got[0].attr("log.file.record_number").as_deref(), Some("7"));
    s.stop();
}

#[test]
fn fs10_crlf() {
    let mut s = Scenario::new("");
    s.write("a.log", b"log1\r\nlog2\r\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["log1", "log2"]);
    s.stop();
}

#[test]
fn fs11_long_lines_are_split() {
    let mut s = Scenario::new("    max_log_size: 10\n");
    s.write("a.log", format!("{}\naaa\n", "a".repeat(22)).as_bytes());
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        ["aaaaaaaaaa", "aaaaaaaaaa", "aa", "aaa"]
    );
    s.stop();

    let mut s = Scenario::new(
        "    max_log_size: 15\n    multiline:\n      line_start_pattern: '\\d+-\\d+-\\d+'\n",
    );
    s.write(
        "a.log",
        format!("aaa2023-01-01{} 2023-01-01 2 2023-01-01", "a".repeat(40)).as_bytes(),
    );
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        [
            "aaa",
            "2023-01-01aaaaa",
            "aaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaa",
            "aaaaa",
            "2023-01-01 2"
        ]
    );
    assert_eq!(bodies(&s.settle_flush()), ["2023-01-01"]);
    s.stop();
}

/// `max_log_size`, file content, expected bodies.
type NopCase = (usize, &'static [u8], &'static [&'static [u8]]);

#[test]
fn fs12_nop_encoding() {
    let cases: [NopCase; 4] = [
        (
            8,
            b"testlog1testlog2testlog3",
            &[b"testlog1", b"testlog2", b"testlog3"],
        ),
        (
            8,
            b"testlog1testlog2test",
            &[b"testlog1", b"testlog2", b"test"],
        ),
        (
            8,
            b"testlog1\n\ttestlog2\n\t",
            &[b"testlog1", b"\n\ttestlo", b"g2\n\t"],
        ),
        (7, b"testlog1", &[b"testlog", b"1"]),
    ];
    for (max, content, want) in cases {
        let mut s = Scenario::new(&format!("    encoding: nop\n    max_log_size: {max}\n"));
        s.write("a.log", content);
        s.start();
        let got: Vec<Vec<u8>> = s.settle_flush().iter().map(raw_body).collect();
        assert_eq!(got, want.iter().map(|w| w.to_vec()).collect::<Vec<_>>());
        s.stop();
    }
}

const MULTILINE: &[u8] = b"LOGSTART 12 log1\t  \nLOGPART log1\nLOGPART log1\t   \nLOGSTART 17 log2\nLOGPART log2\nanother line\nLOGSTART 43 log5";

#[test]
fn fs13_multiline_line_start() {
    let mut s = Scenario::new("    multiline:\n      line_start_pattern: '^LOGSTART \\d+ '\n");
    s.write("a.log", MULTILINE);
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        [
            "LOGSTART 12 log1\t  \nLOGPART log1\nLOGPART log1",
            "LOGSTART 17 log2\nLOGPART log2\nanother line"
        ]
    );
    assert_eq!(bodies(&s.settle_flush()), ["LOGSTART 43 log5"]);
    s.stop();
}

#[test]
fn fs14_text_before_the_first_start_match() {
    let mut s = Scenario::new("    multiline:\n      line_start_pattern: 'LOGSTART \\d+ '\n");
    s.write(
        "a.log",
        b"part that doesn't match LOGSTART 123 part that matchesLOGSTART 123 foo",
    );
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        ["part that doesn't match", "LOGSTART 123 part that matches"]
    );
    assert_eq!(bodies(&s.settle_flush()), ["LOGSTART 123 foo"]);
    s.stop();
}

#[test]
fn fs15_line_end_pattern_and_omit_pattern() {
    let mut s = Scenario::new("    multiline:\n      line_end_pattern: '^LOGEND.*$'\n");
    s.write("a.log", b"LOGSTART 12 log1\t  \nLOGPART log1\nLOGEND log1\t   \nLOGSTART 17 log2\nLOGPART log2\nLOGEND log2\nLOGSTART 43 log5");
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        [
            "LOGSTART 12 log1\t  \nLOGPART log1\nLOGEND log1",
            "LOGSTART 17 log2\nLOGPART log2\nLOGEND log2"
        ]
    );
    assert_eq!(bodies(&s.settle_flush()), ["LOGSTART 43 log5"]);
    s.stop();

    let mut s = Scenario::new(
        "    multiline:\n      line_start_pattern: '^LOGSTART \\d+ '\n      omit_pattern: true\n",
    );
    s.write("a.log", MULTILINE);
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        [
            "log1\t  \nLOGPART log1\nLOGPART log1",
            "log2\nLOGPART log2\nanother line"
        ]
    );
    assert_eq!(bodies(&s.settle_flush()), ["log5"]);
    s.stop();
}

#[test]
fn fs16_rotation_by_rename_out_of_the_pattern() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog1"]);
    let outside = s.dir.path().join("rotated");
    std::fs::create_dir_all(&outside).unwrap();
    s.append("a.log", b"testlog2\n");
    std::fs::rename(s.path("a.log"), outside.join("old.log")).unwrap();
    s.write("a.log", b"testlog3\n");
    assert_eq!(bodies(&s.settle()), ["testlog2", "testlog3"]);
    s.stop();
}

#[test]
fn fs17_rename_inside_the_pattern() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog1"]);
    std::fs::rename(s.path("a.log"), s.path("b.log")).unwrap();
    assert!(s.settle().is_empty(), "no re-read after a rename");
    s.append("b.log", b"testlog2\n");
    let got = s.settle();
    assert_eq!(bodies(&got), ["testlog2"]);
    assert_eq!(got[0].attr("log.file.name").as_deref(), Some("b.log"));
    s.stop();
}

#[test]
fn fs18_moved_out_and_appended_right_away() {
    let mut s = Scenario::new("    poll_interval: 1s\n");
    s.write("a.log", b"testlog1\n");
    s.start();
    s.sink.wait_for(1, Duration::from_secs(10));
    s.settle();
    let outside = s.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::rename(s.path("a.log"), outside.join("newfile.log")).unwrap();
    append(&outside.join("newfile.log"), b"testlog2\n");
    assert_eq!(
        bodies(&s.settle_for(Duration::from_millis(2500))),
        ["testlog2"]
    );
    append(&outside.join("newfile.log"), b"testlog3\n");
    assert!(
        s.settle_for(Duration::from_millis(4500)).is_empty(),
        "a file out of the pattern is forgotten"
    );
    s.stop();
}

#[test]
fn fs19_copytruncate() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\ntestlog2\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog1", "testlog2"]);
    std::fs::copy(s.path("a.log"), s.path("b.log")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.path("a.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    s.append("b.log", b"testlog3\n");
    s.append("a.log", b"testlog4\n");
    assert_eq!(sorted(bodies(&s.settle())), ["testlog3", "testlog4"]);
    s.stop();
}

#[test]
fn fs19_copytruncate_many_writers_every_line_once() {
    let mut s = Scenario::new("");
    s.start();
    let logs = s.logs();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let file = logs.join(format!("file{w}.log"));
                for rot in 0..3 {
                    for line in 0..30 {
                        append(
                            &file,
                            format!("writer {w} rotation {rot} line {line}\n").as_bytes(),
                        );
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    std::fs::copy(&file, logs.join(format!("file{w}.rot{rot}.log"))).unwrap();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&file)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let got = sorted(bodies(&s.settle_flush()));
    let mut want = Vec::new();
    for w in 0..3 {
        for rot in 0..3 {
            for line in 0..30 {
                want.push(format!("writer {w} rotation {rot} line {line}"));
            }
        }
    }
    assert_eq!(got, sorted(want));
    s.stop();
}

#[test]
fn fs20_truncate_in_place_then_write() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\ntestlog2\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog1", "testlog2"]);
    s.write("a.log", b"testlog3\n");
    assert_eq!(bodies(&s.settle()), ["testlog3"]);
    s.stop();
}

#[test]
fn fs21_restart_with_checkpoints() {
    for (start_at, len) in [
        ("beginning", 20),
        ("beginning", 2000),
        ("end", 20),
        ("end", 2000),
    ] {
        let mut s = Scenario::new(&format!(
            "    start_at: {start_at}\n    storage: file_storage\n"
        ));
        let line = |n: usize| format!("{n}{}\n", "x".repeat(len - 1));
        s.write("a.log", line(1).as_bytes());
        s.start();
        std::thread::sleep(Duration::from_millis(200));
        let first = s.settle();
        assert_eq!(
            first.len(),
            usize::from(start_at == "beginning"),
            "{start_at} {len}"
        );
        s.append("a.log", line(2).as_bytes());
        assert_eq!(bodies(&s.settle()), [line(2).trim()]);
        s.stop();
        s.append("a.log", line(3).as_bytes());
        s.start();
        assert_eq!(
            bodies(&s.settle()),
            [line(3).trim()],
            "{start_at} {len}: only L3 after restart"
        );
        s.append("a.log", line(4).as_bytes());
        assert_eq!(bodies(&s.settle()), [line(4).trim()]);
        s.stop();
    }
}

#[test]
fn fs22_restart_without_storage_reapplies_start_at() {
    let mut s = Scenario::new("    start_at: end\n");
    s.write("a.log", b"before\n");
    s.start();
    std::thread::sleep(Duration::from_millis(200));
    s.append("a.log", b"one\n");
    assert_eq!(bodies(&s.settle()), ["one"]);
    s.stop();
    s.append("a.log", b"while stopped\n");
    s.start();
    std::thread::sleep(Duration::from_millis(200));
    s.append("a.log", b"two\n");
    assert_eq!(
        bodies(&s.settle()),
        ["two"],
        "lines written while stopped are skipped without storage"
    );
    s.stop();

    let mut s = Scenario::new("");
    s.write("a.log", b"x\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["x"]);
    s.stop();
    s.start();
    assert_eq!(
        bodies(&s.settle()),
        ["x"],
        "re-read from the beginning without storage"
    );
    s.stop();
}

#[test]
fn fs23_rotated_while_stopped() {
    let mut s = Scenario::new("    storage: file_storage\n");
    let x = "X".repeat(1000);
    let y = "Y".repeat(1000);
    s.write("a.log", format!("{x}\n").as_bytes());
    s.start();
    assert_eq!(bodies(&s.settle()), std::slice::from_ref(&x));
    s.stop();
    std::fs::rename(s.path("a.log"), s.path("a2.log")).unwrap();
    s.write("a.log", format!("{y}\n").as_bytes());
    s.start();
    assert_eq!(bodies(&s.settle()), [y]);
    s.stop();
}

#[test]
fn fs24_identical_small_files_are_told_apart_later() {
    let mut s = Scenario::new("    fingerprint_size: 18\n");
    s.write("a.log", b"aaaaaaaaaaa\n");
    s.write("b.log", b"aaaaaaaaaaa\n");
    s.start();
    let first = s.settle();
    assert_eq!(bodies(&first), ["aaaaaaaaaaa"]);
    let f1 = first[0].attr("log.file.name").unwrap();
    let f2 = if f1 == "a.log" { "b.log" } else { "a.log" };
    s.append("a.log", b"more content in file 1 only\n");
    s.append("b.log", b"different content in file 2\n");
    let got = s.settle();
    let mut pairs: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.body(), r.attr("log.file.name").unwrap()))
        .collect();
    pairs.sort();
    let mut want = vec![
        ("aaaaaaaaaaa".to_owned(), f2.to_owned()),
        ("different content in file 2".to_owned(), "b.log".to_owned()),
        ("more content in file 1 only".to_owned(), "a.log".to_owned()),
    ];
    want.sort();
    assert_eq!(pairs, want);
    s.stop();
}

#[test]
fn fs25_empty_files_wait_for_content() {
    let mut s = Scenario::new("");
    s.write("a.log", b"testlog1\n");
    s.write("b.log", b"");
    s.write("c.log", b"testlog2\n");
    s.write("d.log", b"");
    s.start();
    assert_eq!(sorted(bodies(&s.settle())), ["testlog1", "testlog2"]);
    s.write("b.log", b"testlog3\n");
    s.write("d.log", b"testlog4\n");
    assert_eq!(sorted(bodies(&s.settle())), ["testlog3", "testlog4"]);
    s.stop();
}

#[test]
fn fs26_many_files_in_batches() {
    let mut s = Scenario::new("    max_concurrent_files: 20\n");
    let line = |f: usize, l: usize| format!("{} {f} {l}", "r".repeat(100));
    for f in 0..100 {
        let text: String = (0..10).map(|l| line(f, l) + "\n").collect();
        s.write(&format!("f{f}.log"), text.as_bytes());
    }
    s.start();
    let got = s.settle();
    assert_eq!(
        sorted(bodies(&got)),
        sorted(
            (0..100)
                .flat_map(|f| (0..10).map(move |l| line(f, l)))
                .collect()
        )
    );
    for f in 0..100 {
        let text: String = (10..20).map(|l| line(f, l) + "\n").collect();
        s.append(&format!("f{f}.log"), text.as_bytes());
    }
    let got = s.settle();
    assert_eq!(
        sorted(bodies(&got)),
        sorted(
            (0..100)
                .flat_map(|f| (10..20).map(move |l| line(f, l)))
                .collect()
        )
    );
    s.stop();

    let mut s = Scenario::new("    max_concurrent_files: 20\n    max_batches: 2\n");
    for f in 0..50 {
        let text: String = (0..10).map(|l| line(f, l) + "\n").collect();
        s.write(&format!("f{f}.log"), text.as_bytes());
    }
    s.start();
    std::thread::sleep(Duration::from_millis(500));
    let got = bodies(&s.settle());
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "no line twice");
    s.stop();
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

#[test]
fn fs27_gzip() {
    let mut s = Scenario::new("    compression: gzip\n");
    s.config = s.config.replace("/*.log", "/*.gz");
    s.write("a.gz", &gzip(b"testlog1\ntestlog2\n"));
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog1", "testlog2"]);
    s.stop();

    let mut s = Scenario::new("    compression: gzip\n    start_at: end\n");
    s.config = s.config.replace("/*.log", "/*.gz");
    s.write("a.gz", &gzip(b"testlog1\ntestlog2\n"));
    s.start();
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.settle().is_empty());
    s.append("a.gz", &gzip(b"testlog3\n"));
    assert_eq!(bodies(&s.settle()), ["testlog3"]);
    s.append("a.gz", &gzip(b"testlog4\n"));
    assert_eq!(bodies(&s.settle()), ["testlog4"]);
    s.stop();
}

#[test]
fn fs28_delete_after_read() {
    let mut s = Scenario::new("    delete_after_read: true\n");
    let write_batch = |s: &Scenario, tag: &str| {
        for f in 0..10 {
            let text: String = (0..10).map(|l| format!("{tag} {f} {l}\n")).collect();
            s.write(&format!("{tag}{f}.log"), text.as_bytes());
        }
    };
    write_batch(&s, "first");
    s.start();
    assert_eq!(s.settle().len(), 100);
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<_> = std::fs::read_dir(s.logs()).unwrap().collect();
    assert!(left.is_empty(), "read files are deleted: {left:?}");
    write_batch(&s, "second");
    assert_eq!(s.settle().len(), 100);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_dir(s.logs()).unwrap().count(), 0);
    s.stop();
}

#[test]
fn fs29_header_metadata_and_persistence() {
    let header = "    storage: file_storage\n    header:\n      pattern: '^#'\n      metadata_operators:\n        - type: regex_parser\n          regex: '(?P<header_key>[A-z]+): (?P<header_value>[A-z]+)'\n";
    let mut s = Scenario::new(header);
    s.write("a.log", b"#headerField: headerValue\nlog line\n");
    s.start();
    let got = s.settle();
    assert_eq!(bodies(&got), ["log line"]);
    assert_eq!(got[0].attr("header_key").as_deref(), Some("headerField"));
    assert_eq!(got[0].attr("header_value").as_deref(), Some("headerValue"));
    assert_eq!(got[0].attr("log.file.name").as_deref(), Some("a.log"));
    s.stop();
    s.append("a.log", b"log line 2\n");
    s.start();
    let got = s.settle();
    assert_eq!(bodies(&got), ["log line 2"]);
    assert_eq!(
        got[0].attr("header_value").as_deref(),
        Some("headerValue"),
        "header state survives a restart"
    );
    s.stop();

    // A header not finished before the restart continues with the restarted config.
    let part = |n: u8| {
        format!(
            "    storage: file_storage\n    header:\n      pattern: '^\\|'\n      metadata_operators:\n        - type: regex_parser\n          regex: 'headerField{n}: (?P<header_value_{n}>[A-z0-9]+)'\n"
        )
    };
    let mut s = Scenario::new(&part(1));
    s.write("a.log", b"|headerField1: headerValue1\n");
    s.start();
    std::thread::sleep(Duration::from_millis(400));
    s.stop();
    s.append("a.log", b"|headerField2: headerValue2\nlog line\n");
    s.config = s.config.replace(
        "headerField1: (?P<header_value_1>",
        "headerField2: (?P<header_value_2>",
    );
    s.start();
    let got = s.settle();
    assert_eq!(bodies(&got), ["log line"]);
    assert_eq!(
        got[0].attr("header_value_1").as_deref(),
        Some("headerValue1")
    );
    assert_eq!(
        got[0].attr("header_value_2").as_deref(),
        Some("headerValue2")
    );
    s.stop();
}

#[test]
fn fs31_ordering_criteria() {
    let mut s = Scenario::new(
        "    ordering_criteria:\n      regex: 'app-(?P<value>\\d+)\\.log'\n      sort_by:\n        - sort_type: numeric\n          regex_key: value\n",
    );
    s.write("app-1.log", b"testlog1\n");
    s.write("app-2.log", b"testlog2\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog2"]);
    s.stop();

    let mut s = Scenario::new(
        "    ordering_criteria:\n      regex: '(?P<value>\\d{10})\\.log'\n      sort_by:\n        - sort_type: timestamp\n          regex_key: value\n          layout: '%Y%m%d%H'\n",
    );
    s.write("x2023020602.log", b"testlog1\n");
    s.write("x2023020603.log", b"testlog2\n");
    s.start();
    assert_eq!(bodies(&s.settle()), ["testlog2"]);
    s.stop();
}

#[test]
fn fs32_encodings() {
    let cases: [(&str, &[u8], &[&str]); 5] = [
        ("utf-8", b"\xC5\n", &["\u{FFFD}"]),
        ("utf-8", b"\xE6\x8A\x98\n", &["折"]),
        (
            "utf-16be",
            &[
                0xD8, 0x3D, 0xDE, 0x00, 0x00, 0x0A, 0x00, 0x66, 0x00, 0x6F, 0x00, 0x6F,
            ],
            &["😀", "foo"],
        ),
        (
            "utf-16le",
            &[
                0x3D, 0xD8, 0x00, 0xDE, 0x0A, 0x00, 0x66, 0x00, 0x6F, 0x00, 0x6F, 0x00,
            ],
            &["😀", "foo"],
        ),
        ("big5", b"\xA7\xE9\n", &["折"]),
    ];
    for (encoding, bytes, want) in cases {
        let mut s = Scenario::new(&format!("    encoding: {encoding}\n"));
        s.write("a.log", bytes);
        s.start();
        assert_eq!(bodies(&s.settle_flush()), want, "{encoding}");
        s.stop();
    }
    let mut s = Scenario::new("    encoding: utf8-raw\n");
    s.write("a.log", b"\xC5\n");
    s.start();
    let got = s.settle();
    assert_eq!(raw_body(&got[0]), [0xC5]);
    s.stop();
}

#[test]
fn fs33_symlinks_and_resolved_paths() {
    let mut s = Scenario::new(
        "    include_file_path: true\n    include_file_name_resolved: true\n    include_file_path_resolved: true\n",
    );
    let logs = s.logs();
    s.config = s.config.replace(
        &format!("{}/*.log", logs.display()),
        &format!("{}/*", logs.display()),
    );
    let other = s.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("real.log"), b"testlog\n").unwrap();
    std::os::unix::fs::symlink(other.join("real.log"), logs.join("symlink")).unwrap();
    s.start();
    let got = s.settle();
    assert_eq!(bodies(&got), ["testlog"]);
    let r = &got[0];
    assert_eq!(r.attr("log.file.name").as_deref(), Some("symlink"));
    assert_eq!(
        r.attr("log.file.path"),
        Some(logs.join("symlink").display().to_string())
    );
    assert_eq!(
        r.attr("log.file.name_resolved").as_deref(),
        Some("real.log")
    );
    let real = std::fs::canonicalize(other.join("real.log")).unwrap();
    assert_eq!(
        r.attr("log.file.path_resolved"),
        Some(real.display().to_string())
    );

    // Retargeting the link: every line of every target exactly once.
    let mut want = Vec::new();
    for t in 0..10 {
        let target = other.join(format!("t{t}.log"));
        let text: String = (0..100).map(|l| format!("target {t} line {l}\n")).collect();
        want.extend((0..100).map(|l| format!("target {t} line {l}")));
        std::fs::write(&target, text).unwrap();
        let tmp = logs.join("symlink.tmp");
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        std::fs::rename(&tmp, logs.join("symlink")).unwrap();
        std::thread::sleep(Duration::from_millis(120));
    }
    assert_eq!(sorted(bodies(&s.settle())), sorted(want));
    s.stop();
}

#[test]
fn fs34_many_lines_in_order() {
    let mut s = Scenario::new("");
    s.start();
    let text: String = (0..1000).map(|i| format!("{i}\n")).collect();
    for chunk in text.as_bytes().chunks(997) {
        s.append("a.log", chunk);
    }
    let got = s.sink.wait_for(1000, Duration::from_secs(20));
    assert_eq!(
        bodies(&got),
        (0..1000).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert!(s.settle().len() == 1000);
    s.stop();
}

#[test]
fn fs35_configuration_errors_fail_at_startup() {
    let cases = [
        ("    include: []\n", "`include`"),
        ("    include: ['a[']\n", "invalid glob"),
        ("    max_log_size: 0\n", "`max_log_size`"),
        ("    fingerprint_size: 8\n", "`fingerprint_size`"),
        ("    start_at: middle\n", "`start_at`"),
        (
            "    multiline:\n      line_start_pattern: a\n      line_end_pattern: b\n",
            "only one of",
        ),
        (
            "    encoding: nop\n    multiline:\n      line_start_pattern: a\n",
            "`encoding: nop`",
        ),
        (
            "    multiline:\n      line_start_pattern: '('\n",
            "invalid pattern",
        ),
        (
            "    start_at: end\n    header:\n      pattern: '^#'\n      metadata_operators: []\n",
            "`header`",
        ),
        (
            "    start_at: end\n    delete_after_read: true\n",
            "`delete_after_read`",
        ),
        ("    max_batches: -1\n", "`max_batches`"),
        ("    encoding: klingon\n", "unknown encoding"),
    ];
    for (extra, want) in cases {
        let s = Scenario::new(extra);
        let dir = s.dir.path();
        std::fs::write(dir.join("c.yaml"), &s.config).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["run", "--config"])
            .arg(dir.join("c.yaml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra}: {stderr}");
        assert!(
            stderr.contains(want),
            "{extra}: missing {want:?} in {stderr}"
        );
    }
}
