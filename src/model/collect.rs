//! A full collection, `gc.collect()`: the finalizers of what nothing
//! reachable refers to run in the collector's list order (`gcorder.rs`);
//! closing a coroutine may drop the last reference to other garbage, which
//! is deallocated (and finalized) at once, depth first, as `Py_DECREF`
//! does. What a finalizer creates refers to objects as anything does, and a
//! frame a traceback made meanwhile holds is a frame object again. Garbage
//! that is referenced again once the finalizers ran is resurrected.

use super::coro::Frame;
use super::exc::ExcId;
use super::fut::{FKind, FState};
use super::graph::N;
use super::machine::Machine;

/// A collection in progress: per graph node, whether it is out of the
/// picture (reachable, already freed, or deallocated by now) and whether
/// its finalizer has run; and the object counts its indices assume.
pub struct Collection {
    gone: Vec<bool>,
    fin_done: Vec<bool>,
    layout: super::graph::Layout,
    /// The runtime's final collection (the loop is closed: no handles).
    final_collect: bool,
    /// Whether program coroutines tasks await may still be closed at
    /// their places (`finalize_closing`'s `aws`).
    aws_left: bool,
}

/// `cascade`'s buffers, kept between collections: its depth-first
/// stack, the zeros each recount finds, and which nodes refer to nothing.
#[derive(Default)]
pub struct CascadeBufs {
    stack: Vec<N>,
    fresh: Vec<N>,
    empty: Vec<bool>,
}

impl Machine {
    /// Whether a cascade now could change what the collection does. A
    /// cascade only decides when the finalizers of the garbage left run:
    /// now, depth first, or at their turns. That shows only if program code
    /// runs after it (a coroutine still to close, an awaited one still to
    /// close at its place, or the close in progress going on), or if two
    /// finalizers left report (their reports could swap). Otherwise every
    /// finalizer left runs once either way, setting the same flags, with
    /// at most one report; and nothing comes back once they ran (what a
    /// finalizer creates is not this collection's to finalize). So what
    /// the cascade would deallocate goes unseen.
    fn cascade_matters(&self, c: &Collection) -> bool {
        if c.aws_left || self.tasks.iter().any(|t| t.closing && !t.frames.is_empty()) {
            return true;
        }
        let l = c.layout;
        let left = |i: usize| !c.gone[i] && !c.fin_done[i];
        let coros = l.coros_base();
        let mut reports = 0;
        for f in (0..l.futs).filter(|&f| left(f)) {
            let fut = &self.futs[f];
            let pending = fut.state == FState::Pending;
            reports += match fut.kind {
                FKind::Task(t) => (pending && self.tasks[t as usize].log_destroy_pending) as u32,
                _ => 0,
            } + (fut.log_tb && !fut.dead && !fut.finalized) as u32;
            if reports > 1 {
                return true;
            }
        }
        (0..l.tasks).any(|t| {
            left(coros + t) && self.futs[self.tasks[t].fut as usize].state == FState::Pending
        })
    }
}

impl Machine {
    /// `gc.collect()` from a `(gc)` statement.
    pub fn gc_collect(&mut self) {
        self.collect(false);
    }

    /// The runtime's collection after the loop is closed.
    pub fn final_collect(&mut self) {
        self.collect(true);
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
        self.collecting = true;
        self.forget_cyclic();
        let mut mark = self.alive(final_collect);
        let layout = self.layout();
        let closes = (0..self.futs.len()).any(|f| {
            !mark[f]
                && !self.futs[f].dead
                && !self.futs[f].done()
                && matches!(self.futs[f].kind, FKind::Task(_))
        });
        // A run to be made again (`Machine::run`) ends with its final
        // collection: its finalizers would only be thrown away.
        let owed = self.note_order_read(&mark) && final_collect;
        if closes && !owed {
            self.finalize_closing(&mark, final_collect);
        } else if !owed {
            self.finalize_in_order(&mark);
        }
        // After the final collection's finalizers only the coroutines
        // left abandoned run code (below), and then the run ends: with no
        // coroutine left suspended, nothing reads what the rest would mark.
        if final_collect && (owed || self.tasks.iter().all(|t| t.frames.is_empty())) {
            self.gc_mark = mark;
            self.collecting = false;
            return;
        }
        if closes {
            self.resurrect(&mut mark, layout, final_collect);
        }
        self.freed_by_collection(&mark, layout);
        for t in 0..self.tasks.len() {
            let f = self.tasks[t].fut as usize;
            // A coroutine whose close runs this collection (a `(gc)` in a
            // handler of its GeneratorExit) is held by that close: its
            // task's deallocation, which already untracked the task.
            let task = &self.tasks[t];
            if f < layout.futs && !mark[f] && !task.frames.is_empty() && !task.closing {
                self.free_abandoned(t as u32);
            }
        }
        if !final_collect {
            self.reorder_survivors(&mark, layout);
        }
        self.gc_mark = mark;
        self.collecting = false;
    }

