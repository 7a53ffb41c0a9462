//! Differential suite: generated programs run on the model and on CPython
//! for every model profile whose interpreter is present, and the traces
//! must be equal.
//!
//! Programs come from `canceltree::generate::program(seed, size)`. The
//! model covers the whole language, so no program is filtered for
//! coverage; programs that touch what CPython leaves unspecified (set
//! order in `as_completed`/`wait`, `generate::avoids_unspecified`) are
//! skipped and counted, since no model can agree with an address-dependent
//! order.
//!
//! Environment: `CANCELTREE_SEED` (first seed, default 0),
//! `CANCELTREE_CASES` (programs per profile, default 2000) and
//! `CANCELTREE_SIZE` (rough nodes per program, default 12);
//! `CANCELTREE_SHOW_GAPS=1` prints the differences that are known gaps
//! (`canceltree::campaign::known`, which campaigns classify the same way:
//! only in finalization, or only after CPython's first RecursionError). A
//! profile whose CPython is not installed is skipped with a message.

use canceltree::backend::{self, Backend, Spec, discover};
use canceltree::campaign::known::{Gap, classify};
use canceltree::{generate, render, syntax};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (model spec, cpython spec) pairs.
const PROFILES: [(&str, &str); 5] = [
    ("model:3.11", "cpython:3.11"),
    ("model:3.12", "cpython:3.12"),
    ("model:3.13", "cpython:3.13"),
    ("model:3.12+eager", "cpython:3.12+eager"),
    ("model:3.13+eager", "cpython:3.13+eager"),
];

#[test]
fn generated_programs_give_the_same_trace_on_the_model_and_on_cpython() {
    let seed = env_u64("CANCELTREE_SEED", 0);
    let cases = env_u64("CANCELTREE_CASES", 2000);
    let size = env_u64("CANCELTREE_SIZE", 12) as usize;
    let versions = discover::versions();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (model, cpy) in PROFILES {
        let cspec = Spec::parse(cpy).expect("valid spec");
        let backend::Family::Cpython(backend::Interpreter::Version(a, b)) = cspec.family else {
            unreachable!()
        };
        if !versions.contains(&(a, b)) {
            eprintln!(
                "skipping {model}: no CPython {a}.{b} found (`canceltree backends` lists what is here)"
            );
            continue;
        }
        let mut m = backend::open(&Spec::parse(model).unwrap()).expect("model opens");
        let mut c: Box<dyn Backend> = match backend::open(&cspec) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping {model}: {e}");
                continue;
            }
        };
        let mut agree = 0;
        let mut skipped = 0;
        let (mut recursed, mut finalization) = (0, 0);
        for s in seed..seed + cases {
            let p = generate::program(s, size);
            if !generate::avoids_unspecified(&p) {
                skipped += 1;
                continue;
            }
            let tm = m.run(&p);
            let tc = c.run(&p);
            if tc.backend_failed() {
                continue;
            }
            if tm == tc {
                agree += 1;
            } else if let Some(g) = classify(&tm, &tc) {
                match g {
                    Gap::RecursionDepth => recursed += 1,
                    Gap::Finalization => finalization += 1,
                }
                if std::env::var_os("CANCELTREE_SHOW_GAPS").is_some() {
                    let labels = render::labels(&p);
                    eprintln!(
                        "{} gap, {model} seed {s}:\n{}\n{}",
                        g.name(),
                        syntax::print(&p),
                        render::diff(&[(model, &tm), (cpy, &tc)], &labels).unwrap_or_default()
                    );
                }
            } else if failures.len()
                < std::env::var("CANCELTREE_SHOW")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5)
            {
                let labels = render::labels(&p);
                failures.push(format!(
                    "{model} vs {cpy}, seed {s} size {size}:\n{}\n{}",
                    syntax::print(&p),
                    render::diff(&[(model, &tm), (cpy, &tc)], &labels).unwrap_or_default()
                ));
            } else {
                failures.push(format!("{model} seed {s}"));
            }
        }
        ran += cases;
        // Today no size-12 program of seeds 0-1,999 differs only in
        // finalization, 0 or 1 per 1,000 at size 50 and 1 to 4 per 3,000 at
        // size 30; more than 0.25% (1% for larger programs, which hit more
        // collector-order cases) is a regression in the model's reference
        // graph, not the known gap.
        let tolerated = (cases - skipped) * if size > 20 { 4 } else { 1 } / 400;
        if finalization > tolerated {
            failures.push(format!(
                "{model}: {finalization} programs differ only in finalization, more than the {tolerated} \
                 tolerated; rerun with CANCELTREE_SHOW_GAPS=1 to see them"
            ));
        }
        eprintln!(
            "{model}: {agree}/{} programs agree exactly with {cpy}; {finalization} differ only in finalization \
             (known gap), {recursed} differ only after CPython's RecursionError (depth-dependent); {skipped} skipped as unspecified",
            cases - skipped
        );
    }
    if ran == 0 {
        eprintln!("no CPython interpreter found: differential suite skipped");
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
