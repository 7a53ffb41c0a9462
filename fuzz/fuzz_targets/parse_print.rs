//! Fuzz target: bytes drive the draft generator into a statically valid
//! program, which must print, parse back equal, and print identically.
//! The property lives in `canceltree::syntax::fuzz_parse_print`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    canceltree::syntax::fuzz_parse_print(data);
});
