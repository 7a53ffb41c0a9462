//! Coroutines as explicit frames. A task's coroutine is a stack of small
//! `Copy` frames: `Level` marks a Python function (a coroutine boundary),
//! `Body` walks a statement list, `Stmt` is pygen's `with N(k):` around one
//! statement, and the rest are the suspended parts of awaits and context
//! managers. `run_coro` drives the stack until the coroutine yields or
//! finishes, with no Rust recursion.
//!
//! Exception context: a raise chains to the innermost exception being
//! handled in the frames visible from the raise point. A `throw()` (how a
//! task delivers CancelledError) enters the innermost coroutine first and
//! only links each outer coroutine's handlers as the exception returns to
//! it (`_gen_throw` / `_PyErr_ChainStackItem`), which `Task::floor` tracks.

use super::eventloop::HId;
use super::exc::{Cls, ExcId};
use super::fut::{FutId, V};
use super::run::{Machine, Obj};
use crate::ast::{Kind, NodeId};
use crate::trace::{Res, What};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryPh {
    Body,
    Handler(ExcId),
    Finally(PC),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A Python function's activation (`node` is the function node).
    Level {
        func: NodeId,
    },
    Body {
        next: NodeId,
        end: NodeId,
    },
    Stmt {
        node: NodeId,
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
    Timeout {
        tm: u32,
        node: NodeId,
        aw: NodeId,
        ph: u8,
        exc: ExcId,
    },
    /// `async with TaskGroup() as NAME`.
    Tg {
        tg: u32,
        node: NodeId,
        ph: u8,
        exc: ExcId,
        pend: PC,
    },
    /// wait_for's other paths, wait, as_completed: see comb.rs.
    Comb {
        kind: super::comb::CombKind,
        a: u32,
        b: u32,
        c: u32,
    },
}

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
    /// Replace the top frame's saved state and feed it `Sig` again.
    Again(Sig),
}

