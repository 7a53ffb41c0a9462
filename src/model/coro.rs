//! Coroutines as explicit frames. A task's coroutine is a stack of small
//! `Copy` frames: `Level` marks a Python function (a coroutine boundary),
//! `Body` walks a statement list and is pygen's `with N(k):` around the
//! statement it is running, and the rest are the suspended parts of awaits
//! and context managers. `run_coro` drives the stack until the coroutine yields or
//! finishes, with no Rust recursion; what each frame does when signalled
//! is in frames.rs.
//!
//! The exception context a raise chains to, and the traceback entries
//! made as an exception crosses a coroutine's boundary, are context.rs.

use super::eventloop::HId;
use super::exc::{Cls, ExcId};
use super::frames::finishes_with_work;
use super::fut::{FutId, V};
use super::machine::Machine;
use crate::ast::NodeId;

#[derive(Clone, Debug)]
pub enum Comp {
    Norm(V),
    Ret(V),
    Raise(ExcId),
}

pub enum Out {
    Yield(Option<FutId>),
    Done(Comp),
}

/// A completion stored in a frame: values live in `Machine::vals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PC {
    Norm(u32),
    Ret(u32),
    Raise(ExcId),
}

impl Default for PC {
    fn default() -> Self {
        PC::Raise(NONE)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryPh {
    Body,
    Handler(ExcId),
    Finally(PC),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A Python function's activation (`func` is the function node)
    /// and its body, walked as `Body` walks one: a function starts and
    /// ends with one frame, one step. The readers of the stack see a
    /// coroutine boundary here, as they would see a frame of its own.
    /// `next` and `end` come first, where `Body` has them: a body's step
    /// reads and writes them the same way in both, with no branch.
    Level {
        next: NodeId,
        end: NodeId,
        func: NodeId,
    },
    /// The statements from `next` to `end`; once one that may suspend
    /// has started, `next` is that statement until it finishes.
    Body {
        next: NodeId,
        end: NodeId,
    },
    /// `await fut` (Future.__await__).
    Await {
        fut: FutId,
    },
    /// `await __sleep0()`: a bare yield.
    Yield0,
    /// `asyncio.sleep(d > 0)`: its future and timer.
    Sleep {
        fut: FutId,
        timer: HId,
    },
    Try {
        node: NodeId,
        ph: TryPh,
    },
    /// `async with timeout(...)` (also inside 3.12+ `wait_for`): `aw` is
    /// the awaitable node of a wait_for, or NONE for a timeout block.
    /// `__aexit__` finishes in the step that starts it, so the frame
    /// never holds what it handles.
    Timeout {
        tm: u32,
        node: NodeId,
        aw: NodeId,
    },
    /// `async with TaskGroup() as NAME`: phase 1 runs the body, 2 and 3
    /// are `__aexit__`, whose arguments and pending completion the group's
    /// record keeps (`exit_exc`, `pend`), so the frame stays small.
    Tg {
        tg: u32,
        node: NodeId,
        ph: u8,
    },
    /// wait_for's other paths, wait, as_completed: see comb.rs.
    Comb {
        kind: super::comb::CombKind,
        a: u32,
        b: u32,
        c: u32,
    },
}

// Every step copies the top frame: keep it two words.
const _: () = assert!(std::mem::size_of::<Frame>() == 16);

pub const NONE: u32 = u32::MAX;

pub enum Sig {
    Start,
    Child(Comp),
    Send,
    Throw(ExcId),
}

pub enum Act {
    Push(Frame),
    Pop(Comp),
    Yield(Option<FutId>),
    /// Push a frame whose start would only yield what it waits for, and
    /// yield that.
    Suspend(Frame, Option<FutId>),
    /// Replace the top frame's saved state and feed it `Sig` again.
    Again(Sig),
}

impl Machine {
    pub fn store(&mut self, c: Comp) -> PC {
        match c {
            Comp::Norm(v) => {
                self.vals.push(v);
                PC::Norm(self.vals.len() as u32 - 1)
            }
            Comp::Ret(v) => {
                self.vals.push(v);
                PC::Ret(self.vals.len() as u32 - 1)
            }
            Comp::Raise(e) => PC::Raise(e),
        }
    }

    pub fn load(&self, c: PC) -> Comp {
        match c {
            PC::Norm(i) => Comp::Norm(self.vals[i as usize]),
            PC::Ret(i) => Comp::Ret(self.vals[i as usize]),
            PC::Raise(e) => Comp::Raise(e),
        }
    }

    /// The program function task `t` runs in now: its innermost level.
    pub(super) fn innermost_fn(&self, t: u32) -> Option<NodeId> {
        self.task(t).frames.iter().rev().find_map(|f| match *f {
            Frame::Level { func, .. } => Some(func),
            _ => None,
        })
    }

    /// The innermost coroutine frame below depth `below` (0 if none) and
    /// its `level_kind`. One pass over the slice, with no bounds check
    /// per frame: it runs on every throw and every raise out of a frame.
    #[inline]
    pub(super) fn innermost_level(&self, t: u32, below: usize) -> (usize, Option<bool>) {
        let fr = &self.task(t).frames;
        fr[..below.min(fr.len())]
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, f)| level_kind(f).map(|k| (i, Some(k))))
            .unwrap_or((0, None))
    }

