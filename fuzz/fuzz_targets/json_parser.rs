#![no_main]
//! The JSON parsers: `json_parser` (with and without `parse_ints`, with embedded time and
//! severity blocks) and `json_array_parser` (with and without a header).

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static CHAINS: RefCell<Vec<centimane_operators::Chain>> = RefCell::new(common::chains(&[
        json!([{"type": "json_parser"}]),
        json!([{"type": "json_parser", "parse_ints": true, "parse_to": "body",
                "timestamp": {"parse_from": "body.ts", "layout_type": "epoch", "layout": "s.ms"},
                "severity": {"parse_from": "body.level"}}]),
        json!([{"type": "json_array_parser", "parse_to": "body"}]),
        json!([{"type": "json_array_parser", "header": "a,b,c", "parse_from": "attributes.input"}]),
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
