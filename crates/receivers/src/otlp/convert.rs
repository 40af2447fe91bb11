//! OTLP → entries: one [`Entry`] per `LogRecord`, carrying its resource's attributes and
//! its scope's name.
//!
//! What an `Entry` has no place for is not kept: scope versions and attributes, schema
//! URLs, `dropped_attributes_count`, `event_name`, and the 24 reserved high bits of
//! `flags` (the low 8 bits are the W3C trace flags and are kept).

use centimane_core::{Entry, Map, Timestamp, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

/// The entries of a request, in order.
pub(crate) fn to_entries(request: ExportLogsServiceRequest) -> Vec<Entry> {
    let observed_now = Timestamp::now();
    let mut entries = Vec::new();
    for resource_logs in request.resource_logs {
        let resource = resource_logs
            .resource
            .map(|r| to_map(r.attributes))
            .unwrap_or_default();
        for scope_logs in resource_logs.scope_logs {
            let scope_name = scope_logs.scope.map(|s| s.name).unwrap_or_default();
            for record in scope_logs.log_records {
                entries.push(to_entry(record, &resource, &scope_name, observed_now));
            }
        }
    }
    entries
}

fn to_entry(record: LogRecord, resource: &Map, scope_name: &str, now: Timestamp) -> Entry {
    let flags = (record.flags & 0xff) as u8;
    Entry {
        timestamp: timestamp(record.time_unix_nano),
        // The data model says it MUST be set once observed: a sender that left it unset
        // hands the record to us now.
        observed_timestamp: timestamp(record.observed_time_unix_nano).unwrap_or(now),
        body: record.body.map_or(Value::Null, to_value),
        attributes: to_map(record.attributes),
        resource: resource.clone(),
        // Out-of-range numbers are invalid in OTLP; they become "unspecified".
        severity: u8::try_from(record.severity_number)
            .ok()
            .filter(|s| *s <= 24)
            .unwrap_or(0),
        severity_text: record.severity_text.into(),
        trace_id: record.trace_id,
        span_id: record.span_id,
        trace_flags: if flags == 0 { Vec::new() } else { vec![flags] },
        scope_name: scope_name.into(),
    }
}

/// 0 means "unknown" in OTLP.
fn timestamp(nanos: u64) -> Option<Timestamp> {
    if nanos == 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(nanos)).ok()
}

/// Attributes in their order; a repeated key keeps its first position and last value.
fn to_map(attributes: Vec<KeyValue>) -> Map {
    let mut map = centimane_core::Map::with_capacity(attributes.len());
    for kv in attributes {
        map.insert(kv.key.into(), kv.value.map_or(Value::Null, to_value));
    }
    map
}

fn to_value(value: AnyValue) -> Value {
    use any_value::Value as V;
    match value.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::Str(s.into()),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::Int(i),
        Some(V::DoubleValue(d)) => Value::Double(d),
        Some(V::BytesValue(b)) => Value::Bytes(b.into()),
        Some(V::ArrayValue(a)) => {
            Value::Array(Box::new(a.values.into_iter().map(to_value).collect()))
        }
        Some(V::KvlistValue(kv)) => Value::Map(Box::new(to_map(kv.values))),
        // An index into a profiles string table: meaningless outside profiles, so the
        // spec says to treat it as absent.
        Some(V::StringValueStrindex(_)) => Value::Null,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            key_strindex: 0,
        }
    }

    /// A request with one resource (`service.name` = `svc`), one scope `scope` and `n`
    /// records with bodies `line <i>` and an int attribute `seq`.
    pub(crate) fn request(n: usize) -> ExportLogsServiceRequest {
        use any_value::Value as V;
        let records = (0..n)
            .map(|i| LogRecord {
                time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                observed_time_unix_nano: 1_700_000_000_500_000_000,
                severity_number: 17,
                severity_text: "ERROR".into(),
                body: Some(AnyValue {
                    value: Some(V::StringValue(format!("line {i}"))),
                }),
                attributes: vec![kv("seq", V::IntValue(i as i64))],
                dropped_attributes_count: 0,
                flags: 0x101,
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                event_name: String::new(),
            })
            .collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", V::StringValue("svc".into()))],
                    dropped_attributes_count: 0,
                    entity_refs: Vec::new(),
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "scope".into(),
                        version: "1".into(),
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    }),
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn every_record_field_arrives() {
        let entries = to_entries(request(2));
        assert_eq!(entries.len(), 2);
        let e = &entries[1];
        assert_eq!(e.body, Value::from("line 1"));
        assert_eq!(e.attributes["seq"], Value::Int(1));
        assert_eq!(e.resource["service.name"], Value::from("svc"));
        assert_eq!(e.scope_name, "scope");
        assert_eq!(e.severity, 17);
        assert_eq!(e.severity_text, "ERROR");
        assert_eq!(e.trace_id, vec![1; 16]);
        assert_eq!(e.span_id, vec![2; 8]);
        assert_eq!(e.trace_flags, vec![1], "the reserved high bits are dropped");
        assert_eq!(
            e.timestamp.unwrap().as_nanosecond(),
            1_700_000_000_000_000_001
        );
        assert_eq!(
            e.observed_timestamp.as_nanosecond(),
            1_700_000_000_500_000_000
        );
    }

    #[test]
    fn nested_values_and_odd_inputs() {
        use any_value::Value as V;
        let nested = V::KvlistValue(KeyValueList {
            values: vec![
                kv(
                    "a",
                    V::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(V::DoubleValue(0.5)),
                            },
                            AnyValue { value: None },
                        ],
                    }),
                ),
                kv("b", V::BytesValue(vec![0, 1])),
                kv("c", V::StringValueStrindex(3)),
            ],
        });
        let mut req = request(1);
        let record = &mut req.resource_logs[0].scope_logs[0].log_records[0];
        record.body = Some(AnyValue {
            value: Some(nested),
        });
        record.severity_number = 99;
        record.time_unix_nano = 0;
        record.observed_time_unix_nano = 0;
        req.resource_logs[0].resource = None;
        req.resource_logs[0].scope_logs[0].scope = None;
        let e = to_entries(req).remove(0);
        let body = e.body.as_map().unwrap();
        assert_eq!(
            body["a"],
            Value::Array(Box::new(vec![Value::Double(0.5), Value::Null]))
        );
        assert_eq!(body["b"], Value::Bytes(vec![0, 1].into()));
        assert_eq!(body["c"], Value::Null);
        assert_eq!(e.severity, 0);
        assert!(e.timestamp.is_none());
        assert!(e.observed_timestamp > Timestamp::UNIX_EPOCH);
        assert!(e.resource.is_empty());
        assert_eq!(e.scope_name, "");
    }
}
