#![no_main]
//! `csv_parser` with strict, lazy and ignored quotes, several delimiters, and a header read
//! from an attribute.

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static CHAINS: RefCell<Vec<centimane_operators::Chain>> = RefCell::new(common::chains(&[
        json!([{"type": "csv_parser", "header": "a,b,c"}]),
        json!([{"type": "csv_parser", "header": "a,b,c,d,e", "lazy_quotes": true, "parse_to": "body"}]),
        json!([{"type": "csv_parser", "header": "a|b", "header_delimiter": "|", "delimiter": "\t",
                "ignore_quotes": true}]),
        json!([{"type": "csv_parser", "header": "x→y", "delimiter": "→"}]),
        json!([{"type": "csv_parser", "header_attribute": "input", "delimiter": ";"}]),
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
