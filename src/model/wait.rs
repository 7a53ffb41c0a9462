//! `asyncio.wait` and `as_completed` after `tasks.py`: starting them (the
//! waiter, the done callbacks, the timeout handle), what their callbacks
//! do, and as_completed's later steps; wait's are in `comb_frame`.

use super::comb::{AsCompleted, CombKind, Wait};
use super::coro::{Act, Comp, Frame, NONE, Sig};
use super::exc::Cls;
use super::fut::{Cb, FKind, FState, FutId, V};
use super::machine::{Machine, keep_spare};
use super::run::Hcb;
use crate::ast::{Kind, NodeId, WaitWhen};

impl Machine {
    // ---- wait ----------------------------------------------------------

    pub fn wait_start(&mut self, t: u32, node: NodeId) -> Act {
        let Kind::Wait { when, timeout } = *self.p().kind(node) else {
            unreachable!()
        };
        let mut args = match self.awaitables(Some(t), node) {
            Ok(a) => a,
            Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
        };
        if args.is_empty() {
            let e = self.raise_new(Some(t), Cls::VALUE, "Set of Tasks/Futures is empty.");
            return Act::Again(Sig::Child(Comp::Raise(e)));
        }
        let mut futs: Vec<FutId> = self.spare_futs.pop().unwrap_or_default();
        for &a in args.iter().flatten() {
            if !futs.contains(&a) {
                futs.push(a);
            }
        }
        keep_spare(&mut self.spare_args, &mut args);
        let waiter = self.new_fut(FKind::Plain);
        let timer = timeout.map(|d| self.lp.call_later(d.0, Hcb::ReleaseWaiter(waiter)));
        let w = self.waits.len() as u32;
        let n = futs.len();
        self.waits.push(Wait {
            futs,
            waiter,
            timer,
            counter: n as i64,
            when,
        });
        for i in 0..n {
            let f = self.waits[w as usize].futs[i];
            self.add_done_callback(f, Cb::WaitDone(w));
        }
        // The frame, and its await of the waiter started at once: the
        // frame's first step would do nothing else.
        self.frames_of(t).push(Frame::Comb {
            kind: CombKind::Wait,
            a: w,
            b: 0,
            c: 0,
        });
        self.await_now(t, waiter)
    }

    pub fn wait_on_completion(&mut self, w: u32, f: FutId) {
        self.waits[w as usize].counter -= 1;
        let x = &self.waits[w as usize];
        let fire = x.counter <= 0
            || x.when == WaitWhen::FirstCompleted
            || (x.when == WaitWhen::FirstException
                && self.futs[f as usize].state != FState::Cancelled
                && self.exception(f).is_some());
        if fire {
            let x = &self.waits[w as usize];
            let (timer, waiter) = (x.timer, x.waiter);
            if let Some(h) = timer {
                self.lp.cancel(h);
            }
            if !self.done(waiter) {
                self.set_result(waiter, V::None);
            }
        }
    }

    // ---- as_completed --------------------------------------------------

    pub fn ac_start(&mut self, t: u32, node: NodeId) -> Act {
        let Kind::AsCompleted { timeout } = *self.p().kind(node) else {
            unreachable!()
        };
        let mut args = match self.awaitables(Some(t), node) {
            Ok(a) => a,
            Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
        };
        if !self.running {
            // as_completed takes `events.get_event_loop()`, not the running
            // loop: with none running (a coroutine that swallowed the final
            // close's GeneratorExit) that is another loop than its futures',
            // and `ensure_future(f, loop=loop)` refuses the first of them
            // (checked on 3.11.7, 3.12.1, 3.13.0). The frames in its
            // traceback hold the argument list.
            let held: Vec<FutId> = args.into_iter().flatten().collect();
            let e = self.raise_holding(Some(t), Cls::VALUE, super::comb::OTHER_LOOP, &held);
            return Act::Again(Sig::Child(Comp::Raise(e)));
        }
        let key = self.next_gc_key();
        // An earlier run's iterator, its lists emptied, spares their
        // allocations.
        let spare = self.spare_acs.pop().unwrap_or_default();
        let mut todo = spare.todo;
        for &a in &args {
            let f = match self.ensure_future(a) {
                Ok(f) => f,
                Err(e) => return Act::Again(Sig::Child(Comp::Raise(e))),
            };
            if !todo.contains(&f) {
                todo.push(f);
            }
        }
        keep_spare(&mut self.spare_args, &mut args);
        let ac = self.acs.len() as u32;
        for &f in &todo {
            self.add_done_callback(f, Cb::AcDone(ac));
        }
        let timer = match timeout {
            Some(d) if !todo.is_empty() => Some(self.lp.call_later(d.0, Hcb::AcTimeout(ac))),
            _ => None,
        };
        let left = todo.len() as u32;
        let mut all = spare.all;
        all.extend_from_slice(&todo);
        self.acs.push(AsCompleted {
            all,
            todo,
            queue: spare.queue,
            getters: spare.getters,
            results: spare.results,
            cycle: timer.is_some(),
            timer,
            left,
            key,
            ..AsCompleted::default()
        });
        Act::Push(Frame::Comb {
            kind: CombKind::AsCompleted,
            a: ac,
            b: NONE,
            c: 0,
        })
    }

