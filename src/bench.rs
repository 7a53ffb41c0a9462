//! `canceltree bench`: the same generated programs on every backend, with
//! programs/s and events/s per backend and the ratio to the fastest. Speed
//! goals are checked here, by reading figures, never in timed tests.

use crate::ast::Program;
use crate::backend::Backend;
use crate::generate;
use std::fmt::Write;
use std::time::Instant;

pub struct Row {
    pub backend: String,
    pub mode: &'static str,
    pub programs: usize,
    pub events: u64,
    pub secs: f64,
}

impl Row {
    pub fn programs_per_sec(&self) -> f64 {
        self.programs as f64 / self.secs.max(1e-9)
    }

    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs.max(1e-9)
    }
}

/// `cases` programs of about `size` nodes, seeds `seed..seed+cases`.
pub fn programs(seed: u64, cases: usize, size: usize) -> Vec<Program> {
    (0..cases as u64)
        .map(|i| generate::program(seed.wrapping_add(i), size))
        .collect()
}

/// How many rounds `measure` splits the programs into.
const ROUNDS: usize = 10;

/// Runs `programs` through each backend's normal path and, where it has one,
/// its in-process mode. The programs go in rounds, each backend taking its
/// turn at each round: a machine whose speed drifts over minutes (a shared
/// host, thermal limits) then slows every backend alike, and the ratios
/// hold even when the absolute figures do not.
pub fn measure(backends: &mut [Box<dyn Backend>], programs: &[Program]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let chunk = programs.len().div_ceil(ROUNDS).max(1);
    for round in programs.chunks(chunk) {
        for b in backends.iter_mut() {
            let start = Instant::now();
            let events: u64 = round
                .iter()
                .map(|p| {
                    let trace = b.run(p);
                    let events = trace.events.len() as u64;
                    b.recycle(trace);
                    events
                })
                .sum();
            let secs = start.elapsed().as_secs_f64();
            add(&mut rows, b.name(), "run", round.len(), events, secs);
            if let Some((secs, events)) = b.run_in_process(round) {
                add(&mut rows, b.name(), IN_PROCESS, round.len(), events, secs);
            }
        }
    }
    rows
}

/// Adds a round's figures to the row of `backend` and `mode`.
fn add(rows: &mut Vec<Row>, backend: &str, mode: &'static str, n: usize, events: u64, secs: f64) {
    match rows
        .iter_mut()
        .find(|r| r.backend == backend && r.mode == mode)
    {
        Some(r) => {
            r.programs += n;
            r.events += events;
            r.secs += secs;
        }
        None => rows.push(Row {
            backend: backend.to_string(),
            mode,
            programs: n,
            events,
            secs,
        }),
    }
}

pub fn report(rows: &[Row]) -> String {
    let best = rows.iter().map(Row::programs_per_sec).fold(0.0, f64::max);
    let mut out = format!(
        "{:<24} {:<11} {:>10} {:>14} {:>14} {:>9}\n",
        "backend", "mode", "programs", "programs/s", "events/s", "x slower"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<24} {:<11} {:>10} {:>14.0} {:>14.0} {:>9.1}",
            r.backend,
            r.mode,
            r.programs,
            r.programs_per_sec(),
            r.events_per_sec(),
            best / r.programs_per_sec().max(1e-9)
        );
    }
    if rows.iter().any(|r| r.mode == IN_PROCESS) {
        out.push_str(IN_PROCESS_NOTE);
    }
    out
}

const IN_PROCESS: &str = "in-process";

/// What the in-process rows time, for whoever compares them.
const IN_PROCESS_NOTE: &str = "\
Programs run in 10 rounds, each backend taking its turn at each round.
run: everything each program costs through the backend's normal path.
in-process: only running; each backend first prepares every program
(CPython compiles it, the model makes its scope analysis) untimed.
";

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds split the work, they must not lose or repeat any of it: each
    /// mode's row counts every program once, with the events its runs had.
    #[test]
    fn measure_counts_every_program_once_per_mode_across_rounds() {
        let programs = programs(3, 23, 10);
        let spec = crate::backend::Spec::parse("model:3.12").expect("a model spec");
        let mut solo = crate::backend::open(&spec).expect("the model opens");
        let want: u64 = programs
            .iter()
            .map(|p| solo.run(p).events.len() as u64)
            .sum();
        let mut backends = vec![crate::backend::open(&spec).expect("the model opens")];
        let rows = measure(&mut backends, &programs);
        let modes: Vec<&str> = rows.iter().map(|r| r.mode).collect();
        assert_eq!(modes, ["run", IN_PROCESS]);
        for r in &rows {
            assert_eq!(r.programs, 23, "{} row", r.mode);
            assert_eq!(r.events, want, "{} row", r.mode);
        }
    }
}
