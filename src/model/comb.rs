//! Combinators after `tasks.py`, `timeouts.py` and `taskgroups.py`: the
//! records every combinator keeps, shield, wait_for's frames (3.11's
//! task-based one and the zero-timeout path), and the later steps of wait.
//! gather's code is in `gather.rs`; wait's start and as_completed in
//! `wait.rs`; timeout and 3.12+ wait_for in `timeout.rs`; TaskGroup in
//! `taskgroup.rs`.

use super::coro::{Act, Comp, Frame, NONE, Sig};
use super::eventloop::HId;
use super::exc::{Cls, ExcId};
use super::fut::{Cb, FKind, FState, FutId, V};
use super::graph::N;
use super::machine::Machine;
use crate::ast::{Kind, NodeId, WaitWhen};
use std::collections::VecDeque;

/// What `ensure_future(fut, loop=loop)` raises for a future of another loop.
pub(super) const OTHER_LOOP: &str =
    "The future belongs to a different loop than the one specified as the loop argument";

#[derive(Clone, Debug, Default)]
pub struct Gather {
    pub children: Vec<FutId>,
    pub nfuts: u32,
    pub nfinished: u32,
    pub return_exceptions: bool,
    pub cancel_requested: bool,
    pub outer: Option<FutId>,
    /// `gather()`'s arguments, which its `coros_or_futures` tuple holds
    /// while it runs; the tuple's place in the collector's list, just
    /// after the argument coroutines; theirs, in argument order; and how
    /// many of those have been wrapped in a task (`gcorder.rs`).
    pub args: Vec<Result<FutId, NodeId>>,
    pub args_key: u32,
    /// The `children` list's place: made in gather(), before any child.
    pub list_key: u32,
    pub coro_keys: Vec<u32>,
    pub coro_done: u32,
}

#[derive(Clone, Debug)]
pub struct Timeout {
    /// 0 created, 1 entered, 2 expiring, 3 expired, 4 exited.
    pub state: u8,
    pub handler: Option<HId>,
    pub task: u32,
    pub cancelling: u32,
    /// Its place in the collector's list (`gcorder.rs`): allocated by
    /// `timeout()`, before `__aenter__` schedules its handler.
    pub key: u32,
}

#[derive(Clone, Debug, Default)]
pub struct TaskGroup {
    pub exiting: bool,
    pub aborting: bool,
    pub parent: u32,
    pub parent_cancel_requested: bool,
    pub tasks: Vec<FutId>,
    pub errors: Vec<ExcId>,
    pub base_error: Option<ExcId>,
    pub on_completed_fut: Option<FutId>,
    pub propagate: Option<ExcId>,
    /// The CancelledErrors `__aexit__` caught awaiting its tasks: raised
    /// in its frame, their tracebacks hold that frame and what its locals
    /// come to hold (the group it raises).
    pub caught: Vec<ExcId>,
    /// `__aexit__`'s `exc` and `tb`: the exception that left the body and
    /// what its traceback held then. An exception `__aexit__` raises keeps
    /// its frame, and so these.
    pub exit_exc: Option<ExcId>,
    pub exit_tb: Vec<super::gc::TbRef>,
    /// How the body finished, which `__aexit__` passes on when it raises
    /// nothing: kept here, not in the frame, as `exit_exc` is.
    pub pend: super::coro::PC,
    /// Its place in the collector's list (`gcorder.rs`): allocated by
    /// `TaskGroup()`, before `__aenter__`.
    pub key: u32,
}

#[derive(Clone, Debug)]
pub struct Wait {
    pub futs: Vec<FutId>,
    pub waiter: FutId,
    pub timer: Option<HId>,
    pub counter: i64,
    pub when: WaitWhen,
}

