#![no_main]
//! Time layouts: the first line is a layout (read as strptime and as a Go layout), the rest
//! a value to parse with it; the value also goes through epoch layouts.

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static CHAINS: RefCell<Vec<centimane_operators::Chain>> = RefCell::new(common::chains(&[
        json!([{"type": "time_parser", "layout_type": "epoch", "layout": "s.ns"}]),
        json!([{"type": "time_parser", "layout_type": "epoch", "layout": "ms"}]),
        json!([{"type": "time_parser", "layout": "%b %e %H:%M:%S %Z %Y", "location": "Asia/Kolkata"}]),
    ]));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (layout, value) = text.split_once('\n').unwrap_or((text, ""));
    centimane_operators::fuzzing::time(layout, value);
    CHAINS.with(|chains| {
        for chain in chains.borrow_mut().iter_mut() {
            common::feed(chain, value);
        }
    });
});
