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

/// Runs `programs` through each backend's normal path and, where it has one,
/// its in-process mode.
pub fn measure(backends: &mut [Box<dyn Backend>], programs: &[Program]) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in backends.iter_mut() {
        let start = Instant::now();
        let events: u64 = programs.iter().map(|p| b.run(p).events.len() as u64).sum();
        let secs = start.elapsed().as_secs_f64();
        rows.push(Row {
            backend: b.name().to_string(),
            mode: "run",
            programs: programs.len(),
            events,
            secs,
        });
        if let Some((secs, events)) = b.run_in_process(programs) {
            rows.push(Row {
                backend: b.name().to_string(),
                mode: IN_PROCESS,
                programs: programs.len(),
                events,
                secs,
            });
        }
    }
    rows
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
run: everything each program costs through the backend's normal path.
in-process: only running; each backend first prepares every program
(CPython compiles it, the model makes its scope analysis) untimed.
";