    /// Resumes task `t`'s coroutine with `send(None)` or `throw(exc)`.
    pub fn run_coro(&mut self, t: u32, exc: Option<ExcId>) -> Out {
        let mut sig;
        let mut throwing = false;
        // One look at the task for what the first step needs: each
        // `task_mut` after a store to the task checked its index again.
        let task = self.task(t);
        let (started, func) = (task.started, task.func);
        if !started {
            if let Some(e) = exc {
                // throw() into a coroutine that never ran raises at its
                // first line: its frame is in the traceback (checked on
                // 3.11-3.13), and keeps its function and so its closure.
                self.task_mut(t).started = true;
                self.tb_add(e, func);
                self.fn_finished(func);
                return Out::Done(Comp::Raise(e));
            }
            let level = self.level(func);
            let task = self.task_mut(t);
            task.started = true;
            task.floor = 0;
            task.frames.push(level);
            sig = Sig::Start;
        } else if self.task(t).frames.is_empty() {
            // A coroutine already closed (by the collector): send() and
            // throw() alike raise RuntimeError, which replaces the thrown
            // exception, unchained (checked on 3.11.7, 3.12.1, 3.13.0).
            let e = self
                .excs
                .msg(Cls::RUNTIME, "cannot reuse already awaited coroutine");
            return Out::Done(Comp::Raise(e));
        } else if let Some(e) = exc {
            let n = self.task(t).frames.len();
            let (lvl, kind) = self.innermost_level(t, n);
            self.task_mut(t).floor = lvl;
            // `_PyErr_ChainStackItem` in the innermost coroutine: only a
            // program function has handlers; asyncio's own (sleep,
            // wait_for, ...) have none where a throw lands.
            let lf = *self.frames_of(t).get(lvl).unwrap_or_else(|| no_frame());
            if kind == Some(true) {
                let h = self.handled_top(t);
                self.excs.chain(e, h);
            } else if let Some(h) = self.frame_handling(t, &lf) {
                // 3.11 wait_for awaiting `_cancel_and_wait` inside its
                // `except CancelledError:` handler.
                self.excs.chain(e, Some(h));
            }
            self.throw_enters(t, e, lvl, kind);
            throwing = true;
            sig = Sig::Throw(e);
        } else {
            self.task_mut(t).floor = 0;
            sig = Sig::Send;
        }
        // The leaf frame a resumed coroutine suspended in finishes ahead
        // of drive's loop, which starts at the frame below.
        if !matches!(sig, Sig::Start) {
            sig = self.resume_leaf(t, sig, throwing);
        }
        self.drive(t, sig, throwing, 0)
    }

