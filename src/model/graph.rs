//! The object graph's nodes and their dense indices. A refcount check or
//! a collection marks nodes in bitmaps indexed by kind: futures first, then
//! task groups and as_completeds, coroutines, function objects, frames and
//! exceptions. Who refers to whom is in `gc.rs`.

use super::exc::ExcId;
use super::machine::Machine;
use crate::ast::NodeId;

/// Lists into `out` the indices whose flag in `set` is false, in order.
/// A refcount free (`dealloc.rs`) starts from this list of the nodes left
/// unmarked, and few are: most are reachable. So eight flags are read as
/// one word and a word of set flags is passed over at once; the unset ones
/// in a word are found by their bits, not a branch per index (which nodes
/// remain follows no pattern a branch predictor learns).
#[inline]
pub fn list_unset(set: &[bool], out: &mut Vec<u32>) {
    out.clear();
    out.resize(set.len(), 0);
    let mut n = 0;
    let mut chunks = set.chunks_exact(8);
    let mut base = 0u32;
    for c in &mut chunks {
        // A flag is one byte, 0 or 1: the word has bit 0 of byte k set
        // exactly when flag k is.
        let w = c.iter().rev().fold(0u64, |w, &b| (w << 8) | b as u64);
        let mut unset = !w & 0x0101_0101_0101_0101;
        while unset != 0 {
            out[n] = base + unset.trailing_zeros() / 8;
            n += 1;
            unset &= unset - 1;
        }
        base += 8;
    }
    for (k, &x) in chunks.remainder().iter().enumerate() {
        out[n] = base + k as u32;
        n += !x as usize;
    }
    out.truncate(n);
}

/// `edges_of_unset`'s step for node `i` (then the next), whose flag is
/// `set`: its edges, and with `EMPTY` whether there were none.
#[inline(always)]
fn visit<const EMPTY: bool>(
    out: &mut Vec<N>,
    empty: &mut [bool],
    i: &mut usize,
    set: bool,
    edges: impl FnOnce(&mut Vec<N>),
) {
    if !set {
        let before = out.len();
        edges(out);
        if EMPTY {
            empty[*i] = out.len() == before;
        }
    }
    *i += 1;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum N {
    Fut(u32),
    Tg(u32),
    Fn(NodeId),
    /// A frame kept by a traceback: its own slots.
    Frame(NodeId),
    Exc(ExcId),
    /// A task's coroutine object.
    Coro(u32),
    /// An `as_completed`'s queue, which a traceback through its frames
    /// keeps. From the moment it has a timer until the timer is cancelled
    /// (when every future is done in time), its closures are also a
    /// reference cycle (3.11/3.12: cell `timeout_handle` -> the
    /// TimerHandle, which keeps its callback `_on_timeout` -> cell
    /// `_on_completion` -> that function -> the cell; 3.13: the iterator
    /// <-> its handle's bound method), which holds the queue and the
    /// futures not done yet until a collection frees it: the loop's timer
    /// list holds the handle only until `loop.close()`.
    Ac(u32),
}

/// How many futures, task groups, as_completeds and tasks there are: graph
/// indices of the later kinds of node shift when one of these grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub futs: usize,
    pub tgs: usize,
    pub acs: usize,
    pub tasks: usize,
}

impl Layout {
    /// Whether `x` existed when there were this many objects (functions,
    /// frames and exceptions are never in question: see `Machine::fit`).
    pub fn has(self, x: N) -> bool {
        match x {
            N::Fut(i) => (i as usize) < self.futs,
            N::Tg(i) => (i as usize) < self.tgs,
            N::Ac(i) => (i as usize) < self.acs,
            N::Coro(i) => (i as usize) < self.tasks,
            N::Fn(_) | N::Frame(_) | N::Exc(_) => true,
        }
    }

    /// The graph index of the first task coroutine: coroutines follow
    /// the futures, task groups and as_completeds.
    pub fn coros_base(self) -> usize {
        self.futs + self.tgs + self.acs
    }
}

impl Machine {
    /// The number of graph nodes: the length of every bitmap.
    pub(super) fn total_nodes(&self) -> usize {
        self.futs.len()
            + self.tgs.len()
            + self.acs.len()
            + 2 * self.gcx.ids.len()
            + self.excs.len()
            + self.tasks.len()
    }

    /// The graph index of `x`: futures, task groups, coroutines, function
    /// objects, frames kept by tracebacks, exceptions.
    #[inline]
    pub(super) fn idx(&self, x: N) -> usize {
        self.idx_in(self.layout(), x)
    }

    /// The object counts that place each kind of node in the graph's index.
    #[inline]
    pub(super) fn layout(&self) -> Layout {
        Layout {
            futs: self.futs.len(),
            tgs: self.tgs.len(),
            acs: self.acs.len(),
            tasks: self.tasks.len(),
        }
    }

