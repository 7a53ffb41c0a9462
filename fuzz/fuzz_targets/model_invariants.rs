//! Fuzz target: an arbitrary program (`.ct` text, or bytes driving the
//! generator, as `Arbitrary for Program` reads them) runs on every model
//! profile, and each trace must satisfy every invariant of its version.
//! Any panic, in the model or the invariants, or a violation, is a finding.
//! The logic lives in `canceltree::generate::fuzz_model_invariants` so that
//! tests/fuzz_corpus.rs replays the corpus without a nightly toolchain.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    canceltree::generate::fuzz_model_invariants(data);
});