    /// Closing: throws `ge` in and runs until the level at `lvl` has
    /// finished, with what it finished; None if it yielded instead.
    pub fn run_until_level(&mut self, t: u32, lvl: usize, ge: ExcId) -> Option<Comp> {
        let top = *self.tasks[t as usize]
            .frames
            .last()
            .expect("a suspended coroutine has frames");
        // The innermost coroutine was closed already: the exception comes
        // out of the expression that awaited it.
        let sig = match top {
            Frame::Await { .. } | Frame::Sleep { .. } | Frame::Yield0 => Sig::Throw(ge),
            _ => Sig::Child(Comp::Raise(ge)),
        };
        if let Sig::Throw(e) = sig {
            let n = self.task(t).frames.len();
            let (lvl, kind) = self.innermost_level(t, n);
            self.throw_enters(t, e, lvl, kind);
        }
        match self.drive(t, sig, true, lvl) {
            Out::Done(c) => Some(c),
            Out::Yield(_) => None,
        }
    }

    /// Task `t`, the hot loop's way to it and its frames: each indexing
    /// site's panic location was a constant the compiler kept in a stack
    /// slot of its own, stored on every call of drive; `no_frame` holds
    /// the only one.
    #[inline(always)]
    pub(super) fn task_mut(&mut self, t: u32) -> &mut super::machine::Task {
        match self.tasks.get_mut(t as usize) {
            Some(task) => task,
            None => no_frame(),
        }
    }

    #[inline(always)]
    pub(super) fn task(&self, t: u32) -> &super::machine::Task {
        match self.tasks.get(t as usize) {
            Some(task) => task,
            None => no_frame(),
        }
    }

    #[inline(always)]
    pub(super) fn frames_of(&mut self, t: u32) -> &mut Vec<Frame> {
        &mut self.task_mut(t).frames
    }

    /// Runs task `t`'s frames until the stack is `stop` frames deep
    /// (Done: the completion) or the coroutine yields (what it yields).
    /// Inlined into its two callers: a call less on every resume.
    #[inline(always)]
    fn drive(&mut self, t: u32, mut sig: Sig, throwing: bool, stop: usize) -> Out {
        loop {
            if self.handler_done {
                self.handler_done = false;
                self.handler_released(&sig);
            }
            let n = self.frames_of(t).len();
            if n == stop {
                let Sig::Child(c) = sig else {
                    unreachable!("stack emptied without a completion")
                };
                return Out::Done(c);
            }
            let mut top = *self.frames_of(t).get(n - 1).unwrap_or_else(|| no_frame());
            // Most steps are a body's: a direct call, not the frame match.
            // A body writes itself to the stack before it starts a
            // statement, the only way it leaves other than finishing: only
            // the other frames' steps are written back here.
            let body = matches!(top, Frame::Body { .. } | Frame::Level { .. });
            let act = if body {
                self.body(t, &mut top, sig, false)
            } else {
                self.frame(t, &mut top, sig)
            };
            if !body && !matches!(act, Act::Pop(_)) {
                *self
                    .frames_of(t)
                    .get_mut(n - 1)
                    .unwrap_or_else(|| no_frame()) = top;
            }
            match act {
                Act::Push(f) => {
                    if let Frame::Level { func, .. } = f {
                        // An awaited coroutine, made now, and its cells.
                        self.fns[func as usize].cells = self.next_gc_key();
                    }
                    self.frames_of(t).push(f);
                    sig = Sig::Start;
                }
                Act::Pop(c) => {
                    // What finishes: the frame signalled, as its step left
                    // it. A body a step pushed and ran, finished at once,
                    // went in that step (`start_body`).
                    debug_assert_eq!(self.frames_of(t).len(), n, "a step pushed a frame");
                    let c = if let Frame::Level { func, .. } = top {
                        // A function's body ended, and the function with
                        // it: what it returns, then its frame goes.
                        if self.handler_done {
                            self.handler_done = false;
                            self.handler_released(&Sig::Child(c.clone()));
                        }
                        let c = self.level_step(func, c);
                        self.frames_of(t).pop();
                        self.level_done(t, top, true, n, throwing, &c);
                        c
                    } else {
                        self.frames_of(t).pop();
                        if finishes_with_work(&top) {
                            self.frame_done(t, top, n, throwing, &c);
                        } else if n - 1 > stop {
                            self.try_passes(t, &c);
                        }
                        c
                    };
                    sig = Sig::Child(c);
                }
                Act::Yield(f) => return Out::Yield(f),
                Act::Suspend(f, fut) => {
                    self.frames_of(t).push(f);
                    return Out::Yield(fut);
                }
                Act::Again(s) => sig = s,
            }
        }
    }

