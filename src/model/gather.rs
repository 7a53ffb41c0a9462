//! `asyncio.gather` after `tasks.py`: the outer future, its children and
//! done callbacks, its message quirks, and 3.12's synchronous completion
//! when every child is already done. Its record, `Gather`, is in `comb.rs`
//! with the other combinators'.

use super::comb::{Gather, OTHER_LOOP};
use super::exc::{Cls, ExcId};
use super::fut::{Cb, FKind, FState, FutId, V};
use super::machine::Machine;
use crate::ast::{Kind, NodeId};

/// Up to this many arguments, gather() finds a repeated one by searching
/// the children made so far, which is faster than a set at that size.
const SEARCHED_ARGS: usize = 16;

impl Machine {
    /// `asyncio.gather(...)` for node `node`: the outer future.
    pub fn gather_new(&mut self, t: Option<u32>, node: NodeId) -> Result<FutId, ExcId> {
        let Kind::Gather { return_exceptions } = *self.p().kind(node) else {
            unreachable!()
        };
        let args = self.awaitables(t, node)?;
        self.gather_of(t, args, return_exceptions)
    }

    /// `gather(*futs, return_exceptions=True)` over the shutdown's list
    /// of leftover tasks (which stays a root meanwhile). `gather_of`'s
    /// work, less what these arguments can never need: they are distinct
    /// tasks of this loop, still open, so no coroutine is wrapped, no
    /// repeat is searched for and nothing is refused; and nothing here
    /// runs a collection, so the children need not be a root while made.
    pub fn gather_shutdown_refs(&mut self) -> FutId {
        debug_assert!(!self.lp.closed, "the loop closes after the shutdown");
        let gid = self.gathers.len() as u32;
        let spare = self.spare_gathers.pop().unwrap_or_default();
        let mut args = self.spare_args.pop().unwrap_or_default();
        args.extend(self.shutdown_refs.iter().map(|&f| Ok(f)));
        let mut children = spare.children;
        children.extend_from_slice(&self.shutdown_refs);
        let args_key = self.next_gc_key();
        let list_key = self.next_gc_key();
        let nfuts = children.len() as u32;
        super::machine::push_in_place!(
            self.gathers,
            Gather {
                return_exceptions: true,
                children,
                coro_keys: spare.coro_keys,
                args,
                args_key,
                list_key,
                nfuts,
                ..Gather::default()
            }
        );
        let mut done_futs = Vec::new();
        for i in 0..nfuts as usize {
            let fut = self.shutdown_refs[i];
            if self.profile.gather_sync_done && self.done(fut) {
                done_futs.push(fut);
            } else {
                self.add_done_callback(fut, Cb::Gather(gid));
            }
        }
        self.gather_outer(gid, done_futs)
    }

    /// gather()'s last act, once every child is made: the outer future,
    /// then the children already done taken at once (3.12+). Inlined into
    /// both: as a call it cost 15 instructions a small program.
    #[inline(always)]
    fn gather_outer(&mut self, gid: u32, done_futs: Vec<FutId>) -> FutId {
        let outer = self.new_fut(FKind::Gather(gid));
        self.gathers[gid as usize].outer = Some(outer);
        for f in done_futs {
            self.gather_done_cb(gid, f);
        }
        outer
    }

