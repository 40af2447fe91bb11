//! The `io.centimane.snapshot` custom capability: the server asks for the last records
//! seen at a pipeline point and gets them back as OTLP/JSON.
//!
//! Wire format (CustomMessage with `capability = "io.centimane.snapshot"`, JSON `data`):
//! * request, type `request`: `{"id": any?, "point": "receiver:filelog", "n": 10}`
//!   (`n` defaults to 10 and is capped at [`MAX_RECORDS`]);
//! * answer, type `response`: `{"id": ..., "point": ..., "records": <ExportLogsServiceRequest>}`;
//! * failure, type `error`: `{"id": ..., "point": ..., "error": "message"}`.
//!
//! `id` is echoed untouched so a server can match answers to requests.

use crate::control::AgentControl;
use crate::proto::CustomMessage;
use crate::protocol::SNAPSHOT_CAPABILITY;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

/// The most records one request may ask for (bounds the message size).
pub const MAX_RECORDS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    id: Value,
    point: String,
    #[serde(default = "default_n")]
    n: usize,
}

fn default_n() -> usize {
    10
}

/// Whether the client should answer this message (it is a request of our capability).
pub(crate) fn is_request(msg: &CustomMessage) -> bool {
    msg.capability == SNAPSHOT_CAPABILITY && msg.r#type == "request"
}

/// Answers one request. Runs the agent's `snapshot` (call it on a blocking thread).
pub(crate) fn answer(control: &dyn AgentControl, msg: &CustomMessage) -> CustomMessage {
    let request: Request = match serde_json::from_slice(&msg.data) {
        Ok(r) => r,
        Err(e) => {
            let id = serde_json::from_slice::<Value>(&msg.data)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(Value::Null);
            return reply(
                "error",
                json!({"id": id, "error": format!("bad snapshot request: {e}")}),
            );
        }
    };
    let n = request.n.min(MAX_RECORDS);
    let result = control.snapshot(&request.point, n).and_then(|otlp| {
        serde_json::from_str::<Value>(&otlp)
            .map_err(|e| format!("the agent's snapshot is not JSON: {e}"))
    });
    match result {
        Ok(records) => reply(
            "response",
            json!({"id": request.id, "point": request.point, "records": records}),
        ),
        Err(e) => reply(
            "error",
            json!({"id": request.id, "point": request.point, "error": e}),
        ),
    }
}

fn reply(kind: &str, data: Value) -> CustomMessage {
    CustomMessage {
        capability: SNAPSHOT_CAPABILITY.into(),
        r#type: kind.into(),
        data: Bytes::from(data.to_string()),
    }
}
