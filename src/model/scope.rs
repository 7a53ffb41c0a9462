//! Static facts about a program that the interpreter needs at every step,
//! computed once per run in linear time without recursion: which Python
//! function each statement runs in, where each name lives (a slot per
//! binding function and name, since no function runs twice in one run),
//! which statements are in tail position (`return _n(...)` in pygen),
//! where each `try`'s clauses are, and task names.

use crate::ast::{Kind, NodeId, Program, SpawnMode, Sym};
use crate::trace::Name;
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
    /// What a body's step needs of each statement (`Step`), with which
    /// statements' value is the coroutine's (`Step::tail`).
    pub step: Vec<Step>,
    /// Statements inside a `call-soon`/`call-later` callback.
    pub in_callback: Vec<bool>,
    /// For each `try`: where its body ends (its first `except` or
    /// `finally` clause, or its end), and its `finally` clause or NONE.
    pub try_body_end: Vec<NodeId>,
    pub try_finally: Vec<NodeId>,
    /// The enclosing function of each function id (`n + k` for the
    /// wrapper `_awk` of a non-`do` awaitable k).
    pub fn_parent: Vec<u32>,
    /// The symbol of each slot.
    pub slot_sym: Vec<Sym>,
    /// The binding function of each slot.
    pub slot_binder: Vec<NodeId>,
    /// How many spawns name each symbol (two or more get `name@node`).
    spawn_count: Vec<u32>,
    /// The name each node gives the object it makes (a task, a labelled
    /// future), and at `n + node` the name of the task that runs awaitable
    /// `node` (itself possibly a spawn), made on first use: a name is
    /// shared, not copied, by every event and rerun that mentions it.
    names: Vec<Option<Name>>,
    /// The text a node's code holds as a constant (a raise's, fail's or
    /// cancel's message; a string value names its node instead), made by
    /// `make_names` for the runs that share an analysis. Empty otherwise
    /// (and when the program has no text): a run made with `compute` alone
    /// runs once, and allocates each text when it is used, as a table
    /// made for it would cost more than it saves.
    texts: Vec<Option<Rc<str>>>,
    /// Buffers only `compute` uses, reused between runs.
    scratch: Scratch,
}

/// `compute`'s reused buffers: the open subtrees (node, end); slots chained
/// by symbol and by binding function; the scoped name table (symbol ->
/// stack of open binding functions and their slots).
#[derive(Default)]
struct Scratch {
    open: Vec<(NodeId, NodeId)>,
    sym_first: Vec<u32>,
    sym_next: Vec<u32>,
    fn_first: Vec<u32>,
    fn_next: Vec<u32>,
    table: Vec<Vec<(NodeId, u32)>>,
}

/// How a body's step runs a statement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Class {
    /// `return`: its value is the function's.
    Return,
    /// Never suspends: `Machine::simple` runs it.
    Simple,
    /// May suspend: `dispatch` starts it (and not a statement at all, the
    /// root or a gather's reference, which no body reaches).
    #[default]
    Suspends,
}

