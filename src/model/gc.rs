//! Who holds what, and so when objects die. CPython frees an object when
//! its last reference goes (refcounting) unless it is part of, or only
//! reachable from, a reference cycle; those wait for `gc.collect()`. The
//! model computes exactly that on demand over an object graph: futures and
//! tasks, task groups, function frames (locals, closure cells), the
//! closures of an `as_completed` whose timeout ran (a cycle) and
//! exceptions (tracebacks keep every frame the exception passed through;
//! a future keeps the traceback its exception had when set until the
//! first `result()` hands it back, and the exceptions in its result list).
//! A kept frame of an eager task's coroutine that finished inside its
//! first step also keeps its caller chain: the task and the creating frame
//! (`frame_finished`). What the roots are is in `reach.rs`. What a
//! collection frees holds nothing afterwards.
//!
//! Refcounting frees garbage depth first from what was dropped, a frame's
//! slots in `localsplus` order (`dealloc_order`). Not modelled (known
//! gaps): the `except ... as e` variable of the runtime; the order in which
//! several objects are dropped at one moment (creation order is used,
//! except for a frame's locals at its function's exit, a handle that ran
//! and the loop's handles at `loop.close()`, listed as `Frees::dropped`);
//! and the locals naming nested functions (pygen's `_aw12 = ...`), so a
//! function object whose closure holds a future is dropped on its own, not
//! in its place among its definer's locals. How a collection reorders the
//! objects that survive it is replayed in `gcorder.rs` and `gcitems.rs`,
//! with the simplifications it names.

use super::coro::Frame;
use super::coro::NONE;
use super::exc::ExcId;
use super::fut::{Cb, FKind, V};
use super::graph::N;
use super::machine::Machine;
use super::names::Obj;
use super::run::Hcb;
use crate::ast::{Kind, NodeId};

/// Per-program facts of the object graph, computed on the first
/// collection question of a run; buffers are kept between runs.
#[derive(Default)]
pub struct GcCache {
    ready: bool,
    /// Dense index of each function id (NONE for ids that are not
    /// functions), so the graph has a node per function, not per AST node.
    pub(super) dense: Vec<u32>,
    /// Function id of each dense index.
    pub(super) ids: Vec<NodeId>,
    /// Own slots of each function, by dense index.
    pub(super) own: Vec<Vec<u32>>,
    /// Free variables (closure cells) of each function, by dense index.
    pub(super) free: Vec<Vec<u32>>,
    /// Whether a nested function reads each slot (so it is a cell).
    captured: Vec<bool>,
}

impl GcCache {
    /// Forgets the program; the next question recomputes.
    pub fn invalidate(&mut self) {
        self.ready = false;
    }
}

/// What a traceback keeps alive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TbRef {
    Frame(NodeId),
    Fut(u32),
    /// A future a finished frame of one of asyncio's coroutines holds
    /// (`wait`'s `fs`), reached late by a collection's replay
    /// (`TbRef::reached_late`).
    LateFut(u32),
    Tg(u32),
    /// A frame's local holding an exception (often the one raised: a cycle).
    Exc(ExcId),
    /// `as_completed`'s frames (`Queue.get`'s `self`, `_wait_for_one`'s
    /// closure cell or, on 3.13, its iterator): its queue.
    Ac(u32),
}

impl TbRef {
    /// Whether a collection's replay reaches it late: what a finished
    /// frame of one of asyncio's coroutines holds (`LateFut`, `Ac`). Those
    /// frame objects sit where the coroutine finished, several `tb_next`
    /// hops from the traceback's head, a place the replay does not give
    /// them (`gcorder.rs`).
    pub(super) fn reached_late(self) -> bool {
        matches!(self, TbRef::LateFut(_) | TbRef::Ac(_))
    }
}

/// What a traceback's entries keep alive.
pub(super) fn tb_edges(tb: &[TbRef], out: &mut Vec<N>) {
    // Most futures and exceptions have none: skip `extend`'s set-up.
    if tb.is_empty() {
        return;
    }
    out.extend(tb.iter().map(|r| match *r {
        TbRef::Frame(f) => N::Frame(f),
        TbRef::Fut(f) | TbRef::LateFut(f) => N::Fut(f),
        TbRef::Tg(g) => N::Tg(g),
        TbRef::Exc(x) => N::Exc(x),
        TbRef::Ac(a) => N::Ac(a),
    }));
}

impl Machine {
    /// Makes the program's `GcCache` unless made: called before every
    /// walk, so the check is inlined and the work apart.
    #[inline]
    pub(super) fn gc_prepare(&mut self) {
        if !self.gcx.ready {
            self.gc_prepare_now();
        }
    }

