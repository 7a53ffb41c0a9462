//! Exhaustive cancel-point exploration: loom's idea applied to asyncio's
//! deterministic schedule. One run of a program shows every place a cancel
//! could land: each loop iteration boundary, and each task alive there. The
//! program is rerun once per such point with `cancel(task)` injected before
//! that iteration (or once per pair, with two cancels), and every invariant
//! is checked on every run.

use crate::ast::Program;
use crate::backend::{Backend, Family, Interpreter, Spec, discover};
use crate::invariants::{self, Violation};
use crate::render;
use crate::trace::{Injection, Trace, What};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Runs made at most, unless the caller says otherwise: pairs grow
/// quadratically with the number of points.
pub const DEFAULT_MAX_RUNS: usize = 5_000;

/// Every injection point of a run: `(iteration k, task)` for each task that
/// was created before iteration k and was neither done nor collected
/// before it, for every iteration k from 1 to the last one the trace shows.
/// Tasks are named as injections name them; a name two tasks share is one
/// point (the injection cancels both).
pub fn points(trace: &Trace) -> Vec<Injection> {
    let n = trace.tasks.len();
    let mut created = vec![u32::MAX; n];
    let mut gone = vec![u32::MAX; n];
    let names: Vec<&str> = trace.tasks.iter().map(|t| &*t.name).collect();
    let mut last = 0;
    for e in &trace.events {
        last = last.max(e.it);
        match &e.what {
            What::Create { task, .. } if (*task as usize) < n => {
                created[*task as usize] = created[*task as usize].min(e.it)
            }
            What::Done { task, .. } if (*task as usize) < n => {
                gone[*task as usize] = gone[*task as usize].min(e.it)
            }
            What::Handler {
                msg, obj: Some(o), ..
            } if msg == "Task was destroyed but it is pending!" => {
                if let Some(k) = names.iter().position(|x| *x == &**o) {
                    gone[k] = gone[k].min(e.it);
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<Injection> = Vec::new();
    for k in 1..=last {
        for t in 0..n {
            if created[t] < k
                && gone[t] >= k
                && !out.iter().any(|p| p.iteration == k && p.task == names[t])
            {
                out.push(Injection {
                    iteration: k,
                    task: names[t].to_string(),
                    msg: None,
                });
            }
        }
    }
    out
}

/// What one exploration found.
#[derive(Debug, Default)]
pub struct Report {
    /// Runs made, the unmodified one included.
    pub runs: usize,
    /// Injection points of the unmodified run.
    pub points: usize,
    /// Runs planned but not made because of the cap. With two cancels this
    /// is a lower bound: the pairs of a first point that was never run are
    /// not known.
    pub skipped: usize,
    /// Runs the backend itself failed (hung, crashed): their injections
    /// and what the backend said.
    pub backend_failures: Vec<(Vec<Injection>, String)>,
    /// Per invariant: how many violations, and the smallest example.
    pub findings: BTreeMap<&'static str, Finding>,
}

#[derive(Debug)]
pub struct Finding {
    pub count: usize,
    /// The injections of the smallest failing run (fewest cancels, then
    /// earliest), its first violation of this invariant, and its trace.
    pub inject: Vec<Injection>,
    pub violation: Violation,
    pub trace: Trace,
    /// The upstream CPython bug that explains the example, if one does.
    pub known: Option<invariants::KnownBug>,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.findings.is_empty()
    }

    fn record(
        &mut self,
        program: &Program,
        version: (u32, u32),
        inject: &[Injection],
        trace: &Trace,
    ) {
        let found = invariants::check(program, trace, version);
        let known = |v: &Violation| invariants::known_cpython_bug(program, trace, version, v);
        self.runs += 1;
        if trace.backend_failed() {
            self.backend_failures
                .push((inject.to_vec(), render::outcome(trace)));
        }
        for v in found {
            let key = |i: &[Injection]| {
                (
                    i.len(),
                    i.iter()
                        .map(|x| (x.iteration, x.task.clone()))
                        .collect::<Vec<_>>(),
                )
            };
            match self.findings.get_mut(v.invariant) {
                Some(f) => {
                    f.count += 1;
                    if key(inject) < key(&f.inject) {
                        f.inject = inject.to_vec();
                        f.known = known(&v);
                        f.violation = v;
                        f.trace = trace.clone();
                    }
                }
                None => {
                    let finding = Finding {
                        count: 1,
                        inject: inject.to_vec(),
                        known: known(&v),
                        violation: v.clone(),
                        trace: trace.clone(),
                    };
                    self.findings.insert(v.invariant, finding);
                }
            }
        }
    }

    /// The summary `canceltree explore` prints.
    pub fn render(&self, program: &Program) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} runs: the program as written and {} injection point(s)",
            self.runs, self.points
        );
        if self.skipped > 0 {
            let _ = writeln!(
                s,
                "capped: {} planned run(s) not made (raise --max-runs to make them)",
                self.skipped
            );
        }
        if !self.backend_failures.is_empty() {
            let _ = writeln!(
                s,
                "{} run(s) failed in the backend (not checked):",
                self.backend_failures.len()
            );
            for (inj, what) in self.backend_failures.iter().take(5) {
                let _ = writeln!(s, "  {}: {what}", describe(inj));
            }
        }
        if self.findings.is_empty() {
            let _ = writeln!(s, "no invariant violated");
            return s;
        }
        let labels = render::labels(program);
        for (name, f) in &self.findings {
            let _ = writeln!(
                s,
                "\nVIOLATED {name}: {} time(s); smallest example: {}",
                f.count,
                describe(&f.inject)
            );
            let _ = writeln!(s, "  {}", f.violation.message);
            if let Some(k) = f.known {
                let (a, b) = k.fixed_in;
                let _ = writeln!(
                    s,
                    "  known CPython bug {}: {} (fixed in {a}.{b})",
                    k.issue, k.summary
                );
            }
            for line in render::text(&f.trace, &labels).lines() {
                let _ = writeln!(s, "  | {line}");
            }
        }
        s
    }
}