    /// The graph index `x` had when there were `l`'s objects (a collection
    /// in progress keeps bitmaps made then).
    #[inline]
    pub(super) fn idx_in(&self, l: Layout, x: N) -> usize {
        // Task groups and as_completeds share a range: `g` counts both.
        let (f, a, g, c, nf) = (l.futs, l.tgs, l.tgs + l.acs, l.tasks, self.gcx.ids.len());
        let dense = |i: NodeId| self.gcx.dense[i as usize] as usize;
        match x {
            N::Fut(i) => i as usize,
            N::Tg(i) => f + i as usize,
            N::Ac(i) => f + a + i as usize,
            N::Coro(i) => f + g + i as usize,
            N::Fn(i) => f + g + c + dense(i),
            N::Frame(i) => f + g + c + nf + dense(i),
            N::Exc(i) => f + g + c + 2 * nf + i as usize,
        }
    }

    /// The graph index of the first function in `l`'s layout: function
    /// `ids[k]` is at this plus `k`, `ids` being in dense order.
    #[inline]
    pub(super) fn fns_base(&self, l: Layout) -> usize {
        l.coros_base() + l.tasks
    }

    /// The graph index of the first frame in `l`'s layout: frame `ids[k]`
    /// is at this plus `k`.
    #[inline]
    pub(super) fn frames_base(&self, l: Layout) -> usize {
        self.fns_base(l) + self.gcx.ids.len()
    }

    /// What every node whose flag in `set` (by `l`'s indices) is false
    /// refers to, pushed onto `out`: a collection's cascade counts
    /// in-degrees from it. With `EMPTY`, `empty` tells by index which of
    /// those nodes refer to nothing. Kind by kind, so no index is turned
    /// back into a node (`node_of`), and all at once: listing the unset
    /// indices first, then each node's edges apart, cost a tenth more of
    /// the cascade.
    pub(super) fn edges_of_unset<const EMPTY: bool>(
        &self,
        set: &[bool],
        l: Layout,
        out: &mut Vec<N>,
        empty: &mut Vec<bool>,
    ) {
        let nf = self.gcx.ids.len();
        if EMPTY {
            empty.clear();
            empty.resize(set.len(), false);
        }
        let mut i = 0;
        let (futs, rest) = set.split_at(l.futs);
        let (tgs, rest) = rest.split_at(l.tgs);
        let (acs, rest) = rest.split_at(l.acs);
        let (coros, rest) = rest.split_at(l.tasks);
        let (fns, rest) = rest.split_at(nf);
        let (frames, excs) = rest.split_at(nf);
        for (f, &s) in futs.iter().enumerate() {
            visit::<EMPTY>(out, empty, &mut i, s, |o| self.fut_edges(f as u32, o));
        }
        for (g, &s) in tgs.iter().enumerate() {
            visit::<EMPTY>(out, empty, &mut i, s, |o| {
                self.rare_edges(N::Tg(g as u32), o)
            });
        }
        for (a, &s) in acs.iter().enumerate() {
            visit::<EMPTY>(out, empty, &mut i, s, |o| {
                self.rare_edges(N::Ac(a as u32), o)
            });
        }
        for (t, &s) in coros.iter().enumerate() {
            visit::<EMPTY>(out, empty, &mut i, s, |o| self.coro_edges(t as u32, o));
        }
        for (&func, &s) in self.gcx.ids.iter().zip(fns) {
            visit::<EMPTY>(out, empty, &mut i, s, |o| self.fn_edges(func, o));
        }
        for (&func, &s) in self.gcx.ids.iter().zip(frames) {
            visit::<EMPTY>(out, empty, &mut i, s, |o| {
                self.rare_edges(N::Frame(func), o)
            });
        }
        for (e, &s) in excs.iter().enumerate() {
            visit::<EMPTY>(out, empty, &mut i, s, |o| {
                self.rare_edges(N::Exc(e as ExcId), o)
            });
        }
    }

    #[inline]
    pub(super) fn node_of(&self, i: usize) -> N {
        let (f, a, c, nf) = (
            self.futs.len(),
            self.tgs.len(),
            self.tasks.len(),
            self.gcx.ids.len(),
        );
        let g = a + self.acs.len();
        if i < f {
            N::Fut(i as u32)
        } else if i < f + a {
            N::Tg((i - f) as u32)
        } else if i < f + g {
            N::Ac((i - f - a) as u32)
        } else if i < f + g + c {
            N::Coro((i - f - g) as u32)
        } else if i < f + g + c + nf {
            N::Fn(self.gcx.ids[i - f - g - c])
        } else if i < f + g + c + 2 * nf {
            N::Frame(self.gcx.ids[i - f - g - c - nf])
        } else {
            N::Exc((i - f - g - c - 2 * nf) as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::list_unset;

    /// The word-at-a-time listing must agree with a plain filter on every
    /// length (whole words and a remainder) and every mix of flags.
    #[test]
    fn list_unset_lists_exactly_the_unset_indices_in_order() {
        let mut out = vec![7u32; 3];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..70 {
            for density in [0u64, 1, 4, 7, 8] {
                let set: Vec<bool> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed % 8 < density
                    })
                    .collect();
                list_unset(&set, &mut out);
                let want: Vec<u32> = (0..len as u32).filter(|&i| !set[i as usize]).collect();
                assert_eq!(out, want, "flags {set:?}");
            }
        }
    }
}
