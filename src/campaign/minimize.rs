//! Delta debugging on the program tree.
//!
//! `minimize` shrinks a program while a predicate (in a campaign: "still
//! fails with the same signature") keeps holding. It tries, in passes
//! repeated to a fixpoint:
//! 1. dropping runs of sibling statements, then single statements and
//!    awaitable children (top-down, so large subtrees go first);
//! 2. hoisting a child in place of its parent, or a compound statement's
//!    body statements in place of the statement;
//! 3. replacing a compound node by one of the leaves below it;
//! 4. simplifying a node in place: times to 0, to integers or halved,
//!    timeouts to `none`, messages dropped, `:return-exceptions` dropped;
//! 5. renaming every name to a short one (`a`, `b`, ...).
//!
//! Every candidate is printed and parsed back; one that does not parse or
//! fails the static checks is skipped without running it. Programs are
//! arenas, so each candidate is rebuilt with `ast::Builder` in one linear
//! pass; nothing recurses in proportion to the program's size.

use crate::ast::{Kind, NodeId, Program};
use crate::generate::shrink::{rebuild, sibling_runs, simpler};
use crate::syntax;
use std::collections::HashMap;
use std::time::Instant;

/// Limits on how long a minimization may take.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most candidates to run through the predicate.
    pub max_tests: usize,
    /// Stop (keeping the best so far) at this instant.
    pub deadline: Option<Instant>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_tests: 5000,
            deadline: None,
        }
    }
}

/// What a minimization did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// Candidates run through the predicate.
    pub tests: usize,
    /// Candidates skipped because they were not valid programs.
    pub invalid: usize,
    /// Candidates that kept the failure and were adopted.
    pub accepted: usize,
    /// Whether the budget ran out before the fixpoint.
    pub exhausted: bool,
}

/// One way to change a program.
#[derive(Clone, Debug)]
enum Edit {
    /// Remove these subtrees (disjoint roots); `at` orders the candidates.
    Delete { at: NodeId, ids: Vec<NodeId> },
    /// Put the subtree rooted at `with`, a descendant of `node`, in `node`'s place.
    Replace { node: NodeId, with: NodeId },
    /// Put the body statements of `node` (a spawn, do, timeout, taskgroup
    /// or try; handlers dropped) in its place.
    Unwrap { node: NodeId },
    /// Change one node's kind, keeping its children.
    Kind { node: NodeId, kind: Kind },
    /// Rename every name to a short one.
    Rename,
}

impl Edit {
    /// The node the edit is about, to resume a pass after an accepted edit.
    fn position(&self) -> NodeId {
        match self {
            Edit::Delete { at, .. } => *at,
            Edit::Replace { node, .. } | Edit::Unwrap { node } | Edit::Kind { node, .. } => *node,
            Edit::Rename => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Delete,
    Hoist,
    Leaf,
    Simplify,
    Rename,
}

const PASSES: [Pass; 5] = [
    Pass::Delete,
    Pass::Hoist,
    Pass::Leaf,
    Pass::Simplify,
    Pass::Rename,
];

/// Shrinks `program` while `keeps` holds, to a fixpoint of all passes or
/// until the budget runs out. `keeps` should hold for `program` itself;
/// the result is `program` when nothing smaller keeps it.
pub fn minimize(
    program: &Program,
    keeps: &mut dyn FnMut(&Program) -> bool,
    budget: Budget,
) -> (Program, Stats) {
    let mut cur = program.clone();
    let mut stats = Stats {
        nodes_before: program.len(),
        ..Stats::default()
    };
    // Candidates already tried, by printed text: whether they kept the failure.
    let mut seen: HashMap<String, bool> = HashMap::new();
    seen.insert(syntax::print(&cur), true);
    'fixpoint: loop {
        let mut changed = false;
        for pass in PASSES {
            let mut from: NodeId = 0;
            loop {
                let mut adopted = None;
                for edit in candidates(&cur, pass) {
                    if edit.position() < from {
                        continue;
                    }
                    if stats.tests >= budget.max_tests
                        || budget.deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        stats.exhausted = true;
                        break;
                    }
                    let Some(cand) = validated(&apply(&cur, &edit)) else {
                        stats.invalid += 1;
                        continue;
                    };
                    if cand == cur {
                        continue;
                    }
                    let text = syntax::print(&cand);
                    let ok = match seen.get(&text) {
                        Some(&ok) => ok,
                        None => {
                            stats.tests += 1;
                            let ok = keeps(&cand);
                            seen.insert(text, ok);
                            ok
                        }
                    };
                    if ok && better(&cand, &cur, pass) {
                        adopted = Some((cand, edit.position()));
                        break;
                    }
                }
                if stats.exhausted {
                    break 'fixpoint;
                }
                let Some((cand, at)) = adopted else { break };
                cur = cand;
                stats.accepted += 1;
                changed = true;
                from = at;
            }
        }
        if !changed {
            break;
        }
    }
    stats.nodes_after = cur.len();
    (cur, stats)
}