/// Statements that end with a value (TRACE.md).
pub fn valued(k: &Kind) -> bool {
    matches!(
        k,
        Kind::Await(_)
            | Kind::Cancel(..)
            | Kind::CancelSelf(_)
            | Kind::Uncancel(_)
            | Kind::Cancelling(_)
            | Kind::Done(_)
            | Kind::Cancelled(_)
            | Kind::Gather { .. }
            | Kind::Shield
            | Kind::WaitFor(_)
            | Kind::Wait { .. }
            | Kind::AsCompleted { .. }
            | Kind::Do
    )
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
            PC::Norm(i) => Comp::Norm(self.vals[i as usize].clone()),
            PC::Ret(i) => Comp::Ret(self.vals[i as usize].clone()),
            PC::Raise(e) => Comp::Raise(e),
        }
    }

    /// The exception being handled where task `t` is now, as a raise sees it.
    pub fn handled_top(&self, t: u32) -> Option<ExcId> {
        let task = &self.tasks[t as usize];
        for f in task.frames[task.floor.min(task.frames.len())..]
            .iter()
            .rev()
        {
            if let Some(e) = self.frame_handling(t, f) {
                return Some(e);
            }
        }
        // An eager first step runs on top of the creating task's frames.
        if task.floor == 0 {
            if let Some(&(_, _, Some(parent))) = self.eager_stack.iter().rev().find(|x| x.0 == t) {
                return self.handled_top(parent);
            }
        }
        None
    }

    fn innermost_level(&self, t: u32, below: usize) -> usize {
        let fr = &self.tasks[t as usize].frames;
        (0..below.min(fr.len()))
            .rev()
            .find(|&i| level_kind(&fr[i]).is_some())
            .unwrap_or(0)
    }

    /// Resumes task `t`'s coroutine with `send(None)` or `throw(exc)`.
    pub fn run_coro(&mut self, t: u32, exc: Option<ExcId>) -> Out {
        let sig;
        let mut throwing = false;
        if !self.tasks[t as usize].started {
            self.tasks[t as usize].started = true;
            let func = self.tasks[t as usize].func;
            if let Some(e) = exc {
                self.fn_done[func as usize] = true;
                return Out::Done(Comp::Raise(e));
            }
            self.tasks[t as usize].floor = 0;
            self.tasks[t as usize].frames.push(Frame::Level { func });
            sig = Sig::Start;
        } else if self.tasks[t as usize].frames.is_empty() {
            // A coroutine already closed (by the collector): throw()
            // re-raises at once, send() cannot resume it.
            let e = match exc {
                Some(e) => e,
                None => self.raise_new(
                    Some(t),
                    Cls::RUNTIME,
                    "cannot reuse already awaited coroutine",
                ),
            };
            return Out::Done(Comp::Raise(e));
        } else if let Some(e) = exc {
            let n = self.tasks[t as usize].frames.len();
            let lvl = self.innermost_level(t, n);
            self.tasks[t as usize].floor = lvl;
            // `_PyErr_ChainStackItem` in the innermost coroutine: only a
            // program function has handlers; asyncio's own (sleep,
            // wait_for, ...) have none where a throw lands.
            let lf = self.tasks[t as usize].frames[lvl];
            if level_kind(&lf) == Some(true) {
                let h = self.handled_top(t);
                self.excs.chain(e, h);
            } else if let Some(h) = self.frame_handling(t, &lf) {
                // 3.11 wait_for awaiting `_cancel_and_wait` inside its
                // `except CancelledError:` handler.
                self.excs.chain(e, Some(h));
            }
            throwing = true;
            sig = Sig::Throw(e);
        } else {
            self.tasks[t as usize].floor = 0;
            sig = Sig::Send;
        }
        match self.drive(t, sig, throwing, 0) {
            Ok(c) => Out::Done(c),
            Err(f) => Out::Yield(f),
        }
    }

    /// Closing: throws `ge` in and runs until the level at `lvl` has
    /// finished; false if the coroutine yielded instead.
    pub fn run_until_level(&mut self, t: u32, lvl: usize, ge: ExcId) -> bool {
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
        self.drive(t, sig, true, lvl).is_ok()
    }

    /// Runs task `t`'s frames until the stack is `stop` frames deep
    /// (Ok: the completion) or the coroutine yields (Err: what it yields).
    fn drive(
        &mut self,
        t: u32,
        mut sig: Sig,
        throwing: bool,
        stop: usize,
    ) -> Result<Comp, Option<FutId>> {
        if let (true, Sig::Throw(e)) = (throwing, &sig) {
            self.tb_here(Some(t), *e);
        }
        loop {
            let n = self.tasks[t as usize].frames.len();
            if n == stop {
                let Sig::Child(c) = sig else {
                    unreachable!("stack emptied without a completion")
                };
                return Ok(c);
            }
            let mut top = self.tasks[t as usize].frames[n - 1];
            let level = level_kind(&top);
            let act = self.frame(t, &mut top, sig);
            self.tasks[t as usize].frames[n - 1] = top;
            match act {
                Act::Push(f) => {
                    self.tasks[t as usize].frames.push(f);
                    sig = Sig::Start;
                }
                Act::Pop(c) => {
                    self.tasks[t as usize].frames.pop();
                    if level.is_some() && n > 1 && n - 1 <= self.tasks[t as usize].frames.len() {
                        let below = self.innermost_level(t, n - 1);
                        let user_below =
                            level_kind(&self.tasks[t as usize].frames[below]) == Some(true);
                        if throwing && n - 1 == self.tasks[t as usize].floor {
                            self.tasks[t as usize].floor = below;
                            if let (Comp::Raise(e), true) = (&c, user_below) {
                                let h = self.handled_top(t);
                                self.excs.chain(*e, h);
                            }
                        }
                    }
                    if level == Some(true) {
                        if let (Comp::Raise(e), false) =
                            (&c, self.tasks[t as usize].frames.is_empty())
                        {
                            let below = self.innermost_level(t, n - 1);
                            if let Frame::Level { func } = self.tasks[t as usize].frames[below] {
                                self.tb_add(*e, func);
                            }
                        }
                        if self.gc_watch() {
                            if let Comp::Raise(e) = c {
                                self.inflight.push(e);
                                self.refcount_check(false);
                                self.inflight.pop();
                            } else {
                                self.refcount_check(false);
                            }
                        }
                    }
                    sig = Sig::Child(c);
                }
                Act::Yield(f) => return Err(f),
                Act::Again(s) => sig = s,
            }
        }
    }

    /// One step of the top frame.
    fn frame(&mut self, t: u32, fr: &mut Frame, sig: Sig) -> Act {
        let p = self.p();
        match *fr {
            Frame::Level { func } => match sig {
                Sig::Start => {
                    let n = p.len() as NodeId;
                    if func >= n {
                        Act::Push(Frame::Stmt { node: func - n })
                    } else {
                        Act::Push(Frame::Body {
                            next: func + 1,
                            end: p.end(func),
                        })
                    }
                }
                Sig::Child(c) => {
                    self.fn_done[func as usize] = true;
                    Act::Pop(match c {
                        Comp::Norm(_) => Comp::Norm(V::None),
                        Comp::Ret(v) => Comp::Norm(v),
                        Comp::Raise(e) => Comp::Raise(e),
                    })
                }
                _ => unreachable!("a level never receives send/throw"),
            },
            Frame::Body { next, end } => match sig {
                Sig::Start | Sig::Child(Comp::Norm(_)) => {
                    let mut n = next;
                    while n < end && matches!(p.kind(n), Kind::Except(_) | Kind::Finally) {
                        n = p.end(n);
                    }
                    if n >= end {
                        return Act::Pop(Comp::Norm(V::None));
                    }
                    *fr = Frame::Body {
                        next: p.end(n),
                        end,
                    };
                    Act::Push(Frame::Stmt { node: n })
                }
                Sig::Child(c) => Act::Pop(c),
                _ => unreachable!(),
            },
            Frame::Stmt { node } => match sig {
                Sig::Start => {
                    self.ev(What::Start(node));
                    self.dispatch(t, node)
                }
                Sig::Child(c) => self.end_stmt(node, c),
                _ => unreachable!(),
            },
            Frame::Await { fut } => match sig {
                Sig::Start => {
                    if self.done(fut) {
                        self.await_result(t, fut)
                    } else {
                        Act::Yield(Some(fut))
                    }
                }
                Sig::Send => self.await_result(t, fut),
                Sig::Throw(e) => Act::Pop(Comp::Raise(e)),
                Sig::Child(_) => unreachable!(),
            },
            Frame::Yield0 => match sig {
                Sig::Start => Act::Yield(None),
                Sig::Send => Act::Pop(Comp::Norm(V::None)),
                Sig::Throw(e) => Act::Pop(Comp::Raise(e)),
                Sig::Child(_) => unreachable!(),
            },
            Frame::Sleep { fut, timer } => match sig {
                Sig::Start => Act::Yield(Some(fut)),
                Sig::Send => {
                    self.lp.cancel(timer);
                    match self.result(fut) {
                        Ok(v) => Act::Pop(Comp::Norm(v)),
                        Err(e) => {
                            self.raise_here(Some(t), e);
                            Act::Pop(Comp::Raise(e))
                        }
                    }
                }
                Sig::Throw(e) => {
                    self.lp.cancel(timer);
                    Act::Pop(Comp::Raise(e))
                }
                Sig::Child(_) => unreachable!(),
            },
            Frame::Try { node, ph } => self.try_frame(t, fr, node, ph, sig),
            Frame::Timeout { .. } => self.timeout_frame(t, fr, sig),
            Frame::Tg { .. } => self.tg_frame(t, fr, sig),
            Frame::Comb { .. } => self.comb_frame(t, fr, sig),
        }
    }

    fn await_result(&mut self, t: u32, fut: FutId) -> Act {
        match self.result(fut) {
            Ok(v) => Act::Pop(Comp::Norm(v)),
            Err(e) => {
                self.raise_here(Some(t), e);
                Act::Pop(Comp::Raise(e))
            }
        }
    }

    /// The `with N(k)` exit: the end event, then the completion it passes on.
    fn end_stmt(&mut self, node: NodeId, c: Comp) -> Act {
        let p = self.p();
        let k = p.kind(node);
        match c {
            Comp::Raise(e) => {
                let x = self.excs.encode(e);
                self.ev(What::End {
                    node,
                    res: Res::Raise(x),
                });
                Act::Pop(Comp::Raise(e))
            }
            Comp::Norm(v) if valued(k) => {
                let res = Res::Val(self.value(&v));
                self.ev(What::End { node, res });
                if self.sc.tail[node as usize] {
                    Act::Pop(Comp::Ret(v))
                } else {
                    Act::Pop(Comp::Norm(v))
                }
            }
            c => {
                self.ev(What::End { node, res: Res::Ok });
                Act::Pop(c)
            }
        }
    }

    /// Starts statement `node` in task `t` (its start event is out).
    fn dispatch(&mut self, t: u32, node: NodeId) -> Act {
        let p = self.p();
        match p.kind(node) {
            Kind::Return(v) => {
                let v = lit(v);
                self.ev(What::End { node, res: Res::Ok });
                Act::Pop(Comp::Ret(v))
            }
            Kind::Sleep(d) if d.0 > 0.0 && !self.running => {
                let e = self.raise_new(Some(t), Cls::RUNTIME, "no running event loop");
                Act::Again(Sig::Child(Comp::Raise(e)))
            }
            Kind::Timeout(_) | Kind::TaskGroup(_) | Kind::Wait { .. } | Kind::WaitFor(_)
                if !self.running =>
            {
                let e = self.raise_new(Some(t), Cls::RUNTIME, "no running event loop");
                Act::Again(Sig::Child(Comp::Raise(e)))
            }
            Kind::Sleep(d) => {
                if d.0 <= 0.0 {
                    Act::Push(Frame::Yield0)
                } else {
                    let fut = self.new_fut(super::fut::FKind::Plain);
                    let timer = self
                        .lp
                        .call_later(d.0, super::run::Hcb::SetResultUnlessCancelled(fut));
                    Act::Push(Frame::Sleep { fut, timer })
                }
            }
            Kind::Await(_) => match self.read_fut(Some(t), node) {
                Ok(f) => Act::Push(Frame::Await { fut: f }),
                Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
            },
            Kind::Do => Act::Push(Frame::Level { func: node }),
            Kind::Try => Act::Push(Frame::Try {
                node,
                ph: TryPh::Body,
            }),
            Kind::Except(_) | Kind::Finally => Act::Push(Frame::Body {
                next: node + 1,
                end: p.end(node),
            }),
            Kind::Gather { .. } => match self.gather_new(Some(t), node) {
                Ok(f) => Act::Push(Frame::Await { fut: f }),
                Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
            },
            Kind::Shield => match self.shield_new(Some(t), node) {
                Ok(f) => Act::Push(Frame::Await { fut: f }),
                Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
            },
            Kind::WaitFor(_) => self.wait_for_start(t, node),
            Kind::Timeout(_) => self.timeout_start(t, node),
            Kind::TaskGroup(_) => self.tg_start(t, node),
            Kind::Wait { .. } => self.wait_start(t, node),
            Kind::AsCompleted { .. } => self.ac_start(t, node),
            _ => {
                let r = self.simple(Some(t), node);
                Act::Again(Sig::Child(match r {
                    Ok(v) => Comp::Norm(v),
                    Err(e) => Comp::Raise(e),
                }))
            }
        }
    }

    fn try_frame(&mut self, t: u32, fr: &mut Frame, node: NodeId, ph: TryPh, sig: Sig) -> Act {
        let p = self.p();
        match (ph, sig) {
            (TryPh::Body, Sig::Start) => Act::Push(Frame::Body {
                next: node + 1,
                end: p.end(node),
            }),
            (TryPh::Body, Sig::Child(Comp::Raise(e))) => {
                let star = p
                    .children(node)
                    .any(|c| matches!(p.kind(c), Kind::Except(k) if k.star));
                if star {
                    return self.except_star(t, fr, node, e);
                }
                let cls = self.excs.cls(e);
                for c in p.children(node) {
                    if let Kind::Except(k) = p.kind(c) {
                        if cls.is_a(k.class) {
                            *fr = Frame::Try {
                                node,
                                ph: TryPh::Handler(e),
                            };
                            return Act::Push(Frame::Stmt { node: c });
                        }
                    }
                }
                self.try_finally(fr, node, Comp::Raise(e))
            }
            (TryPh::Handler(_), Sig::Child(c)) if self.star.contains_key(&(node, t)) => {
                self.star_handler_done(t, fr, node, c)
            }
            (TryPh::Body, Sig::Child(c)) | (TryPh::Handler(_), Sig::Child(c)) => {
                self.try_finally(fr, node, c)
            }
            (TryPh::Finally(pend), Sig::Child(c)) => match c {
                Comp::Norm(_) => Act::Pop(self.load(pend)),
                c => Act::Pop(c),
            },
            _ => unreachable!("try frame got an unexpected signal"),
        }
    }

    pub fn try_finally(&mut self, fr: &mut Frame, node: NodeId, c: Comp) -> Act {
        let p = self.p();
        match p
            .children(node)
            .find(|&c| matches!(p.kind(c), Kind::Finally))
        {
            Some(f) => {
                let pend = self.store(c);
                *fr = Frame::Try {
                    node,
                    ph: TryPh::Finally(pend),
                };
                Act::Push(Frame::Stmt { node: f })
            }
            None => Act::Pop(c),
        }
    }

    /// The program name of a variable slot, for error messages.
    pub(super) fn slot_name(&self, slot: u32) -> String {
        self.sc
            .slot_sym
            .get(slot as usize)
            .map_or_else(|| "?".to_string(), |&s| self.p().name(s).to_string())
    }

    /// Reads the object a name-reading node names.
    pub fn read(&mut self, t: Option<u32>, node: NodeId) -> Result<Obj, ExcId> {
        let slot = self.sc.slot[node as usize];
        if slot != super::scope::NONE {
            if let Some(o) = self.slots[slot as usize] {
                return Ok(o);
            }
        }
        let name = self.slot_name(slot);
        let e = if self.sc.local[node as usize] {
            self.excs.msg(Cls::UnboundLocalError, &unbound_local(&name))
        } else {
            self.excs.msg(
                Cls::NameError,
                &format!("cannot access free variable '{name}' where it is not associated with a value in enclosing scope"),
            )
        };
        self.raise_here(t, e);
        Err(e)
    }

    pub fn read_fut(&mut self, t: Option<u32>, node: NodeId) -> Result<FutId, ExcId> {
        match self.read(t, node)? {
            Obj::Fut(f) => Ok(f),
            Obj::Tg(_) => Err(self.raise_new(
                t,
                Cls::Prog(crate::ast::ExcClass::TypeError),
                "object TaskGroup can't be used in 'await' expression",
            )),
        }
    }
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

