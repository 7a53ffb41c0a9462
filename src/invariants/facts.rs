//! Indexes over one program and one trace that every checker shares: where
//! each node started and ended, which task runs which node, which binding a
//! name has, and questions such as "was task T parked at event i".
//!
//! Everything here is built in linear passes with no recursion, and every
//! lookup tolerates a malformed trace (node or task numbers out of range),
//! since a checker must report a broken trace, not panic on it.

use crate::ast::{Kind, NodeId, Program, SpawnMode, Sym};
use crate::trace::{Exc, Fin, Outcome, Res, State, Trace, What};
use std::collections::HashMap;

/// The binding of a name, if the program binds it exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// Bound by no statement that binds (only by callbacks' spawns, say).
    None,
    Unique(NodeId),
    /// Bound by several statements: which one a use sees depends on scope.
    Many,
}

/// What a name refers to, when that is certain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The task created by this spawn node (it ran).
    Task(u32),
    Future(NodeId),
    /// A `let`-bound gather or shield: the node of the combinator.
    Let(NodeId),
    Group(NodeId),
    Unknown,
}

pub struct Facts<'a> {
    pub p: &'a Program,
    pub t: &'a Trace,
    pub version: (u32, u32),
    pub parents: Vec<Option<NodeId>>,
    /// First `start` / `end` event of each node, and the task of its start.
    pub node_start: Vec<Option<usize>>,
    pub node_end: Vec<Option<usize>>,
    pub node_ctx: Vec<Option<u32>>,
    pub ntasks: usize,
    pub task_node: Vec<Option<NodeId>>,
    pub task_created: Vec<Option<usize>>,
    pub task_done: Vec<Option<usize>>,
    /// Whether the task was made from an awaitable (named `@k`) by gather,
    /// shield or wait_for, rather than by a spawn (or being main).
    pub task_is_aw: Vec<bool>,
    /// Per node: the task its spawn created, and the task made of it as an
    /// awaitable. A spawn that is itself a gather argument has both.
    spawn_task: Vec<Option<u32>>,
    aw_task: Vec<Option<u32>>,
    /// Events whose current task is this task, in order.
    pub task_events: Vec<Vec<usize>>,
    /// `start` events in this task, in order, with their node.
    pub task_starts: Vec<Vec<(usize, NodeId)>>,
    binding: Vec<Bind>,
    pub shutdown: Option<usize>,
    pub collect: Option<usize>,
    /// A `RecursionError` anywhere: cancel recursed down an await cycle.
    pub recursed: bool,
    /// An exception left the loop, or the shutdown got stuck.
    pub escaped: bool,
    pub stuck: bool,
    names: HashMap<&'a str, Option<u32>>,
    /// Answers computed on first use (see cancels.rs).
    pub(super) cache: super::cancels::Cache,
}

fn exc_mentions(e: &Exc, cls: &str) -> bool {
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        if x.cls == cls || x.chain.iter().any(|(_, c)| c == cls) {
            return true;
        }
        if let Some(g) = &x.group {
            stack.extend(g.iter());
        }
    }
    false
}

