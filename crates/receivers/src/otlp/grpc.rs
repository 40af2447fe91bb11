//! OTLP/gRPC: the `LogsService/Export` method on tonic.
//!
//! The service is written out here rather than taken from the generated server so that a
//! malformed message gets `INVALID_ARGUMENT` (the OTLP spec's code for bad data, which
//! clients do not retry); the generated codec reports decode errors as `INTERNAL`.
//! Requests may be gzip- or zstd-compressed.

use super::convert::to_entries;
use super::deliver::{DEFAULT_WAIT, Gateway};
use bytes::Buf;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tonic::Status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The gRPC logs service, cheap to clone (one per connection).
#[derive(Clone)]
pub(crate) struct LogsService {
    gateway: Arc<Gateway>,
    max_message_bytes: usize,
}

impl LogsService {
    pub(crate) fn new(gateway: Arc<Gateway>, max_message_bytes: usize) -> Self {
        LogsService {
            gateway,
            max_message_bytes,
        }
    }
}

impl NamedService for LogsService {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

impl<B> Service<http::Request<B>> for LogsService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("only LogsService/Export is served here").into_http())
            });
        }
        let export = Export(self.gateway.clone());
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut grpc = Grpc::new(ExportCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max);
            Ok(grpc.unary(export, req).await)
        })
    }
}

/// The unary handler: convert, deliver, answer.
struct Export(Arc<Gateway>);

impl UnaryService<ExportLogsServiceRequest> for Export {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportLogsServiceResponse>, Status>;

    fn call(&mut self, request: tonic::Request<ExportLogsServiceRequest>) -> Self::Future {
        let gateway = self.0.clone();
        let wait = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(DEFAULT_WAIT);
        let deadline = Instant::now() + wait;
        Box::pin(async move {
            let entries = to_entries(request.into_inner());
            match gateway.deliver(entries, deadline).await {
                Ok(()) => Ok(tonic::Response::new(ExportLogsServiceResponse {
                    partial_success: None,
                })),
                Err(refused) => Err(Status::unavailable(refused.message())),
            }
        })
    }
}

/// gRPC's `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Protobuf codec whose decode errors are `INVALID_ARGUMENT`.
#[derive(Clone, Copy, Default)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = ExportLogsServiceRequest;
    type Encoder = ExportCodec;
    type Decoder = ExportCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ExportCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        ExportCodec
    }
}

impl Encoder for ExportCodec {
    type Item = ExportLogsServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("can't encode the response: {e}")))
    }
}

impl Decoder for ExportCodec {
    type Item = ExportLogsServiceRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportLogsServiceRequest::decode(bytes)
            .map(Some)
            .map_err(|e| {
                Status::invalid_argument(format!(
                    "the request is not a valid ExportLogsServiceRequest: {e}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "S", "10", "10x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
