//! Fuzz campaigns: generated programs run on sets of backends, every trace
//! compared against the first backend's and checked by the invariants;
//! each distinct failure (by `signature`) is minimized (`minimize`) and
//! written as a bundle (`bundle`) as soon as it is found; where the campaign
//! stands is saved in `DIR/campaign.json` (`state`) for `--resume`.
//!
//! Determinism: case `i` of a campaign with seed `S` is
//! `generate::program(S + i, size)`, whatever the number of jobs; jobs take
//! case numbers from a shared counter, and each job opens its own backends.
//! So the same seed runs the same programs and, with `--cases`, finds the
//! same signatures. Which case first claims a signature (and so the exact
//! minimized program) can depend on scheduling when there are several jobs.

pub mod bundle;
pub mod checks;
pub mod cli;
pub mod minimize;
pub mod progress;
pub mod signature;
pub mod state;

use crate::ast::Program;
use crate::backend::{self, Backend, Family, Interpreter, Spec, discover};
use crate::generate;
use crate::trace::{Outcome, Trace};
use bundle::{FindingKind, Origin};
use checks::Violation;
use minimize::{Budget, Stats};
use state::{Counts, Record, State};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Rough number of nodes per generated program when `--size` is not given.
pub const DEFAULT_SIZE: usize = 12;
/// Campaign length when neither `--time` nor `--cases` is given.
pub const DEFAULT_SECS: f64 = 60.0;
/// How often the state file is rewritten while a campaign runs.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// An opened backend with the spec it was opened from and the Python
/// version its traces are checked against.
pub struct Opened {
    pub spec: String,
    pub version: (u32, u32),
    pub backend: Box<dyn Backend>,
}

impl Opened {
    pub fn open(spec: &str) -> Result<Opened, String> {
        let parsed = Spec::parse(spec)?;
        let version = version_of(&parsed)?;
        let backend = backend::open(&parsed)?;
        Ok(Opened {
            spec: spec.to_string(),
            version,
            backend,
        })
    }
}

/// Opens every spec; the first error is returned.
pub fn open_all(specs: &[String]) -> Result<Vec<Opened>, String> {
    specs.iter().map(|s| Opened::open(s)).collect()
}

/// The Python version whose rules a backend follows.
pub fn version_of(spec: &Spec) -> Result<(u32, u32), String> {
    match &spec.family {
        Family::Cpython(Interpreter::Version(a, b)) | Family::Model(a, b) => Ok((*a, *b)),
        Family::Cpython(Interpreter::Path(p)) => discover::probe(p)
            .map(|f| (f.version.0, f.version.1))
            .ok_or_else(|| format!("{} does not run as a Python interpreter", p.display())),
    }
}

/// The program of case `case` in a campaign with seed `seed`.
pub fn case_program(seed: u64, case: u64, size: usize) -> Program {
    generate::program(seed.wrapping_add(case), size)
}

/// One distinct way a case fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub signature: String,
    pub kind: FindingKind,
    /// The backends that show it: for a divergence the reference and those
    /// that disagree with it, for a violation the backend whose trace breaks it.
    pub backends: Vec<String>,
}

/// What running one program on a group of backends showed.
pub struct Verdict {
    /// Each backend's trace, in the group's order.
    pub traces: Vec<(String, Trace)>,
    /// Backends that hung or crashed; a group with one is not diffed.
    pub failed: Vec<String>,
    pub hung: u64,
    pub crashed: u64,
    /// Distinct failures, divergence first.
    pub failures: Vec<Failure>,
    pub violations: Vec<(String, Violation)>,
}

impl Verdict {
    pub fn trace(&self, spec: &str) -> Option<&Trace> {
        self.traces.iter().find(|(s, _)| s == spec).map(|(_, t)| t)
    }
}

