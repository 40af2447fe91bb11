//! Bad input never crashes the agent and loses nothing: invalid UTF-8, a 10 MB line, an
//! empty file, a file that disappears, a file that can't be opened, malformed JSON.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

#[test]
fn bad_files_and_lines_are_survived() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // invalid UTF-8 between two good lines
    std::fs::write(
        logs.join("utf8.log"),
        b"{\"seq\":0}\n\xff\xfe{\"seq\":1}\n{\"seq\":2}\n",
    )
    .unwrap();
    // a 10 MB line (no newline inside) followed by a normal one
    let mut big = std::fs::File::create(logs.join("big.log")).unwrap();
    big.write_all(&vec![b'x'; 10 * 1024 * 1024]).unwrap();
    big.write_all(b"\n{\"seq\":3}\n").unwrap();
    drop(big);
    // an empty file and malformed JSON
    std::fs::write(logs.join("empty.log"), b"").unwrap();
    std::fs::write(logs.join("malformed.log"), b"{\"seq\":4,\n{\"seq\":5}\n").unwrap();
    // a path that matches but can't be opened
    std::os::unix::fs::symlink(dir.path().join("nowhere"), logs.join("dangling.log")).unwrap();
    // a file that disappears right after the agent starts
    append_json_lines(&logs.join("gone.log"), 100, 5);

    let sink = Sink::start();
    let ops = "\n      - type: json_parser\n        parse_ints: true";
    let agent = Agent::start(dir.path(), &otlp_config(dir.path(), sink.addr, ops));
    std::fs::remove_file(logs.join("gone.log")).unwrap();
    // utf8: 3, big: 10 pieces of 1 MiB + 1, malformed: 2 — the gone file may or may not
    // have been read before it was removed.
    let got = sink.wait_for(16, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let log = agent.log();
    assert_eq!(agent.stop(), 0, "{log}");
    let got_all = sink.received();
    assert!(
        got_all.len() == 16 || got_all.len() == 21,
        "{} records",
        got_all.len()
    );
    assert!(got.len() <= got_all.len());

    let bodies: Vec<String> = got_all.iter().map(|r| r.body()).collect();
    let replaced = bodies
        .iter()
        .find(|b| b.contains('\u{FFFD}'))
        .expect("the invalid line arrives with U+FFFD");
    assert!(replaced.ends_with("{\"seq\":1}"), "{replaced}");
    let pieces: Vec<&String> = bodies.iter().filter(|b| b.starts_with("xxx")).collect();
    assert_eq!(
        pieces.len(),
        10,
        "a 10 MiB line is 10 entries of max_log_size"
    );
    assert_eq!(
        pieces.iter().map(|p| p.len()).sum::<usize>(),
        10 * 1024 * 1024,
        "no byte lost"
    );
    assert!(
        bodies.contains(&"{\"seq\":4,".to_owned()),
        "malformed JSON is forwarded as is"
    );
    for seq in ["0", "2", "3", "5"] {
        assert!(
            got_all
                .iter()
                .any(|r| r.attr("seq").as_deref() == Some(seq)),
            "seq {seq} missing"
        );
    }
}
