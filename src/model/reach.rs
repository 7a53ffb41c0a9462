//! The roots of the object graph, and marking what they reach: the
//! reachability every refcount check and collection starts from (`gc.rs`
//! says what each object holds). Roots are the loop's handles, the one
//! running now (its callback and arguments), the running task, the
//! runtime's `main_task`, the shutdown list, the background set, the
//! coroutines being closed, the exceptions in flight, tracebacks held
//! apart from theirs, and what a deallocation starts from until its turn
//! comes (`finalize.rs::free_garbage`).

use super::graph::N;
use super::machine::Machine;

impl Machine {
    /// The roots, pushed onto `out`. At the final collection, after the
    /// loop is closed and the run has returned, only the background set,
    /// the policy's loop and the exceptions in flight remain.
    pub(super) fn roots(&self, final_collect: bool, out: &mut Vec<N>) {
        for &f in &self.bg {
            out.push(N::Fut(f));
        }
        out.extend_from_slice(&self.policy_loop);
        if final_collect {
            // An exception in flight while the final collection closes a
            // coroutine holds what its traceback holds.
            out.extend(self.inflight.iter().map(|&e| N::Exc(e)));
            return;
        }
        for &h in &self.lp.ready {
            let x = self.lp.handles[h as usize];
            if !x.cancelled {
                self.handle_edges(x.cb, out);
            }
        }
        for &h in &self.lp.heap {
            let x = self.lp.handles[h as usize];
            if !x.cancelled {
                self.handle_edges(x.cb, out);
            }
        }
        if let Some(cb) = self.running_handle {
            self.handle_edges(cb, out);
        }
        for &t in &self.stepping {
            out.push(N::Fut(self.tasks[t as usize].fut));
        }
        // A coroutine being closed is held by whoever closes it: a task's
        // dealloc, which refcounting started. That dealloc clears the
        // task's `_fut_waiter` only after its coroutine (`TaskObj_clear`),
        // so the future it waits on outlives the close.
        for (t, task) in self.tasks.iter().enumerate() {
            if task.closing {
                out.push(N::Coro(t as u32));
                if task.freed && !self.collecting {
                    out.extend(task.fut_waiter.map(N::Fut));
                }
            }
        }
        // A running gather()'s frame: its `children`, and its argument
        // tuple's futures.
        for &g in &self.gathering {
            let x = &self.gathers[g as usize];
            out.extend(x.children.iter().map(|&c| N::Fut(c)));
            out.extend(x.args.iter().filter_map(|a| a.ok()).map(N::Fut));
        }
        out.extend(self.main_ref.map(N::Fut));
        out.extend(self.inflight.iter().map(|&e| N::Exc(e)));
        super::gc::tb_edges(&self.held_tb, out);
        out.extend(self.shutdown_refs.iter().map(|&f| N::Fut(f)));
        out.extend_from_slice(&self.held_by_freer);
        for (t, frames) in &self.aw_held {
            for fr in frames {
                self.frame_edges(*t, fr, out);
            }
        }
    }

    /// Marks what is reachable from the roots. The bitmap is the machine's
    /// reused one: give it back with `self.gc_mark = mark` when done.
    pub(super) fn alive(&mut self, final_collect: bool) -> Vec<bool> {
        self.gc_prepare();
        let (mut mark, mut stack) = self.walk_start(final_collect);
        self.mark_from(&mut stack, &mut mark);
        self.gc_stack = stack;
        mark
    }

    /// A walk's start: the machine's reused bitmap, cleared for every
    /// node, and its reused stack holding the roots. Give them back with
    /// `self.gc_mark = mark` and `self.gc_stack = stack`.
    #[inline(always)]
    pub(super) fn walk_start(&mut self, final_collect: bool) -> (Vec<bool>, Vec<N>) {
        let total = self.total_nodes();
        let mut mark = std::mem::take(&mut self.gc_mark);
        mark.clear();
        mark.resize(total, false);
        let mut stack = std::mem::take(&mut self.gc_stack);
        stack.clear();
        self.roots(final_collect, &mut stack);
        (mark, stack)
    }

    /// Marks the graph nodes that stand for no object or refer to none:
    /// futures freed already (their references went with them), frames
    /// nothing can keep (`frame_kept`) and finished functions without a
    /// closure. Leaving them out of the garbage changes no
    /// answer, only the work.
    #[inline(always)]
    pub(super) fn mark_absent(&self, mark: &mut [bool]) {
        for (f, fut) in self.futs.iter().enumerate() {
            if fut.dead {
                mark[f] = true;
            }
        }
        // A finished function with no free variables refers to nothing,
        // for good: its node is inert.
        let fns = self.frames_base(self.layout()) - self.gcx.ids.len();
        let frames = fns + self.gcx.ids.len();
        for (k, &f) in self.gcx.ids.iter().enumerate() {
            if self.fn_done[f as usize] && self.gcx.free[k].is_empty() {
                mark[fns + k] = true;
            }
            if !self.frame_kept[f as usize] {
                mark[frames + k] = true;
            }
        }
    }

    /// Marks everything reachable from `stack`, emptying it.
    pub(super) fn mark_from(&self, stack: &mut Vec<N>, mark: &mut [bool]) {
        self.mark_until(stack, mark, |_, _| false);
    }

    /// Marks what is reachable from `stack` until `enough` says so of a
    /// node just marked; true if it stopped early.
    pub(super) fn mark_until(
        &self,
        stack: &mut Vec<N>,
        mark: &mut [bool],
        mut enough: impl FnMut(&Machine, N) -> bool,
    ) -> bool {
        let layout = self.layout();
        while let Some(x) = stack.pop() {
            let i = self.idx_in(layout, x);
            if mark[i] {
                continue;
            }
            mark[i] = true;
            if enough(self, x) {
                return true;
            }
            self.edges(x, stack);
        }
        false
    }
}
