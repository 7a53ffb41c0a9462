//! The objects a collection's replay scans (`gcorder.rs`): which there
//! are, where each sits in the collector's list, what refers to them from
//! outside the list, and what each refers to when the scan traverses it.

use super::coro::{Frame, NONE};
use super::fut::{Cb, FKind};
use super::gcorder::{ScanBufs, St};
use super::graph::N;
use super::machine::Machine;
use super::run::Hcb;

impl Machine {
    /// Lists the objects the replay scans, in list order: surviving
    /// futures, pending tasks' coroutines and the program coroutines they
    /// await, task groups, the `__wakeup` method objects their callbacks
    /// or handles hold, the loop's handles with the objects just before
    /// them, Timeout objects, cells, the shutdown list, `_current_tasks`,
    /// running gathers' argument tuples and unwrapped coroutines, and the
    /// surviving exceptions. Indexes them, and marks each unseen but for
    /// what the loop and the runtime reach first.
    pub(super) fn scan_items(&self, sc: &mut ScanBufs, mark: &[bool]) {
        let total = mark.len();
        // Read once: the machine holds cells, so a write to `sc` would have
        // the compiler read the counts again for every index.
        let layout = self.layout();
        sc.items.clear();
        sc.wake_loc.clear();
        sc.wake_loc.resize(self.tasks.len(), NONE);
        sc.tm_loc.clear();
        sc.tm_loc.resize(self.timeouts.len(), NONE);
        for (f, fut) in self.futs.iter().enumerate() {
            if !mark[f] || fut.dead {
                continue;
            }
            self.list(sc, It::G(N::Fut(f as u32)), fut.key);
            if let FKind::Task(t) = fut.kind
                && !fut.done()
            {
                let task = &self.tasks[t as usize];
                self.list(
                    sc,
                    It::G(N::Coro(t)),
                    self.coro_place(task.coro_key, task.fut),
                );
                // The program coroutines it awaits, one inside the other:
                // objects of their own, each made just after its cells; and
                // the Timeout objects its `async with`s hold.
                for (k, fr) in self.tasks[t as usize].frames.iter().enumerate() {
                    match *fr {
                        Frame::Level { func, .. } if k > 0 => {
                            self.list(sc, It::Aw(t, func), self.aw_place(func))
                        }
                        Frame::Comb {
                            kind: super::comb::CombKind::AsCompleted,
                            a,
                            ..
                        } if k > 0 => self.list(sc, It::AcIter(a), self.acs[a as usize].key),
                        Frame::Timeout { tm, .. } => self.add_tm(sc, tm),
                        _ => {}
                    }
                }
            }
            for &cb in &fut.callbacks {
                if let Cb::Wakeup(t) = cb {
                    self.add_wake(sc, t);
                }
            }
        }
        // Task groups: a local of the function running `async with`, they
        // reach their parent task and children where they stand.
        for g in 0..self.tgs.len() as u32 {
            let i = self.idx_in(layout, N::Tg(g));
            if i < total && mark[i] {
                self.list(sc, It::G(N::Tg(g)), self.tgs[g as usize].key);
            }
        }
        for &h in self.lp.ready.iter().chain(&self.lp.heap) {
            let x = self.lp.handles[h as usize];
            if x.cancelled {
                continue;
            }
            self.list(sc, It::Hd(h), x.key);
            if has_wrap(x.cb) {
                self.list(sc, It::Wrap(h), x.wrap_key);
            }
            match x.cb {
                Hcb::FutCb(Cb::Wakeup(t), _) => self.add_wake(sc, t),
                Hcb::TimeoutFire(tm) => self.add_tm(sc, tm),
                _ => {}
            }
        }
        sc.cell_loc.clear();
        sc.cell_loc.resize(self.slots.len(), NONE);
        for &f in &self.gcx.ids {
            if self.fns[f as usize].cells != NONE {
                // Empty ones too: they move like any object.
                for s in self.cells_of(f) {
                    sc.cell_loc[s as usize] = 0;
                    self.list(sc, It::Cell(s), self.cell_place(s));
                }
            }
            // A frame object that took over a finished frame. (Its class
            // in the sort key, not where it is listed, puts it after the
            // objects whose key it shares, but for other such frames.)
            if self.fn_done[f as usize] && self.frame_kept[f as usize] {
                let i = self.idx_in(layout, N::Frame(f));
                if i < total && mark[i] && self.fns[f as usize].frame != NONE {
                    self.list(sc, It::G(N::Frame(f)), self.fns[f as usize].frame);
                }
            }
        }
        if !self.shutdown_refs.is_empty() {
            self.list(sc, It::Shutdown, self.shutdown_key);
        }
        if self.current.is_some() && self.cur_tasks_key != NONE {
            self.list(sc, It::CurTasks, self.cur_tasks_key);
        }
        // A gather's `children` list, while its gathering future lives or
        // gather() runs.
        for (g, x) in self.gathers.iter().enumerate() {
            let alive = x.outer.is_some_and(|o| {
                let i = self.idx_in(layout, N::Fut(o));
                i < total && mark[i]
            });
            if alive || self.gathering.contains(&(g as u32)) {
                self.list(sc, It::GList(g as u32), x.list_key);
            }
        }
        // A running gather's argument tuple, and the coroutines in it that
        // have no task yet (only an eager first step collects while
        // gather() runs).
        for &g in &self.gathering {
            let x = &self.gathers[g as usize];
            self.list(sc, It::GArgs(g), x.args_key);
            for j in x.coro_done..x.coro_keys.len() as u32 {
                self.list(sc, It::GCoro(g, j), x.coro_keys[j as usize]);
            }
        }
        // Every surviving exception sits where it was allocated; its
        // traceback where its head was made, by the latest frame it passed
        // (`result()` re-raises the same exception later, with new
        // traceback and frame objects, checked with `gc.get_objects()` on
        // 3.12.1).
        for e in 0..self.excs.len() as u32 {
            let i = self.idx_in(layout, N::Exc(e));
            if i < total && mark[i] && !self.excs.get(e).collected {
                self.list(sc, It::Exc(e), self.excs.get(e).key);
                if let Some(&k) = self.tb_keys.get(e as usize)
                    && k != NONE
                {
                    self.list(sc, It::Tb(e), k);
                }
            }
        }
        // Keys are distinct but for an exception's, its traceback's and a
        // finished frame's, each the key of the object made just before it
        // (they sort after that one, in the order they are made: the
        // exception, its traceback entry, then the frame that ends), and a
        // function's cells'. A function's cells come just before its
        // coroutine, made with the same key: ties keep the order listed.
        // Each key carries the item's place in the list below it (`list`),
        // so the keys are distinct and an unstable sort by key (no buffer
        // to allocate, and cheap on the short lists a collection sees)
        // gives that order, the items sorted with their keys.
        assert!(sc.items.len() <= PLACE as usize, "too many objects to scan");
        sc.items.sort_unstable_by_key(|&(k, _)| k);
        let n = sc.items.len();
        sc.loc.clear();
        sc.loc.resize(total, NONE);
        sc.hd_loc.clear();
        sc.hd_loc.resize(self.lp.handles.len(), (NONE, NONE));
        sc.gcoro_loc.clear();
        sc.aw_loc.clear();
        sc.aw_loc.resize(self.fns.len(), NONE);
        sc.glist_loc.clear();
        sc.glist_loc.resize(self.gathers.len(), NONE);
        sc.tb_loc.clear();
        sc.tb_loc.resize(self.excs.len(), NONE);
        sc.ac_loc.clear();
        sc.ac_loc.resize(self.acs.len(), NONE);
        sc.st.clear();
        sc.st.resize(n, St::Unseen);
        // Each object's index, and whether something outside the list
        // reaches it first, in one pass. The loop, allocated before
        // everything, is traversed first: its ready queue and timer heap
        // reach their handles, which are then traversed in place.
        // `_drive`'s shutdown list, held by its executing frame, likewise,
        // and the exceptions in flight (others wait to be reached).
        for (i, &(_, x)) in sc.items.iter().enumerate() {
            let at = i as u32;
            let reached = match x {
                It::G(g) => {
                    sc.loc[self.idx_in(layout, g)] = at;
                    false
                }
                It::GCoro(g, j) => {
                    sc.gcoro_loc.push((g, j, at));
                    false
                }
                It::Wake(t) => {
                    sc.wake_loc[t as usize] = at;
                    false
                }
                It::Hd(h) => {
                    sc.hd_loc[h as usize].0 = at;
                    true
                }
                It::Wrap(h) => {
                    sc.hd_loc[h as usize].1 = at;
                    false
                }
                It::Exc(e) => {
                    sc.loc[self.idx_in(layout, N::Exc(e))] = at;
                    self.inflight.contains(&e)
                }
                It::Tm(tm) => {
                    sc.tm_loc[tm as usize] = at;
                    false
                }
                It::Cell(s) => {
                    sc.cell_loc[s as usize] = at;
                    false
                }
                It::Aw(t, func) => {
                    sc.aw_loc[func as usize] = at;
                    // On 3.11 the frames of the running chain await
                    // through a C call (`Profile::awaiting_frames_execute`):
                    // the coroutine each awaits is referred to from a stack
                    // the collector does not traverse.
                    self.profile.awaiting_frames_execute && self.current == Some(t)
                }
                It::GList(g) => {
                    sc.glist_loc[g as usize] = at;
                    // A local of gather()'s executing frame.
                    self.gathering.contains(&g)
                }
                It::Tb(e) => {
                    sc.tb_loc[e as usize] = at;
                    false
                }
                It::AcIter(a) => {
                    sc.ac_loc[a as usize] = at;
                    false
                }
                It::Shutdown | It::CurTasks | It::GArgs(_) => true,
                It::Hop(_) => unreachable!("stand-ins join after the list is made"),
            };
            if reached {
                sc.st[i] = St::Reached;
            }
        }
        sc.young.clear();
        sc.late.clear();
    }

