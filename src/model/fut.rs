//! Futures and tasks, after `futures.py`, `tasks.py` and the C `_asyncio`
//! module: states, results and the tracebacks they give back, cancel
//! messages, `_must_cancel`, `_fut_waiter`, `cancelling()` and
//! `uncancel()`. Done callbacks (always through `call_soon`, also when
//! added to a done future) are `cbs.rs`; creating and stepping tasks is
//! `task.rs`.

pub use super::cbs::{Cb, Cbs};
use super::exc::{Cls, ExcId};
use super::machine::Machine;
use crate::ast::NodeId;
use crate::trace::Fin;
use std::rc::Rc;

pub type FutId = u32;
pub const NO_EXC: u32 = u32::MAX;

/// A Python value the model passes around. It owns nothing, so neither it
/// nor what carries it needs drop code.
#[derive(Clone, Copy, Debug, Default)]
pub enum V {
    #[default]
    None,
    Bool(bool),
    Int(I64),
    /// The string literal of this node (`Machine::lit_text`): a program's
    /// strings are all constants.
    Str(NodeId),
    /// The `len` values from `at` in `Machine::lists`: a list is never
    /// changed once made, and lives no longer than its run.
    List(u32, u32),
    Exc(ExcId),
}

/// An `i64` aligned to 4: `V` is then 12 bytes, and a completion
/// (`Comp`), which the step loop moves every step, 16.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub struct I64(pub i64);

impl V {
    /// An int value, its `i64` stored aligned to 4 (`I64`).
    pub fn int(i: i64) -> V {
        V::Int(I64(i))
    }
}

