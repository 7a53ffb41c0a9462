//! Finalizers: when objects die and what that reports. Refcounting frees
//! an object as soon as nothing reaches it unless a reference cycle keeps
//! it (then only `gc.collect()` does, `collect.rs`); a task's dealloc
//! closes its coroutine. Reports "Task was destroyed but it is pending!"
//! and "exception was never retrieved"; closes coroutines with
//! GeneratorExit. Which frames and objects an exception keeps alive is
//! in `traceback.rs`.

use super::coro::{Frame, NONE};
use super::exc::{Cls, ExcId};
use super::fut::{FKind, FState, V};
use super::graph::N;
use super::machine::Machine;
use crate::trace::What;

/// How many candidates `held_near_roots` looks for at most: with more,
/// the walk is left to find them.
const NEAR: usize = 8;

impl Machine {
    /// Whether any object has a finalizer that would report something.
    pub fn gc_watch(&self) -> bool {
        self.failed.iter().any(|&f| {
            let x = &self.futs[f as usize];
            x.log_tb && !x.dead
        })
    }

    /// Whether a refcount death could matter at the end (a pending task
    /// or an unretrieved exception).
    pub fn gc_watch_end(&self) -> bool {
        self.gc_watch()
            || self
                .tasks
                .iter()
                .any(|t| !t.freed && !self.futs[t.fut as usize].done())
    }

    /// A pending task is freed: Task.__del__ reports it (unless it was
    /// marked not to) and it counts as destroyed.
    pub(super) fn destroy_pending(&mut self, t: u32) {
        if self.tasks[t as usize].log_destroy_pending {
            let name = self.task_name(t).clone();
            self.ev(What::Handler {
                msg: "Task was destroyed but it is pending!".into(),
                obj: Some(name),
                exc: None,
            });
        }
        self.tasks[t as usize].destroyed = true;
    }

    /// A future's finalizer: reports an exception never retrieved. The
    /// check inline (most freed futures report nothing), the report apart.
    #[inline(always)]
    pub(super) fn never_retrieved(&mut self, f: u32) {
        let fut = &self.futs[f as usize];
        if fut.log_tb && !fut.dead && !fut.finalized {
            self.report_never_retrieved(f);
        }
    }

    #[inline(never)]
    fn report_never_retrieved(&mut self, f: u32) {
        let fut = &self.futs[f as usize];
        let e = fut.exc.expect("log_tb means an exception");
        let (msg, obj) = match fut.kind {
            FKind::Task(t) => (
                "Task exception was never retrieved",
                Some(self.task_name(t).clone()),
            ),
            FKind::Gather(_) => (
                "_GatheringFuture exception was never retrieved",
                fut.label.clone(),
            ),
            FKind::Plain => ("Future exception was never retrieved", fut.label.clone()),
        };
        let x = self.excs.encode(e);
        self.ev(What::Handler {
            msg: msg.into(),
            obj,
            exc: Some(x),
        });
    }

    /// Frees what refcounting frees now: objects neither reachable nor
    /// kept by a garbage cycle; reports their exceptions never retrieved.
    /// The frequent check (after each handle, at each function exit):
    /// only if some unretrieved exception's future is no longer reachable
    /// from the roots can anything report, so look for that first.
    pub fn refcount_check(&mut self, pending_too: bool) {
        if self.gcs.is_some() {
            return;
        }
        // Evaluated whole but for the `pending_too` test, leaving one
        // branch to whoever asks: which futures are candidates follows no
        // pattern a predictor learns.
        // With `pending_too`, a future that refcounting cannot free
        // (`can_die`) is none: a check only it would send walking frees
        // no pending task and no unretrieved exception (each that can die
        // is a candidate), so it reports nothing and runs no code.
        // It would only flag cycles and mark the rest dead sooner, garbage
        // left as a check without `pending_too` leaves it, to the next
        // check that frees or a collection.
        let cand = |m: &Machine, f: usize| {
            let x = &m.futs[f];
            (!x.dead
                & !x.cyclic
                & (x.log_tb | (pending_too & !x.done() & matches!(x.kind, FKind::Task(_)))))
                && (!pending_too || m.can_die(x))
        };
        // Only a failed future can have `log_tb` (each is listed once), and
        // it is done, so the two kinds of candidate never overlap: `first`
        // lists distinct futures, the first `NEAR` of them.
        let mut first = [0u32; NEAR];
        let mut left = 0;
        // A retrieved exception is retrieved for good (only
        // `set_exception` sets `log_tb`, once per future): such a future
        // leaves the list, which only ever asks about `log_tb`. Its order
        // matters nowhere (the candidates are a set).
        let mut k = 0;
        while k < self.failed.len() {
            let f = self.failed[k];
            if !self.futs[f as usize].log_tb {
                self.failed.swap_remove(k);
                continue;
            }
            if cand(self, f as usize) {
                if left < NEAR {
                    first[left] = f;
                }
                left += 1;
            }
            k += 1;
        }
        if pending_too {
            for t in &self.tasks {
                if cand(self, t.fut as usize) {
                    if left < NEAR {
                        first[left] = t.fut;
                    }
                    left += 1;
                }
            }
        }
        if left == 0 {
            return;
        }
        self.gc_prepare();
        if left <= NEAR && self.held_near_roots(&first[..left]) {
            return;
        }
        let (mut mark, mut stack) = self.walk_start(false);
        // The walk stops at the last candidate; popping the background set
        // and the handles first finds a future just done (its callbacks'
        // handles hold it) soonest. Measured: 0.4-0.7% fewer instructions
        // than the other way round.
        stack.reverse();
        // Every candidate reachable: nothing dies, stop looking.
        let all_reached = self.mark_until(&mut stack, &mut mark, |m, x| {
            if let N::Fut(f) = x
                && cand(m, f as usize)
            {
                left -= 1;
            }
            left == 0
        });
        self.gc_stack = stack;
        if !all_reached {
            // The walk ran out before reaching every candidate, so `mark`
            // holds everything reachable.
            self.free_garbage(&mut mark);
        }
        self.gc_mark = mark;
    }

