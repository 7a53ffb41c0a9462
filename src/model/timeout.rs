//! `asyncio.timeout` (`Timeout.__aenter__`/`__aexit__`, 3.13's inserted
//! TimeoutError) and `wait_for`: 3.12+'s `async with timeout` around an
//! inline await, the `timeout <= 0` path, and 3.11's task-and-waiter one
//! (its frame logic is `wait_for_11` in comb.rs).

use super::comb::{CombKind, Timeout};
use super::coro::{Act, Comp, Frame, NONE, Sig};
use super::exc::{Cls, ExcId};
use super::fut::{Cb, FKind, FutId};
use super::machine::Machine;
use super::run::Hcb;
use crate::ast::{Kind, NodeId};

impl Machine {
    // ---- timeout -------------------------------------------------------

    /// `Timeout.__aenter__` in task `t`'s frames. It times out the
    /// current task, which is another one when a collection in that
    /// task's step closes `t`'s coroutine.
    pub(super) fn timeout_new(&mut self, t: u32, delay: Option<f64>) -> Result<u32, ExcId> {
        let Some(cur) = self.current else {
            return Err(self.raise_new(
                Some(t),
                Cls::RUNTIME,
                "Timeout should be used inside a task",
            ));
        };
        let when = delay.map(|d| self.lp.now + d);
        let tm = self.timeouts.len() as u32;
        let cancelling = self.cancelling(cur);
        let key = self.next_gc_key();
        self.timeouts.push(Timeout {
            state: 1,
            handler: None,
            task: cur,
            cancelling,
            key,
        });
        if let Some(w) = when {
            let h = if w <= self.lp.now {
                self.lp.call_soon(Hcb::TimeoutFire(tm))
            } else {
                self.lp.call_at(w, Hcb::TimeoutFire(tm))
            };
            self.timeouts[tm as usize].handler = Some(h);
        }
        Ok(tm)
    }

    pub fn timeout_start(&mut self, t: u32, node: NodeId) -> Act {
        let Kind::Timeout(d) = *self.p().kind(node) else {
            unreachable!()
        };
        let tm = match self.timeout_new(t, d.map(|d| d.0)) {
            Ok(tm) => tm,
            Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
        };
        Act::Push(Frame::Timeout { tm, node, aw: NONE })
    }

    pub fn timeout_fire(&mut self, tm: u32) {
        let t = self.timeouts[tm as usize].task;
        let f = self.tasks[t as usize].fut;
        if let Err(e) = self.cancel(f, None) {
            self.callback_raised(e);
            return;
        }
        self.timeouts[tm as usize].state = 2;
        self.timeouts[tm as usize].handler = None;
    }

    pub fn timeout_frame(&mut self, t: u32, fr: &mut Frame, sig: Sig) -> Act {
        let Frame::Timeout { tm, node, .. } = *fr else {
            unreachable!()
        };
        let p = self.p();
        match sig {
            // Only for a block a nested step entered (see `body`): a
            // wait_for's frame starts its await as it is pushed.
            Sig::Start => self.start_body(t, node + 1, p.end(node)),
            Sig::Child(c) => {
                // __aexit__
                let exc = if let Comp::Raise(e) = c {
                    Some(e)
                } else {
                    None
                };
                if let Some(h) = self.timeouts[tm as usize].handler.take() {
                    self.lp.cancel(h);
                }
                if self.timeouts[tm as usize].state == 2 {
                    self.timeouts[tm as usize].state = 3;
                    let task = self.timeouts[tm as usize].task;
                    let below = self.uncancel(task) <= self.timeouts[tm as usize].cancelling;
                    if let (true, Some(e)) = (below, exc) {
                        if self.excs.cls(e).is_cancelled() {
                            let te = self.excs.create(Cls::TIMEOUT, None);
                            self.excs.raise_from_handled(te, e);
                            self.tb_here(Some(t), te);
                            let task_fut = self.tasks[task as usize].fut;
                            self.tb_ref(te, super::gc::TbRef::Fut(task_fut));
                            return Act::Pop(Comp::Raise(te));
                        } else if self.profile.timeout_313_exit {
                            self.insert_timeout_error(e);
                            if let Some(g) = self.excs.get(e).group.clone()
                                && self.excs.cls(e) == Cls::ExceptionGroup
                            {
                                for &x in g.iter() {
                                    self.insert_timeout_error(x);
                                }
                            }
                        }
                    }
                } else if self.timeouts[tm as usize].state == 1 {
                    self.timeouts[tm as usize].state = 4;
                }
                Act::Pop(c)
            }
            _ => unreachable!(),
        }
    }

    fn insert_timeout_error(&mut self, mut e: ExcId) {
        while let Some(c) = self.excs.get(e).context {
            if self.excs.cls(c).is_cancelled() {
                let te = self.excs.create(Cls::TIMEOUT, None);
                self.excs.get_mut(te).context = Some(c);
                self.excs.get_mut(te).cause = Some(c);
                self.excs.get_mut(e).context = Some(te);
                break;
            }
            e = c;
        }
    }