    /// Frame `top` finished with `c`, the stack `n` frames deep before.
    /// Inlined: LTO left it a call on every pop of a frame not a body's.
    #[inline(always)]
    pub(super) fn frame_done(&mut self, t: u32, top: Frame, n: usize, throwing: bool, c: &Comp) {
        if let Some(user) = level_kind(&top) {
            self.level_done(t, top, user, n, throwing, c);
        }
        // Leaving `async with timeout()` drops the Timeout and so its
        // `_task`: closed by a collection, the task may have had no other
        // referrer and is deallocated right here.
        if matches!(top, Frame::Timeout { .. }) && self.gcs.is_some() {
            // What leaves the block is still held: an error raised by the
            // close (`call_soon` on the closed loop) keeps what its
            // traceback's frames hold.
            let held = self.inflight.len();
            if let Comp::Raise(e) = *c {
                self.inflight.push(e);
            }
            self.cascade_now();
            self.inflight.truncate(held);
        }
    }

    /// A coroutine's frame finished with `c` (`user`: a program
    /// function's), the stack `n` frames deep before: its traceback
    /// entries, the throw's floor, and what its locals held.
    #[inline(always)]
    fn level_done(&mut self, t: u32, top: Frame, user: bool, n: usize, throwing: bool, c: &Comp) {
        if let Frame::Level { func, .. } = top {
            if let Comp::Raise(e) = *c {
                self.raise_through(e, func);
            }
            self.frame_finished(t, func, n == 1);
        }
        // The rarer parts are out of line: inlined, they made drive's
        // register use and LTO's inlining of it unsteady.
        if throwing && n > 1 && n - 1 == self.task(t).floor {
            self.throw_leaves(t, n, c);
        } else if let (Comp::Raise(e), false) = (c, self.frames_of(t).is_empty()) {
            self.raise_into_caller(t, n, *e);
        }
        if (user || !self.task(t).closing) && self.gc_watch() {
            self.level_dropped(top, c);
        }
    }

    /// One of asyncio's coroutines lets go of its locals too (`wait`'s
    /// set of futures): what only they held dies before the caller goes
    /// on. Not while a close runs: whoever closes it is clearing a
    /// frame, whose later locals still hold what they hold.
    #[cold]
    #[inline(never)]
    fn level_dropped(&mut self, top: Frame, c: &Comp) {
        // The frame lets go of its locals in `localsplus` order
        // (`Frees::dropped`).
        if let Frame::Level { func, .. } = top {
            self.frame_locals_dropped(func);
        }
        self.refcount_check_holding(c);
        self.gc_frees.clear();
    }

    /// After an `except` clause, whose frame no longer holds the exception
    /// it handled: refcounting frees what only that exception held (its
    /// traceback's frames), before the statement after the clause or the
    /// `finally` runs. `sig` is what the frames go on with, held meanwhile.
    fn handler_released(&mut self, sig: &Sig) {
        // In a coroutine a collection is closing, the exception may have
        // held the last reference to garbage (a task whose wakeup a
        // closed loop's `call_soon` failed to schedule): deallocated here.
        if self.gcs.is_some() {
            self.cascade_now();
        }
        if !self.gc_watch() {
            return;
        }
        match sig {
            Sig::Child(c) => self.refcount_check_holding(c),
            _ => self.refcount_check(false),
        }
    }
}

#[cold]
#[inline(never)]
pub(super) fn no_frame() -> ! {
    unreachable!("drive's task or frame is missing")
}

/// Whether a frame is a coroutine boundary: `Some(true)` for a program
/// function, `Some(false)` for one of asyncio's coroutines (sleep,
/// wait_for, wait, as_completed), `None` for a frame inside a function.
pub fn level_kind(f: &Frame) -> Option<bool> {
    match *f {
        Frame::Level { .. } => Some(true),
        Frame::Sleep { .. } | Frame::Yield0 | Frame::Comb { .. } => Some(false),
        Frame::Timeout { aw, .. } if aw != NONE => Some(false),
        _ => None,
    }
}
