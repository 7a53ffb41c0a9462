//! What each frame does with a signal: one step of the top frame, the
//! start of a statement (handed to the frame or combinator that runs it),
//! pygen's `with N(k):` exit that reports its end, and try/except/finally.

use super::coro::{Act, Comp, Frame, Sig, TryPh};
use super::exc::Cls;
use super::fut::{FutId, I64, V};
use super::machine::Machine;
use super::scope::{Class, Step};
use crate::ast::{Kind, NodeId};
use crate::trace::{Res, Value, What};

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

/// How a body's step runs a statement of kind `k` (`scope::Step`): a
/// return, what `simple` runs, or what `dispatch` starts. The match names
/// every kind, so a new one must say which it is.
pub(super) fn class(k: &Kind) -> Class {
    match k {
        Kind::Return(_) => Class::Return,
        Kind::Block(_)
        | Kind::Raise(..)
        | Kind::Reraise
        | Kind::Future(_)
        | Kind::Resolve(..)
        | Kind::Fail(..)
        | Kind::Gc
        | Kind::Forget(_)
        | Kind::Cancel(..)
        | Kind::CancelSelf(_)
        | Kind::Uncancel(_)
        | Kind::Cancelling(_)
        | Kind::Done(_)
        | Kind::Cancelled(_)
        | Kind::Spawn(..)
        | Kind::Let(_)
        | Kind::CallSoon
        | Kind::CallLater(_) => Class::Simple,
        Kind::Sleep(_)
        | Kind::Await(_)
        | Kind::Do
        | Kind::Try
        | Kind::Except(_)
        | Kind::Finally
        | Kind::Gather { .. }
        | Kind::Shield
        | Kind::WaitFor(_)
        | Kind::Timeout(_)
        | Kind::TaskGroup(_)
        | Kind::Wait { .. }
        | Kind::AsCompleted { .. } => Class::Suspends,
        // Not statements: the program's root and gather's arguments.
        Kind::Main | Kind::Ref(_) => Class::Suspends,
    }
}

/// Whether drive's `frame_done` has anything to do for `f`: it is a
/// coroutine (`coro::level_kind`) or a timeout block. One test of the
/// kind, for the hot path; it must cover every frame `level_kind` calls
/// a coroutine.
pub(super) fn finishes_with_work(f: &Frame) -> bool {
    matches!(
        f,
        Frame::Level { .. }
            | Frame::Sleep { .. }
            | Frame::Yield0
            | Frame::Comb { .. }
            | Frame::Timeout { .. }
    )
}

impl Machine {
    /// One step of the top frame. Out of line: inlined into drive's loop,
    /// the indexing sites of the frames it reaches (timeouts, groups,
    /// combinators) each kept a panic location that drive's prologue
    /// loaded into a stack slot on every call, 14 of them.
    #[inline(never)]
    pub(super) fn frame(&mut self, t: u32, fr: &mut Frame, sig: Sig) -> Act {
        match *fr {
            Frame::Level { .. } | Frame::Body { .. } => unreachable!("drive runs a body's step"),
            Frame::Await { fut } => match sig {
                Sig::Start if self.done(fut) => Act::Pop(self.await_result(t, fut)),
                Sig::Start => Act::Yield(Some(fut)),
                sig => Act::Pop(self.leaf_step(t, *fr, sig)),
            },
            Frame::Yield0 => match sig {
                Sig::Start => Act::Yield(None),
                sig => Act::Pop(self.leaf_step(t, *fr, sig)),
            },
            Frame::Sleep { fut, .. } => match sig {
                Sig::Start => Act::Yield(Some(fut)),
                sig => Act::Pop(self.leaf_step(t, *fr, sig)),
            },
            Frame::Try { node, ph } => self.try_frame(t, fr, node, ph, sig),
            Frame::Timeout { .. } => self.timeout_frame(t, fr, sig),
            Frame::Tg { .. } => self.tg_frame(t, fr, sig),
            Frame::Comb { .. } => self.comb_frame(t, fr, sig),
        }
    }

