//! The Stanza operator library: builds an operator chain from a filelog receiver's
//! `operators:` list and runs entries through it (behaviour: `shared/reference/stanza.md`).
//!
//! Everything that can be decided from the config is decided in [`build_chain`]: fields,
//! time layouts, regexes, expressions and severity tables are parsed once; processing an
//! entry only reads and writes values. Processing errors never stop the chain: each
//! operator's `on_error` decides whether the entry goes on.
//!
//! Operators that hold entries back (`recombine`, and `container` for split CRI lines)
//! release them on [`centimane_core::OperatorChain::flush`], on [`centimane_core::OperatorChain::flush_expired`]
//! once their `force_flush_period` has passed, and when a later `process` call finds
//! them expired.

mod chain;
mod config;
mod error;
mod expr;
mod go_regex;
mod linear_regex;
mod operator;
mod parsers;
mod registry;
mod rng;
mod scope;
mod severity;
mod time;
mod trace;
mod transformers;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use chain::{Chain, build_chain};
pub use config::ConfigError;

/// Every operator type this build knows, for `centimane components`.
pub const OPERATOR_TYPES: &[&str] = &[
    "add",
    "assign_keys",
    "container",
    "copy",
    "csv_parser",
    "filter",
    "flatten",
    "json_array_parser",
    "json_parser",
    "key_value_parser",
    "move",
    "noop",
    "recombine",
    "regex_parser",
    "regex_replace",
    "remove",
    "retain",
    "router",
    "sanitize_utf8",
    "scope_name_parser",
    "severity_parser",
    "strip_ansi_escape_codes",
    "syslog_parser",
    "time_parser",
    "trace_parser",
    "unquote",
    "uri_parser",
];
