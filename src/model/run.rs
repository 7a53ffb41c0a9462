//! One run: `run_until_complete(main)`, the handle dispatch of each loop
//! iteration, main's outcome, the end of the run in order (its shutdown,
//! `loop.close()` and task table are `ending.rs`), the final collection,
//! and the events they record.

use super::coro::NONE;
use super::eventloop::HId;
use super::fut::{Cb, FutId, V};
use super::machine::Machine;
use crate::ast::{NodeId, Program};
use crate::trace::{Injection, Outcome, Trace, What};
use std::rc::Rc;

/// What a loop handle runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hcb {
    /// `Task.__step(exc)`; `exc` is NO_EXC for none.
    Step(u32, u32),
    /// A done callback with its future.
    FutCb(Cb, FutId),
    /// `futures._set_result_unless_cancelled(fut, None)` (sleep's timer).
    SetResultUnlessCancelled(FutId),
    /// `Timeout._on_timeout`.
    TimeoutFire(u32),
    /// A `call-soon`/`call-later` callback running node's statement.
    User(NodeId),
    /// `_release_waiter(waiter)` as a timer (wait, 3.11 wait_for).
    ReleaseWaiter(FutId),
    /// `as_completed`'s `_on_timeout`.
    AcTimeout(u32),
}

/// `Machine::ev` for an event built at the call, written straight into
/// the list. `ev` takes an event built aside and copies it in, and is a
/// call of its own: the hot events (a task's `create` and `done`, a
/// statement's `start` and plain `end`) use this, which saved about 8
/// instructions an event, and 80 a small program at `start` and `end`.
macro_rules! ev_in_place {
    ($m:expr, $what:expr) => {{
        let (t, it, task) = ($m.lp.now, $m.lp.iteration, $m.current);
        super::machine::push_in_place!(
            $m.events,
            crate::trace::Event {
                t,
                it,
                task,
                what: $what,
            }
        );
    }};
}
pub(super) use ev_in_place;

impl Machine {
    pub fn ev(&mut self, what: What) {
        ev_in_place!(self, what);
    }

    pub fn run(&mut self, p: &Program, inject: &[Injection]) -> Trace {
        let analysed = std::mem::take(&mut self.analysed);
        if p.is_empty() {
            return Trace::failed(Outcome::Crashed("empty program".into()));
        }
        // Runs put off the collector's replays (`reorder_survivors`); the
        // few whose order a later collection reads are made again.
        let trace = self.run_program(p, inject, analysed);
        if !self.gc_scan.owed {
            return trace;
        }
        self.recycle(trace);
        self.gc_scan.forced = true;
        let trace = self.run_program(p, inject, analysed);
        self.gc_scan.forced = false;
        trace
    }

