//! Clearing the machine between runs: every arena and table emptied, the
//! per-function and per-slot tables sized for the next program, and the
//! buffers worth keeping (frame stacks, traceback and argument lists,
//! gathers, task groups, as_completed iterators, waits' lists) set aside
//! for reuse within `machine.rs`'s bounds; and taking back a finished
//! trace's buffers. Records are dropped in place, and only those that own
//! something: most own nothing, and their drop glue, called one by one,
//! was a tenth of the reset.

use super::machine::{FnKeys, Machine, SPARE_CAPACITY, SPARE_MAX, keep_spare};
use super::value::ValuePool;
use crate::ast::Program;
use crate::trace::{Injection, Trace};

/// A value that owns nothing (no string, no list), as a pattern: its drop
/// glue would do nothing.
macro_rules! plain_value {
    () => {
        crate::trace::Value::None | crate::trace::Value::Bool(_) | crate::trace::Value::Int(_)
    };
}

/// How a task finished, owning nothing, as a pattern: a scalar result or
/// a cancel without a message.
macro_rules! plain_fin {
    () => {
        crate::trace::Fin::Result(plain_value!()) | crate::trace::Fin::Cancelled(None)
    };
}

impl Machine {
    /// Clears the machine for running `p`, making its analysis unless the
    /// run uses one made beforehand.
    pub(super) fn reset(&mut self, p: &Program, inject: &[Injection], analysed: bool) {
        self.prog = p as *const Program;
        if !analysed {
            self.sc.compute(p);
            self.gcx.invalidate();
        }
        // Only the last run's exceptions can have traceback entries.
        let excs_used = self.excs.len();
        self.excs.clear();
        // Traceback lists and frame stacks keep their
        // capacity for the next run's futures and tasks (`keep_spare`).
        // Taken in place, in the pass that drops the records: draining
        // moved each whole record out first.
        self.empty_futs();
        self.empty_tasks();
        self.lp.clear();
        self.slots.clear();
        self.slots.resize(self.sc.slot_sym.len(), None);
        self.vals.clear();
        self.lists.clear();
        // A run's events grow with its program: sized for it, the buffer
        // rarely grows, and stays below malloc's mmap threshold. One given
        // back with the last trace (`recycle`) is used if large enough.
        let want = (4 * p.len()).clamp(128, 1024);
        self.events.clear();
        if self.events.capacity() < want {
            self.events = Vec::with_capacity(want);
        }
        self.current = None;
        self.running = false;
        self.eager_depth = 0;
        self.recursed = false;
        self.escaped = None;
        self.run_once_kept.clear();
        // Most runs make no gather: `drain` costs its setup even then.
        if !self.gathers.is_empty() {
            self.recycle_gathers();
        }
        if !(self.tgs.is_empty() && self.waits.is_empty() && self.acs.is_empty()) {
            self.recycle_combs();
        }
        self.timeouts.clear();
        self.bg.clear();
        self.policy_loop.clear();
        self.fn_done.clear();
        self.fn_done.resize(2 * p.len(), false);
        self.fns.clear();
        self.fns.resize(2 * p.len(), FnKeys::UNSET);
        self.cell_key.clear();
        self.cell_key
            .resize(self.sc.slot_sym.len(), super::coro::NONE);
        self.frame_kept.clear();
        self.frame_kept.resize(2 * p.len(), false);
        // Only an eager start sets an entry: without eager tasks the list
        // is all None, and only a longer program's new entries are written.
        if self.profile.eager {
            self.frame_back.clear();
        }
        self.frame_back.resize(2 * p.len(), None);
        self.creating_gather = None;
        self.main_ref = None;
        self.running_h = super::coro::NONE;
        self.shutdown_refs.clear();
        self.cur_tasks_key = super::coro::NONE;
        self.drive_excs.clear();
        self.made_coro_key = None;
        if !(self.inject.is_empty() && inject.is_empty()) {
            self.inject.clear();
            self.inject.extend_from_slice(inject);
        }
        // A map that ever held an entry clears its whole table of
        // control bytes, even empty.
        if !self.wf11.is_empty() {
            self.wf11.clear();
        }
        self.tb_no_entry.clear();
        // Tracebacks keep their lists (empty is no traceback), within the
        // same bounds as callback lists.
        self.tbs.truncate(SPARE_MAX);
        for tb in self.tbs.iter_mut().take(excs_used) {
            if tb.capacity() > SPARE_CAPACITY {
                *tb = Vec::new();
            }
            tb.clear();
        }
        // Keys past what the last run used read NONE already: refilling
        // only those keeps the list's length, so a run's first traceback
        // does not go out of line to grow it.
        self.tb_keys.truncate(SPARE_MAX);
        let used = excs_used.min(self.tb_keys.len());
        self.tb_keys[..used].fill(super::coro::NONE);
        self.inflight.clear();
        self.held_tb.clear();
        self.until = None;
        self.on_path.clear();
        self.stepping.clear();
        self.eager_stack.clear();
        self.gathering.clear();
        self.failed.clear();
        self.handler_done = false;
        self.collecting = false;
        self.closing_n = 0;
        self.held_by_freer.clear();
        self.aw_held.clear();
        if !self.star.is_empty() {
            self.star.clear();
        }
        if !self.star_at.is_empty() {
            self.star_at.clear();
        }
    }

