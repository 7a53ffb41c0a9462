//! Tasks as `tasks.py` and the C `_asyncio` module run them: creation
//! through the runtime's factory (an eager first step inside
//! `create_task`, or a scheduled one), the step, which resumes the
//! coroutine and settles the task from what it did, and the wakeup.

use super::exc::{Cls, ExcId};
use super::fut::{Cb, FKind, FutId, NO_EXC};
use super::machine::Machine;
use super::run::Hcb;
use crate::ast::NodeId;
use crate::trace::What;

/// The name of a task whose `create` event is `events[ev]`.
pub fn created_name(events: &[crate::trace::Event], ev: u32) -> &crate::trace::Name {
    match &events[ev as usize].what {
        What::Create { name, .. } => name,
        _ => unreachable!("a task's create_ev is its create event"),
    }
}

/// The tasks in the middle of a step, outermost first: at most one
/// stepped by the loop (a step never runs inside another: only eager
/// starts nest), kept apart from the eager starts above it so that the
/// loop's steps, nearly all of them, make no push and pop.
#[derive(Default)]
pub struct Stepping {
    pub base: Option<u32>,
    pub eager: Vec<u32>,
}

impl Stepping {
    pub fn clear(&mut self) {
        self.base = None;
        self.eager.clear();
    }
}

impl<'a> IntoIterator for &'a Stepping {
    type Item = &'a u32;
    type IntoIter = std::iter::Chain<std::option::Iter<'a, u32>, std::slice::Iter<'a, u32>>;
    fn into_iter(self) -> Self::IntoIter {
        self.base.iter().chain(self.eager.iter())
    }
}

impl Machine {
    /// Task `t`'s name, as its `create` event holds it.
    pub fn task_name(&self, t: u32) -> &crate::trace::Name {
        created_name(&self.events, self.tasks[t as usize].create_ev)
    }

    /// `loop.create_task(coro)` through the runtime's factory: traced
    /// `create`, then eager start or a scheduled first step, then the
    /// runtime's done callback.
    pub fn create_task(&mut self, func: NodeId, name: crate::trace::Name) -> Result<FutId, ExcId> {
        let idx = self.tasks.len() as u32;
        let n = self.p().len() as NodeId;
        let node = if func >= n { func - n } else { func };
        let create_ev = self.events.len() as u32;
        super::run::ev_in_place!(
            self,
            What::Create {
                task: idx,
                name,
                node,
            }
        );
        // A task started eagerly gets the runtime's done callback after its
        // first step; any other, made pending, gets it in its record as it
        // is made (nothing reads the list before).
        let eager = self.profile.eager && self.running;
        let f = self.new_fut_with(FKind::Task(idx), !eager);
        let coro_key = self.made_coro_key.take();
        // Its coroutine's place (`gc_key` of its `N::Coro`), before the
        // task exists to ask.
        self.fns[func as usize].cells = self.coro_place(coro_key, f);
        let frames = self.spare_frames.pop().unwrap_or_default();
        let n = super::machine::push_in_place!(
            self.tasks,
            super::machine::Task {
                coro_key,
                frames,
                ..super::machine::Task::new(f, func, create_ev)
            }
        );
        debug_assert_eq!(n, idx as usize);
        if eager {
            let before = self.escaped;
            if let Some(e) = self.eager_start(idx) {
                // The step raised (a cancel that came during it recursed
                // down an await cycle). The C Task constructor (3.12.1,
                // 3.13.0) then returns the task with the error still set,
                // so the call fails with SystemError from it; pure-Python
                // tasks raise the RecursionError itself. Either way it
                // leaves `create_task` and the task is half-made.
                let s = self.excs.msg(
                    Cls::SystemError,
                    "<class> returned a result with an exception set",
                );
                self.excs.raise_from_handled(s, e);
                self.eager_start_raised(idx, s);
                return Err(s);
            }
            // This task's own KeyboardInterrupt, raised in this first step.
            if self.escaped != before
                && let Some(e) = self.escaped
                && self.futs[f as usize].exc == Some(e)
            {
                self.escaped = before;
                self.eager_start_raised(idx, e);
                return Err(e);
            }
            self.add_done_callback(f, Cb::Traced);
        } else {
            self.lp.call_soon(Hcb::Step(idx, NO_EXC));
        }
        Ok(f)
    }