    fn run_program(&mut self, p: &Program, inject: &[Injection], analysed: bool) -> Trace {
        self.gc_scan.skipped = false;
        self.gc_scan.owed = false;
        self.reset(p, inject, analysed);
        let main = self
            .create_task(0, self.main_name.clone())
            .expect("main is created before the loop runs, so not eagerly");
        self.main_ref = Some(main);
        let run = self.run_until_complete(main);
        let drive_exc = match run {
            Ok(()) if self.escaped.is_some() => self.escaped,
            Ok(()) => {
                let x = &self.futs[main as usize];
                match x.state {
                    super::fut::FState::Cancelled => x.cancelled_exc,
                    _ => x.exc,
                }
            }
            Err(()) => None,
        };
        if let Some(e) = drive_exc {
            self.drive_excs.push(e);
        }
        // A KeyboardInterrupt that left the loop passed through
        // run_until_complete's frame (local `future` = main), so its
        // traceback holds main: with main's own, a cycle through main.
        if let (Ok(()), Some(k)) = (run, self.escaped) {
            self.tb_ref(k, super::gc::TbRef::Fut(main));
        }
        let outcome = match run {
            Err(()) => Outcome::Deadlock(self.waiting()),
            Ok(()) if self.escaped.is_some() && !self.done(main) => Outcome::Escaped(
                std::sync::Arc::unwrap_or_clone(self.excs.encode(self.escaped.unwrap())),
            ),
            Ok(()) if self.escaped.is_some() => {
                // A KeyboardInterrupt left run_forever after main finished
                // (main's own, or another task's in the same iteration), so
                // run_until_complete never called `future.result()`: main's
                // exception stays unretrieved.
                Outcome::Main(self.main_fin(main))
            }
            Ok(()) => {
                // run_until_complete's `future.result()` consumes a
                // cancelled main's saved CancelledError; the runtime reports
                // main as recorded at completion.
                if self.futs[main as usize].state == super::fut::FState::Cancelled {
                    self.futs[main as usize].cancelled_exc = None;
                }
                // `result()` re-raises main's exception through
                // run_until_complete, whose frame (local `future` = main)
                // joins its traceback: a cycle through main. So does the
                // CancelledError it consumed, which only a cycle of its
                // own (a TaskGroup's re-raise) keeps.
                if let Some(e) = drive_exc {
                    // It raises the exception with the traceback it was
                    // set with (`future_get_result`), dropping the one it
                    // had since: what only that one held dies at the check
                    // below.
                    if self.futs[main as usize].state == super::fut::FState::Finished {
                        let raised = self.result(main);
                        debug_assert_eq!(raised.err(), Some(e));
                    }
                    self.tb_ref(e, super::gc::TbRef::Fut(main));
                }
                self.futs[main as usize].log_tb = false;
                Outcome::Main(self.main_fin(main))
            }
        };
        self.main_ref = None;
        // A KeyboardInterrupt that left the loop after main finished is
        // caught by the runtime's `_drive`; the shutdown runs as usual.
        self.escaped = None;
        // Whether a refcount death could still matter. Once it cannot,
        // every task is done or freed: no task is left over for the
        // shutdown to run, and nothing below runs program code or sets an
        // exception, so it stays so; only a sweep asks again.
        let mut watch = self.gc_watch_end();
        if watch {
            self.refcount_check(true);
        }
        // With no task left over, the shutdown makes the cyclic garbage
        // reachable for the refcount checks to come, and none will come.
        let forgot = watch;
        if watch {
            self.shutdown();
        }
        // The table reads `cancelling()` live for tasks still alive; only
        // an uncancel() after completion makes that differ from the count
        // recorded at completion, so only then is liveness needed (that
        // rare difference is tested first).
        if self
            .tasks
            .iter()
            .any(|t| t.num_cancels != t.done_cancelling && !t.freed && t.done_fin.is_some())
        {
            if !forgot {
                self.forget_cyclic();
            }
            self.refcount_sweep();
            watch = self.gc_watch_end();
        }
        let tasks = self.finals();
        // loop.close() drops the ready queue and the timers. When both are
        // empty it drops nothing, and the last check saw this same graph.
        let drops = !self.lp.ready.is_empty() || !self.lp.heap.is_empty();
        if drops && watch && self.gc_watch_end() {
            self.loop_close_dropped();
        }
        self.lp.ready.clear();
        self.lp.heap.clear();
        self.lp.closed = true;
        if drops && watch && self.gc_watch_end() {
            self.refcount_check(true);
        }
        self.gc_frees.dropped.clear();
        // `ev_none`, with the event written in place: a call of `ev`
        // cost 15 instructions a run more.
        let cur = self.current.take();
        ev_in_place!(self, What::Phase(std::borrow::Cow::Borrowed("collect")));
        self.current = cur;
        // The program's globals die: the background set lets go of the
        // tasks whose discard callback never ran (refcounting may free
        // them at once), then the final collection runs.
        if !self.bg.is_empty() {
            self.bg.clear();
            if watch && self.gc_watch_end() {
                self.refcount_check(true);
            }
        }
        if watch && self.gc_watch_end() {
            self.final_collect();
        }
        let events = std::mem::take(&mut self.events);
        self.prog = std::ptr::null();
        Trace {
            events,
            outcome,
            tasks,
        }
    }

    /// How main finished, as recorded at completion. Inlined: called out
    /// of line, returning its `Fin` through memory cost 40 instructions a
    /// run, for main's usual scalar result.
    #[inline(always)]
    fn main_fin(&self, main: FutId) -> crate::trace::Fin {
        match &self.tasks[0].done_fin {
            Some(fin) => self.clone_fin(fin),
            None => self.main_fin_late(main),
        }
    }

    /// How main finished, read from its future: it never recorded it.
    #[cold]
    #[inline(never)]
    fn main_fin_late(&self, main: FutId) -> crate::trace::Fin {
        self.fin(main)
    }