    /// A leaf frame (an await, a sleep, a bare yield: what a coroutine
    /// suspends in) resumed with `sig`, a send or a throw: it finishes
    /// with what it returns.
    #[inline(always)]
    pub(super) fn leaf_step(&mut self, t: u32, fr: Frame, sig: Sig) -> Comp {
        match (fr, sig) {
            (Frame::Await { fut }, Sig::Send) => self.await_result(t, fut),
            (Frame::Yield0, Sig::Send) => Comp::Norm(V::None),
            (Frame::Sleep { fut, timer }, Sig::Send) => {
                self.lp.cancel(timer);
                match self.result(fut) {
                    Ok(v) => Comp::Norm(v),
                    Err(e) => {
                        self.raise_here(Some(t), e);
                        Comp::Raise(e)
                    }
                }
            }
            (Frame::Sleep { timer, .. }, Sig::Throw(e)) => {
                self.lp.cancel(timer);
                Comp::Raise(e)
            }
            (Frame::Await { .. } | Frame::Yield0, Sig::Throw(e)) => Comp::Raise(e),
            _ => unreachable!("a leaf frame resumed with a send or a throw"),
        }
    }

    /// Resumes the leaf frame (an await, a sleep, a bare yield) that task
    /// `t`'s coroutine suspended in with a send or a throw, and takes it
    /// off: what it finished with, for the frame below. Inlined into
    /// run_coro ahead of drive's loop: as drive's first step it was a
    /// `frame` call and a loop turn on every resume; as a call of its own
    /// it cost as much as those.
    #[inline(always)]
    pub(super) fn resume_leaf(&mut self, t: u32, sig: Sig, throwing: bool) -> Sig {
        let n = self.frames_of(t).len();
        let top = *self
            .frames_of(t)
            .last()
            .unwrap_or_else(|| super::coro::no_frame());
        let c = self.leaf_step(t, top, sig);
        self.frames_of(t).pop();
        if finishes_with_work(&top) {
            self.frame_done(t, top, n, throwing, &c);
        }
        Sig::Child(c)
    }

    /// The frame of a call of `func`, about to start its body.
    pub(super) fn level(&self, func: NodeId) -> Frame {
        let p = self.p();
        let n = p.len() as NodeId;
        let (next, end) = if func >= n {
            // A wrapped awaitable: a body of one statement.
            (func - n, p.end(func - n))
        } else {
            (func + 1, p.end(func))
        };
        Frame::Level { func, next, end }
    }

    /// A function's body finished with `c`: what the function returns.
    #[inline(always)]
    pub(super) fn level_step(&mut self, func: NodeId, c: Comp) -> Comp {
        self.fn_finished(func);
        match c {
            Comp::Norm(_) => Comp::Norm(V::None),
            Comp::Ret(v) => Comp::Norm(v),
            Comp::Raise(e) => Comp::Raise(e),
        }
    }

    /// A body's step (a function's too): runs statements until one may
    /// suspend, which it starts, or the body ends. It writes itself to
    /// the stack, whose top it is, before the statement starts: what the
    /// statement does may look at the stack. Inlined into drive, its
    /// hot caller, and `start_body`: a call of its own saved and
    /// restored registers on most steps. `nested` in `start_body`, whose
    /// body starts no other block's body: its step would call itself as
    /// deep as the blocks nest.
    #[inline(always)]
    pub(super) fn body(&mut self, t: u32, fr: &mut Frame, sig: Sig, nested: bool) -> Act {
        let (Frame::Body { next, end } | Frame::Level { next, end, .. }) = *fr else {
            unreachable!("a body's step")
        };
        let mut n = match sig {
            Sig::Start => next,
            // The statement running finished: its end event.
            Sig::Child(c) => {
                let s = self.stmt_step(next);
                match self.end_stmt(next, s, c) {
                    None => s.end,
                    Some(c) => return Act::Pop(c),
                }
            }
            _ => unreachable!("a body never receives send/throw"),
        };
        loop {
            if n >= end {
                return Act::Pop(Comp::Norm(V::None));
            }
            let s = self.stmt_step(n);
            if s.class == Class::Suspends {
                break;
            }
            match self.run_through(t, n, s) {
                None => n = s.end,
                Some(c) => return Act::Pop(c),
            }
        }
        // On the stack before the statement starts, whatever
        // looks at the stack meanwhile. The stack's top is this frame as
        // it came in: only a statement further on is news to it.
        if n != next {
            if let Frame::Body { next, .. } | Frame::Level { next, .. } = fr {
                *next = n;
            }
            if let Some(top) = self.frames_of(t).last_mut() {
                *top = *fr;
            }
        } else {
            debug_assert_eq!(
                self.frames_of(t).last(),
                Some(&*fr),
                "a body's frame on top"
            );
        }
        super::run::ev_in_place!(self, What::Start(n));
        self.dispatch(t, n, nested)
    }

