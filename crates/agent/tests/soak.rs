//! Soak: 1,000,000 lines across 50 files, logrotate-style rotation (rename, then a new
//! file) every 50,000 lines, and 3 SIGKILL restarts while writing. Every line must arrive
//! (a SIGKILL may repeat lines, never lose one). Bounded: it stops by itself.

mod common;

use common::*;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const FILES: usize = 50;
const LINES: usize = 1_000_000;
const ROTATE_EVERY: usize = 50_000;
const CHUNK: usize = 500;

fn config(dir: &Path, sink: &Sink) -> String {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    format!(
        r#"
extensions:
  file_storage:
    directory: {storage}
receivers:
  filelog:
    include: ["{logs}/*.log*"]
    start_at: beginning
    poll_interval: 100ms
    storage: file_storage
processors:
  batch:
    timeout: 50ms
exporters:
  otlp:
    endpoint: http://{addr}
    compression: none
    retry_on_failure:
      initial_interval: 50ms
service:
  extensions: [file_storage]
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlp]
"#,
        storage = storage.display(),
        logs = dir.join("logs").display(),
        addr = sink.addr,
    )
}

#[test]
fn a_million_lines_with_rotation_and_sigkills_lose_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let sink = Sink::start_compact();
    let config = config(dir.path(), &sink);
    let mut agent = Agent::start(&agent_dir, &config);
    let kills_at: [usize; 3] = [LINES / 4, LINES / 2, 3 * LINES / 4];
    let mut kills = 0;
    let mut written = 0;
    let mut round = 0;
    let mut files: Vec<std::fs::File> = (0..FILES)
        .map(|f| std::fs::File::create(logs.join(format!("app{f}.log"))).unwrap())
        .collect();
    while written < LINES {
        for (f, file) in files.iter_mut().enumerate() {
            let text: String = (0..CHUNK)
                .map(|i| format!("file {f} line {}\n", written + i))
                .collect();
            file.write_all(text.as_bytes()).unwrap();
        }
        written += FILES * CHUNK;
        if written % ROTATE_EVERY == 0 {
            round += 1;
            for (f, file) in files.iter_mut().enumerate() {
                let live = logs.join(format!("app{f}.log"));
                std::fs::rename(&live, logs.join(format!("app{f}.log.{round}"))).unwrap();
                *file = std::fs::File::create(&live).unwrap();
            }
        }
        if kills < kills_at.len() && written >= kills_at[kills] {
            agent.kill();
            kills += 1;
            agent = Agent::start(&agent_dir, &config);
        }
        // Writers of real hosts don't write 100 MB at once: pace to ~1M lines in 10 s.
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut want = HashSet::with_capacity(LINES);
    for chunk_start in (0..LINES).step_by(FILES * CHUNK) {
        for f in 0..FILES {
            for i in 0..CHUNK {
                want.insert(format!("file {f} line {}", chunk_start + i));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(100);
    loop {
        let got: HashSet<String> = sink.bodies().into_iter().collect();
        if got.len() >= want.len() || Instant::now() > deadline {
            let missing = want.difference(&got).count();
            let unexpected = got.difference(&want).count();
            let total = sink.count();
            eprintln!(
                "soak: {} lines written, {} received ({} duplicates after {} SIGKILLs), {missing} missing, in {:?}",
                want.len(),
                total,
                total - got.len(),
                kills,
                started.elapsed()
            );
            assert_eq!(unexpected, 0, "records that were never written");
            assert_eq!(missing, 0, "lines lost");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(agent.stop(), 0);
}
