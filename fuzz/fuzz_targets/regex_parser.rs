#![no_main]
//! Go-syntax regexes: the first line is a pattern (translated and compiled for
//! `regex_parser` and `regex_replace`), the rest is the text to match. Where
//! `regex_parser`'s one-pass matcher takes the pattern, its result must be the regex
//! crate's.

use centimane_core::{Entry, OperatorChain, Value};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, value) = text.split_once('\n').unwrap_or((text, ""));
    centimane_operators::fuzzing::linear_regex(pattern, value);
    let configs = [
        json!([{"type": "regex_parser", "regex": pattern, "cache": {"size": 4}}]),
        json!([{"type": "regex_replace", "regex": pattern, "replace_with": "<$1${n}>"}]),
    ];
    for ops in configs {
        // An invalid pattern is a config error, which is fine.
        if let Ok(mut chain) = centimane_operators::build_chain(&ops) {
            let mut out = Vec::new();
            let entries = vec![Entry::new(Value::Str(value.into())); 2];
            chain.process(entries, &mut out);
        }
    }
});