    /// Empties `futs`, their traceback lists kept for reuse, and drops
    /// only the futures that still own something: most own nothing (no
    /// name, cancel message or long callback list), and their drop glue,
    /// called one by one, cost 70 instructions a small program.
    fn empty_futs(&mut self) {
        use super::cbs::Cbs;
        use super::fut::Fut;
        // The fields below named `_` are taken to own nothing.
        const { assert!(!std::mem::needs_drop::<super::fut::V>()) };
        const { assert!(!std::mem::needs_drop::<super::fut::FKind>()) };
        const { assert!(!std::mem::needs_drop::<super::fut::FState>()) };
        const { assert!(!std::mem::needs_drop::<Option<super::exc::ExcId>>()) };
        const { assert!(!std::mem::needs_drop::<super::fut::Cb>()) };
        let spare_tbs = &mut self.spare_tbs;
        empty_in_place(&mut self.futs, |f| {
            // A traceback list is kept if the bounds allow; one they do
            // not is the only way the list is still there to drop below.
            let tb_left = f.exc_tb.capacity() != 0 && {
                keep_spare(spare_tbs, &mut f.exc_tb);
                f.exc_tb.capacity() != 0
            };
            // Every field named: a new one must say here whether it
            // owns something, or it would leak.
            let Fut {
                kind: _,
                state: _,
                result: _,
                exc: _,
                exc_tb,
                cancel_msg,
                cancelled_exc: _,
                log_tb: _,
                callbacks,
                label,
                dead: _,
                collected: _,
                cyclic: _,
                finalized: _,
                key: _,
            } = f;
            let _ = exc_tb;
            let owns = tb_left
                || cancel_msg.is_some()
                || label.is_some()
                || match callbacks {
                    Cbs::Few(..) => false,
                    Cbs::Many(_) => true,
                };
            if owns {
                // SAFETY: handed out once, forgotten after.
                unsafe { std::ptr::drop_in_place(f) };
            }
        });
    }

    /// Empties `tasks`, their frame stacks kept for reuse, dropping each
    /// one's frames and final outcome only if they own
    /// something (the drop glue, called one by one, cost 30 instructions
    /// a small program).
    fn empty_tasks(&mut self) {
        let spare_frames = &mut self.spare_frames;
        empty_in_place(&mut self.tasks, |t| {
            // Every field named: a new one must say here whether it
            // owns something, or it would leak. The others are plain.
            let super::machine::Task {
                fut: _,
                func: _,
                create_ev: _,
                frames: _,
                started: _,
                fut_waiter: _,
                must_cancel: _,
                num_cancels: _,
                log_destroy_pending: _,
                floor: _,
                destroyed: _,
                freed: _,
                done_fin: _,
                done_cancelling: _,
                closing: _,
                coro_finalized: _,
                coro_key: _,
                wake_key: _,
            } = t;
            // The stack is kept if the bounds allow, or dropped: one test
            // of the bounds, not a second one of what is left.
            // SAFETY (the two drops): handed out once, forgotten after.
            if spare_frames.len() < SPARE_MAX && t.frames.capacity() <= SPARE_CAPACITY {
                let mut kept = std::mem::take(&mut t.frames);
                kept.clear();
                spare_frames.push(kept);
            } else {
                unsafe { std::ptr::drop_in_place(&mut t.frames) };
            }
            let owns = !matches!(t.done_fin, None | Some(plain_fin!()));
            if owns {
                unsafe { std::ptr::drop_in_place(&mut t.done_fin) };
            }
        });
    }