    /// What refers to scanned objects from outside the list: `direct`
    /// keeps them in place, `later` reaches them after the list.
    pub(super) fn outside_refs(&self, direct: &mut Vec<N>, later: &mut Vec<N>) {
        // (The current task is not among these: `_current_tasks` reaches it
        // where the scan gets to that dict. Nor is a coroutine running in
        // its own step: only its task refers to it.)
        // The frame calling gc.collect() is executing: CPython does not
        // traverse its locals, so what they hold counts as referred to from
        // outside. From 3.12 the frames awaiting it up the running task's
        // chain are traversed (each pushed the next inline); on 3.11 they
        // run it through a C call, so they count as outside too
        // (`Profile::awaiting_frames_execute`).
        if let Some(t) = self.current {
            if self.profile.awaiting_frames_execute {
                direct.extend(
                    self.tasks[t as usize]
                        .frames
                        .iter()
                        .filter_map(|f| match *f {
                            Frame::Level { func, .. } => Some(N::Fn(func)),
                            _ => None,
                        }),
                );
            } else if let Some(func) = self.innermost_fn(t) {
                direct.push(N::Fn(func));
            }
        }
        // A task in its eager first step and its coroutine: locals of
        // `create_task`'s frames.
        for e in &self.eager_stack {
            direct.push(N::Fut(self.tasks[e.task as usize].fut));
            direct.push(N::Coro(e.task));
            // The task current before this eager step: `swap_current_task`
            // hands it back as a new reference, held until the step ends.
            if let Some(p) = e.prev {
                direct.push(N::Fut(self.tasks[p as usize].fut));
            }
        }
        direct.extend(self.bg.iter().map(|&f| N::Fut(f)));
        // Pushes, not `extend` of an `Option`: that stays a call under LTO.
        if let Some(f) = self.main_ref {
            direct.push(N::Fut(f));
        }
        // `run_until_complete`'s executing frame holds its future.
        if let Some(f) = self.until {
            direct.push(N::Fut(f));
        }
        for &g in &self.gathering {
            direct.extend(self.gathers[g as usize].children.iter().map(|&c| N::Fut(c)));
        }
        // `_drive`'s loop variable `t`, also a local of its executing
        // frame: the last leftover task, once the shutdown has cancelled
        // them all.
        if let Some(&f) = self.shutdown_refs.last() {
            direct.push(N::Fut(f));
        }
        // Through the running handle: late.
        if let Some(cb) = self.running_handle() {
            self.handle_edges(cb, later);
        }
    }