    fn gather_of(
        &mut self,
        t: Option<u32>,
        args: Vec<Result<FutId, NodeId>>,
        return_exceptions: bool,
    ) -> Result<FutId, ExcId> {
        if args.is_empty() {
            let outer = self.new_fut(FKind::Plain);
            self.set_result(outer, V::List(0, 0));
            return Ok(outer);
        }
        let gid = self.gathers.len() as u32;
        // Emptied lists of an earlier run's gather spare two allocations.
        let spare = self.spare_gathers.pop().unwrap_or_default();
        super::machine::push_in_place!(
            self.gathers,
            Gather {
                return_exceptions,
                children: spare.children,
                coro_keys: spare.coro_keys,
                ..Gather::default()
            }
        );
        let mut done_futs = Vec::new();
        // `gather(f(), g())` evaluates its arguments first: every coroutine
        // is allocated before the first task wrapping one (the collector's
        // list order, `gcorder.rs`).
        let ncoros = args.iter().filter(|a| a.is_err()).count() as u32;
        let first = self.reserve_gc_keys(ncoros);
        let args_key = self.next_gc_key();
        let list_key = self.next_gc_key();
        let nargs = args.len();
        let g = &mut self.gathers[gid as usize];
        g.coro_keys.extend((0..ncoros).map(|k| first + 2 * k));
        g.args_key = args_key;
        g.list_key = list_key;
        g.args = args;
        g.children.reserve_exact(nargs);
        self.gathering.push(gid);
        // gather() takes its loop from its first argument: the future's
        // own, or for a coroutine `events.get_event_loop()`. With no loop
        // running that is the policy's loop (see `policy_task`).
        let mut on_policy: Option<bool> = None;
        // `arg_to_fut`, for long argument lists only: searching the children
        // made so far would make the shutdown's gather of every pending
        // task quadratic. It is only asked, never iterated.
        let mut seen: Option<std::collections::HashSet<FutId>> =
            (nargs > SEARCHED_ARGS).then(|| std::collections::HashSet::with_capacity(nargs));
        for i in 0..nargs {
            let a = self.gathers[gid as usize].args[i];
            let fut = match a {
                // `arg_to_fut`: a future seen before is a child again.
                Ok(f)
                    if seen.as_ref().map_or_else(
                        || self.gathers[gid as usize].children.contains(&f),
                        |s| s.contains(&f),
                    ) =>
                {
                    self.gathers[gid as usize].children.push(f);
                    continue;
                }
                a => {
                    let is_coro = a.is_err();
                    let policy = *on_policy.get_or_insert(is_coro && !self.running);
                    if is_coro {
                        let g = &mut self.gathers[gid as usize];
                        self.made_coro_key = Some(g.coro_keys[g.coro_done as usize]);
                        g.coro_done += 1;
                    }
                    let made = match (a, policy) {
                        (Err(c), true) => {
                            self.made_coro_key = None;
                            Ok(self.policy_task(c))
                        }
                        (Ok(_), true) => Err(self.gather_refused(t, gid, Cls::VALUE, OTHER_LOOP)),
                        (Err(_), false) if self.lp.closed => {
                            Err(self.gather_refused(t, gid, Cls::RUNTIME, "Event loop is closed"))
                        }
                        (a, false) => {
                            self.creating_gather = Some(gid);
                            let made = self.ensure_future(a);
                            self.creating_gather = None;
                            made
                        }
                    };
                    let f = match made {
                        Ok(f) => f,
                        Err(e) => {
                            // Out of gather() itself; the children made so
                            // far keep their callbacks (outer is still None).
                            self.gathering.pop();
                            return Err(e);
                        }
                    };
                    if is_coro && let Some(x) = self.task_of(f) {
                        self.tasks[x as usize].log_destroy_pending = false;
                    }
                    f
                }
            };
            self.gathers[gid as usize].nfuts += 1;
            if self.profile.gather_sync_done && self.done(fut) {
                done_futs.push(fut);
            } else if self.lp.closed && self.done(fut) {
                // `add_done_callback` on a done future schedules the
                // callback at once, and `call_soon` on a closed loop raises
                // (3.11, where no done child is taken synchronously).
                let e = self.gather_refused(t, gid, Cls::RUNTIME, "Event loop is closed");
                self.gathering.pop();
                return Err(e);
            } else {
                self.add_done_callback(fut, Cb::Gather(gid));
            }
            self.gathers[gid as usize].children.push(fut);
            if let Some(s) = &mut seen {
                s.insert(fut);
            }
        }
        self.gathering.pop();
        Ok(self.gather_outer(gid, done_futs))
    }