    // ---- wait_for ------------------------------------------------------

    pub fn wait_for_start(&mut self, t: u32, node: NodeId) -> Act {
        let Kind::WaitFor(timeout) = *self.p().kind(node) else {
            unreachable!()
        };
        let aw = self
            .p()
            .children(node)
            .next()
            .expect("wait_for has an operand");
        let arg = if let Kind::Ref(_) = self.p().kind(aw) {
            match self.read_fut(Some(t), aw) {
                Ok(f) => Ok(f),
                Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
            }
        } else {
            Err(aw)
        };
        let timeout = timeout.map(|x| x.0);
        if timeout.is_some_and(|d| d <= 0.0) {
            let fut = match arg {
                // With no loop running (code a finalizer runs after the loop
                // stopped), `ensure_future` wraps a coroutine on the
                // policy's loop, as gather() does.
                Err(c) if !self.running => self.policy_task(c),
                arg => match self.ensure_future(arg) {
                    Ok(f) => f,
                    Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
                },
            };
            if self.done(fut) {
                return self.wait_for_done_result(t, fut);
            }
            if !self.running {
                // `_cancel_and_wait(fut)`'s first line: its frame and
                // wait_for's, in the traceback, hold `fut`.
                let e = self.raise_holding(Some(t), Cls::RUNTIME, "no running event loop", &[fut]);
                return Act::Again(Sig::Child(Comp::Raise(e)));
            }
            return Act::Push(Frame::Comb {
                kind: CombKind::WaitForNow,
                a: fut,
                b: NONE,
                c: 0,
            });
        }
        if self.profile.wait_for_via_timeout || timeout.is_none() {
            if !self.profile.wait_for_via_timeout {
                // 3.11: `if timeout is None: return await fut`
                return match arg {
                    Ok(f) => self.await_now(t, f),
                    Err(c) => Act::Push(self.level(self.aw_fn(c))),
                };
            }
            let tm = match self.timeout_new(t, timeout) {
                Ok(tm) => tm,
                Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
            };
            // The frame, and its await started at once: the frame's
            // first step would do nothing else. What the await raises,
            // or pushes, is the frame's.
            self.frames_of(t).push(Frame::Timeout { tm, node, aw });
            return if let Kind::Ref(_) = self.p().kind(aw) {
                match self.read_fut(Some(t), aw) {
                    Ok(f) => self.await_now(t, f),
                    Err(e) => Act::Again(Sig::Child(Comp::Raise(e))),
                }
            } else {
                Act::Push(self.level(self.aw_fn(aw)))
            };
        }
        // 3.11 with a positive timeout.
        let waiter = self.new_fut(FKind::Plain);
        let timer = self
            .lp
            .call_later(timeout.unwrap(), Hcb::ReleaseWaiter(waiter));
        let fut = match self.ensure_future(arg) {
            Ok(f) => f,
            Err(e) => {
                self.lp.cancel(timer);
                return Act::Again(Sig::Child(Comp::Raise(e)));
            }
        };
        self.add_done_callback(fut, Cb::Release(waiter));
        Act::Push(Frame::Comb {
            kind: CombKind::WaitFor11,
            a: fut,
            b: waiter,
            c: timer,
        })
    }

    /// `wait_for`'s `return fut.result()` for a future already done.
    pub(super) fn wait_for_done_result(&mut self, t: u32, fut: FutId) -> Act {
        match self.result_freeing(fut) {
            Ok(v) => Act::Again(Sig::Child(Comp::Norm(v))),
            Err(e) => {
                self.raised_in_wait_for(t, fut, e, true);
                Act::Again(Sig::Child(Comp::Raise(e)))
            }
        }
    }

    /// `return fut.result()` inside `except CancelledError as exc: raise
    /// TimeoutError from exc`.
    pub(super) fn result_or_timeout(&mut self, t: u32, fut: FutId) -> Comp {
        match self.result_freeing(fut) {
            Ok(v) => Comp::Norm(v),
            Err(e) => {
                let cancelled = self.excs.cls(e).is_cancelled();
                self.raised_in_wait_for(t, fut, e, !cancelled);
                if cancelled {
                    let te = self.excs.create(Cls::TIMEOUT, None);
                    self.excs.raise_from_handled(te, e);
                    Comp::Raise(te)
                } else {
                    Comp::Raise(e)
                }
            }
        }
    }

    /// `e`, raised by `fut.result()` in `wait_for`'s frame: its traceback
    /// holds that frame, whose local `fut` it keeps (with the future's own
    /// exception, a cycle), and the caller's frame: because `e` `leaves`
    /// through it, or, from 3.12, as the finished frame's `f_back`. That
    /// matters when something else keeps `e` (an eager task's TaskGroup
    /// exit that raised it holds it in a cycle).
    fn raised_in_wait_for(&mut self, t: u32, fut: FutId, e: ExcId, leaves: bool) {
        self.raise_here(Some(t), e);
        self.tb_ref(e, super::gc::TbRef::Fut(fut));
        if leaves || self.profile.frame_keeps_caller {
            self.tb_here(Some(t), e);
        }
    }
}