/// Whether adopting `cand` makes progress, so the fixpoint terminates:
/// structural passes must remove nodes; in-place passes keep the node count
/// and only go to strictly simpler kinds or names, which `candidates` ensures.
fn better(cand: &Program, cur: &Program, pass: Pass) -> bool {
    match pass {
        Pass::Delete | Pass::Hoist | Pass::Leaf => cand.len() < cur.len(),
        Pass::Simplify | Pass::Rename => cand.len() <= cur.len(),
    }
}

/// The program as the parser would give it back, if it is a valid program.
fn validated(p: &Program) -> Option<Program> {
    syntax::parse("candidate.ct", &syntax::print(p)).ok()
}

/// The candidate edits of one pass, lazily, in order of position.
fn candidates(p: &Program, pass: Pass) -> Box<dyn Iterator<Item = Edit> + '_> {
    let n = p.len() as NodeId;
    match pass {
        Pass::Delete => Box::new((0..n).flat_map(move |id| {
            // The subtree itself, then runs of its children (halves, quarters, ...).
            let mut out = Vec::new();
            if id > 0 {
                out.push(Edit::Delete {
                    at: id,
                    ids: vec![id],
                });
            }
            out.extend(
                sibling_runs(p, id)
                    .into_iter()
                    .map(|ids| Edit::Delete { at: id, ids }),
            );
            out
        })),
        Pass::Hoist => Box::new((1..n).flat_map(move |id| {
            let unwrap = unwrappable(p.kind(id)).then_some(Edit::Unwrap { node: id });
            unwrap.into_iter().chain(
                p.children(id)
                    .map(move |c| Edit::Replace { node: id, with: c }),
            )
        })),
        Pass::Leaf => Box::new((1..n).flat_map(move |id| {
            (id + 1..p.end(id))
                .filter(move |&d| p.end(d) == d + 1 && !p.children(id).any(|c| c == d))
                .map(move |d| Edit::Replace { node: id, with: d })
        })),
        Pass::Simplify => Box::new((1..n).flat_map(move |id| {
            simpler(p.kind(id))
                .into_iter()
                .map(move |kind| Edit::Kind { node: id, kind })
        })),
        Pass::Rename => {
            let renames = short_names(p)
                .iter()
                .enumerate()
                .any(|(i, s)| s.as_deref().is_some_and(|s| s != p.names[i]));
            Box::new(renames.then_some(Edit::Rename).into_iter())
        }
    }
}

fn apply(p: &Program, edit: &Edit) -> Program {
    match edit {
        Edit::Delete { ids, .. } => rebuild(p, &[(0, p.len() as NodeId)], ids),
        Edit::Replace { node, with } => rebuild(
            p,
            &[
                (0, *node),
                (*with, p.end(*with)),
                (p.end(*node), p.len() as NodeId),
            ],
            &[],
        ),
        Edit::Unwrap { node } => {
            let mut ranges = vec![(0, *node)];
            ranges.extend(
                p.children(*node)
                    .filter(|&c| !matches!(p.kind(c), Kind::Except(_) | Kind::Finally))
                    .map(|c| (c, p.end(c))),
            );
            ranges.push((p.end(*node), p.len() as NodeId));
            rebuild(p, &ranges, &[])
        }
        Edit::Kind { node, kind } => {
            let mut q = p.clone();
            q.nodes[*node as usize].kind = kind.clone();
            q
        }
        Edit::Rename => {
            let mut q = p.clone();
            for (i, s) in short_names(p).into_iter().enumerate() {
                if let Some(s) = s {
                    q.names[i] = s;
                }
            }
            q
        }
    }
}