    #[inline(never)]
    fn gc_prepare_now(&mut self) {
        let p = self.p();
        let n = p.len();
        let mut gcx = std::mem::take(&mut self.gcx);
        gcx.dense.clear();
        gcx.dense.resize(2 * n, NONE);
        gcx.ids.clear();
        for f in 0..2 * n {
            if f == 0 || self.sc.fn_parent[f] != NONE {
                gcx.dense[f] = gcx.ids.len() as u32;
                gcx.ids.push(f as NodeId);
            }
        }
        let nf = gcx.ids.len();
        for v in [&mut gcx.own, &mut gcx.free] {
            v.iter_mut().for_each(Vec::clear);
            if v.len() < nf {
                v.resize(nf, Vec::new());
            }
        }
        for (slot, &f) in self.sc.slot_binder.iter().enumerate() {
            gcx.own[gcx.dense[f as usize] as usize].push(slot as u32);
        }
        let binder = &self.sc.slot_binder;
        let fparent = &self.sc.fn_parent;
        for id in 0..n as NodeId {
            let mut slots = [NONE, NONE];
            let s = self.sc.slot[id as usize];
            let k = p.kind(id);
            let reads = k.first_sym().is_some()
                && !matches!(
                    k,
                    Kind::Spawn(..)
                        | Kind::Future(_)
                        | Kind::Let(_)
                        | Kind::TaskGroup(_)
                        | Kind::Forget(_)
                );
            if reads && s != NONE {
                slots[0] = s;
            }
            slots[1] = self.sc.group_slot[id as usize];
            for s in slots.into_iter().filter(|&s| s != NONE) {
                let b = binder[s as usize];
                let mut f = self.sc.exec_fn[id as usize];
                // Each function between the reader and the binder captures it.
                let mut guard = 0;
                while f != b && f != NONE && guard < 2 * n {
                    let free = &mut gcx.free[gcx.dense[f as usize] as usize];
                    if !free.contains(&s) {
                        free.push(s);
                    }
                    f = if f == 0 { NONE } else { fparent[f as usize] };
                    guard += 1;
                }
            }
        }
        // Clearing a frame drops `localsplus` in order: plain locals in
        // order of first use, then its cell variables, then the free ones,
        // both sorted by name (the compiler's `dictbytype`; checked with
        // finalizers on 3.11.7, 3.12.1, 3.13.0).
        let name = |s: &u32| p.name(self.sc.slot_sym[*s as usize]);
        let mut captured = std::mem::take(&mut gcx.captured);
        captured.clear();
        captured.resize(self.sc.slot_sym.len(), false);
        for free in &mut gcx.free[..nf] {
            if free.len() > 1 {
                free.sort_by_key(name);
            }
            for &s in free.iter() {
                captured[s as usize] = true;
            }
        }
        for own in &mut gcx.own[..nf] {
            // Stable: plain locals keep their order, cells come after.
            if own.iter().any(|s| captured[*s as usize]) {
                own.sort_by_key(|s| captured[*s as usize].then(|| name(s)));
            }
        }
        gcx.captured = captured;
        gcx.ready = true;
        self.gcx = gcx;
    }

    pub(super) fn obj(&self, o: Obj, out: &mut Vec<N>) {
        match o {
            Obj::Fut(f) => out.push(N::Fut(f)),
            Obj::Tg(g) => out.push(N::Tg(g)),
        }
    }

    /// The slots a function node refers to, in a frame's `localsplus`
    /// order: its locals while it runs, then its closure's cells (see
    /// `gc_prepare`). Two slices, not a chained iterator: the walks call
    /// this for every function node they pass.
    #[inline(always)]
    pub(super) fn fn_slots(&self, func: NodeId) -> (&[u32], &[u32]) {
        let d = self.gcx.dense[func as usize] as usize;
        let own: &[u32] = if self.fn_done[func as usize] {
            &[]
        } else {
            &self.gcx.own[d]
        };
        (own, &self.gcx.free[d])
    }