    /// Whether candidate `x` (a failed future, or a pending task) could
    /// die by refcounting now: not while it is on a cycle, which changes
    /// only through code that reaches it. Two are common: a failed task's
    /// exception, whose traceback holds the task (`Handle._run`'s frame,
    /// `tb_running_handle`), and a pending task, the future it awaits and
    /// the wakeup callback there. Out of line: only the checks with `pending_too`
    /// ask, and inlined it kept the candidate test out of line too.
    #[inline(never)]
    fn can_die(&self, x: &super::fut::Fut) -> bool {
        if x.collected {
            return true;
        }
        if x.log_tb {
            let Some(e) = x.exc else {
                return true;
            };
            let me = match x.kind {
                FKind::Task(t) => self.tasks[t as usize].fut,
                _ => return true,
            };
            return self.excs.get(e).collected
                || !self.tbs.get(e as usize).is_some_and(|tb| {
                    tb.iter().any(|r| {
                        matches!(*r, super::gc::TbRef::Fut(f) | super::gc::TbRef::LateFut(f) if f == me)
                    })
                });
        }
        let FKind::Task(t) = x.kind else {
            return false;
        };
        let Some(w) = self.tasks[t as usize].fut_waiter else {
            return true;
        };
        let w = &self.futs[w as usize];
        w.collected
            || !(&w.callbacks)
                .into_iter()
                .any(|&cb| matches!(cb, super::fut::Cb::Wakeup(u) if u == t))
    }

    /// A refcount check while `c`, a completion on its way somewhere the
    /// graph does not model (a StopIteration, a frame's pending result),
    /// holds what it carries: a raised exception, or the exceptions in a
    /// value, count as in flight meanwhile.
    pub(super) fn refcount_check_holding(&mut self, c: &super::coro::Comp) {
        let before = self.inflight.len();
        match c {
            super::coro::Comp::Raise(e)
            | super::coro::Comp::Norm(V::Exc(e))
            | super::coro::Comp::Ret(V::Exc(e)) => self.inflight.push(*e),
            super::coro::Comp::Norm(v @ V::List(..)) | super::coro::Comp::Ret(v @ V::List(..)) => {
                let mut held = std::mem::take(&mut self.gc_buf);
                held.clear();
                super::value::value_edges(&self.lists, *v, &mut held);
                self.inflight.extend(held.iter().filter_map(|n| match *n {
                    N::Exc(e) => Some(e),
                    _ => None,
                }));
                self.gc_buf = held;
            }
            _ => {}
        }
        self.refcount_check(false);
        self.inflight.truncate(before);
    }

    /// Asks refcount checks about every future again: something may now
    /// reach garbage a cycle kept (see `Fut::cyclic`).
    pub fn forget_cyclic(&mut self) {
        for f in &mut self.futs {
            f.cyclic = false;
        }
    }

