//! The logic of the `model_invariants` and `differential` fuzz targets,
//! kept in the library so that tests/fuzz_corpus.rs replays their corpora
//! in a plain `cargo test`.
//!
//! Fuzz input: bytes that start with `(` or `;` and parse as a `.ct`
//! program are that program (so the seed corpora hold the examples as they
//! are, and libFuzzer's mutations of them stay programs where they still
//! parse); any other bytes drive the generator (`Bytes` choices: the size
//! first, then the generator's decisions). `fuzz_program_bytes(seed, size)`
//! writes the bytes that decode to `program(seed, size)`.

use super::{Bytes, Recorder, Rng, avoids_unspecified, generate};
use crate::ast::Program;
use crate::backend::{self, Backend, Spec, discover};
use crate::{invariants, render, syntax};
use std::cell::RefCell;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The largest size a fuzz input asks the generator for.
pub const MAX_FUZZ_SIZE: usize = 64;

/// Every model profile, as backend specs.
pub const MODEL_PROFILES: [&str; 5] = [
    "model:3.11",
    "model:3.12",
    "model:3.13",
    "model:3.12+eager",
    "model:3.13+eager",
];

/// Each model profile and the CPython backend it must agree with.
pub const DIFFERENTIAL_PROFILES: [(&str, &str); 5] = [
    ("model:3.11", "cpython:3.11"),
    ("model:3.12", "cpython:3.12"),
    ("model:3.13", "cpython:3.13"),
    ("model:3.12+eager", "cpython:3.12+eager"),
    ("model:3.13+eager", "cpython:3.13+eager"),
];

/// The program a fuzz input stands for.
pub fn fuzz_program(data: &[u8]) -> Program {
    if matches!(data.first(), Some(b'(' | b';'))
        && let Ok(p) = syntax::parse_bytes("fuzz.ct", data)
    {
        return p;
    }
    let mut c = Bytes::new(data);
    let size = 1 + super::Choices::choose(&mut c, MAX_FUZZ_SIZE as u32) as usize;
    generate(&mut c, size)
}

/// The fuzz input that `fuzz_program` decodes to `program(seed, size)`.
/// `size` is at most `MAX_FUZZ_SIZE`.
pub fn fuzz_program_bytes(seed: u64, size: usize) -> Vec<u8> {
    assert!(
        (1..=MAX_FUZZ_SIZE).contains(&size),
        "size {size} out of 1..={MAX_FUZZ_SIZE}"
    );
    let mut r = Recorder {
        inner: Rng::new(seed),
        bytes: vec![(size - 1) as u8],
    };
    generate(&mut r, size);
    r.bytes
}

fn version_of(spec: &str) -> (u32, u32) {
    match Spec::parse(spec).map(|s| s.family) {
        Ok(backend::Family::Model(a, b)) => (a, b),
        _ => unreachable!("MODEL_PROFILES are model specs"),
    }
}

thread_local! {
    /// One model backend per profile, kept between inputs.
    static MODELS: RefCell<Vec<(&'static str, Box<dyn Backend>)>> = RefCell::new(
        MODEL_PROFILES
            .iter()
            .map(|&s| {
                let spec = Spec::parse(s).expect("a valid spec");
                (s, backend::open(&spec).expect("model backends always open"))
            })
            .collect(),
    );
}

/// The `model_invariants` target: the input's program runs on every model
/// profile, and each trace must satisfy every invariant of its version.
pub fn fuzz_model_invariants(data: &[u8]) {
    check_model_invariants(&fuzz_program(data));
}