/// A statement's facts a body's step reads, one table entry instead of
/// matching its `Kind` and reading the program's node and `tail`, each
/// indexed on its own, on every statement started and finished.
#[derive(Clone, Copy, Debug, Default)]
pub struct Step {
    /// One past its subtree: where the body goes on.
    pub end: NodeId,
    pub class: Class,
    /// It ends with a value (TRACE.md).
    pub valued: bool,
    /// Its value is the coroutine's: set by the pass over the nodes.
    pub tail: bool,
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
        reset(&mut self.step, n, Step::default());
        reset(&mut self.in_callback, n, false);
        reset(&mut self.try_body_end, n, NONE);
        reset(&mut self.try_finally, n, NONE);
        reset(&mut self.fn_parent, 2 * n, NONE);
        reset(&mut self.scratch.fn_first, 2 * n, NONE);
        reset(&mut self.spawn_count, p.names.len(), 0);
        reset(&mut self.names, 2 * n, None);
        self.texts.clear();
        reset(&mut self.scratch.sym_first, p.names.len(), NONE);
        self.slot_sym.clear();
        self.slot_binder.clear();
        self.scratch.sym_next.clear();
        self.scratch.fn_next.clear();
        if n == 0 {
            return;
        }
        self.functions(p);
        self.resolve(p);
        for (id, st) in self.step.iter_mut().enumerate() {
            let k = p.kind(id as NodeId);
            *st = Step {
                end: p.end(id as NodeId),
                class: super::frames::class(k),
                valued: super::frames::valued(k),
                tail: st.tail,
            };
        }
    }

    /// One pre-order pass: which function each node runs in, functions'
    /// parents, tails, callbacks, spawn counts, and a slot per (binding
    /// function, name) numbered in order of first binding. Children
    /// inherit from parents, whose facts are final by then. A non-`do`
    /// awaitable X is wrapped in its own function `_awX`, whose id is
    /// `n + X` (X itself may be a spawn or callback, a function too).
    fn functions(&mut self, p: &Program) {
        let n = p.len();
        let nn = n as NodeId;
        self.is_fn[0] = true;
        self.scratch.open.clear();
        self.scratch.open.push((0, p.end(0)));
        for id in 1..nn {
            while let Some(&(_, end)) = self.scratch.open.last() {
                if id < end {
                    break;
                }
                self.scratch.open.pop();
            }
            let parent = self.scratch.open.last().map_or(0, |&(top, _)| top);
            let end = p.end(id);
            self.scratch.open.push((id, end));
            let pk = p.kind(parent);
            let k = p.kind(id);
            let awaitable = matches!(pk, Kind::Gather { .. } | Kind::Shield | Kind::WaitFor(_))
                && !matches!(k, Kind::Ref(_));
            // Only the callback's own statement runs outside a task; a
            // spawn body inside it is a new function.
            let in_cb = matches!(pk, Kind::CallSoon | Kind::CallLater(_));
            self.in_callback[id as usize] = in_cb;
            let opens = matches!(
                k,
                Kind::Spawn(..) | Kind::Do | Kind::CallSoon | Kind::CallLater(_)
            );
            self.is_fn[id as usize] = opens;
            let outer = if matches!(
                pk,
                Kind::Main | Kind::Spawn(..) | Kind::Do | Kind::CallSoon | Kind::CallLater(_)
            ) {
                parent
            } else {
                self.exec_fn[parent as usize]
            };
            let wrapped = awaitable && !matches!(k, Kind::Do);
            let f = if wrapped {
                self.fn_parent[(nn + id) as usize] = outer;
                nn + id
            } else {
                outer
            };
            self.exec_fn[id as usize] = f;
            if opens {
                self.fn_parent[id as usize] = f;
            }
            // The last body statement of a function, or of a block in tail
            // position, is a tail (`except`/`finally` clauses follow the
            // body); so are wrapped awaitables and a tail `try`'s plain
            // `except` clauses. A callback's statements never are.
            let last_body = !matches!(k, Kind::Except(_) | Kind::Finally)
                && (end == p.end(parent) || matches!(p.kind(end), Kind::Except(_) | Kind::Finally));
            let pt = self.step[parent as usize].tail;
            self.step[id as usize].tail = !in_cb
                && (wrapped
                    || match (pk, k) {
                        (Kind::Main | Kind::Spawn(..) | Kind::Do, _) => last_body,
                        (Kind::Try, Kind::Except(c)) => pt && !c.star,
                        (
                            Kind::Try | Kind::Timeout(_) | Kind::TaskGroup(_) | Kind::Except(_),
                            _,
                        ) => pt && last_body,
                        _ => false,
                    });
            match k {
                Kind::Try => self.try_body_end[id as usize] = end,
                Kind::Except(_) | Kind::Finally => {
                    let body_end = &mut self.try_body_end[parent as usize];
                    *body_end = (*body_end).min(id);
                    if matches!(k, Kind::Finally) {
                        self.try_finally[parent as usize] = id;
                    }
                }
                Kind::Spawn(s, _) => self.spawn_count[s.0 as usize] += 1,
                _ => {}
            }
            if let Some(s) = binds(k, in_cb) {
                self.bind(f, s);
            }
        }
    }

    /// The slot of name `s` in function `f`, made on its first binding.
    fn bind(&mut self, f: NodeId, s: Sym) {
        let mut at = self.scratch.sym_first[s.0 as usize];
        while at != NONE {
            if self.slot_binder[at as usize] == f {
                return;
            }
            at = self.scratch.sym_next[at as usize];
        }
        let slot = self.slot_sym.len() as u32;
        self.slot_binder.push(f);
        self.slot_sym.push(s);
        self.scratch
            .sym_next
            .push(self.scratch.sym_first[s.0 as usize]);
        self.scratch.sym_first[s.0 as usize] = slot;
        self.scratch.fn_next.push(self.scratch.fn_first[f as usize]);
        self.scratch.fn_first[f as usize] = slot;
    }

    /// Resolves each use to the innermost enclosing binder with a scoped
    /// table (symbol -> stack of open binding functions and their slots).
    fn resolve(&mut self, p: &Program) {
        let nn = p.len() as NodeId;
        let mut table = std::mem::take(&mut self.scratch.table);
        for v in table.iter_mut() {
            v.clear();
        }
        if table.len() < p.names.len() {
            table.resize(p.names.len(), Vec::new());
        }
        let mut open = std::mem::take(&mut self.scratch.open);
        open.clear();
        for id in 0..nn {
            while let Some(&(top, end)) = open.last() {
                if id < end {
                    break;
                }
                open.pop();
                let mut at = self.scratch.fn_first[top as usize];
                while at != NONE {
                    table[self.slot_sym[at as usize].0 as usize].pop();
                    at = self.scratch.fn_next[at as usize];
                }
            }
            let ef = self.exec_fn[id as usize];
            let wrapper = if ef == nn + id { nn + id } else { NONE };
            let own = if self.is_fn[id as usize] { id } else { NONE };
            for sc in [wrapper, own] {
                if sc == NONE {
                    continue;
                }
                open.push((sc, p.end(id)));
                let mut at = self.scratch.fn_first[sc as usize];
                while at != NONE {
                    table[self.slot_sym[at as usize].0 as usize].push((sc, at));
                    at = self.scratch.fn_next[at as usize];
                }
            }
            let k = p.kind(id);
            match *k {
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
                    if let Some(s) = k.first_sym()
                        && let Some(&(b, slot)) = table[s.0 as usize].last()
                    {
                        self.slot[id as usize] = slot;
                        self.local[id as usize] = b == ef;
                    }
                }
            }
        }
        self.scratch.table = table;
        self.scratch.open = open;
    }

    /// Gives `other` this one's scratch buffers, which only `compute`
    /// uses: an analysis kept for later runs need not hold them.
    pub fn give_scratch(&mut self, other: &mut Scopes) {
        std::mem::swap(&mut self.scratch, &mut other.scratch);
    }

    /// The task name of spawn `node`: its name, or `name@node` when
    /// several spawns share the name.
    #[inline]
    pub fn task_name(&mut self, p: &Program, node: NodeId) -> Name {
        // Made beforehand (`make_names`) for the runs that share an
        // analysis: then a spawn's step only shares it.
        match self.names.get(node as usize) {
            Some(Some(name)) => name.clone(),
            _ => self.new_task_name(p, node),
        }
    }

    #[inline(never)]
    fn new_task_name(&mut self, p: &Program, node: NodeId) -> Name {
        let Kind::Spawn(s, _) = p.kind(node) else {
            unreachable!("only spawns have task names")
        };
        let shared = self.spawn_count[s.0 as usize] > 1;
        self.name_of(node, || {
            let name = p.name(*s);
            if shared {
                Name::from(format!("{name}@{node}"))
            } else {
                Name::from(name)
            }
        })
    }

    /// The task name of awaitable `node` wrapped in a task: `@node`.
    pub fn awaitable_name(&mut self, node: NodeId) -> Name {
        let at = self.exec_fn.len() as NodeId + node;
        self.name_of(at, || Name::from(format!("@{node}")))
    }

    /// The label of the future node `node` binds to `sym`.
    pub fn label(&mut self, p: &Program, node: NodeId, sym: Sym) -> Name {
        self.name_of(node, || Name::from(p.name(sym)))
    }

    /// The constant text `s` that node `node` holds (see `texts`).
    pub fn text(&self, node: NodeId, s: &str) -> Rc<str> {
        match self.texts.get(node as usize) {
            Some(Some(x)) => x.clone(),
            _ => Rc::from(s),
        }
    }

    /// Node `node`'s optional message `m` (see `texts`).
    pub fn message(&self, node: NodeId, m: &Option<String>) -> Option<Rc<str>> {
        m.as_deref().map(|s| self.text(node, s))
    }

    /// Makes every name and text the program can give, as its compiled
    /// code holds them as constants.
    pub fn make_names(&mut self, p: &Program) {
        for id in 0..p.len() as NodeId {
            match p.kind(id) {
                Kind::Spawn(..) => {
                    self.task_name(p, id);
                }
                &Kind::Future(s) => {
                    self.label(p, id, s);
                }
                Kind::Let(_) if self.slot[id as usize] != NONE => {
                    self.label(p, id, self.slot_sym[self.slot[id as usize] as usize]);
                }
                Kind::Gather { .. } | Kind::Shield | Kind::WaitFor(_) => {
                    for c in p.children(id) {
                        if !matches!(p.kind(c), Kind::Ref(_)) {
                            self.awaitable_name(c);
                        }
                    }
                }
                Kind::Raise(_, Some(m))
                | Kind::Fail(_, _, Some(m))
                | Kind::Cancel(_, Some(m))
                | Kind::CancelSelf(Some(m)) => {
                    if self.texts.is_empty() {
                        self.texts.resize(p.len(), None);
                    }
                    self.texts[id as usize] = Some(Rc::from(m.as_str()));
                }
                _ => {}
            }
        }
    }

    fn name_of(&mut self, node: NodeId, make: impl FnOnce() -> Name) -> Name {
        self.names[node as usize].get_or_insert_with(make).clone()
    }
}

/// Clears `v` to `n` copies of `x`, keeping its capacity.
fn reset<T: Clone>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}
