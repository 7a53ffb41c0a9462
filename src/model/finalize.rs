//! Finalizers: when objects die and what that reports. Refcounting frees
//! an object as soon as nothing reaches it unless a reference cycle keeps
//! it (then only `gc.collect()` does); a collection finalizes garbage in
//! the collector's list order (`gcorder.rs`), each finalizer possibly
//! freeing more at once (a task's dealloc closes its coroutine). Reports "Task was destroyed but it is
//! pending!" and "exception was never retrieved"; closes coroutines with
//! GeneratorExit. Tracebacks (`tb_*`) record which frames and objects an
//! exception keeps alive.

use super::coro::Frame;
use super::exc::{Cls, ExcId};
use super::fut::{FKind, FState};
use super::gc::{N, TbRef};
use super::machine::Machine;
use crate::ast::NodeId;
use crate::trace::What;

/// A collection in progress: per graph node, whether it is out of the
/// picture (reachable, already freed, or deallocated by now) and whether
/// its finalizer has run; and the object counts its indices assume.
pub struct Collection {
    gone: Vec<bool>,
    fin_done: Vec<bool>,
    layout: super::gc::Layout,
    /// The runtime's final collection (the loop is closed: no handles).
    final_collect: bool,
}

impl Machine {
    /// Whether any object has a finalizer that would report something.
    pub fn gc_watch(&self) -> bool {
        self.any_exc && self.futs.iter().any(|f| f.log_tb && !f.dead)
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
    fn destroy_pending(&mut self, t: u32) {
        if self.tasks[t as usize].log_destroy_pending {
            let name = self.tasks[t as usize].name.clone();
            self.ev(What::Handler {
                msg: "Task was destroyed but it is pending!".into(),
                obj: Some(name),
                exc: None,
            });
        }
        self.tasks[t as usize].destroyed = true;
    }

    fn never_retrieved(&mut self, f: u32) {
        let fut = &self.futs[f as usize];
        if !fut.log_tb || fut.dead {
            return;
        }
        let e = fut.exc.expect("log_tb means an exception");
        let (msg, obj) = match fut.kind {
            FKind::Task(t) => (
                "Task exception was never retrieved",
                Some(self.tasks[t as usize].name.clone()),
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
        let cand = |m: &Machine, f: usize| {
            let x = &m.futs[f];
            !x.dead
                && !x.cyclic
                && (x.log_tb || (pending_too && !x.done() && matches!(x.kind, FKind::Task(_))))
        };
        let mut left = (0..self.futs.len()).filter(|&f| cand(self, f)).count();
        if left == 0 {
            return;
        }
        self.gc_prepare();
        let total = self.total_nodes();
        let mut mark = std::mem::take(&mut self.gc_mark);
        mark.clear();
        mark.resize(total, false);
        let mut stack = std::mem::take(&mut self.gc_stack);
        stack.clear();
        self.roots(false, &mut stack);
        // The walk stops at the last candidate; popping the handles first
        // finds a future just done (its callbacks' handles hold it) soonest.
        // Measured: 0.4-0.7% fewer instructions than the other way round.
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

    /// Asks refcount checks about every future again: something may now
    /// reach garbage a cycle kept (see `Fut::cyclic`).
    pub fn forget_cyclic(&mut self) {
        for f in &mut self.futs {
            f.cyclic = false;
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

    /// Refcounting frees what `mark` (everything reachable) leaves out and
    /// no garbage cycle keeps, in its deallocation order; `mark` ends up
    /// covering what stays.
    fn free_garbage(&mut self, mark: &mut [bool]) {
        let order = self.refcount_frees(mark);
        for &f in &order {
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
                    self.close_coro(t);
                }
            }
            self.futs[f].dead = false;
            self.never_retrieved(f as u32);
            self.futs[f].dead = true;
        }
        self.gc_order_futs = order;
    }

    /// `gc.collect()` from a `(gc)` statement.
    pub fn gc_collect(&mut self) {
        self.collect(false);
    }

    /// The runtime's collection after the loop is closed.
    pub fn final_collect(&mut self) {
        self.collect(true);
    }

    pub(super) fn total_nodes(&self) -> usize {
        self.futs.len()
            + self.tgs.len()
            + 2 * self.gcx.ids.len()
            + self.excs.len()
            + self.tasks.len()
    }

    /// `gc.collect()`: finalizers of the unreachable objects run in
    /// the collector's list order (`gcorder.rs`: creation order, a task's
    /// coroutine just before the task, until a collection moves them); each
    /// finalizer may drop the last reference to other garbage, which is
    /// then deallocated (and finalized) at once, depth first.
    fn collect(&mut self, final_collect: bool) {
        if self.gcs.is_some() {
            return; // a finalizer ran `(gc)`: the collection in progress covers it
        }
        self.forget_cyclic();
        let mark = self.alive(final_collect);
        let layout = self.layout();
        let closes = (0..self.futs.len()).any(|f| {
            !mark[f]
                && !self.futs[f].dead
                && !self.futs[f].done()
                && matches!(self.futs[f].kind, FKind::Task(_))
        });
        if closes {
            self.finalize_closing(&mark, final_collect);
        } else {
            self.finalize_in_order(&mark);
        }
        self.freed_by_collection(&mark, layout);
        if !final_collect {
            self.reorder_survivors(&mark, layout);
        }
        self.gc_mark = mark;
    }

    /// With no coroutine to close among the garbage, no finalizer drops a
    /// reference, so they simply run in list order.
    fn finalize_in_order(&mut self, mark: &[bool]) {
        let mut order = std::mem::take(&mut self.gc_order);
        order.clear();
        order.extend(
            (0..self.futs.len() as u32)
                .filter(|&f| !mark[f as usize] && !self.futs[f as usize].dead)
                .map(N::Fut),
        );
        order.sort_by_key(|&x| self.gc_key(x));
        for &x in &order {
            self.finalize(x);
        }
        self.gc_order = order;
    }

    /// Finalizers in list order; closing a coroutine may drop the last
    /// reference to other garbage, deallocated (and finalized) at once.
    fn finalize_closing(&mut self, mark: &[bool], final_collect: bool) {
        let total = mark.len();
        // What is reachable is never deallocated here.
        let mut gone = std::mem::take(&mut self.gc_spare.0);
        gone.clear();
        gone.extend_from_slice(mark);
        // Already freed earlier: nothing of it is left to finalize.
        self.mark_absent(&mut gone);
        let mut order = std::mem::take(&mut self.gc_order);
        order.clear();
        for f in 0..self.futs.len() as u32 {
            if gone[f as usize] {
                continue;
            }
            if let FKind::Task(t) = self.futs[f as usize].kind {
                order.push(N::Coro(t));
            }
            order.push(N::Fut(f));
        }
        order.sort_by_key(|&x| self.gc_key(x));
        let old_futs = self.futs.len();
        let mut fin_done = std::mem::take(&mut self.gc_spare.1);
        fin_done.clear();
        fin_done.resize(total, false);
        let mut c = Collection {
            gone,
            fin_done,
            layout: self.layout(),
            final_collect,
        };
        // Objects with no referrers at all were freed before: drop them
        // silently first.
        self.cascade(&mut c, false);
        self.gcs = Some(c);
        for &x in &order {
            let Some(mut c) = self.gcs.take() else {
                break;
            };
            self.fit(&mut c);
            let i = self.idx(x);
            let skip = c.gone[i] || c.fin_done[i];
            c.fin_done[i] = true;
            self.gcs = Some(c);
            if skip {
                continue;
            }
            // Only closing a coroutine runs code that can drop references,
            // and `close_levels` deallocates what each level it closes
            // leaves unreferenced; the other finalizers only report.
            self.finalize(x);
        }
        if let Some(c) = self.gcs.take() {
            self.gc_spare = (c.gone, c.fin_done);
        }
        self.gc_order = order;
        // Futures a finalizer created are not this collection's garbage.
        for (f, &live) in mark[..old_futs].iter().enumerate() {
            if !live && !self.futs[f].dead {
                self.futs[f].dead = true;
                if let FKind::Task(t) = self.futs[f].kind {
                    self.tasks[t as usize].freed = true;
                }
            }
        }
    }

    /// The futures and exceptions a collection found unreachable (with
    /// the object counts `layout` of its start) are freed with it: their
    /// references are gone, cycles through them too.
    fn freed_by_collection(&mut self, mark: &[bool], layout: super::gc::Layout) {
        for (f, &live) in mark[..layout.futs].iter().enumerate() {
            if !live {
                self.futs[f].collected = true;
            }
        }
        let start = self.idx_in(layout, N::Exc(0));
        for (e, &live) in mark[start..].iter().enumerate() {
            if !live {
                self.excs.get_mut(e as ExcId).collected = true;
            }
        }
    }

    fn finalize(&mut self, x: N) {
        match x {
            N::Coro(t) => {
                let f = self.tasks[t as usize].fut;
                if self.futs[f as usize].state == FState::Pending {
                    self.close_coro(t);
                }
            }
            N::Fut(f) => {
                if let FKind::Task(t) = self.futs[f as usize].kind {
                    if self.futs[f as usize].state == FState::Pending {
                        self.destroy_pending(t);
                    }
                    self.tasks[t as usize].freed = true;
                }
                self.never_retrieved(f);
                self.futs[f as usize].dead = true;
            }
            _ => {}
        }
    }

    /// During a collection: deallocates what just lost its last reference.
    pub fn cascade_now(&mut self) {
        if let Some(mut c) = self.gcs.take() {
            self.cascade(&mut c, true);
            self.gcs = Some(c);
        }
    }

    /// Re-indexes a collection's bitmaps after a finalizer created futures,
    /// task groups or tasks (a closed coroutine's `except` clause may spawn),
    /// which moves every index after them. What was created is not garbage
    /// of this collection, so no finalizer of its runs here; but it refers
    /// to other objects as anything does (an exception raised while a
    /// coroutine closed holds the frames of its traceback), and refcounting
    /// frees it here if nothing refers to it.
    fn fit(&self, c: &mut Collection) {
        let total = self.total_nodes();
        if c.layout == self.layout() {
            if c.gone.len() < total {
                // Only exceptions were added; they sit at the end.
                c.gone.resize(total, false);
                c.fin_done.resize(total, true);
            }
            return;
        }
        let old_len = c.gone.len();
        let mut gone = vec![false; total];
        let mut fin_done = vec![true; total];
        for j in 0..total {
            let x = self.node_of(j);
            if !c.layout.has(x) {
                continue;
            }
            let i = self.idx_in(c.layout, x);
            if i < old_len {
                gone[j] = c.gone[i];
                fin_done[j] = c.fin_done[i];
            }
        }
        c.gone = gone;
        c.fin_done = fin_done;
        c.layout = self.layout();
    }

    /// Deallocates garbage that nothing references any more, depth first
    /// as `Py_DECREF` does: each deallocation drops its references in
    /// order, and what loses its last one goes at once, before the next.
    /// What nothing referenced to begin with goes lowest node first
    /// (creation order); so does what closing a coroutine set free, before
    /// the rest still waiting.
    fn cascade(&mut self, c: &mut Collection, finalize: bool) {
        let mut buf = std::mem::take(&mut self.gc_buf);
        let mut indeg = std::mem::take(&mut self.gc_indeg);
        // Nodes, not indices: a finalizer that creates objects moves the
        // indices (`fit`), and the stack outlives that.
        let (mut stack, mut fresh) = std::mem::take(&mut self.gc_cascade);
        stack.clear();
        'recompute: loop {
            self.fit(c);
            let (gone, fin_done) = (&mut c.gone, &mut c.fin_done);
            let total = gone.len();
            indeg.clear();
            indeg.resize(total, 0);
            for (i, &dead) in gone.iter().enumerate() {
                if dead {
                    continue;
                }
                buf.clear();
                self.edges(self.node_of(i), &mut buf);
                for &y in &buf {
                    let j = self.idx(y);
                    // An object that refers to itself is on a cycle: only
                    // the collection's own turn finalizes it.
                    if j < total {
                        indeg[j] += 1;
                    }
                }
            }
            // A frame freed before (no traceback held it, so its frame
            // object did not exist) that a traceback made since holds is
            // a new frame object, holding the function's locals again
            // (`Py_DECREF` never released them: the coroutine still ran).
            let mut revived = true;
            while finalize && revived {
                revived = false;
                for &f in &self.gcx.ids {
                    let i = self.idx(N::Frame(f));
                    if gone[i] && indeg[i] > 0 && !fin_done[i] {
                        gone[i] = false;
                        fin_done[i] = true;
                        revived = true;
                        buf.clear();
                        self.edges(N::Frame(f), &mut buf);
                        for &y in &buf {
                            let j = self.idx(y);
                            if j < total {
                                indeg[j] += 1;
                            }
                        }
                    }
                }
            }
            // A finalizer can make garbage reachable again (closing a
            // coroutine cancels a future whose callback then schedules
            // the task's wakeup): what a root holds is not deallocated.
            // Before any finalizer, the roots hold no garbage.
            if finalize {
                buf.clear();
                self.roots(c.final_collect, &mut buf);
                for &y in &buf {
                    let j = self.idx(y);
                    if j < total && !gone[j] {
                        indeg[j] += 1;
                    }
                }
            }
            fresh.clear();
            fresh.extend(
                (0..total)
                    .filter(|&i| !gone[i] && indeg[i] == 0)
                    .map(|i| self.node_of(i))
                    .filter(|x| !stack.contains(x)),
            );
            stack.extend(fresh.iter().rev());
            while let Some(x) = stack.pop() {
                let i = self.idx(x);
                if gone[i] || indeg[i] != 0 {
                    continue;
                }
                gone[i] = true;
                if finalize && !fin_done[i] && matches!(x, N::Fut(_) | N::Coro(_)) {
                    fin_done[i] = true;
                    let closes = match x {
                        N::Coro(t) => {
                            self.futs[self.tasks[t as usize].fut as usize].state == FState::Pending
                        }
                        _ => false,
                    };
                    self.finalize(x);
                    // Closing a coroutine runs its code, which can change
                    // the graph (it drops its frames, and may create
                    // objects): count again. Other finalizers only report.
                    if closes {
                        continue 'recompute;
                    }
                }
                buf.clear();
                self.edges(x, &mut buf);
                let at = stack.len();
                for &y in &buf {
                    let j = self.idx(y);
                    if j != i && j < total && !gone[j] {
                        indeg[j] -= 1;
                        if indeg[j] == 0 {
                            stack.push(y);
                        }
                    }
                }
                // The first reference dropped goes first.
                stack[at..].reverse();
            }
            break;
        }
        self.gc_buf = buf;
        self.gc_indeg = indeg;
        self.gc_cascade = (stack, fresh);
    }

    /// Closes a suspended coroutine: GeneratorExit into each level, innermost first.
    fn close_coro(&mut self, t: u32) {
        if self.tasks[t as usize].closing {
            return;
        }
        self.tasks[t as usize].closing = true;
        self.close_levels(t);
        self.tasks[t as usize].closing = false;
    }

    fn close_levels(&mut self, t: u32) {
        loop {
            let n = self.tasks[t as usize].frames.len();
            if n == 0 {
                return;
            }
            let lvl = (0..n)
                .rev()
                .find(|&i| super::coro::level_kind(&self.tasks[t as usize].frames[i]).is_some())
                .unwrap_or(0);
            let ge = self.excs.create(Cls::GeneratorExit, None);
            self.tasks[t as usize].floor = lvl;
            let h = self.handled_top(t);
            self.excs.chain(ge, h);
            if !self.run_until_level(t, lvl, ge) {
                // It yielded instead ("coroutine ignored GeneratorExit").
                // Its frames are dropped without running more of it, but an
                // `asyncio.sleep` it started is a coroutine of its own,
                // closed when freed: its `finally: h.cancel()` runs.
                for i in lvl..self.tasks[t as usize].frames.len() {
                    if let Frame::Sleep { timer, .. } = self.tasks[t as usize].frames[i] {
                        self.lp.cancel(timer);
                    }
                }
                self.tasks[t as usize].frames.truncate(lvl);
            }
            // An inner coroutine's frame is gone: what only it held dies now.
            self.cascade_now();
        }
    }

    /// Tracebacks: exception `e` was raised in (or passed through) the
    /// innermost function of task `t`.
    pub fn tb_here(&mut self, t: Option<u32>, e: ExcId) {
        let Some(t) = t else { return };
        if let Some(func) = self.innermost_fn(t) {
            self.tb_add(e, func);
        }
    }

    /// An exception that ends a task's coroutine keeps that frame, whose
    /// `f_back` chain runs `Handle._run` (self = None) -> `_run_once`
    /// (handle = None) -> `run_forever` -> the runtime's
    /// `run_until_complete(future)`, whose `future` is `main_task` during
    /// the main run and the shutdown gather during the shutdown, and on to
    /// `_drive`, whose loop variable `t` keeps the last leftover task.
    pub fn tb_loop_frames(&mut self, e: ExcId) {
        if !self.profile.frame_keeps_caller {
            return;
        }
        match self.until {
            Some(f) => self.tb_ref(e, TbRef::Fut(f)),
            None => return,
        }
        if let Some(&last) = self.shutdown_refs.last() {
            self.tb_ref(e, TbRef::Fut(last));
        }
    }

    pub fn tb_add(&mut self, e: ExcId, func: NodeId) {
        self.tb_ref(e, TbRef::Frame(func));
    }

    /// Exception `e`'s traceback entries, made empty on first use.
    pub fn tb_mut(&mut self, e: ExcId) -> &mut Vec<TbRef> {
        let i = e as usize;
        if self.tbs.len() <= i {
            self.tbs.resize(i + 1, Vec::new());
        }
        &mut self.tbs[i]
    }

    /// Exception `e`'s traceback holds a frame whose locals hold `r`
    /// (`Timeout.__aexit__`'s `self._task`, a TaskGroup, wait_for's `fut`).
    pub fn tb_ref(&mut self, e: ExcId, r: TbRef) {
        if let TbRef::Frame(f) = r {
            self.frame_kept[f as usize] = true;
        }
        let tb = self.tb_mut(e);
        // Duplicates only cost memory; checking the last entry keeps a
        // traceback through a million frames linear.
        if tb.last() != Some(&r) {
            tb.push(r);
        }
    }

    /// A coroutine function of task `t` finished. CPython 3.12+ clears a
    /// finished frame before unlinking it, so a frame object something
    /// keeps takes its caller as `f_back`. Inside an eager first step the
    /// caller of the task's coroutine is the task factory, whose
    /// `create_task` frame keeps the task in its local `task`, and on into
    /// the creating function's frame, through `gather()`'s own frame when
    /// a gather made the task. Elsewhere the caller is the loop's
    /// own frames, which `tb_loop_frames` covers for the exception that
    /// ends a task.
    pub fn frame_finished(&mut self, t: u32, func: NodeId, bottom: bool) {
        if !bottom || !self.profile.frame_keeps_caller {
            return;
        }
        if let Some(&start) = self.eager_stack.last()
            && start.task == t
        {
            self.frame_back[func as usize] = Some(start);
            if let Some(pf) = start.parent_fn {
                self.frame_kept[pf as usize] = true;
            }
        }
    }
}
