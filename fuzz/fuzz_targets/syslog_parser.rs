#![no_main]
//! `syslog_parser` in every protocol and framing.

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static CHAINS: RefCell<Vec<centimane_operators::Chain>> = RefCell::new(common::chains(&[
        json!([{"type": "syslog_parser", "protocol": "rfc3164", "location": "America/Detroit"}]),
        json!([{"type": "syslog_parser", "protocol": "rfc3164", "allow_skip_pri_header": true}]),
        json!([{"type": "syslog_parser", "protocol": "rfc5424"}]),
        json!([{"type": "syslog_parser", "protocol": "rfc5424", "allow_skip_pri_header": true}]),
        json!([{"type": "syslog_parser", "protocol": "rfc5424", "enable_octet_counting": true, "max_octets": 512}]),
        json!([{"type": "syslog_parser", "protocol": "rfc5424", "non_transparent_framing_trailer": "LF"}]),
        json!([{"type": "syslog_parser", "protocol": "rfc5424", "non_transparent_framing_trailer": "NUL"}]),
        json!([{"type": "syslog_parser", "protocol": "none", "enable_octet_counting": true}]),
        json!([{"type": "syslog_parser", "protocol": "rfc5424", "parse_to": "body"}]),
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