impl<'a> Facts<'a> {
    pub fn new(p: &'a Program, t: &'a Trace, version: (u32, u32)) -> Facts<'a> {
        let n = p.len();
        let ntasks = t
            .events
            .iter()
            .filter_map(|e| match &e.what {
                What::Create { task, .. } => Some(*task as usize + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            .max(t.tasks.len());
        let mut f = Facts {
            p,
            t,
            version,
            parents: p.parents(),
            node_start: vec![None; n],
            node_end: vec![None; n],
            node_ctx: vec![None; n],
            ntasks,
            task_node: vec![None; ntasks],
            task_created: vec![None; ntasks],
            task_done: vec![None; ntasks],
            task_is_aw: vec![false; ntasks],
            spawn_task: vec![None; n],
            aw_task: vec![None; n],
            task_events: vec![Vec::new(); ntasks],
            task_starts: vec![Vec::new(); ntasks],
            binding: Vec::new(),
            shutdown: None,
            collect: None,
            recursed: false,
            escaped: matches!(t.outcome, Outcome::Escaped(_)),
            stuck: false,
            names: HashMap::new(),
            cache: Default::default(),
        };
        for (i, e) in t.events.iter().enumerate() {
            if let Some(task) = e.task
                && let Some(v) = f.task_events.get_mut(task as usize)
            {
                v.push(i);
            }
            match &e.what {
                What::Start(nd) => {
                    let k = *nd as usize;
                    if k < n && f.node_start[k].is_none() {
                        f.node_start[k] = Some(i);
                        f.node_ctx[k] = e.task;
                        if let Some(v) = e.task.and_then(|x| f.task_starts.get_mut(x as usize)) {
                            v.push((i, *nd));
                        }
                    }
                }
                What::End { node, res } => {
                    let k = *node as usize;
                    if k < n && f.node_end[k].is_none() {
                        f.node_end[k] = Some(i);
                    }
                    if let Res::Raise(x) = res {
                        f.recursed |= exc_mentions(x, "RecursionError");
                    }
                }
                What::Create { task, node, name } => {
                    let k = *task as usize;
                    if f.task_created[k].is_none() {
                        f.task_created[k] = Some(i);
                        f.task_node[k] = Some(*node);
                        f.task_is_aw[k] = name.starts_with('@');
                        let map = if f.task_is_aw[k] {
                            &mut f.aw_task
                        } else {
                            &mut f.spawn_task
                        };
                        if let Some(slot) = map.get_mut(*node as usize) {
                            slot.get_or_insert(*task);
                        }
                    }
                }
                What::Done { task, fin } => {
                    if let Some(slot) = f.task_done.get_mut(*task as usize) {
                        slot.get_or_insert(i);
                    }
                    if let Fin::Exception(x) = fin {
                        f.recursed |= exc_mentions(x, "RecursionError");
                    }
                }
                What::Phase(ph) => match ph.as_ref() {
                    "shutdown" => {
                        f.shutdown.get_or_insert(i);
                    }
                    "collect" => {
                        f.collect.get_or_insert(i);
                    }
                    "stuck" => f.stuck = true,
                    "escaped" => f.escaped = true,
                    other if other.contains("RecursionError") => f.recursed = true,
                    _ => {}
                },
                What::Handler { exc: Some(x), .. } => {
                    f.recursed |= exc_mentions(x, "RecursionError")
                }
                _ => {}
            }
        }
        if let Outcome::Main(Fin::Exception(x)) = &t.outcome {
            f.recursed |= exc_mentions(x, "RecursionError");
        }
        f.recursed |= t
            .tasks
            .iter()
            .any(|x| x.cancelling.is_none() && x.state != State::Destroyed);
        let mut binding = vec![Bind::None; p.names.len()];
        for id in 0..n as NodeId {
            let sym = match p.kind(id) {
                Kind::Spawn(s, SpawnMode::Bind | SpawnMode::In(_)) => {
                    let in_callback = f
                        .parent(id)
                        .is_some_and(|q| matches!(p.kind(q), Kind::CallSoon | Kind::CallLater(_)));
                    if in_callback {
                        continue;
                    }
                    *s
                }
                Kind::Future(s) | Kind::Let(s) | Kind::TaskGroup(s) => *s,
                _ => continue,
            };
            if let Some(b) = binding.get_mut(sym.0 as usize) {
                *b = match *b {
                    Bind::None => Bind::Unique(id),
                    _ => Bind::Many,
                };
            }
        }
        f.binding = binding;
        for (i, task) in t.tasks.iter().enumerate() {
            f.names
                .entry(&*task.name)
                .and_modify(|v| *v = None)
                .or_insert(Some(i as u32));
        }
        f
    }

    pub fn kind(&self, n: NodeId) -> Option<&'a Kind> {
        self.p.nodes.get(n as usize).map(|x| &x.kind)
    }

    pub fn parent(&self, n: NodeId) -> Option<NodeId> {
        self.parents.get(n as usize).copied().flatten()
    }

    pub fn children(&self, n: NodeId) -> Vec<NodeId> {
        if (n as usize) < self.p.len() {
            self.p.children(n).collect()
        } else {
            Vec::new()
        }
    }

    pub fn start(&self, n: NodeId) -> Option<usize> {
        self.node_start.get(n as usize).copied().flatten()
    }

    pub fn end(&self, n: NodeId) -> Option<usize> {
        self.node_end.get(n as usize).copied().flatten()
    }

    /// How node `n` ended, unless it never did or the garbage collector
    /// closed its coroutine (a GeneratorExit, an end after the final
    /// collection, or one in another task), which is not an ending of the
    /// program's making.
    pub fn end_res(&self, n: NodeId) -> Option<&'a Res> {
        let i = self.end(n)?;
        let by_gc = self.collect.is_some_and(|c| i > c) || self.ctx(i) != self.node_ctx[n as usize];
        if by_gc {
            return None;
        }
        match &self.t.events.get(i)?.what {
            What::End {
                res: Res::Raise(x), ..
            } if x.cls == "GeneratorExit" => None,
            What::End { res, .. } => Some(res),
            _ => None,
        }
    }

    pub fn time(&self, i: usize) -> f64 {
        self.t.events.get(i).map_or(f64::INFINITY, |e| e.t)
    }

    pub fn it(&self, i: usize) -> u32 {
        self.t.events.get(i).map_or(u32::MAX, |e| e.it)
    }

