//! The few `google.rpc` messages OTLP servers send with an error: `Status` (a message and
//! details) and `RetryInfo` (how long to wait before retrying). Declared by hand with
//! prost: they are small, and no dependency of ours generates them.

use prost::Message;
use std::time::Duration;

/// `google.rpc.Status` (prost skips the `code` field: the transport's own code is used).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(string, tag = "2")]
    pub(crate) message: String,
    #[prost(message, repeated, tag = "3")]
    pub(crate) details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProtoAny {
    #[prost(string, tag = "1")]
    pub(crate) type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub(crate) retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

pub(crate) const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The RetryInfo among the details of an encoded `google.rpc.Status`, if one decodes.
pub(crate) fn retry_info(status: &[u8]) -> Option<RetryInfo> {
    if status.is_empty() {
        return None;
    }
    RpcStatus::decode(status)
        .ok()?
        .details
        .iter()
        .filter(|any| any.type_url == RETRY_INFO_TYPE)
        .find_map(|any| RetryInfo::decode(any.value.as_slice()).ok())
}

/// A non-negative protobuf duration; `None` for a negative or malformed one.
pub(crate) fn proto_duration(d: &ProtoDuration) -> Option<Duration> {
    let seconds = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos))
}