    /// `handle_resurrected_objects`: garbage that something outside the
    /// garbage refers to once the finalizers ran (an object a closed
    /// coroutine's code made, a handle it scheduled) is not freed. Its
    /// finalizer has run and does not run again; the collector has
    /// already cleared the weak references to it, so the shutdown's
    /// `all_tasks()` no longer finds a task among it. It joins `mark`.
    fn resurrect(&mut self, mark: &mut [bool], layout: super::graph::Layout, final_collect: bool) {
        let mut live = self.alive(final_collect);
        let mut stack = std::mem::take(&mut self.gc_stack);
        stack.clear();
        for f in layout.futs..self.futs.len() {
            if !self.futs[f].dead {
                stack.push(N::Fut(f as u32));
            }
        }
        for t in layout.tasks..self.tasks.len() {
            stack.push(N::Coro(t as u32));
        }
        self.mark_from(&mut stack, &mut live);
        self.gc_stack = stack;
        // With the same object counts every node keeps its index.
        let same = layout == self.layout();
        for (j, &l) in live.iter().enumerate() {
            if !l || (same && (j >= mark.len() || mark[j])) {
                continue;
            }
            let x = self.node_of(j);
            if !layout.has(x) {
                continue;
            }
            let i = self.idx_in(layout, x);
            if i >= mark.len() || mark[i] {
                continue;
            }
            mark[i] = true;
            if let N::Fut(f) = x {
                let fut = &mut self.futs[f as usize];
                fut.dead = false;
                fut.finalized = true;
                if let FKind::Task(t) = fut.kind {
                    let task = &mut self.tasks[t as usize];
                    task.freed = false;
                    task.log_destroy_pending = false;
                }
            }
        }
        self.gc_mark = live;
    }

