//! The roots of the object graph, and marking what they reach: the
//! reachability every refcount check and collection starts from (`gc.rs`
//! says what each object holds). Roots are the loop's handles, the one
//! running now (its callback and arguments), the running task, the
//! runtime's `main_task`, the shutdown list, the background set, the
//! coroutines being closed, the exceptions in flight, tracebacks held
//! apart from theirs, and what a deallocation starts from until its turn
//! comes (`finalize.rs::free_garbage`). What the roots hold one step
//! away answers most refcount checks without a walk (`held_near_roots`).

use super::coro::Frame;
use super::fut::{Cb, FKind};
use super::graph::N;
use super::machine::Machine;
use super::run::Hcb;

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
        if let Some(cb) = self.running_handle() {
            self.handle_edges(cb, out);
        }
        for &t in &self.stepping {
            out.push(N::Fut(self.tasks[t as usize].fut));
        }
        // A coroutine being closed is held by whoever closes it: a task's
        // dealloc, which refcounting started. That dealloc clears the
        // task's `_fut_waiter` only after its coroutine (`TaskObj_clear`),
        // so the future it waits on outlives the close.
        let closing = if self.closing_n == 0 {
            &[][..]
        } else {
            &self.tasks[..]
        };
        for (t, task) in closing.iter().enumerate() {
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

    /// The futures a traceback `tb` holds in one or two steps: those it
    /// names, and those named in the slots of the finished functions'
    /// frames it keeps (`rare_edges`; a frame whose function still runs
    /// refers to nothing outside a free's planning).
    #[inline(always)]
    fn tb_futs(&self, tb: &[super::gc::TbRef], mut each: impl FnMut(u32)) {
        for r in tb {
            match *r {
                super::gc::TbRef::Fut(x) | super::gc::TbRef::LateFut(x) => each(x),
                super::gc::TbRef::Frame(func) if self.fn_done[func as usize] => {
                    for &s in self.own_of(func) {
                        if let Some(super::names::Obj::Fut(x)) = self.slots[s as usize] {
                            each(x);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the candidates `cands` are all among what the roots hold
    /// a step or two away: the futures and tasks of the ready handles (and
    /// what their done callbacks hold), `main`, the background set, the
    /// tasks in a step, the tracebacks of the exceptions in flight, the
    /// shutdown's leftovers (and the gathers awaiting them) and what the
    /// timers wake; within each task met, the gather it awaits and the
    /// locals and cells of the functions it is running (`near_task`); and
    /// the kept frames in a met future's exception's traceback. All of
    /// that is reachable, so the walk would find nothing dying. A
    /// candidate is usually a failed task or future that a local still
    /// names, or whose callbacks were just scheduled; this look costs a
    /// few slots instead of a walk.
    pub(super) fn held_near_roots(&self, cands: &[u32]) -> bool {
        // Which candidates are found, a bit each: every future the look
        // meets is compared with the few candidates, not looked up.
        let all = (1u32 << cands.len()) - 1;
        let mut found = 0u32;
        // True once every candidate is found: the rest need not be looked
        // at. A macro, not a closure: called out of line from a dozen
        // places, the closure saved and restored registers on every call,
        // though most looks end at the comparison (a future, or the
        // candidate itself); a task is looked into apart (`near_task`).
        macro_rules! look {
            ($f:expr) => {{
                let f: u32 = $f;
                near_note(cands, &mut found, f);
                // A candidate is most often the task itself (a leftover
                // sleeping at the end of the run): then it needs no look
                // inside.
                found == all || {
                    let fut = &self.futs[f as usize];
                    if let FKind::Task(t) = fut.kind
                        && !fut.collected
                    {
                        self.near_task(cands, &mut found, all, t);
                    }
                    // Its exception's traceback (`fut_value_edges`): the
                    // frames of finished functions it keeps name futures in
                    // their slots (`rare_edges`), a failed sibling most often.
                    if found != all
                        && !fut.collected
                        && let Some(e) = fut.exc
                        && !self.excs.get(e).collected
                        && let Some(tb) = self.tbs.get(e as usize)
                    {
                        self.tb_futs(tb, |x| {
                            near_note(cands, &mut found, x);
                        });
                    }
                    found == all
                }
            }};
        }
        // A gather holds its outer future and its children (`cb_edges`).
        macro_rules! look_gather {
            ($g:expr) => {{
                let x = &self.gathers[$g as usize];
                x.outer.is_some_and(|o| look!(o)) || x.children.iter().any(|&c| look!(c))
            }};
        }
        // Where the candidates are does not change the answer, only the
        // work: a failed task that `main` names stays there for many
        // checks in a row, so where the last look found them goes first.
        let main_first = self.near_main.get();
        if main_first
            && let Some(f) = self.main_ref
            && look!(f)
        {
            return true;
        }
        self.near_main.set(false);
        // Plain loops rather than iterator chains: measured cheaper.
        for &h in &self.lp.ready {
            let x = self.lp.handles[h as usize];
            if x.cancelled {
                continue;
            }
            let done = match x.cb {
                Hcb::Step(t, _) => look!(self.tasks[t as usize].fut),
                // The future and what the callback holds (`cb_edges`).
                Hcb::FutCb(cb, f) => {
                    look!(f)
                        || match cb {
                            Cb::Wakeup(t) => look!(self.tasks[t as usize].fut),
                            Cb::ShieldInner(o) | Cb::ShieldOuter(o) | Cb::Release(o) => look!(o),
                            Cb::WaitDone(w) => look!(self.waits[w as usize].waiter),
                            Cb::Gather(g) => look_gather!(g),
                            _ => false,
                        }
                }
                _ => false,
            };
            if done {
                return true;
            }
        }
        if !main_first
            && let Some(f) = self.main_ref
            && look!(f)
        {
            self.near_main.set(true);
            return true;
        }
        for &f in &self.bg {
            if look!(f) {
                return true;
            }
        }
        for &t in &self.stepping {
            if look!(self.tasks[t as usize].fut) {
                return true;
            }
        }
        // The exceptions in flight (`roots`): their tracebacks' frames.
        let mut done = false;
        for &e in &self.inflight {
            if !self.excs.get(e).collected
                && let Some(tb) = self.tbs.get(e as usize)
            {
                self.tb_futs(tb, |x| done = done || look!(x));
            }
            if done {
                return true;
            }
        }
        // The shutdown's leftover tasks, a root while it runs. A gather of
        // the program's that awaits one holds its siblings through that
        // one's callback (`cb_edges`), and a sibling that failed is the
        // usual candidate then: the checks during the shutdown walk 15%
        // less often for looking there.
        for &f in &self.shutdown_refs {
            if look!(f) {
                return true;
            }
            let fut = &self.futs[f as usize];
            if fut.collected {
                continue;
            }
            for &cb in &fut.callbacks {
                if let Cb::Gather(g) = cb
                    && look_gather!(g)
                {
                    return true;
                }
            }
        }
        // The timers, last: a task left sleeping (a leftover at the end of
        // the run, mostly) is held by its sleep's future's wakeup, which
        // the timer's handle holds; `Timeout._on_timeout` holds its task.
        for &h in &self.lp.heap {
            let x = self.lp.handles[h as usize];
            if x.cancelled {
                continue;
            }
            let done = match x.cb {
                Hcb::SetResultUnlessCancelled(f) | Hcb::ReleaseWaiter(f) => {
                    // A collected future's callbacks hold nothing (`fut_edges`).
                    let fut = &self.futs[f as usize];
                    look!(f)
                        || !fut.collected
                            && (&fut.callbacks).into_iter().any(|&cb| match cb {
                                Cb::Wakeup(t) => look!(self.tasks[t as usize].fut),
                                _ => false,
                            })
                }
                Hcb::TimeoutFire(tm) => {
                    look!(self.tasks[self.timeouts[tm as usize].task as usize].fut)
                }
                _ => false,
            };
            if done {
                return true;
            }
        }
        false
    }

    /// `held_near_roots`'s look into task `t`: the children of the gather
    /// it awaits (`fut_kind_edges`; a failed one often), then the locals
    /// and cells of the functions it is running. Notes the candidates they
    /// name in `found`, and stops once every one (`all`) is found: the
    /// rest could add none.
    #[inline(never)]
    fn near_task(&self, cands: &[u32], found: &mut u32, all: u32, t: u32) {
        if let Some(w) = self.tasks[t as usize].fut_waiter
            && let FKind::Gather(g) = self.futs[w as usize].kind
        {
            for &c in &self.gathers[g as usize].children {
                near_note(cands, found, c);
            }
            if *found == all {
                return;
            }
        }
        for fr in &self.tasks[t as usize].frames {
            let Frame::Level { func, .. } = *fr else {
                continue;
            };
            let (own, free) = self.fn_slots(func);
            // Two loops: a chained iterator tests which half it is in.
            for &s in own {
                if let Some(super::names::Obj::Fut(x)) = self.slots[s as usize]
                    && near_note(cands, found, x)
                    && *found == all
                {
                    return;
                }
            }
            for &s in free {
                if let Some(super::names::Obj::Fut(x)) = self.slots[s as usize]
                    && near_note(cands, found, x)
                    && *found == all
                {
                    return;
                }
            }
        }
    }
}

/// Notes in `found` (a bit per candidate) whether `f` is one of `cands`;
/// true if it is.
#[inline(always)]
fn near_note(cands: &[u32], found: &mut u32, f: u32) -> bool {
    match cands.iter().position(|&c| c == f) {
        Some(p) => {
            *found |= 1 << p;
            true
        }
        None => false,
    }
}
