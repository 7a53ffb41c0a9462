//! Static facts about a program that the interpreter needs at every step,
//! computed once per run in linear time without recursion: which Python
//! function each statement runs in, where each name lives (a slot per
//! binding function and name, since no function runs twice in one run),
//! which statements are in tail position (`return _n(...)` in pygen), and
//! task names.

use crate::ast::{Kind, NodeId, Program, SpawnMode, Sym};
use std::collections::HashMap;
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
    /// Task name for spawn nodes and awaitable coroutines.
    pub task_name: Vec<Option<Rc<str>>>,
    /// Task name for non-ref awaitables (`@k`).
    pub aw_name: Vec<Option<Rc<str>>>,
    /// The enclosing function of each function id (`n + k` for the
    /// wrapper `_awk` of a non-`do` awaitable k).
    pub fn_parent: Vec<u32>,
    /// Name text of each slot.
    pub slot_names: Vec<Rc<str>>,
    /// Slot of each (binding function, symbol).
    pub slot_of: HashMap<(NodeId, Sym), u32>,
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
        self.exec_fn.clear();
        self.exec_fn.resize(n, 0);
        self.is_fn.clear();
        self.is_fn.resize(n, false);
        self.slot.clear();
        self.slot.resize(n, NONE);
        self.group_slot.clear();
        self.group_slot.resize(n, NONE);
        self.local.clear();
        self.local.resize(n, false);
        self.tail.clear();
        self.tail.resize(n, false);
        self.in_callback.clear();
        self.in_callback.resize(n, false);
        self.task_name.clear();
        self.task_name.resize(n, None);
        self.slot_names.clear();
        self.slot_of.clear();
        if n == 0 {
            return;
        }
        // Functions, tails, callbacks: children inherit from parents, so
        // one pre-order pass with a parent table suffices. A non-`do`
        // awaitable X is wrapped in its own function `_awX`, whose id is
        // `n + X` (X itself may be a spawn or callback, a function too).
        let parents = p.parents();
        let nn = n as NodeId;
        self.fn_parent.clear();
        self.fn_parent.resize(2 * n, NONE);
        self.aw_name.clear();
        self.aw_name.resize(n, None);
        let mut spawn_count = vec![0usize; p.names.len()];
        for node in &p.nodes {
            if let Kind::Spawn(s, _) = node.kind {
                spawn_count[s.0 as usize] += 1;
            }
        }
        self.is_fn[0] = true;
        self.tail_body(p, 0, true);
        for id in 1..n as NodeId {
            let parent = parents[id as usize].expect("non-root has a parent");
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
            if awaitable {
                if !matches!(k, Kind::Do) {
                    self.tail[id as usize] = true;
                }
                self.aw_name[id as usize] = Some(Rc::from(format!("@{id}")));
            }
            if let Kind::Spawn(s, _) = k {
                let name = p.name(*s);
                let t = if spawn_count[s.0 as usize] > 1 {
                    format!("{name}@{id}")
                } else {
                    name.to_string()
                };
                self.task_name[id as usize] = Some(Rc::from(t));
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
            if matches!(
                p.kind(parents[id].unwrap_or(0)),
                Kind::CallSoon | Kind::CallLater(_)
            ) {
                self.tail[id] = false;
            }
        }
        // Slots: the binding function of each (function, name) pair; then
        // resolve each use to the innermost enclosing binder, with a scoped
        // table (sym -> stack of open binding functions).
        let mut bound: HashMap<NodeId, Vec<Sym>> = HashMap::new();
        for id in 0..n as NodeId {
            if let Some(s) = binds(p.kind(id), self.in_callback[id as usize]) {
                let f = self.exec_fn[id as usize];
                let key = (f, s);
                if !self.slot_of.contains_key(&key) {
                    self.slot_of.insert(key, self.slot_names.len() as u32);
                    self.slot_names.push(Rc::from(p.name(s)));
                    bound.entry(f).or_default().push(s);
                }
            }
        }
        let mut table: Vec<Vec<NodeId>> = vec![Vec::new(); p.names.len()];
        // Open scopes: (scope id, end node).
        let mut open: Vec<(NodeId, NodeId)> = Vec::new();
        let mut syms = Vec::new();
        for id in 0..n as NodeId {
            while let Some(&(top, end)) = open.last() {
                if id < end {
                    break;
                }
                open.pop();
                if let Some(bs) = bound.get(&top) {
                    for s in bs {
                        table[s.0 as usize].pop();
                    }
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
                if let Some(bs) = bound.get(&sc) {
                    for s in bs {
                        table[s.0 as usize].push(sc);
                    }
                }
            }
            let k = p.kind(id);
            syms.clear();
            k.syms(&mut syms);
            if syms.is_empty() {
                continue;
            }
            let ef = self.exec_fn[id as usize];
            let lookup = |table: &Vec<Vec<NodeId>>, s: Sym| -> Option<NodeId> {
                table[s.0 as usize].last().copied()
            };
            match k {
                Kind::Spawn(s, mode) => {
                    if binds(k, self.in_callback[id as usize]).is_some() {
                        self.slot[id as usize] = self.slot_of[&(ef, *s)];
                    }
                    if let SpawnMode::In(g) = mode {
                        // The group is read in the enclosing function, which
                        // is open below the spawn's own function.
                        let binder = table[g.0 as usize]
                            .iter()
                            .rev()
                            .find(|&&f| f != id)
                            .copied();
                        if let Some(b) = binder {
                            self.group_slot[id as usize] = self.slot_of[&(b, *g)];
                        }
                    }
                }
                _ => {
                    let s = syms[0];
                    // Reads happen in the exec function; for function nodes
                    // that are themselves statements (awaitables) the
                    // table already includes them.
                    if let Some(b) = lookup(&table, s) {
                        self.slot[id as usize] = self.slot_of[&(b, s)];
                        self.local[id as usize] = b == ef;
                    }
                }
            }
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