    /// Statement `n`'s entry in the step table. No panic location of its
    /// own: drive's prologue kept each one in a stack slot.
    #[inline(always)]
    fn stmt_step(&self, n: NodeId) -> Step {
        match self.sc.step.get(n as usize) {
            Some(&s) => s,
            None => no_step(),
        }
    }

    /// Pushes the body of statements `next..end` and starts it at once:
    /// the step that pushed it would do nothing else. Not for a clause
    /// after an `except` clause finished (`handler_done`), whose release
    /// comes first, nor for a `try`'s clause, whose body would start
    /// another.
    pub(super) fn start_body(&mut self, t: u32, next: NodeId, end: NodeId) -> Act {
        let mut body = Frame::Body { next, end };
        self.frames_of(t).push(body);
        match self.body(t, &mut body, Sig::Start, true) {
            // Finished at once: it goes, as drive's Pop would take it
            // (a body finishes with no work), and the frame below it
            // gets what it finished with. Drive's Pop then always takes
            // the frame it signalled, with no look at the stack's depth.
            Act::Pop(c) => {
                self.frames_of(t).pop();
                Act::Again(Sig::Child(c))
            }
            act => act,
        }
    }

    /// Block `node` (a try, an `async with`) entered with `act`: the
    /// frame it pushes, then its body, which ends at `end`, started at
    /// once (the frame's first step would do nothing else), unless
    /// entering failed or the step is `nested` (see body).
    fn start_block(&mut self, t: u32, node: NodeId, end: NodeId, act: Act, nested: bool) -> Act {
        match act {
            Act::Push(f) if !nested => {
                self.frames_of(t).push(f);
                self.start_body(t, node + 1, end)
            }
            act => act,
        }
    }

    /// `await fut`: its frame, which yields at once unless `fut` is done.
    pub(super) fn await_fut(&self, fut: FutId) -> Act {
        if self.done(fut) {
            Act::Push(Frame::Await { fut })
        } else {
            Act::Suspend(Frame::Await { fut }, Some(fut))
        }
    }

    /// `await fut` started where task `t`'s stack is as its step left
    /// it (a body's statement, a frame just pushed): a future already
    /// done gives its result in this step, not in a step of the await's
    /// frame, which is on the stack meanwhile as it was there.
    #[inline(always)]
    pub(super) fn await_now(&mut self, t: u32, fut: FutId) -> Act {
        if self.done(fut) {
            self.await_done(t, fut)
        } else {
            Act::Suspend(Frame::Await { fut }, Some(fut))
        }
    }

    /// `await_now`'s future already done. Out of line: inlined, it was
    /// in drive's loop once for every statement that awaits.
    #[inline(never)]
    fn await_done(&mut self, t: u32, fut: FutId) -> Act {
        self.frames_of(t).push(Frame::Await { fut });
        let c = self.await_result(t, fut);
        self.frames_of(t).pop();
        Act::Again(Sig::Child(c))
    }

    fn await_result(&mut self, t: u32, fut: FutId) -> Comp {
        match self.result_freeing(fut) {
            Ok(v) => Comp::Norm(v),
            Err(e) => {
                // Raised by the await in this function: its traceback
                // starts at this frame.
                self.raise_here(Some(t), e);
                self.tb_here(Some(t), e);
                Comp::Raise(e)
            }
        }
    }