    /// Lists `x`, whose list position is `key`, among the scanned objects,
    /// with its sort key: the position, then its class (see `scan_items`),
    /// then its place in the list (so the keys are distinct). Inlined, the
    /// class is a constant at each call.
    #[inline(always)]
    fn list(&self, sc: &mut ScanBufs, x: It, key: u32) {
        debug_assert_eq!(key, self.item_key(x));
        let class = match x {
            It::Cell(_) => 0,
            It::Exc(_) => 2,
            It::Tb(_) => 3,
            It::G(N::Frame(_)) => 4,
            _ => 1,
        };
        let place = sc.items.len() as u64;
        sc.items
            .push((((((key as u64) << 3) | class) << PLACE_BITS) | place, x));
    }

    /// A task's `__wakeup` object, once among the scanned objects. Its
    /// `wake_loc` only marks it added here; the index comes after sorting.
    fn add_wake(&self, sc: &mut ScanBufs, t: u32) {
        if sc.wake_loc[t as usize] == NONE {
            sc.wake_loc[t as usize] = 0;
            self.list(sc, It::Wake(t), self.tasks[t as usize].wake_key);
        }
    }

    /// A Timeout object, once among the scanned objects; like `add_wake`.
    fn add_tm(&self, sc: &mut ScanBufs, tm: u32) {
        if sc.tm_loc[tm as usize] == NONE {
            sc.tm_loc[tm as usize] = 0;
            self.list(sc, It::Tm(tm), self.timeouts[tm as usize].key);
        }
    }

