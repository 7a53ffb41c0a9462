//! Fuzz target: arbitrary bytes never panic the `.ct` parser, errors point
//! inside the text, and accepted programs print and parse back unchanged.
//! The property lives in `canceltree::syntax::fuzz_parse` so that
//! tests/fuzz_corpus.rs can replay the corpus without a nightly toolchain.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    canceltree::syntax::fuzz_parse(data);
});
