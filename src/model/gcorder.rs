//! Where objects sit in CPython's collector list, and so the order in
//! which a collection runs their finalizers. Objects join the list when
//! allocated (a task's coroutine just before the task). A full
//! collection's `move_unreachable` (Modules/gcmodule.c) then reorders what
//! survives: it scans the list in order, sets aside each object that
//! nothing scanned so far has reached, and moves one set aside to the end
//! when something scanned later reaches it. So a survivor reached only
//! from objects after it (a task's coroutine, reached from its task; a task
//! reached only through its step handle or a done callback, allocated
//! after it) ends up behind everything scanned in place.
//!
//! The model keeps a key per future, per task coroutine and per program
//! coroutine another one awaits: their order in that list. At each `(gc)`
//! it replays the scan over the objects it models, which also include the
//! small objects between a task and what reaches it: the loop's handles
//! (reached from the loop, allocated before everything, so traversed in
//! place), the object allocated just before each handle that only the
//! handle refers to (a task's step wrapper, the `args` tuple naming a
//! future, `Timeout._on_timeout`), each task's `__wakeup` method object
//! (made when it awaits a future, kept by that future's callbacks, then by
//! the handle that runs it), `_drive`'s shutdown list, `_current_tasks`
//! (untracked by the worker's collection before each case, tracked again by
//! the first step, it reaches the running task from there), each task group
//! (a local of the function running its `async with`, it refers to its
//! parent task and children), a running `gather()`'s argument tuple (a
//! local of its frame, made just after the argument coroutines; it refers
//! to them last first) and those argument coroutines that have no task yet,
//! each gather's `children` list (made by gather() before any child, kept
//! by the gathering future, it refers to the children last first),
//! each `Timeout` object (kept by its `async with` and its handler's bound
//! method, it refers to its task), what iterates each running
//! `as_completed` (made before the tasks it wraps its arguments in, held
//! by the iterating frame, it holds every future), every exception and
//! its traceback (which stands for the traceback objects and the frames
//! of functions still running: it sits where the latest frame the
//! exception passed made its head, so a re-raise moves it behind
//! everything made since, and it reaches its frames latest first, as the
//! scan meets them), the frame object a traceback or an `f_back` keeps
//! for a finished function (tracked only when it takes over the finished
//! frame, so placed then), and the cells of each function's cell
//! variables (made with its coroutine, just before it). A task's
//! coroutine reaches what its own frames hold, then the coroutine it
//! awaits, which is scanned where it stands and reaches its frames' locals
//! from there. All take places from the same allocation clock
//! (`EventLoop::clock`), so what an exception's traceback or a cell holds
//! is reached only when the scan gets to the traceback or the cell. Other
//! done callbacks and handle targets (closures and bound methods made at
//! other times) reach their objects late: after the scan of the list as it
//! was. Objects referred to from outside the list stay in place: what the
//! frame calling `gc.collect()` holds (an executing frame's locals are not
//! traversed); a task in its eager first step and its coroutine
//! (`create_task`'s frames), and the task that step displaced as current
//! (`swap_current_task` holds it); the background set (frozen by the
//! worker); `main_task` (a local of the runtime) and the future
//! `run_until_complete` runs; the `children` a running `gather()` has made;
//! the shutdown list, and its last task (`_drive`'s loop variable `t`); on
//! 3.11, also what the frames awaiting the one that calls it hold
//! (`Profile::awaiting_frames_execute`). The exceptions in flight (a step's
//! argument) are referred to from outside too, so they are traversed when
//! the scan passes them whatever reaches them. The running handle refers to
//! what it holds late. 3.11's `wait_for` coroutine (and any with timeout
//! <= 0) has no place, but what its frame holds is met one object after
//! the coroutine awaiting it is traversed, behind what that reached
//! directly (its cells): a stand-in joins the end of the list for it.
//! Known simplifications: running functions' frames, function objects
//! and result lists count as part of whichever scanned object reaches
//! them first; the finished frames of asyncio's coroutines a traceback
//! holds (`wait`'s and `as_completed`'s, `TbRef::reached_late`) have no
//! place, so what they hold is reached late; and late referrers all come
//! after the list.
//!
//! Few runs ever read the order a replay makes, so a run puts every
//! replay off and is made again, replaying, when a later collection's
//! finalizers could show it (`reorder_survivors`).

