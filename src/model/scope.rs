//! Static facts about a program that the interpreter needs at every step,
//! computed once per run in linear time without recursion: which Python
//! function each statement runs in, where each name lives (a slot per
//! binding function and name, since no function runs twice in one run),
//! which statements are in tail position (`return _n(...)` in pygen), and
//! task names.

use crate::ast::{Kind, NodeId, Program, SpawnMode, Sym};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

pub const NONE: u32 = u32::MAX;

#[derive(Default)]
pub struct Scopes {
    /// For each node: the function it executes in (a node id, or `n + k`
    /// for the wrapper function of awaitable k).
    pub exec_fn: Vec<NodeId>,
    /// Whether a node is a function (a Python `def`): main, spawn bodies,
    /// `do`, non-ref awaitables, callbacks.
    pub is_fn: Vec<bool>,
    /// For nodes naming a symbol (reads or binds): its slot, or NONE when
    /// it binds nothing (a spawn inside a callback, `:weak`, `:keep`).
    pub slot: Vec<u32>,
    /// For `spawn :in G`: the slot of G.
    pub group_slot: Vec<u32>,
    /// Whether a read of the node's symbol is of a local of the function
    /// it runs in (UnboundLocalError) rather than a free variable (NameError).
    pub local: Vec<bool>,
    /// Statements whose value is the coroutine's value.
    pub tail: Vec<bool>,
    /// Statements inside a `call-soon`/`call-later` callback.
    pub in_callback: Vec<bool>,
    /// The enclosing function of each function id (`n + k` for the
    /// wrapper `_awk` of a non-`do` awaitable k).
    pub fn_parent: Vec<u32>,
    /// The symbol of each slot.
    pub slot_sym: Vec<Sym>,
    /// The binding function of each slot.
    pub slot_binder: Vec<NodeId>,
    /// How many spawns name each symbol (two or more get `name@node`).
    spawn_count: Vec<u32>,
    /// Reused buffers: parents, bindings grouped by function, and the
    /// scoped name table (symbol -> stack of (binding function, slot)).
    parents: Vec<NodeId>,
    by_fn_start: Vec<u32>,
    by_fn: Vec<(Sym, u32)>,
    table: Vec<Vec<(NodeId, u32)>>,
    open: Vec<(NodeId, NodeId)>,
    syms: Vec<Sym>,
    seen: HashSet<(NodeId, u32), BuildHasherDefault<PairHasher>>,
}

/// A fast hasher for pairs of small integers (FxHash's multiply-rotate);
/// only membership is asked of it, so its order never shows.
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn binds(k: &Kind, in_cb: bool) -> Option<Sym> {
    match k {
        Kind::Spawn(s, SpawnMode::Bind) | Kind::Spawn(s, SpawnMode::In(_)) if !in_cb => Some(*s),
        Kind::Future(s) | Kind::Let(s) | Kind::TaskGroup(s) | Kind::Forget(s) => Some(*s),
        _ => None,
    }
}

