//! `ReportsOwnMetrics`: once the server offers an `own_metrics` destination, the agent's
//! own metrics go there over OTLP/HTTP (protobuf) every `own_metrics_interval`, with the
//! identifying attributes of the AgentDescription as the resource (spec §11).
//!
//! The push runs in its own task so a slow or dead metrics backend never delays the OpAMP
//! connection; failures are logged once per outage and never affect the pipelines.

use crate::control::{AgentControl, MetricKind, MetricSample, MetricValue};
use crate::proto::{self, TelemetryConnectionSettings, any_value};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as OtelValue,
};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One push may take this long before it counts as failed.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where metrics go, built from an offer.
pub(crate) struct Destination {
    endpoint: Url,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl Destination {
    /// Checks and builds an offered destination. An empty endpoint, a URL that is not
    /// http(s), a bad header or unusable TLS material is refused with the reason.
    pub(crate) fn from_offer(offer: &TelemetryConnectionSettings) -> Result<Destination, String> {
        let endpoint = Url::parse(&offer.destination_endpoint).map_err(|e| {
            format!(
                "own_metrics destination {:?} is not a URL: {e}",
                offer.destination_endpoint
            )
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(format!(
                "own_metrics destination {endpoint} must be an http:// or https:// OTLP/HTTP URL"
            ));
        }
        let mut headers = HeaderMap::new();
        for h in offer.headers.iter().flat_map(|h| &h.headers) {
            let name = HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|e| format!("own_metrics header {:?}: {e}", h.key))?;
            let value = HeaderValue::from_str(&h.value)
                .map_err(|e| format!("own_metrics header {:?}: {e}", h.key))?;
            headers.append(name, value);
        }
        let tls =
            crate::tls::offered_client_config(offer.tls.as_ref(), offer.certificate.as_ref())?;
        let client = reqwest::Client::builder()
            .timeout(PUSH_TIMEOUT)
            .connect_timeout(PUSH_TIMEOUT)
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| format!("cannot build the own_metrics HTTP client: {e}"))?;
        Ok(Destination {
            endpoint,
            headers,
            client,
        })
    }

    async fn push(&self, body: Vec<u8>) -> Result<(), String> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(format!("HTTP {status}: {text}"))
    }
}

/// What the push task reads: where to send, and the resource to send as.
#[derive(Clone, Default)]
pub(crate) struct Target {
    pub(crate) destination: Option<Arc<Destination>>,
    pub(crate) resource: Vec<KeyValue>,
}

/// The resource: the description's identifying attributes.
pub(crate) fn resource(description: &proto::AgentDescription) -> Vec<KeyValue> {
    description
        .identifying_attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => OtelValue::StringValue(s.clone()),
                any_value::Value::BoolValue(b) => OtelValue::BoolValue(*b),
                any_value::Value::IntValue(i) => OtelValue::IntValue(*i),
                any_value::Value::DoubleValue(d) => OtelValue::DoubleValue(*d),
                _ => return None,
            };
            Some(KeyValue {
                key: kv.key.clone(),
                value: Some(AnyValue { value: Some(value) }),
                ..KeyValue::default()
            })
        })
        .collect()
}

/// Starts the push task; it runs until `shutdown`. Set a destination through the
/// returned sender to start pushing.
pub(crate) fn spawn(
    control: Arc<dyn AgentControl>,
    interval: Duration,
    target: Target,
    shutdown: CancellationToken,
) -> watch::Sender<Target> {
    let (tx, rx) = watch::channel(target);
    tokio::spawn(run(control, interval, rx, shutdown));
    tx
}

async fn run(
    control: Arc<dyn AgentControl>,
    interval: Duration,
    mut target: watch::Receiver<Target>,
    shutdown: CancellationToken,
) {
    let start = now_nanos();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            // A new destination gets its first push at once.
            changed = target.changed() => if changed.is_err() { return },
        }
        let current = target.borrow_and_update().clone();
        let Some(destination) = current.destination else {
            continue;
        };
        let samples = control.own_metrics().await;
        let body = encode(&samples, &current.resource, start, now_nanos()).encode_to_vec();
        match destination.push(body).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(endpoint = %destination.endpoint, "own metrics delivered again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(endpoint = %destination.endpoint, error = %e, "cannot deliver own metrics; will keep trying");
            }
            Err(e) => tracing::debug!(error = %e, "own metrics still not delivered"),
        }
    }
}

fn now_nanos() -> u64 {
    centimane_core::Timestamp::now()
        .as_nanosecond()
        .try_into()
        .unwrap_or(0)
}

