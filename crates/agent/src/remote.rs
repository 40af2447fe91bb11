//! Remote configs (DESIGN §5): a remote config is a whole agent config in the same YAML
//! shape. It replaces the local `receivers`, `processors`, `exporters` and
//! `service.pipelines`; the local extensions (OpAMP and storage) and `service.extensions`
//! always stay, so a remote config can't cut the agent off its server, and an `opamp`
//! block inside a remote config is ignored.

use serde_json::{Map, Value};

/// Top-level sections a remote config supplies.
const REMOTE_SECTIONS: [&str; 3] = ["receivers", "processors", "exporters"];

fn parse_yaml(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_saphyr::from_str_with_options::<Value>(text, crate::config::yaml_options()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(format!("the {what} config must be a YAML mapping")),
        Err(e) => Err(format!(
            "the {what} config is not valid YAML: {}",
            e.to_string().lines().next().unwrap_or_default()
        )),
    }
}

/// The config to run: `local` with its pipelines replaced by `remote`'s (as YAML text).
pub fn merge(local: &str, remote: &str) -> Result<String, String> {
    let mut merged = parse_yaml(local, "local")?;
    let remote = parse_yaml(remote, "remote")?;
    for section in REMOTE_SECTIONS {
        match remote.get(section) {
            Some(v) => merged.insert(section.to_owned(), v.clone()),
            None => merged.remove(section),
        };
    }
    let remote_service = remote.get("service").and_then(Value::as_object);
    let service = merged
        .entry("service")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(service) = service {
        match remote_service.and_then(|s| s.get("pipelines")) {
            Some(p) => service.insert("pipelines".into(), p.clone()),
            None => service.remove("pipelines"),
        };
    }
    serde_saphyr::to_string(&Value::Object(merged)).map_err(|e| e.to_string())
}

/// Keys whose values are secrets in configs users write.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "authorization",
        "api_key",
        "apikey",
        "api-key",
        "key_file",
        "private_key",
        "bearer",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The config with secret values replaced (header values, passwords, tokens), for the
/// effective config reported to the management server.
pub fn redact(text: &str) -> String {
    fn walk(v: &mut Value, in_headers: bool) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if (in_headers || is_secret(k)) && !v.is_object() {
                        *v = Value::String("[REDACTED]".into());
                    } else {
                        walk(v, k == "headers");
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, false)),
            _ => {}
        }
    }
    match serde_saphyr::from_str_with_options::<Value>(text, crate::config::yaml_options()) {
        Ok(mut v) => {
            walk(&mut v, false);
            serde_saphyr::to_string(&v).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "extensions:\n  file_storage:\n    directory: /var/lib/c\n  opamp:\n    server:\n      ws:\n        endpoint: ws://x\nreceivers:\n  filelog:\n    include: [/a]\nexporters:\n  debug:\nservice:\n  extensions: [file_storage, opamp]\n  pipelines:\n    logs:\n      receivers: [filelog]\n      exporters: [debug]\n";

    #[test]
    fn remote_replaces_pipelines_and_keeps_local_extensions() {
        let remote = "extensions:\n  opamp:\n    server:\n      ws:\n        endpoint: ws://evil\nreceivers:\n  filelog/b:\n    include: [/b]\nexporters:\n  file:\n    path: /tmp/x\nservice:\n  extensions: []\n  pipelines:\n    logs/b:\n      receivers: [filelog/b]\n      exporters: [file]\n";
        let merged: Value = serde_saphyr::from_str(&merge(LOCAL, remote).unwrap()).unwrap();
        assert_eq!(
            merged["extensions"]["opamp"]["server"]["ws"]["endpoint"],
            "ws://x"
        );
        assert_eq!(
            merged["service"]["extensions"],
            serde_json::json!(["file_storage", "opamp"])
        );
        assert!(merged["receivers"].get("filelog").is_none());
        assert_eq!(merged["receivers"]["filelog/b"]["include"][0], "/b");
        assert!(merged["service"]["pipelines"].get("logs").is_none());
        assert!(merged["service"]["pipelines"].get("logs/b").is_some());
    }

    #[test]
    fn bad_remote_yaml_is_an_error() {
        assert!(merge(LOCAL, "receivers: [").is_err());
        assert!(merge(LOCAL, "- a list").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let text = "exporters:\n  otlp:\n    endpoint: h:1\n    headers:\n      x-tenant: acme\n      authorization: Bearer s3cret\n    tls:\n      key_file: /k.pem\n";
        let out = redact(text);
        assert!(
            !out.contains("s3cret") && !out.contains("acme") && !out.contains("/k.pem"),
            "{out}"
        );
        assert!(out.contains("h:1"), "{out}");
    }
}