    /// The shutdown's `all_tasks()` hands back the leftover tasks
    /// (`shutdown_refs`, listed): one that only a garbage cycle kept is
    /// reachable again from here on, and so is what it reaches. A live
    /// leftover reaches no garbage, and the check after main, with nothing
    /// run since, found each leftover not flagged reachable (else it would
    /// have freed or flagged it) or on a cycle through its waiter
    /// (`can_die`): one such, if garbage, was garbage on that cycle
    /// whenever a check flagged something it reaches, and was flagged
    /// with it. With no flagged leftover, the shutdown's
    /// code reaches only live objects, and garbage's references change
    /// only through code that reaches it (a function's locals, which its
    /// frame object shares, are bound by its own run only, whose task
    /// reaches them): what a cycle kept stays so, and the checks to come
    /// need not find those cycles again (after the shutdown, 310 of 488
    /// checks that walked and freed over 2,000 medium programs did only
    /// that). Clearing just what a flagged leftover reaches took a walk
    /// that cost more than finding them again.
    pub(super) fn forget_cyclic_at_shutdown(&mut self) {
        if self
            .shutdown_refs
            .iter()
            .any(|&f| self.futs[f as usize].cyclic)
        {
            self.forget_cyclic();
        }
    }

    pub fn refcount_sweep(&mut self) {
        if self.gcs.is_some() {
            return; // during a collection, `cascade` frees what dies
        }
        let mut mark = self.alive(false);
        self.free_garbage(&mut mark);
        self.gc_mark = mark;
    }

    /// Refcounting frees what `mark` (everything reachable, used up here)
    /// leaves out and no garbage cycle keeps, in its deallocation order.
    fn free_garbage(&mut self, mark: &mut [bool]) {
        let mut started = std::mem::take(&mut self.gc_dealloc_roots);
        let order = self.refcount_frees(mark, &mut started);
        // Mostly only cycles are left: nothing to free.
        if order.is_empty() {
            self.gc_dealloc_roots = started;
            self.gc_order_futs = order;
            return;
        }
        // The objects the deallocation starts from, each let go of by
        // whoever drops them (a list being cleared, a frame letting go of
        // its locals, the loop's queues at `close()`) in turn: until its
        // turn, one is still referenced, so a check run while an earlier
        // one's coroutine closes leaves it and what it holds (a timer's
        // callback, the task its closure holds). Only closing a pending
        // task's coroutine runs code, and so checks, meanwhile; a report
        // does not. Without one (nearly always) nothing reads them, and
        // nothing changes before the loop reaches such a task: listing
        // them is left out, and their nodes are made from the indices in
        // the layout `started` was taken in, before any code runs.
        let closes = order.iter().any(|&f| {
            let x = &self.futs[f as usize];
            matches!(x.kind, FKind::Task(_)) && x.state == FState::Pending
        });
        let base = self.held_by_freer.len();
        if closes {
            for k in (0..started.len()).rev() {
                let x = self.node_of(started[k].0 as usize);
                self.held_by_freer.push(x);
            }
        }
        let mut next = 0;
        for (k, &f) in order.iter().enumerate() {
            // Whoever drops the starts up to this one has let go of them.
            while closes && next < started.len() && started[next].1 as usize <= k {
                self.held_by_freer.pop();
                next += 1;
            }
            let f = f as usize;
            if self.futs[f].dead {
                continue;
            }
            self.futs[f].dead = true;
            if let FKind::Task(t) = self.futs[f].kind {
                self.tasks[t as usize].freed = true;
                if self.futs[f].state == FState::Pending {
                    // The task's dealloc runs its finalizer, then drops
                    // (and so closes) its coroutine.
                    self.destroy_pending(t);
                    if !self.close_coro(t) {
                        self.free_abandoned(t);
                    }
                }
            }
            self.futs[f].dead = false;
            self.never_retrieved(f as u32);
            self.futs[f].dead = true;
        }
        self.held_by_freer.truncate(base);
        self.gc_dealloc_roots = started;
        self.gc_order_futs = order;
    }

    /// The finalizer of task `t`'s coroutine: closes it, GeneratorExit
    /// into each level, innermost first. False if it had run before (the
    /// coroutine ignored that close and a collection let it live): a
    /// finalizer runs once (PEP 442), so the coroutine is dropped as is.
    pub(super) fn close_coro(&mut self, t: u32) -> bool {
        if std::mem::replace(&mut self.tasks[t as usize].coro_finalized, true) {
            return false;
        }
        self.close_coro_from(t, 0);
        true
    }

    /// The finalizer of the coroutine of `func` that task `t` awaits, if
    /// it is still suspended there: closes it (and what it awaits).
    pub(super) fn finalize_awaited(&mut self, t: u32, func: crate::ast::NodeId) {
        let task = &self.tasks[t as usize];
        if self.futs[task.fut as usize].state != FState::Pending {
            return;
        }
        if let Some(at) = task
            .frames
            .iter()
            .position(|f| matches!(*f, Frame::Level { func: x, .. } if x == func))
        {
            self.close_coro_from(t, at);
        }
    }

