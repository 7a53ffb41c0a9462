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
mod found;
mod judge;
pub mod known;
pub mod minimize;
mod plan;
pub mod progress;
pub mod signature;
pub mod state;
mod summary;

pub use judge::*;
pub use plan::*;
pub use summary::*;

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
            let (mut gap, mut bug) = (false, false);
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
                        FindingKind::KnownGap => gap = true,
                        FindingKind::KnownBug => bug = true,
                        FindingKind::Crash => {}
                    }
                    let origin = Origin {
                        seed: self.seed,
                        case,
                        size: self.size,
                    };
                    self.found(f, &program, Some(origin), &verdict, g);
                }
                verdict.give_back(g.iter_mut());
            }
            c.divergent = div as u64;
            c.known_gap = gap as u64;
            c.known_bug = (bug && !viol) as u64;
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
            [
                distinct(FindingKind::Divergence),
                distinct(FindingKind::Violation),
                distinct(FindingKind::Crash),
                distinct(FindingKind::KnownGap),
                distinct(FindingKind::KnownBug),
            ],
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
