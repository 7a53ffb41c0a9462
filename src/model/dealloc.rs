//! The garbage a reachability walk leaves unmarked, sorted out the way
//! CPython's refcounting meets it: what a reference cycle keeps (and so
//! waits for a collection), and the order in which the rest is deallocated
//! at once, depth first from what was dropped.

use super::graph::N;
use super::machine::Machine;
use super::names::Obj;
use crate::ast::NodeId;

/// Reused buffers of a refcount check's freeing: the unmarked nodes, and
/// the subgraph they make by graph index (a marked node has no edges), as
/// adjacency lists; in-degrees, and `dealloc_order`'s roots and stack.
/// The graphs are small: indexing by graph index costs less than
/// numbering the unmarked nodes apart, but the passes go over the
/// unmarked ones only.
#[derive(Default)]
pub struct FreeBufs {
    unmarked: Vec<u32>,
    /// Where each unmarked node's references are in `adj` (only those
    /// entries are current).
    span: Vec<(u32, u32)>,
    adj: Vec<u32>,
    indeg: Vec<u32>,
    /// `dealloc_order`'s roots.
    queue: Vec<u32>,
    /// `dealloc_order`'s depth-first stack: (node, next edge).
    stack: Vec<(u32, u32)>,
}

/// What a refcount check frees: its buffers, boxed so that a check takes
/// them out of the machine and puts them back by pointer; and what is
/// being dropped.
#[derive(Default)]
pub struct Frees {
    bufs: Option<Box<FreeBufs>>,
    /// Objects something being dropped held (graph indices, which for a
    /// future is its id), in the order it lets go of them: a list (last
    /// item first), a frame's locals at its function's exit (`localsplus`
    /// order), a handle that ran (its arguments, then its callback), the
    /// loop's queues at `loop.close()`. What else nothing
    /// references goes first (what died before but reported nothing), then
    /// these, one by one. Set and cleared around one check by whoever
    /// drops them.
    pub dropped: Vec<u32>,
    /// What is being dropped and not listed in `dropped` yet: listing it
    /// walks its references, and most checks find nothing dying, so
    /// `refcount_frees` lists it, the first step of freeing anything.
    /// Nothing changes meanwhile: a check runs no code before it frees.
    later: Option<Drops>,
}

/// Something being dropped whose references `dropped` does not list yet.
#[derive(Clone, Copy)]
enum Drops {
    /// A handle that ran (`ending.rs::handle_dropped`).
    Handle(super::run::Hcb),
    /// A frame at its function's exit.
    Locals(NodeId),
}

impl Frees {
    /// Forgets what was dropped, once the check after it is done.
    pub fn clear(&mut self) {
        self.dropped.clear();
        self.later = None;
    }
}

impl Machine {
    /// `func`'s frame lets go of its locals, as what one refcount check
    /// drops: the futures they hold, in `localsplus` order.
    pub(super) fn frame_locals_dropped(&mut self, func: NodeId) {
        self.drop_later(Drops::Locals(func));
    }

    /// Handle `cb` ran and lets go of what it holds, as what one refcount
    /// check drops (`ending.rs::handle_dropped`).
    pub(super) fn handle_dropped_later(&mut self, cb: super::run::Hcb) {
        self.drop_later(Drops::Handle(cb));
    }

    fn drop_later(&mut self, x: Drops) {
        self.gc_prepare();
        self.list_dropped();
        self.gc_frees.later = Some(x);
    }

    /// Lists in `dropped` what is being dropped but not listed yet.
    fn list_dropped(&mut self) {
        match self.gc_frees.later.take() {
            None => {}
            Some(Drops::Handle(cb)) => self.handle_dropped(cb),
            Some(Drops::Locals(func)) => self.list_locals(func),
        }
    }

    fn list_locals(&mut self, func: NodeId) {
        let d = self.gcx.dense[func as usize] as usize;
        for &s in &self.gcx.own[d] {
            if let Some(Obj::Fut(f)) = self.slots[s as usize] {
                self.gc_frees.dropped.push(f);
            }
        }
    }

    /// What refcounting frees now, given `mark` (everything reachable,
    /// which this uses up): flags the futures garbage cycles keep
    /// `cyclic`, then returns the futures left out in the order they are
    /// deallocated; `started` gets the objects
    /// the deallocation starts from (see `dealloc_order`).
    pub(super) fn refcount_frees(
        &mut self,
        mark: &mut [bool],
        started: &mut Vec<(u32, u32)>,
    ) -> Vec<u32> {
        self.list_dropped();
        self.planning_frees = true;
        let mut pk = self.gc_frees.bufs.take().unwrap_or_default();
        let dropped = std::mem::take(&mut self.gc_frees.dropped);
        let order = if self.unmarked_subgraph(&mut pk, mark) {
            // Every future left is kept by a cycle, and nothing reports.
            started.clear();
            let mut order = std::mem::take(&mut self.gc_order_futs);
            order.clear();
            order
        } else {
            self.dealloc_order(&mut pk, &dropped, mark, started)
        };
        self.flag_cycle_kept(&pk);
        self.gc_frees.dropped = dropped;
        self.gc_frees.bufs = Some(pk);
        self.planning_frees = false;
        order
    }

