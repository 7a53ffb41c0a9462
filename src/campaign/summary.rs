//! What a campaign found, counted and printed at the end.

use super::*;

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
            "divergent cases {}, violating cases {} ({} violations), backend failures {} (hung {}, crashed {}); known model gaps in {} cases, known CPython bugs in {}",
            c.divergent,
            c.violating,
            c.violations,
            c.backend_failures,
            c.hung,
            c.crashed,
            c.known_gap,
            c.known_bug
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
            "distinct findings this session: {} ({} new, {} divergences, {} invariant violations, {} crashes, {} known model gaps, {} known CPython bugs)",
            seen.len(),
            self.new.len(),
            self.distinct(FindingKind::Divergence),
            self.distinct(FindingKind::Violation),
            self.distinct(FindingKind::Crash),
            self.distinct(FindingKind::KnownGap),
            self.distinct(FindingKind::KnownBug)
        );
        // What is known last, so that what is new comes first.
        let mut seen = seen;
        seen.sort_by_key(|r| matches!(r.kind, FindingKind::KnownGap | FindingKind::KnownBug));
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
