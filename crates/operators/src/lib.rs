//! The Stanza operator library: builds an operator chain from a filelog receiver's
//! `operators:` list and runs entries through it (behaviour: `shared/reference/stanza.md`).
//!
//! Everything that can be decided from the config is decided in [`build_chain`]: fields,
//! time layouts, regexes, expressions and severity tables are parsed once; processing an
//! entry only reads and writes values. Processing errors never stop the chain: each
//! operator's `on_error` decides whether the entry goes on.
//!
//! Operator types: parsers `json_parser`, `regex_parser`, `key_value_parser`, `time_parser`, `severity_parser`,
//! `scope_name_parser`; transformers `add`, `copy`, `move`, `remove`, `noop`.

mod chain;
mod config;
mod error;
mod expr;
mod operator;
mod parsers;
mod scope;
mod severity;
mod time;
mod transformers;

pub use chain::{Chain, build_chain};
pub use config::ConfigError;

/// Every operator type this build knows, for `centimane components`.
pub const OPERATOR_TYPES: &[&str] = &[
    "add",
    "copy",
    "json_parser",
    "key_value_parser",
    "move",
    "noop",
    "regex_parser",
    "remove",
    "scope_name_parser",
    "severity_parser",
    "time_parser",
];