    /// The list position of a scanned object.
    #[inline]
    pub(super) fn item_key(&self, x: It) -> u32 {
        match x {
            It::G(g) => self.gc_key(g),
            It::Wake(t) => self.tasks[t as usize].wake_key,
            It::Hd(h) => self.lp.handles[h as usize].key,
            It::Wrap(h) => self.lp.handles[h as usize].wrap_key,
            It::Hop(_) => unreachable!("a stand-in has no place"),
            It::Shutdown => self.shutdown_key,
            It::CurTasks => self.cur_tasks_key,
            It::GArgs(g) => self.gathers[g as usize].args_key,
            It::GList(g) => self.gathers[g as usize].list_key,
            It::GCoro(g, j) => self.gathers[g as usize].coro_keys[j as usize],
            It::Exc(e) => self.excs.get(e).key,
            It::Tb(e) => self.tb_keys[e as usize],
            It::AcIter(a) => self.acs[a as usize].key,
            It::Tm(tm) => self.timeouts[tm as usize].key,
            It::Cell(s) => self.cell_place(s),
            It::Aw(_, func) => self.aw_place(func),
        }
    }

    /// The list position of the coroutine of `func`, awaited by another:
    /// made just after its cells, until a collection moves it.
    pub(super) fn aw_place(&self, func: crate::ast::NodeId) -> u32 {
        match self.fns[func as usize].aw {
            NONE => self.fns[func as usize].cells,
            k => k,
        }
    }

    /// The list position of cell `s`: made with its function's cells,
    /// until a collection moves it.
    fn cell_place(&self, s: u32) -> u32 {
        match self.cell_key[s as usize] {
            NONE => self.fns[self.sc.slot_binder[s as usize] as usize].cells,
            k => k,
        }
    }