#[derive(Clone, Debug, Default)]
pub struct AsCompleted {
    pub todo: Vec<FutId>,
    pub all: Vec<FutId>,
    pub queue: VecDeque<Option<FutId>>,
    pub getters: VecDeque<FutId>,
    pub timer: Option<HId>,
    pub left: u32,
    pub results: Vec<V>,
    /// Its timer handle is alive and not cancelled, so its closures are a
    /// cycle (`graph::N::Ac`), whether or not the timeout ran.
    pub cycle: bool,
    /// A collection freed that cycle.
    pub collected: bool,
    /// Where the object iterating it (3.11/3.12 the generator, 3.13 the
    /// `_AsCompletedIterator`) sits in the collector's list: made before
    /// the tasks it wraps its arguments in.
    pub key: u32,
}

/// Which combinator a `Frame::Comb` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CombKind {
    /// asyncio.wait: a = wait index.
    Wait,
    /// as_completed: a = index, b = current getter or NONE.
    AsCompleted,
    /// wait_for with timeout <= 0: a = fut, b = waiter, c = phase.
    WaitForNow,
    /// 3.11 wait_for: a = fut, b = waiter, c = timer; phase in the wf11 table.
    WaitFor11,
}

impl Machine {
    /// Reads the awaitable children of `node`: futures, or new coroutines.
    pub(super) fn awaitables(
        &mut self,
        t: Option<u32>,
        node: NodeId,
    ) -> Result<Vec<Result<FutId, NodeId>>, ExcId> {
        let p = self.p();
        let mut out = self.spare_args.pop().unwrap_or_default();
        out.reserve(p.children(node).count());
        for c in p.children(node) {
            if let Kind::Ref(_) = p.kind(c) {
                match self.read_fut(t, c) {
                    Ok(f) => out.push(Ok(f)),
                    Err(e) => {
                        super::machine::keep_spare(&mut self.spare_args, &mut out);
                        return Err(e);
                    }
                }
            } else {
                out.push(Err(c));
            }
        }
        Ok(out)
    }

    /// `ensure_future`: Err when an eager task's first step raised out of
    /// `create_task` (see `create_task`).
    pub(super) fn ensure_future(&mut self, a: Result<FutId, NodeId>) -> Result<FutId, ExcId> {
        match a {
            Ok(f) => Ok(f),
            Err(c) => {
                let name = self.sc.awaitable_name(c);
                let func = self.aw_fn(c);
                self.create_task(func, name)
            }
        }
    }

    /// The function that runs awaitable node `c` as a coroutine.
    pub fn aw_fn(&self, c: NodeId) -> u32 {
        if matches!(self.p().kind(c), Kind::Do) {
            c
        } else {
            self.sc.exec_fn[c as usize]
        }
    }

    /// Raises a new `cls(msg)` out of a combinator's call where task `t`
    /// is; the call's frame, in the traceback, holds the futures `held`.
    pub(super) fn raise_holding(
        &mut self,
        t: Option<u32>,
        cls: Cls,
        msg: &str,
        held: &[FutId],
    ) -> ExcId {
        let e = self.raise_new(t, cls, msg);
        for &f in held {
            self.tb_ref(e, super::gc::TbRef::Fut(f));
        }
        e
    }

    /// A task that code running with no loop running (a coroutine that
    /// swallowed the GeneratorExit of a close, after main's run) makes for
    /// a coroutine argument of gather() or shield(): `_ensure_future` takes
    /// `events.get_event_loop()`, the policy's loop, and creates it there.
    /// That loop never runs, and its ready queue keeps the task, so the
    /// task stays pending for good, its coroutine never started; no task
    /// factory of the runtime sees it, so the trace never names it
    /// (checked on 3.11.7, 3.12.1 and 3.13.0). Its future holds the done
    /// callbacks its caller adds.
    pub(super) fn policy_task(&mut self, c: NodeId) -> FutId {
        let f = self.new_fut(FKind::Plain);
        let func = self.aw_fn(c);
        self.policy_loop.push(N::Fut(f));
        self.policy_loop.push(N::Fn(func));
        f
    }