    /// Closes the coroutine of task `t` whose level is at frame `stop`
    /// (0: the task's own), and so those it awaits; the coroutines
    /// awaiting it are left suspended where they await it.
    pub(super) fn close_coro_from(&mut self, t: u32, stop: usize) {
        if self.tasks[t as usize].closing {
            return;
        }
        self.tasks[t as usize].closing = true;
        self.closing_n += 1;
        self.close_levels(t, stop);
        self.closing_n -= 1;
        self.tasks[t as usize].closing = false;
    }

    fn close_levels(&mut self, t: u32, stop: usize) {
        // What closing the inner level raised instead of GeneratorExit:
        // `gen_close` raises it into the outer level in place of a new one.
        let mut failed: Option<ExcId> = None;
        // How many coroutines this close put in `aw_held`.
        let mut held = 0;
        loop {
            let n = self.tasks[t as usize].frames.len();
            if n <= stop {
                return;
            }
            let lvl = (0..n)
                .rev()
                .find(|&i| super::coro::level_kind(&self.tasks[t as usize].frames[i]).is_some())
                .unwrap_or(0);
            self.tasks[t as usize].floor = lvl;
            // Refcounting (not a collection) is closing an inner coroutine:
            // what only its frame held dies as that frame goes, before the
            // outer level goes on (`gen_close` closes the awaited one
            // first). Checked on 3.11.7, 3.12.1, 3.13.0.
            let before = (lvl > 0 && !self.collecting).then(|| self.reachable_now());
            let ge = match failed.take() {
                Some(x) => x,
                None => self.new_generator_exit(t),
            };
            let closed = self.run_until_level(t, lvl, ge);
            if let Some(super::coro::Comp::Raise(x)) = &closed
                && self.excs.cls(*x) != Cls::GeneratorExit
            {
                failed = Some(*x);
            }
            if closed.is_none() {
                // It yielded instead: close() raises RuntimeError('coroutine
                // ignored GeneratorExit'). For an inner coroutine that goes
                // on into the outer level, and as it leaves the `await` there
                // the inner coroutine is dropped, so its finalizer closes it
                // once more where it yielded (checked on 3.11.7, 3.12.1,
                // 3.13.0). What yields then, or what the task's finalizer
                // was closing, is dropped without running more of it.
                if lvl > stop
                    && super::coro::level_kind(&self.tasks[t as usize].frames[lvl]) == Some(true)
                {
                    if self.wait_for_holds(t, lvl) {
                        // Unless `wait_for` awaited it: its local `fut`
                        // keeps the coroutine until its frame goes, with
                        // the error whose traceback holds it, after the
                        // outer levels' close (checked on 3.11.7, 3.12.1,
                        // 3.13.0).
                        let frames = self.tasks[t as usize].frames.split_off(lvl);
                        self.aw_held.push((t, frames));
                        held += 1;
                    } else {
                        let again = self.new_generator_exit(t);
                        if self.run_until_level(t, lvl, again).is_none() {
                            self.drop_frames(t, lvl);
                        }
                    }
                    failed = Some(
                        self.excs
                            .msg(Cls::RUNTIME, "coroutine ignored GeneratorExit"),
                    );
                } else if lvl <= stop {
                    // The coroutine itself ignored it: close() raises that
                    // error (unraisable here) and leaves the coroutine
                    // suspended where it yielded. A task its code woke (a
                    // callback it scheduled holds the task) resumes it there
                    // (checked on 3.11.7, 3.12.1 and 3.13.0). What the close
                    // dropped on the way is deallocated now.
                    self.cascade_now();
                    return;
                } else {
                    self.drop_frames(t, lvl);
                }
            }
            // An inner coroutine's frame is gone: what only it held dies
            // now, but not what the error on its way to the outer level
            // still holds. One out of the outermost, close() reports as
            // unraisable and drops first.
            if self.tasks[t as usize].frames.len() <= stop {
                failed = None;
                for _ in 0..std::mem::take(&mut held) {
                    self.close_held_aw(t);
                }
            }
            self.inflight.extend(failed);
            match before {
                Some(before) => self.free_what_went_unreachable(before),
                None => self.cascade_now(),
            }
            if failed.is_some() {
                self.inflight.pop();
            }
        }
    }

