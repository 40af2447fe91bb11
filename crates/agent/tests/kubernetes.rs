//! A Kubernetes node's pod logs: CRI lines under `/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log`
//! parsed by the `container` operator, which also sets the `k8s.*` resource attributes
//! from the path — the DaemonSet setup in `deploy/kubernetes/daemonset.yaml`.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn cri_pod_logs_carry_k8s_resource_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let uid = "49cc7c1fd3702c40b2686ea7486091d6";
    let pod_dir = dir
        .path()
        .join("pods")
        .join(format!("shop_web-7d9f8_{uid}"))
        .join("nginx");
    std::fs::create_dir_all(&pod_dir).unwrap();
    std::fs::write(
        pod_dir.join("0.log"),
        "2024-05-01T12:00:00.000000001Z stdout F GET /index.html 200\n\
         2024-05-01T12:00:01.000000000Z stderr P split-\n\
         2024-05-01T12:00:01.100000000Z stderr F line\n",
    )
    .unwrap();
    let sink = Sink::start();
    let config = format!(
        r#"
receivers:
  filelog:
    include: ["{pods}/*/*/*.log"]
    start_at: beginning
    poll_interval: 50ms
    include_file_path: true
    operators:
      - type: container
processors:
  batch:
    timeout: 20ms
exporters:
  otlp:
    endpoint: http://{sink}
service:
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlp]
"#,
        pods = dir.path().join("pods").display(),
        sink = sink.addr,
    );
    let agent = Agent::start(dir.path(), &config);
    let got = sink.wait_for(2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.stop(), 0);
    let bodies: Vec<String> = got.iter().map(Received::body).collect();
    assert_eq!(
        bodies,
        ["GET /index.html 200", "split-line"],
        "CRI partial lines are recombined"
    );
    let r = &got[0];
    assert_eq!(r.record.time_unix_nano, 1_714_564_800_000_000_001);
    assert_eq!(r.attr("log.iostream").as_deref(), Some("stdout"));
    for (key, want) in [
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "web-7d9f8"),
        ("k8s.pod.uid", uid),
        ("k8s.container.name", "nginx"),
        ("k8s.container.restart_count", "0"),
    ] {
        assert_eq!(
            r.resource.get(key).map(String::as_str),
            Some(want),
            "{key} in {:?}",
            r.resource
        );
    }
}