    pub fn ctx(&self, i: usize) -> Option<u32> {
        self.t.events.get(i).and_then(|e| e.task)
    }

    pub fn created(&self, task: u32) -> Option<usize> {
        self.task_created.get(task as usize).copied().flatten()
    }

    pub fn done(&self, task: u32) -> Option<usize> {
        self.task_done.get(task as usize).copied().flatten()
    }

    /// How the task finished, from its `done` event.
    pub fn fin(&self, task: u32) -> Option<&'a Fin> {
        match &self.t.events.get(self.done(task)?)?.what {
            What::Done { fin, .. } => Some(fin),
            _ => None,
        }
    }

    pub fn done_before(&self, task: u32, i: usize) -> bool {
        self.done(task).is_some_and(|d| d < i)
    }

    pub fn cancelling(&self, task: u32) -> Option<u32> {
        self.t.tasks.get(task as usize).and_then(|x| x.cancelling)
    }

    pub fn task_name(&self, task: u32) -> String {
        self.t
            .tasks
            .get(task as usize)
            .map_or_else(|| format!("task{task}"), |x| x.name.to_string())
    }

    /// The task with this name, if exactly one has it.
    pub fn task_named(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied().flatten()
    }

    /// Whether `task` died inside its own constructor: an eager first step
    /// re-raised a KeyboardInterrupt out of `Task()`, so it has no `done`
    /// event, the table calls it destroyed, and the only word of how it
    /// ended is the "exception was never retrieved" report (TRACE.md).
    pub fn died_in_constructor(&self, task: u32) -> bool {
        self.done(task).is_none()
            && self
                .t
                .tasks
                .get(task as usize)
                .is_some_and(|x| x.state == crate::trace::State::Destroyed)
            && self.t.events.iter().any(|e| {
                matches!(&e.what, What::Handler { msg, obj: Some(o), exc: Some(_) }
                    if msg == "Task exception was never retrieved" && self.task_named(o) == Some(task))
            })
    }

    pub fn binding(&self, s: Sym) -> Bind {
        self.binding
            .get(s.0 as usize)
            .copied()
            .unwrap_or(Bind::None)
    }

    /// What `s` names, when the program binds it once.
    pub fn target(&self, s: Sym) -> Target {
        let Bind::Unique(b) = self.binding(s) else {
            return Target::Unknown;
        };
        match self.kind(b) {
            Some(Kind::Spawn(..)) => self
                .spawn_task
                .get(b as usize)
                .copied()
                .flatten()
                .map_or(Target::Unknown, Target::Task),
            Some(Kind::Future(_)) => Target::Future(b),
            Some(Kind::Let(_)) => self
                .children(b)
                .first()
                .map_or(Target::Unknown, |&c| Target::Let(c)),
            Some(Kind::TaskGroup(_)) => Target::Group(b),
            _ => Target::Unknown,
        }
    }

    pub fn target_task(&self, s: Sym) -> Option<u32> {
        match self.target(s) {
            Target::Task(t) => Some(t),
            _ => None,
        }
    }

    /// The task that runs the coroutine made of awaitable `child` (of a
    /// gather, shield or wait_for), or the task a `ref` child names.
    pub fn awaitable_task(&self, child: NodeId) -> Option<u32> {
        match self.kind(child)? {
            Kind::Ref(s) => self.target_task(*s),
            _ => self.aw_task.get(child as usize).copied().flatten(),
        }
    }

    /// The spawn node that created `task`, if a spawn did.
    pub fn spawn_node(&self, task: u32) -> Option<NodeId> {
        let n = self.task_node.get(task as usize).copied().flatten()?;
        (!self.task_is_aw[task as usize] && matches!(self.kind(n), Some(Kind::Spawn(..))))
            .then_some(n)
    }

    /// Whether node `n` has started but not ended just before event `i`.
    pub fn open_at(&self, n: NodeId, i: usize) -> bool {
        self.start(n).is_some_and(|s| s < i) && self.end(n).is_none_or(|e| e > i)
    }

    /// The nodes open in `task` just before event `i`, innermost first.
    pub fn open_nodes(&self, task: u32, i: usize) -> Vec<NodeId> {
        let Some(starts) = self.task_starts.get(task as usize) else {
            return Vec::new();
        };
        let k = starts.partition_point(|&(s, _)| s < i);
        let Some(&(_, mut n)) = k.checked_sub(1).and_then(|k| starts.get(k)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        loop {
            // A `do` run inline as an awaitable (3.12+ wait_for) has no
            // events of its own, so no task either; what encloses it in the
            // same task is still open.
            match self.node_ctx.get(n as usize).copied().flatten() {
                Some(t) if t != task => break,
                None if self.start(n).is_some() => break,
                _ => {}
            }
            if self.start(n).is_some() && self.open_at(n, i) {
                out.push(n);
            }
            match self.parent(n) {
                Some(q) => n = q,
                None => break,
            }
        }
        out
    }

    pub fn innermost(&self, task: u32, i: usize) -> Option<NodeId> {
        self.open_nodes(task, i).first().copied()
    }

    /// The last event of `task` before event `i`.
    pub fn last_event_before(&self, task: u32, i: usize) -> Option<usize> {
        let evs = self.task_events.get(task as usize)?;
        let k = evs.partition_point(|&e| e < i);
        k.checked_sub(1).map(|k| evs[k])
    }

    /// Whether `task` was suspended (not running) at event `i`: it has run
    /// and is not done, and either it did nothing earlier in the iteration
    /// of event `i`, or something else ran after its last event while that
    /// event was not the creation of a task. Only an eager task's first
    /// step runs inside another task's step, right after its creation.
    pub fn parked(&self, task: u32, i: usize) -> bool {
        if self.done(task).is_some_and(|d| d <= i) {
            return false;
        }
        let Some(l) = self.last_event_before(task, i) else {
            return false;
        };
        if self.it(l) < self.it(i) {
            return true;
        }
        let creating = matches!(self.t.events[l].what, What::Create { .. });
        !creating && (l + 1..i).any(|j| self.ctx(j) != Some(task))
    }

    /// Whether the trace ran to a normal end: no exception escaped the loop,
    /// the shutdown finished, and no cancel recursed into a RecursionError.
    pub fn undisturbed(&self) -> bool {
        !self.escaped && !self.stuck && !self.recursed
    }

    /// The exception that left a body (the children of `n` that are
    /// statements): the first statement that raised, if any.
    pub fn body_exit(&self, n: NodeId) -> BodyExit<'a> {
        let body: Vec<NodeId> = self
            .children(n)
            .into_iter()
            .filter(|&c| !matches!(self.kind(c), Some(Kind::Except(_) | Kind::Finally)))
            .collect();
        if body.is_empty() {
            return BodyExit::Empty;
        }
        for &c in &body {
            match (self.end(c), self.end_res(c)) {
                (Some(i), Some(Res::Raise(x))) => return BodyExit::Raised(i, x),
                (Some(_), Some(_)) => {}
                _ => return BodyExit::Unfinished,
            }
        }
        BodyExit::Normal(self.end(*body.last().expect("non-empty")).expect("ended"))
    }
}