    /// The callback of the handle `_run_once` is running, if any.
    pub(super) fn running_handle(&self) -> Option<Hcb> {
        (self.running_h != NONE).then(|| self.lp.handles[self.running_h as usize].cb)
    }

    /// An event outside any task.
    pub fn ev_none(&mut self, what: What) {
        let cur = self.current.take();
        self.ev(what);
        self.current = cur;
    }

    /// `loop.run_until_complete(fut)`: Err on deadlock.
    pub(super) fn run_until_complete(&mut self, f: FutId) -> Result<(), ()> {
        self.until = Some(f);
        self.add_done_callback(f, Cb::RunUntil);
        self.running = true;
        let r = loop {
            if self.escaped.is_some() {
                break Ok(());
            }
            if !self.run_once() {
                break Err(());
            }
            if self.lp.stopping {
                break Ok(());
            }
        };
        self.lp.stopping = false;
        self.running = false;
        self.remove_done_callback(f, Cb::RunUntil);
        r
    }

    /// `_run_once`; false on deadlock.
    fn run_once(&mut self) -> bool {
        self.lp.iteration += 1;
        self.run_once_kept.clear();
        if !self.inject.is_empty() {
            self.run_injections();
        }
        // With no timer and a handle ready, `prepare` waits for nothing
        // (a zero timeout leaves the clock, never -0.0, as it is) and moves
        // no timer: most iterations, spared its checks.
        let waits_for_nothing = self.lp.heap.is_empty() && !self.lp.ready.is_empty();
        if !waits_for_nothing && !self.lp.prepare() {
            return false;
        }
        self.lp.ready.mark();
        while let Some(h) = self.lp.ready.pop_this_iteration() {
            let x = self.lp.handles[h as usize];
            if x.cancelled {
                continue;
            }
            // `_run_once`'s local `handle` keeps the handle, and so its
            // callback and arguments (a woken task's future), while it runs.
            self.running_h = h;
            self.run_handle(h, x.cb);
            // Read back rather than kept: nothing else sets it, and the
            // handle kept in registers across it was spilled to the stack
            // and reloaded for every handle.
            let h = std::mem::replace(&mut self.running_h, NONE);
            if self.gc_watch() {
                // The handle lets go of its `_args`, then its `_callback`
                // (sorted `__slots__`), and so of what they hold in order.
                self.handle_dropped_later(self.lp.handles[h as usize].cb);
                self.refcount_check(false);
                self.gc_frees.clear();
            }
            if self.escaped.is_some() {
                return true;
            }
        }
        true
    }

    /// Exploration's cancels due before this iteration. Out of line: most
    /// runs have none, and inlined, their list's code weighed on every
    /// iteration.
    #[cold]
    #[inline(never)]
    fn run_injections(&mut self) {
        let it = self.lp.iteration;
        if self.inject.iter().any(|i| i.iteration == it) {
            let inj: Vec<Injection> = self
                .inject
                .iter()
                .filter(|i| i.iteration == it)
                .cloned()
                .collect();
            for i in inj {
                self.injected(&i.task, i.msg.as_deref());
            }
        }
    }

    fn injected(&mut self, name: &str, msg: Option<&str>) {
        for i in 0..self.tasks.len() {
            let f = self.tasks[i].fut;
            if &**self.task_name(i as u32) == name && !self.tasks[i].freed && !self.done(f) {
                // The runtime records a cancel that recursed down an await
                // cycle instead of what it returned.
                match self.cancel(f, msg.map(Rc::from)) {
                    Ok(ret) => self.ev(What::Inject {
                        task: i as u32,
                        ret,
                    }),
                    Err(_) => self.ev(What::Phase(
                        ["inject cancel of ", name, " raised RecursionError"]
                            .concat()
                            .into(),
                    )),
                }
            }
        }
    }

