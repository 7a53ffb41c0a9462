//! After main: the deterministic shutdown (leftover tasks cancelled in
//! creation order, then `gather(*tasks, return_exceptions=True)`), what
//! `loop.close()` lets go of, the deadlock list and the final task table.
//! `run.rs` calls them in that order once `run_until_complete` returns.

use super::fut::FKind;
use super::machine::Machine;
use super::run::Hcb;
use crate::trace::{State, TaskFinal, Waiting, What};

impl Machine {
    /// Pending tasks and what each awaits, for a deadlock outcome. Out of
    /// line, as rare: inlined, it made `run` keep more state on its stack.
    #[cold]
    #[inline(never)]
    pub(super) fn waiting(&self) -> Vec<Waiting> {
        let mut out = std::mem::take(&mut self.pool.borrow_mut().waiting);
        for (i, t) in self.tasks.iter().enumerate() {
            if t.freed || self.done(t.fut) {
                continue;
            }
            // Texts are joined by hand: `format!` spent hundreds of
            // instructions in the formatting machinery on a few copies.
            let on = match t.fut_waiter {
                None => self.pooled_str("nothing"),
                Some(w) => match self.futs[w as usize].kind {
                    FKind::Task(x) => self.pooled_concat(&["task ", &self.task_name(x)[..]]),
                    FKind::Gather(_) => match &self.futs[w as usize].label {
                        Some(l) => self.pooled_concat(&["gather ", &l[..]]),
                        None => self.pooled_str("gather"),
                    },
                    FKind::Plain => match &self.futs[w as usize].label {
                        Some(l) => self.pooled_concat(&["future ", &l[..]]),
                        None => self.pooled_str("future"),
                    },
                },
            };
            out.push(Waiting { task: i as u32, on });
        }
        out
    }

    pub(super) fn shutdown(&mut self) {
        // The leftover tasks' futures, in creation order; the list keeps
        // its capacity between runs. A task reported destroyed is not among
        // them even if a finalizer brought it back: the collector cleared
        // the loop's weak reference to it first.
        let mut futs = std::mem::take(&mut self.shutdown_refs);
        futs.clear();
        futs.extend(
            self.tasks
                .iter()
                .filter(|t| !self.done(t.fut) && !t.freed && !t.destroyed)
                .map(|t| t.fut),
        );
        self.shutdown_refs = futs;
        self.forget_cyclic_at_shutdown();
        if !self.shutdown_refs.is_empty() {
            self.cancel_leftovers();
        }
    }

    /// The shutdown proper, once there are leftover tasks (in
    /// `shutdown_refs`): out of line, as many runs leave none, and inlined
    /// it weighed on `run`'s registers and stack.
    #[inline(never)]
    fn cancel_leftovers(&mut self) {
        self.ev_none(What::Phase("shutdown".into()));
        self.shutdown_key = self.next_gc_key();
        // `_cancel_all_tasks`'s list keeps them from here on, and
        // `_drive`'s loop variable `t` the last of them for good.
        // The list keeps its buffer for the next run: `tb_ref` adds to
        // none of it.
        // With no such exception (most runs) there is no list to walk.
        if let Some(&last) = self.shutdown_refs.last()
            && !self.drive_excs.is_empty()
        {
            let mut excs = std::mem::take(&mut self.drive_excs);
            for &e in &excs {
                self.tb_ref_through_f_back(e, super::gc::TbRef::Fut(last));
            }
            excs.clear();
            self.drive_excs = excs;
        }
        for i in 0..self.shutdown_refs.len() {
            let f = self.shutdown_refs[i];
            if self.cancel(f, None).is_err() {
                let FKind::Task(i) = self.futs[f as usize].kind else {
                    unreachable!("a leftover is a task")
                };
                let text = self.pooled_concat(&[
                    "cancel of ",
                    self.task_name(i),
                    " raised RecursionError",
                ]);
                self.ev_none(What::Phase(text.into()));
            }
        }
        let g = self.gather_shutdown_refs();
        match self.run_until_complete(g) {
            Err(()) => self.ev_none(What::Phase("stuck".into())),
            // A KeyboardInterrupt leaves run_until_complete even when the
            // gather finished in the same iteration (a task created by a
            // callback in it, eager, raised it); main's
            // `_run_until_complete_cb`, left scheduled by one, stops this
            // loop before the gather is done.
            Ok(()) if self.escaped.is_some() || !self.done(g) => {
                self.ev_none(What::Phase("escaped".into()))
            }
            Ok(()) => {}
        }
        self.futs[g as usize].log_tb = false;
        // run_until_complete returns and the gather goes, while the list
        // still holds the tasks. `tasks = None` then drops the list, last
        // item first, but `_drive`'s loop variable `t` keeps the last
        // leftover task until `_drive` returns, just after. One check
        // frees them in that order (`Frees::dropped`). Listed only for
        // that check: nothing else reads the list, cleared after it, and
        // neither the listing nor the list's clearing changes what
        // `gc_watch_end` reads (failed futures and tasks).
        let watch = self.gc_watch_end();
        if watch {
            let n = self.shutdown_refs.len();
            let dropped = self.shutdown_refs[..n - 1].iter().rev();
            self.gc_frees.dropped.extend(dropped);
            self.gc_frees.dropped.push(self.shutdown_refs[n - 1]);
        }
        self.shutdown_refs.clear();
        if watch {
            self.refcount_check(true);
        }
        self.gc_frees.dropped.clear();
    }