    /// Whether the level at `lvl` is a coroutine `wait_for` awaits
    /// directly (`return await fut`): inside 3.12+'s `async with
    /// timeout`, or 3.11's path for no timeout.
    fn wait_for_holds(&self, t: u32, lvl: usize) -> bool {
        let frames = &self.tasks[t as usize].frames;
        match lvl.checked_sub(1).map(|i| frames[i]) {
            Some(Frame::Timeout { aw, .. }) => aw != NONE,
            Some(Frame::Body { next, .. } | Frame::Level { next, .. }) => {
                !self.profile.wait_for_via_timeout
                    && matches!(self.p().kind(next), crate::ast::Kind::WaitFor(None))
            }
            _ => false,
        }
    }

    /// The last coroutine `close_levels` left to `wait_for`'s frame, once
    /// that frame is gone: its finalizer closes it once more where it
    /// yielded, and what yields then is dropped.
    fn close_held_aw(&mut self, t: u32) {
        let (_, frames) = self.aw_held.pop().expect("a held coroutine");
        let base = self.tasks[t as usize].frames.len();
        self.tasks[t as usize].frames.extend(frames);
        self.tasks[t as usize].floor = base;
        let again = self.new_generator_exit(t);
        if self.run_until_level(t, base, again).is_none() {
            self.drop_frames(t, base);
        }
    }

    /// Everything reachable now, with the layout it was taken in.
    fn reachable_now(&mut self) -> (Vec<bool>, super::graph::Layout) {
        let mark = self.alive(false);
        let kept = (mark.clone(), self.layout());
        self.gc_mark = mark;
        kept
    }

    /// Frees, in deallocation order, what was reachable at `before` and no
    /// longer is. What was garbage already waits for whoever is freeing
    /// it: in CPython it is still referenced (a frame being cleared lets go
    /// of its locals one by one, each deallocated before the next).
    fn free_what_went_unreachable(&mut self, before: (Vec<bool>, super::graph::Layout)) {
        let (before, layout) = before;
        // Objects made meanwhile move the indices: leave those to the
        // checks to come.
        if layout != self.layout() {
            return;
        }
        let mut mark = self.alive(false);
        for (i, m) in mark.iter_mut().enumerate() {
            *m |= !before.get(i).copied().unwrap_or(false);
        }
        if mark.iter().all(|&m| m) {
            self.gc_mark = mark;
            return;
        }
        let dropped = std::mem::take(&mut self.gc_frees.dropped);
        self.free_garbage(&mut mark);
        self.gc_frees.dropped = dropped;
        self.gc_mark = mark;
    }

    /// A GeneratorExit closing task `t`'s coroutine at its floor, chained:
    /// `gen_send_ex` pushes the closed level's exception state on top of
    /// the thread's, so when that level handles nothing it chains to what
    /// the code running the close handles (a `(gc)` in a `finally` during
    /// a cancel: checked on 3.11.7, 3.12.1, 3.13.0).
    fn new_generator_exit(&mut self, t: u32) -> ExcId {
        let ge = self.excs.create(Cls::GeneratorExit, None);
        let h = self.handled_top(t).or_else(|| {
            self.current
                .filter(|&c| c != t)
                .and_then(|c| self.handled_top(c))
        });
        self.excs.chain(ge, h);
        ge
    }

    /// A coroutine that ignored its close stays suspended where it
    /// yielded; freed with its task, its frame is cleared without running
    /// more of it (its finalizer has run). The coroutines it awaits were
    /// made after that, by the code its close ran, so their own
    /// finalizers close them now, innermost first: their handlers and
    /// `finally` clauses run, and an `asyncio.sleep` cancels its timer
    /// (checked on 3.11.7, 3.12.1, 3.13.0).
    pub(super) fn free_abandoned(&mut self, t: u32) {
        let frames = &self.tasks[t as usize].frames;
        if let Some(inner) =
            (1..frames.len()).find(|&i| super::coro::level_kind(&frames[i]).is_some())
        {
            self.close_coro_from(t, inner);
        }
        self.drop_frames(t, 0);
        // The handler it yielded in held the error whose traceback holds
        // `wait_for`'s frame: that frame goes with it (`close_levels`).
        while self.aw_held.last().is_some_and(|&(x, _)| x == t) {
            self.close_held_aw(t);
        }
    }

    /// Drops task `t`'s frames from `lvl` up without running more of them.
    /// An `asyncio.sleep` among them is a coroutine of its own, closed when
    /// freed: its `finally: h.cancel()` runs.
    pub(super) fn drop_frames(&mut self, t: u32, lvl: usize) {
        for i in lvl..self.tasks[t as usize].frames.len() {
            if let Frame::Sleep { timer, .. } = self.tasks[t as usize].frames[i] {
                self.lp.cancel(timer);
            }
        }
        self.tasks[t as usize].frames.truncate(lvl);
    }
}
