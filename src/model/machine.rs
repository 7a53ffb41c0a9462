//! The machine's state: the task record, every arena and table a run
//! uses (`reset.rs` clears them between programs, keeping their capacity,
//! since a backend runs many programs on one machine).

use super::Profile;
use super::coro::Frame;
use super::eventloop::EventLoop;
use super::exc::{ExcId, Excs};
use super::fut::{Fut, FutId, V};
use super::names::Obj;
use super::run::Hcb;
use super::scope::Scopes;
use crate::ast::{NodeId, Program};
use crate::trace::{Event, Fin, Injection};
use std::rc::Rc;

/// A task's model state beyond its future. Its name, frames and
/// `done_fin` are all it owns (`reset.rs::empty_tasks` drops only those).
#[derive(Clone, Debug)]
pub struct Task {
    pub fut: FutId,
    pub func: NodeId,
    /// Its `create` event in `Machine::events`, which holds its name
    /// (`Machine::task_name`): the name is not shared once more per task.
    pub create_ev: u32,
    pub frames: Vec<Frame>,
    pub started: bool,
    pub fut_waiter: Option<FutId>,
    pub must_cancel: bool,
    pub num_cancels: u32,
    pub log_destroy_pending: bool,
    /// Lowest frame index whose handlers are visible to a raise (see coro.rs).
    pub floor: usize,
    /// The runtime's table shows it destroyed: collected while pending, or
    /// a half-made eager task whose `Task()` raised, so that the runtime
    /// never got a reference to it.
    pub destroyed: bool,
    /// Freed (by refcount or collection): the table uses the done record.
    pub freed: bool,
    pub done_fin: Option<Fin>,
    pub done_cancelling: u32,
    /// Its coroutine is being closed (GeneratorExit) right now.
    pub closing: bool,
    /// Its coroutine's finalizer has run: it is never closed again, even
    /// if it ignored the close and is freed later (PEP 442).
    pub coro_finalized: bool,
    /// Its coroutine's place in the collector's list: None while just
    /// before the task's own (it is allocated just before the task).
    pub coro_key: Option<u32>,
    /// The place of its `__wakeup` method object, made each time it
    /// awaits a future and kept by that future's callbacks, then by the
    /// handle that runs it.
    pub wake_key: u32,
}

impl Task {
    pub fn new(fut: FutId, func: NodeId, create_ev: u32) -> Task {
        Task {
            fut,
            func,
            create_ev,
            frames: Vec::new(),
            started: false,
            fut_waiter: None,
            must_cancel: false,
            num_cancels: 0,
            log_destroy_pending: true,
            floor: 0,
            destroyed: false,
            freed: false,
            done_fin: None,
            done_cancelling: 0,
            closing: false,
            coro_finalized: false,
            coro_key: None,
            wake_key: 0,
        }
    }
}

/// A function's places in the collector's list, and its frame's
/// `f_back`: each NONE until set. An unset record is all ones, so a reset
/// fills the table with one `memset`.
#[derive(Clone, Copy, Debug)]
pub struct FnKeys {
    /// Its cells' place, made with its coroutine (`MAKE_CELL` runs before
    /// `RETURN_GENERATOR`).
    pub cells: u32,
    /// Its coroutine's place, when another coroutine awaits it, once a
    /// collection moved it (before, its cells' place).
    pub aw: u32,
    /// Where its frame object joined the collector's list, when the frame
    /// finished (CPython tracks a frame object only once it takes over its
    /// finished frame).
    pub frame: u32,
    /// The program function whose frame a finished, kept frame of it took
    /// as `f_back` (3.12+): the one that awaited it, or, for an eager
    /// task's coroutine, the one that created the task.
    pub caller: NodeId,
}

impl FnKeys {
    pub const UNSET: FnKeys = FnKeys {
        cells: super::coro::NONE,
        aw: super::coro::NONE,
        frame: super::coro::NONE,
        caller: super::coro::NONE,
    };
}

/// An eager first step in progress, and what the frames between it and
/// its creator hold: the task (`create_task`'s local `task`), the
/// creating program function, the task that was current, and the gather
/// whose `gather()` frame (locals `children`, `outer`) made the task.
#[derive(Clone, Copy, Debug)]
pub struct EagerStart {
    pub task: u32,
    /// False once `Task()` raised: the local `task` was never assigned.
    pub task_held: bool,
    pub parent_fn: Option<NodeId>,
    pub prev: Option<u32>,
    pub gather: Option<u32>,
}

