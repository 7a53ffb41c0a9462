//! Futures and tasks, after `futures.py`, `tasks.py` and the C `_asyncio`
//! module: states, done callbacks (always through `call_soon`, also when
//! added to a done future), cancel messages, `_must_cancel`,
//! `_fut_waiter`, `cancelling()`/`uncancel()`, the task step and wakeup.

use super::exc::{Cls, ExcId};
use super::machine::Machine;
use super::run::Hcb;
use crate::ast::NodeId;
use crate::trace::{Fin, What};
use std::rc::Rc;

pub type FutId = u32;
pub const NO_EXC: u32 = u32::MAX;

/// A Python value the model passes around.
#[derive(Clone, Debug, Default)]
pub enum V {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    Str(Rc<str>),
    List(Rc<[V]>),
    Exc(ExcId),
}

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

/// A done callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cb {
    /// `Task.__wakeup` of a task.
    Wakeup(u32),
    /// The runtime's own callback: traced at once when scheduled.
    Traced,
    /// `_run_until_complete_cb`: stops the loop.
    RunUntil,
    /// gather's `_done_callback`.
    Gather(u32),
    /// shield's `_inner_done_callback` (outer).
    ShieldInner(FutId),
    /// shield's `_outer_done_callback` (inner).
    ShieldOuter(FutId),
    /// `bg.discard` of the background-set idiom.
    BgDiscard,
    /// `TaskGroup._on_task_done`.
    TgDone(u32),
    /// `_wait`'s `_on_completion`.
    WaitDone(u32),
    /// `functools.partial(_release_waiter, waiter)`.
    Release(FutId),
    /// `as_completed`'s `_on_completion`.
    AcDone(u32),
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
    pub callbacks: Vec<Cb>,
    pub label: Option<crate::trace::Name>,
    /// The finalizer has run (reported or nothing to report).
    pub dead: bool,
    /// Freed by a collection: it holds nothing any more.
    pub collected: bool,
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
            callbacks: Vec::new(),
            label: None,
            dead: false,
            collected: false,
        }
    }
    pub fn done(&self) -> bool {
        self.state != FState::Pending
    }
}

impl Machine {
    pub fn new_fut(&mut self, kind: FKind) -> FutId {
        let mut f = Fut::new(kind);
        if let Some(cbs) = self.spare_cbs.pop() {
            f.callbacks = cbs;
        }
        self.futs.push(f);
        self.futs.len() as FutId - 1
    }

    pub fn done(&self, f: FutId) -> bool {
        self.futs[f as usize].done()
    }

    pub fn add_done_callback(&mut self, f: FutId, cb: Cb) {
        if self.futs[f as usize].done() {
            self.call_soon_cb(cb, f);
        } else {
            self.futs[f as usize].callbacks.push(cb);
        }
    }

    /// `remove_done_callback`: removes every registration equal to `cb`.
    pub fn remove_done_callback(&mut self, f: FutId, cb: Cb) {
        self.futs[f as usize].callbacks.retain(|c| *c != cb);
    }

    fn call_soon_cb(&mut self, cb: Cb, f: FutId) {
        if cb == Cb::Traced {
            self.trace_done(f);
        } else {
            self.lp.call_soon(Hcb::FutCb(cb, f));
        }
    }