impl Scopes {
    pub fn compute(&mut self, p: &Program) {
        let n = p.len();
        reset(&mut self.exec_fn, n, 0);
        reset(&mut self.is_fn, n, false);
        reset(&mut self.slot, n, NONE);
        reset(&mut self.group_slot, n, NONE);
        reset(&mut self.local, n, false);
        reset(&mut self.tail, n, false);
        reset(&mut self.in_callback, n, false);
        self.slot_sym.clear();
        self.slot_binder.clear();
        if n == 0 {
            return;
        }
        // Functions, tails, callbacks: children inherit from parents, so
        // one pre-order pass with a parent table suffices. A non-`do`
        // awaitable X is wrapped in its own function `_awX`, whose id is
        // `n + X` (X itself may be a spawn or callback, a function too).
        self.compute_parents(p);
        let nn = n as NodeId;
        reset(&mut self.fn_parent, 2 * n, NONE);
        reset(&mut self.spawn_count, p.names.len(), 0);
        for node in &p.nodes {
            if let Kind::Spawn(s, _) = node.kind {
                self.spawn_count[s.0 as usize] += 1;
            }
        }
        self.is_fn[0] = true;
        self.tail_body(p, 0, true);
        for id in 1..n as NodeId {
            let parent = self.parents[id as usize];
            let pk = p.kind(parent);
            let awaitable = matches!(pk, Kind::Gather { .. } | Kind::Shield | Kind::WaitFor(_))
                && !matches!(p.kind(id), Kind::Ref(_));
            let k = p.kind(id);
            // Only the callback's own statement runs outside a task; a
            // spawn body inside it is a new function.
            self.in_callback[id as usize] = matches!(pk, Kind::CallSoon | Kind::CallLater(_));
            let opens = matches!(
                k,
                Kind::Spawn(..) | Kind::Do | Kind::CallSoon | Kind::CallLater(_)
            );
            self.is_fn[id as usize] = opens;
            let parent_opens = matches!(
                pk,
                Kind::Main | Kind::Spawn(..) | Kind::Do | Kind::CallSoon | Kind::CallLater(_)
            );
            let outer = if parent_opens {
                parent
            } else {
                self.exec_fn[parent as usize]
            };
            self.exec_fn[id as usize] = if awaitable && !matches!(k, Kind::Do) {
                self.fn_parent[(nn + id) as usize] = outer;
                nn + id
            } else {
                outer
            };
            if opens {
                self.fn_parent[id as usize] = self.exec_fn[id as usize];
            }
            if matches!(k, Kind::Spawn(..) | Kind::Do) {
                self.tail_body(p, id, true);
            }
            if awaitable && !matches!(k, Kind::Do) {
                self.tail[id as usize] = true;
            }
            let t = self.tail[id as usize];
            match k {
                Kind::Try => {
                    self.tail_body(p, id, t);
                    for c in p.children(id) {
                        match p.kind(c) {
                            Kind::Except(catch) => {
                                let ct = t && !catch.star;
                                self.tail[c as usize] = ct;
                                self.tail_body(p, c, ct);
                            }
                            Kind::Finally => self.tail_body(p, c, false),
                            _ => {}
                        }
                    }
                }
                Kind::Timeout(_) | Kind::TaskGroup(_) => self.tail_body(p, id, t),
                _ => {}
            }
        }
        // Callback statements are never tails.
        for id in 1..n {
            if self.in_callback[id] {
                self.tail[id] = false;
            }
        }
        self.bind_slots(p);
        self.resolve(p);
    }

    /// A slot per (binding function, name), numbered in order of first
    /// binding; then the bindings grouped by function.
    fn bind_slots(&mut self, p: &Program) {
        let nf = 2 * p.len();
        self.seen.clear();
        reset(&mut self.by_fn_start, nf + 1, 0);
        for id in 0..p.len() as NodeId {
            if let Some(s) = binds(p.kind(id), self.in_callback[id as usize]) {
                let f = self.exec_fn[id as usize];
                if !self.seen.insert((f, s.0)) {
                    continue;
                }
                self.slot_binder.push(f);
                self.slot_sym.push(s);
                self.by_fn_start[f as usize + 1] += 1;
            }
        }
        for f in 0..nf {
            self.by_fn_start[f + 1] += self.by_fn_start[f];
        }
        self.by_fn.clear();
        self.by_fn.resize(self.slot_sym.len(), (Sym(0), 0));
        let mut fill = self.by_fn_start.clone();
        for (slot, (&f, &s)) in self.slot_binder.iter().zip(&self.slot_sym).enumerate() {
            let at = &mut fill[f as usize];
            self.by_fn[*at as usize] = (s, slot as u32);
            *at += 1;
        }
    }

    fn bindings(&self, f: NodeId) -> std::ops::Range<usize> {
        self.by_fn_start[f as usize] as usize..self.by_fn_start[f as usize + 1] as usize
    }

