//! The AgentDescription: who this agent is (identifying) and where it runs
//! (non-identifying), with OpenTelemetry resource semantic conventions.

use crate::config::AttributeValue;
use crate::proto::{AgentDescription, AnyValue, KeyValue, any_value};
use uuid::Uuid;

/// The name every Centimane agent reports as `service.name`.
pub const SERVICE_NAME: &str = "centimane";

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

/// Builds the description. `service.instance.id` is the instance UID, so it changes when the
/// server assigns a new one. Configured attributes come last and win over the built-in
/// host facts of the same name (the operator knows better, e.g. a host name behind NAT).
pub(crate) fn describe(uid: Uuid, extra: &[(String, AttributeValue)]) -> AgentDescription {
    let identifying = vec![
        string("service.name", SERVICE_NAME),
        string("service.version", env!("CARGO_PKG_VERSION")),
        string("service.instance.id", uid.to_string()),
    ];
    let mut non_identifying = vec![
        string("os.type", os_type()),
        string("os.description", os_description()),
        string("host.arch", host_arch()),
    ];
    if let Some(name) = hostname::get().ok().and_then(|n| n.into_string().ok()) {
        non_identifying.push(string("host.name", name));
    }
    for (key, value) in extra {
        non_identifying.retain(|existing| existing.key != *key);
        let value = match value {
            AttributeValue::String(s) => any_value::Value::StringValue(s.clone()),
            AttributeValue::Bool(b) => any_value::Value::BoolValue(*b),
            AttributeValue::Int(i) => any_value::Value::IntValue(*i),
            AttributeValue::Double(d) => any_value::Value::DoubleValue(*d),
        };
        non_identifying.push(kv(key, value));
    }
    AgentDescription {
        identifying_attributes: identifying,
        non_identifying_attributes: non_identifying,
    }
}

/// `os.type` values from the semantic conventions.
fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "illumos" | "solaris" => "solaris",
        other => other,
    }
}

/// `host.arch` values from the semantic conventions.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm32",
        "x86" => "x86",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc32",
        "s390x" => "s390x",
        other => other,
    }
}

/// The distribution's name and the kernel release where they can be read, e.g.
/// `Debian GNU/Linux 12 (bookworm) (Linux 6.1.0)`; the OS type otherwise.
fn os_description() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_owned());
    match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p} (Linux {k})"),
        (Some(p), None) => p,
        (None, Some(k)) => format!("Linux {k}"),
        (None, None) => os_type().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        list.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn identifying_and_host_attributes() {
        let uid = Uuid::now_v7();
        let d = describe(
            uid,
            &[
                ("env".into(), AttributeValue::String("prod".into())),
                ("host.arch".into(), AttributeValue::String("custom".into())),
            ],
        );
        let id = &d.identifying_attributes;
        assert_eq!(
            value(id, "service.name"),
            Some(&any_value::Value::StringValue("centimane".into()))
        );
        assert_eq!(
            value(id, "service.instance.id"),
            Some(&any_value::Value::StringValue(uid.to_string()))
        );
        assert!(value(id, "service.version").is_some());
        let non = &d.non_identifying_attributes;
        for key in ["os.type", "os.description", "host.name"] {
            assert!(value(non, key).is_some(), "{key}");
        }
        assert_eq!(
            value(non, "host.arch"),
            Some(&any_value::Value::StringValue("custom".into()))
        );
        assert_eq!(non.iter().filter(|kv| kv.key == "host.arch").count(), 1);
        assert_eq!(
            value(non, "env"),
            Some(&any_value::Value::StringValue("prod".into()))
        );
    }
}