    /// The `with N(k)` exit: the end event, then the completion it passes
    /// on, None for the body to go on (a normal end: its value is spent).
    /// Inlined into its two callers, each of which ends with it.
    #[inline(always)]
    fn end_stmt(&mut self, node: NodeId, s: Step, c: Comp) -> Option<Comp> {
        match c {
            Comp::Raise(e) => {
                let x = self.excs.encode(e);
                super::run::ev_in_place!(
                    self,
                    What::End {
                        node,
                        res: Res::Raise(x),
                    }
                );
                Some(Comp::Raise(e))
            }
            Comp::Norm(v) if s.valued => {
                // Each scalar's event is made whole, in the list itself:
                // a `Value` made first was moved byte by byte into the
                // event's packed layout, and an event made aside was
                // copied in by `ev`, a call.
                match v {
                    V::None => super::run::ev_in_place!(
                        self,
                        What::End {
                            node,
                            res: Res::Val(Value::None),
                        }
                    ),
                    V::Bool(b) => super::run::ev_in_place!(
                        self,
                        What::End {
                            node,
                            res: Res::Val(Value::Bool(b)),
                        }
                    ),
                    V::Int(I64(i)) => super::run::ev_in_place!(
                        self,
                        What::End {
                            node,
                            res: Res::Val(Value::Int(i)),
                        }
                    ),
                    _ => self.ev(What::End {
                        node,
                        res: Res::Val(self.value_held(&v)),
                    }),
                }
                if s.tail { Some(Comp::Ret(v)) } else { None }
            }
            c => {
                super::run::ev_in_place!(self, What::End { node, res: Res::Ok });
                match c {
                    Comp::Norm(_) => None,
                    c => Some(c),
                }
            }
        }
    }

    /// Runs statement `node`, one that never suspends (its step `s`),
    /// from its start event to its end event. Inlined into body's loop,
    /// which runs it for most statements; out of line, it was a call each.
    #[inline(always)]
    fn run_through(&mut self, t: u32, node: NodeId, s: Step) -> Option<Comp> {
        super::run::ev_in_place!(self, What::Start(node));
        if s.class == Class::Return
            && let Kind::Return(v) = self.p().kind(node)
        {
            super::run::ev_in_place!(self, What::End { node, res: Res::Ok });
            return Some(Comp::Ret(self.lit(node, v)));
        }
        let c = match self.simple(Some(t), node) {
            Ok(v) => Comp::Norm(v),
            Err(e) => Comp::Raise(e),
        };
        self.end_stmt(node, s, c)
    }

    /// Starts statement `node` in task `t` (its start event is out), one
    /// that may suspend: what it pushes finishes it with a `Child` to the
    /// body running it, as does an `Again(Child)`. Inlined into body,
    /// its one caller, which ends with it (`nested`: see body).
    #[inline(always)]
    fn dispatch(&mut self, t: u32, node: NodeId, nested: bool) -> Act {
        let p = self.p();
        match p.kind(node) {
            Kind::Sleep(d) if d.0 > 0.0 && !self.running => {
                let e = self.raise_new(Some(t), Cls::RUNTIME, "no running event loop");
                Act::Again(Sig::Child(Comp::Raise(e)))
            }
            // 3.12+ `wait_for` with a timeout <= 0 first takes a done
            // future's result, needing no loop (`wait_for_start`).
            Kind::WaitFor(Some(d))
                if !self.running && d.0 <= 0.0 && self.profile.wait_for_via_timeout =>
            {
                self.wait_for_start(t, node)
            }
            Kind::Timeout(_) | Kind::TaskGroup(_) | Kind::Wait { .. } | Kind::WaitFor(_)
                if !self.running =>
            {
                let e = self.raise_new(Some(t), Cls::RUNTIME, "no running event loop");
                Act::Again(Sig::Child(Comp::Raise(e)))
            }
            Kind::Sleep(d) => {
                if d.0 <= 0.0 {
                    Act::Suspend(Frame::Yield0, None)
                } else {
                    let fut = self.new_fut(super::fut::FKind::Plain);
                    let timer = self
                        .lp
                        .call_later(d.0, super::run::Hcb::SetResultUnlessCancelled(fut));
                    Act::Suspend(Frame::Sleep { fut, timer }, Some(fut))
                }
            }
            Kind::Await(_) => match self.read_fut(Some(t), node) {
                Ok(f) => self.await_now(t, f),
                Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
            },
            Kind::Do => Act::Push(self.level(node)),
            Kind::Try => {
                let act = Act::Push(Frame::Try {
                    node,
                    ph: TryPh::Body,
                });
                self.start_block(t, node, self.sc.try_body_end[node as usize], act, nested)
            }
            Kind::Except(_) | Kind::Finally => self.start_body(t, node + 1, p.end(node)),
            Kind::Gather { .. } => match self.gather_new(Some(t), node) {
                Ok(f) => self.await_now(t, f),
                Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
            },
            Kind::Shield => match self.shield_new(Some(t), node) {
                Ok(f) => self.await_now(t, f),
                Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
            },
            Kind::WaitFor(_) => self.wait_for_start(t, node),
            Kind::Timeout(_) => {
                let act = self.timeout_start(t, node);
                self.start_block(t, node, p.end(node), act, nested)
            }
            Kind::TaskGroup(_) => {
                let act = self.tg_start(t, node);
                self.start_block(t, node, p.end(node), act, nested)
            }
            Kind::Wait { .. } => self.wait_start(t, node),
            Kind::AsCompleted { .. } => self.ac_start(t, node),
            k => unreachable!("{k:?} runs through"),
        }
    }

