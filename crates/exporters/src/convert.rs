//! Entries → an OTLP `ExportLogsServiceRequest`.

use centimane_core::{Entry, Map, Timestamp, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Builds the OTLP request for `entries` in one pass.
///
/// Grouping: entries whose resource maps are equal (same keys and values, in any order)
/// share one `ResourceLogs`, in the order the resources were first seen; inside it, entries
/// with the same `scope_name` share one `ScopeLogs`, in first-seen order; records keep their
/// relative order within a scope. A resource holding a NaN never equals anything (NaN ≠
/// NaN), so each such entry gets a `ResourceLogs` of its own: nothing is lost, only grouping.
pub fn to_otlp_request(entries: &[Entry]) -> ExportLogsServiceRequest {
    let mut groups: Vec<Group> = Vec::new();
    // Entries of a batch usually share their resource and scope: try the previous entry's
    // group first, before scanning.
    let mut last: Option<usize> = None;
    for entry in entries {
        let found = last
            .filter(|&i| groups.get(i).is_some_and(|g| *g.resource == entry.resource))
            .or_else(|| groups.iter().position(|g| *g.resource == entry.resource));
        let index = match found {
            Some(i) => i,
            None => {
                groups.push(Group::new(&entry.resource));
                groups.len() - 1
            }
        };
        last = Some(index);
        if let Some(group) = groups.get_mut(index) {
            group.push(entry);
        }
    }
    ExportLogsServiceRequest {
        resource_logs: groups.into_iter().map(|g| g.logs).collect(),
    }
}

/// One `ResourceLogs` being built, with the map it was made from (for grouping).
struct Group<'a> {
    resource: &'a Map,
    logs: ResourceLogs,
    last_scope: usize,
}

impl<'a> Group<'a> {
    fn new(resource: &'a Map) -> Self {
        Group {
            resource,
            logs: ResourceLogs {
                resource: Some(Resource {
                    attributes: key_values(resource),
                    dropped_attributes_count: 0,
                    entity_refs: Vec::new(),
                }),
                scope_logs: Vec::new(),
                schema_url: String::new(),
            },
            last_scope: 0,
        }
    }

    fn push(&mut self, entry: &Entry) {
        let scopes = &mut self.logs.scope_logs;
        let is_named = |s: &ScopeLogs| scope_name(s) == entry.scope_name;
        let index = if scopes.get(self.last_scope).is_some_and(is_named) {
            self.last_scope
        } else if let Some(i) = scopes.iter().position(is_named) {
            i
        } else {
            scopes.push(ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: entry.scope_name.to_string(),
                    version: String::new(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                log_records: Vec::new(),
                schema_url: String::new(),
            });
            scopes.len() - 1
        };
        self.last_scope = index;
        if let Some(scope) = scopes.get_mut(index) {
            scope.log_records.push(log_record(entry));
        }
    }
}

fn scope_name(scope: &ScopeLogs) -> &str {
    scope.scope.as_ref().map_or("", |s| s.name.as_str())
}

/// One entry as a `LogRecord` (its resource and scope are carried by the enclosing groups).
pub(crate) fn log_record(entry: &Entry) -> LogRecord {
    LogRecord {
        time_unix_nano: entry.timestamp.map_or(0, unix_nanos),
        observed_time_unix_nano: unix_nanos(entry.observed_timestamp),
        severity_number: i32::from(entry.severity),
        severity_text: entry.severity_text.to_string(),
        body: Some(any_value(&entry.body)),
        attributes: key_values(&entry.attributes),
        dropped_attributes_count: 0,
        flags: entry.trace_flags.first().map_or(0, |&b| u32::from(b)),
        trace_id: entry.trace_id.clone(),
        span_id: entry.span_id.clone(),
        event_name: String::new(),
    }
}

/// Nanoseconds since the Unix epoch; OTLP's field is unsigned, so instants before 1970
/// become 0 ("unknown") and instants past 2554 saturate.
fn unix_nanos(ts: Timestamp) -> u64 {
    u64::try_from(ts.as_nanosecond().max(0)).unwrap_or(u64::MAX)
}

fn key_values(map: &Map) -> Vec<KeyValue> {
    map.iter()
        .map(|(key, value)| KeyValue {
            key: key.to_string(),
            value: Some(any_value(value)),
            key_strindex: 0,
        })
        .collect()
}

