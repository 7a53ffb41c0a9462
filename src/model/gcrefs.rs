//! What each object a collection's replay scans refers to when the scan
//! traverses it (`gcitems.rs` lists the objects, `gcorder.rs` replays the
//! scan): kept apart because it is the one part that knows every kind of
//! scanned object's references.

use super::coro::{Frame, NONE};
use super::fut::{Cb, FKind};
use super::gcitems::{It, has_wrap};
use super::gcorder::{Entry, ScanBufs};
use super::graph::N;
use super::machine::Machine;
use super::run::Hcb;

impl Machine {
    /// A gather's children as the replay reaches them without their
    /// `children` list: from its callback's closure (whose cells the
    /// replay does not place), or from a gathering future whose list is
    /// not scanned. In argument order; no program in the fingerprint
    /// tells that from last first.
    fn gather_children_scanned(&self, g: u32, out: &mut Vec<N>) {
        out.extend(self.gathers[g as usize].children.iter().map(|&c| N::Fut(c)));
    }

    /// What the traceback future `f` saved with its exception reaches that
    /// the exception's own traceback no longer does: once a `result()`
    /// has reset the exception's traceback, the saved one is a chain of
    /// traceback objects of its own, which only the future reaches.
    // The check inline (few futures saved a traceback), the work apart.
    #[inline(always)]
    fn saved_tb_apart(&self, f: u32, direct: &mut Vec<N>) {
        if !self.futs[f as usize].exc_tb.is_empty() {
            self.saved_tb_apart_now(f, direct);
        }
    }

    #[inline(never)]
    fn saved_tb_apart_now(&self, f: u32, direct: &mut Vec<N>) {
        let fut = &self.futs[f as usize];
        let Some(e) = fut.exc else { return };
        let now = self.tbs.get(e as usize).map_or(&[][..], |t| &t[..]);
        for r in &fut.exc_tb {
            if !now.contains(r) {
                super::gc::tb_edges(std::slice::from_ref(r), direct);
            }
        }
    }