use super::coro::{Frame, NONE};
use super::eventloop::KEY_STEP;
use super::fut::{FKind, FutId};
use super::gcitems::It;
use super::graph::N;
use super::machine::Machine;

/// `ScanBufs::loc` of a node that is not scanned but has been followed
/// through (`follow`).
const SEEN: u32 = NONE - 1;

/// Where a scanned object stands in the replayed `move_unreachable`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
    /// Not reached yet.
    Unseen,
    /// Reached: traversed when the scan gets to it.
    Reached,
    /// Scanned before anything reached it: set aside.
    Aside,
    /// Traversed: its place in the new order is taken.
    Done,
}

impl Machine {
    /// The list position of a future or of a task's coroutine.
    #[inline]
    pub(super) fn gc_key(&self, x: N) -> u32 {
        match x {
            N::Fut(f) => self.futs[f as usize].key,
            N::Tg(g) => self.tgs[g as usize].key,
            N::Frame(f) => self.fns[f as usize].frame,
            N::Coro(t) => {
                let task = &self.tasks[t as usize];
                self.coro_place(task.coro_key, task.fut)
            }
            _ => unreachable!("only futures, coroutines and task groups have keys"),
        }
    }

    /// The list position of the coroutine of the task whose future is
    /// `fut`: made just before that future, unless made earlier
    /// (`coro_key`, as gather() makes its arguments first).
    #[inline]
    pub(super) fn coro_place(&self, coro_key: Option<u32>, fut: FutId) -> u32 {
        coro_key.unwrap_or_else(|| self.futs[fut as usize].key - 1)
    }

    /// `enter_task`, or an eager start's `swap_current_task`, puts the task
    /// in `_current_tasks`: a dict untracked since it was last found empty
    /// is tracked again, behind everything allocated so far.
    pub(super) fn current_tasks_entered(&mut self) {
        if self.cur_tasks_key == NONE {
            self.cur_tasks_key = self.next_gc_key();
        }
    }

    /// A new position after every object allocated so far.
    pub(super) fn next_gc_key(&mut self) -> u32 {
        let key = self.lp.clock.get() + KEY_STEP;
        self.lp.clock.set(key);
        key
    }

    /// `n` new positions, two apart, for objects allocated now but handed
    /// out later (the coroutines of a gather's arguments); the first.
    pub(super) fn reserve_gc_keys(&mut self, n: u32) -> u32 {
        let first = self.lp.clock.get() + KEY_STEP;
        self.lp.clock.set(first - KEY_STEP + KEY_STEP * n);
        first
    }

    /// After a `(gc)`: the survivors' new list order, replayed; they all
    /// get new keys, behind nothing allocated later. `mark` is what the
    /// collection found reachable, with the object counts `layout`; its
    /// finalizers freed nothing of that, but may have made new objects.
    ///
    /// Most runs never read the new order, so the replay is put off:
    /// `skipped` records that it was not made, and a later collection
    /// whose finalizer order could show it sets `owed` (`note_order_read`),
    /// on which the run is made again with every replay (`Machine::run`).
    /// That is exact because list positions reach nothing but each other
    /// and the order of a collection's finalizers: every position is taken
    /// from the allocation clock or from another position, and is read
    /// only to sort (a replay's scan, a collection's finalizers and the
    /// coroutines they close). A replay gives the survivors new positions
    /// among themselves, all behind what was allocated before and ahead of
    /// what is allocated after, as the old ones are; so with no replay
    /// made in a run, only the order among survivors of a `(gc)` differs,
    /// and only a collection's finalizers read it.
    pub(super) fn reorder_survivors(&mut self, mark: &[bool], layout: super::graph::Layout) {
        if !self.gc_scan.forced {
            self.gc_scan.skipped = true;
            self.gc_scan.horizon = self.lp.clock.get();
            return;
        }
        if layout != self.layout() {
            let fresh = self.alive(false);
            self.replay_scan(&fresh);
            self.gc_mark = fresh;
        } else {
            self.replay_scan(mark);
        }
    }

