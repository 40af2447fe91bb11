//! The test server against OpAMP clients nobody on this project wrote: PyPI
//! `opentelemetry-opamp-client` and npm `@elastic/opamp-client-node` (plain HTTP only),
//! through the drivers in `shared/peers/opamp/`. `scripts/opamp-peers.sh` installs them
//! (pinned versions) under `target/opamp-peers`; if a registry is unreachable the test
//! fails and says so.

mod common;

use centimane_opamp_ext::test_server::{ServerState, TestServer, yaml_config};
use common::{attribute, statuses_for};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the install script; its `KEY=VALUE` lines say where the peers are.
fn install_peers() -> HashMap<String, String> {
    let script = repo_root().join("scripts/opamp-peers.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "installing the real OpAMP peers failed ({}):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn drivers() -> PathBuf {
    let dir = std::env::var_os("OPAMP_PEER_DRIVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/peers/opamp"));
    assert!(
        dir.join("py_opamp_client.py").is_file(),
        "the peer drivers are missing from {} (shared/ is expected beside the repository; set OPAMP_PEER_DRIVERS to elsewhere)",
        dir.display()
    );
    dir
}

/// Runs a driver for a few seconds (bounded by `timeout` in case it hangs).
async fn run(program: &str, args: Vec<String>, env: Vec<(String, String)>) -> Output {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg(&program)
            .args(&args)
            .envs(env)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    })
    .await
    .unwrap()
}

fn agent_named<'a>(
    state: &'a ServerState,
    name: &str,
) -> Option<&'a centimane_opamp_ext::test_server::AgentRecord> {
    state
        .agents
        .values()
        .find(|a| attribute(a, "service.name").as_deref() == Some(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_receive_a_pushed_config_and_report_its_status() {
    let peers = tokio::task::spawn_blocking(install_peers).await.unwrap();
    let drivers = drivers();
    let server = TestServer::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let config = yaml_config("receivers:\n  filelog:\n    include: [/var/log/peer/*.log]\n");
    server.set_default_config(Some(config.clone()));
    let url = server.http_url();
    let common = |name: &str| -> Vec<String> {
        [
            "--url",
            &url,
            "--duration",
            "5",
            "--interval",
            "0.5",
            "--expect-config",
            "--service-name",
            name,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let py = drivers.join("py_opamp_client.py").display().to_string();
    let node = drivers.join("node_opamp_client.js").display().to_string();
    let mut py_fail_args = vec![py.clone()];
    py_fail_args.extend(common("py-peer-failing"));
    py_fail_args.push("--fail-config".into());
    let mut py_args = vec![py];
    py_args.extend(common("py-peer"));
    let mut node_args = vec![node];
    node_args.extend(common("node-peer"));
    let node_env = vec![("NODE_PATH".to_owned(), peers["NODE_PATH"].clone())];
    let (py_out, py_fail_out, node_out) = tokio::join!(
        run(&peers["PYTHON"], py_args, Vec::new()),
        run(&peers["PYTHON"], py_fail_args, Vec::new()),
        run("node", node_args, node_env),
    );
    let versions = format!(
        "opentelemetry-opamp-client {}, @elastic/opamp-client-node {}",
        peers["PY_VERSION"], peers["NODE_VERSION"]
    );
    for (name, out) in [
        ("py-peer", &py_out),
        ("py-peer-failing", &py_fail_out),
        ("node-peer", &node_out),
    ] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} ({versions}) failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!(
                "\"config_hash\": \"{}\"",
                hex::encode(&config.config_hash)
            )) || stdout.contains(&format!(
                "\"config_hash\":\"{}\"",
                hex::encode(&config.config_hash)
            )),
            "{name} did not print the pushed config:\n{stdout}"
        );
    }
    let state = server.state();
    for (name, expected) in [
        ("py-peer", "APPLIED"),
        ("node-peer", "APPLIED"),
        ("py-peer-failing", "FAILED"),
    ] {
        let agent =
            agent_named(&state, name).unwrap_or_else(|| panic!("the server never saw {name}"));
        let statuses = statuses_for(agent, &config.config_hash);
        assert_eq!(
            statuses.last().map(|(s, _)| *s),
            Some(expected),
            "{name} ({versions}): {statuses:?}"
        );
        assert!(
            agent.disconnected || name == "node-peer",
            "{name} sent no AgentDisconnect"
        );
    }
    // The Python client also echoes the config as its effective config.
    let py = agent_named(&state, "py-peer").unwrap();
    assert!(common::effective_yaml(py).is_some_and(|y| y.contains("/var/log/peer/")));
}