    /// Resolves each use to the innermost enclosing binder with a scoped
    /// table (symbol -> stack of open binding functions and their slots).
    fn resolve(&mut self, p: &Program) {
        let n = p.len();
        let nn = n as NodeId;
        let mut table = std::mem::take(&mut self.table);
        for v in table.iter_mut() {
            v.clear();
        }
        if table.len() < p.names.len() {
            table.resize(p.names.len(), Vec::new());
        }
        let mut open = std::mem::take(&mut self.open);
        open.clear();
        let mut syms = std::mem::take(&mut self.syms);
        for id in 0..n as NodeId {
            while let Some(&(top, end)) = open.last() {
                if id < end {
                    break;
                }
                open.pop();
                for k in self.bindings(top) {
                    table[self.by_fn[k].0.0 as usize].pop();
                }
            }
            let mut scopes = [NONE, NONE];
            if self.exec_fn[id as usize] == nn + id {
                scopes[0] = nn + id;
            }
            if self.is_fn[id as usize] {
                scopes[1] = id;
            }
            for sc in scopes.into_iter().filter(|&x| x != NONE) {
                open.push((sc, p.end(id)));
                for k in self.bindings(sc) {
                    let (s, slot) = self.by_fn[k];
                    table[s.0 as usize].push((sc, slot));
                }
            }
            let k = p.kind(id);
            syms.clear();
            k.syms(&mut syms);
            if syms.is_empty() {
                continue;
            }
            let ef = self.exec_fn[id as usize];
            match k {
                Kind::Spawn(s, mode) => {
                    if binds(k, self.in_callback[id as usize]).is_some() {
                        let own = table[s.0 as usize].iter().rev().find(|&&(f, _)| f == ef);
                        self.slot[id as usize] = own.expect("a binding spawn has a slot").1;
                    }
                    if let SpawnMode::In(g) = mode {
                        // The group is read in the enclosing function, which
                        // is open below the spawn's own function.
                        let binder = table[g.0 as usize].iter().rev().find(|&&(f, _)| f != id);
                        if let Some(&(_, slot)) = binder {
                            self.group_slot[id as usize] = slot;
                        }
                    }
                }
                _ => {
                    // Reads happen in the exec function; for function nodes
                    // that are themselves statements (awaitables) the
                    // table already includes them.
                    if let Some(&(b, slot)) = table[syms[0].0 as usize].last() {
                        self.slot[id as usize] = slot;
                        self.local[id as usize] = b == ef;
                    }
                }
            }
        }
        self.table = table;
        self.open = open;
        self.syms = syms;
    }

    fn compute_parents(&mut self, p: &Program) {
        self.parents.clear();
        self.open.clear();
        for id in 0..p.len() as NodeId {
            while let Some(&(_, end)) = self.open.last() {
                if id < end {
                    break;
                }
                self.open.pop();
            }
            self.parents
                .push(self.open.last().map_or(NONE, |&(top, _)| top));
            self.open.push((id, p.end(id)));
        }
    }

    /// The task name of spawn `node`: its name, or `name@node` when
    /// several spawns share the name.
    pub fn task_name(&self, p: &Program, node: NodeId) -> Rc<str> {
        let Kind::Spawn(s, _) = p.kind(node) else {
            unreachable!("only spawns have task names")
        };
        let name = p.name(*s);
        if self.spawn_count[s.0 as usize] > 1 {
            Rc::from(format!("{name}@{node}"))
        } else {
            Rc::from(name)
        }
    }

    /// Marks the last body statement of `parent` as tail when `t`.
    fn tail_body(&mut self, p: &Program, parent: NodeId, t: bool) {
        if !t {
            return;
        }
        let last = p
            .children(parent)
            .filter(|&c| !matches!(p.kind(c), Kind::Except(_) | Kind::Finally))
            .last();
        if let Some(c) = last {
            self.tail[c as usize] = true;
        }
    }
}

/// Clears `v` to `n` copies of `x`, keeping its capacity.
fn reset<T: Clone>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}