    /// A collection is about to run its finalizers over the garbage
    /// (unmarked in `mark`). If a replay was put off, only the order among
    /// objects placed up to `horizon` differs from the replayed run's; all
    /// of them come before the rest, in either order, and so do the
    /// coroutines awaited in them. That order shows only if one of them
    /// closes a coroutine (a pending task's: that runs program code, and
    /// what it frees goes at once) or two of them report. Otherwise their
    /// finalizers, all run before any other, each only set their own
    /// object's flags, at most one reporting: the same, whatever the order.
    /// True if the run is to be made again.
    pub(super) fn note_order_read(&mut self, mark: &[bool]) -> bool {
        if !self.gc_scan.skipped || self.gc_scan.owed {
            return self.gc_scan.owed;
        }
        let h = self.gc_scan.horizon;
        let mut reports = 0;
        for (f, fut) in self.futs.iter().enumerate() {
            if mark[f] || fut.dead {
                continue;
            }
            if let FKind::Task(t) = fut.kind
                && !fut.done()
            {
                let task = &self.tasks[t as usize];
                let old_aw = task.frames.iter().skip(1).any(|fr| match *fr {
                    Frame::Level { func, .. } => self.aw_place(func) <= h,
                    _ => false,
                });
                if fut.key <= h || self.coro_place(task.coro_key, task.fut) <= h || old_aw {
                    self.gc_scan.owed = true;
                    return true;
                }
            }
            reports += (fut.key <= h && fut.log_tb && !fut.finalized) as u32;
        }
        self.gc_scan.owed = reports > 1;
        self.gc_scan.owed
    }

    fn replay_scan(&mut self, mark: &[bool]) {
        let mut sc = self.gc_scan.bufs.take().unwrap_or_default();
        self.scan_items(&mut sc, mark);
        // Each object traversed takes the next position, behind everything
        // allocated so far (the scan reads no position).
        let mut key = self.lp.clock.get();
        let mut direct = std::mem::take(&mut sc.direct);
        let mut later = std::mem::take(&mut sc.later);
        self.outside_refs(&mut direct, &mut later);
        self.reach(&mut sc, mark, &mut direct, &mut later);
        // The list as the scan extends it: the objects in list order, then
        // `young`, what it moved to the end.
        let n = sc.items.len();
        let mut i = 0;
        loop {
            if i == n + sc.young.len() {
                // The late referrers' turn: what they reach and the scan set
                // aside goes to the end.
                let mut moved = false;
                let mut late = std::mem::take(&mut sc.late);
                for &y in &late {
                    if sc.st[y as usize] == St::Aside {
                        sc.st[y as usize] = St::Reached;
                        sc.young.push(y);
                        moved = true;
                    }
                }
                late.clear();
                sc.late = late;
                if !moved {
                    break;
                }
                continue;
            }
            let x = if i < n { i } else { sc.young[i - n] as usize };
            i += 1;
            match sc.st[x] {
                St::Reached => {
                    sc.st[x] = St::Done;
                    let item = sc.items[x].1;
                    if let It::Hop(y) = item {
                        direct.push(y);
                        self.reach(&mut sc, mark, &mut direct, &mut later);
                        continue;
                    }
                    key += KEY_STEP;
                    self.set_item_key(item, key);
                    self.refs_of(&mut sc, item, &mut direct, &mut later);
                    self.reach(&mut sc, mark, &mut direct, &mut later);
                }
                St::Unseen => sc.st[x] = St::Aside,
                St::Aside | St::Done => {}
            }
        }
        // What the replay never reached (the model's reachability went
        // another way) keeps its order, behind the rest.
        for (k, &s) in sc.st.iter().enumerate() {
            if s != St::Done {
                key += KEY_STEP;
                self.set_item_key(sc.items[k].1, key);
            }
        }
        self.lp.clock.set(key);
        sc.direct = direct;
        sc.later = later;
        self.gc_scan.bufs = Some(sc);
    }