    /// What a scanned object refers to: scanned objects directly (into
    /// `r.direct_it`), other objects directly, or through a done callback
    /// the model gives no place (allocated later, so late).
    pub(super) fn refs_of(&self, r: &mut ScanBufs, x: It, direct: &mut Vec<N>, later: &mut Vec<N>) {
        match x {
            It::G(N::Fut(f)) => {
                for &cb in &self.futs[f as usize].callbacks {
                    match cb {
                        Cb::Wakeup(t) => r.direct_it.push(r.wake_loc[t as usize]),
                        Cb::Gather(g) => {
                            later.extend(self.gathers[g as usize].outer.map(N::Fut));
                            self.gather_children_scanned(g, later);
                        }
                        cb => self.cb_edges(cb, later),
                    }
                }
                // `TaskObj_traverse` visits the task's own fields, its
                // coroutine before the future it waits on, ahead of the
                // future's. The traceback an exception was set with sits
                // with that exception, which stands for it.
                if let FKind::Task(t) = self.futs[f as usize].kind {
                    direct.push(N::Coro(t));
                    // Not `extend` of an `Option`: that stays a call under LTO.
                    if let Some(w) = self.tasks[t as usize].fut_waiter {
                        direct.push(N::Fut(w));
                    }
                    self.fut_value_edges(f, false, direct);
                    self.saved_tb_apart(f, direct);
                } else {
                    self.fut_value_edges(f, false, direct);
                    self.saved_tb_apart(f, direct);
                    if let FKind::Gather(g) = self.futs[f as usize].kind {
                        match r.glist_loc[g as usize] {
                            NONE => self.gather_children_scanned(g, direct),
                            k => r.ordered.push(Entry::Item(k)),
                        }
                    }
                }
            }
            It::G(N::Coro(t)) => {
                let task = &self.tasks[t as usize];
                if !task.started {
                    direct.push(N::Fn(task.func));
                }
                self.coro_refs(r, t, 0);
            }
            It::Aw(t, func) => {
                let frames = &self.tasks[t as usize].frames;
                let at = frames
                    .iter()
                    .position(|f| matches!(*f, Frame::Level { func: x, .. } if x == func));
                self.coro_refs(
                    r,
                    t,
                    at.expect("an awaited coroutine's level is on its stack"),
                );
            }
            It::G(y @ N::Frame(_)) => {
                let mut list = std::mem::take(&mut r.scratch);
                let mut out = std::mem::take(&mut r.entries);
                self.refs_through_cells(r, y, &mut list, &mut out);
                r.ordered.append(&mut out);
                r.entries = out;
                r.scratch = list;
            }
            It::G(g) => self.edges(g, direct),
            It::Cell(s) => {
                if let Some(o) = self.slots[s as usize] {
                    self.obj(o, direct);
                }
            }
            It::Tm(tm) => direct.push(N::Fut(
                self.tasks[self.timeouts[tm as usize].task as usize].fut,
            )),
            It::Wake(t) => direct.push(N::Fut(self.tasks[t as usize].fut)),
            It::Hd(h) => {
                let cb = self.lp.handles[h as usize].cb;
                if has_wrap(cb) {
                    r.direct_it.push(r.hd_loc[h as usize].1);
                }
                match cb {
                    Hcb::FutCb(Cb::Wakeup(t), _) => r.direct_it.push(r.wake_loc[t as usize]),
                    Hcb::FutCb(cb, _) => self.cb_edges(cb, later),
                    Hcb::Step(..)
                    | Hcb::SetResultUnlessCancelled(_)
                    | Hcb::ReleaseWaiter(_)
                    | Hcb::TimeoutFire(_) => {}
                    // A program function, or as_completed's `_on_timeout`
                    // closure: objects the model gives no place.
                    Hcb::User(_) | Hcb::AcTimeout(_) => self.handle_edges(cb, later),
                }
            }
            It::Shutdown => direct.extend(self.shutdown_refs.iter().map(|&f| N::Fut(f))),
            It::CurTasks => {
                if let Some(t) = self.current {
                    direct.push(N::Fut(self.tasks[t as usize].fut));
                }
            }
            It::GArgs(g) => self.gather_args_refs(r, g),
            // `list_traverse` goes last item first.
            It::GList(g) => r.ordered.extend(
                self.gathers[g as usize]
                    .children
                    .iter()
                    .rev()
                    .map(|&c| Entry::Node(N::Fut(c))),
            ),
            It::GCoro(..) => {}
            It::Hop(_) => unreachable!("the replay follows stand-ins itself"),
            It::Exc(e) => match r.tb_loc[e as usize] {
                NONE => self.edges(N::Exc(e), direct),
                k => {
                    // Group members, the traceback, the cause, the context
                    // (`BaseException_traverse`).
                    let mut links = std::mem::take(&mut r.scratch);
                    links.clear();
                    self.exc_members(e, &mut links);
                    r.ordered.extend(links.drain(..).map(Entry::Node));
                    r.ordered.push(Entry::Item(k));
                    self.exc_links(e, &mut links);
                    r.ordered.extend(links.drain(..).map(Entry::Node));
                    r.scratch = links;
                }
            },
            It::AcIter(a) => {
                direct.extend(self.acs[a as usize].all.iter().map(|&c| N::Fut(c)));
                self.cb_edges(Cb::AcDone(a), direct);
            }
            It::Tb(e) => {
                if let Some(tb) = self.tbs.get(e as usize) {
                    // Each traversal only moves what it reaches to the
                    // end, so the head's frame is traversed before the
                    // frames further down `tb_next`: latest first.
                    let at = direct.len();
                    super::gc::tb_edges(tb, direct);
                    direct[at..].reverse();
                    // One pass, keeping the rest in order (a traceback may
                    // pass a million frames).
                    let mut kept = at;
                    for (i, r) in (at..).zip(tb.iter().rev()) {
                        if r.reached_late() {
                            later.push(direct[i]);
                        } else {
                            direct[kept] = direct[i];
                            kept += 1;
                        }
                    }
                    direct.truncate(kept);
                }
            }
            It::Wrap(h) => match self.lp.handles[h as usize].cb {
                Hcb::FutCb(_, f) | Hcb::SetResultUnlessCancelled(f) | Hcb::ReleaseWaiter(f) => {
                    direct.push(N::Fut(f))
                }
                // The bound method `_on_timeout`: its Timeout object.
                Hcb::TimeoutFire(tm) => r.direct_it.push(r.tm_loc[tm as usize]),
                cb => self.handle_edges(cb, direct),
            },
        }
    }