const _: () = assert!(std::mem::size_of::<V>() == 12);
const _: () = assert!(std::mem::size_of::<super::coro::Comp>() == 16);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FState {
    Pending,
    Cancelled,
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FKind {
    Plain,
    Task(u32),
    /// `_GatheringFuture`; the index of its gather state.
    Gather(u32),
}

#[derive(Clone, Debug)]
pub struct Fut {
    pub kind: FKind,
    pub state: FState,
    pub result: V,
    pub exc: Option<ExcId>,
    /// `fut_exception_tb`: the exception's traceback when it was set,
    /// given back to it by the first `result()` and then dropped.
    pub exc_tb: Vec<super::gc::TbRef>,
    pub cancel_msg: Option<Rc<str>>,
    pub cancelled_exc: Option<ExcId>,
    pub log_tb: bool,
    pub callbacks: Cbs,
    pub label: Option<crate::trace::Name>,
    /// The finalizer has run (reported or nothing to report).
    pub dead: bool,
    /// Freed by a collection: it holds nothing any more.
    pub collected: bool,
    /// Garbage that a reference cycle keeps, as a refcount check found:
    /// nothing reaches it to drop a reference, so refcounting can never
    /// free it and checks stop asking. Cleared when something may reach
    /// it again: a collection, and the shutdown (which finds leftover
    /// tasks through the loop's weak set).
    pub cyclic: bool,
    /// Its finalizer ran and a collection then found it referenced again:
    /// CPython finalizes an object once, so it reports nothing more.
    pub finalized: bool,
    /// Its place in the collector's list (`gcorder.rs`).
    pub key: u32,
}

/// A pending activation of `cancel`'s explicit recursion.
pub enum CancelAct {
    /// Task `f` waits for the result of cancelling its `_fut_waiter`.
    Task(FutId),
    /// Gather `f` iterating its children: next index, any True.
    Gather(FutId, u32, bool),
}

impl Fut {
    pub fn new(kind: FKind) -> Fut {
        Fut {
            kind,
            state: FState::Pending,
            result: V::None,
            exc: None,
            exc_tb: Vec::new(),
            cancel_msg: None,
            cancelled_exc: None,
            log_tb: false,
            callbacks: Cbs::default(),
            label: None,
            dead: false,
            collected: false,
            cyclic: false,
            finalized: false,
            key: 0,
        }
    }
    pub fn done(&self) -> bool {
        self.state != FState::Pending
    }
}

impl Machine {
    #[inline]
    pub fn new_fut(&mut self, kind: FKind) -> FutId {
        self.new_fut_with(kind, false)
    }

    /// A new future, `traced`: with the runtime's done callback,
    /// `Cb::Traced`, written with the record.
    #[inline]
    pub fn new_fut_with(&mut self, kind: FKind, traced: bool) -> FutId {
        let key = self.next_gc_key();
        super::machine::push_in_place!(
            self.futs,
            Fut {
                key,
                callbacks: Cbs::traced(traced),
                ..Fut::new(kind)
            }
        ) as FutId
    }

    pub fn done(&self, f: FutId) -> bool {
        self.futs[f as usize].done()
    }

    /// `Future.cancel(msg)`.
    pub fn fut_cancel(&mut self, f: FutId, msg: Option<Rc<str>>) -> bool {
        let x = &mut self.futs[f as usize];
        x.log_tb = false;
        if x.state != FState::Pending {
            return false;
        }
        x.state = FState::Cancelled;
        x.cancel_msg = msg;
        self.schedule_callbacks(f);
        true
    }

    /// `Future.cancel()`, raising what `closed_loop_callbacks` says.
    pub fn fut_cancel_checked(&mut self, f: FutId, msg: Option<Rc<str>>) -> Result<bool, ExcId> {
        let closed = self.closed_loop_callbacks(f);
        let r = self.fut_cancel(f, msg);
        closed.map_or(Ok(r), Err)
    }

    /// A pending C future about to finish once the loop is closed: it
    /// still finishes and drops every callback, but scheduling the first
    /// raises RuntimeError('Event loop is closed') out of `cancel()`,
    /// `set_result()` or `set_exception()` (checked on 3.11.7, 3.12.1,
    /// 3.13.0). That exception's traceback keeps `call_soon`'s frames, so
    /// the callback and the future, until it dies. Drops the callbacks and
    /// returns the exception, for the caller to finish the future and raise
    /// it; None when nothing would be scheduled.
    /// The loop closes only at the very end of a run, so the check is
    /// inline: every cancel of a future makes it, and it used to cost a
    /// call.
    #[inline(always)]
    pub fn closed_loop_callbacks(&mut self, f: FutId) -> Option<ExcId> {
        if !self.lp.closed {
            return None;
        }
        self.closed_loop_callbacks_out(f)
    }

    #[cold]
    #[inline(never)]
    fn closed_loop_callbacks_out(&mut self, f: FutId) -> Option<ExcId> {
        let x = &mut self.futs[f as usize];
        if x.state != FState::Pending || x.callbacks.is_empty() {
            return None;
        }
        let first = x.callbacks.as_slice()[0];
        x.callbacks.clear();
        let e = self.excs.msg(Cls::RUNTIME, "Event loop is closed");
        let mut held = Vec::new();
        self.cb_edges(first, &mut held);
        held.push(super::graph::N::Fut(f));
        for n in held {
            // What a callback holds: futures and task groups.
            let r = match n {
                super::graph::N::Fut(x) => super::gc::TbRef::Fut(x),
                super::graph::N::Tg(x) => super::gc::TbRef::Tg(x),
                _ => continue,
            };
            self.tb_ref(e, r);
        }
        Some(e)
    }

    /// `Future.set_result`; false (InvalidStateError) when already done.
    pub fn set_result(&mut self, f: FutId, v: V) -> bool {
        let x = &mut self.futs[f as usize];
        if x.state != FState::Pending {
            return false;
        }
        x.result = v;
        x.state = FState::Finished;
        self.schedule_callbacks(f);
        true
    }

    pub fn set_exception(&mut self, f: FutId, e: ExcId) -> bool {
        let x = &mut self.futs[f as usize];
        if x.state != FState::Pending {
            return false;
        }
        x.exc = Some(e);
        x.state = FState::Finished;
        // A pending future's `exc_tb` is empty; a spare list spares an
        // allocation.
        if let Some(tb) = self.tbs.get(e as usize)
            && !tb.is_empty()
        {
            let x = &mut self.futs[f as usize];
            if let Some(spare) = self.spare_tbs.pop() {
                x.exc_tb = spare;
            }
            x.exc_tb.extend_from_slice(tb);
        }
        self.failed.push(f);
        self.schedule_callbacks(f);
        self.futs[f as usize].log_tb = true;
        true
    }

    /// `_make_cancelled_error`: the saved CancelledError (once), else a new one.
    pub fn make_cancelled_error(&mut self, f: FutId) -> ExcId {
        if let Some(e) = self.futs[f as usize].cancelled_exc.take() {
            return e;
        }
        let msg = self.futs[f as usize].cancel_msg.clone();
        self.excs.create(Cls::CANCELLED, msg)
    }

    /// `future.result()`: the value, or the exception to raise (not yet
    /// chained: the caller raises it where it is). A value, the usual
    /// case, is taken in place; the rest out of line.
    #[inline(always)]
    pub fn result(&mut self, f: FutId) -> Result<V, ExcId> {
        let x = &mut self.futs[f as usize];
        if x.state == FState::Finished && x.exc.is_none() {
            x.log_tb = false;
            return Ok(x.result);
        }
        self.result_raised(f)
    }

    fn result_raised(&mut self, f: FutId) -> Result<V, ExcId> {
        match self.futs[f as usize].state {
            FState::Cancelled => Err(self.make_cancelled_error(f)),
            FState::Pending => Err(self
                .excs
                .msg(Cls::InvalidStateError, "Result is not ready.")),
            FState::Finished => {
                let x = &mut self.futs[f as usize];
                x.log_tb = false;
                match x.exc {
                    Some(e) => {
                        // The C future raises its exception with the
                        // traceback it had when set, the first time, and
                        // with none after (`future_get_result`; checked on
                        // 3.11.7, 3.12.1, 3.13.0).
                        let tb = std::mem::take(&mut x.exc_tb);
                        let mut old = std::mem::replace(self.tb_mut(e), tb);
                        self.tb_entries_lost(e, &old);
                        super::machine::keep_spare(&mut self.spare_tbs, &mut old);
                        Err(e)
                    }
                    None => Ok(x.result),
                }
            }
        }
    }

    /// `result()` where what it drops can die at once: it gives the
    /// exception back the traceback `set_exception` recorded, or none, so
    /// the traceback it had goes right there, and with it what only that
    /// held (the frames of an earlier await). The exception is in flight
    /// meanwhile.
    pub fn result_freeing(&mut self, f: FutId) -> Result<V, ExcId> {
        // A cancelled future's, the common case here, drops nothing.
        if self.futs[f as usize].state == FState::Cancelled {
            return Err(self.make_cancelled_error(f));
        }
        let drops_tb = self.futs[f as usize].state == FState::Finished
            && self.futs[f as usize]
                .exc
                .is_some_and(|e| self.tbs.get(e as usize).is_some_and(|tb| !tb.is_empty()));
        let r = self.result(f);
        if let (true, Err(e)) = (drops_tb, &r)
            && self.gc_watch()
        {
            self.refcount_check_holding(&super::coro::Comp::Raise(*e));
        }
        r
    }

    /// `result_freeing` where only the exception matters (a task's
    /// wakeup, whose coroutine reads the value itself): a value, the usual
    /// case, is not copied out only to be dropped.
    #[inline(always)]
    pub fn result_exc_freeing(&mut self, f: FutId) -> Option<ExcId> {
        let x = &mut self.futs[f as usize];
        if x.state == FState::Finished && x.exc.is_none() {
            x.log_tb = false;
            return None;
        }
        if x.state == FState::Cancelled {
            return Some(self.make_cancelled_error(f));
        }
        self.result_freeing(f).err()
    }

    /// `future.exception()` on a done, not cancelled future.
    pub fn exception(&mut self, f: FutId) -> Option<ExcId> {
        let x = &mut self.futs[f as usize];
        x.log_tb = false;
        x.exc
    }

    pub fn task_of(&self, f: FutId) -> Option<u32> {
        match self.futs[f as usize].kind {
            FKind::Task(t) => Some(t),
            _ => None,
        }
    }

    /// The trace's view of how a future finished, read without retrieving.
    /// Inlined into `trace_done`, which is there for it.
    #[inline(always)]
    pub fn fin(&self, f: FutId) -> Fin {
        let x = &self.futs[f as usize];
        match x.state {
            FState::Cancelled => {
                let msg = match x.cancelled_exc {
                    Some(e) => self.excs.get(e).msg.clone(),
                    None => x.cancel_msg.clone(),
                };
                Fin::Cancelled(msg.map(|m| self.pooled_str(&m)))
            }
            _ => match x.exc {
                Some(e) => Fin::Exception(self.excs.encode(e)),
                None => Fin::Result(self.value(&x.result)),
            },
        }
    }

    /// `Task.cancel(msg)`, `_GatheringFuture.cancel(msg)` or
    /// `Future.cancel(msg)`, whichever `f` is. Task and gather cancels
    /// recurse through `_fut_waiter` and children in CPython; here an
    /// explicit stack does it. A task met again on the current path (an
    /// await cycle) raises RecursionError, as CPython eventually does.
    pub fn cancel(&mut self, f: FutId, msg: Option<Rc<str>>) -> Result<bool, ExcId> {
        // Most cancels recurse at most once, into a plain future: done
        // here, as `cancel_with` would, without its stack and path (no
        // cycle can go through a plain future).
        match self.futs[f as usize].kind {
            FKind::Plain => return self.fut_cancel_checked(f, msg),
            FKind::Task(t) => {
                self.futs[f as usize].log_tb = false;
                if self.futs[f as usize].done() {
                    return Ok(false);
                }
                let waiter = self.tasks[t as usize].fut_waiter;
                match waiter {
                    None => {
                        self.tasks[t as usize].num_cancels += 1;
                        self.cancel_at_next_step(f, t, msg);
                        return Ok(true);
                    }
                    Some(w) if self.futs[w as usize].kind == FKind::Plain => {
                        self.tasks[t as usize].num_cancels += 1;
                        if !self.fut_cancel_checked(w, msg.clone())? {
                            self.cancel_at_next_step(f, t, msg);
                        }
                        return Ok(true);
                    }
                    Some(_) => {}
                }
            }
            FKind::Gather(_) => {}
        }
        self.cancel_deep(f, msg)
    }

    /// `Task.cancel`'s end when no awaited future took the cancel: task
    /// `t` (future `f`) is cancelled at its next step (`_must_cancel`),
    /// with message `msg`.
    #[inline(always)]
    fn cancel_at_next_step(&mut self, f: FutId, t: u32, msg: Option<Rc<str>>) {
        self.tasks[t as usize].must_cancel = true;
        self.futs[f as usize].cancel_msg = msg;
    }

    /// `cancel` through tasks and gathers, with the explicit stack.
    fn cancel_deep(&mut self, f: FutId, msg: Option<Rc<str>>) -> Result<bool, ExcId> {
        // The explicit stack and the path are the machine's, reused.
        let (mut stack, mut on_path) = std::mem::take(&mut self.cancel_bufs);
        stack.clear();
        on_path.clear();
        let r = self.cancel_with(f, msg, &mut stack, &mut on_path);
        self.cancel_bufs = (stack, on_path);
        r
    }

    fn cancel_with(
        &mut self,
        f: FutId,
        msg: Option<Rc<str>>,
        stack: &mut Vec<CancelAct>,
        on_path: &mut Vec<FutId>,
    ) -> Result<bool, ExcId> {
        use CancelAct as Act;
        // Futures on the current path, marked in `self.on_path` (a bitmap,
        // so a million-deep chain stays linear).
        if self.on_path.len() < self.futs.len() {
            self.on_path.resize(self.futs.len(), false);
        }
        // Enter f; `ret` is what the innermost finished call returned.
        let mut enter = Some(f);
        let mut ret = false;
        loop {
            if let Some(g) = enter.take() {
                match self.futs[g as usize].kind {
                    FKind::Task(t) => {
                        if self.on_path[g as usize] {
                            for &x in on_path.iter() {
                                self.on_path[x as usize] = false;
                            }
                            self.recursed = true;
                            return Err(self
                                .excs
                                .msg(Cls::RecursionError, "maximum recursion depth exceeded"));
                        }
                        self.futs[g as usize].log_tb = false;
                        if self.futs[g as usize].done() {
                            ret = false;
                        } else {
                            let task = &mut self.tasks[t as usize];
                            task.num_cancels += 1;
                            if let Some(w) = task.fut_waiter {
                                stack.push(Act::Task(g));
                                on_path.push(g);
                                self.on_path[g as usize] = true;
                                enter = Some(w);
                                continue;
                            }
                            self.cancel_at_next_step(g, t, msg.clone());
                            ret = true;
                        }
                    }
                    FKind::Gather(_) => {
                        if self.futs[g as usize].done() {
                            ret = false;
                        } else {
                            stack.push(Act::Gather(g, 0, false));
                            on_path.push(g);
                            self.on_path[g as usize] = true;
                        }
                    }
                    FKind::Plain => match self.fut_cancel_checked(g, msg.clone()) {
                        Ok(r) => ret = r,
                        // Out of every `cancel()` on the path.
                        Err(e) => {
                            for &x in on_path.iter() {
                                self.on_path[x as usize] = false;
                            }
                            return Err(e);
                        }
                    },
                }
            }
            // Resume the innermost pending activation with `ret`.
            let Some(top) = stack.pop() else {
                return Ok(ret);
            };
            match top {
                Act::Task(g) => {
                    on_path.pop();
                    self.on_path[g as usize] = false;
                    if !ret {
                        let t = self.task_of(g).unwrap();
                        self.cancel_at_next_step(g, t, msg.clone());
                    }
                    ret = true;
                }
                Act::Gather(g, i, any) => {
                    let FKind::Gather(gi) = self.futs[g as usize].kind else {
                        unreachable!()
                    };
                    // `ret` is the result of child i-1 when i > 0.
                    let any = any || (i > 0 && ret);
                    let children = &self.gathers[gi as usize].children;
                    if (i as usize) < children.len() {
                        let c = children[i as usize];
                        stack.push(Act::Gather(g, i + 1, any));
                        enter = Some(c);
                    } else {
                        on_path.pop();
                        self.on_path[g as usize] = false;
                        if any {
                            self.gathers[gi as usize].cancel_requested = true;
                        }
                        ret = any;
                    }
                }
            }
        }
    }

    pub fn cancelling(&self, t: u32) -> u32 {
        self.tasks[t as usize].num_cancels
    }

    pub fn uncancel(&mut self, t: u32) -> u32 {
        let clears = self.profile.uncancel_clears_must_cancel;
        let task = &mut self.tasks[t as usize];
        if task.num_cancels > 0 {
            task.num_cancels -= 1;
            if clears && task.num_cancels == 0 {
                task.must_cancel = false;
            }
        }
        task.num_cancels
    }
}