    /// A KeyboardInterrupt from an eager first step is re-raised by
    /// `__step` and so out of `Task()` itself, into the code that called
    /// `create_task`, before the task's done callback was ever added (so
    /// no `done` event). The half-made task is freed at once, reporting its
    /// exception as never retrieved, unless the exception on its way out
    /// still reaches it: a task group's `__aexit__` that re-raised it keeps
    /// its frame, so the group and its `_parent_task`, this task (checked on
    /// 3.12.1 and 3.13.0). The runtime's factory still counts it as the
    /// current task, if there is one at all (a plain callback has none).
    fn eager_start_raised(&mut self, t: u32, e: ExcId) {
        // Frames that finished in the step keep the factory's frame, whose
        // local `task` the constructor that raised never assigned.
        for start in self.frame_back.iter_mut().flatten() {
            if start.task == t {
                start.task_held = false;
            }
        }
        let cur = self.current;
        self.current = cur.map(|_| t);
        self.refcount_check_holding(&super::coro::Comp::Raise(e));
        self.current = cur;
        self.tasks[t as usize].destroyed = true;
    }

    /// What the first step raised, if anything (`step_run_and_handle`).
    fn eager_start(&mut self, t: u32) -> Option<ExcId> {
        let prev = self.current;
        let parent_fn = prev.and_then(|p| self.innermost_fn(p));
        let gather = self.creating_gather.take();
        self.eager_stack.push(super::machine::EagerStart {
            task: t,
            task_held: true,
            parent_fn,
            prev,
            gather,
        });
        self.current = Some(t);
        self.current_tasks_entered();
        self.stepping.eager.push(t);
        self.eager_depth += 1;
        let raised = if self.eager_depth > EAGER_DEPTH_LIMIT {
            // CPython would raise RecursionError deep inside nested eager
            // starts; the model stops nesting and schedules the step.
            self.lp.call_soon(Hcb::Step(t, NO_EXC));
            None
        } else {
            let f = self.tasks[t as usize].fut;
            self.step_run_and_handle(t, f, None, false)
        };
        self.eager_depth -= 1;
        self.stepping.eager.pop();
        self.eager_stack.pop();
        self.current = prev;
        raised
    }

    /// `Task.__step(exc)`: what it raised, if anything (see
    /// `step_run_and_handle`).
    /// Always inlined into its two callers, the loop's handle and
    /// `wakeup`, for the same reason as `step_run_and_handle`.
    #[inline(always)]
    pub fn step(&mut self, t: u32, exc: Option<ExcId>) -> Option<ExcId> {
        let f = self.tasks[t as usize].fut;
        if self.futs[f as usize].done() {
            return None; // InvalidStateError in CPython; cannot happen here
        }
        let mut exc = exc;
        let mut created = false;
        // One lookup of the task for both flags (making the CancelledError
        // reads neither).
        let task = &mut self.tasks[t as usize];
        task.fut_waiter = None;
        let must_cancel = std::mem::take(&mut task.must_cancel);
        // Most steps throw nothing in: a path of their own, with no
        // exception to hold or let go of, spares them those checks.
        if exc.is_none() && !must_cancel {
            self.step_enter(t);
            let raised = self.step_run_and_handle(t, f, None, false);
            self.step_leave();
            return raised;
        }
        if must_cancel && !exc.is_some_and(|e| self.excs.cls(e).is_cancelled()) {
            exc = Some(self.make_cancelled_error(f));
            created = true;
        }
        self.step_enter(t);
        // The C step (and `__wakeup`) holds the exception it throws in
        // until the step returns, and with it the traceback's frames; one
        // it created itself (for a pending cancel) it drops as soon as the
        // throw returns, before handling what the coroutine did.
        if let Some(e) = exc {
            self.inflight.push(e);
        }
        let raised = self.step_run_and_handle(t, f, exc, created);
        if exc.is_some() && !created {
            self.inflight.pop();
        }
        self.step_leave();
        raised
    }

