//! Exhaustive exploration of small generated programs: every program is
//! run once per cancel point (each live task, each loop iteration boundary)
//! on every discovered CPython, and every run must satisfy every invariant
//! of its version.
//!
//! Violations that a known, upstream-reported CPython bug explains
//! (`invariants::known_cpython_bug`, docs/INVARIANTS.md "Findings") are
//! counted and printed, not failed: they are the expected behaviour of
//! those versions. Anything else fails with the program, the injection and
//! the trace.
//!
//! Environment: `CANCELTREE_SEED` (first seed, default 0),
//! `CANCELTREE_CASES` (programs per interpreter, default 150) and
//! `CANCELTREE_SIZE` (rough nodes per program, default 8). The defaults
//! take a few seconds per interpreter in a debug build.

use canceltree::backend::{self, Spec, discover};
use canceltree::{explore, generate, invariants, render, syntax};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_cancel_point_of_small_generated_programs_keeps_every_invariant() {
    let seed = env_u64("CANCELTREE_SEED", 0);
    let cases = env_u64("CANCELTREE_CASES", 150);
    let size = env_u64("CANCELTREE_SIZE", 8) as usize;
    let versions = discover::versions();
    if versions.is_empty() {
        eprintln!("no CPython 3.11+ found: nothing explored");
        return;
    }
    let mut failures = Vec::new();
    for (a, b) in versions {
        let spec = Spec::parse(&format!("cpython:{a}.{b}")).unwrap();
        let mut backend = backend::open(&spec).expect("discovered interpreter starts");
        let (mut runs, mut known) = (0, 0);
        for s in seed..seed + cases {
            let p = generate::program(s, size);
            let base = backend.run(&p);
            let mut plans = vec![vec![]];
            plans.extend(explore::points(&base).into_iter().map(|q| vec![q]));
            for inject in plans {
                let t = if inject.is_empty() {
                    base.clone()
                } else {
                    backend.run_with(&p, &inject)
                };
                runs += 1;
                for v in invariants::check(&p, &t, (a, b)) {
                    if invariants::known_cpython_bug(&p, &t, (a, b), &v).is_some() {
                        known += 1;
                        continue;
                    }
                    if failures.len() < 3 {
                        failures.push(format!(
                            "cpython:{a}.{b}, seed {s}, {}: {}: {}\n{}{}",
                            explore::describe(&inject),
                            v.invariant,
                            v.message,
                            syntax::print(&p),
                            render::text(&t, &render::labels(&p))
                        ));
                    } else {
                        failures.push(String::new());
                    }
                }
            }
        }
        eprintln!(
            "cpython:{a}.{b}: {cases} programs, {runs} runs, {known} violation(s) explained by known CPython bugs"
        );
    }
    let shown: Vec<&String> = failures.iter().filter(|f| !f.is_empty()).collect();
    assert!(
        failures.is_empty(),
        "{} violation(s); the first ones:\n\n{}",
        failures.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
