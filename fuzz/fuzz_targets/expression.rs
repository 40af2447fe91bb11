#![no_main]
//! The expression language and `EXPR()` templates: parsing, then evaluation.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        centimane_operators::fuzzing::expression(source);
    }
});
