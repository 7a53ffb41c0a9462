//! The garbage a reachability walk leaves unmarked, sorted out the way
//! CPython's refcounting meets it: what a reference cycle keeps (and so
//! waits for a collection), and the order in which the rest is deallocated
//! at once, depth first from what was dropped.

use super::machine::Machine;

/// Reused buffers of `mark_cycle_kept`: the unmarked subgraph as
/// adjacency lists, in-degrees and the peeling queue.
#[derive(Default)]
pub struct Peel {
    start: Vec<u32>,
    adj: Vec<u32>,
    indeg: Vec<u32>,
    queue: Vec<u32>,
    /// `dealloc_order`'s depth-first stack: (node, next edge).
    stack: Vec<(u32, u32)>,
}

impl Machine {
    /// What refcounting frees now, given `mark` (everything reachable):
    /// marks what garbage cycles keep too, then returns the futures left
    /// out in the order they are deallocated.
    pub(super) fn refcount_frees(&mut self, mark: &mut [bool]) -> Vec<u32> {
        self.mark_cycle_kept(mark);
        self.dealloc_order(mark)
    }

    /// Marks the unmarked nodes that a garbage cycle keeps: those on a
    /// cycle of unmarked nodes or reachable from one. Peeling the unmarked
    /// subgraph (repeatedly dropping nodes nothing unmarked points at)
    /// leaves exactly those, in time linear in the subgraph.
    fn mark_cycle_kept(&mut self, mark: &mut [bool]) {
        let total = mark.len();
        self.mark_absent(mark);
        let mut pk = std::mem::take(&mut self.gc_peel);
        pk.start.clear();
        pk.adj.clear();
        pk.indeg.clear();
        pk.indeg.resize(total, 0);
        let mut buf = std::mem::take(&mut self.gc_buf);
        for i in 0..total {
            pk.start.push(pk.adj.len() as u32);
            if mark[i] {
                continue;
            }
            buf.clear();
            self.edges(self.node_of(i), &mut buf);
            for &y in &buf {
                let j = self.idx(y);
                if !mark[j] {
                    pk.adj.push(j as u32);
                    pk.indeg[j] += 1;
                }
            }
        }
        pk.start.push(pk.adj.len() as u32);
        self.gc_buf = buf;
        pk.queue.clear();
        pk.queue
            .extend((0..total as u32).filter(|&i| !mark[i as usize] && pk.indeg[i as usize] == 0));
        while let Some(i) = pk.queue.pop() {
            let (a, b) = (pk.start[i as usize], pk.start[i as usize + 1]);
            for k in a..b {
                let j = pk.adj[k as usize] as usize;
                pk.indeg[j] -= 1;
                if pk.indeg[j] == 0 {
                    pk.queue.push(j as u32);
                }
            }
        }
        for (m, &d) in mark.iter_mut().zip(&pk.indeg) {
            if !*m && d > 0 {
                *m = true;
            }
        }
        self.gc_peel = pk;
    }

    /// The futures `mark` leaves out (garbage that no cycle keeps, so a
    /// DAG), in the order refcounting deallocates them: the objects nothing
    /// else references go first, lowest first; deallocating one drops its
    /// references in order, and one whose last reference that was goes at
    /// once, depth first, before the next (what `Py_DECREF` does). Each
    /// future appears when its deallocation starts, as its finalizer runs.
    ///
    /// Reads the unmarked subgraph `mark_cycle_kept` just built.
    fn dealloc_order(&mut self, mark: &[bool]) -> Vec<u32> {
        let total = mark.len();
        let mut order = std::mem::take(&mut self.gc_order_futs);
        order.clear();
        if !(0..self.futs.len()).any(|f| !mark[f] && !self.futs[f].dead) {
            return order;
        }
        let mut pk = std::mem::take(&mut self.gc_peel);
        pk.indeg.clear();
        pk.indeg.resize(total, 0);
        for i in 0..total {
            if mark[i] {
                continue;
            }
            for k in pk.start[i]..pk.start[i + 1] {
                let j = pk.adj[k as usize] as usize;
                if j != i && !mark[j] {
                    pk.indeg[j] += 1;
                }
            }
        }
        let nfuts = self.futs.len();
        let mut stack = std::mem::take(&mut pk.stack);
        stack.clear();
        // The roots are the nodes nothing references before any goes: a
        // node whose last referrer goes later is entered from there, once.
        let mut roots = std::mem::take(&mut pk.queue);
        roots.clear();
        roots.extend((0..total as u32).filter(|&r| !mark[r as usize] && pk.indeg[r as usize] == 0));
        let enter = |n: usize, stack: &mut Vec<(u32, u32)>, order: &mut Vec<u32>| {
            if n < nfuts {
                order.push(n as u32);
            }
            stack.push((n as u32, pk.start[n]));
        };
        for &r in &roots {
            enter(r as usize, &mut stack, &mut order);
            while let Some(&mut (n, ref mut k)) = stack.last_mut() {
                if *k == pk.start[n as usize + 1] {
                    stack.pop();
                    continue;
                }
                let child = pk.adj[*k as usize] as usize;
                *k += 1;
                if child == n as usize || mark[child] {
                    continue;
                }
                pk.indeg[child] -= 1;
                if pk.indeg[child] == 0 {
                    enter(child, &mut stack, &mut order);
                }
            }
        }
        pk.stack = stack;
        pk.queue = roots;
        self.gc_peel = pk;
        order
    }
}
