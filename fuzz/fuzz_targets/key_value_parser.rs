#![no_main]
//! `key_value_parser` with single- and multi-character delimiters, including non-ASCII ones.

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static CHAINS: RefCell<Vec<centimane_operators::Chain>> = RefCell::new(common::chains(&[
        json!([{"type": "key_value_parser"}]),
        json!([{"type": "key_value_parser", "delimiter": "==", "pair_delimiter": "||"}]),
        json!([{"type": "key_value_parser", "delimiter": "é", "pair_delimiter": "^\n",
                "parse_to": "body", "severity": {"parse_from": "body.level"}}]),
    ]));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    CHAINS.with(|chains| {
        for chain in chains.borrow_mut().iter_mut() {
            common::feed(chain, text);
        }
    });
});