/// Nodes whose body statements can stand in their place.
fn unwrappable(k: &Kind) -> bool {
    matches!(
        k,
        Kind::Spawn(..) | Kind::Do | Kind::Timeout(_) | Kind::TaskGroup(_) | Kind::Try
    )
}

/// The short name for each entry of `p.names` that a node uses: `a`, `b`,
/// ..., `z`, `a1`, ... in order of first use. `None` for unused entries.
fn short_names(p: &Program) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; p.names.len()];
    let mut next = 0usize;
    let mut syms = Vec::new();
    for node in &p.nodes {
        syms.clear();
        node.kind.syms(&mut syms);
        for s in &syms {
            let slot = &mut out[s.0 as usize];
            if slot.is_none() {
                let letter = (b'a' + (next % 26) as u8) as char;
                *slot = Some(if next < 26 {
                    letter.to_string()
                } else {
                    format!("{letter}{}", next / 26)
                });
                next += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Program {
        syntax::parse("t.ct", text).unwrap()
    }

    fn has(p: &Program, kw: &str) -> bool {
        p.nodes.iter().any(|n| n.kind.keyword() == kw)
    }

    #[test]
    fn keeps_only_what_the_predicate_needs() {
        let p = parse(
            "(canceltree 1)\n(main\n  (spawn worker (sleep 1.5) (return 3))\n  (sleep 0)\n  \
             (try (wait-for 2 (ref worker)) (except TimeoutError (sleep 1)))\n  (cancel worker \"bye\")\n  \
             (gather (sleep 0.5) (do (sleep 0.25) (return 2))))\n",
        );
        let (q, stats) = minimize(
            &p,
            &mut |c: &Program| has(c, "wait-for") && has(c, "cancel"),
            Budget::default(),
        );
        assert_eq!(stats.nodes_before, p.len());
        assert!(q.len() < p.len());
        assert!(has(&q, "wait-for") && has(&q, "cancel"));
        let text = syntax::print(&q);
        assert!(text.contains("(spawn a"), "names shortened: {text}");
        assert!(!text.contains("bye"), "message dropped: {text}");
        assert!(q.len() <= 5, "{text}");
    }

    #[test]
    fn rebuild_hoists_and_deletes_with_the_right_nesting() {
        let p = parse("(canceltree 1)\n(main (timeout 1 (sleep 1) (sleep 2)) (sleep 3))\n");
        // main=0 timeout=1 sleep1=2 sleep2=3 sleep3=4
        let q = apply(&p, &Edit::Replace { node: 1, with: 3 });
        assert_eq!(
            syntax::print(&q),
            "(canceltree 1)\n\n(main\n  (sleep 2)\n  (sleep 3))\n"
        );
        let q = apply(
            &p,
            &Edit::Delete {
                at: 2,
                ids: vec![2, 4],
            },
        );
        assert_eq!(
            syntax::print(&q),
            "(canceltree 1)\n\n(main\n  (timeout 1 (sleep 2)))\n"
        );
        let p = parse(
            "(canceltree 1)\n(main (try (sleep 1) (sleep 2) (except Exception (sleep 3))) (sleep 4))\n",
        );
        let q = apply(&p, &Edit::Unwrap { node: 1 });
        assert_eq!(
            syntax::print(&q),
            "(canceltree 1)\n\n(main\n  (sleep 1)\n  (sleep 2)\n  (sleep 4))\n"
        );
    }

    #[test]
    fn a_deep_program_minimizes_without_recursion() {
        let mut text = String::from("(canceltree 1)\n(main\n");
        for _ in 0..3000 {
            text.push_str("(timeout 1 ");
        }
        text.push_str("(sleep 1)");
        text.push_str(&")".repeat(3000));
        text.push_str(")\n");
        let p = parse(&text);
        let budget = Budget {
            max_tests: 10,
            deadline: None,
        };
        let (q, stats) = minimize(&p, &mut |c: &Program| has(c, "timeout"), budget);
        assert_eq!(
            syntax::print(&q),
            "(canceltree 1)\n\n(main\n  (timeout none))\n",
            "{stats:?}"
        );
    }
}