/// Runs `program` on every backend, diffs the traces against the first's
/// and checks each against the invariants for its version.
pub fn judge(program: &Program, backends: &mut [&mut Opened]) -> Verdict {
    let traces: Vec<(String, Trace)> = backends
        .iter_mut()
        .map(|o| (o.spec.clone(), o.backend.run(program)))
        .collect();
    let mut v = Verdict {
        traces,
        failed: Vec::new(),
        hung: 0,
        crashed: 0,
        failures: Vec::new(),
        violations: Vec::new(),
    };
    for (spec, t) in &v.traces {
        match t.outcome {
            Outcome::Hung { .. } => v.hung += 1,
            Outcome::Crashed(_) => v.crashed += 1,
            _ => continue,
        }
        v.failed.push(spec.clone());
    }
    if v.failed.is_empty() {
        let refs: Vec<(&str, &Trace)> = v.traces.iter().map(|(s, t)| (s.as_str(), t)).collect();
        if let Some((sig, others)) = signature::divergence(program, &refs) {
            let mut backends = vec![v.traces[0].0.clone()];
            backends.extend(others.iter().map(|&i| v.traces[i].0.clone()));
            v.failures.push(Failure {
                signature: sig,
                kind: FindingKind::Divergence,
                backends,
            });
        }
    }
    for (o, (spec, t)) in backends.iter().zip(&v.traces) {
        if t.backend_failed() {
            continue;
        }
        for viol in checks::violations(program, t, o.version) {
            let sig = signature::violation(program, viol.invariant, viol.node);
            if !v.failures.iter().any(|f| f.signature == sig) {
                v.failures.push(Failure {
                    signature: sig,
                    kind: FindingKind::Violation,
                    backends: vec![spec.clone()],
                });
            }
            v.violations.push((spec.clone(), viol));
        }
    }
    v
}

/// The backends of `group` that show `failure`, in the group's order.
fn subset<'a>(group: &'a mut [Opened], failure: &Failure) -> Vec<&'a mut Opened> {
    group
        .iter_mut()
        .filter(|o| failure.backends.contains(&o.spec))
        .collect()
}

/// Minimizes `program` while it still shows `failure`'s signature on
/// `backends` (those of the failure).
pub fn minimize_failure(
    program: &Program,
    failure: &Failure,
    backends: &mut [&mut Opened],
    budget: Budget,
) -> (Program, Stats) {
    let mut keeps = |c: &Program| {
        judge(c, backends)
            .failures
            .iter()
            .any(|f| f.signature == failure.signature)
    };
    minimize::minimize(program, &mut keeps, budget)
}

/// Where a bundled program comes from.
#[derive(Clone, Copy, Debug)]
pub struct Provenance {
    /// The campaign case, if a campaign generated it.
    pub origin: Option<Origin>,
    /// The size of the program minimization started from.
    pub nodes_before: usize,
    pub minimized: bool,
}

/// Writes the bundle `out/slug` of `failure` shown by `program`, whose
/// `verdict` on the failure's backends is given; `described` maps backend
/// specs to what they run on.
pub fn write_bundle(
    out: &Path,
    slug: &str,
    program: &Program,
    failure: &Failure,
    verdict: &Verdict,
    described: &HashMap<String, String>,
    from: Provenance,
) -> std::io::Result<PathBuf> {
    let runs = failure
        .backends
        .iter()
        .filter_map(|b| {
            let trace = verdict.trace(b)?;
            Some(bundle::Run {
                spec: b,
                describe: described.get(b).map_or("", |s| s.as_str()),
                trace,
            })
        })
        .collect();
    let violations = verdict
        .violations
        .iter()
        .filter(|(_, v)| signature::violation(program, v.invariant, v.node) == failure.signature)
        .cloned()
        .collect();
    let f = bundle::Finding {
        signature: &failure.signature,
        kind: failure.kind,
        program,
        runs,
        violations,
        origin: from.origin,
        nodes_before: from.nodes_before,
        minimized: from.minimized,
    };
    bundle::write(out, slug, &f)
}