/// `Value` → `AnyValue`; `Null` is the empty AnyValue (no value set).
pub(crate) fn any_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::Int(i) => Some(V::IntValue(*i)),
        Value::Double(d) => Some(V::DoubleValue(*d)),
        Value::Str(s) => Some(V::StringValue(s.to_string())),
        Value::Bytes(b) => Some(V::BytesValue(b.to_vec())),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        Value::Map(map) => Some(V::KvlistValue(KeyValueList {
            values: key_values(map),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use any_value::Value as V;

    fn any(v: Value) -> Option<V> {
        any_value(&v).value
    }

    #[test]
    fn scalars() {
        assert_eq!(any(Value::Null), None);
        assert_eq!(any(Value::Bool(true)), Some(V::BoolValue(true)));
        assert_eq!(any(Value::Int(-7)), Some(V::IntValue(-7)));
        assert_eq!(any(Value::Double(0.25)), Some(V::DoubleValue(0.25)));
        assert_eq!(any(Value::from("hi")), Some(V::StringValue("hi".into())));
        assert_eq!(
            any(Value::Bytes(vec![0, 255].into())),
            Some(V::BytesValue(vec![0, 255]))
        );
    }

    #[test]
    fn arrays_and_maps_nest() {
        let inner: Map = [("k".into(), Value::Int(1))].into_iter().collect();
        let v = Value::Array(Box::new(vec![
            Value::from("a"),
            Value::Map(Box::new(inner)),
            Value::Null,
        ]));
        let want = V::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(V::StringValue("a".into())),
                },
                AnyValue {
                    value: Some(V::KvlistValue(KeyValueList {
                        values: vec![KeyValue {
                            key: "k".into(),
                            value: Some(AnyValue {
                                value: Some(V::IntValue(1)),
                            }),
                            key_strindex: 0,
                        }],
                    })),
                },
                AnyValue { value: None },
            ],
        });
        assert_eq!(any(v), Some(want));
    }

    #[test]
    fn map_keys_keep_their_order() {
        let m: Map = [("z", 1), ("a", 2), ("m", 3)]
            .into_iter()
            .map(|(k, v)| (k.into(), Value::Int(v)))
            .collect();
        let Some(V::KvlistValue(list)) = any(Value::Map(Box::new(m))) else {
            panic!("not a kvlist");
        };
        let keys: Vec<_> = list.values.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    fn entry(resource: &str, scope: &str, body: &str) -> Entry {
        let mut e = Entry::new(Value::from(body));
        if !resource.is_empty() {
            e.resource.insert("host".into(), Value::from(resource));
        }
        e.scope_name = scope.into();
        e
    }

    fn bodies(logs: &ScopeLogs) -> Vec<String> {
        logs.log_records
            .iter()
            .map(|r| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(V::StringValue(s)) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn groups_by_resource_then_scope_in_first_seen_order() {
        let entries = [
            entry("b", "s1", "1"),
            entry("a", "s2", "2"),
            entry("b", "s2", "3"),
            entry("b", "s1", "4"),
            entry("a", "s2", "5"),
            entry("", "", "6"),
        ];
        let req = to_otlp_request(&entries);
        assert_eq!(req.resource_logs.len(), 3);
        let host = |rl: &ResourceLogs| {
            rl.resource
                .as_ref()
                .and_then(|r| r.attributes.first())
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone())
        };
        assert_eq!(
            host(&req.resource_logs[0]),
            Some(V::StringValue("b".into()))
        );
        assert_eq!(
            host(&req.resource_logs[1]),
            Some(V::StringValue("a".into()))
        );
        assert_eq!(host(&req.resource_logs[2]), None);

        let b = &req.resource_logs[0].scope_logs;
        assert_eq!(b.iter().map(scope_name).collect::<Vec<_>>(), ["s1", "s2"]);
        assert_eq!(bodies(&b[0]), ["1", "4"]);
        assert_eq!(bodies(&b[1]), ["3"]);
        let a = &req.resource_logs[1].scope_logs;
        assert_eq!(a.len(), 1);
        assert_eq!(bodies(&a[0]), ["2", "5"]);
        assert_eq!(scope_name(&req.resource_logs[2].scope_logs[0]), "");
    }

    #[test]
    fn resources_with_the_same_keys_in_another_order_are_equal() {
        let mut x = entry("", "", "1");
        x.resource.insert("a".into(), Value::Int(1));
        x.resource.insert("b".into(), Value::Int(2));
        let mut y = entry("", "", "2");
        y.resource.insert("b".into(), Value::Int(2));
        y.resource.insert("a".into(), Value::Int(1));
        assert_eq!(to_otlp_request(&[x, y]).resource_logs.len(), 1);
    }

    #[test]
    fn record_fields() {
        let mut e = Entry::new(Value::from("msg"));
        e.timestamp = Some(Timestamp::from_nanosecond(1_795_467_600_123_456_789).unwrap());
        e.observed_timestamp = Timestamp::from_nanosecond(1_795_467_600_200_000_000).unwrap();
        e.severity = 9;
        e.severity_text = "INFO".into();
        e.attributes.insert("n".into(), Value::Int(5));
        e.trace_id = (1..=16).collect();
        e.span_id = (1..=8).collect();
        e.trace_flags = vec![1, 7];
        let r = log_record(&e);
        assert_eq!(r.time_unix_nano, 1_795_467_600_123_456_789);
        assert_eq!(r.observed_time_unix_nano, 1_795_467_600_200_000_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (9, "INFO"));
        assert_eq!(r.attributes[0].key, "n");
        assert_eq!(r.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(r.span_id, (1..=8).collect::<Vec<u8>>());
        assert_eq!(r.flags, 1);
    }

    #[test]
    fn no_trace_context_and_no_timestamp() {
        let mut e = Entry::new(Value::Null);
        e.observed_timestamp = Timestamp::from_second(-5).unwrap();
        let r = log_record(&e);
        assert_eq!(r.time_unix_nano, 0);
        assert_eq!(r.observed_time_unix_nano, 0, "before 1970 clamps to 0");
        assert!(r.trace_id.is_empty() && r.span_id.is_empty());
        assert_eq!(r.flags, 0);
        assert_eq!(r.body, Some(AnyValue { value: None }));
    }

    #[test]
    fn empty_input_gives_an_empty_request() {
        assert!(to_otlp_request(&[]).resource_logs.is_empty());
    }
}
