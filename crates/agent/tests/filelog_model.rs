//! Model-based test of file tailing, in the style of Vector's file-source tests: random
//! sequences of writes, rotations, copy-truncates, deletions, clean restarts and SIGKILLs
//! are applied to real files under the real binary, and what arrives at the sink is checked
//! against a reference model of what was written:
//! - every line written is delivered at least once;
//! - no line is delivered twice unless a SIGKILL happened (between a read and its ack);
//! - nothing is delivered that was not written.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Op {
    Write {
        file: usize,
        lines: usize,
    },
    /// logrotate `create`: rename to `<name>.N` (still matched) and start a new file.
    Rotate {
        file: usize,
    },
    /// logrotate `copytruncate`: copy to `<name>.N` (still matched), truncate the original.
    CopyTruncate {
        file: usize,
    },
    /// Delete the live file once the agent has caught up with it.
    Delete {
        file: usize,
    },
    Restart,
    Kill,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, 1..300usize).prop_map(|(file, lines)| Op::Write { file, lines }),
        2 => (0..3usize).prop_map(|file| Op::Rotate { file }),
        2 => (0..3usize).prop_map(|file| Op::CopyTruncate { file }),
        1 => (0..3usize).prop_map(|file| Op::Delete { file }),
        1 => Just(Op::Restart),
        1 => Just(Op::Kill),
    ]
}

fn config(dir: &Path, sink: &Sink) -> String {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    format!(
        "extensions:\n  file_storage:\n    directory: {}\nreceivers:\n  filelog:\n    include: [\"{}/*.log*\"]\n    start_at: beginning\n    poll_interval: 20ms\n    storage: file_storage\nprocessors:\n  batch:\n    timeout: 10ms\nexporters:\n  otlp:\n    endpoint: http://{}\n    compression: none\n    retry_on_failure:\n      initial_interval: 20ms\nservice:\n  extensions: [file_storage]\n  pipelines:\n    logs:\n      receivers: [filelog]\n      processors: [batch]\n      exporters: [otlp]\n",
        storage.display(),
        dir.join("logs").display(),
        sink.addr
    )
}

/// Waits until every line in `want` arrived (or 20 s passed); returns all bodies received.
fn wait_for_all(sink: &Sink, want: &HashSet<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = sink.bodies();
        let have: HashSet<&String> = got.iter().collect();
        if want.iter().all(|w| have.contains(w)) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let sink = Sink::start_compact();
    let config = config(dir.path(), &sink);
    let mut agent = Agent::start(&agent_dir, &config);
    let mut written: HashSet<String> = HashSet::new();
    let mut next_line = 0usize;
    let mut rotations = 0usize;
    let mut killed = false;
    let live = |f: usize| logs.join(format!("f{f}.log"));
    for op in ops {
        match op {
            Op::Write { file, lines } => {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(live(*file))
                    .unwrap();
                let mut text = String::new();
                for _ in 0..*lines {
                    let line = format!("line {next_line} of f{file}");
                    next_line += 1;
                    text.push_str(&line);
                    text.push('\n');
                    written.insert(line);
                }
                f.write_all(text.as_bytes()).unwrap();
            }
            Op::Rotate { file } => {
                if live(*file).exists() {
                    rotations += 1;
                    std::fs::rename(live(*file), logs.join(format!("f{file}.log.{rotations}")))
                        .unwrap();
                    std::fs::File::create(live(*file)).unwrap();
                }
            }
            Op::CopyTruncate { file } => {
                if live(*file).exists() {
                    rotations += 1;
                    std::fs::copy(live(*file), logs.join(format!("f{file}.log.{rotations}")))
                        .unwrap();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(live(*file))
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
            }
            Op::Delete { file } => {
                if live(*file).exists() {
                    wait_for_all(&sink, &written);
                    std::fs::remove_file(live(*file)).unwrap();
                }
            }
            Op::Restart => {
                let log = agent.log();
                prop_assert_eq!(agent.stop(), 0, "clean stop; log:\n{}", log);
                agent = Agent::start(&agent_dir, &config);
            }
            Op::Kill => {
                agent.kill();
                killed = true;
                agent = Agent::start(&agent_dir, &config);
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let got = wait_for_all(&sink, &written);
    let log = agent.log();
    prop_assert_eq!(agent.stop(), 0, "clean stop; log:\n{}", log);
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for g in &got {
        *counts.entry(g).or_default() += 1;
    }
    let missing: Vec<&String> = written
        .iter()
        .filter(|w| !counts.contains_key(w))
        .take(5)
        .collect();
    prop_assert!(
        missing.is_empty(),
        "lost lines, e.g. {:?} (ops {:?})",
        missing,
        ops
    );
    let unexpected: Vec<&&String> = counts
        .keys()
        .filter(|g| !written.contains(**g))
        .take(5)
        .collect();
    prop_assert!(unexpected.is_empty(), "never written: {:?}", unexpected);
    if !killed {
        let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
        prop_assert!(
            dups.is_empty(),
            "duplicates without a SIGKILL: {:?} (ops {:?})",
            dups,
            ops
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_file_operations_lose_nothing(ops in proptest::collection::vec(op(), 4..16)) {
        run(&ops)?;
    }
}