    /// `asyncio.shield(aw)`.
    pub fn shield_new(&mut self, t: Option<u32>, node: NodeId) -> Result<FutId, ExcId> {
        // Its one argument, taken out of a list kept for the next call:
        // dropped, the list was a malloc and a free per shield.
        let mut args = self.awaitables(t, node)?;
        let a = args.pop().expect("shield has an operand");
        super::machine::keep_spare(&mut self.spare_args, &mut args);
        let inner = match a {
            Err(c) if !self.running => self.policy_task(c),
            a => self.ensure_future(a)?,
        };
        if self.done(inner) {
            return Ok(inner);
        }
        let outer = self.new_fut(FKind::Plain);
        self.add_done_callback(inner, Cb::ShieldInner(outer));
        self.add_done_callback(outer, Cb::ShieldOuter(inner));
        Ok(outer)
    }

    pub fn shield_inner_done(&mut self, outer: FutId, inner: FutId) {
        if self.futs[outer as usize].state == FState::Cancelled {
            if self.futs[inner as usize].state != FState::Cancelled {
                self.exception(inner);
            }
            return;
        }
        if self.futs[inner as usize].state == FState::Cancelled {
            self.fut_cancel(outer, None);
        } else if let Some(e) = self.exception(inner) {
            self.set_exception(outer, e);
        } else {
            let v = self.futs[inner as usize].result;
            self.set_result(outer, v);
        }
    }

    pub fn shield_outer_done(&mut self, inner: FutId, outer: FutId) {
        if !self.done(inner) {
            self.remove_done_callback(inner, Cb::ShieldInner(outer));
        }
    }

    pub fn comb_frame(&mut self, t: u32, fr: &mut Frame, sig: Sig) -> Act {
        let Frame::Comb { kind, a, b, c } = *fr else {
            unreachable!()
        };
        match kind {
            CombKind::Wait => match sig {
                Sig::Child(r) => {
                    // The futures are read in place, by index: a clone of
                    // the record was a malloc and a free per wait.
                    let w = a as usize;
                    let (timer, waiter) = (self.waits[w].timer, self.waits[w].waiter);
                    if let Some(h) = timer {
                        self.lp.cancel(h);
                    }
                    for i in 0..self.waits[w].futs.len() {
                        let f = self.waits[w].futs[i];
                        self.remove_done_callback(f, Cb::WaitDone(a));
                    }
                    if let Comp::Raise(e) = r {
                        // It leaves through `_wait`'s frame (`fs`, `f`,
                        // `waiter`) and `wait`'s (`fs`): its traceback
                        // keeps every future waited on, and the waiter
                        // (checked on 3.11.7, 3.12.1, 3.13.0).
                        for i in 0..self.waits[w].futs.len() {
                            let f = self.waits[w].futs[i];
                            self.tb_ref(e, super::gc::TbRef::LateFut(f));
                        }
                        self.tb_ref(e, super::gc::TbRef::LateFut(waiter));
                        return Act::Pop(r);
                    }
                    let n = self.waits[w].futs.iter().filter(|&&f| self.done(f)).count();
                    Act::Pop(Comp::Norm(V::int(n as i64)))
                }
                _ => unreachable!(),
            },
            CombKind::AsCompleted => self.ac_step(t, fr, a, b, sig),
            CombKind::WaitForNow => match (c, sig) {
                // _cancel_and_wait(fut)
                (0, Sig::Start) => {
                    let waiter = self.new_fut(FKind::Plain);
                    self.add_done_callback(a, Cb::Release(waiter));
                    *fr = Frame::Comb {
                        kind,
                        a,
                        b: waiter,
                        c: 1,
                    };
                    if let Err(e) = self.cancel(a, None) {
                        self.raise_here(Some(t), e);
                        self.remove_done_callback(a, Cb::Release(waiter));
                        return Act::Pop(Comp::Raise(e));
                    }
                    self.await_fut(waiter)
                }
                (1, Sig::Child(r)) => {
                    self.remove_done_callback(a, Cb::Release(b));
                    if let Comp::Raise(e) = r {
                        // Through `_cancel_and_wait`'s frame and wait_for's,
                        // whose locals hold `fut`.
                        self.tb_ref(e, super::gc::TbRef::Fut(a));
                        return Act::Pop(r);
                    }
                    Act::Pop(self.result_or_timeout(t, a))
                }
                _ => unreachable!(),
            },
            CombKind::WaitFor11 => self.wait_for_11(t, fr, sig),
        }
    }