    /// `loop.close()` clears `_ready`, a deque, first to last, then
    /// `_scheduled`, a list, last to first: what their handles hold
    /// (futures, callback functions) is let go of in that order
    /// (`Frees::dropped`). A cancelled handle holds nothing. Out of line,
    /// as rare.
    #[inline(never)]
    pub(super) fn loop_close_dropped(&mut self) {
        let n = self.lp.ready.len();
        for k in (0..n).chain((0..self.lp.heap.len()).rev().map(|k| n + k)) {
            let h = if k < n {
                self.lp.ready[k]
            } else {
                self.lp.heap[k - n]
            };
            let x = self.lp.handles[h as usize];
            if !x.cancelled {
                self.handle_dropped(x.cb);
            }
        }
    }

    /// Lists what a handle being dropped holds as what one refcount check
    /// drops (`Frees::dropped`), in the order it lets go of it: its
    /// arguments, then its callback and what that callback's function or
    /// closure holds (a `call_later` callback's closure may be what holds
    /// a task).
    pub(super) fn handle_dropped(&mut self, cb: Hcb) {
        let mut held = std::mem::take(&mut self.gc_buf);
        held.clear();
        self.handle_edges(cb, &mut held);
        self.gc_prepare();
        for &n in &held {
            let i = self.idx(n) as u32;
            self.gc_frees.dropped.push(i);
        }
        self.gc_buf = held;
    }

    pub(super) fn finals(&mut self) -> Vec<TaskFinal> {
        // After an await cycle's RecursionError the counts are unknown.
        let counted = !self.recursed;
        // The table is the done records' last reader: it takes them. Its
        // list is the last given-back trace's (`recycle`), filled in one
        // reserve, without a capacity check per task.
        let mut finals = std::mem::take(&mut self.finals);
        finals.clear();
        let events = &self.events;
        finals.extend(self.tasks.iter_mut().map(|t| {
            // As the runtime reads it: a task that finished shows how, as
            // recorded at completion (an awaiter may have taken the
            // CancelledError holding the message since), even one a
            // collection reported destroyed and a finalizer brought back;
            // `cancelling()` is read live while the task is alive.
            // The count and the state apart: a tuple of both, matched
            // together, was copied through the stack twice per task. The
            // name first: cloned after the state was taken, it kept the
            // state in a stack copy of its own across the clone.
            let name = super::task::created_name(events, t.create_ev).clone();
            let gone = t.freed || t.destroyed;
            let done = t.done_fin.is_some();
            let count = if done && gone {
                t.done_cancelling
            } else {
                t.num_cancels
            };
            let cancelling = (counted && (done || !gone)).then_some(count);
            let state = match t.done_fin.take() {
                Some(f) => State::Done(f),
                None if gone => State::Destroyed,
                None => State::Pending,
            };
            TaskFinal {
                name,
                state,
                cancelling,
            }
        }));
        finals
    }
}
