//! The shared vocabulary of Centimane: the log record ([`Entry`]) and its [`Value`]s, field
//! paths with Stanza's syntax ([`Field`]), batches that flow through pipelines and the
//! acknowledgements that flow back ([`Batch`], [`AckToken`]), the operator-chain trait that
//! receivers run, and the config value types every component shares (durations, byte sizes,
//! component ids).
//!
//! Component crates depend on this crate and never on each other.

pub mod ack;
pub mod batch;
pub mod config;
pub mod entry;
pub mod field;
mod json;
pub mod map;
pub mod operator;
pub mod recycle;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;
pub mod value;

pub use ack::{AckListener, AckSet, AckStatus, AckToken};
pub use batch::{Batch, EncodedLogs, Entries, RecordEncoder, RecordGroup, SharedBatch};
pub use entry::{Entry, Timestamp};
pub use field::{Field, FieldError, FieldRoot};
pub use operator::OperatorChain;
pub use value::{Map, Text, Value};