    /// Gives a scanned object its new list position.
    // Inlined into the replay's loop, its one hot caller: measured cheaper.
    #[inline(always)]
    pub(super) fn set_item_key(&mut self, x: It, key: u32) {
        match x {
            It::G(N::Fut(f)) => self.futs[f as usize].key = key,
            It::G(N::Coro(t)) => self.tasks[t as usize].coro_key = Some(key),
            It::G(N::Tg(g)) => self.tgs[g as usize].key = key,
            It::G(N::Frame(f)) => self.fns[f as usize].frame = key,
            It::Wake(t) => self.tasks[t as usize].wake_key = key,
            It::Hd(h) => self.lp.handles[h as usize].key = key,
            It::Wrap(h) => self.lp.handles[h as usize].wrap_key = key,
            It::Shutdown => self.shutdown_key = key,
            It::CurTasks => self.cur_tasks_key = key,
            It::GArgs(g) => self.gathers[g as usize].args_key = key,
            It::GList(g) => self.gathers[g as usize].list_key = key,
            It::GCoro(g, j) => self.gathers[g as usize].coro_keys[j as usize] = key,
            It::Exc(e) => self.excs.set_key(e, key),
            It::Tb(e) => self.tb_keys[e as usize] = key,
            It::AcIter(a) => self.acs[a as usize].key = key,
            It::Tm(tm) => self.timeouts[tm as usize].key = key,
            It::Cell(s) => self.cell_key[s as usize] = key,
            It::Aw(_, func) => self.fns[func as usize].aw = key,
            It::Hop(_) => unreachable!("a stand-in has no place"),
            It::G(_) => {
                unreachable!("only futures, coroutines and task groups are scanned graph nodes")
            }
        }
    }
}

/// An object the replay scans: a graph node with a place of its own
/// (future, coroutine, task group), a task's `__wakeup` method object, a
/// loop handle, the object allocated just before a handle that only the
/// handle refers to (see `has_wrap`), `_drive`'s shutdown list,
/// `_current_tasks`, a running gather's argument tuple or one of its
/// coroutines, an exception, a Timeout or a cell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum It {
    G(N),
    Wake(u32),
    Hd(super::eventloop::HId),
    Wrap(super::eventloop::HId),
    /// `_drive`'s list of the shutdown's tasks.
    Shutdown,
    /// `_current_tasks`, referred to from the C module's state: it reaches
    /// the running task where the scan gets to it.
    CurTasks,
    /// A running gather's `coros_or_futures` tuple, a local of its
    /// executing frame.
    GArgs(u32),
    /// A gather's `children` list, which its gathering future and its
    /// `_done_callback`'s closure refer to.
    GList(u32),
    /// A stand-in for an object the replay gives no place (an asyncio
    /// coroutine a program one awaits), between a traversed object and
    /// what it holds: the scan meets that after what is nearer.
    Hop(N),
    /// A running gather's argument coroutine that has no task yet: the
    /// gather, and which of its coroutine arguments.
    GCoro(u32, u32),
    /// An exception, where it was allocated: what its traceback holds is
    /// reached from there. One in flight is referred to from outside the
    /// list (a step's argument, a frame running a handler), so traversed
    /// in place.
    Exc(super::exc::ExcId),
    /// An exception's traceback: its head was made by the latest frame
    /// the exception passed, and it holds the frames.
    Tb(super::exc::ExcId),
    /// What iterates an `as_completed` (the generator, or 3.13's
    /// `_AsCompletedIterator`): the frame running the loop holds it, and
    /// it holds every future and what their callbacks reach.
    AcIter(u32),
    /// A `Timeout` object, kept by the `async with` in its task's
    /// coroutine and by its handler's bound method `_on_timeout`; it
    /// refers to its task (`_task`).
    Tm(u32),
    /// The cell of a slot some nested function reads: made with its
    /// binder's coroutine, referred to by that frame and by closures, it
    /// reaches what the slot holds one step later than a plain local.
    Cell(u32),
    /// A program coroutine that another of task `t`'s awaits (the
    /// function's): made after its cells, it is where its frame's locals
    /// and what it awaits are reached from.
    Aw(u32, crate::ast::NodeId),
}

/// How many low bits of a sort key hold the item's place in the list:
/// what a `u32` list position and three bits of class leave of a `u64`.
const PLACE_BITS: u32 = 29;
const PLACE: u64 = (1 << PLACE_BITS) - 1;

/// Whether a handle's callback comes with an object allocated just before
/// the handle, which only the handle refers to: a task's step wrapper, the
/// bound method `Timeout._on_timeout`, or the `args` tuple naming a future.
pub(super) fn has_wrap(cb: Hcb) -> bool {
    matches!(
        cb,
        Hcb::Step(..)
            | Hcb::FutCb(..)
            | Hcb::SetResultUnlessCancelled(_)
            | Hcb::ReleaseWaiter(_)
            | Hcb::TimeoutFire(_)
    )
}