/// Which backends a campaign runs, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// In each group every trace is compared against the first's.
    pub groups: Vec<Vec<String>>,
    pub why: String,
}

impl Plan {
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(|g| g.join(" vs ")).collect();
        format!("{} ({})", groups.join("; "), self.why)
    }
}

/// The plan with no `--backend`: each model profile against its CPython
/// when model backends open, else every discovered CPython against the
/// oldest (cross-version), else the one CPython alone (invariants only).
pub fn default_plan() -> Result<Plan, String> {
    let versions = discover::versions();
    if versions.is_empty() {
        return Err(
            "error: no CPython 3.11 or later found under pyenv or on PATH; install one \
                    (`pyenv install 3.12`) or name backends with --backend"
                .to_string(),
        );
    }
    let mut pairs = Vec::new();
    let mut model_error = None;
    for (a, b) in &versions {
        let model = format!("model:{a}.{b}");
        match Spec::parse(&model).and_then(|s| backend::open(&s)) {
            Ok(_) => pairs.push(vec![model, format!("cpython:{a}.{b}")]),
            Err(e) => {
                model_error.get_or_insert(e);
            }
        }
    }
    if !pairs.is_empty() {
        return Ok(Plan {
            groups: pairs,
            why:
                "model backends open: each model profile is diffed against the CPython it models, \
                  and every trace is checked by the invariants"
                    .to_string(),
        });
    }
    let cpythons: Vec<String> = versions
        .iter()
        .map(|(a, b)| format!("cpython:{a}.{b}"))
        .collect();
    let reason = model_error.unwrap_or_default();
    let why = if cpythons.len() > 1 {
        format!(
            "cross-version: model backends do not open ({reason}), so every discovered CPython is \
             diffed against {} and every trace is checked by the invariants",
            cpythons[0]
        )
    } else {
        format!(
            "one interpreter: model backends do not open ({reason}) and only one CPython was \
             found, so its traces are only checked by the invariants"
        )
    };
    Ok(Plan {
        groups: vec![cpythons],
        why,
    })
}

/// A campaign's settings, as the command line gives them (`None`: default,
/// or on `--resume` the state file's).
#[derive(Clone, Debug)]
pub struct Config {
    /// Empty: the default plan.
    pub backends: Vec<String>,
    pub seed: Option<u64>,
    /// Stop when case numbers reach this (counted from case 0, across resumes).
    pub cases: Option<u64>,
    /// Stop after this many seconds of this session.
    pub time: Option<f64>,
    pub jobs: Option<usize>,
    pub size: Option<usize>,
    pub out: PathBuf,
    pub resume: bool,
    /// Redraw a status line on stderr.
    pub tty: bool,
    /// Print nothing on stderr.
    pub quiet: bool,
    /// Most candidate runs per minimization.
    pub max_tests: usize,
}

impl Config {
    pub fn new(out: impl Into<PathBuf>) -> Config {
        Config {
            backends: Vec::new(),
            seed: None,
            cases: None,
            time: None,
            jobs: None,
            size: None,
            out: out.into(),
            resume: false,
            tty: false,
            quiet: true,
            max_tests: Budget::default().max_tests,
        }
    }
}

/// What a campaign session did.
#[derive(Clone, Debug)]
pub struct Summary {
    pub seed: u64,
    pub size: usize,
    pub jobs: usize,
    pub plan: Plan,
    /// The case this session started at, and the one after the last it finished.
    pub first_case: u64,
    pub next_case: u64,
    /// This session's counts, and the campaign's over all sessions.
    pub counts: Counts,
    pub total: Counts,
    pub secs: f64,
    /// Every finding the campaign knows, in order of discovery.
    pub findings: Vec<Record>,
    /// Signatures first found in this session.
    pub new: Vec<String>,
    /// Cases of this session per signature.
    pub hits: BTreeMap<String, u64>,
    pub out: PathBuf,
    pub resumed: bool,
}

