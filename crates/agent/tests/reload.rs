//! SIGHUP reloads the config file mid-stream: the new pipelines take over with no line
//! lost or repeated; a broken config is refused and the running one keeps going.

mod common;

use common::*;
use std::time::Duration;

fn config(dir: &std::path::Path, sink: &Sink, version: &str) -> String {
    otlp_config(
        dir,
        sink.addr,
        &format!(
            "\n      - type: json_parser\n        parse_ints: true\n      - type: add\n        field: attributes.version\n        value: {version}"
        ),
    )
}

#[test]
fn sighup_swaps_pipelines_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let sink = Sink::start();
    let agent = Agent::start(&agent_dir, &config(dir.path(), &sink, "a"));
    let total = 4000;
    let writer = {
        let file = logs.join("app.log");
        std::thread::spawn(move || {
            for chunk in 0..(total / 50) {
                append_json_lines(&file, chunk * 50, 50);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    sink.wait_for(500, Duration::from_secs(30));
    std::fs::write(
        agent_dir.join("config.yaml"),
        config(dir.path(), &sink, "b"),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(
        agent_dir.join("config.yaml"),
        "receivers: [this is not a config",
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    writer.join().unwrap();
    let got = sink.wait_for(total, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let log = agent.log();
    assert_eq!(agent.stop(), 0, "{log}");
    assert!(log.contains("config reloaded"), "{log}");
    assert!(log.contains("reload refused"), "{log}");
    let all = sink.received();
    assert_eq!(
        seqs(&all),
        (0..total).collect::<Vec<_>>(),
        "every line exactly once"
    );
    let versions: Vec<String> = all.iter().map(|r| r.attr("version").unwrap()).collect();
    let first_b = versions
        .iter()
        .position(|v| v == "b")
        .expect("the new config ran");
    assert!(first_b > 0, "the old config ran first");
    assert!(
        versions[first_b..].iter().all(|v| v == "b"),
        "no record of the old pipelines after the swap"
    );
    assert!(got.len() <= all.len());
}