/// A program's static analysis: which function each statement runs in,
/// where each name lives, each frame's slots in `localsplus` order, and the
/// names of the tasks and futures it makes.
/// CPython's `compile()` does the same work (symbol table, frame layout),
/// so a benchmark that compiles Python before timing it makes this first.
/// Its scopes are boxed, so that a run swaps them in and out by pointer
/// (the frame layouts are small, and the collector's hot paths read them
/// in place).
#[derive(Default)]
pub struct Analysis {
    sc: Box<Scopes>,
    gcx: super::gc::GcCache,
}

pub struct Machine {
    pub profile: Profile,
    /// The next run uses the `Analysis` swapped in, not one of its own
    /// (`run` consumes it first thing, so no later run can inherit it).
    pub(super) analysed: bool,
    pub(super) prog: *const Program,
    pub sc: Box<Scopes>,
    pub excs: Excs,
    pub futs: Vec<Fut>,
    pub tasks: Vec<Task>,
    pub lp: EventLoop<Hcb>,
    pub slots: Vec<Option<Obj>>,
    /// Values of frames' pending completions.
    pub vals: Vec<V>,
    /// The items of every list value made in this run (see `V::List`).
    pub lists: Vec<V>,
    pub events: Vec<Event>,
    /// Emptied strings and lists of traces given back, for values.
    pub(super) pool: std::cell::RefCell<super::value::ValuePool>,
    /// The task table's list, given back with a trace (`recycle`).
    pub(super) finals: Vec<crate::trace::TaskFinal>,
    pub current: Option<u32>,
    pub running: bool,
    pub eager_depth: u32,
    pub recursed: bool,
    pub escaped: Option<ExcId>,
    pub gathers: Vec<super::comb::Gather>,
    pub tgs: Vec<super::comb::TaskGroup>,
    pub timeouts: Vec<super::comb::Timeout>,
    pub waits: Vec<super::comb::Wait>,
    pub acs: Vec<super::comb::AsCompleted>,
    /// The background set of `spawn :keep`, in insertion order.
    pub bg: Vec<FutId>,
    /// What the policy's event loop holds: tasks that code running with
    /// no loop running made on it (`comb.rs::policy_task`), and their
    /// coroutines. That loop never runs, so they stay pending and alive.
    pub policy_loop: Vec<super::graph::N>,
    /// Functions whose frames have finished (their locals are gone).
    pub fn_done: Vec<bool>,
    /// Per function, its collector-list places: one table for four, so a
    /// reset fills one.
    pub fns: Vec<FnKeys>,
    /// Per slot: a cell's own place once a collection moved it.
    pub cell_key: Vec<u32>,
    /// Functions whose frame something may keep (a traceback, or a kept
    /// frame's `f_back`): the others' frame nodes are referenced by nothing.
    pub frame_kept: Vec<bool>,
    /// For an eager task's coroutine function that finished inside its
    /// eager first step: the start whose `f_back` chain (the factory's
    /// `task`, `gather()`'s locals) its frame keeps.
    pub frame_back: Vec<Option<EagerStart>>,
    /// The gather whose `gather()` call is creating a child right now: set
    /// around each child's `ensure_future`, taken by the eager start it
    /// causes (so a task the child spawns in turn does not see it).
    pub creating_gather: Option<u32>,
    /// The handle `_run_once` is running, NONE between handles: its
    /// number, one store per handle, where its callback took three
    /// (`Machine::running_handle` reads the callback).
    pub running_h: super::eventloop::HId,
    /// The `main_task` of the runtime's `_drive`, while it holds it.
    pub main_ref: Option<FutId>,
    /// `cancel`'s explicit stack and current path, kept between calls.
    pub cancel_bufs: (Vec<super::fut::CancelAct>, Vec<FutId>),
    /// The empty message, shared: an `Rc<str>` of "" allocates too.
    pub empty_msg: Rc<str>,
    /// `gcorder.rs`'s buffers.
    pub gc_scan: super::gcorder::Scan,
    /// The list position of a coroutine made before its task (a gather's
    /// argument), for the task created next.
    pub made_coro_key: Option<u32>,
    /// The shutdown's task list, while it holds it.
    pub shutdown_refs: Vec<FutId>,
    /// The collector-list place of that list (`gcorder.rs`), made when
    /// the shutdown began.
    pub shutdown_key: u32,
    /// The collector-list place of `_current_tasks`, the dict `enter_task`
    /// puts the running task in; NONE while untracked. The worker's full
    /// collection before each case finds it empty and untracks it, and the
    /// first step tracks it again, at the list's end. No `(gc)` finds it
    /// empty: each runs in some task's step.
    pub cur_tasks_key: u32,
    /// Exceptions of the main run whose tracebacks hold `_drive`'s frame:
    /// the one that left the main run into it (main's, re-raised by
    /// `result()`, or an escaped KeyboardInterrupt), and those whose frames
    /// reach it through `f_back` (`traceback.rs::tb_handle_frames`). The
    /// frame keeps its locals as they are when `_drive` returns, so their
    /// shutdown loop variable `t`, assigned later.
    pub drive_excs: Vec<ExcId>,
    /// Exceptions whose tracebacks keep this loop iteration's `_run_once`
    /// frame (`tb_handle_frames`). If a KeyboardInterrupt then leaves the
    /// iteration, that frame keeps its local `handle`, the handle that
    /// raised it, where a normal iteration's end sets it to None.
    pub run_once_kept: Vec<ExcId>,
    pub inject: Vec<Injection>,
    /// 3.11 wait_for frames' phase: (task, fut) -> (phase, caught exc, waiter 2).
    pub wf11: std::collections::HashMap<(u32, FutId), (u8, ExcId, FutId)>,
    /// Exceptions that leave a running function without adding its frame
    /// to their traceback, with that function. A re-raise (a bare `raise`,
    /// the end of a `finally`) adds no entry; the frame's own entry, made
    /// where the exception first reached it, is gone when the traceback
    /// was replaced since (`fut.rs::result`), or it never had one (a group
    /// `except*` wrapped a naked exception in, `star.rs::star_made`). A
    /// new entry for the pair (`tb_ref`) takes it off.
    pub tb_no_entry: Vec<(ExcId, NodeId)>,
    /// Tracebacks: the functions each exception passed through.
    pub tbs: Vec<Vec<super::gc::TbRef>>,
    /// Where each exception's traceback head sits in the collector's list:
    /// the allocation clock at its latest entry (NONE before any).
    pub tb_keys: Vec<u32>,
    /// Exceptions propagating right now (they keep their tracebacks).
    pub inflight: Vec<ExcId>,
    /// Traceback entries held apart from their exception: 3.11's
    /// `task_wakeup` fetches a `_GatheringFuture`'s error with its
    /// traceback and holds that until the step returns (`task.rs::wakeup`).
    pub held_tb: Vec<super::gc::TbRef>,
    /// A collection in progress: (deallocated, finalized) per graph node.
    pub gcs: Option<super::collect::Collection>,
    /// The future `run_until_complete` is running for.
    pub until: Option<FutId>,
    /// Scratch bitmap of `cancel`'s current path.
    pub on_path: Vec<bool>,
    /// Reused buffers of the reachability check.
    pub gc_mark: Vec<bool>,
    pub gc_stack: Vec<super::graph::N>,
    pub gc_buf: Vec<super::graph::N>,
    pub gcx: super::gc::GcCache,
    pub gc_frees: super::dealloc::Frees,
    /// Reused buffers of collections: a spare (gone, finalized) pair, the
    /// finalization order, and `cascade`'s in-degrees and zero-heap.
    pub gc_spare: (Vec<bool>, Vec<bool>),
    pub gc_order: Vec<super::graph::N>,
    /// A collection's awaited coroutines to finalize: (place, task, function).
    pub gc_aws: Vec<(u32, u32, NodeId)>,
    pub gc_order_futs: Vec<u32>,
    /// `free_garbage`'s buffer for the objects a deallocation starts
    /// from (graph indices), each with the place in the order where its
    /// turn comes.
    pub gc_dealloc_roots: Vec<(u32, u32)>,
    /// Of those, the ones whose turn has not come yet, innermost
    /// deallocation last: roots meanwhile (`reach.rs`).
    pub held_by_freer: Vec<super::graph::N>,
    /// Coroutines a close left suspended that `wait_for`'s frame still
    /// holds in its local `fut` (`finalize.rs::close_levels`): the task
    /// and their frames, roots until closed again.
    pub aw_held: Vec<(u32, Vec<super::coro::Frame>)>,
    pub gc_indeg: Vec<u32>,
    /// The cascade's buffers (`collect.rs`).
    pub gc_cascade: super::collect::CascadeBufs,
    /// Emptied frame stacks of earlier runs, for reuse.
    pub spare_frames: Vec<Vec<Frame>>,
    /// Emptied traceback lists (futures' `exc_tb`, replaced tracebacks).
    pub spare_tbs: Vec<Vec<super::gc::TbRef>>,
    /// Gathers of earlier runs, their lists emptied, for reuse.
    pub spare_gathers: Vec<super::comb::Gather>,
    /// Emptied argument lists of gathers, for `awaitables` to fill.
    pub spare_args: Vec<Vec<Result<FutId, NodeId>>>,
    /// Task groups and as_completed iterators of earlier runs, their
    /// lists emptied, and emptied lists of waits' futures, for reuse.
    pub spare_tgs: Vec<super::comb::TaskGroup>,
    pub spare_acs: Vec<super::comb::AsCompleted>,
    pub spare_futs: Vec<Vec<FutId>>,
    /// Tasks in the middle of a step (the running one and eager parents).
    pub stepping: super::task::Stepping,
    /// Tasks in their eager first step, with the creating function.
    pub eager_stack: Vec<EagerStart>,
    /// Gathers whose `gather()` call is still creating children: its frame
    /// holds those made so far while an eager one runs its first step.
    pub gathering: Vec<u32>,
    /// The futures that have had an exception set, in that order (so
    /// "never retrieved" may come from these only): the checks that ask
    /// whether one could report look at these, not at every future.
    pub failed: Vec<super::fut::FutId>,
    /// An `except` clause just finished: the exception it handled is let
    /// go (`POP_EXCEPT`), and refcounting may free what only it held.
    pub handler_done: bool,
    /// A collection is running (its finalizers too): what dies meanwhile
    /// is its business (`collect.rs::cascade`), not refcounting's.
    pub collecting: bool,
    /// How many tasks' coroutines are being closed (`Task::closing`):
    /// the walks look for them only when there are some.
    pub closing_n: u32,
    /// Refcounting is working out what it frees (`dealloc.rs`): a kept
    /// frame object of a function still running counts as holding its
    /// locals, which it takes over if that coroutine is closed now.
    pub(super) planning_frees: bool,
    /// The last `held_near_roots` that found every candidate found the
    /// last of them among `main`'s locals: the next looks there first.
    pub(super) near_main: std::cell::Cell<bool>,
    /// The main task's name, made once per machine.
    pub main_name: crate::trace::Name,
    /// `except*` state per (try node, task).
    pub star: std::collections::HashMap<(NodeId, u32), super::star::StarState>,
    pub star_at: std::collections::HashMap<(NodeId, u32), NodeId>,
}