    /// Takes the last run's gathers, their lists emptied (a long one let
    /// go of), for reuse. Emptied in place and then appended in one copy:
    /// draining moved each record out and then in again.
    fn recycle_gathers(&mut self) {
        for g in &mut self.gathers {
            keep_spare(&mut self.spare_args, &mut g.args);
            empty(&mut g.children);
            empty(&mut g.coro_keys);
        }
        pool(&mut self.spare_gathers, &mut self.gathers);
    }
}

impl Machine {
    /// Takes the last run's task groups and as_completed iterators, their
    /// lists emptied (long ones let go of), and waits' lists of futures,
    /// for reuse: each list allocated anew and freed by the next reset
    /// cost about 60 instructions a small program.
    fn recycle_combs(&mut self) {
        fn empty_queue<T>(queue: &mut std::collections::VecDeque<T>) {
            if queue.capacity() > SPARE_CAPACITY {
                *queue = Default::default();
            }
            queue.clear();
        }
        for g in &mut self.tgs {
            empty(&mut g.tasks);
            empty(&mut g.errors);
            empty(&mut g.caught);
            empty(&mut g.exit_tb);
        }
        pool(&mut self.spare_tgs, &mut self.tgs);
        for w in &mut self.waits {
            keep_spare(&mut self.spare_futs, &mut w.futs);
        }
        self.waits.clear();
        for a in &mut self.acs {
            empty(&mut a.todo);
            empty(&mut a.all);
            empty(&mut a.results);
            empty_queue(&mut a.queue);
            empty_queue(&mut a.getters);
        }
        pool(&mut self.spare_acs, &mut self.acs);
    }
}

/// Moves a run's records, their lists emptied, to their spares, up to
/// `SPARE_MAX` of them, in one copy.
fn pool<T>(spare: &mut Vec<T>, used: &mut Vec<T>) {
    used.truncate(SPARE_MAX.saturating_sub(spare.len()));
    spare.append(used);
}

/// Empties a record's list for its reuse, letting go of a long one.
fn empty<T>(list: &mut Vec<T>) {
    if list.capacity() > SPARE_CAPACITY {
        *list = Vec::new();
    }
    list.clear();
}

/// The largest lists a given-back trace lends the next run: one huge
/// program's buffers are not pinned for good.
const KEPT_EVENTS: usize = 1 << 16;
const KEPT_TASKS: usize = 1 << 12;

impl Machine {
    /// Takes back a trace this machine made, once its reader is done with
    /// it: its events and task table are emptied here, and their buffers
    /// serve the next run instead of being freed and allocated again.
    pub fn recycle(&mut self, trace: Trace) {
        use crate::trace::Outcome;
        let Trace {
            mut events,
            outcome,
            mut tasks,
        } = trace;
        // Main's outcome, and the values events and the table hold, lend
        // their strings and lists to the next runs' values.
        let pool = self.pool.get_mut();
        // Most are main's scalar result or a plain cancel: their drop
        // glue, called all the same, cost 40 instructions a run.
        match outcome {
            Outcome::Main(plain_fin!()) => std::mem::forget(outcome),
            // An exception is shared, not pooled: dropped here, without
            // the pool's call.
            Outcome::Main(crate::trace::Fin::Exception(x)) => drop(x),
            Outcome::Main(fin) => pool.keep_fin(fin),
            Outcome::Deadlock(waiting) => pool.keep_waiting(waiting),
            other => drop(other),
        }
        if events.capacity() > self.events.capacity() && events.capacity() <= KEPT_EVENTS {
            empty_events(&mut events, pool);
            self.events = events;
        }
        if tasks.capacity() > self.finals.capacity() && tasks.capacity() <= KEPT_TASKS {
            empty_finals(&mut tasks, pool);
            self.finals = tasks;
        }
    }
}