    /// Function `func`'s cell variables, in `MAKE_CELL` order.
    pub(super) fn cells_of(&self, func: NodeId) -> impl Iterator<Item = u32> + '_ {
        self.own_of(func)
            .iter()
            .copied()
            .filter(|&s| self.is_cell(s))
    }

    /// Function `func`'s locals in `localsplus` order, whether it runs.
    pub(super) fn own_of(&self, func: NodeId) -> &[u32] {
        &self.gcx.own[self.gcx.dense[func as usize] as usize]
    }

    /// Whether slot `s` is a cell: some nested function reads it.
    pub(super) fn is_cell(&self, s: u32) -> bool {
        self.gcx.captured[s as usize]
    }

    fn slot_edges(&self, slots: &[u32], out: &mut Vec<N>) {
        for &s in slots {
            if let Some(o) = self.slots[s as usize] {
                self.obj(o, out);
            }
        }
    }

    // Inlined, like `handle_edges` and `frame_edges`, into the walks that
    // call it per callback, handle or frame: measured cheaper.
    #[inline(always)]
    pub(super) fn cb_edges(&self, cb: Cb, out: &mut Vec<N>) {
        match cb {
            Cb::Wakeup(t) => out.push(N::Fut(self.tasks[t as usize].fut)),
            Cb::Gather(g) => {
                let x = &self.gathers[g as usize];
                if let Some(o) = x.outer {
                    out.push(N::Fut(o));
                }
                // `_done_callback`'s closure holds `outer` and the
                // children's list, which lets go of them last first.
                out.extend(x.children.iter().rev().map(|&c| N::Fut(c)));
            }
            Cb::ShieldInner(o) | Cb::ShieldOuter(o) | Cb::Release(o) => out.push(N::Fut(o)),
            Cb::TgDone(g) => out.push(N::Tg(g)),
            Cb::WaitDone(w) => out.push(N::Fut(self.waits[w as usize].waiter)),
            Cb::AcDone(a) => self.ac_done_edges(a, out),
            Cb::BgDiscard | Cb::RunUntil | Cb::Traced => {}
        }
    }

    /// `_on_completion`'s closure (3.13: its iterator): the futures still
    /// to come, the queue and its getters. Apart from `cb_edges`, which
    /// its three lists would make save more registers on every call.
    #[inline(never)]
    fn ac_done_edges(&self, a: u32, out: &mut Vec<N>) {
        let x = &self.acs[a as usize];
        out.extend(x.todo.iter().map(|&c| N::Fut(c)));
        out.extend(x.queue.iter().flatten().map(|&f| N::Fut(f)));
        out.extend(x.getters.iter().map(|&c| N::Fut(c)));
        if x.cycle {
            out.push(N::Ac(a));
        }
    }

    #[inline(always)]
    pub(super) fn handle_edges(&self, cb: Hcb, out: &mut Vec<N>) {
        match cb {
            Hcb::Step(t, e) => {
                out.push(N::Fut(self.tasks[t as usize].fut));
                if e != NONE {
                    out.push(N::Exc(e));
                }
            }
            Hcb::FutCb(cb, f) => {
                out.push(N::Fut(f));
                self.cb_edges(cb, out);
            }
            Hcb::SetResultUnlessCancelled(f) | Hcb::ReleaseWaiter(f) => out.push(N::Fut(f)),
            Hcb::TimeoutFire(tm) => out.push(N::Fut(
                self.tasks[self.timeouts[tm as usize].task as usize].fut,
            )),
            Hcb::User(node) => out.push(N::Fn(node)),
            Hcb::AcTimeout(a) => self.cb_edges(Cb::AcDone(a), out),
        }
    }

    /// What a future holds itself, its done callbacks aside.
    #[inline(always)]
    pub(super) fn fut_own_edges(&self, f: u32, out: &mut Vec<N>) {
        self.fut_value_edges(f, true, out);
        self.fut_kind_edges(f, out);
    }

    /// A future's exception, with the traceback it was set with if `tb`,
    /// its result's objects and its saved CancelledError.
    #[inline(always)]
    pub(super) fn fut_value_edges(&self, f: u32, tb: bool, out: &mut Vec<N>) {
        let fut = &self.futs[f as usize];
        if let Some(e) = fut.exc {
            out.push(N::Exc(e));
        }
        if let V::List(..) = fut.result {
            super::value::value_edges(&self.lists, fut.result, out);
        }
        if tb {
            tb_edges(&fut.exc_tb, out);
        }
        if let Some(e) = fut.cancelled_exc {
            out.push(N::Exc(e));
        }
    }

    /// A gather's children, last first as their list lets go of them
    /// (`list_dealloc`); a task's waiter and coroutine.
    #[inline(always)]
    pub(super) fn fut_kind_edges(&self, f: u32, out: &mut Vec<N>) {
        match self.futs[f as usize].kind {
            FKind::Gather(g) => out.extend(
                self.gathers[g as usize]
                    .children
                    .iter()
                    .rev()
                    .map(|&c| N::Fut(c)),
            ),
            FKind::Task(t) => {
                if let Some(w) = self.tasks[t as usize].fut_waiter {
                    out.push(N::Fut(w));
                }
                out.push(N::Coro(t));
            }
            FKind::Plain => {}
        }
    }

    /// What `x` refers to, pushed onto `out`: one function per kind of
    /// node, so that each call saves only the registers its kind needs.
    pub(super) fn edges(&self, x: N, out: &mut Vec<N>) {
        match x {
            N::Fut(f) => self.fut_edges(f, out),
            // A function's and a frame's edges begin with one node per slot
            // that holds an object, in slot order:
            // `gcorder.rs::refs_through_cells` reads them so.
            N::Fn(func) => self.fn_edges(func, out),
            N::Coro(t) => self.coro_edges(t, out),
            N::Tg(_) | N::Frame(_) | N::Ac(_) | N::Exc(_) => self.rare_edges(x, out),
        }
    }

    #[inline(never)]
    pub(super) fn fut_edges(&self, f: u32, out: &mut Vec<N>) {
        let fut = &self.futs[f as usize];
        if fut.collected {
            // A collected cycle through it is gone.
            return;
        }
        for &cb in &fut.callbacks {
            self.cb_edges(cb, out);
            if let Cb::ShieldOuter(_) = cb {
                // shield()'s `_outer_done_callback` holds
                // `_inner_done_callback`, whose closure holds
                // `outer`: a pending shield is in a cycle.
                out.push(N::Fut(f));
            }
        }
        self.fut_own_edges(f, out);
    }

    #[inline(never)]
    pub(super) fn fn_edges(&self, func: NodeId, out: &mut Vec<N>) {
        let (own, free) = self.fn_slots(func);
        self.slot_edges(own, out);
        self.slot_edges(free, out);
    }

    #[inline(never)]
    pub(super) fn coro_edges(&self, t: u32, out: &mut Vec<N>) {
        let task = &self.tasks[t as usize];
        if !task.started {
            out.push(N::Fn(task.func));
        }
        for fr in &task.frames {
            self.frame_edges(t, fr, out);
        }
    }

    #[inline(never)]
    pub(super) fn rare_edges(&self, x: N, out: &mut Vec<N>) {
        match x {
            N::Fut(_) | N::Fn(_) | N::Coro(_) => unreachable!("`edges` handles these"),
            N::Tg(g) => {
                // In the order of the instance dict: `_parent_task`, then
                // `_tasks`, `_errors`.
                let tg = &self.tgs[g as usize];
                out.push(N::Fut(self.tasks[tg.parent as usize].fut));
                out.extend(tg.tasks.iter().map(|&f| N::Fut(f)));
                out.extend(tg.errors.iter().map(|&e| N::Exc(e)));
                out.extend(tg.on_completed_fut.map(N::Fut));
                out.extend(tg.base_error.map(N::Exc));
            }
            N::Frame(func) => {
                // A frame object whose function still runs refers to
                // nothing: its locals belong to the running frame (the
                // coroutine's), and its `f_back` is set only once it ends.
                // But if refcounting frees that coroutine, closing it makes
                // the frame object, referred to from elsewhere, take over
                // its locals (`take_ownership`): they stay with it.
                if !self.fn_done[func as usize] {
                    if self.planning_frees {
                        self.slot_edges(self.own_of(func), out);
                    }
                    return;
                }
                self.slot_edges(self.own_of(func), out);
                out.push(N::Fn(func));
                if let Some(start) = self.frame_back[func as usize] {
                    if start.task_held {
                        out.push(N::Fut(self.tasks[start.task as usize].fut));
                    }
                    if let Some(g) = start.gather {
                        let g = &self.gathers[g as usize];
                        if let Some(o) = g.outer {
                            out.push(N::Fut(o));
                        }
                        out.extend(g.children.iter().map(|&c| N::Fut(c)));
                    }
                }
                let caller = self.fns[func as usize].caller;
                if caller != NONE {
                    out.push(N::Frame(caller));
                }
            }
            N::Ac(a) => {
                let x = &self.acs[a as usize];
                if x.collected {
                    return;
                }
                out.extend(x.queue.iter().flatten().map(|&f| N::Fut(f)));
                out.extend(x.getters.iter().map(|&c| N::Fut(c)));
                // With no live timer there is no cycle: only a traceback
                // through `Queue.get` refers to the queue. With one, the
                // closures also hold the futures not done yet (`todo`).
                if x.cycle {
                    out.push(N::Ac(a));
                    out.extend(x.todo.iter().map(|&f| N::Fut(f)));
                }
            }
            N::Exc(e) => {
                if self.excs.get(e).collected {
                    return;
                }
                // `BaseException_clear` (and `_traverse`) order: an
                // exception group's members, the traceback, the cause,
                // the context.
                self.exc_members(e, out);
                if let Some(tb) = self.tbs.get(e as usize) {
                    tb_edges(tb, out);
                }
                self.exc_links(e, out);
            }
        }
    }

    /// The members of exception group `e`.
    pub(super) fn exc_members(&self, e: ExcId, out: &mut Vec<N>) {
        if let Some(g) = &self.excs.get(e).group {
            out.extend(g.iter().map(|&x| N::Exc(x)));
        }
    }

    /// The exceptions exception `e` links to: its cause, then its context.
    pub(super) fn exc_links(&self, e: ExcId, out: &mut Vec<N>) {
        let o = self.excs.get(e);
        out.extend(o.cause.map(N::Exc));
        out.extend(o.context.map(N::Exc));
    }

    #[inline(always)]
    pub(super) fn frame_edges(&self, t: u32, fr: &Frame, out: &mut Vec<N>) {
        match *fr {
            Frame::Level { func, .. } => out.push(N::Fn(func)),
            Frame::Await { fut } | Frame::Sleep { fut, .. } => out.push(N::Fut(fut)),
            Frame::Try {
                ph: super::coro::TryPh::Handler(e),
                ..
            } => out.push(N::Exc(e)),
            Frame::Try {
                ph: super::coro::TryPh::Finally(super::coro::PC::Raise(e)),
                ..
            } => out.push(N::Exc(e)),
            Frame::Tg { .. } | Frame::Timeout { .. } | Frame::Comb { .. } => {
                self.rare_frame_edges(t, fr, out)
            }
            _ => {}
        }
    }

    /// `frame_edges` for the frames that hold more than one object, apart:
    /// the common ones then need few registers (the walks call it for
    /// every frame of every task they pass).
    #[inline(never)]
    fn rare_frame_edges(&self, t: u32, fr: &Frame, out: &mut Vec<N>) {
        match *fr {
            Frame::Tg { tg, ph, .. } => {
                out.push(N::Tg(tg));
                // Set as phase 2 starts, in the step that leaves phase 1.
                if ph >= 2
                    && let Some(exc) = self.tgs[tg as usize].exit_exc
                {
                    // `__aexit__`'s arguments `exc` and `tb`: the traceback
                    // as it was on entry, whatever `exc` holds since.
                    out.push(N::Exc(exc));
                    tb_edges(&self.tgs[tg as usize].exit_tb, out);
                }
                // Its local `propagate_cancellation_error`, once it runs: a
                // CancelledError it caught waiting for the tasks.
                if ph >= 2 {
                    out.extend(self.tgs[tg as usize].propagate.map(N::Exc));
                }
            }
            Frame::Timeout { tm, .. } => {
                // `async with` holds the Timeout, whose `_task` is the
                // task that entered it: a cycle through a task that
                // awaits nothing holding it back (timeouts.py, 3.11-3.13).
                out.push(N::Fut(
                    self.tasks[self.timeouts[tm as usize].task as usize].fut,
                ));
            }
            Frame::Comb { kind, a, b, .. } => match kind {
                super::comb::CombKind::Wait => {
                    let w = &self.waits[a as usize];
                    out.push(N::Fut(w.waiter));
                    out.extend(w.futs.iter().map(|&f| N::Fut(f)));
                }
                super::comb::CombKind::AsCompleted => {
                    // The iterating frame holds the generator, whose
                    // frame holds the argument list: every future (3.11,
                    // 3.12). 3.13's iterator keeps only what the callback
                    // does; no program has shown the difference yet.
                    out.extend(self.acs[a as usize].all.iter().map(|&c| N::Fut(c)));
                    self.cb_edges(Cb::AcDone(a), out)
                }
                super::comb::CombKind::WaitForNow | super::comb::CombKind::WaitFor11 => {
                    out.push(N::Fut(a));
                    if b != NONE {
                        out.push(N::Fut(b));
                    }
                    // 3.11's `except CancelledError:` around
                    // `_cancel_and_wait`: the coroutine's exception state
                    // holds the cancel it handles, which a collection
                    // meanwhile must not free.
                    if kind == super::comb::CombKind::WaitFor11
                        && let Some(&(1, ce, _)) = self.wf11.get(&(t, a))
                        && ce != NONE
                    {
                        out.push(N::Exc(ce));
                    }
                }
            },
            _ => {}
        }
    }
}