/// How many emptied lists of each kind a machine keeps for reuse, and
/// the largest it keeps: so that one huge program does not pin its memory
/// for good.
pub(super) const SPARE_MAX: usize = 4096;
pub(super) const SPARE_CAPACITY: usize = 64;

/// Takes `list`'s buffer, emptied, into `spare` for reuse, if the bounds
/// allow; otherwise leaves `list` as it is.
#[inline]
pub fn keep_spare<T>(spare: &mut Vec<Vec<T>>, list: &mut Vec<T>) {
    if spare.len() < SPARE_MAX && list.capacity() <= SPARE_CAPACITY {
        let mut kept = std::mem::take(list);
        kept.clear();
        spare.push(kept);
    }
}

/// Pushes `$value` onto the list `$list`, built in the list's own memory,
/// and gives its index. `push` builds a value aside and, for one too big
/// for registers (a future, a task, an event), copies it in with a call to
/// `memcpy`; these are made often enough for that to show. A macro, not a
/// function taking a closure: with the closure, LTO stopped inlining `ev`
/// (+400 instructions per small program).
macro_rules! push_in_place {
    ($list:expr, $value:expr) => {{
        let list = &mut $list;
        list.reserve(1);
        let n = list.len();
        list.spare_capacity_mut()[0].write($value);
        // SAFETY: the element at `n`, within capacity, was just written.
        unsafe { list.set_len(n + 1) };
        n
    }};
}
pub(super) use push_in_place;