    /// Follows `direct` and `later` to scanned objects: one reached directly
    /// is traversed in place if the scan has not passed it, or moved to the
    /// end if the scan set it aside; one reached late waits for `late`.
    // Called for every traversed item, mostly with little to follow:
    // inlined into the replay's loop, measured cheaper.
    #[inline(always)]
    fn reach(&self, r: &mut ScanBufs, mark: &[bool], direct: &mut Vec<N>, later: &mut Vec<N>) {
        let at = |r: &mut ScanBufs, k: u32| match r.st[k as usize] {
            St::Unseen => r.st[k as usize] = St::Reached,
            St::Aside => {
                r.st[k as usize] = St::Reached;
                r.young.push(k);
            }
            St::Reached | St::Done => {}
        };
        if !r.ordered.is_empty() {
            let mut stack = std::mem::take(&mut r.stack);
            stack.clear();
            // Pushes, not `extend(drain)`: that stays a call under LTO, dear
            // on these few entries.
            for &e in r.ordered.iter().rev() {
                stack.push(e);
            }
            r.ordered.clear();
            let mut scratch = std::mem::take(&mut r.scratch);
            self.walk(r, mark, &mut stack, &mut scratch, at);
            r.scratch = scratch;
            r.stack = stack;
        }
        // By index, not `mem::take`: the buffer is kept for the next call.
        for j in 0..r.direct_it.len() {
            at(r, r.direct_it[j]);
        }
        r.direct_it.clear();
        if !direct.is_empty() {
            self.follow(r, mark, direct, at);
        }
        if !later.is_empty() {
            self.follow(r, mark, later, |r, k| r.late.push(k));
        }
        // Stand-ins are rare: an empty `drain` still costs its set-up.
        if r.hop_nodes.is_empty() {
            return;
        }
        let ScanBufs {
            hop_nodes,
            young,
            items,
            st,
            ..
        } = r;
        for y in hop_nodes.drain(..) {
            young.push(items.len() as u32);
            items.push((0, It::Hop(y)));
            st.push(St::Reached);
        }
    }

    /// Calls `at` with each scanned object `list` reaches, in traversal
    /// order (the order set-aside objects move in), following other
    /// objects (frames, exceptions, task groups) through where they are
    /// met, as parts of the object that refers to them (a coroutine's
    /// frame locals come before what it awaits); empties `list`.
    // Inlined into `reach`'s two calls: measured cheaper.
    #[inline(always)]
    fn follow(
        &self,
        r: &mut ScanBufs,
        mark: &[bool],
        list: &mut Vec<N>,
        mut at: impl FnMut(&mut ScanBufs, u32),
    ) {
        // Until some node has to be followed through, the list is met in
        // order, as `walk` would pop it: no stack needed.
        let layout = self.layout();
        let mut from = 0;
        while let Some(&y) = list.get(from) {
            let i = self.idx_in(layout, y);
            if i < mark.len() && mark[i] {
                match r.loc[i] {
                    NONE => break,
                    SEEN => {}
                    k => at(r, k),
                }
            }
            from += 1;
        }
        if from == list.len() {
            list.clear();
            return;
        }
        // A stack popped in list order: what a followed object refers to
        // goes on top, ahead of the rest of the list.
        let mut stack = std::mem::take(&mut r.stack);
        stack.clear();
        for &y in list[from..].iter().rev() {
            stack.push(Entry::Node(y));
        }
        list.clear();
        self.walk(r, mark, &mut stack, list, at);
        r.stack = stack;
    }

    /// `follow`'s loop over `stack`, with `list` as scratch space.
    /// Inlined into its two callers: measured cheaper.
    #[inline(always)]
    fn walk(
        &self,
        r: &mut ScanBufs,
        mark: &[bool],
        stack: &mut Vec<Entry>,
        list: &mut Vec<N>,
        mut at: impl FnMut(&mut ScanBufs, u32),
    ) {
        let mut entries = std::mem::take(&mut r.entries);
        let layout = self.layout();
        while let Some(e) = stack.pop() {
            let y = match e {
                Entry::Node(y) => y,
                Entry::Item(k) => {
                    at(r, k);
                    continue;
                }
            };
            let i = self.idx_in(layout, y);
            if i >= mark.len() || !mark[i] {
                continue;
            }
            match r.loc[i] {
                SEEN => {}
                NONE => {
                    r.loc[i] = SEEN;
                    self.refs_through_cells(r, y, list, &mut entries);
                    for &e in entries.iter().rev() {
                        stack.push(e);
                    }
                    entries.clear();
                }
                k => at(r, k),
            }
        }
        r.entries = entries;
    }

