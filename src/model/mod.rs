//! The reference model: an exact, deterministic executable model of
//! CPython asyncio's scheduling and cancellation (issue 3).
//!
//! A run is a small-step interpreter over the program tree. Each task owns
//! an explicit stack of small `Copy` frames (`coro.rs`, each frame's step
//! in `frames.rs`, names in `names.rs`); the loop (`eventloop.rs`) runs
//! handles exactly as `base_events._run_once` does; futures and tasks
//! (`fut.rs`) follow `futures.py`/`tasks.py` and the C `_asyncio` module;
//! combinators (`comb.rs`, `wait.rs`, `timeout.rs`, `taskgroup.rs`)
//! follow `tasks.py`, `timeouts.py` and
//! `taskgroups.py`; who holds what, and so when an object dies, is in
//! `gc.rs`; the machine's state and its reset between programs in
//! `machine.rs`; the run itself in `run.rs`, and its shutdown and final
//! task table in `ending.rs`. Nothing recurses on the Rust stack in
//! proportion to the program or to an await chain, except eager task
//! starts nested inside each other (bounded like CPython's own recursion).

mod cbs;
mod collect;
mod comb;
mod context;
mod coro;
mod dealloc;
mod ending;
mod eventloop;
mod exc;
mod finalize;
mod frames;
mod fut;
mod gather;
mod gc;
mod gcitems;
pub(crate) mod gcorder;
mod gcrefs;
mod graph;
mod machine;
mod names;
mod profile;
mod reach;
mod reset;
mod run;
mod scope;
mod star;
mod stmt;
mod task;
mod taskgroup;
mod timeout;
mod traceback;
mod value;
mod wait;

pub use profile::Profile;

use crate::ast::Program;
use crate::backend::Backend;
use crate::trace::{Injection, Trace};

/// `model:3.X[+eager]`: runs programs on the model with one profile,
/// keeping its arenas between programs.
pub struct ModelBackend {
    name: String,
    machine: machine::Machine,
}

impl ModelBackend {
    pub fn new(name: &str, profile: Profile) -> ModelBackend {
        ModelBackend {
            name: name.to_string(),
            machine: machine::Machine::new(profile),
        }
    }

    pub fn profile(&self) -> Profile {
        self.machine.profile
    }
}

// SAFETY: every `Rc` inside the machine is created and dropped by it and
// never handed out, so moving the whole backend to another thread moves
// all clones together; the program pointer is only set during `run`.
unsafe impl Send for ModelBackend {}

impl Backend for ModelBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        self.machine.profile.describe()
    }

    fn run_with(&mut self, program: &Program, inject: &[Injection]) -> Trace {
        self.machine.run(program, inject)
    }

    fn recycle(&mut self, trace: Trace) {
        self.machine.recycle(trace);
    }

    /// Analyses every program first, then times only running them: the
    /// CPython backend likewise compiles every program before timing.
    fn run_in_process(&mut self, programs: &[Program]) -> Option<(f64, u64)> {
        let mut analyses: Vec<_> = programs.iter().map(|p| self.machine.analyse(p)).collect();
        let start = std::time::Instant::now();
        let mut events = 0u64;
        for (p, a) in programs.iter().zip(&mut analyses) {
            events += timed_run(&mut self.machine, p, a);
        }
        Some((start.elapsed().as_secs_f64(), events))
    }
}

/// One program of the benchmark's timed loop: the run and giving its
/// trace back (`Backend::recycle`), as a campaign does. Kept out of line
/// so that a profiler can count exactly the timed work (callgrind
/// `--toggle-collect` on it).
#[inline(never)]
fn timed_run(m: &mut machine::Machine, p: &Program, a: &mut machine::Analysis) -> u64 {
    let trace = m.run_analysed(p, a, &[]);
    let events = trace.events.len() as u64;
    m.recycle(trace);
    events
}

/// Runs one program on a fresh model with `profile`.
pub fn run(program: &Program, profile: Profile) -> Trace {
    machine::Machine::new(profile).run(program, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 150 bench programs of size 10 and 150 of size 50, from `seed`.
    fn small_and_medium(seed: u64) -> Vec<Program> {
        [10usize, 50]
            .iter()
            .flat_map(|&size| crate::bench::programs(seed, 150, size))
            .collect()
    }

    /// The in-process benchmark runs programs with analyses made
    /// beforehand; that must not change a single trace, nor the analysis
    /// (it is reused), nor the next ordinary run on the same machine.
    #[test]
    fn runs_with_an_analysis_made_beforehand_give_the_same_traces() {
        let programs = small_and_medium(11);
        for (major, minor, eager) in [(3, 11, false), (3, 12, false), (3, 13, true)] {
            let profile = Profile::new(major, minor, eager).expect("a modelled version");
            let mut m = machine::Machine::new(profile);
            let mut analyses: Vec<_> = programs.iter().map(|p| m.analyse(p)).collect();
            for (i, (p, a)) in programs.iter().zip(&mut analyses).enumerate() {
                let fresh = run(p, profile);
                assert_eq!(m.run_analysed(p, a, &[]), fresh, "program {i}, {profile:?}");
                assert_eq!(m.run_analysed(p, a, &[]), fresh, "program {i} reran");
                assert_eq!(m.run(p, &[]), fresh, "program {i}, plain run after");
            }
            // An empty program ends its run before any analysis is read:
            // the next run must still make its own.
            let empty = Program::default();
            let mut a = m.analyse(&empty);
            m.run_analysed(&empty, &mut a, &[]);
            let p = &programs[0];
            assert_eq!(
                m.run(p, &[]),
                run(p, profile),
                "plain run after an empty one"
            );
        }
    }

    /// A backend given its traces back (`Backend::recycle`) lends their
    /// buffers to the next runs, and so does one given another machine's
    /// trace: neither may change a single trace, on any profile.
    #[test]
    fn a_backend_given_its_traces_back_gives_the_same_traces() {
        let programs = small_and_medium(7);
        for spec in [
            "model:3.11",
            "model:3.12",
            "model:3.12+eager",
            "model:3.13",
            "model:3.13+eager",
        ] {
            let parsed = crate::backend::Spec::parse(spec).expect("a model spec");
            let mut b = crate::backend::open(&parsed).expect("the model opens");
            let crate::backend::Family::Model(major, minor) = parsed.family else {
                unreachable!("a model spec");
            };
            let profile = Profile::new(major, minor, parsed.eager).expect("a modelled version");
            for (i, p) in programs.iter().enumerate() {
                let fresh = run(p, profile);
                let trace = b.run(p);
                assert_eq!(trace, fresh, "program {i}, {spec}");
                b.recycle(trace);
                if i % 3 == 0 {
                    b.recycle(fresh);
                }
            }
        }
    }
}
