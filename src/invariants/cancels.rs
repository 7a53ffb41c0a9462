//! Cancel evidence over a trace: which cancels were requested, whether a
//! task received one, who else may cancel or uncancel a task, and where a
//! cancel may be absorbed by what a task awaits.

use super::facts::{BodyExit, Facts, Target};
use crate::ast::{Kind, NodeId, SpawnMode, Sym};
use crate::trace::{Fin, Res, Value, What};
use std::cell::OnceCell;

/// A cancel request that returned True, with the task it was made on.
#[derive(Clone, Copy, Debug)]
pub struct CancelReq {
    /// The event that records it: an `inject`, or the `end` of a cancel node.
    pub at: usize,
    pub target: u32,
    /// The cancel node, or `None` for an injected cancel.
    pub node: Option<NodeId>,
}

/// What `Facts` computes on first use, since several checkers ask.
#[derive(Default)]
pub struct Cache {
    requests: OnceCell<Vec<CancelReq>>,
    /// Per task: an `uncancel` ran in it or may have named it.
    uncancels: OnceCell<Vec<bool>>,
    /// Per name: some await, cancel, ref or uncancel mentions it.
    handled: OnceCell<Vec<bool>>,
}

impl Facts<'_> {
    /// Every cancel that returned True on a known task: injected ones,
    /// `(cancel NAME)` of a task, and `(cancel-self)`, in trace order.
    pub fn cancel_requests(&self) -> &[CancelReq] {
        self.cache.requests.get_or_init(|| self.find_requests())
    }

    fn find_requests(&self) -> Vec<CancelReq> {
        let mut out = Vec::new();
        for (i, e) in self.t.events.iter().enumerate() {
            match &e.what {
                What::Inject { task, ret: true } => out.push(CancelReq {
                    at: i,
                    target: *task,
                    node: None,
                }),
                What::End {
                    node,
                    res: Res::Val(Value::Bool(true)),
                } => {
                    let target = match self.kind(*node) {
                        Some(Kind::Cancel(s, _)) => self.target_task(*s),
                        Some(Kind::CancelSelf(_)) => {
                            self.node_ctx.get(*node as usize).copied().flatten()
                        }
                        _ => None,
                    };
                    if let Some(target) = target {
                        out.push(CancelReq {
                            at: i,
                            target,
                            node: Some(*node),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Whether an `uncancel` may have lowered `task`'s count: one ran in the
    /// task, or one ran elsewhere naming a task that may be this one.
    pub fn uncancel_may_touch(&self, task: u32) -> bool {
        let touched = self.cache.uncancels.get_or_init(|| {
            let mut touched = vec![false; self.ntasks];
            for n in 0..self.p.len() as NodeId {
                if self.start(n).is_none() {
                    continue;
                }
                let who = match self.kind(n) {
                    Some(Kind::Uncancel(None)) => self.node_ctx[n as usize],
                    Some(Kind::Uncancel(Some(s))) => match self.target_task(*s) {
                        Some(t) => Some(t),
                        None => {
                            touched.iter_mut().for_each(|x| *x = true);
                            continue;
                        }
                    },
                    _ => continue,
                };
                if let Some(x) = who.and_then(|t| touched.get_mut(t as usize)) {
                    *x = true;
                }
            }
            touched
        });
        touched.get(task as usize).copied().unwrap_or(true)
    }

    /// Whether some await, cancel, ref or uncancel mentions name `s`.
    fn handled(&self, s: Sym) -> bool {
        let handled =
            self.cache.handled.get_or_init(|| {
                let mut handled = vec![false; self.p.names.len()];
                for x in &self.p.nodes {
                    if let Kind::Await(y)
                    | Kind::Cancel(y, _)
                    | Kind::Ref(y)
                    | Kind::Uncancel(Some(y)) = &x.kind
                        && let Some(h) = handled.get_mut(y.0 as usize)
                    {
                        *h = true;
                    }
                }
                handled
            });
        handled.get(s.0 as usize).copied().unwrap_or(true)
    }

    /// Evidence that `task` received a cancel request made at or after
    /// event `from` (or one made earlier whose count it still carries): it
    /// ended cancelled, a CancelledError left one of its nodes, or its final
    /// `cancelling()` count shows the request. Unknown counts and possible
    /// `uncancel` calls count as evidence, to stay conservative.
    pub fn received_cancel(&self, task: u32, from: usize) -> bool {
        if matches!(self.fin(task), Some(Fin::Cancelled(_)))
            && self.done(task).is_some_and(|d| d >= from)
        {
            return true;
        }
        let raised = self.task_events.get(task as usize).is_some_and(|evs| {
            evs.iter().any(|&i| {
                i >= from
                    && matches!(&self.t.events[i].what, What::End { res: Res::Raise(x), .. } if x.cls == "CancelledError")
            })
        });
        if raised || self.uncancel_may_touch(task) {
            return true;
        }
        // The shutdown cancels every task still pending when it starts.
        let shut = self.shutdown.is_some_and(|s| {
            self.created(task).is_some_and(|c| c < s) && self.done(task).is_none_or(|d| d > s)
        }) as u32;
        match self.cancelling(task) {
            None => true,
            Some(c) => c > shut,
        }
    }

    /// Whether anything but the task itself, injections and the shutdown can
    /// call `cancel()` on it: its name is awaited, cancelled, passed by
    /// `ref` or uncancelled, or a gather, wait_for or task group owns it.
    pub fn exposed(&self, task: u32) -> bool {
        if task == 0 {
            return false;
        }
        let Some(node) = self.task_node.get(task as usize).copied().flatten() else {
            return true;
        };
        if self.task_is_aw[task as usize] {
            return !self
                .parent(node)
                .is_some_and(|q| matches!(self.kind(q), Some(Kind::Shield)));
        }
        match self.kind(node) {
            Some(Kind::Spawn(_, SpawnMode::Weak | SpawnMode::Keep)) => false,
            Some(Kind::Spawn(s, SpawnMode::Bind)) => self.handled(*s),
            _ => true,
        }
    }

    /// Whether a task parked at node `n` may get a cancel absorbed there: the
    /// cancel goes to another task that may swallow it (await of a task, a
    /// gather, a wait_for awaiting a task directly) or into a task group's
    /// exit, which can trade it for an ExceptionGroup.
    pub fn absorbing(&self, n: NodeId) -> bool {
        match self.kind(n) {
            Some(Kind::Await(s)) => !matches!(self.target(*s), Target::Future(_)),
            Some(Kind::Gather { .. }) | Some(Kind::TaskGroup(_)) => true,
            Some(Kind::WaitFor(t)) => {
                let by_ref = self
                    .children(n)
                    .first()
                    .is_some_and(|&c| matches!(self.kind(c), Some(Kind::Ref(_))));
                by_ref && (self.version >= (3, 12) || t.is_none())
            }
            _ => false,
        }
    }

    /// Whether some absorbing node (see `absorbing`) of `task` is open at
    /// any moment between events `lo` and `hi`. A task group counts only
    /// once its body is over, while its exit waits for the children.
    pub fn absorbing_between(&self, task: u32, lo: usize, hi: usize) -> bool {
        let Some(starts) = self.task_starts.get(task as usize) else {
            return false;
        };
        starts.iter().any(|&(s, n)| {
            let from = match self.kind(n) {
                Some(Kind::TaskGroup(_)) => match self.body_exit(n) {
                    BodyExit::Empty => Some(s),
                    exit => exit.event(),
                },
                _ => Some(s),
            };
            from.is_some_and(|s| s < hi) && self.end(n).is_none_or(|e| e > lo) && self.absorbing(n)
        })
    }
}