impl Summary {
    pub fn distinct(&self, kind: FindingKind) -> usize {
        self.findings
            .iter()
            .filter(|r| r.kind == kind && self.hits.contains_key(&r.signature))
            .count()
    }

    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let c = &self.counts;
        let _ = writeln!(
            s,
            "ran {} cases (case {} to {}) in {:.1} s, {:.0} cases/s, {} jobs, seed {}, size {}",
            c.cases,
            self.first_case,
            self.next_case,
            self.secs,
            c.cases as f64 / self.secs.max(1e-9),
            self.jobs,
            self.seed,
            self.size
        );
        let _ = writeln!(
            s,
            "divergent cases {}, violating cases {} ({} violations), backend failures {} (hung {}, crashed {})",
            c.divergent, c.violating, c.violations, c.backend_failures, c.hung, c.crashed
        );
        if self.resumed {
            let t = &self.total;
            let _ = writeln!(
                s,
                "whole campaign: {} cases, {} divergent, {} violating, {} backend failures",
                t.cases, t.divergent, t.violating, t.backend_failures
            );
        }
        let seen: Vec<&Record> = self
            .findings
            .iter()
            .filter(|r| self.hits.contains_key(&r.signature))
            .collect();
        let _ = writeln!(
            s,
            "distinct findings this session: {} ({} new, {} divergences, {} invariant violations)",
            seen.len(),
            self.new.len(),
            self.distinct(FindingKind::Divergence),
            self.distinct(FindingKind::Violation)
        );
        for r in &seen {
            let mark = if self.new.contains(&r.signature) {
                "new  "
            } else {
                "known"
            };
            let size = if r.minimized {
                format!("{} -> {} nodes", r.nodes_before, r.nodes_after)
            } else {
                format!("{} nodes, not minimized", r.nodes_after)
            };
            let first = r
                .first_secs
                .map_or("found by an earlier campaign".to_string(), |t| {
                    format!("first at {t:.1} s")
                });
            let _ = writeln!(
                s,
                "  {mark} {}\n        {size}, {first}, {} cases, {}",
                r.signature,
                self.hits.get(&r.signature).copied().unwrap_or(0),
                self.out.join(&r.slug).display()
            );
        }
        let _ = writeln!(
            s,
            "state: {} (continue with: canceltree fuzz --resume --out {})",
            state::path(&self.out).display(),
            self.out.display()
        );
        s
    }
}

struct Tally {
    /// Every case below has finished and is folded into `total`.
    watermark: u64,
    /// Finished cases at or above the watermark.
    pending: BTreeMap<u64, Counts>,
    /// Counted up to the watermark, over all sessions.
    total: Counts,
    /// Every finished case of this session, for display.
    session: Counts,
}

struct Entry {
    rec: Record,
    busy: bool,
}

struct Shared {
    seed: u64,
    size: usize,
    groups: Vec<Vec<String>>,
    out: PathBuf,
    limit: Option<u64>,
    max_tests: usize,
    start: Instant,
    /// Seconds of earlier sessions.
    before_secs: f64,
    next: AtomicU64,
    stop: AtomicBool,
    tally: Mutex<Tally>,
    findings: Mutex<BTreeMap<String, Entry>>,
    new: Mutex<Vec<String>>,
    hits: Mutex<BTreeMap<String, u64>>,
    described: Mutex<HashMap<String, String>>,
    ui: Mutex<progress::Ui>,
    errors: Mutex<Vec<String>>,
    /// Known findings whose bundle was written but not minimized (the
    /// campaign that found them was killed): minimized before new cases.
    redo: Mutex<Vec<Record>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn say(&self, msg: &str) {
        lock(&self.ui).say(msg);
    }

    fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn complete(&self, case: u64, c: Counts) {
        let mut t = lock(&self.tally);
        t.session.add(&c);
        t.pending.insert(case, c);
        loop {
            let w = t.watermark;
            let Some(c) = t.pending.remove(&w) else { break };
            t.total.add(&c);
            t.watermark += 1;
        }
    }

    fn state(&self) -> State {
        let (next_case, counts) = {
            let t = lock(&self.tally);
            (t.watermark, t.total)
        };
        let mut findings: Vec<Record> = lock(&self.findings)
            .values()
            .map(|e| e.rec.clone())
            .collect();
        findings.sort_by(|a, b| {
            let at = |r: &Record| r.first_secs.unwrap_or(-1.0);
            at(a).total_cmp(&at(b)).then(a.signature.cmp(&b.signature))
        });
        State {
            format: 1,
            seed: self.seed,
            size: self.size,
            groups: self.groups.clone(),
            next_case,
            counts,
            elapsed_secs: self.before_secs + self.secs(),
            findings,
        }
    }

    fn save(&self) {
        if let Err(e) = state::save(&self.out, &self.state()) {
            lock(&self.errors).push(format!(
                "error: cannot write {}: {e}",
                state::path(&self.out).display()
            ));
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Records a failure shown by `program` (a campaign case when `origin`
    /// says so); a new signature (or a smaller instance of a known one, or a
    /// known one whose bundle is not minimized yet) is minimized and bundled
    /// right here. `verdict` is the program's verdict on `group`.
    fn found(
        &self,
        failure: &Failure,
        program: &Program,
        origin: Option<Origin>,
        verdict: &Verdict,
        group: &mut [Opened],
    ) {
        let case = origin.map(|o| o.case);
        if origin.is_some() {
            *lock(&self.hits)
                .entry(failure.signature.clone())
                .or_insert(0) += 1;
        }
        let claim = {
            let mut f = lock(&self.findings);
            match f.get_mut(&failure.signature) {
                Some(e) => {
                    e.rec.hits += origin.is_some() as u64;
                    let smaller = !e.rec.minimized || program.len() < e.rec.nodes_after;
                    if e.busy || !smaller {
                        return;
                    }
                    e.busy = true;
                    (e.rec.slug.clone(), false)
                }
                None => {
                    let base = signature::slug(&failure.signature);
                    let mut slug = base.clone();
                    let mut k = 2;
                    while f.values().any(|e| e.rec.slug == slug) {
                        slug = format!("{base}-{k}");
                        k += 1;
                    }
                    let rec = Record {
                        signature: failure.signature.clone(),
                        slug: slug.clone(),
                        kind: failure.kind,
                        backends: failure.backends.clone(),
                        case,
                        nodes_before: program.len(),
                        nodes_after: program.len(),
                        minimized: false,
                        hits: 1,
                        first_secs: Some(self.before_secs + self.secs()),
                    };
                    f.insert(failure.signature.clone(), Entry { rec, busy: true });
                    lock(&self.new).push(failure.signature.clone());
                    (slug, true)
                }
            }
        };
        let (slug, first) = claim;
        let described = lock(&self.described).clone();
        if first {
            // Written before minimizing, so that a kill loses nothing.
            if let Err(e) = write_bundle(
                &self.out,
                &slug,
                program,
                failure,
                verdict,
                &described,
                Provenance {
                    origin,
                    nodes_before: program.len(),
                    minimized: false,
                },
            ) {
                self.say(&format!(
                    "error: cannot write bundle {}: {e}",
                    self.out.join(&slug).display()
                ));
            }
            self.save();
            self.say(&format!(
                "new finding at case {}: {} ({} nodes), minimizing...",
                case.unwrap_or_default(),
                failure.signature,
                program.len()
            ));
        }
        let mut backends = subset(group, failure);
        let budget = Budget {
            max_tests: self.max_tests,
            deadline: None,
        };
        let (small, stats) = minimize_failure(program, failure, &mut backends, budget);
        let check = judge(&small, &mut backends);
        let still = check
            .failures
            .iter()
            .any(|f| f.signature == failure.signature);
        let (small, check) = if still {
            (small, check)
        } else {
            (program.clone(), judge(program, &mut backends))
        };
        let improves = {
            let f = lock(&self.findings);
            let e = f.get(&failure.signature).expect("claimed above");
            first || !e.rec.minimized || small.len() < e.rec.nodes_after
        };
        if improves {
            let written = write_bundle(
                &self.out,
                &slug,
                &small,
                failure,
                &check,
                &described,
                Provenance {
                    origin,
                    nodes_before: program.len(),
                    minimized: true,
                },
            );
            {
                let mut f = lock(&self.findings);
                let e = f.get_mut(&failure.signature).expect("claimed above");
                e.rec.case = case;
                e.rec.nodes_before = program.len();
                e.rec.nodes_after = small.len();
                e.rec.minimized = written.is_ok();
            }
            match written {
                Ok(path) => self.say(&format!(
                    "{}: minimized {} -> {} nodes ({} runs{}), bundle {}",
                    failure.signature,
                    stats.nodes_before,
                    small.len(),
                    stats.tests,
                    if stats.exhausted {
                        ", budget exhausted"
                    } else {
                        ""
                    },
                    path.display()
                )),
                Err(e) => self.say(&format!(
                    "error: cannot write bundle {}: {e}",
                    self.out.join(&slug).display()
                )),
            }
        }
        lock(&self.findings)
            .get_mut(&failure.signature)
            .expect("claimed above")
            .busy = false;
        if improves {
            self.save();
        }
    }

    /// Minimizes the bundle of `rec`, written before a kill stopped its
    /// minimization, if its program still shows its signature.
    fn finish_minimizing(&self, rec: &Record, groups: &mut [Vec<Opened>]) {
        let dir = self.out.join(&rec.slug);
        let Ok(loaded) = bundle::load(&dir) else {
            return;
        };
        let Some(group) = groups
            .iter_mut()
            .find(|g| rec.backends.iter().all(|b| g.iter().any(|o| &o.spec == b)))
        else {
            return;
        };
        let failure = Failure {
            signature: rec.signature.clone(),
            kind: rec.kind,
            backends: rec.backends.clone(),
        };
        let verdict = judge(&loaded.program, &mut subset(group, &failure));
        if verdict
            .failures
            .iter()
            .any(|f| f.signature == failure.signature)
        {
            self.say(&format!(
                "{}: minimizing the bundle a previous session left unminimized",
                rec.signature
            ));
            let origin = loaded.meta.and_then(|m| m.origin);
            self.found(&failure, &loaded.program, origin, &verdict, group);
        } else {
            self.say(&format!(
                "{}: {} no longer shows it; left as is",
                rec.signature,
                dir.display()
            ));
        }
    }

    fn worker(&self) -> Result<(), String> {
        let mut groups: Vec<Vec<Opened>> = Vec::new();
        for g in &self.groups {
            groups.push(open_all(g).map_err(|e| format!("error: {e}"))?);
        }
        {
            let mut d = lock(&self.described);
            for o in groups.iter().flatten() {
                d.entry(o.spec.clone())
                    .or_insert_with(|| o.backend.describe());
            }
        }
        loop {
            let Some(rec) = lock(&self.redo).pop() else {
                break;
            };
            self.finish_minimizing(&rec, &mut groups);
        }
        while !self.stop.load(Ordering::SeqCst) {
            let case = self.next.fetch_add(1, Ordering::SeqCst);
            if self.limit.is_some_and(|n| case >= n) {
                break;
            }
            let program = case_program(self.seed, case, self.size);
            let mut c = Counts {
                cases: 1,
                ..Counts::default()
            };
            let (mut div, mut viol, mut failed) = (false, false, false);
            for g in groups.iter_mut() {
                let verdict = {
                    let mut refs: Vec<&mut Opened> = g.iter_mut().collect();
                    judge(&program, &mut refs)
                };
                c.hung += verdict.hung;
                c.crashed += verdict.crashed;
                c.violations += verdict.violations.len() as u64;
                failed |= !verdict.failed.is_empty();
                for f in &verdict.failures {
                    match f.kind {
                        FindingKind::Divergence => div = true,
                        FindingKind::Violation => viol = true,
                    }
                    let origin = Origin {
                        seed: self.seed,
                        case,
                        size: self.size,
                    };
                    self.found(f, &program, Some(origin), &verdict, g);
                }
            }
            c.divergent = div as u64;
            c.violating = viol as u64;
            c.backend_failures = failed as u64;
            self.complete(case, c);
        }
        Ok(())
    }

    fn status(&self) -> String {
        let c = lock(&self.tally).session;
        let hits = lock(&self.hits);
        let f = lock(&self.findings);
        let distinct = |k: FindingKind| {
            f.values()
                .filter(|e| e.rec.kind == k && hits.contains_key(&e.rec.signature))
                .count()
        };
        progress::status_line(
            &c,
            distinct(FindingKind::Divergence),
            distinct(FindingKind::Violation),
            self.secs(),
        )
    }
}

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos % 1_000_000_000
}

/// Runs a campaign session to its time or case limit.
pub fn run(cfg: &Config) -> Result<Summary, String> {
    let out = cfg.out.clone();
    bundle::recover(&out);
    let prior = if cfg.resume {
        Some(state::load(&out)?)
    } else {
        None
    };
    let plan = match (&prior, cfg.backends.is_empty()) {
        (Some(s), true) => Plan {
            groups: s.groups.clone(),
            why: "resumed from the state file".into(),
        },
        (Some(s), false) => {
            if s.groups != vec![cfg.backends.clone()] {
                return Err(format!(
                    "error: cannot resume with other backends: {} ran {:?}; drop --backend or use another --out",
                    state::path(&out).display(),
                    s.groups
                ));
            }
            Plan {
                groups: s.groups.clone(),
                why: "resumed from the state file".into(),
            }
        }
        (None, true) => default_plan()?,
        (None, false) => Plan {
            groups: vec![cfg.backends.clone()],
            why: format!(
                "as given: every trace is diffed against {} and checked by the invariants",
                cfg.backends[0]
            ),
        },
    };
    for spec in plan.groups.iter().flatten() {
        Spec::parse(spec).map_err(|e| format!("error: {e}"))?;
    }
    let conflict = |what: &str, given: Option<u64>, had: u64| match given {
        Some(g) if g != had => Err(format!(
            "error: cannot resume with --{what} {g}: the campaign in {} has {what} {had}",
            out.display()
        )),
        _ => Ok(had),
    };
    let (seed, size) = match &prior {
        Some(s) => (
            conflict("seed", cfg.seed, s.seed)?,
            conflict("size", cfg.size.map(|x| x as u64), s.size as u64)? as usize,
        ),
        None => (
            cfg.seed.unwrap_or_else(default_seed),
            cfg.size.unwrap_or(DEFAULT_SIZE),
        ),
    };
    let jobs = cfg
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let time = match (cfg.time, cfg.cases) {
        (None, None) => Some(DEFAULT_SECS),
        (t, _) => t,
    };

    // Known findings: the state file's, and any bundle already in the directory.
    let mut known: BTreeMap<String, Entry> = BTreeMap::new();
    if let Some(s) = &prior {
        for r in &s.findings {
            known.insert(
                r.signature.clone(),
                Entry {
                    rec: Record {
                        hits: r.hits,
                        ..r.clone()
                    },
                    busy: false,
                },
            );
        }
    }
    for (slug, m) in bundle::scan(&out) {
        known.entry(m.signature.clone()).or_insert_with(|| Entry {
            rec: Record {
                signature: m.signature.clone(),
                slug,
                kind: m.kind,
                backends: m.backends.clone(),
                case: m.origin.map(|o| o.case),
                nodes_before: m.nodes_before,
                nodes_after: m.nodes_after,
                minimized: m.minimized,
                hits: 0,
                first_secs: None,
            },
            busy: false,
        });
    }
    let redo: Vec<Record> = known
        .values()
        .filter(|e| !e.rec.minimized && out.join(&e.rec.slug).join("case.ct").is_file())
        .map(|e| e.rec.clone())
        .collect();
    let first_case = prior.as_ref().map_or(0, |s| s.next_case);
    let total = prior.as_ref().map_or_else(Counts::default, |s| s.counts);
    let sh = Shared {
        seed,
        size,
        groups: plan.groups.clone(),
        out: out.clone(),
        limit: cfg.cases,
        max_tests: cfg.max_tests,
        start: Instant::now(),
        before_secs: prior.as_ref().map_or(0.0, |s| s.elapsed_secs),
        next: AtomicU64::new(first_case),
        stop: AtomicBool::new(false),
        tally: Mutex::new(Tally {
            watermark: first_case,
            pending: BTreeMap::new(),
            total,
            session: Counts::default(),
        }),
        findings: Mutex::new(known),
        new: Mutex::new(Vec::new()),
        hits: Mutex::new(BTreeMap::new()),
        described: Mutex::new(HashMap::new()),
        ui: Mutex::new(progress::Ui::new(cfg.tty, cfg.quiet)),
        errors: Mutex::new(Vec::new()),
        redo: Mutex::new(redo),
    };
    let limits = match (time, cfg.cases) {
        (Some(t), Some(n)) => format!("{t} s or case {n}, whichever comes first"),
        (Some(t), None) => format!("{t} s"),
        (None, Some(n)) => format!("until case {n}"),
        (None, None) => unreachable!("a time limit is set when no case limit is"),
    };
    let resumed = match &prior {
        Some(s) => format!(
            ", resuming at case {} ({} findings known)",
            s.next_case,
            s.findings.len()
        ),
        None => String::new(),
    };
    sh.say(&format!("plan: {}", plan.describe()));
    sh.say(&format!(
        "fuzz: seed {seed}, size {size}, {jobs} jobs, {limits}, findings in {}{resumed}",
        out.display()
    ));
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("error: cannot create {}: {e}", out.display()))?;
    sh.save();

    let deadline = time.and_then(|t| {
        sh.start
            .checked_add(Duration::try_from_secs_f64(t.max(0.0)).ok()?)
    });
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    if let Err(e) = sh.worker() {
                        lock(&sh.errors).push(e);
                        sh.stop.store(true, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mut last_save = Instant::now();
        let mut last_draw = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                sh.stop.store(true, Ordering::SeqCst);
            }
            if last_draw.elapsed() >= Duration::from_millis(200) {
                let line = sh.status();
                lock(&sh.ui).status(&line);
                last_draw = Instant::now();
            }
            if last_save.elapsed() >= SAVE_EVERY {
                sh.save();
                last_save = Instant::now();
            }
        }
        for h in handles {
            if h.join().is_err() {
                lock(&sh.errors).push("error: a campaign job panicked".to_string());
            }
        }
    });
    lock(&sh.ui).finish();
    sh.save();
    let mut errors = std::mem::take(&mut *lock(&sh.errors));
    errors.dedup();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let st = sh.state();
    let t = lock(&sh.tally);
    Ok(Summary {
        seed,
        size,
        jobs,
        plan,
        first_case,
        next_case: t.watermark,
        counts: t.session,
        total: t.total,
        secs: sh.secs(),
        findings: st.findings,
        new: lock(&sh.new).clone(),
        hits: lock(&sh.hits).clone(),
        out,
        resumed: prior.is_some(),
    })
}