    fn schedule_callbacks(&mut self, f: FutId) {
        let cbs = std::mem::take(&mut self.futs[f as usize].callbacks);
        for &cb in &cbs {
            self.call_soon_cb(cb, f);
        }
        let mut cbs = cbs;
        cbs.clear();
        if self.futs[f as usize].callbacks.is_empty() {
            self.futs[f as usize].callbacks = cbs;
        }
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
        if let Some(tb) = self.tbs.get(e as usize) {
            self.futs[f as usize].exc_tb.clone_from(tb);
        }
        self.any_exc = true;
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
    /// chained: the caller raises it where it is).
    pub fn result(&mut self, f: FutId) -> Result<V, ExcId> {
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
                        if self.tbs.len() <= e as usize {
                            self.tbs.resize(e as usize + 1, Vec::new());
                        }
                        self.tbs[e as usize] = tb;
                        Err(e)
                    }
                    None => Ok(x.result.clone()),
                }
            }
        }
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
    pub fn fin(&self, f: FutId) -> Fin {
        let x = &self.futs[f as usize];
        match x.state {
            FState::Cancelled => {
                let msg = match x.cancelled_exc {
                    Some(e) => self.excs.get(e).msg.clone(),
                    None => x.cancel_msg.clone(),
                };
                Fin::Cancelled(msg.map(|m| m.to_string()))
            }
            _ => match x.exc {
                Some(e) => Fin::Exception(self.excs.encode(e)),
                None => Fin::Result(self.value(&x.result)),
            },
        }
    }

    fn trace_done(&mut self, f: FutId) {
        let t = self.task_of(f).expect("traced callbacks are on tasks");
        let fin = self.fin(f);
        self.tasks[t as usize].done_fin = Some(fin.clone());
        self.tasks[t as usize].done_cancelling = self.tasks[t as usize].num_cancels;
        self.ev(What::Done { task: t, fin });
    }

    /// `Task.cancel(msg)`, `_GatheringFuture.cancel(msg)` or
    /// `Future.cancel(msg)`, whichever `f` is. Task and gather cancels
    /// recurse through `_fut_waiter` and children in CPython; here an
    /// explicit stack does it. A task met again on the current path (an
    /// await cycle) raises RecursionError, as CPython eventually does.
    pub fn cancel(&mut self, f: FutId, msg: Option<Rc<str>>) -> Result<bool, ExcId> {
        enum Act {
            /// Task `f` waits for the result of cancelling its `_fut_waiter`.
            Task(FutId),
            /// Gather `f` iterating its children: next index, any True.
            Gather(FutId, u32, bool),
        }
        let mut stack: Vec<Act> = Vec::new();
        // Futures on the current path, marked in `self.on_path` (a bitmap,
        // so a million-deep chain stays linear).
        let mut on_path: Vec<FutId> = Vec::new();
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
                            for &x in &on_path {
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
                            task.must_cancel = true;
                            self.futs[g as usize].cancel_msg = msg.clone();
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
                    FKind::Plain => ret = self.fut_cancel(g, msg.clone()),
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
                        self.tasks[t as usize].must_cancel = true;
                        self.futs[g as usize].cancel_msg = msg.clone();
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

    /// `loop.create_task(coro)` through the runtime's factory: traced
    /// `create`, then eager start or a scheduled first step, then the
    /// runtime's done callback.
    pub fn create_task(&mut self, func: NodeId, name: crate::trace::Name) -> Result<FutId, ExcId> {
        let idx = self.tasks.len() as u32;
        let n = self.p().len() as NodeId;
        let node = if func >= n { func - n } else { func };
        self.ev(What::Create {
            task: idx,
            name: name.clone(),
            node,
        });
        let f = self.new_fut(FKind::Task(idx));
        let mut task = super::machine::Task::new(f, func, name);
        if let Some(frames) = self.spare_frames.pop() {
            task.frames = frames;
        }
        self.tasks.push(task);
        self.task_order.push(f);
        if self.profile.eager && self.running {
            let before = self.escaped;
            self.eager_start(idx);
            // This task's own KeyboardInterrupt, raised in this first step.
            if self.escaped != before
                && let Some(e) = self.escaped
                && self.futs[f as usize].exc == Some(e)
            {
                self.escaped = before;
                self.eager_start_raised(idx, e);
                return Err(e);
            }
        } else {
            self.lp.call_soon(Hcb::Step(idx, NO_EXC));
        }
        self.add_done_callback(f, Cb::Traced);
        Ok(f)
    }

    /// A KeyboardInterrupt from an eager first step is re-raised by
    /// `__step` and so out of `Task()` itself, into the code that called
    /// `create_task`. The half-made task has no other reference: it is
    /// freed at once, before its done callback was ever added (so no `done`
    /// event), reporting its exception as never retrieved. The runtime's
    /// factory still counts it as the current task, if there is one at all
    /// (a plain callback has none).
    fn eager_start_raised(&mut self, t: u32, e: ExcId) {
        let f = self.tasks[t as usize].fut;
        let x = self.excs.encode(e);
        let cur = self.current;
        self.current = cur.map(|_| t);
        let name = self.tasks[t as usize].name.clone();
        self.ev(What::Handler {
            msg: "Task exception was never retrieved".into(),
            obj: Some(name),
            exc: Some(x),
        });
        self.current = cur;
        self.futs[f as usize].log_tb = false;
        self.futs[f as usize].dead = true;
        self.tasks[t as usize].freed = true;
    }

    fn eager_start(&mut self, t: u32) {
        let prev = self.current;
        let parent_fn = prev.and_then(|p| {
            self.tasks[p as usize]
                .frames
                .iter()
                .rev()
                .find_map(|f| match *f {
                    super::coro::Frame::Level { func } => Some(func),
                    _ => None,
                })
        });
        self.eager_stack.push((t, parent_fn, prev));
        self.current = Some(t);
        self.stepping.push(t);
        self.eager_depth += 1;
        if self.eager_depth > EAGER_DEPTH_LIMIT {
            // CPython would raise RecursionError deep inside nested eager
            // starts; the model stops nesting and schedules the step.
            self.lp.call_soon(Hcb::Step(t, NO_EXC));
        } else {
            self.step_run_and_handle(t, None, false);
        }
        self.eager_depth -= 1;
        self.stepping.pop();
        self.eager_stack.pop();
        self.current = prev;
    }

    /// `Task.__step(exc)`.
    pub fn step(&mut self, t: u32, exc: Option<ExcId>) {
        let f = self.tasks[t as usize].fut;
        if self.futs[f as usize].done() {
            return; // InvalidStateError in CPython; cannot happen here
        }
        let mut exc = exc;
        let mut created = false;
        if self.tasks[t as usize].must_cancel {
            if !exc.is_some_and(|e| self.excs.cls(e).is_cancelled()) {
                exc = Some(self.make_cancelled_error(f));
                created = true;
            }
            self.tasks[t as usize].must_cancel = false;
        }
        self.tasks[t as usize].fut_waiter = None;
        let prev = self.current;
        self.current = Some(t);
        self.stepping.push(t);
        // The C step (and `__wakeup`) holds the exception it throws in
        // until the step returns, and with it the traceback's frames; one
        // it created itself (for a pending cancel) it drops as soon as the
        // throw returns, before handling what the coroutine did.
        if let Some(e) = exc {
            self.inflight.push(e);
        }
        self.step_run_and_handle(t, exc, created);
        if exc.is_some() && !created {
            self.inflight.pop();
        }
        self.stepping.pop();
        self.current = prev;
    }

    /// `__step_run_and_handle_result`.
    fn step_run_and_handle(&mut self, t: u32, exc: Option<ExcId>, created: bool) {
        let f = self.tasks[t as usize].fut;
        let out = self.run_coro(t, exc);
        if created {
            self.inflight.pop();
            // What the coroutine raised is still in flight (it may be that
            // very exception, or chain to it); a value it returned is held
            // by StopIteration, which the graph does not model, so then the
            // check waits for the value to reach the future.
            let holds =
                match &out {
                    super::coro::Out::Done(super::coro::Comp::Raise(x)) => Some(Some(*x)),
                    super::coro::Out::Done(
                        super::coro::Comp::Norm(v) | super::coro::Comp::Ret(v),
                    ) if matches!(v, V::Exc(_) | V::List(_)) => None,
                    _ => Some(None),
                };
            if let Some(raised) = holds
                && self.gc_watch()
            {
                self.inflight.extend(raised);
                self.refcount_check(false);
                if raised.is_some() {
                    self.inflight.pop();
                }
            }
        }
        match out {
            super::coro::Out::Done(c) => match c {
                super::coro::Comp::Raise(e) => {
                    self.tb_loop_frames(e);
                    let cls = self.excs.cls(e);
                    if cls.is_cancelled() {
                        self.futs[f as usize].cancelled_exc = Some(e);
                        self.fut_cancel(f, None);
                    } else {
                        self.set_exception(f, e);
                        if cls == Cls::Prog(crate::ast::ExcClass::KeyboardInterrupt) {
                            self.escaped = Some(e);
                            // It leaves `Handle._run` by re-raising, before
                            // `self = None`: the traceback's frame keeps the
                            // handle, whose callback is this task's step.
                            self.tb_ref(e, super::gc::TbRef::Fut(f));
                        }
                    }
                }
                super::coro::Comp::Norm(v) | super::coro::Comp::Ret(v) => {
                    if self.tasks[t as usize].must_cancel {
                        self.tasks[t as usize].must_cancel = false;
                        let msg = self.futs[f as usize].cancel_msg.clone();
                        self.fut_cancel(f, msg);
                    } else {
                        self.set_result(f, v);
                    }
                }
            },
            super::coro::Out::Yield(None) => {
                self.lp.call_soon(Hcb::Step(t, NO_EXC));
            }
            super::coro::Out::Yield(Some(w)) => {
                if w == f {
                    let e = self
                        .excs
                        .msg(Cls::RUNTIME, "Task cannot await on itself: <Task>");
                    self.lp.call_soon(Hcb::Step(t, e));
                } else {
                    self.add_done_callback(w, Cb::Wakeup(t));
                    self.tasks[t as usize].fut_waiter = Some(w);
                    if self.tasks[t as usize].must_cancel {
                        let msg = self.futs[f as usize].cancel_msg.clone();
                        // Cancelling a task or gather here recurses in CPython too.
                        match self.cancel(w, msg) {
                            Ok(true) => self.tasks[t as usize].must_cancel = false,
                            Ok(false) => {}
                            Err(_) => {}
                        }
                    }
                }
            }
        }
    }

    /// `Task.__wakeup(future)`.
    pub fn wakeup(&mut self, t: u32, w: FutId) {
        let st = self.futs[w as usize].state;
        match st {
            FState::Cancelled => {
                let e = self.make_cancelled_error(w);
                self.step(t, Some(e));
            }
            _ => {
                let e = self.futs[w as usize].exc;
                if e.is_some() {
                    self.futs[w as usize].log_tb = false;
                }
                self.step(t, e);
            }
        }
    }
}

/// How deep eager starts may nest before the model stops nesting them.
pub const EAGER_DEPTH_LIMIT: u32 = 900;