impl Machine {
    /// Function `func`'s frame finished: its locals are gone, and a frame
    /// object something keeps joins the collector's list now.
    pub fn fn_finished(&mut self, func: crate::ast::NodeId) {
        self.fn_done[func as usize] = true;
        self.fns[func as usize].frame = self.lp.clock.get();
    }

    pub fn new(profile: Profile) -> Machine {
        let lp = EventLoop::default();
        let mut excs = Excs::default();
        excs.clock = lp.clock.clone();
        Machine {
            profile,
            analysed: false,
            prog: std::ptr::null(),
            sc: Default::default(),
            excs,
            futs: Vec::new(),
            tasks: Vec::new(),
            lp,
            slots: Vec::new(),
            vals: Vec::new(),
            lists: Vec::new(),
            events: Vec::new(),
            finals: Vec::new(),
            pool: Default::default(),
            current: None,
            running: false,
            eager_depth: 0,
            recursed: false,
            escaped: None,
            run_once_kept: Vec::new(),
            gathers: Vec::new(),
            tgs: Vec::new(),
            timeouts: Vec::new(),
            waits: Vec::new(),
            acs: Vec::new(),
            bg: Vec::new(),
            policy_loop: Vec::new(),
            fn_done: Vec::new(),
            fns: Vec::new(),
            cell_key: Vec::new(),
            frame_kept: Vec::new(),
            frame_back: Vec::new(),
            creating_gather: None,
            running_h: super::coro::NONE,
            main_ref: None,
            shutdown_refs: Vec::new(),
            shutdown_key: 0,
            cur_tasks_key: super::coro::NONE,
            drive_excs: Vec::new(),
            made_coro_key: None,
            gc_scan: Default::default(),
            empty_msg: Rc::from(""),
            cancel_bufs: (Vec::new(), Vec::new()),
            inject: Vec::new(),
            wf11: Default::default(),
            tb_no_entry: Vec::new(),
            tbs: Vec::new(),
            tb_keys: Vec::new(),
            inflight: Vec::new(),
            held_tb: Vec::new(),
            gcs: None,
            until: None,
            on_path: Vec::new(),
            gc_mark: Vec::new(),
            gc_stack: Vec::new(),
            gc_buf: Vec::new(),
            gcx: Default::default(),
            gc_frees: Default::default(),
            gc_spare: Default::default(),
            gc_order: Vec::new(),
            gc_aws: Vec::new(),
            gc_dealloc_roots: Vec::new(),
            held_by_freer: Vec::new(),
            aw_held: Vec::new(),
            gc_order_futs: Vec::new(),
            gc_indeg: Vec::new(),
            gc_cascade: Default::default(),
            spare_frames: Vec::new(),
            spare_tbs: Vec::new(),
            spare_gathers: Vec::new(),
            spare_args: Vec::new(),
            spare_tgs: Vec::new(),
            spare_acs: Vec::new(),
            spare_futs: Vec::new(),
            stepping: Default::default(),
            eager_stack: Vec::new(),
            gathering: Vec::new(),
            failed: Vec::new(),
            collecting: false,
            closing_n: 0,
            planning_frees: false,
            near_main: std::cell::Cell::new(false),
            handler_done: false,
            main_name: "main".into(),
            star: Default::default(),
            star_at: Default::default(),
        }
    }

