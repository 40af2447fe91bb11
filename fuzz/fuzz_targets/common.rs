//! Shared by the parser targets: chains built once per process, and a way to feed them text.
//! Included with `#[path]` by each target, so every target stays a single binary.

use centimane_core::{Entry, OperatorChain, Value};
use centimane_operators::{Chain, build_chain};
use serde_json::Value as Json;

/// Builds one chain per config; a config that does not build is a bug in the target.
pub fn chains(configs: &[Json]) -> Vec<Chain> {
    configs
        .iter()
        .map(|ops| build_chain(ops).unwrap_or_else(|e| panic!("fuzz config does not build: {e}")))
        .collect()
}

/// Runs `text` through `chain` as the body, and as a `log.file.path`-tagged attribute
/// copy, then flushes anything held.
pub fn feed(chain: &mut Chain, text: &str) {
    let mut entry = Entry::new(Value::Str(text.into()));
    entry
        .attributes
        .insert("input".into(), Value::Str(text.into()));
    let mut out = Vec::new();
    chain.process(vec![entry.clone(), entry], &mut out);
    chain.flush(&mut out);
}