impl Machine {
    /// The exception a frame is handling, if any.
    fn frame_handling(&self, t: u32, f: &Frame) -> Option<ExcId> {
        match *f {
            Frame::Try {
                ph: TryPh::Handler(e),
                ..
            } => Some(e),
            Frame::Try {
                ph: TryPh::Finally(PC::Raise(e)),
                ..
            } => Some(e),
            Frame::Timeout { ph: 2, exc, .. } if exc != NONE => Some(exc),
            Frame::Tg { ph, exc, .. } if ph >= 2 && exc != NONE => Some(exc),
            Frame::Comb {
                kind: super::comb::CombKind::WaitFor11,
                a,
                ..
            } => match self.wf11.get(&(t, a)) {
                Some(&(1, ce, _)) if ce != NONE => Some(ce),
                _ => None,
            },
            _ => None,
        }
    }
}

pub fn lit(v: &crate::ast::Value) -> V {
    match v {
        crate::ast::Value::None => V::None,
        crate::ast::Value::Bool(b) => V::Bool(*b),
        crate::ast::Value::Int(i) => V::Int(*i),
        crate::ast::Value::Str(s) => V::Str(std::rc::Rc::from(s.as_str())),
    }
}

/// CPython's message for reading a local before its binding ran.
pub(super) fn unbound_local(name: &str) -> String {
    format!("cannot access local variable '{name}' where it is not associated with a value")
}