    fn run_handle(&mut self, _h: HId, cb: Hcb) {
        // The usual handles, a task's step and its wakeup, come first.
        // The compiler still dispatches through one jump table, but a
        // wakeup no longer goes through a second one in `run_fut_cb`.
        if let Hcb::Step(t, e) = cb {
            if let Some(e) = self.step(t, (e != super::fut::NO_EXC).then_some(e)) {
                self.callback_raised(e);
            }
            return;
        }
        if let Hcb::FutCb(Cb::Wakeup(t), f) = cb {
            if let Some(e) = self.wakeup(t, f) {
                self.callback_raised(e);
            }
            return;
        }
        match cb {
            Hcb::Step(..) => unreachable!("a step is run above"),
            Hcb::FutCb(cb, f) => self.run_fut_cb(cb, f),
            Hcb::SetResultUnlessCancelled(f) => {
                if !self.futs[f as usize].done() {
                    self.set_result(f, V::None);
                }
            }
            Hcb::TimeoutFire(tm) => self.timeout_fire(tm),
            Hcb::User(node) => self.run_user_callback(node),
            Hcb::ReleaseWaiter(w) => {
                if !self.done(w) {
                    self.set_result(w, V::None);
                }
            }
            Hcb::AcTimeout(ac) => self.ac_timeout(ac),
        }
    }

    fn run_fut_cb(&mut self, cb: Cb, f: FutId) {
        match cb {
            Cb::Wakeup(t) => {
                if let Some(e) = self.wakeup(t, f) {
                    self.callback_raised(e);
                }
            }
            Cb::Traced => {}
            Cb::RunUntil => {
                // `_run_until_complete_cb`: reads the exception (so it is
                // retrieved) and, for a KeyboardInterrupt, which already
                // left run_forever, does not stop the loop (bpo-22429). Its
                // handle outlives that run_forever when a KeyboardInterrupt
                // escaped, and runs in the shutdown's loop.
                if self.futs[f as usize].state != super::fut::FState::Cancelled {
                    let e = self.exception(f);
                    if e.is_some_and(|e| super::stmt::is_base_error(self.excs.cls(e))) {
                        return;
                    }
                }
                self.lp.stopping = true;
            }
            Cb::Gather(g) => self.gather_done_cb(g, f),
            Cb::ShieldInner(outer) => self.shield_inner_done(outer, f),
            Cb::ShieldOuter(inner) => self.shield_outer_done(inner, f),
            Cb::BgDiscard => self.bg.retain(|&x| x != f),
            Cb::TgDone(tg) => {
                if let Err(e) = self.tg_on_task_done(tg, f) {
                    self.callback_raised(e);
                }
            }
            Cb::WaitDone(w) => self.wait_on_completion(w, f),
            Cb::Release(w) => {
                if !self.done(w) {
                    self.set_result(w, V::None);
                }
            }
            Cb::AcDone(ac) => self.ac_on_completion(ac, f),
        }
    }

    /// A plain loop callback: runs its statement outside any task.
    fn run_user_callback(&mut self, node: NodeId) {
        let p = self.p();
        let inner = p.children(node).next().expect("callback has a statement");
        let cur = self.current.take();
        self.ev(What::Start(inner));
        let r = self.simple(None, inner);
        match r {
            Ok(v) => {
                let res = if super::frames::valued(p.kind(inner)) {
                    crate::trace::Res::Val(self.value(&v))
                } else {
                    crate::trace::Res::Ok
                };
                self.ev(What::End { node: inner, res });
            }
            Err(e) => {
                let x = self.excs.encode(e);
                self.ev(What::End {
                    node: inner,
                    res: crate::trace::Res::Raise(x.clone()),
                });
                if super::stmt::is_base_error(self.excs.cls(e)) {
                    // `Handle._run` re-raises KeyboardInterrupt: it leaves
                    // the loop.
                    self.escaped = Some(e);
                } else {
                    self.tb_add(e, node);
                    self.callback_raised(e);
                }
            }
        }
        self.fn_finished(node);
        self.current = cur;
    }

    /// An exception (not a KeyboardInterrupt) left a loop callback:
    /// `Handle._run` reports it. Its traceback holds `Handle._run`'s
    /// frame, whose local `context` holds the exception: a cycle
    /// (events.py, 3.11-3.13), and the loop's frames below.
    pub fn callback_raised(&mut self, e: super::exc::ExcId) {
        let x = self.excs.encode(e);
        self.ev(What::Handler {
            msg: "Exception in callback".into(),
            obj: None,
            exc: Some(x),
        });
        self.tb_ref(e, super::gc::TbRef::Exc(e));
        self.tb_handle_frames(e);
    }
}