/// `cancel TASK before iteration K`, for a list of injections.
pub fn describe(inject: &[Injection]) -> String {
    if inject.is_empty() {
        return "no injection (the program as written)".to_string();
    }
    let parts: Vec<String> = inject
        .iter()
        .map(|i| format!("cancel {} before iteration {}", i.task, i.iteration))
        .collect();
    parts.join(", then ")
}

/// Explores with the default cap on runs.
pub fn explore(
    backend: &mut dyn Backend,
    program: &Program,
    cancels: u32,
    version: (u32, u32),
) -> Report {
    explore_capped(backend, program, cancels, version, DEFAULT_MAX_RUNS)
}

/// Runs the program, then once per injection point (`cancels` = 1), or
/// also once per ordered pair (`cancels` = 2): for each first point p, the
/// second cancel goes to each point of p's own run at p's iteration or
/// later, so it lands where the first cancel left the schedule. At most
/// `max_runs` runs are made; the rest are counted in `skipped`.
pub fn explore_capped(
    backend: &mut dyn Backend,
    program: &Program,
    cancels: u32,
    version: (u32, u32),
    max_runs: usize,
) -> Report {
    let mut report = Report::default();
    let base = backend.run(program);
    report.record(program, version, &[], &base);
    let firsts = points(&base);
    backend.recycle(base);
    report.points = firsts.len();
    let mut planned = 1 + firsts.len();
    for p in &firsts {
        if report.runs >= max_runs {
            break;
        }
        let inject = vec![p.clone()];
        let trace = backend.run_with(program, &inject);
        report.record(program, version, &inject, &trace);
        if cancels < 2 || trace.backend_failed() {
            backend.recycle(trace);
            continue;
        }
        let seconds: Vec<Injection> = points(&trace)
            .into_iter()
            .filter(|q| q.iteration >= p.iteration && q != p)
            .collect();
        backend.recycle(trace);
        planned += seconds.len();
        for q in seconds {
            if report.runs >= max_runs {
                break;
            }
            let inject = vec![p.clone(), q];
            let trace = backend.run_with(program, &inject);
            report.record(program, version, &inject, &trace);
            backend.recycle(trace);
        }
    }
    report.skipped = planned - report.runs;
    report
}

