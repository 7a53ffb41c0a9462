//! Running one program on a group of backends and judging it: every trace
//! diffed against the first backend's and checked by the invariants; then
//! minimizing a failure and writing its bundle.

use super::*;

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
    /// Distinct failures: crashes, then the divergence, then violations.
    pub failures: Vec<Failure>,
    pub violations: Vec<(String, Violation)>,
}

impl Verdict {
    pub fn trace(&self, spec: &str) -> Option<&Trace> {
        self.traces.iter().find(|(s, _)| s == spec).map(|(_, t)| t)
    }

    /// Gives each trace back to the backend that made it, once the verdict
    /// has been read: `backends` in the group's order, as `judge` took them.
    /// A campaign judges program after program, and the model reuses the
    /// buffers of the traces it gets back (`Backend::recycle`).
    pub fn give_back<'a>(self, backends: impl IntoIterator<Item = &'a mut Opened>) {
        for (o, (spec, trace)) in backends.into_iter().zip(self.traces) {
            debug_assert_eq!(o.spec, spec, "traces go back to their own backend");
            o.backend.recycle(trace);
        }
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
        match &t.outcome {
            Outcome::Hung { .. } => v.hung += 1,
            Outcome::Crashed(msg) => {
                v.crashed += 1;
                v.failures.push(Failure {
                    signature: signature::crash(spec, msg),
                    kind: FindingKind::Crash,
                    backends: vec![spec.clone()],
                });
            }
            _ => continue,
        }
        v.failed.push(spec.clone());
    }
    if v.failed.is_empty() {
        let refs: Vec<(&str, &Trace)> = v.traces.iter().map(|(s, t)| (s.as_str(), t)).collect();
        if let Some((sig, others)) = signature::divergence(program, &refs) {
            let mut backends = vec![v.traces[0].0.clone()];
            backends.extend(others.iter().map(|&i| v.traces[i].0.clone()));
            let (signature, kind) = match known_gap(&refs, &others) {
                Some(gap) => (format!("{}:{sig}", gap.name()), FindingKind::KnownGap),
                None => (sig, FindingKind::Divergence),
            };
            v.failures.push(Failure {
                signature,
                kind,
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
            let (sig, kind) =
                match crate::invariants::known_cpython_bug(program, t, o.version, &viol) {
                    Some(bug) => (format!("{}:{sig}", bug.issue), FindingKind::KnownBug),
                    None => (sig, FindingKind::Violation),
                };
            if !v.failures.iter().any(|f| f.signature == sig) {
                v.failures.push(Failure {
                    signature: sig,
                    kind,
                    backends: vec![spec.clone()],
                });
            }
            v.violations.push((spec.clone(), viol));
        }
    }
    v
}

/// The known gap that explains a divergence between a model and a CPython
/// backend (in either order), when every backend that differs from the
/// reference shows the same one. Differences between two CPythons, or two
/// models, are never a model gap.
fn known_gap(refs: &[(&str, &Trace)], others: &[usize]) -> Option<known::Gap> {
    let is_model = |spec: &str| Spec::parse(spec).map(|s| matches!(s.family, Family::Model(..)));
    let mut gap = None;
    for &i in others {
        let (a, b) = (refs[0], refs[i]);
        let (model, cpython) = match (is_model(a.0), is_model(b.0)) {
            (Ok(true), Ok(false)) => (a.1, b.1),
            (Ok(false), Ok(true)) => (b.1, a.1),
            _ => return None,
        };
        let g = known::classify(model, cpython)?;
        if gap.is_some_and(|x| x != g) {
            return None;
        }
        gap = Some(g);
    }
    gap
}

/// The backends of `group` that show `failure`, in the group's order.
pub(super) fn subset<'a>(group: &'a mut [Opened], failure: &Failure) -> Vec<&'a mut Opened> {
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
        let v = judge(c, backends);
        let kept = v.failures.iter().any(|f| f.signature == failure.signature);
        v.give_back(backends.iter_mut().map(|o| &mut **o));
        kept
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
    // A known bug's signature is the violation's behind the issue number.
    let plain = match failure.kind {
        FindingKind::KnownBug => failure
            .signature
            .split_once(':')
            .map_or(failure.signature.as_str(), |(_, s)| s),
        _ => failure.signature.as_str(),
    };
    let violations = verdict
        .violations
        .iter()
        .filter(|(_, v)| signature::violation(program, v.invariant, v.node) == plain)
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
