//! `canceltree fingerprint`: one line per generated program with a hash of
//! each backend's trace. Two builds print the same lines until a change
//! moves a trace, so `diff` of their outputs names every program a model
//! change touched, by size and seed, ready for `canceltree gen` and a run
//! against CPython. Figures for a change ("10 traces from differing to
//! agreeing") come from there.

use crate::backend::Backend;
use crate::generate;
use crate::trace::Trace;
use std::io::{self, Write};

/// The programs the project's notes call "the 200,000-run fingerprint":
/// seeds 7-20,006 at sizes 10 and 50, on the five model profiles.
pub const DEFAULT_FIRST_SEED: u64 = 7;
pub const DEFAULT_CASES: u64 = 20_000;
pub const DEFAULT_SIZES: [usize; 2] = [10, 50];

/// FNV-1a over the trace's JSON (the wire format, `docs/TRACE.md`): stable
/// across builds, platforms and runs, unlike `std`'s hashers.
pub fn hash(trace: &Trace) -> u64 {
    let json = serde_json::to_vec(trace).expect("a trace always serializes");
    json.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes a header naming the backends, then for each size and each seed
/// `first..first+cases` the line `SIZE SEED HASH...`, one hash per backend
/// in the order given.
pub fn write(
    backends: &mut [Box<dyn Backend>],
    sizes: &[usize],
    first: u64,
    cases: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    write!(out, "# size seed")?;
    for b in backends.iter() {
        write!(out, " {}", b.name())?;
    }
    writeln!(out)?;
    for &size in sizes {
        for seed in first..first.saturating_add(cases) {
            let program = generate::program(seed, size);
            write!(out, "{size} {seed}")?;
            for b in backends.iter_mut() {
                let trace = b.run(&program);
                write!(out, " {:016x}", hash(&trace))?;
                b.recycle(trace);
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Spec, open};

    fn model(spec: &str) -> Box<dyn Backend> {
        open(&Spec::parse(spec).expect("a model spec")).expect("the model opens")
    }

    fn print(specs: &[&str], sizes: &[usize], first: u64, cases: u64) -> String {
        let mut backends: Vec<_> = specs.iter().map(|s| model(s)).collect();
        let mut out = Vec::new();
        write(&mut backends, sizes, first, cases, &mut out).expect("writing to a Vec");
        String::from_utf8(out).expect("ASCII")
    }

    /// Two runs, on fresh backends or not, print the same bytes: the point
    /// of a fingerprint is that only a change to a backend moves it.
    #[test]
    fn fingerprint_is_the_same_on_every_run() {
        let a = print(&["model:3.11", "model:3.13+eager"], &[10, 30], 100, 40);
        let b = print(&["model:3.11", "model:3.13+eager"], &[10, 30], 100, 40);
        assert_eq!(a, b);
        let lines: Vec<&str> = a.lines().collect();
        assert_eq!(lines[0], "# size seed model:3.11 model:3.13+eager");
        assert_eq!(lines.len(), 1 + 2 * 40);
        assert!(lines[1].starts_with("10 100 "), "{}", lines[1]);
        assert!(lines[80].starts_with("30 139 "), "{}", lines[80]);
        assert!(lines[1..].iter().all(|l| l.split(' ').count() == 4));
    }

    /// A hash stands for the whole trace: traces that differ anywhere
    /// (here, programs whose traces differ between profiles) hash apart,
    /// and equal traces hash alike.
    #[test]
    fn fingerprint_hashes_differ_exactly_when_traces_do() {
        let mut old = model("model:3.11");
        let mut new = model("model:3.12");
        let (mut same, mut differ) = (0, 0);
        for seed in 0..300 {
            let p = generate::program(seed, 30);
            let (a, b) = (old.run(&p), new.run(&p));
            assert_eq!(a == b, hash(&a) == hash(&b), "seed {seed}");
            if a == b { same += 1 } else { differ += 1 }
        }
        assert!(same > 0 && differ > 0, "{same} equal, {differ} differing");
    }
}