    /// One step of an as_completed frame (`a` its index, `b` the getter it
    /// awaits): the next result from its queue, or a new getter to await.
    pub fn ac_step(&mut self, t: u32, fr: &mut Frame, a: u32, b: u32, sig: Sig) -> Act {
        match sig {
            Sig::Start => {}
            Sig::Child(Comp::Raise(e)) => {
                // Queue.get's `except: getter.cancel(); ...; raise`
                self.tb_ref(e, super::gc::TbRef::Ac(a));
                let getter = b;
                if let Err(rt) = self.fut_cancel_checked(getter, None) {
                    self.excs.chain(rt, Some(e));
                    return Act::Pop(Comp::Raise(rt));
                }
                self.acs[a as usize].getters.retain(|&x| x != getter);
                if !self.acs[a as usize].queue.is_empty()
                    && self.futs[getter as usize].state != FState::Cancelled
                    && let Some(w) = self.acs[a as usize].getters.pop_front()
                {
                    self.set_result(w, V::None);
                }
                return Act::Pop(Comp::Raise(e));
            }
            Sig::Child(_) => {}
            _ => unreachable!(),
        }
        loop {
            if self.acs[a as usize].left == 0 {
                let at = self.lists.len();
                self.lists.append(&mut self.acs[a as usize].results);
                return Act::Pop(Comp::Norm(self.list_since(at)));
            }
            let Some(item) = self.acs[a as usize].queue.pop_front() else {
                let getter = self.new_fut(FKind::Plain);
                self.acs[a as usize].getters.push_back(getter);
                if let Frame::Comb { b, .. } = fr {
                    *b = getter;
                }
                return self.await_fut(getter);
            };
            self.acs[a as usize].left -= 1;
            match item {
                // Raised in `_wait_for_one`, whose frame holds the queue.
                None => {
                    let e = self.raise_new(Some(t), Cls::TIMEOUT, "");
                    self.excs.get_mut(e).msg = None;
                    self.tb_ref(e, super::gc::TbRef::Ac(a));
                    return Act::Pop(Comp::Raise(e));
                }
                Some(f) => match self.result_freeing(f) {
                    Ok(v) => self.acs[a as usize].results.push(v),
                    Err(e) => {
                        // `_wait_for_one`'s frame, in the traceback, also
                        // holds its local `f`: a cycle when `f`'s exception
                        // is the one raised (a cancelled task's own
                        // CancelledError, passed on by gather).
                        self.raise_here(Some(t), e);
                        self.tb_ref(e, super::gc::TbRef::Fut(f));
                        self.tb_ref(e, super::gc::TbRef::Ac(a));
                        return Act::Pop(Comp::Raise(e));
                    }
                },
            }
        }
    }

    pub(super) fn queue_put(&mut self, ac: u32, item: Option<FutId>) {
        self.acs[ac as usize].queue.push_back(item);
        while let Some(w) = self.acs[ac as usize].getters.pop_front() {
            if !self.done(w) {
                self.set_result(w, V::None);
                break;
            }
        }
    }

    pub fn ac_on_completion(&mut self, ac: u32, f: FutId) {
        if self.acs[ac as usize].todo.is_empty() {
            return;
        }
        self.acs[ac as usize].todo.retain(|&x| x != f);
        self.queue_put(ac, Some(f));
        if self.acs[ac as usize].todo.is_empty()
            && let Some(h) = self.acs[ac as usize].timer
        {
            // `cancel()` drops the handle's callback: the cycle is gone.
            self.lp.cancel(h);
            self.acs[ac as usize].cycle = false;
        }
    }

    pub fn ac_timeout(&mut self, ac: u32) {
        let todo = std::mem::take(&mut self.acs[ac as usize].todo);
        for f in todo {
            self.remove_done_callback(f, Cb::AcDone(ac));
            self.queue_put(ac, None);
        }
    }
}
