#![no_main]
//! `uri_parser`: request URIs and bare query strings.

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static CHAINS: RefCell<Vec<centimane_operators::Chain>> = RefCell::new(common::chains(&[
        json!([{"type": "uri_parser"}]),
        json!([{"type": "uri_parser", "parse_from": "attributes.input", "parse_to": "body"}]),
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
