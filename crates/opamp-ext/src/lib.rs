//! Centimane's OpAMP extension: an OpAMP client that makes the agent observable
//! (description, effective config, health, heartbeats) and lets a server swap its config
//! live, with the agent rolling back on failure.
//!
//! * [`parse_config`] reads the `extensions.opamp` block;
//! * [`start`] runs the client against an [`AgentControl`] the agent implements, and
//!   returns an [`OpampHandle`] (`notify_changed`, `shutdown`);
//! * [`last_remote_config`] gives the last good remote config persisted in the state
//!   directory, so the agent can start on it after a restart;
//! * [`test_server`] is a small OpAMP server (WebSocket and HTTP) for tests and the
//!   `opamp-test-server` binary.
//!
//! Wiring it into an agent:
//!
//! 1. at start-up, before building pipelines: if [`last_remote_config`]`(state_dir)` is
//!    `Some(yaml)`, run that (merged with the local `extensions`, as DESIGN §5 says)
//!    instead of the local pipelines;
//! 2. implement [`AgentControl`] on the service and call [`start`] inside the Tokio
//!    runtime;
//! 3. call [`OpampHandle::notify_changed`] (or a [`ChangeNotifier`]) whenever the running
//!    config or any component's health changes (after a SIGHUP reload, a pipeline start or
//!    failure...); unchanged values are not re-sent, so extra calls cost nothing;
//! 4. at shutdown, `handle.shutdown().await` before the runtime ends (AgentDisconnect).
//!
//! Protocol: OpAMP as in `proto/` (opamp-spec `proto/opamp/v1`); the digest it follows is
//! `shared/reference/opamp.md`.

pub mod proto {
    //! The OpAMP protobuf messages, generated from the vendored `.proto` files.
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/opamp.proto.v1.rs"));
}

mod backoff;
mod client;
mod config;
mod control;
mod description;
mod fields;
mod own_metrics;
mod policy;
mod protocol;
mod remote_config;
mod snapshot;
mod state;
pub mod test_server;
mod tls;
mod transport;

pub use client::{ChangeNotifier, OpampHandle, start};
pub use config::{
    AttributeValue, Backoff, Capabilities, Headers, OpampConfig, ServerConfig, TlsConfig,
    Transport, parse_config,
};
pub use control::{AgentControl, BoxFuture, Health, MetricKind, MetricSample, MetricValue};
pub use description::SERVICE_NAME;
pub use policy::{AllowPolicy, EndpointPattern, PathGlob};
pub use protocol::SNAPSHOT_CAPABILITY;
pub use snapshot::MAX_RECORDS as SNAPSHOT_MAX_RECORDS;
pub use state::{STATE_FILE, last_remote_config};
