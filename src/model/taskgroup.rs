//! `asyncio.TaskGroup`: `create_task`, `_on_task_done`, `_abort` and
//! `__aexit__` as a frame that waits for the children, with 3.13's
//! changes to when the parent is uncancelled behind a profile flag.

use super::comb::TaskGroup;
use super::coro::{Act, Comp, Frame, NONE, Sig};
use super::exc::{Cls, ExcId};
use super::fut::{Cb, FKind, FState, FutId, V};
use super::machine::Machine;
use super::names::Obj;
use crate::ast::NodeId;
use crate::trace::What;

impl Machine {
    // ---- TaskGroup -----------------------------------------------------

    /// `TaskGroup.__aenter__` in task `t`'s frames: its parent is the
    /// current task, which is another one when a collection in that
    /// task's step closes `t`'s coroutine.
    pub fn tg_start(&mut self, t: u32, node: NodeId) -> Act {
        let Some(parent) = self.current else {
            let e = self.raise_new(
                Some(t),
                Cls::RUNTIME,
                "TaskGroup <TaskGroup> cannot determine the parent task",
            );
            return Act::Again(Sig::Child(Comp::Raise(e)));
        };
        let g = self.tgs.len() as u32;
        let key = self.next_gc_key();
        // An earlier run's group, its lists emptied, spares their allocations.
        let spare = self.spare_tgs.pop().unwrap_or_default();
        self.tgs.push(TaskGroup {
            parent,
            key,
            tasks: spare.tasks,
            errors: spare.errors,
            caught: spare.caught,
            exit_tb: spare.exit_tb,
            ..TaskGroup::default()
        });
        self.bind(node, Obj::Tg(g));
        Act::Push(Frame::Tg { tg: g, node, ph: 1 })
    }

    pub fn tg_create_task(
        &mut self,
        t: Option<u32>,
        g: u32,
        node: NodeId,
        name: crate::trace::Name,
    ) -> Result<FutId, ExcId> {
        let tg = &self.tgs[g as usize];
        if tg.exiting && tg.tasks.is_empty() {
            return Err(self.raise_new(t, Cls::RUNTIME, "TaskGroup <TaskGroup> is finished"));
        }
        if tg.aborting {
            return Err(self.raise_new(t, Cls::RUNTIME, "TaskGroup <TaskGroup> is shutting down"));
        }
        let f = self.create_task(node, name)?;
        if self.done(f) {
            // Called here, not scheduled (3.12+, an eager task that
            // finished in its first step): what it raises leaves
            // `create_task`.
            if let Err(e) = self.tg_on_task_done(g, f) {
                self.raise_here(t, e);
                return Err(e);
            }
        } else {
            self.tgs[g as usize].tasks.push(f);
            self.add_done_callback(f, Cb::TgDone(g));
        }
        Ok(f)
    }

    /// `_abort()`: cancels every child not done. What a `cancel()` raises
    /// (RuntimeError('Event loop is closed') from scheduling a child's
    /// waiter's callbacks, RecursionError in an await cycle) leaves
    /// `_abort()` at once, the other children uncancelled.
    fn tg_abort(&mut self, g: u32) -> Result<(), ExcId> {
        self.tgs[g as usize].aborting = true;
        // Read from a copy, as cancelling may change the list; a kept
        // one: a new list each abort cost a third of its work.
        let mut tasks = self.spare_futs.pop().unwrap_or_default();
        tasks.extend_from_slice(&self.tgs[g as usize].tasks);
        let mut r = Ok(());
        for &f in &tasks {
            if !self.done(f)
                && let Err(e) = self.cancel(f, None)
            {
                r = Err(e);
                break;
            }
        }
        super::machine::keep_spare(&mut self.spare_futs, &mut tasks);
        r
    }

