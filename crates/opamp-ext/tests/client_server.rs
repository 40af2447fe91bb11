//! The client against the crate's test server, over WebSocket and plain HTTP, with a fake
//! agent. Loopback only; every wait is bounded.

mod common;

use bytes::Bytes;
use centimane_opamp_ext::proto::{
    AgentCapabilities, CustomMessage, Header, Headers, TelemetryConnectionSettings,
};
use centimane_opamp_ext::test_server::{TestServer, Via, yaml_config};
use centimane_opamp_ext::{SNAPSHOT_CAPABILITY, last_remote_config, start};
use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn server() -> TestServer {
    TestServer::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

async fn reports_description_effective_config_and_health(kind: Kind) {
    let server = server().await;
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, kind),
        dir.path().into(),
        fake.clone(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    let record = server
        .wait_for(WAIT, "effective config and health", |s| {
            let r = s.agents.get(&uid)?;
            (r.effective_config.is_some() && r.health.is_some()).then(|| r.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        record.via,
        if kind == Kind::Ws {
            Via::WebSocket
        } else {
            Via::Http
        }
    );
    assert_eq!(
        attribute(&record, "service.name").as_deref(),
        Some("centimane")
    );
    assert_eq!(
        attribute(&record, "service.instance.id"),
        Some(uid.to_string())
    );
    assert_eq!(
        attribute(&record, "deployment.environment").as_deref(),
        Some("test")
    );
    for key in [
        "service.version",
        "host.name",
        "os.type",
        "os.description",
        "host.arch",
    ] {
        assert!(attribute(&record, key).is_some(), "{key} missing");
    }
    assert_eq!(uid.get_version_num(), 7, "instance uid is a UUIDv7");
    assert_eq!(effective_yaml(&record).as_deref(), Some(INITIAL_CONFIG));
    let file = &record
        .effective_config
        .as_ref()
        .unwrap()
        .config_map
        .as_ref()
        .unwrap()
        .config_map[""];
    assert_eq!(file.content_type, "text/yaml");
    let health = record.health.as_ref().unwrap();
    assert!(health.healthy);
    assert!(health.component_health_map["pipeline:logs"].healthy);
    let caps = record.capabilities;
    for bit in [
        AgentCapabilities::ReportsStatus,
        AgentCapabilities::AcceptsRemoteConfig,
        AgentCapabilities::ReportsEffectiveConfig,
        AgentCapabilities::ReportsHealth,
        AgentCapabilities::ReportsRemoteConfig,
        AgentCapabilities::ReportsHeartbeat,
    ] {
        assert_ne!(caps & bit as u64, 0, "{bit:?} not declared");
    }
    let custom = record.custom_capabilities.as_ref().unwrap();
    assert_eq!(custom.capabilities, vec![SNAPSHOT_CAPABILITY.to_owned()]);
    assert!(
        record
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer test-token"),
        "{:?}",
        record.headers
    );
    if kind == Kind::Http {
        let uid_header = record
            .headers
            .iter()
            .find(|(k, _)| k == "opamp-instance-uid");
        assert_eq!(uid_header.map(|(_, v)| v.clone()), Some(uid.to_string()));
    }
    // A health change is reported on notify, alone (compression).
    fake.set_health(false, "exporter otlp: connection refused", 2);
    handle.notify_changed();
    let msg = server
        .wait_for(WAIT, "the unhealthy report", |s| {
            let r = s.agents.get(&uid)?;
            r.messages
                .iter()
                .find(|m| m.msg.health.as_ref().is_some_and(|h| !h.healthy))
                .map(|m| m.msg.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        msg.health.unwrap().last_error,
        "exporter otlp: connection refused"
    );
    assert!(msg.agent_description.is_none() && msg.effective_config.is_none());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_reports_description_effective_config_and_health() {
    reports_description_effective_config_and_health(Kind::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reports_description_effective_config_and_health() {
    reports_description_effective_config_and_health(Kind::Http).await;
}

async fn wait_statuses(
    server: &TestServer,
    uid: Uuid,
    hash: &[u8],
    last: &str,
) -> Vec<(&'static str, String)> {
    server
        .wait_for(
            WAIT,
            &format!("status {last} for {}", hex::encode(hash)),
            |s| {
                let statuses = statuses_for(s.agents.get(&uid)?, hash);
                (statuses.last().map(|(s, _)| *s) == Some(last)).then_some(statuses)
            },
        )
        .await
        .unwrap()
}

async fn remote_config_lifecycle(kind: Kind) {
    let server = server().await;
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, kind),
        dir.path().into(),
        fake.clone(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;

    // A good config: APPLYING, then APPLIED with the new effective config.
    let good = yaml_config(&good_yaml(1));
    server.push_config(uid, good.clone()).unwrap();
    let statuses = wait_statuses(&server, uid, &good.config_hash, "APPLIED").await;
    assert_eq!(
        statuses,
        vec![("APPLYING", String::new()), ("APPLIED", String::new())]
    );
    let expected = good_yaml(1);
    server
        .wait_for(WAIT, "the new effective config", |s| {
            (effective_yaml(s.agents.get(&uid)?)? == expected).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(fake.applied(), vec![good_yaml(1)]);
    assert_eq!(last_remote_config(dir.path()), Some(good_yaml(1)));

    // The same hash again: nothing applied, nothing reported (only heartbeats/polls).
    let before = server.agent(uid).unwrap().messages.len();
    server.push_config(uid, good.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let record = server.agent(uid).unwrap();
    assert_eq!(fake.applied().len(), 1);
    assert_eq!(statuses_for(&record, &good.config_hash).len(), 2);
    let since: Vec<_> = record.messages.iter().skip(before).collect();
    assert!(
        since.iter().all(|m| m.is_heartbeat()),
        "the client answered a no-op: {since:?}"
    );

    // Refused by the agent: FAILED with its message; the last good config stays.
    let refused = yaml_config("receivers:\n  filelog:\n    include: [/var/log/refuse-me.log]\n");
    server.push_config(uid, refused.clone()).unwrap();
    let statuses = wait_statuses(&server, uid, &refused.config_hash, "FAILED").await;
    assert_eq!(statuses[0].0, "APPLYING");
    assert!(
        statuses[1].1.contains("refuse-me is not a receiver"),
        "{statuses:?}"
    );

    // Outside the local allow policy: FAILED before the agent sees it.
    let outside = yaml_config("receivers:\n  filelog:\n    include: [/etc/shadow]\n");
    server.push_config(uid, outside.clone()).unwrap();
    let statuses = wait_statuses(&server, uid, &outside.config_hash, "FAILED").await;
    assert_eq!(
        statuses.len(),
        1,
        "no APPLYING for a refused config: {statuses:?}"
    );
    assert!(
        statuses[0].1.contains("/etc/shadow") && statuses[0].1.contains("include_globs"),
        "{statuses:?}"
    );
    let exporter = yaml_config("exporters:\n  otlp:\n    endpoint: evil.example.com:4317\n");
    server.push_config(uid, exporter.clone()).unwrap();
    let statuses = wait_statuses(&server, uid, &exporter.config_hash, "FAILED").await;
    assert!(statuses[0].1.contains("exporter_endpoints"), "{statuses:?}");

    // An empty config is refused.
    let empty = yaml_config("");
    server.push_config(uid, empty.clone()).unwrap();
    let statuses = wait_statuses(&server, uid, &empty.config_hash, "FAILED").await;
    assert!(statuses[0].1.contains("empty"), "{statuses:?}");

    assert_eq!(fake.applied(), vec![good_yaml(1)]);
    assert_eq!(last_remote_config(dir.path()), Some(good_yaml(1)));
    let record = server.agent(uid).unwrap();
    assert_eq!(effective_yaml(&record), Some(good_yaml(1)));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_remote_config_lifecycle() {
    remote_config_lifecycle(Kind::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_remote_config_lifecycle() {
    remote_config_lifecycle(Kind::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_apply_is_failed_at_the_timeout_then_reported_when_done() {
    let server = server().await;
    let fake = Fake::new();
    fake.set_apply_delay(Duration::from_millis(1200));
    let dir = tempfile::tempdir().unwrap();
    let mut config = client_config(&server, Kind::Ws);
    config.config_apply_timeout = Duration::from_millis(300);
    let handle = start(config, dir.path().into(), fake.clone()).unwrap();
    let uid = agent_uid(&server).await;
    let slow = yaml_config(&good_yaml(2));
    server.push_config(uid, slow.clone()).unwrap();
    let statuses = wait_statuses(&server, uid, &slow.config_hash, "APPLIED").await;
    let names: Vec<_> = statuses.iter().map(|(s, _)| *s).collect();
    assert_eq!(names, ["APPLYING", "FAILED", "APPLIED"]);
    assert!(statuses[1].1.contains("timeout"), "{statuses:?}");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_gap_brings_a_full_report() {
    let server = server().await;
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = client_config(&server, Kind::Ws);
    config.heartbeat_interval = Duration::ZERO;
    let handle = start(config, dir.path().into(), fake.clone()).unwrap();
    let uid = agent_uid(&server).await;
    server.lose_next_message(uid).unwrap();
    fake.set_health(false, "lost on the way", 2);
    handle.notify_changed();
    server
        .wait_for(WAIT, "the lost message", |s| {
            (s.agents.get(&uid)?.lost_messages == 1).then_some(())
        })
        .await
        .unwrap();
    fake.set_health(true, "", 3);
    handle.notify_changed();
    let record = server
        .wait_for(WAIT, "a full report after the gap", |s| {
            let r = s.agents.get(&uid)?;
            let full = r.messages.iter().skip(1).any(|m| {
                m.msg.agent_description.is_some()
                    && m.msg.effective_config.is_some()
                    && m.msg.health.is_some()
                    && m.msg.remote_config_status.is_some()
                    && m.msg.custom_capabilities.is_some()
            });
            full.then(|| r.clone())
        })
        .await
        .unwrap();
    assert_eq!(record.full_state_requests, 1);
    let seqs: Vec<u64> = record.messages.iter().map(|m| m.msg.sequence_num).collect();
    assert_eq!(
        seqs,
        [0, 2, 3],
        "message 1 was lost; 2 is the compressed one, 3 the full one"
    );
    // Asked explicitly, the client answers with a full report too, and then stays quiet.
    server.request_full_state(uid).unwrap();
    server
        .wait_for(WAIT, "a second full report", |s| {
            (s.agents.get(&uid)?.messages.len() == 4).then_some(())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = server.agent(uid).unwrap();
    assert_eq!(record.messages.len(), 4, "no ping-pong");
    assert!(record.messages[3].msg.agent_description.is_some());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_when_nothing_changed() {
    let server = server().await;
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = client_config(&server, Kind::Ws);
    config.heartbeat_interval = Duration::ZERO;
    let handle = start(config, dir.path().into(), fake.clone()).unwrap();
    let uid = agent_uid(&server).await;
    handle.notify_changed();
    handle.notifier().notify_changed();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.agent(uid).unwrap().messages.len(), 1);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_jittered_backoff_after_a_server_restart() {
    let server = server().await;
    let addr = server.addr();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let handles: Vec<_> = dirs
        .iter()
        .map(|d| {
            start(
                client_config(&server, Kind::Ws),
                d.path().into(),
                Fake::new(),
            )
            .unwrap()
        })
        .collect();
    server
        .wait_for(WAIT, "three agents", |s| {
            (s.agents.len() == 3).then_some(())
        })
        .await
        .unwrap();
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let server = TestServer::start(addr)
        .await
        .expect("the port is free again");
    let times = server
        .wait_for(WAIT, "three reconnected agents", |s| {
            let times: Vec<Instant> = s
                .agents
                .values()
                .filter_map(|a| a.connections.first().copied())
                .collect();
            (times.len() == 3).then_some(times)
        })
        .await
        .unwrap();
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    assert!(
        last - first > Duration::from_millis(5),
        "three clients reconnected within {:?}: no jitter",
        last - first
    );
    // The first message after reconnecting is a full report.
    let state = server.state();
    for agent in state.agents.values() {
        let m = &agent.messages[0].msg;
        assert!(
            m.agent_description.is_some() && m.effective_config.is_some() && m.health.is_some()
        );
        assert!(
            m.sequence_num > 0,
            "sequence numbers continue across reconnects"
        );
    }
    for h in handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_polls_arrive() {
    for kind in [Kind::Ws, Kind::Http] {
        let server = server().await;
        let dir = tempfile::tempdir().unwrap();
        let handle = start(client_config(&server, kind), dir.path().into(), Fake::new()).unwrap();
        let uid = agent_uid(&server).await;
        let beats = server
            .wait_for(WAIT, "four heartbeats", |s| {
                let beats: Vec<Instant> = s
                    .agents
                    .get(&uid)?
                    .messages
                    .iter()
                    .filter(|m| m.is_heartbeat())
                    .map(|m| m.at)
                    .collect();
                (beats.len() >= 4).then_some(beats)
            })
            .await
            .unwrap();
        // WebSocket heartbeats every 300ms, HTTP polls every 200ms: paced, never a burst.
        // (The average, since arrival times jitter on a busy machine.)
        let interval = if kind == Kind::Ws { 300 } else { 200 };
        let average = (beats[beats.len() - 1] - beats[0]) / (beats.len() as u32 - 1);
        assert!(
            average >= Duration::from_millis(interval * 3 / 4),
            "{kind:?}: {average:?}"
        );
        handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_disconnect_on_shutdown() {
    for kind in [Kind::Ws, Kind::Http] {
        let server = server().await;
        let dir = tempfile::tempdir().unwrap();
        let handle = start(client_config(&server, kind), dir.path().into(), Fake::new()).unwrap();
        let uid = agent_uid(&server).await;
        handle.shutdown().await;
        let record = server
            .wait_for(WAIT, "AgentDisconnect", |s| {
                let r = s.agents.get(&uid)?;
                r.disconnected.then(|| r.clone())
            })
            .await
            .unwrap();
        let last = &record.messages.back().unwrap().msg;
        assert!(last.agent_disconnect.is_some(), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_uid_is_persisted_and_replaced_by_the_server() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    let first = agent_uid(&server).await;
    handle.shutdown().await;

    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    server
        .wait_for(WAIT, "the same uid after a restart", |s| {
            let r = s.agents.get(&first)?;
            (r.connections.len() == 2 && !r.disconnected).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(server.state().agents.len(), 1);

    let assigned = Uuid::now_v7();
    server.assign_instance_uid(first, assigned).unwrap();
    let record = server
        .wait_for(WAIT, "messages under the assigned uid", |s| {
            let r = s.agents.get(&assigned)?;
            let last = r.messages.back()?;
            (last.msg.instance_uid.as_ref() == assigned.as_bytes()).then(|| r.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        attribute(&record, "service.instance.id"),
        Some(assigned.to_string())
    );
    handle.shutdown().await;

    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    server
        .wait_for(WAIT, "the assigned uid after a restart", |s| {
            let r = s.agents.get(&assigned)?;
            (r.connections.len() == 3 && !r.disconnected).then_some(())
        })
        .await
        .unwrap();
    assert!(!server.state().agents.contains_key(&first));
    handle.shutdown().await;
}

async fn snapshot_round_trip(kind: Kind) {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(client_config(&server, kind), dir.path().into(), Fake::new()).unwrap();
    let uid = agent_uid(&server).await;
    let request = |id: u32, point: &str| CustomMessage {
        capability: SNAPSHOT_CAPABILITY.into(),
        r#type: "request".into(),
        data: Bytes::from(json!({"id": id, "point": point, "n": 2}).to_string()),
    };
    server
        .send_custom_message(uid, request(7, "receiver:filelog"))
        .unwrap();
    server
        .send_custom_message(uid, request(8, "receiver:nope"))
        .unwrap();
    let answers = server
        .wait_for(WAIT, "two snapshot answers", |s| {
            let r = s.agents.get(&uid)?;
            (r.custom_messages.len() == 2).then(|| r.custom_messages.clone())
        })
        .await
        .unwrap();
    let by_id = |id: u64| {
        answers
            .iter()
            .map(|m| (m, serde_json::from_slice::<Value>(&m.data).unwrap()))
            .find(|(_, v)| v["id"] == id)
            .unwrap()
    };
    let (ok, data) = by_id(7);
    assert_eq!(
        (ok.capability.as_str(), ok.r#type.as_str()),
        (SNAPSHOT_CAPABILITY, "response")
    );
    let records = &data["records"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    assert_eq!(records.as_array().map(Vec::len), Some(2), "{data}");
    let (err, data) = by_id(8);
    assert_eq!(err.r#type, "error");
    assert!(
        data["error"].as_str().unwrap().contains("receiver:nope"),
        "{data}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_snapshot_round_trip() {
    snapshot_round_trip(Kind::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_snapshot_round_trip() {
    snapshot_round_trip(Kind::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_unavailable_with_retry_info_is_honoured() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    let asked = Instant::now();
    server
        .reply_unavailable(uid, Duration::from_secs(1))
        .unwrap();
    let record = server
        .wait_for(WAIT, "a reconnect after Unavailable", |s| {
            let r = s.agents.get(&uid)?;
            (r.connections.len() == 2).then(|| r.clone())
        })
        .await
        .unwrap();
    assert!(
        record.connections[1] - asked >= Duration::from_secs(1),
        "reconnected too early"
    );
    assert!(
        record
            .messages
            .iter()
            .any(|m| m.msg.agent_disconnect.is_some()),
        "AgentDisconnect before reconnecting"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_unavailable_with_retry_info_is_honoured() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Http),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    let asked = Instant::now();
    server
        .reply_unavailable(uid, Duration::from_secs(1))
        .unwrap();
    // Polls come every 200ms; only the wait the server asked for makes a 1s gap.
    server
        .wait_for(WAIT, "a 1s pause in the polls, then polls again", |s| {
            let times: Vec<Instant> = s
                .agents
                .get(&uid)?
                .messages
                .iter()
                .map(|m| m.at)
                .filter(|at| *at > asked)
                .collect();
            times
                .windows(2)
                .any(|w| w[1] - w[0] >= Duration::from_secs(1))
                .then_some(())
        })
        .await
        .unwrap();
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_with_retry_after_is_honoured() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Http),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    server.throttle(1, Duration::from_secs(1));
    let refused = server
        .wait_for(WAIT, "the 503", |s| s.throttled.first().copied())
        .await
        .unwrap();
    let next = server
        .wait_for(WAIT, "a request after the 503", |s| {
            s.agents
                .get(&uid)?
                .messages
                .iter()
                .map(|m| m.at)
                .find(|at| *at > refused)
        })
        .await
        .unwrap();
    assert!(
        next - refused >= Duration::from_secs(1),
        "retried after {:?}",
        next - refused
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_upgrade_503_with_retry_after_is_honoured() {
    let server = server().await;
    server.throttle(1, Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    let state = server.state();
    assert_eq!(state.throttled.len(), 1, "the first upgrade was refused");
    let connected = state.agents[&uid].connections[0];
    assert!(
        connected - state.throttled[0] >= Duration::from_secs(1),
        "reconnected after {:?}",
        connected - state.throttled[0]
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_server_messages_are_ignored() {
    let server = server().await;
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        fake.clone(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    for garbage in [
        vec![0, 0xff, 0xff, 0xff],
        vec![5, 1, 2],
        vec![],
        vec![0, 0x1a, 0x40],
    ] {
        server.send_raw(uid, garbage).unwrap();
    }
    let good = yaml_config(&good_yaml(3));
    server.push_config(uid, good.clone()).unwrap();
    wait_statuses(&server, uid, &good.config_hash, "APPLIED").await;
    assert_eq!(
        server.agent(uid).unwrap().connections.len(),
        1,
        "still the first connection"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_good_config_survives_a_restart() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        Fake::new(),
    )
    .unwrap();
    let uid = agent_uid(&server).await;
    let good = yaml_config(&good_yaml(4));
    server.push_config(uid, good.clone()).unwrap();
    wait_statuses(&server, uid, &good.config_hash, "APPLIED").await;
    handle.shutdown().await;
    assert_eq!(last_remote_config(dir.path()), Some(good_yaml(4)));

    // After a restart the client reports the persisted status, so the server sees the
    // config is in place and does not offer it again.
    let fake = Fake::new();
    let handle = start(
        client_config(&server, Kind::Ws),
        dir.path().into(),
        fake.clone(),
    )
    .unwrap();
    server
        .wait_for(WAIT, "the second connection", |s| {
            (s.agents.get(&uid)?.connections.len() == 2).then_some(())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let record = server.agent(uid).unwrap();
    let status = record.remote_config_status.unwrap();
    assert_eq!(status.last_remote_config_hash, good.config_hash);
    assert_eq!(status_name(status.status), "APPLIED");
    assert!(
        fake.applied().is_empty(),
        "the same config was applied again"
    );
    handle.shutdown().await;
}

/// Every OTLP/HTTP metrics request a tiny sink received: authorization header and body.
type Pushes = Arc<Mutex<Vec<(Option<String>, ExportMetricsServiceRequest)>>>;

async fn metrics_sink() -> (String, Pushes) {
    let pushes: Pushes = Arc::default();
    let store = pushes.clone();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let request = ExportMetricsServiceRequest::decode(body).expect("OTLP protobuf");
                    store.lock().unwrap().push((auth, request));
                    ""
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, pushes)
}

async fn wait_pushes(pushes: &Pushes, at_least: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pushes.lock().unwrap().len() < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {at_least} own-metrics pushes arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_go_where_the_server_offers_and_survive_a_restart() {
    let server = server().await;
    let (url, pushes) = metrics_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = client_config(&server, Kind::Ws);
        c.own_metrics_interval = Duration::from_secs(1);
        c
    };
    let handle = start(config(), dir.path().into(), Fake::new()).unwrap();
    let uid = agent_uid(&server).await;
    let declared = server.agent(uid).unwrap().capabilities;
    assert_ne!(
        declared & 0x40,
        0,
        "ReportsOwnMetrics declared: {declared:#x}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pushes.lock().unwrap().is_empty(),
        "nothing is sent before an offer"
    );

    let offer = |endpoint: &str| TelemetryConnectionSettings {
        destination_endpoint: endpoint.to_owned(),
        headers: Some(Headers {
            headers: vec![Header {
                key: "Authorization".into(),
                value: "Bearer metrics-token".into(),
            }],
        }),
        ..TelemetryConnectionSettings::default()
    };
    server.offer_own_metrics(uid, offer(&url)).unwrap();
    wait_pushes(&pushes, 2).await;
    {
        let got = pushes.lock().unwrap();
        let (auth, request) = &got[0];
        assert_eq!(auth.as_deref(), Some("Bearer metrics-token"));
        let rm = &request.resource_metrics[0];
        let resource: Vec<(String, String)> = rm
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
            .collect();
        let instance = resource
            .iter()
            .find(|(k, _)| k == "service.instance.id")
            .expect("service.instance.id in the resource");
        assert!(instance.1.contains(&uid.to_string()), "{instance:?}");
        let metric = &rm.scope_metrics[0].metrics[0];
        assert_eq!(metric.name, "fake_configs_applied");
    }

    // A bad offer is refused; metrics keep going to the destination in use.
    server
        .offer_own_metrics(uid, offer("ftp://nowhere/v1/metrics"))
        .unwrap();
    let before = pushes.lock().unwrap().len();
    wait_pushes(&pushes, before + 1).await;
    handle.shutdown().await;

    // Servers offer once: after a restart the persisted destination is used.
    let before = pushes.lock().unwrap().len();
    let handle = start(config(), dir.path().into(), Fake::new()).unwrap();
    wait_pushes(&pushes, before + 1).await;
    handle.shutdown().await;
}
