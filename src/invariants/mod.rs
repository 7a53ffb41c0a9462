//! Invariants of asyncio cancellation, checked over one trace.
//!
//! Each invariant has a snake_case name (`Violation::invariant`), the range
//! of Python versions it holds for, and a checker that sees only the program
//! and the trace, never a backend. docs/INVARIANTS.md gives, for each, the
//! documentation sentence or reasoning it comes from and what the checker
//! looks at. Checkers are conservative: when the trace cannot show whether
//! a rule applied (an await chain that may have swallowed a cancel, a name
//! bound in several scopes), they stay silent rather than guess.

mod accounting;
mod cancels;
mod facts;
mod known;
mod lifecycle;
mod ordering;
mod propagation;
mod retention;
mod shield;
mod timeout;

use crate::ast::{NodeId, Program};
use crate::trace::Trace;
use facts::Facts;

pub use known::{KnownBug, TASKGROUP_LEAKS_CANCEL, WAIT_FOR_SWALLOWS_CANCEL, known_cpython_bug};

/// One broken invariant in one trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    /// The node where it shows, if one does.
    pub node: Option<NodeId>,
    /// The task where it shows, if one does.
    pub task: Option<u32>,
    pub message: String,
}

/// An invariant: its name, the Python versions it holds for (`since`
/// inclusive, `until` exclusive) and a one-line statement.
#[derive(Clone, Copy, Debug)]
pub struct Invariant {
    pub name: &'static str,
    pub since: (u32, u32),
    pub until: Option<(u32, u32)>,
    pub summary: &'static str,
}

impl Invariant {
    pub fn applies(&self, version: (u32, u32)) -> bool {
        version >= self.since && self.until.is_none_or(|u| version < u)
    }
}

/// Collects violations; checkers push through it.
pub(crate) struct Out {
    name: &'static str,
    found: Vec<Violation>,
}

impl Out {
    pub fn push(&mut self, node: Option<NodeId>, task: Option<u32>, message: String) {
        self.found.push(Violation {
            invariant: self.name,
            node,
            task,
            message,
        });
    }
}

type Checker = fn(&Facts, &mut Out);

const ANY: (u32, u32) = (3, 11);

macro_rules! invariants {
    ($( $name:ident, $since:expr, $until:expr, $check:path, $summary:expr; )*) => {
        /// Every invariant, in the order `check` runs them.
        pub const ALL: &[Invariant] = &[
            $( Invariant { name: stringify!($name), since: $since, until: $until, summary: $summary }, )*
        ];
        const CHECKERS: &[Checker] = &[ $( $check, )* ];
    };
}

invariants! {
    result_order, ANY, None, ordering::result_order,
        "gather results follow argument order, whatever the completion order";
    as_completed_order, ANY, None, ordering::as_completed_order,
        "as_completed yields results in completion order";
    wait_counts_done, ANY, None, ordering::wait_counts_done,
        "wait returns exactly the futures that are done when it returns";
    gather_cancels_children, ANY, None, propagation::gather_cancels_children,
        "cancelling a gather cancels its unfinished children";
    awaited_task_cancelled, ANY, None, propagation::awaited_task_cancelled,
        "cancelling a task cancels the task it awaits";
    wait_for_cancels_inner, ANY, None, propagation::wait_for_cancels_inner,
        "cancelling a wait_for cancels the awaitable it waits for";
    taskgroup_failure_cancels, ANY, None, propagation::taskgroup_failure_cancels,
        "a TaskGroup child failure cancels the other children and the body";
    taskgroup_waits_children, ANY, None, propagation::taskgroup_waits_children,
        "a TaskGroup exits only after every child is done";
    taskgroup_error_group, ANY, None, propagation::taskgroup_error_group,
        "a TaskGroup's ExceptionGroup holds exactly the non-cancel errors";
    shield_inner_unaffected, ANY, None, shield::inner_unaffected,
        "cancelling a shield does not cancel the awaitable inside";
    shield_outcome_kept, ANY, None, shield::outcome_kept,
        "a shield passes on the inner awaitable's outcome unchanged";
    shield_outer_cancelled, ANY, None, shield::outer_cancelled,
        "a task cancelled while awaiting a shield sees CancelledError there";
    cancel_return_value, ANY, None, accounting::cancel_return_value,
        "Task.cancel() returns True exactly when the task is not done";
    done_query_consistent, ANY, None, accounting::done_query_consistent,
        "done() and cancelled() agree with the task's completion";
    cancelling_bookkeeping, ANY, None, accounting::cancelling_bookkeeping,
        "cancelling() counts cancel() calls less uncancel() calls";
    taskgroup_keeps_cancelling, (3, 13), None, accounting::taskgroup_keeps_cancelling,
        "a TaskGroup leaves its parent's cancelling() count as it found it";
    cancel_delivered, ANY, None, accounting::cancel_delivered,
        "a cancel requested before a task finishes is delivered unless swallowed";
    timeout_converts_own_cancel, ANY, None, timeout::converts_own_cancel,
        "a timeout turns into TimeoutError only its own expiry's cancellation";
    timeout_expiry_converts, ANY, None, timeout::expiry_converts,
        "an expired timeout whose body ends in CancelledError raises TimeoutError";
    strong_ref_retained, ANY, None, retention::strong_ref_retained,
        "a task held by a strong reference is never collected while pending";
    unreferenced_pending_collected, ANY, None, retention::unreferenced_pending_collected,
        "an unreachable pending task is collected by gc.collect()";
    destroyed_is_reported, ANY, None, retention::destroyed_is_reported,
        "a pending task that is collected is reported, and only a pending one";
    background_set_retains, ANY, None, retention::background_set_retains,
        "the background-set idiom keeps its tasks until they are done";
    run_terminates, ANY, None, lifecycle::run_terminates,
        "every run ends with an outcome or a detected deadlock, and its tasks end";
    no_event_after_done, ANY, None, lifecycle::no_event_after_done,
        "nothing runs in a task before it is created or after it is done";
    node_runs_once, ANY, None, lifecycle::node_runs_once,
        "each statement starts and ends at most once, in one task";
    task_records_agree, ANY, None, lifecycle::task_records_agree,
        "task creations, completions and final states agree";
    exception_reported, ANY, None, lifecycle::exception_reported,
        "every task exception is either retrieved or reported";
}

/// The invariant with this name.
pub fn by_name(name: &str) -> Option<&'static Invariant> {
    ALL.iter().find(|i| i.name == name)
}

/// Runs every invariant that holds for Python `version` (major, minor) on
/// one trace of `program`. A trace whose backend failed (hung, crashed) has
/// nothing to check and yields no violations.
pub fn check(program: &Program, trace: &Trace, version: (u32, u32)) -> Vec<Violation> {
    if trace.backend_failed() {
        return Vec::new();
    }
    let facts = Facts::new(program, trace, version);
    let mut found = Vec::new();
    for (inv, checker) in ALL.iter().zip(CHECKERS) {
        if inv.applies(version) {
            let mut out = Out {
                name: inv.name,
                found: Vec::new(),
            };
            checker(&facts, &mut out);
            found.append(&mut out.found);
        }
    }
    found
}