/// One `ExportMetricsServiceRequest`; samples of the same name become one metric with a
/// data point per attribute set, in the order they came.
pub(crate) fn encode(
    samples: &[MetricSample],
    resource: &[KeyValue],
    start_unix_nano: u64,
    now_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    let mut metrics: Vec<Metric> = Vec::new();
    for s in samples {
        let point = NumberDataPoint {
            attributes: s
                .attributes
                .iter()
                .map(|(k, v)| KeyValue {
                    key: (*k).to_owned(),
                    value: Some(AnyValue {
                        value: Some(OtelValue::StringValue(v.clone())),
                    }),
                    ..KeyValue::default()
                })
                .collect(),
            start_time_unix_nano: match s.kind {
                MetricKind::Counter => start_unix_nano,
                MetricKind::Gauge => 0,
            },
            time_unix_nano: now_unix_nano,
            value: Some(match s.value {
                MetricValue::Int(i) => number_data_point::Value::AsInt(i),
                MetricValue::Double(d) => number_data_point::Value::AsDouble(d),
            }),
            ..NumberDataPoint::default()
        };
        let index = match metrics.iter().position(|m| m.name == s.name) {
            Some(i) => i,
            None => {
                metrics.push(Metric {
                    name: s.name.to_owned(),
                    description: s.description.to_owned(),
                    unit: s.unit.to_owned(),
                    data: Some(match s.kind {
                        MetricKind::Counter => metric::Data::Sum(Sum {
                            data_points: Vec::new(),
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                        MetricKind::Gauge => metric::Data::Gauge(Gauge {
                            data_points: Vec::new(),
                        }),
                    }),
                    ..Metric::default()
                });
                metrics.len() - 1
            }
        };
        match &mut metrics[index].data {
            Some(metric::Data::Sum(sum)) => sum.data_points.push(point),
            Some(metric::Data::Gauge(gauge)) => gauge.data_points.push(point),
            _ => {}
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: crate::SERVICE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Header, Headers, TlsConnectionSettings};

    fn sample(
        name: &'static str,
        kind: MetricKind,
        attr: &str,
        value: MetricValue,
    ) -> MetricSample {
        MetricSample {
            name,
            description: "d",
            unit: "1",
            kind,
            attributes: vec![("exporter", attr.to_owned())],
            value,
        }
    }

    #[test]
    fn samples_of_one_name_share_a_metric() {
        let samples = [
            sample("sent", MetricKind::Counter, "otlp", MetricValue::Int(5)),
            sample("cpu", MetricKind::Gauge, "", MetricValue::Double(0.5)),
            sample("sent", MetricKind::Counter, "file", MetricValue::Int(7)),
        ];
        let resource = vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(OtelValue::StringValue("centimane".into())),
            }),
            ..KeyValue::default()
        }];
        let req = encode(&samples, &resource, 10, 20);
        let rm = &req.resource_metrics[0];
        assert_eq!(rm.resource.as_ref().unwrap().attributes, resource);
        let metrics = &rm.scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 2);
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("sent is a sum")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let values: Vec<_> = sum
            .data_points
            .iter()
            .map(|p| (p.start_time_unix_nano, p.time_unix_nano, p.value))
            .collect();
        assert_eq!(
            values,
            [
                (10, 20, Some(number_data_point::Value::AsInt(5))),
                (10, 20, Some(number_data_point::Value::AsInt(7)))
            ]
        );
        let Some(metric::Data::Gauge(g)) = &metrics[1].data else {
            panic!("cpu is a gauge")
        };
        assert_eq!(g.data_points[0].start_time_unix_nano, 0);
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.5))
        );
    }

    fn offer(endpoint: &str) -> TelemetryConnectionSettings {
        TelemetryConnectionSettings {
            destination_endpoint: endpoint.into(),
            ..TelemetryConnectionSettings::default()
        }
    }

    #[test]
    fn bad_offers_are_refused_with_the_reason() {
        for (o, why) in [
            (offer(""), "is not a URL"),
            (offer("ftp://h/v1/metrics"), "http:// or https://"),
            (
                TelemetryConnectionSettings {
                    headers: Some(Headers {
                        headers: vec![Header {
                            key: "bad header".into(),
                            value: "v".into(),
                        }],
                    }),
                    ..offer("https://h/v1/metrics")
                },
                "own_metrics header",
            ),
            (
                TelemetryConnectionSettings {
                    tls: Some(TlsConnectionSettings {
                        ca_pem_contents: "not pem".into(),
                        ..TlsConnectionSettings::default()
                    }),
                    ..offer("https://h/v1/metrics")
                },
                "ca_pem_contents",
            ),
        ] {
            let err = Destination::from_offer(&o).err().expect("refused");
            assert!(err.contains(why), "{err}");
        }
        assert!(Destination::from_offer(&offer("http://127.0.0.1:4318/v1/metrics")).is_ok());
    }
}
