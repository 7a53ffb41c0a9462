//! Known CPython bugs: violations that an upstream issue already explains.
//! They stay violations (the invariant holds by the documentation), but
//! tools can label them, and tests can tell them from new findings.
//! docs/INVARIANTS.md, "Findings", has the programs and traces.

use super::Violation;
use super::facts::{Facts, is_cancel};
use crate::ast::{Kind, NodeId, Program};
use crate::trace::{Res, Trace};

/// An upstream CPython issue that explains a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownBug {
    pub issue: &'static str,
    pub summary: &'static str,
    /// The first version with the fix.
    pub fixed_in: (u32, u32),
}

/// gh-86296: before 3.12, `wait_for` with a timeout returns the inner
/// result (or raises its exception) when it is cancelled in the same
/// iteration in which the inner awaitable completes, swallowing the
/// cancellation; the inner awaitable is then never cancelled either.
pub const WAIT_FOR_SWALLOWS_CANCEL: KnownBug = KnownBug {
    issue: "gh-86296",
    summary: "wait_for swallows a cancellation that races with the inner awaitable's completion",
    fixed_in: (3, 12),
};

/// gh-116720: before 3.13, a TaskGroup whose child fails while its
/// `__aexit__` waits cancels the parent task and never calls `uncancel()`,
/// so an enclosing `asyncio.timeout` that expires later sees a foreign
/// request and lets CancelledError through instead of raising TimeoutError.
pub const TASKGROUP_LEAKS_CANCEL: KnownBug = KnownBug {
    issue: "gh-116720",
    summary: "a TaskGroup leaves its cancel request on the parent, so an enclosing timeout does not convert",
    fixed_in: (3, 13),
};

/// The wait_for node (with a positive timeout) in which a cancel of `task`
/// was lost: a cancel that returned True reached the task while it waited
/// there (or was pending when it entered it), and the wait_for did not
/// raise CancelledError.
fn swallowing_wait_for(f: &Facts, task: u32) -> Option<NodeId> {
    let done = f.done(task).unwrap_or(usize::MAX);
    f.cancel_requests()
        .iter()
        .filter(|r| r.target == task)
        .find_map(|r| {
            (0..f.p.len() as NodeId).find(|&w| {
                matches!(f.kind(w), Some(Kind::WaitFor(Some(t))) if t.0 > 0.0)
                    && f.node_ctx[w as usize] == Some(task)
                    && f.start(w).is_some_and(|s| s < done)
                    && f.end(w).is_some_and(|e| e > r.at)
                    && !matches!(f.end_res(w), Some(Res::Raise(x)) if is_cancel(x))
            })
        })
}

/// Whether a wait_for with a positive timeout ran in `task` inside node
/// `n` (a task group's body) and did not raise CancelledError: where the
/// group's cancel of its body was lost.
fn swallowing_wait_for_in(f: &Facts, task: u32, n: NodeId) -> bool {
    (n + 1..f.p.end(n)).any(|w| {
        matches!(f.kind(w), Some(Kind::WaitFor(Some(t))) if t.0 > 0.0)
            && f.node_ctx[w as usize] == Some(task)
            && f.end(w).is_some()
            && !matches!(f.end_res(w), Some(Res::Raise(x)) if is_cancel(x))
    })
}

/// Whether a task group ran in `task` inside timeout `n`'s body.
fn group_inside(f: &Facts, task: u32, n: NodeId) -> bool {
    let (Some(lo), Some(hi)) = (f.start(n), f.end(n)) else {
        return false;
    };
    f.task_starts[task as usize]
        .iter()
        .any(|&(s, m)| s > lo && s < hi && matches!(f.kind(m), Some(Kind::TaskGroup(_))))
}

/// The known bug behind violation `v` of `trace`, if one explains it.
pub fn known_cpython_bug(
    program: &Program,
    trace: &Trace,
    version: (u32, u32),
    v: &Violation,
) -> Option<KnownBug> {
    let f = Facts::new(program, trace, version);
    let (bug, explained) = match v.invariant {
        "wait_for_cancels_inner" => (
            WAIT_FOR_SWALLOWS_CANCEL,
            v.node
                .is_some_and(|w| matches!(f.kind(w), Some(Kind::WaitFor(Some(t))) if t.0 > 0.0)),
        ),
        "cancel_delivered" => (
            WAIT_FOR_SWALLOWS_CANCEL,
            v.task.is_some_and(|t| swallowing_wait_for(&f, t).is_some()),
        ),
        "taskgroup_failure_cancels" => (
            WAIT_FOR_SWALLOWS_CANCEL,
            match (v.task, v.node) {
                (Some(t), Some(g)) => {
                    f.node_ctx.get(g as usize).copied().flatten() == Some(t)
                        && swallowing_wait_for_in(&f, t, g)
                }
                _ => false,
            },
        ),
        "timeout_expiry_converts" => (
            TASKGROUP_LEAKS_CANCEL,
            matches!((v.task, v.node), (Some(t), Some(n)) if group_inside(&f, t, n)),
        ),
        _ => return None,
    };
    (explained && version < bug.fixed_in).then_some(bug)
}