/// The Python version (major, minor) a backend spec runs, for choosing the
/// invariants that hold there.
pub fn spec_version(spec: &Spec) -> Result<(u32, u32), String> {
    match &spec.family {
        Family::Cpython(Interpreter::Version(a, b)) | Family::Model(a, b) => Ok((*a, *b)),
        Family::Cpython(interp @ Interpreter::Path(_)) => {
            let found = discover::resolve(interp)?;
            Ok((found.version.0, found.version.1))
        }
    }
}

/// An opened backend and the Python version (major, minor) it runs.
type Opened = (Box<dyn Backend>, (u32, u32));

fn open_spec(text: &str) -> Result<Opened, String> {
    let spec = Spec::parse(text).map_err(|e| format!("error: {e}"))?;
    let version = spec_version(&spec).map_err(|e| format!("error: {e}"))?;
    let backend = crate::backend::open(&spec).map_err(|e| format!("error: {e}"))?;
    Ok((backend, version))
}

/// `canceltree check FILE --backend B...`: runs the program on each backend
/// and prints the violations of the invariants for its version. Exit 1 if
/// any; errors (bad spec, missing interpreter) are for the caller to exit 2.
pub fn check_cli(program: &Program, specs: &[String]) -> Result<std::process::ExitCode, String> {
    let opened: Vec<_> = specs
        .iter()
        .map(|s| open_spec(s))
        .collect::<Result<_, _>>()?;
    let mut failed = false;
    for (mut backend, version) in opened {
        let trace = backend.run(program);
        let name = backend.name().to_string();
        if trace.backend_failed() {
            println!(
                "{name}: backend failed, nothing checked: {}",
                render::outcome(&trace)
            );
            failed = true;
            continue;
        }
        let found = invariants::check(program, &trace, version);
        let applicable = invariants::ALL
            .iter()
            .filter(|i| i.applies(version))
            .count();
        if found.is_empty() {
            println!("{name}: all {applicable} invariants hold");
            continue;
        }
        failed = true;
        println!(
            "{name}: {} violation(s) of the {applicable} invariants for {}.{}:",
            found.len(),
            version.0,
            version.1
        );
        for v in &found {
            let at = v.node.map(|n| format!(" at #{n}")).unwrap_or_default();
            println!("  {}{at}: {}", v.invariant, v.message);
            if let Some(k) = invariants::known_cpython_bug(program, &trace, version, v) {
                println!(
                    "    known CPython bug {}: {} (fixed in {}.{})",
                    k.issue, k.summary, k.fixed_in.0, k.fixed_in.1
                );
            }
        }
        print!("{}", render::text(&trace, &render::labels(program)));
    }
    Ok(std::process::ExitCode::from(failed as u8))
}

/// `canceltree explore FILE --backend B --cancels N`: prints the summary.
pub fn explore_cli(
    program: &Program,
    spec: &str,
    cancels: u32,
    max_runs: usize,
) -> Result<std::process::ExitCode, String> {
    let (mut backend, version) = open_spec(spec)?;
    let report = explore_capped(backend.as_mut(), program, cancels, version, max_runs);
    println!(
        "{} ({}.{}), {} cancel(s) per run",
        backend.name(),
        version.0,
        version.1,
        cancels
    );
    print!("{}", report.render(program));
    Ok(std::process::ExitCode::from(report.failed() as u8))
}
