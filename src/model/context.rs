//! Exception context: a raise chains to the innermost exception being
//! handled in the frames visible from the raise point. A `throw()` (how a
//! task delivers CancelledError) enters the innermost coroutine first and
//! only links each outer coroutine's handlers as the exception returns to
//! it (`_gen_throw` / `_PyErr_ChainStackItem`), which `Task::floor` tracks.
//! Also the traceback entries an exception gains as it crosses a
//! coroutine's boundary, which drive's callers and its frame pops make
//! knowing where the boundary is.

use super::coro::{Comp, Frame, NONE, PC, TryPh};
use super::exc::{Cls, ExcId};
use super::machine::Machine;
use crate::ast::NodeId;

impl Machine {
    /// The exception being handled where task `t` is now, as a raise sees it.
    /// Mostly none, found by a scan with no call in it: the frames that
    /// ask further, and an eager step's creator, go out of line.
    pub fn handled_top(&self, t: u32) -> Option<ExcId> {
        let task = &self.tasks[t as usize];
        let floor = task.floor.min(task.frames.len());
        for (i, f) in task.frames[floor..].iter().enumerate().rev() {
            match *f {
                Frame::Try {
                    ph: TryPh::Handler(e) | TryPh::Finally(PC::Raise(e)),
                    ..
                } => return Some(e),
                Frame::Tg { .. } | Frame::Comb { .. } => return self.handled_from(t, floor + i),
                _ => {}
            }
        }
        if task.floor == 0 && !self.eager_stack.is_empty() {
            return self.handled_by_creator(t);
        }
        None
    }

    /// `handled_top` from frame `i` down, which may ask its record.
    #[inline(never)]
    fn handled_from(&self, t: u32, i: usize) -> Option<ExcId> {
        let task = &self.tasks[t as usize];
        for f in task.frames[task.floor.min(task.frames.len())..=i]
            .iter()
            .rev()
        {
            if let Some(e) = self.frame_handling(t, f) {
                return Some(e);
            }
        }
        if task.floor == 0 && !self.eager_stack.is_empty() {
            return self.handled_by_creator(t);
        }
        None
    }

    /// An eager first step runs on top of the creating task's frames.
    #[inline(never)]
    fn handled_by_creator(&self, t: u32) -> Option<ExcId> {
        let parent = self
            .eager_stack
            .iter()
            .rev()
            .find(|x| x.task == t)
            .and_then(|x| x.prev)?;
        self.handled_top(parent)
    }

    /// Raises a new exception of `cls` with `msg` where the task `t` is
    /// (chained to what it is handling).
    pub fn raise_new(&mut self, t: Option<u32>, cls: Cls, msg: &str) -> ExcId {
        let e = self.excs.msg(cls, msg);
        self.raise_here(t, e);
        e
    }

    /// Chains `e` for being raised where task `t` is now.
    pub fn raise_here(&mut self, t: Option<u32>, e: ExcId) {
        let h = t.and_then(|t| self.handled_top(t));
        self.excs.chain(e, h);
    }

    /// The exception a frame is handling, if any.
    pub(super) fn frame_handling(&self, t: u32, f: &Frame) -> Option<ExcId> {
        match *f {
            Frame::Try {
                ph: TryPh::Handler(e),
                ..
            } => Some(e),
            Frame::Try {
                ph: TryPh::Finally(PC::Raise(e)),
                ..
            } => Some(e),
            Frame::Tg { tg, ph, .. } if ph >= 2 => self.tgs[tg as usize].exit_exc,
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

    /// A throw of `e` raises in the innermost coroutine, at depth `lvl`,
    /// whose `level_kind` is `kind`. A program function's is the frame
    /// the traceback starts at, known without another search. If it is
    /// one of asyncio's (wait_for, sleep), the exception starts in its
    /// frame; before 3.12 that frame
    /// keeps no `f_back`, so a program function's frame joins the
    /// traceback only if the exception leaves that coroutine (3.11's
    /// wait_for catches the cancel a timeout throws in). On 3.12+ its
    /// `f_back` is the caller's. Done by drive's callers, which know the
    /// level, rather than on drive's hot entry.
    pub(super) fn throw_enters(&mut self, t: u32, e: ExcId, lvl: usize, kind: Option<bool>) {
        match kind {
            Some(true) => {
                if let Some(&Frame::Level { func, .. }) = self.task(t).frames.get(lvl) {
                    self.tb_add(e, func);
                }
            }
            Some(false) if self.profile.frame_keeps_caller => self.tb_here(Some(t), e),
            _ => {}
        }
    }

    /// An exception leaving function `func` passed through its frame,
    /// unless a re-raise left without it.
    #[inline(never)]
    pub(super) fn raise_through(&mut self, e: ExcId, func: NodeId) {
        match self.tb_no_entry.iter().position(|&x| x == (e, func)) {
            Some(i) => {
                self.tb_no_entry.swap_remove(i);
            }
            None => self.tb_add(e, func),
        }
    }

    /// A throw's exception leaving the coroutine it entered (the stack
    /// `n` deep before) meets the handlers of the one below, and passes
    /// through its caller's frame as `raise_into_caller` has it, from the
    /// one search for that coroutine.
    #[inline(never)]
    pub(super) fn throw_leaves(&mut self, t: u32, n: usize, c: &Comp) {
        let (below, kind) = self.innermost_level(t, n - 1);
        self.task_mut(t).floor = below;
        if let Comp::Raise(e) = *c {
            if kind == Some(true) {
                let h = self.handled_top(t);
                self.excs.chain(e, h);
            }
            if let Some(&Frame::Level { func, .. }) = self.task(t).frames.get(below) {
                self.tb_add(e, func);
            }
        }
    }

    /// An exception leaving a coroutine, the program's or one of
    /// asyncio's (a TimeoutError made inside as_completed), passes
    /// through the calling function's frame, which its traceback then
    /// holds.
    #[inline(never)]
    pub(super) fn raise_into_caller(&mut self, t: u32, n: usize, e: ExcId) {
        let (below, _) = self.innermost_level(t, n - 1);
        if let Some(&Frame::Level { func, .. }) = self.task(t).frames.get(below) {
            self.tb_add(e, func);
        }
    }
}