    /// Lists the unmarked nodes and builds the subgraph they make, with
    /// each node's in-degree in it, leaving out the nodes that refer to
    /// nothing (`mark_absent`, and the two kinds below). True, with only
    /// the futures' references listed, if each unmarked future is
    /// referred to by one: then a cycle keeps every one of them (going
    /// back from referrer to referrer must come round), as is common (a
    /// pending task and the future it waits on, whose wakeup holds it).
    fn unmarked_subgraph(&mut self, pk: &mut FreeBufs, mark: &mut [bool]) -> bool {
        let total = mark.len();
        // What `mark_absent` marks, in one pass over the functions with
        // what follows.
        // Zipped with their stretch of the bitmap: no bounds check on it.
        for (m, fut) in mark.iter_mut().zip(&self.futs) {
            *m |= fut.dead;
        }
        // So is the coroutine of a task that ran to its end: no frames
        // left, it refers to nothing. Not in `mark_absent`: a collection
        // orders the coroutines it finalizes by that bitmap.
        let coros = self.idx(N::Coro(0));
        for (m, task) in mark[coros..].iter_mut().zip(&self.tasks) {
            *m |= task.started & task.frames.is_empty();
        }
        // And a function without free variables whose coroutine is not
        // made yet (`FnKeys::cells`): only its own code binds its locals.
        let fns = self.fns_base(self.layout());
        let nf = self.gcx.ids.len();
        let (fn_marks, frame_marks) = mark[fns..fns + 2 * nf].split_at_mut(nf);
        let keys = self.gcx.ids.iter().zip(&self.gcx.free);
        for (((&f, free), fm), km) in keys.zip(fn_marks).zip(frame_marks) {
            let f = f as usize;
            *fm |= free.is_empty() & (self.fn_done[f] | (self.fns[f].cells == super::coro::NONE));
            *km |= !self.frame_kept[f];
        }
        super::graph::list_unset(mark, &mut pk.unmarked);
        if pk.span.len() < total {
            pk.span.resize(total, (0, 0));
        }
        pk.adj.clear();
        pk.indeg.clear();
        pk.indeg.resize(total, 0);
        let mut buf = std::mem::take(&mut self.gc_buf);
        // Futures come first in the graph, and so in `unmarked`.
        let (nfuts, n) = (
            pk.unmarked
                .partition_point(|&i| (i as usize) < self.futs.len()),
            pk.unmarked.len(),
        );
        self.list_refs(pk, mark, &mut buf, 0..nfuts, true);
        let all_kept = pk.unmarked[..nfuts]
            .iter()
            .all(|&f| pk.indeg[f as usize] > 0);
        if !all_kept {
            self.list_refs(pk, mark, &mut buf, nfuts..n, false);
        }
        self.gc_buf = buf;
        all_kept
    }

    /// Lists the references of the unmarked nodes `unmarked[ks]` (all
    /// futures if `futs`) to unmarked nodes, counting in-degrees.
    #[inline(always)]
    fn list_refs(
        &self,
        pk: &mut FreeBufs,
        mark: &[bool],
        buf: &mut Vec<N>,
        ks: std::ops::Range<usize>,
        futs: bool,
    ) {
        let layout = self.layout();
        // As long as `mark`: an index `mark` takes needs no second check.
        let indeg = &mut pk.indeg[..mark.len()];
        for k in ks {
            let i = pk.unmarked[k];
            let from = pk.adj.len() as u32;
            buf.clear();
            let x = if futs {
                N::Fut(i)
            } else {
                self.node_of(i as usize)
            };
            self.edges(x, buf);
            for &y in buf.iter() {
                let j = self.idx_in(layout, y);
                if !mark[j] {
                    pk.adj.push(j as u32);
                    indeg[j] += 1;
                }
            }
            pk.span[i as usize] = (from, pk.adj.len() as u32);
        }
    }

    /// Flags the unmarked futures that a garbage cycle keeps (those on a
    /// cycle of unmarked nodes or reachable from one) as `cyclic`.
    /// `dealloc_order` entered every other node (a node whose referrers
    /// all went goes too), taking its in-degree to zero; one a cycle
    /// keeps always has a referrer left that a cycle keeps, so it keeps
    /// its in-degree. When `unmarked_subgraph` found every future
    /// referred to, no order ran and each has its in-degree: all are
    /// flagged.
    fn flag_cycle_kept(&mut self, pk: &FreeBufs) {
        // Futures come first in the graph, and so in `unmarked`.
        for &i in &pk.unmarked {
            let Some(f) = self.futs.get_mut(i as usize) else {
                break;
            };
            f.cyclic |= pk.indeg[i as usize] > 0;
        }
    }