    /// With no coroutine to close among the garbage, no finalizer drops a
    /// reference, so they simply run in list order.
    fn finalize_in_order(&mut self, mark: &[bool]) {
        // Each list position with the future in the low half: distinct
        // keys, so an unstable sort of integers gives the list order.
        let mut keyed = std::mem::take(&mut self.gc_scan.keyed);
        keyed.clear();
        for (f, &m) in mark[..self.futs.len()].iter().enumerate() {
            if !m && !self.futs[f].dead {
                keyed.push(((self.futs[f].key as u64) << 32) | f as u64);
            }
        }
        keyed.sort_unstable();
        for &k in &keyed {
            self.finalize(N::Fut(k as u32));
        }
        self.gc_scan.keyed = keyed;
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
        // Each list position with, in the low half, twice the future plus
        // one for the future itself (its task's coroutine comes just
        // before it in the list): distinct keys in list order, so an
        // unstable sort of integers gives the stable order.
        let mut keyed = std::mem::take(&mut self.gc_scan.keyed);
        keyed.clear();
        for f in 0..self.futs.len() as u32 {
            if gone[f as usize] {
                continue;
            }
            if let FKind::Task(t) = self.futs[f as usize].kind {
                keyed.push(((self.gc_key(N::Coro(t)) as u64) << 32) | (2 * f) as u64);
            }
            keyed.push(((self.futs[f as usize].key as u64) << 32) | (2 * f + 1) as u64);
        }
        keyed.sort_unstable();
        let mut order = std::mem::take(&mut self.gc_order);
        order.clear();
        order.extend(keyed.iter().map(|&k| {
            let f = (k as u32) >> 1;
            match self.futs[f as usize].kind {
                FKind::Task(t) if k & 1 == 0 => N::Coro(t),
                _ => N::Fut(f),
            }
        }));
        self.gc_scan.keyed = keyed;
        // The program coroutines those tasks await have finalizers of their
        // own, run where they stand: one a collection left ahead of the
        // coroutine awaiting it is closed first, on its own.
        let mut aws = std::mem::take(&mut self.gc_aws);
        aws.clear();
        for &x in &order {
            if let N::Coro(t) = x {
                for fr in self.tasks[t as usize].frames.iter().skip(1) {
                    if let Frame::Level { func, .. } = *fr {
                        aws.push((self.aw_place(func), t, func));
                    }
                }
            }
        }
        aws.sort_unstable();
        let mut next_aw = 0;
        let old_futs = self.futs.len();
        let mut fin_done = std::mem::take(&mut self.gc_spare.1);
        fin_done.clear();
        fin_done.resize(total, false);
        let mut c = Collection {
            gone,
            fin_done,
            layout: self.layout(),
            final_collect,
            aws_left: !aws.is_empty(),
        };
        // Objects with no referrers at all were freed before: drop them
        // silently first.
        self.cascade(&mut c, false);
        self.gcs = Some(c);
        for &x in &order {
            let key = self.gc_key(x);
            while let Some(&(k, t, func)) = aws.get(next_aw)
                && k < key
            {
                next_aw += 1;
                self.finalize_awaited(t, func);
            }
            let Some(c) = &self.gcs else {
                break;
            };
            // Re-indexed in place unless a finalizer made objects: moving
            // the collection out and back for every turn cost more.
            if c.layout != self.layout() || c.gone.len() < self.total_nodes() {
                let mut c = self.gcs.take().expect("a collection in progress");
                self.fit(&mut c);
                self.gcs = Some(c);
            }
            let i = self.idx(x);
            let c = self.gcs.as_mut().expect("a collection in progress");
            c.aws_left = next_aw < aws.len();
            let skip = c.gone[i] || c.fin_done[i];
            c.fin_done[i] = true;
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
        self.gc_aws = aws;
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
    fn freed_by_collection(&mut self, mark: &[bool], layout: super::graph::Layout) {
        for (f, &live) in mark[..layout.futs].iter().enumerate() {
            if !live {
                self.futs[f].collected = true;
            }
        }
        // Only a cycle is freed for good: an as_completed still running
        // is unreachable as a node until a traceback refers to its queue.
        for a in 0..layout.acs {
            if self.acs[a].cycle && !mark[self.idx_in(layout, N::Ac(a as u32))] {
                self.acs[a].collected = true;
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
        if self.gcs.as_ref().is_some_and(|c| self.cascade_matters(c)) {
            let mut c = self.gcs.take().expect("a collection in progress");
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
        let CascadeBufs {
            mut stack,
            mut fresh,
            mut empty,
        } = std::mem::take(&mut self.gc_cascade);
        stack.clear();
        'recompute: loop {
            self.fit(c);
            // Only a finalizer that closes a coroutine creates objects, and
            // that starts over from here.
            let layout = self.layout();
            let (gone, fin_done) = (&mut c.gone, &mut c.fin_done);
            let total = gone.len();
            indeg.clear();
            indeg.resize(total, 0);
            // What the nodes still there refer to, all at once.
            buf.clear();
            if finalize {
                self.edges_of_unset::<false>(gone, layout, &mut buf, &mut empty);
            } else {
                self.edges_of_unset::<true>(gone, layout, &mut buf, &mut empty);
            }
            // (`indeg` has `total` entries: one bounds check, not two.)
            for &y in &buf {
                // An object that refers to itself is on a cycle: only
                // the collection's own turn finalizes it.
                if let Some(d) = indeg.get_mut(self.idx_in(layout, y)) {
                    *d += 1;
                }
            }
            // A frame freed before (no traceback held it, so its frame
            // object did not exist) that a traceback made since holds is
            // a new frame object, holding the function's locals again
            // (`Py_DECREF` never released them: the coroutine still ran).
            // `fin_done` marks a revived frame, so that this ends.
            let frames = self.frames_base(layout);
            let mut revived = true;
            while finalize && revived {
                revived = false;
                for (k, &f) in self.gcx.ids.iter().enumerate() {
                    let i = frames + k;
                    if gone[i] && indeg[i] > 0 && !fin_done[i] {
                        gone[i] = false;
                        fin_done[i] = true;
                        revived = true;
                        buf.clear();
                        self.edges(N::Frame(f), &mut buf);
                        for &y in &buf {
                            let j = self.idx_in(layout, y);
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
                    let j = self.idx_in(layout, y);
                    if j < total && !gone[j] {
                        indeg[j] += 1;
                    }
                }
            }
            // A coroutine being closed is held by whoever closes it (the
            // collection's own reference while its finalizer runs), so
            // what drops its last other reference mid-close (a task
            // leaving `async with timeout()`) does not free it.
            for (t, task) in self.tasks.iter().enumerate() {
                if task.closing {
                    let j = self.idx_in(layout, N::Coro(t as u32));
                    if j < total {
                        indeg[j] += 1;
                    }
                }
            }
            // A frame object a traceback made lives as long as its
            // function runs (the running frame holds it), whatever held it
            // since: a later traceback through that function refers to the
            // same object, locals and all (a TaskGroup's error raised out
            // of a coroutine the collection is closing).
            for (k, &f) in self.gcx.ids.iter().enumerate() {
                let j = frames + k;
                if !self.fn_done[f as usize] && j < total && !gone[j] {
                    indeg[j] += 1;
                }
            }
            // Revived frames are referred to: none is among these.
            fresh.clear();
            for i in 0..total {
                if !gone[i] && indeg[i] == 0 {
                    // With no finalizer to run, nothing starts over: what
                    // refers to nothing goes now, whatever its turn, as it
                    // frees nothing else (most of what nothing refers to
                    // at the start: functions that never ran, exceptions).
                    if !finalize && empty[i] {
                        gone[i] = true;
                        continue;
                    }
                    let x = self.node_of(i);
                    if !stack.contains(&x) {
                        fresh.push(x);
                    }
                }
            }
            stack.extend(fresh.iter().rev());
            while let Some(x) = stack.pop() {
                let i = self.idx_in(layout, x);
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
                    let j = self.idx_in(layout, y);
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
        self.gc_cascade = CascadeBufs {
            stack,
            fresh,
            empty,
        };
    }
}