    /// `_on_task_done(f)`. Err: the RecursionError cancelling the parent
    /// (or `_abort()`) raised, which its caller reports or raises.
    pub fn tg_on_task_done(&mut self, g: u32, f: FutId) -> Result<(), ExcId> {
        self.tgs[g as usize].tasks.retain(|&x| x != f);
        if let Some(w) = self.tgs[g as usize].on_completed_fut
            && self.tgs[g as usize].tasks.is_empty()
            && !self.done(w)
        {
            self.set_result(w, V::Bool(true));
        }
        if self.futs[f as usize].state == FState::Cancelled {
            return Ok(());
        }
        let Some(exc) = self.exception(f) else {
            return Ok(());
        };
        self.tgs[g as usize].errors.push(exc);
        if super::stmt::is_base_error(self.excs.cls(exc))
            && self.tgs[g as usize].base_error.is_none()
        {
            self.tgs[g as usize].base_error = Some(exc);
        }
        let parent = self.tgs[g as usize].parent;
        let pf = self.tasks[parent as usize].fut;
        if self.done(pf) {
            let x = self.excs.encode(exc);
            let name = self.task_name(self.task_of(f).unwrap()).clone();
            self.ev(What::Handler {
                msg: "Task <Task> has errored out but its parent task <Task> is already completed"
                    .into(),
                obj: Some(name),
                exc: Some(x),
            });
            return Ok(());
        }
        let tg = &self.tgs[g as usize];
        if !tg.aborting && !tg.parent_cancel_requested {
            // Only a RecursionError can come (no callback runs once the
            // loop is closed, and an eager task's first step needs it
            // running). If `_abort()` raises it, the parent is not
            // cancelled. Its traceback passes `_on_task_done`'s frame,
            // whose locals are the group and `f`.
            let r = self.tg_abort(g).and_then(|()| {
                self.tgs[g as usize].parent_cancel_requested = true;
                self.cancel(pf, None).map(|_| ())
            });
            if let Err(e) = r {
                self.tb_ref(e, super::gc::TbRef::Tg(g));
                self.tb_ref(e, super::gc::TbRef::Fut(f));
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn tg_frame(&mut self, t: u32, fr: &mut Frame, sig: Sig) -> Act {
        let Frame::Tg { tg: g, node, ph } = *fr else {
            unreachable!()
        };
        let p = self.p();
        let p13 = self.profile.taskgroup_313_exit;
        match (ph, sig) {
            (1, Sig::Start) => self.start_body(t, node + 1, p.end(node)),
            (1, Sig::Child(c)) => {
                // __aexit__(et, exc)
                let e = if let Comp::Raise(e) = c { e } else { NONE };
                let pend = self.store(c);
                self.tgs[g as usize].pend = pend;
                self.tgs[g as usize].exiting = true;
                if e != NONE {
                    let tg = &mut self.tgs[g as usize];
                    tg.exit_exc = Some(e);
                    tg.exit_tb.clear();
                    if let Some(tb) = self.tbs.get(e as usize) {
                        tg.exit_tb.extend_from_slice(tb);
                    }
                }
                if e != NONE
                    && super::stmt::is_base_error(self.excs.cls(e))
                    && self.tgs[g as usize].base_error.is_none()
                {
                    self.tgs[g as usize].base_error = Some(e);
                }
                let is_cancel = e != NONE && self.excs.cls(e).is_cancelled();
                self.tgs[g as usize].propagate = is_cancel.then_some(e);
                if !p13 && self.tgs[g as usize].parent_cancel_requested {
                    let parent = self.tgs[g as usize].parent;
                    if self.uncancel(parent) == 0 {
                        self.tgs[g as usize].propagate = None;
                    }
                }
                if e != NONE
                    && !self.tgs[g as usize].aborting
                    && let Err(x) = self.tg_abort(g)
                {
                    // Out of `__aexit__`, handling the body's exception.
                    return self.aexit_raise(t, g, x, Some(e), false);
                }
                self.tg_wait(t, fr, g, node)
            }
            (3, Sig::Child(c)) => {
                if let Comp::Raise(x) = c {
                    if self.excs.cls(x).is_cancelled() {
                        self.tb_ref(x, super::gc::TbRef::Tg(g));
                        self.tgs[g as usize].caught.push(x);
                        if !self.tgs[g as usize].aborting {
                            self.tgs[g as usize].propagate = Some(x);
                            if let Err(r) = self.tg_abort(g) {
                                // Out of `__aexit__`'s `except CancelledError`.
                                return self.aexit_raise(t, g, r, Some(x), false);
                            }
                        }
                    } else {
                        return Act::Pop(c);
                    }
                }
                self.tgs[g as usize].on_completed_fut = None;
                self.tg_wait(t, fr, g, node)
            }
            _ => unreachable!("taskgroup frame got an unexpected signal"),
        }
    }

    /// `__aexit__`'s wait for the children, or its end if none is left,
    /// in the step that got there: it was a step of its own. The frame,
    /// in phase 2, is on the stack first: what `__aexit__` raises sees
    /// it handling the body's exception.
    fn tg_wait(&mut self, t: u32, fr: &mut Frame, g: u32, node: NodeId) -> Act {
        *fr = Frame::Tg { tg: g, node, ph: 2 };
        if let Some(top) = self.frames_of(t).last_mut() {
            *top = *fr;
        }
        if !self.tgs[g as usize].tasks.is_empty() {
            let w = match self.tgs[g as usize].on_completed_fut {
                Some(w) => w,
                None => {
                    let w = self.new_fut(FKind::Plain);
                    self.tgs[g as usize].on_completed_fut = Some(w);
                    w
                }
            };
            *fr = Frame::Tg { tg: g, node, ph: 3 };
            return self.await_fut(w);
        }
        self.tg_finish(t, g)
    }

    fn tg_finish(&mut self, t: u32, g: u32) -> Act {
        let p13 = self.profile.taskgroup_313_exit;
        let exc = self.tgs[g as usize].exit_exc.unwrap_or(NONE);
        // What `__aexit__` handles as it raises: the body's exception, which
        // the `async with` passes in from its implicit handler, or else what
        // the frame of the `async with` itself handles (its `except`).
        let handled = if exc != NONE {
            Some(exc)
        } else {
            self.handled_top(t)
        };
        if let Some(b) = self.tgs[g as usize].base_error {
            // `raise self._base_error`: no local names it.
            return self.aexit_raise(t, g, b, handled, false);
        }
        let parent = self.tgs[g as usize].parent;
        if p13 && self.tgs[g as usize].parent_cancel_requested && self.uncancel(parent) == 0 {
            self.tgs[g as usize].propagate = None;
        }
        if let Some(pe) = self.tgs[g as usize].propagate
            && self.tgs[g as usize].errors.is_empty()
        {
            // `raise propagate_cancellation_error`.
            return self.aexit_raise(t, g, pe, handled, true);
        }
        if exc != NONE && !self.excs.cls(exc).is_cancelled() {
            self.tgs[g as usize].errors.push(exc);
        }
        if !self.tgs[g as usize].errors.is_empty() {
            if p13 && self.cancelling(parent) > 0 {
                self.uncancel(parent);
                let pf = self.tasks[parent as usize].fut;
                if let Err(x) = self.cancel(pf, None) {
                    // `_parent_task.cancel()` raised (the loop is closed):
                    // out of `__aexit__` before the group is made, so
                    // `_errors` still holds the errors.
                    return self.aexit_raise(t, g, x, handled, false);
                }
            }
            let mut errors = std::mem::take(&mut self.tgs[g as usize].errors);
            let all_exc = errors.iter().all(|&e| self.excs.cls(e).is_exception());
            let cls = if all_exc {
                Cls::ExceptionGroup
            } else {
                Cls::BaseExceptionGroup
            };
            // The group copies the members, and the list, emptied, stays
            // the record's for reuse (`_errors = None`).
            let me = self
                .excs
                .group(cls, "unhandled errors in a TaskGroup", &errors);
            errors.clear();
            self.tgs[g as usize].errors = errors;
            // `raise me from None` (the group keeps itself alive in a
            // cycle, checked on 3.11.7, 3.12.1, 3.13.0, and with it every
            // frame its traceback holds).
            self.excs.get_mut(me).suppress = true;
            return self.aexit_raise(t, g, me, handled, true);
        }
        Act::Pop(self.load(self.tgs[g as usize].pend))
    }

    /// `x` raised out of `__aexit__` while it handles `handled`. It passes
    /// through the frame of the `async with`, and its traceback keeps
    /// `__aexit__`'s frame: `self` (the group), its arguments, and, when a
    /// `local` of that frame names `x`, `x` itself, a cycle.
    fn aexit_raise(
        &mut self,
        t: u32,
        g: u32,
        x: ExcId,
        handled: Option<ExcId>,
        local: bool,
    ) -> Act {
        self.excs.chain(x, handled);
        self.tb_here(Some(t), x);
        self.tb_ref(x, super::gc::TbRef::Tg(g));
        if local {
            self.tb_ref(x, super::gc::TbRef::Exc(x));
        }
        self.aexit_args_held(g, x);
        if local {
            self.aexit_frame_holds(g, x);
        }
        Act::Pop(Comp::Raise(x))
    }

    /// `r`, raised out of `__aexit__`, keeps its frame and so its
    /// arguments `exc` and `tb`: the exception that left the body and the
    /// traceback it had then (checked on 3.11.7, 3.12.1 and 3.13.0; none
    /// of them clears either).
    fn aexit_args_held(&mut self, g: u32, r: ExcId) {
        let Some(x) = self.tgs[g as usize].exit_exc else {
            return;
        };
        if x != r {
            self.tb_ref(r, super::gc::TbRef::Exc(x));
        }
        let tb = std::mem::take(&mut self.tgs[g as usize].exit_tb);
        for &e in &tb {
            self.tb_ref(r, e);
        }
        self.tgs[g as usize].exit_tb = tb;
    }

    /// `e` is now a local of `__aexit__`'s frame, which the tracebacks of
    /// the CancelledErrors it caught hold: while one of those lives (the
    /// task's step holds the one it threw in), so does `e`. Checked on
    /// 3.11.7, 3.12.1 and 3.13.0: the group survives a `gc.collect()` in
    /// the step that caught it, not one in a later step.
    fn aexit_frame_holds(&mut self, g: u32, e: ExcId) {
        for k in 0..self.tgs[g as usize].caught.len() {
            let x = self.tgs[g as usize].caught[k];
            if x != e {
                self.tb_ref(x, super::gc::TbRef::Exc(e));
            }
        }
    }
}