    fn try_frame(&mut self, t: u32, fr: &mut Frame, node: NodeId, ph: TryPh, sig: Sig) -> Act {
        let p = self.p();
        match (ph, sig) {
            // Only for a try a nested step started (see body).
            (TryPh::Body, Sig::Start) => {
                self.start_body(t, node + 1, self.sc.try_body_end[node as usize])
            }
            (TryPh::Body, Sig::Child(Comp::Raise(e))) => {
                // The clauses follow the body, where the analysis found
                // them; `except` and `except*` never mix in one try.
                let end = self.stmt_step(node).end;
                let first = self.sc.try_body_end[node as usize];
                if first < end && matches!(p.kind(first), Kind::Except(k) if k.star) {
                    return self.except_star(t, fr, node, e);
                }
                let cls = self.excs.cls(e);
                let mut c = first;
                while c < end {
                    if let Kind::Except(k) = p.kind(c)
                        && cls.is_a(k.class)
                    {
                        *fr = Frame::Try {
                            node,
                            ph: TryPh::Handler(e),
                        };
                        return Act::Push(clause(p, c));
                    }
                    c = p.end(c);
                }
                self.try_finally(fr, node, Comp::Raise(e))
            }
            (TryPh::Handler(_), Sig::Child(c)) if self.star.contains_key(&(node, t)) => {
                self.star_handler_done(t, fr, node, c)
            }
            (TryPh::Handler(_), Sig::Child(c)) => {
                self.handler_done = true;
                self.try_finally(fr, node, c)
            }
            (TryPh::Body, Sig::Child(c)) => self.try_finally(fr, node, c),
            (TryPh::Finally(pend), Sig::Child(c)) => match c {
                Comp::Norm(_) => Act::Pop(self.load(pend)),
                c => Act::Pop(c),
            },
            _ => unreachable!("try frame got an unexpected signal"),
        }
    }

    /// A body just finished with `c` on top of task `t`'s stack: if the
    /// frame below is a try with no `finally` that would only pass `c`
    /// on (its body finished without an exception, or a plain `except`
    /// clause finished), it goes too, in this step rather than in a step
    /// of its own. Inlined into drive's pop of a frame.
    #[inline(always)]
    pub(super) fn try_passes(&mut self, t: u32, c: &Comp) {
        let Some(&Frame::Try { node, ph }) = self.frames_of(t).last() else {
            return;
        };
        if self.sc.try_finally[node as usize] != super::scope::NONE {
            return;
        }
        match ph {
            TryPh::Body if !matches!(c, Comp::Raise(_)) => {}
            TryPh::Handler(_) if self.star.is_empty() || !self.star.contains_key(&(node, t)) => {
                self.handler_done = true;
            }
            _ => return,
        }
        self.frames_of(t).pop();
    }

    pub fn try_finally(&mut self, fr: &mut Frame, node: NodeId, c: Comp) -> Act {
        let p = self.p();
        let f = self.sc.try_finally[node as usize];
        if f == super::scope::NONE {
            return Act::Pop(c);
        }
        let pend = self.store(c);
        *fr = Frame::Try {
            node,
            ph: TryPh::Finally(pend),
        };
        Act::Push(clause(p, f))
    }
}

#[cold]
#[inline(never)]
fn no_step() -> ! {
    unreachable!("a statement beyond the program")
}

/// The frame that runs a `try`'s clause `c`: a body of that one
/// statement, so that the clause has its start and end events.
pub fn clause(p: &crate::ast::Program, c: NodeId) -> Frame {
    Frame::Body {
        next: c,
        end: p.end(c),
    }
}