/// How a body of statements was left.
#[derive(Clone, Copy, Debug)]
pub enum BodyExit<'a> {
    Empty,
    /// Every statement ended; the event of the last one.
    Normal(usize),
    /// A statement raised; its `end` event and the exception.
    Raised(usize, &'a Exc),
    /// Some statement never ended.
    Unfinished,
}

impl BodyExit<'_> {
    pub fn event(&self) -> Option<usize> {
        match self {
            BodyExit::Normal(i) | BodyExit::Raised(i, _) => Some(*i),
            _ => None,
        }
    }
}

/// Exceptions are equal in class, arguments and group members; the chain is
/// ignored, since re-raising an exception elsewhere can extend it later.
pub fn same_exc(a: &Exc, b: &Exc) -> bool {
    let mut stack = vec![(a, b)];
    while let Some((x, y)) = stack.pop() {
        if x.cls != y.cls || x.args != y.args {
            return false;
        }
        match (&x.group, &y.group) {
            (None, None) => {}
            (Some(gx), Some(gy)) if gx.len() == gy.len() => stack.extend(gx.iter().zip(gy)),
            _ => return false,
        }
    }
    true
}

pub fn same_fin(a: &Fin, b: &Fin) -> bool {
    match (a, b) {
        (Fin::Exception(x), Fin::Exception(y)) => same_exc(x, y),
        _ => a == b,
    }
}

/// `same_fin` for a state read later than `earlier`: the harness may read a
/// cancelled task after asyncio consumed its CancelledError, which takes
/// the message with it (docs/INVARIANTS.md, "harness notes").
pub fn same_fin_later(earlier: &Fin, later: &Fin) -> bool {
    same_fin(earlier, later)
        || matches!((earlier, later), (Fin::Cancelled(_), Fin::Cancelled(None)))
}

pub fn is_cancel(x: &Exc) -> bool {
    x.cls == "CancelledError"
}

/// Exceptions that are not `Exception` subclasses and that asyncio treats
/// specially (they leave the event loop).
pub fn is_base_only(x: &Exc) -> bool {
    matches!(
        &*x.cls,
        "KeyboardInterrupt" | "SystemExit" | "GeneratorExit"
    )
}