/// Empties `events`, dropping only the events that own something. Most
/// (a node's start, a simple end, a task's scalar result, a phase) own
/// nothing, and `clear` called their drop glue one by one all the same
/// (110 instructions a small program).
fn empty_events(events: &mut Vec<crate::trace::Event>, pool: &mut ValuePool) {
    use crate::trace::{Event, Fin, Res, What};
    use std::borrow::Cow;
    const { assert!(!std::mem::needs_drop::<Option<u32>>()) };
    empty_in_place(events, |e| {
        // Every field named, outside `what` and inside the variants
        // taken to own nothing: a new field must say here whether it
        // owns something, or it would leak.
        let Event {
            t: _,
            it: _,
            task: _,
            what,
        } = e;
        match what {
            What::Start(_)
            | What::Inject { task: _, ret: _ }
            | What::End {
                node: _,
                res: Res::Ok | Res::Val(plain_value!()),
            }
            | What::Done {
                task: _,
                fin: plain_fin!(),
            }
            | What::Phase(Cow::Borrowed(_)) => {}
            // A task's creation and an exception own one shared pointer
            // each: dropped here, rather than through the whole event's
            // drop glue, called for each.
            // SAFETY (the three drops): handed out once, forgotten after.
            What::Create {
                task: _,
                name,
                node: _,
            } => unsafe { std::ptr::drop_in_place(name) },
            What::End {
                node: _,
                res: Res::Raise(x),
            }
            | What::Done {
                task: _,
                fin: Fin::Exception(x),
            } => unsafe { std::ptr::drop_in_place(x) },
            // A value's string or list is kept for reuse.
            // SAFETY (both reads): moved out once, forgotten after.
            What::End {
                node: _,
                res: Res::Val(v),
            } => pool.keep(unsafe { std::ptr::read(v) }),
            What::Done { task: _, fin } => pool.keep_fin(unsafe { std::ptr::read(fin) }),
            What::Phase(Cow::Owned(text)) => pool.keep_str(unsafe { std::ptr::read(text) }),
            _ => unsafe { std::ptr::drop_in_place(what) },
        }
    });
}

/// Empties the task table, dropping each entry's name, and its state only
/// if that owns something: most tasks returned a scalar or were cancelled
/// without a message.
fn empty_finals(tasks: &mut Vec<crate::trace::TaskFinal>, pool: &mut ValuePool) {
    use crate::trace::{State, TaskFinal};
    const { assert!(!std::mem::needs_drop::<Option<u32>>()) };
    empty_in_place(tasks, |tf| {
        // Every field named: a new one must say here whether it owns
        // something, or it would leak.
        let TaskFinal {
            name,
            state,
            cancelling: _,
        } = tf;
        // SAFETY (the drops and the read): handed out once, forgotten after.
        unsafe { std::ptr::drop_in_place(name) };
        let owns = !matches!(
            state,
            State::Pending | State::Destroyed | State::Done(plain_fin!())
        );
        if owns {
            match state {
                // An exception is shared, not pooled: dropped here,
                // without the pool's call.
                State::Done(crate::trace::Fin::Exception(x)) => unsafe {
                    std::ptr::drop_in_place(x)
                },
                State::Done(fin) => pool.keep_fin(unsafe { std::ptr::read(fin) }),
                _ => unsafe { std::ptr::drop_in_place(state) },
            }
        }
    });
}

/// Empties `list` without running its drop glue: `release` gets each
/// record once, and the record is forgotten after it, so `release` drops
/// in place what the record owns (what it leaves leaks). Most records the
/// model empties own nothing, and the glue, called one by one, decoded
/// each all the same.
fn empty_in_place<T>(list: &mut Vec<T>, mut release: impl FnMut(&mut T)) {
    let n = list.len();
    let base = list.as_mut_ptr();
    // SAFETY: the length is zero first, so a `release` that panicked
    // could leak the rest but never have one dropped twice; each of the
    // `n` records is handed out exactly once.
    unsafe {
        list.set_len(0);
        for i in 0..n {
            release(&mut *base.add(i));
        }
    }
}
