//! Structural simplifications of a program, for the proptest strategy's
//! shrinking: one step smaller or simpler, never a different random seed.
//!
//! `edits(p)` lists, biggest first: deleting a subtree (and runs of sibling
//! statements), hoisting a child or a body (or a handler's body) in place
//! of its parent, replacing a compound node by a leaf below it, and
//! simplifying one node in place (times toward 0 and integers, messages
//! and timeouts dropped, `:return-exceptions` dropped, `wait` options
//! dropped, returned and resolved values to `none`). `candidate` applies
//! one and keeps it only if it is a valid program (it prints and parses
//! back, passing every static check) that still avoids CPython's
//! unspecified behaviour (`avoids_unspecified`). Structural edits remove
//! nodes and in-place edits go to strictly simpler kinds, so repeated
//! shrinking ends. Programs are arenas and every edit is one linear copy.

use super::avoids_unspecified;
use crate::ast::{Builder, Kind, NodeId, Program, Time, Value, WaitWhen};
use crate::syntax;

/// One way to make a program smaller or simpler.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// Remove these subtrees (disjoint roots).
    Delete(Vec<NodeId>),
    /// Put the subtree rooted at `with`, a descendant of `node`, in `node`'s place.
    Replace { node: NodeId, with: NodeId },
    /// Put the children of `from` (`node` itself or one of its children)
    /// in `node`'s place, leaving out except and finally clauses.
    Splice { node: NodeId, from: NodeId },
    /// Change one node's kind, keeping its children.
    Kind { node: NodeId, kind: Kind },
}

/// Runs of at least two of `id`'s children to delete together: halves,
/// then quarters, and so on (delta debugging's chunks).
pub fn sibling_runs(p: &Program, id: NodeId) -> Vec<Vec<NodeId>> {
    let kids: Vec<NodeId> = p.children(id).collect();
    let mut out = Vec::new();
    let mut chunk = kids.len() / 2;
    while chunk >= 2 {
        for start in (0..kids.len()).step_by(chunk) {
            let end = (start + chunk).min(kids.len());
            if end - start >= 2 {
                out.push(kids[start..end].to_vec());
            }
        }
        chunk /= 2;
    }
    out
}

/// Every candidate edit of `p`, in the order they should be tried.
pub fn edits(p: &Program) -> Vec<Edit> {
    let n = p.len() as NodeId;
    let mut out = Vec::new();
    // Runs of sibling statements, halves first, then single subtrees in
    // pre-order (so a subtree comes before the subtrees inside it).
    for id in 0..n {
        out.extend(sibling_runs(p, id).into_iter().map(Edit::Delete));
    }
    out.extend((1..n).map(|id| Edit::Delete(vec![id])));
    for id in 1..n {
        if p.kind(id).has_body() {
            out.push(Edit::Splice { node: id, from: id });
        }
        for c in p.children(id) {
            if matches!(p.kind(c), Kind::Except(_) | Kind::Finally) {
                out.push(Edit::Splice { node: id, from: c });
            } else {
                out.push(Edit::Replace { node: id, with: c });
            }
        }
    }
    for id in 1..n {
        let direct: Vec<NodeId> = p.children(id).collect();
        for d in id + 1..p.end(id) {
            if p.end(d) == d + 1 && !direct.contains(&d) {
                out.push(Edit::Replace { node: id, with: d });
            }
        }
    }
    for id in 1..n {
        for kind in simpler(p.kind(id)) {
            out.push(Edit::Kind { node: id, kind });
        }
    }
    out
}

/// `edit` applied to `p`, if the result is a valid program that avoids
/// unspecified behaviour and is smaller (structural edits) or simpler.
pub fn candidate(p: &Program, edit: &Edit) -> Option<Program> {
    let q = apply(p, edit);
    let structural = !matches!(edit, Edit::Kind { .. });
    if structural && q.len() >= p.len() {
        return None;
    }
    let q = syntax::parse("shrink.ct", &syntax::print(&q)).ok()?;
    (avoids_unspecified(&q) && q != *p).then_some(q)
}

/// The valid one-step simplifications of `p`, lazily, biggest first.
pub fn simplifications(p: &Program) -> impl Iterator<Item = Program> + '_ {
    edits(p).into_iter().filter_map(move |e| candidate(p, &e))
}

/// Shrinks `p` greedily while `fails` holds, to a fixpoint: the first
/// simplification that still fails is adopted, and the search restarts
/// from it. For tests and tools; proptest drives the same steps through
/// `strategy::ProgramTree`.
pub fn shrink(p: &Program, mut fails: impl FnMut(&Program) -> bool) -> Program {
    let mut cur = p.clone();
    loop {
        let next = simplifications(&cur).find(|q| fails(q));
        match next {
            Some(q) => cur = q,
            None => return cur,
        }
    }
}

pub fn apply(p: &Program, edit: &Edit) -> Program {
    let n = p.len() as NodeId;
    match edit {
        Edit::Delete(ids) => rebuild(p, &[(0, n)], ids),
        Edit::Replace { node, with } => rebuild(
            p,
            &[(0, *node), (*with, p.end(*with)), (p.end(*node), n)],
            &[],
        ),
        Edit::Splice { node, from } => {
            let mut ranges = vec![(0, *node)];
            ranges.extend(
                p.children(*from)
                    .filter(|&c| !matches!(p.kind(c), Kind::Except(_) | Kind::Finally))
                    .map(|c| (c, p.end(c))),
            );
            ranges.push((p.end(*node), n));
            rebuild(p, &ranges, &[])
        }
        Edit::Kind { node, kind } => {
            let mut q = p.clone();
            q.nodes[*node as usize].kind = kind.clone();
            q
        }
    }
}