    /// The futures the unmarked subgraph holds that no garbage cycle
    /// keeps, in the order refcounting deallocates them: the objects
    /// nothing else references go first, lowest first; deallocating one
    /// drops its references in order, and one whose last reference that
    /// was goes at once, depth first, before the next (what `Py_DECREF`
    /// does). Each future appears when its deallocation starts, as its
    /// finalizer runs. What a cycle keeps is never entered: it keeps a
    /// referrer that a cycle keeps, which is never entered either.
    ///
    /// `started` gets the objects entered as a start of that depth-first
    /// order (not reached from another one; graph indices), in order, each with the
    /// length of the order when it was entered: each is let go of by
    /// whoever drops it, in turn, and holds what it reaches till then.
    ///
    /// Reads the unmarked subgraph `unmarked_subgraph` just built, and
    /// leaves in-degrees above zero just on the nodes a cycle keeps.
    fn dealloc_order(
        &mut self,
        pk: &mut FreeBufs,
        dropped: &[u32],
        mark: &[bool],
        started: &mut Vec<(u32, u32)>,
    ) -> Vec<u32> {
        let mut order = std::mem::take(&mut self.gc_order_futs);
        order.clear();
        started.clear();
        let nfuts = self.futs.len();
        let total = mark.len();
        let mut stack = std::mem::take(&mut pk.stack);
        stack.clear();
        // The roots are the nodes nothing references before any goes: a
        // node whose last referrer goes later is entered from there, once.
        // What `dropped` lists counts one referrer more, released after
        // everything else that goes, in its order.
        let held = |x: u32| {
            let i = x as usize;
            (i < total && !mark[i]).then_some(i)
        };
        for &f in dropped {
            if let Some(k) = held(f) {
                pk.indeg[k] += 1;
            }
        }
        let mut roots = std::mem::take(&mut pk.queue);
        roots.clear();
        for &i in &pk.unmarked {
            if pk.indeg[i as usize] == 0 {
                roots.push(i);
            }
        }
        let released = roots.len();
        for &f in dropped {
            if let Some(k) = held(f) {
                roots.push(k as u32);
            }
        }
        let enter = |pk: &FreeBufs, i: usize, stack: &mut Vec<(u32, u32)>, order: &mut Vec<u32>| {
            if i < nfuts {
                order.push(i as u32);
            }
            stack.push((i as u32, pk.span[i].0));
        };
        for (j, &r) in roots.iter().enumerate() {
            if j >= released {
                pk.indeg[r as usize] -= 1;
                if pk.indeg[r as usize] != 0 {
                    continue;
                }
            }
            started.push((r, order.len() as u32));
            enter(pk, r as usize, &mut stack, &mut order);
            while let Some(&mut (k, ref mut e)) = stack.last_mut() {
                if *e == pk.span[k as usize].1 {
                    stack.pop();
                    continue;
                }
                let child = pk.adj[*e as usize] as usize;
                *e += 1;
                if child == k as usize {
                    continue;
                }
                pk.indeg[child] -= 1;
                if pk.indeg[child] == 0 {
                    enter(pk, child, &mut stack, &mut order);
                }
            }
        }
        pk.stack = stack;
        pk.queue = roots;
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;

    /// `unmarked_subgraph` leaves out, as inert, the coroutine of a started
    /// task with no frames left and a function without free variables
    /// whose coroutine is not made: their edges must be none.
    #[test]
    fn a_finished_tasks_coroutine_and_an_unmade_closureless_function_refer_to_nothing() {
        let (mut seen, mut unmade) = (0, 0);
        for size in [10usize, 50] {
            for p in crate::bench::programs(7, 100, size) {
                let mut m = Machine::new(Profile::new(3, 12, false).unwrap());
                m.run(&p, &[]);
                let mut out = Vec::new();
                for (t, task) in m.tasks.iter().enumerate() {
                    if task.started && task.frames.is_empty() {
                        m.edges(N::Coro(t as u32), &mut out);
                        assert!(out.is_empty(), "task {t}: {out:?}");
                        seen += 1;
                    }
                }
                // The graph's function list, made if the run asked a
                // collection question (a fresh machine has none before).
                for (k, &f) in m.gcx.ids.iter().enumerate() {
                    if m.fns[f as usize].cells == crate::model::coro::NONE
                        && m.gcx.free[k].is_empty()
                    {
                        m.edges(N::Fn(f), &mut out);
                        assert!(out.is_empty(), "function {f}: {out:?}");
                        unmade += 1;
                    }
                }
            }
        }
        assert!(seen > 0 && unmade > 0, "nothing to look at");
    }
}