    /// 3.11's wait_for with a positive timeout; `Frame::Comb` c holds the
    /// timer, and the phase lives in the waiter-2 encoding of `b`.
    fn wait_for_11(&mut self, t: u32, fr: &mut Frame, sig: Sig) -> Act {
        let Frame::Comb {
            kind,
            a: fut,
            b: waiter,
            c: timer,
        } = *fr
        else {
            unreachable!()
        };
        let st = self.wf11.get(&(t, fut)).copied();
        let act = self.wait_for_11_phase(t, kind, fut, waiter, timer, st, sig);
        if let Act::Pop(_) = act {
            self.wf11.remove(&(t, fut));
        }
        act
    }

    #[allow(clippy::too_many_arguments)]
    fn wait_for_11_phase(
        &mut self,
        t: u32,
        kind: CombKind,
        fut: FutId,
        waiter: FutId,
        timer: u32,
        st: Option<(u8, ExcId, FutId)>,
        sig: Sig,
    ) -> Act {
        match (st, sig) {
            // A fresh wait_for: a later one in the same task on the same
            // future must not resume an earlier one's phase.
            (_, Sig::Start) => {
                self.wf11.insert((t, fut), (0, NONE, NONE));
                self.await_fut(waiter)
            }
            (Some((0, _, _)), Sig::Child(r)) => {
                let cancelled = matches!(r, Comp::Raise(e) if self.excs.cls(e).is_cancelled());
                if let Comp::Raise(e) = r
                    && !cancelled
                {
                    self.lp.cancel(timer);
                    return Act::Pop(Comp::Raise(e));
                }
                let ce = if let Comp::Raise(e) = r { e } else { NONE };
                if self.done(fut) {
                    self.lp.cancel(timer);
                    let c = match self.result_freeing(fut) {
                        Ok(v) => Comp::Norm(v),
                        Err(e) => {
                            if ce != NONE {
                                self.excs.chain(e, Some(ce));
                            } else {
                                self.raise_here(Some(t), e);
                            }
                            self.tb_ref(e, super::gc::TbRef::Fut(fut));
                            Comp::Raise(e)
                        }
                    };
                    return Act::Pop(c);
                }
                self.remove_done_callback(fut, Cb::Release(waiter));
                let w2 = self.new_fut(FKind::Plain);
                self.add_done_callback(fut, Cb::Release(w2));
                self.wf11.insert((t, fut), (1, ce, w2));
                let _ = kind;
                if let Err(e) = self.cancel(fut, None) {
                    // Raised in `_cancel_and_wait`, whose `finally` takes its
                    // callback off again, under wait_for's handler of the
                    // cancel when one came in. Its traceback passes both
                    // frames, whose locals hold `fut`; giving it that edge
                    // (`TbRef::Fut`) turned two 3.11 fingerprint programs'
                    // final collections from agreeing to differing, so the
                    // edge waits for a model of where those frames sit.
                    self.remove_done_callback(fut, Cb::Release(w2));
                    if ce != NONE {
                        self.excs.chain(e, Some(ce));
                    } else {
                        self.raise_here(Some(t), e);
                    }
                    self.lp.cancel(timer);
                    return Act::Pop(Comp::Raise(e));
                }
                self.await_fut(w2)
            }
            (Some((1, ce, w2)), Sig::Child(r)) => {
                self.remove_done_callback(fut, Cb::Release(w2));
                self.lp.cancel(timer);
                // What leaves passes through wait_for's frame (and, if
                // raised in there, `_cancel_and_wait`'s), whose locals
                // hold `fut`: its traceback keeps the inner task.
                if let Comp::Raise(e) = r {
                    self.tb_ref(e, super::gc::TbRef::Fut(fut));
                    return Act::Pop(r);
                }
                if ce != NONE {
                    // bare `raise` of the CancelledError being handled
                    self.tb_ref(ce, super::gc::TbRef::Fut(fut));
                    return Act::Pop(Comp::Raise(ce));
                }
                Act::Pop(self.result_or_timeout(t, fut))
            }
            _ => unreachable!("wait_for frame got an unexpected signal"),
        }
    }
}