/// Copies the nodes of `p` in `ranges` (increasing; each a run of whole
/// sibling subtrees, or the prefix and suffix around one), leaving out the
/// subtrees rooted at `deleted`. A node is closed once the next copied id
/// is past its old subtree's end, which nests everything correctly.
pub fn rebuild(p: &Program, ranges: &[(NodeId, NodeId)], deleted: &[NodeId]) -> Program {
    let mut b = Builder::new();
    b.prog.names = p.names.clone();
    let mut open_ends: Vec<NodeId> = Vec::new();
    for &(start, end) in ranges {
        let mut id = start;
        while id < end {
            if deleted.contains(&id) {
                id = p.end(id);
                continue;
            }
            while open_ends.last().is_some_and(|&e| id >= e) {
                open_ends.pop();
                b.close();
            }
            b.open(p.kind(id).clone(), p.pos(id));
            open_ends.push(p.end(id));
            id += 1;
        }
    }
    b.finish()
}

/// How simple a time is: integers before fractions, then smaller magnitude.
fn time_rank(t: f64) -> (bool, u64) {
    (t.fract() != 0.0, t.abs().to_bits())
}

/// Strictly simpler times than `t`: 0, its integer parts, its half (no
/// finer than a quarter, so halving ends).
fn simpler_times(t: f64) -> Vec<Time> {
    let mut out: Vec<Time> = Vec::new();
    for c in [0.0, t.trunc(), t.round(), t / 2.0] {
        let c = if c == 0.0 { 0.0 } else { c };
        if (c * 4.0).fract() == 0.0 && time_rank(c) < time_rank(t) && !out.contains(&Time(c)) {
            out.push(Time(c));
        }
    }
    out
}

fn simpler_opt_times(t: Option<Time>) -> Vec<Option<Time>> {
    match t {
        None => Vec::new(),
        Some(t) => std::iter::once(None)
            .chain(simpler_times(t.0).into_iter().map(Some))
            .collect(),
    }
}

/// Kinds strictly simpler than `k`, with the same children.
pub fn simpler(k: &Kind) -> Vec<Kind> {
    match k {
        Kind::Sleep(t) => simpler_times(t.0).into_iter().map(Kind::Sleep).collect(),
        Kind::Block(t) => simpler_times(t.0).into_iter().map(Kind::Block).collect(),
        Kind::CallLater(t) => simpler_times(t.0)
            .into_iter()
            .map(Kind::CallLater)
            .collect(),
        Kind::WaitFor(t) => simpler_opt_times(*t)
            .into_iter()
            .map(Kind::WaitFor)
            .collect(),
        Kind::Timeout(t) => simpler_opt_times(*t)
            .into_iter()
            .map(Kind::Timeout)
            .collect(),
        Kind::Wait { when, timeout } => {
            let mut out: Vec<Kind> = simpler_opt_times(*timeout)
                .into_iter()
                .map(|t| Kind::Wait {
                    when: *when,
                    timeout: t,
                })
                .collect();
            if *when != WaitWhen::AllCompleted {
                out.push(Kind::Wait {
                    when: WaitWhen::AllCompleted,
                    timeout: *timeout,
                });
            }
            out
        }
        Kind::AsCompleted { timeout } => simpler_opt_times(*timeout)
            .into_iter()
            .map(|t| Kind::AsCompleted { timeout: t })
            .collect(),
        Kind::Cancel(s, Some(_)) => vec![Kind::Cancel(*s, None)],
        Kind::CancelSelf(Some(_)) => vec![Kind::CancelSelf(None)],
        Kind::Raise(e, Some(_)) => vec![Kind::Raise(*e, None)],
        Kind::Fail(s, e, Some(_)) => vec![Kind::Fail(*s, *e, None)],
        Kind::Return(v) if *v != Value::None => vec![Kind::Return(Value::None)],
        Kind::Resolve(s, v) if *v != Value::None => vec![Kind::Resolve(*s, Value::None)],
        Kind::Gather {
            return_exceptions: true,
        } => vec![Kind::Gather {
            return_exceptions: false,
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_only_get_simpler() {
        assert_eq!(
            simpler_times(2.5),
            vec![Time(0.0), Time(2.0), Time(3.0), Time(1.25)]
        );
        assert_eq!(simpler_times(4.0), vec![Time(0.0), Time(2.0)]);
        assert_eq!(simpler_times(0.0), Vec::<Time>::new());
        assert_eq!(simpler_times(-1.0), vec![Time(0.0)]);
        assert_eq!(simpler_times(0.5), vec![Time(0.0), Time(1.0), Time(0.25)]);
        assert_eq!(simpler_times(0.25), vec![Time(0.0)]);
        assert_eq!(simpler_times(0.1), vec![Time(0.0)]);
    }

    use crate::generate::program;

    fn has_gather(p: &Program) -> bool {
        p.nodes
            .iter()
            .any(|n| matches!(n.kind, Kind::Gather { .. }))
    }

    #[test]
    fn a_gather_shrinks_to_main_and_the_gather() {
        let mut shrunk = 0;
        for seed in 0..200 {
            let p = program(seed, 30);
            if !has_gather(&p) {
                continue;
            }
            let q = shrink(&p, has_gather);
            assert_eq!(
                syntax::print(&q),
                "(canceltree 1)\n\n(main\n  (gather))\n",
                "seed {seed}"
            );
            shrunk += 1;
        }
        assert!(shrunk > 20, "only {shrunk} programs with a gather");
    }

    #[test]
    fn every_simplification_is_valid_and_smaller_or_simpler() {
        for seed in 0..40 {
            let p = program(seed, 20);
            for q in simplifications(&p) {
                assert!(syntax::check(&q, "q").is_empty());
                assert!(q.len() <= p.len());
            }
        }
    }
}