    /// The program being run. Valid only during `run`.
    pub fn p<'b>(&self) -> &'b Program {
        // SAFETY: `prog` points at the program passed to `run`, which
        // outlives every call made while `run` executes; it is reset after.
        unsafe { &*self.prog }
    }
}

impl Machine {
    /// Makes `p`'s analysis, complete (a run made with it never redoes any).
    pub fn analyse(&mut self, p: &Program) -> Analysis {
        self.prog = p as *const Program;
        self.sc.compute(p);
        self.gcx.invalidate();
        if !p.is_empty() {
            self.gc_prepare();
            self.sc.make_names(p);
        }
        self.prog = std::ptr::null();
        let mut sc = std::mem::take(&mut self.sc);
        sc.give_scratch(&mut self.sc);
        Analysis {
            sc,
            gcx: std::mem::take(&mut self.gcx),
        }
    }

    /// Runs `p` with the analysis `a` made of it by `analyse`, which stays
    /// valid for `p` afterwards. Never inlined, so that a profiler can
    /// count the benchmark's timed part alone (`--toggle-collect`).
    #[inline(never)]
    pub fn run_analysed(
        &mut self,
        p: &Program,
        a: &mut Analysis,
        inject: &[Injection],
    ) -> crate::trace::Trace {
        self.swap_analysis(a);
        self.analysed = true;
        let trace = self.run(p, inject);
        self.swap_analysis(a);
        trace
    }

    /// Exchanges the machine's analysis with `a`. Out of line: inlined
    /// around the run, the swaps kept the machine's 128 bytes of `GcCache`
    /// in registers, spilled across `run` (133 instructions a run in
    /// `run_analysed`, against 101). Boxing the `GcCache` instead costs
    /// more in the collector's reads than the swap (medium programs).
    #[inline(never)]
    fn swap_analysis(&mut self, a: &mut Analysis) {
        std::mem::swap(&mut self.sc, &mut a.sc);
        std::mem::swap(&mut self.gcx, &mut a.gcx);
    }
}