    /// What one coroutine of task `t` refers to, from its level at frame
    /// `from` to the next one's: the Timeout objects its `async with`s
    /// hold (the task has usually been reached already), then what its
    /// frames hold, then the coroutine it awaits, an object of its own.
    // Inlined into `refs_of`, itself inlined into the replay's loop:
    // measured cheaper.
    #[inline(always)]
    fn coro_refs(&self, r: &mut ScanBufs, t: u32, from: usize) {
        let frames = &self.tasks[t as usize].frames;
        let end = (from + 1..frames.len())
            .find(|&i| matches!(frames[i], Frame::Level { .. }))
            .unwrap_or(frames.len());
        for f in &frames[from..end] {
            if let Frame::Timeout { tm, .. } = *f {
                r.ordered.push(Entry::Item(r.tm_loc[tm as usize]));
            }
        }
        let mut held = std::mem::take(&mut r.scratch);
        held.clear();
        for f in &frames[from..end] {
            match *f {
                // The iterating frame holds the object that iterates, an
                // object of its own.
                Frame::Comb {
                    kind: super::comb::CombKind::AsCompleted,
                    a,
                    ..
                } if r.ac_loc[a as usize] != NONE => {
                    r.ordered.extend(held.drain(..).map(Entry::Node));
                    r.ordered.push(Entry::Item(r.ac_loc[a as usize]));
                }
                // wait_for's own coroutine (3.11's, or any with timeout
                // <= 0): what its frame holds is met one object further.
                // `sleep`'s coroutine and an `await`'s FutureIter sit one
                // object away too, but hold only the task's `fut_waiter`,
                // which the task reaches first: giving them stand-ins
                // changed no trace of 60,000 programs on five profiles.
                Frame::Comb {
                    kind: super::comb::CombKind::WaitFor11 | super::comb::CombKind::WaitForNow,
                    ..
                } => self.frame_edges(t, f, &mut r.hop_nodes),
                _ => self.frame_edges(t, f, &mut held),
            }
        }
        // Pushes, not `extend(drain)`: see `reach`.
        for &y in &held {
            r.ordered.push(Entry::Node(y));
        }
        held.clear();
        r.scratch = held;
        if let Some(&Frame::Level { func, .. }) = frames.get(end) {
            r.ordered.push(Entry::Item(r.aw_loc[func as usize]));
        }
    }

    /// What a running gather's `coros_or_futures` tuple refers to, last
    /// item first (`tupletraverse`): each future; each coroutine, its
    /// task's if it has one by now (the one being wrapped is in its eager
    /// first step), else the scanned object standing for it.
    fn gather_args_refs(&self, r: &mut ScanBufs, g: u32) {
        let x = &self.gathers[g as usize];
        let mut j = x.coro_keys.len() as u32;
        for (i, &a) in x.args.iter().enumerate().rev() {
            if let Ok(f) = a {
                r.ordered.push(Entry::Node(N::Fut(f)));
                continue;
            }
            j -= 1;
            if j >= x.coro_done {
                let k = r.gcoro_loc.iter().find(|&&(h, c, _)| (h, c) == (g, j));
                r.ordered.extend(k.map(|&(_, _, k)| Entry::Item(k)));
            } else if let Some(&c) = x.children.get(i) {
                r.ordered
                    .extend(self.task_of(c).map(|t| Entry::Node(N::Coro(t))));
            } else if let Some(e) = self.eager_stack.iter().rev().find(|e| e.gather == Some(g)) {
                r.ordered.push(Entry::Node(N::Coro(e.task)));
            }
        }
    }
}