    /// Task `t` becomes the current task, stepped by the loop.
    #[inline(always)]
    fn step_enter(&mut self, t: u32) {
        // The loop runs a step with no task current (a plain callback
        // clears it while it runs), so it ends with none, not with a
        // `current` saved and restored on every step.
        debug_assert!(
            self.current.is_none(),
            "the loop steps with no task current"
        );
        self.current = Some(t);
        self.current_tasks_entered();
        debug_assert!(
            self.stepping.base.is_none(),
            "a step never runs inside another"
        );
        self.stepping.base = Some(t);
    }

    #[inline(always)]
    fn step_leave(&mut self) {
        self.stepping.base = None;
        self.current = None;
    }

    /// `__step_run_and_handle_result` of task `t` (future `f`, which its
    /// callers have at hand). It raises only where it cancels
    /// the future the task just began to await, for a cancel that came
    /// during the step, and that cancel raised (RecursionError down an
    /// await cycle): the step leaves with it, the cancel still pending.
    /// Always inlined: it runs once per step, and as a call of its own
    /// it saved and restored registers every time.
    #[inline(always)]
    fn step_run_and_handle(
        &mut self,
        t: u32,
        f: FutId,
        exc: Option<ExcId>,
        created: bool,
    ) -> Option<ExcId> {
        let out = self.run_coro(t, exc);
        if created {
            self.inflight.pop();
            // What the coroutine raised is still in flight (it may be that
            // very exception, or chain to it); a value it returned is held
            // by StopIteration until it reaches the future.
            if self.gc_watch() {
                match &out {
                    super::coro::Out::Done(c) => self.refcount_check_holding(c),
                    super::coro::Out::Yield(_) => self.refcount_check(false),
                }
            }
        }
        // A step usually ends awaiting a future: that case is told apart
        // by a conditional branch before the `match`, whose jump table's
        // one indirect branch mispredicts whenever the outcome changes.
        if let super::coro::Out::Yield(Some(w)) = out {
            return self.step_awaits(t, f, w);
        }
        match out {
            super::coro::Out::Done(c) => match c {
                super::coro::Comp::Raise(e) => {
                    // It keeps the coroutine's frame, and on 3.12+ that
                    // frame's callers, the loop's own.
                    if self.profile.frame_keeps_caller {
                        self.tb_handle_frames(e);
                    }
                    let cls = self.excs.cls(e);
                    if cls.is_cancelled() {
                        self.futs[f as usize].cancelled_exc = Some(e);
                        self.fut_cancel(f, None);
                    } else {
                        // A KeyboardInterrupt leaves `Handle._run` by
                        // re-raising, before `self = None`: the traceback's
                        // frame keeps the handle, whose callback is this
                        // task's step. An eager first step runs in the
                        // constructor, not in a handle of its own. On 3.12+
                        // the coroutine's frame reaches that frame through
                        // `f_back`, so the traceback `set_exception` records,
                        // which `result()` gives back, keeps the handle too;
                        // before 3.12 only the raised traceback has it.
                        let escapes = cls == Cls::Prog(crate::ast::ExcClass::KeyboardInterrupt);
                        let via_handle =
                            escapes && self.eager_stack.last().is_none_or(|s| s.task != t);
                        let recorded = self.profile.frame_keeps_caller;
                        if via_handle && recorded {
                            self.tb_running_handle(e, f);
                        }
                        self.set_exception(f, e);
                        if escapes {
                            self.escaped = Some(e);
                            if via_handle && !recorded {
                                // Before 3.12 the raised traceback gains the
                                // loop's frames as it leaves them.
                                self.tb_running_handle(e, f);
                                self.tb_handle_frames(e);
                            }
                            // `_run_once` is left with `handle` still this
                            // step's: what keeps its frame keeps the task.
                            if via_handle {
                                for x in std::mem::take(&mut self.run_once_kept) {
                                    if x != e {
                                        self.tb_running_handle(x, f);
                                    }
                                }
                            }
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
            super::coro::Out::Yield(Some(_)) => unreachable!("handled above"),
        }
        None
    }

    /// The step of task `t` (future `f`) left its coroutine awaiting `w`.
    #[inline(always)]
    fn step_awaits(&mut self, t: u32, f: FutId, w: FutId) -> Option<ExcId> {
        if w == f {
            let e = self
                .excs
                .msg(Cls::RUNTIME, "Task cannot await on itself: <Task>");
            self.lp.call_soon(Hcb::Step(t, e));
            return None;
        }
        self.add_done_callback(w, Cb::Wakeup(t));
        let task = &mut self.tasks[t as usize];
        task.fut_waiter = Some(w);
        if task.must_cancel {
            let msg = self.futs[f as usize].cancel_msg.clone();
            // Cancelling a task or gather here recurses in CPython too.
            match self.cancel(w, msg) {
                Ok(true) => self.tasks[t as usize].must_cancel = false,
                Ok(false) => {}
                Err(e) => return Some(e),
            }
        }
        None
    }

    /// `e` leaves `Handle._run`, whose frame keeps the handle running the
    /// step of the task with future `f`: its arguments (the future that
    /// woke the task, with what its result holds) and its callback (the
    /// task's step or `__wakeup`, so the task). In that order: `__slots__`
    /// are sorted, so a handle drops `_args` before `_callback` (checked
    /// with `__del__` on 3.11.7, 3.12.1 and 3.13.0).
    fn tb_running_handle(&mut self, e: ExcId, f: FutId) {
        if let Some(Hcb::FutCb(Cb::Wakeup(_), w)) = self.running_handle() {
            self.tb_ref(e, super::gc::TbRef::Fut(w));
        }
        self.tb_ref(e, super::gc::TbRef::Fut(f));
        if let Some(Hcb::Step(_, x)) = self.running_handle()
            && x != NO_EXC
        {
            self.tb_ref(e, super::gc::TbRef::Exc(x));
        }
    }

    /// `Task.__wakeup(future)`.
    /// `task_wakeup`: the awaited future's `result()` (`future_get_result`,
    /// so a failed future's exception gets back the traceback it was set
    /// with), then a step with it.
    pub fn wakeup(&mut self, t: u32, w: FutId) -> Option<ExcId> {
        let e = self.result_exc_freeing(w);
        if let Some(e) = e
            && self.profile.wakeup_holds_traceback
            && matches!(self.futs[w as usize].kind, FKind::Gather(_))
            && self.tbs.get(e as usize).is_some_and(|tb| !tb.is_empty())
        {
            return self.wakeup_holding_tb(t, e);
        }
        self.step(t, e)
    }

    /// 3.11's `task_wakeup` of a task woken by a failed gather holds the
    /// exception's traceback until the step returns, and lets it go then.
    /// Out of line: only that case has anything to hold.
    #[inline(never)]
    fn wakeup_holding_tb(&mut self, t: u32, e: ExcId) -> Option<ExcId> {
        let held = self.held_tb.len();
        self.held_tb.extend_from_slice(&self.tbs[e as usize]);
        let raised = self.step(t, Some(e));
        self.held_tb.truncate(held);
        if self.gc_watch() {
            self.refcount_check(false);
        }
        raised
    }
}

/// How deep eager starts may nest before the model stops nesting them.
pub const EAGER_DEPTH_LIMIT: u32 = 900;
