//! What a campaign does with a failure: claims its signature, writes its
//! bundle before minimizing (so a kill loses nothing), minimizes it, and
//! finishes minimizing bundles an earlier, killed session left behind.

use super::*;

impl Shared {
    /// Records a failure shown by `program` (a campaign case when `origin`
    /// says so); a new signature (or a smaller instance of a known one, or a
    /// known one whose bundle is not minimized yet) is minimized and bundled
    /// right here. `verdict` is the program's verdict on `group`.
    pub(super) fn found(
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
    pub(super) fn finish_minimizing(&self, rec: &Record, groups: &mut [Vec<Opened>]) {
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
}
