//! Fuzz target: an arbitrary program runs on each model profile and on a
//! persistent CPython worker of the same version (kept for the whole run),
//! and the traces must be equal. Profiles whose interpreter is missing are
//! skipped (said once on stderr); with none, inputs are only decoded.
//! Programs relying on what CPython leaves unspecified are skipped. The
//! logic lives in `canceltree::generate::fuzz_differential`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    canceltree::generate::fuzz_differential(data);
});