    /// What function or frame `y` refers to, into `out`, as `follow`
    /// visits it: what a cell of theirs holds is reached through the cell.
    /// `list` is scratch space, left empty.
    // Inlined into `walk`: measured cheaper.
    #[inline(always)]
    pub(super) fn refs_through_cells(
        &self,
        r: &ScanBufs,
        y: N,
        list: &mut Vec<N>,
        out: &mut Vec<Entry>,
    ) {
        list.clear();
        self.edges(y, list);
        let (a, b): (&[u32], &[u32]) = match y {
            N::Fn(func) => self.fn_slots(func),
            N::Frame(func) if self.fn_done[func as usize] => (self.own_of(func), &[]),
            _ => (&[], &[]),
        };
        // `list` has one node per slot that holds an object, in order.
        let mut j = 0;
        for (k, &s) in a.iter().chain(b).enumerate() {
            let held = self.slots[s as usize].is_some();
            let cell = r.cell_loc[s as usize];
            if (k >= a.len() || self.is_cell(s)) && cell != NONE {
                out.push(Entry::Item(cell));
            } else if held {
                out.push(Entry::Node(list[j]));
            }
            j += held as usize;
        }
        if j < list.len() {
            out.extend(list.drain(..).skip(j).map(Entry::Node));
        } else {
            list.clear();
        }
    }
}

/// What `follow` has still to visit: a graph node, or a scanned object
/// it reaches (a cell, met through a function or frame).
#[derive(Clone, Copy)]
pub(super) enum Entry {
    Node(N),
    Item(u32),
}

/// What collections keep between them: the replay's buffers, boxed so
/// that the replay takes them out of the machine and puts them back by
/// pointer rather than by copying them (and dropping the default left
/// behind); the sort keys of a collection's list-order finalizers; and
/// whether replays are put off (`reorder_survivors`).
#[derive(Default)]
pub struct Scan {
    bufs: Option<Box<ScanBufs>>,
    pub(super) keyed: Vec<u64>,
    /// A `(gc)` of this run left its survivors in their old order.
    pub(super) skipped: bool,
    /// The allocation clock at the last `(gc)` that skipped: what has a
    /// list position up to it is a survivor some replay would have moved.
    pub(super) horizon: u32,
    /// A later collection's finalizer order could show that: the run
    /// must be made again with every replay (`Machine::run`).
    pub(super) owed: bool,
    /// Every `(gc)` replays: the run made again.
    pub(super) forced: bool,
}

/// The replay's buffers, kept between collections: the scanned objects in
/// list order, the index among them of each graph node (or whether it was
/// followed through), each scanned object's state, the list as the scan
/// extends it, what late referrers reach, and running gathers' argument
/// coroutines that have no task yet.
#[derive(Default)]
pub struct ScanBufs {
    /// The scanned objects, each with its sort key (`scan_items`).
    pub(super) items: Vec<(u64, It)>,
    /// `follow`'s stack.
    pub(super) stack: Vec<Entry>,
    /// What `refs_through_cells` makes of one followed object's references.
    pub(super) entries: Vec<Entry>,
    /// Index among the scanned objects of each graph node, `NONE` for
    /// other nodes, `SEEN` once one of those has been followed through.
    pub(super) loc: Vec<u32>,
    /// Index among the scanned objects of each task's `__wakeup` object,
    /// and of each handle and its step wrapper.
    pub(super) wake_loc: Vec<u32>,
    pub(super) hd_loc: Vec<(u32, u32)>,
    /// Index among the scanned objects of each Timeout object, and of
    /// each cell (by slot).
    pub(super) tm_loc: Vec<u32>,
    pub(super) cell_loc: Vec<u32>,
    /// Index among the scanned objects of each awaited coroutine, by
    /// function.
    pub(super) aw_loc: Vec<u32>,
    /// Index among the scanned objects of each gather's `children` list.
    pub(super) glist_loc: Vec<u32>,
    /// Index among the scanned objects of each exception's traceback.
    pub(super) tb_loc: Vec<u32>,
    /// Index among the scanned objects of each as_completed's iterator.
    pub(super) ac_loc: Vec<u32>,
    /// Scanned objects a traversed one refers to directly.
    pub(super) direct_it: Vec<u32>,
    /// What an object without a place holds, met one object later.
    pub(super) hop_nodes: Vec<N>,
    pub(super) st: Vec<St>,
    pub(super) young: Vec<u32>,
    pub(super) late: Vec<u32>,
    pub(super) direct: Vec<N>,
    pub(super) later: Vec<N>,
    /// Index among the scanned objects of each running gather's argument
    /// coroutines that have no task yet: (gather, argument's coroutine
    /// number, index).
    pub(super) gcoro_loc: Vec<(u32, u32, u32)>,
    /// What a traversed object reaches in an order of its own (a tuple,
    /// last item first), ahead of the rest; and `follow`'s scratch list.
    pub(super) ordered: Vec<Entry>,
    pub(super) scratch: Vec<N>,
}