/// Runs `p` on every model profile and panics, with the program, the trace
/// and the violations, if a run fails or breaks an invariant.
pub fn check_model_invariants(p: &Program) {
    MODELS.with(|models| {
        for (spec, model) in models.borrow_mut().iter_mut() {
            let trace = model.run(p);
            let labels = render::labels(p);
            assert!(
                !trace.backend_failed(),
                "{spec} failed to run the program:\n{}\n{}",
                syntax::print(p),
                render::text(&trace, &labels)
            );
            let found = invariants::check(p, &trace, version_of(spec));
            if !found.is_empty() {
                let list: Vec<String> = found
                    .iter()
                    .map(|v| {
                        format!(
                            "  {} (node {:?}, task {:?}): {}",
                            v.invariant, v.node, v.task, v.message
                        )
                    })
                    .collect();
                panic!(
                    "{spec} breaks {} invariant(s):\n{}\nprogram:\n{}\ntrace:\n{}",
                    found.len(),
                    list.join("\n"),
                    syntax::print(p),
                    render::text(&trace, &labels)
                );
            }
        }
    });
}

/// A model profile and the persistent CPython worker of the same version.
struct Pair {
    model: Box<dyn Backend>,
    cpython: Box<dyn Backend>,
}

/// The pairs whose interpreter is present, opened once per process.
static PAIRS: OnceLock<Mutex<Vec<Pair>>> = OnceLock::new();

fn open_pairs() -> Vec<Pair> {
    let versions = discover::versions();
    let mut pairs = Vec::new();
    for (m, c) in DIFFERENTIAL_PROFILES {
        let cspec = Spec::parse(c).expect("a valid spec");
        let present = matches!(
            cspec.family,
            backend::Family::Cpython(backend::Interpreter::Version(a, b)) if versions.contains(&(a, b))
        );
        if !present {
            eprintln!("differential: skipping {m}: no {c} interpreter found");
            continue;
        }
        match backend::open(&cspec) {
            Ok(cpython) => {
                let model = backend::open(&Spec::parse(m).expect("a valid spec"))
                    .expect("model backends always open");
                pairs.push(Pair { model, cpython });
            }
            Err(e) => eprintln!("differential: skipping {m}: {e}"),
        }
    }
    if pairs.is_empty() {
        eprintln!("differential: no CPython interpreter found; inputs are decoded but not run");
    }
    pairs
}

/// The `differential` target: the input's program, unless it relies on
/// something CPython leaves unspecified, runs on each model profile and on
/// the CPython of its version, and the traces must be equal.
pub fn fuzz_differential(data: &[u8]) {
    check_differential(&fuzz_program(data));
}

/// Runs `p` on every present (model, CPython) pair and panics with the
/// program and the side-by-side difference when a pair disagrees. Returns
/// how many pairs compared the program: 0 when no interpreter is present
/// or the program is skipped (unspecified behaviour); a case CPython hung
/// or crashed on is not compared (the worker restarts).
pub fn check_differential(p: &Program) -> usize {
    if !avoids_unspecified(p) {
        return 0;
    }
    let pairs = PAIRS.get_or_init(|| Mutex::new(open_pairs()));
    let mut pairs = pairs.lock().unwrap_or_else(PoisonError::into_inner);
    let mut compared = 0;
    for pair in pairs.iter_mut() {
        let tc = pair.cpython.run(p);
        if tc.backend_failed() {
            continue;
        }
        let tm = pair.model.run(p);
        if tm != tc {
            let labels = render::labels(p);
            let (m, c) = (
                pair.model.name().to_string(),
                pair.cpython.name().to_string(),
            );
            let diff = render::diff(&[(&m, &tm), (&c, &tc)], &labels).unwrap_or_default();
            panic!(
                "{m} and {c} disagree on this program:\n{}\n{diff}",
                syntax::print(p)
            );
        }
        compared += 1;
    }
    compared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::program;

    #[test]
    fn fuzz_bytes_decode_to_the_seeded_program() {
        for seed in 0..40 {
            let size = 1 + seed as usize % MAX_FUZZ_SIZE;
            assert_eq!(
                fuzz_program(&fuzz_program_bytes(seed, size)),
                program(seed, size)
            );
        }
    }

    #[test]
    fn ct_text_decodes_to_its_program() {
        let text = b"; c\n(canceltree 1)\n(main (spawn a (sleep 1)) (cancel a))\n";
        let p = fuzz_program(text);
        assert_eq!(p, syntax::parse_bytes("x.ct", text).unwrap());
    }
}