    /// What `ensure_future` raises for gather()'s argument list `args`
    /// when an argument belongs to another loop than the first one's: the
    /// traceback's frames (gather's locals) hold the arguments and the
    /// children made so far, which keep their callbacks (outer is None).
    fn gather_refused(&mut self, t: Option<u32>, gid: u32, cls: Cls, msg: &str) -> ExcId {
        self.made_coro_key = None;
        let held: Vec<FutId> = self.gathers[gid as usize]
            .args
            .iter()
            .filter_map(|a| a.ok())
            .chain(self.gathers[gid as usize].children.iter().copied())
            .collect();
        self.raise_holding(t, cls, msg, &held)
    }

    /// gather's `_done_callback(fut)`.
    pub fn gather_done_cb(&mut self, gid: u32, fut: FutId) {
        let g = &mut self.gathers[gid as usize];
        g.nfinished += 1;
        let outer = g.outer;
        let re = g.return_exceptions;
        let Some(outer) = outer.filter(|&o| !self.done(o)) else {
            if self.futs[fut as usize].state != FState::Cancelled {
                self.exception(fut);
            }
            return;
        };
        if !re {
            if self.futs[fut as usize].state == FState::Cancelled {
                let exc = self.make_cancelled_error(fut);
                self.set_exception(outer, exc);
                return;
            }
            if let Some(exc) = self.exception(fut) {
                self.set_exception(outer, exc);
                return;
            }
        }
        let g = &self.gathers[gid as usize];
        if g.nfinished == g.nfuts {
            let n = g.children.len();
            let at = self.lists.len();
            for k in 0..n {
                let c = self.gathers[gid as usize].children[k];
                let v = if self.futs[c as usize].state == FState::Cancelled {
                    let msg = self.futs[c as usize]
                        .cancel_msg
                        .clone()
                        .unwrap_or_else(|| self.empty_msg.clone());
                    V::Exc(self.excs.create(Cls::CANCELLED, Some(msg)))
                } else {
                    match self.exception(c) {
                        Some(e) => V::Exc(e),
                        None => self.futs[c as usize].result,
                    }
                };
                self.lists.push(v);
            }
            if self.gathers[gid as usize].cancel_requested {
                // `fut` is the loop variable now: the last child.
                let last = *self.gathers[gid as usize]
                    .children
                    .last()
                    .expect("gather has children");
                let exc = self.make_cancelled_error(last);
                self.set_exception(outer, exc);
            } else {
                let list = self.list_since(at);
                self.set_result(outer, list);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;

    /// gather(t0, .., tN, t0, .., tN) with N past `SEARCHED_ARGS`: each
    /// task is one child with one done callback, however the repeat is
    /// found, and the results keep the argument order
    /// (`examples/gather_repeated_task_is_one_child.ct` checks the short
    /// path against CPython).
    #[test]
    fn gather_repeated_tasks_in_a_long_argument_list_are_one_child_each() {
        let n = SEARCHED_ARGS + 4;
        let mut text = String::from("(canceltree 1)\n(main\n");
        for i in 0..n {
            text += &format!("  (spawn t{i} (sleep {}) (return {i}))\n", i % 3);
        }
        text += "  (gather";
        for i in (0..n).chain(0..n) {
            text += &format!(" (ref t{i})");
        }
        text += "))\n";
        let p = crate::syntax::parse("long_gather.ct", &text).expect("a valid program");
        let mut m = Machine::new(Profile::new(3, 12, false).unwrap());
        let trace = m.run(&p, &[]);
        let want: Vec<String> = (0..n).chain(0..n).map(|i| i.to_string()).collect();
        let shown = crate::render::text(&trace, &crate::render::labels(&p));
        assert!(
            shown.contains(&format!("outcome: main result [{}]", want.join(", "))),
            "{shown}"
        );
        let g = m
            .gathers
            .last()
            .expect("the run's gather is kept until the next run");
        assert_eq!(
            (g.children.len(), g.nfuts, g.nfinished),
            (2 * n, n as u32, n as u32)
        );
    }
}
