//! Static checks on a lowered program: names resolve like Python closures,
//! `:in` groups enclose their spawns, `reraise`/`return`/`forget` sit where
//! Python allows them, and each name has one kind per coroutine.
//!
//! Two linear passes over the pre-order arena with explicit stacks: the first
//! assigns every node its coroutine scope and collects bindings (a name bound
//! anywhere in a scope is local to all of it, as in Python), the second walks
//! again keeping, per name, the stack of enclosing scopes that bind it.

use std::collections::HashMap;

use crate::ast::{Kind, NodeId, Pos, Program, SpawnMode, Sym};
use crate::diag::Diagnostic;

/// What a binding holds; decided by the statement that binds the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    /// `(spawn NAME ...)`, `(spawn NAME :in G ...)`.
    Task,
    /// `(future NAME)`.
    Future,
    /// `(let NAME ...)`.
    LetFuture,
    /// `(taskgroup NAME ...)`.
    Group,
}

impl BindKind {
    fn describe(self) -> &'static str {
        match self {
            BindKind::Task => "a task",
            BindKind::Future => "a future",
            BindKind::LetFuture => "a let-future",
            BindKind::Group => "a task group",
        }
    }
}

const NONE: u32 = u32::MAX;

struct Binding {
    /// `None` while the scope binds the name only by `(forget NAME)`.
    kind: Option<BindKind>,
    node: NodeId,
}

struct Checker<'a> {
    p: &'a Program,
    file: &'a str,
    name_pos: Option<&'a [[Pos; 2]]>,
    errors: Vec<Diagnostic>,
    /// Per scope: enclosing scope (NONE for the root) and whether it is a
    /// call-soon/call-later function, which binds nothing.
    parent: Vec<u32>,
    function: Vec<bool>,
    /// The scope each node runs in.
    scope_of: Vec<u32>,
    /// The scope a node opens for itself as an awaitable (`wrap`), and the one it
    /// opens for its children (`inner`: spawn, do, call-soon, call-later).
    wrap: Vec<u32>,
    inner: Vec<u32>,
    binds: HashMap<(u32, Sym), Binding>,
}

/// Runs every static check; returns the problems sorted by position.
/// `name_pos` (from the parser) places name errors on the name itself;
/// without it they are placed on the node.
pub fn check(p: &Program, file: &str, name_pos: Option<&[[Pos; 2]]>) -> Vec<Diagnostic> {
    let mut c = Checker {
        p,
        file,
        name_pos: name_pos.filter(|np| np.len() == p.len()),
        errors: Vec::new(),
        parent: Vec::new(),
        function: Vec::new(),
        scope_of: vec![0; p.len()],
        wrap: vec![NONE; p.len()],
        inner: vec![NONE; p.len()],
        binds: HashMap::new(),
    };
    c.scopes_and_bindings();
    c.reads();
    let mut errors = c.errors;
    errors.sort_by_key(|d| (d.line, d.col));
    errors
}

impl Checker<'_> {
    fn new_scope(&mut self, parent: u32, function: bool) -> u32 {
        self.parent.push(parent);
        self.function.push(function);
        self.parent.len() as u32 - 1
    }

    /// Position of name `which` (0 or 1) of node `id`.
    fn npos(&self, id: NodeId, which: usize) -> Pos {
        match self.name_pos {
            Some(np) => np[id as usize][which],
            None => self.p.pos(id),
        }
    }

    fn error(&mut self, at: Pos, msg: String) {
        self.errors
            .push(Diagnostic::new(self.file, at.line, at.col, msg));
    }

    fn at(p: Pos) -> String {
        if p.line == 0 {
            "elsewhere".to_string()
        } else {
            format!("at {}:{}", p.line, p.col)
        }
    }

    /// Pass 1: scopes of every node and the bindings of every scope.
    fn scopes_and_bindings(&mut self) {
        let p = self.p;
        let n = p.len() as NodeId;
        let root = self.new_scope(NONE, false);
        // Open scopes as (end of range, scope), innermost last.
        let mut open: Vec<(NodeId, u32)> = vec![(n, root)];
        let mut parent_kind: Vec<(NodeId, bool)> = Vec::new(); // (end, children are awaitables)
        for id in 0..n {
            while open.last().is_some_and(|&(end, _)| end <= id) {
                open.pop();
            }
            while parent_kind.last().is_some_and(|&(end, _)| end <= id) {
                parent_kind.pop();
            }
            let mut cur = open.last().map_or(root, |o| o.1);
            let kind = p.kind(id);
            let awaitable = parent_kind.last().is_some_and(|&(_, aw)| aw);
            if awaitable && !matches!(kind, Kind::Ref(_) | Kind::Do) {
                cur = self.new_scope(cur, false);
                self.wrap[id as usize] = cur;
                open.push((p.end(id), cur));
            }
            self.scope_of[id as usize] = cur;
            let bound = match kind {
                Kind::Spawn(s, SpawnMode::Bind | SpawnMode::In(_))
                    if !self.function[cur as usize] =>
                {
                    Some((*s, Some(BindKind::Task)))
                }
                Kind::Future(s) => Some((*s, Some(BindKind::Future))),
                Kind::Let(s) => Some((*s, Some(BindKind::LetFuture))),
                Kind::TaskGroup(s) => Some((*s, Some(BindKind::Group))),
                Kind::Forget(s) => Some((*s, None)),
                _ => None,
            };
            if let Some((s, k)) = bound {
                self.bind(cur, s, k, id);
            }
            if matches!(
                kind,
                Kind::Spawn(..) | Kind::Do | Kind::CallSoon | Kind::CallLater(_)
            ) {
                let function = matches!(kind, Kind::CallSoon | Kind::CallLater(_));
                let inner = self.new_scope(cur, function);
                self.inner[id as usize] = inner;
                open.push((p.end(id), inner));
            }
            let aw = matches!(kind, Kind::Gather { .. } | Kind::Shield | Kind::WaitFor(_));
            parent_kind.push((p.end(id), aw));
        }
    }

    fn bind(&mut self, scope: u32, s: Sym, kind: Option<BindKind>, id: NodeId) {
        let Some(b) = self.binds.get_mut(&(scope, s)) else {
            self.binds.insert((scope, s), Binding { kind, node: id });
            return;
        };
        match (b.kind, kind) {
            (None, Some(_)) => {
                b.kind = kind;
                b.node = id;
            }
            (Some(old), Some(new)) if old != new => {
                let first = b.node;
                let name = self.p.name(s).to_string();
                let msg = format!(
                    "`{name}` is bound as {} {} and as {} here, in the same coroutine; a name \
                     has one kind per coroutine, so rename one of them",
                    old.describe(),
                    Self::at(self.npos(first, 0)),
                    new.describe(),
                );
                let here = self.npos(id, 0);
                self.error(here, msg);
            }
            _ => {}
        }
    }

    /// Pass 2: resolve every read, and check reraise, return and forget.
    fn reads(&mut self) {
        let p = self.p;
        let n = p.len() as NodeId;
        // The names each scope binds, as offsets into one flat list.
        let scopes = self.parent.len();
        let mut start = vec![0u32; scopes + 1];
        for &(sc, _) in self.binds.keys() {
            start[sc as usize + 1] += 1;
        }
        for i in 0..scopes {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut scope_syms = vec![Sym(0); self.binds.len()];
        for &(sc, s) in self.binds.keys() {
            scope_syms[fill[sc as usize] as usize] = s;
            fill[sc as usize] += 1;
        }
        let mut by_sym: Vec<Vec<u32>> = vec![Vec::new(); p.names.len()];
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); p.names.len()];
        let mut handlers = vec![0u32; scopes];
        let mut star_handlers = vec![0u32; scopes];
        enum Undo {
            Scope(u32),
            Group(Sym),
            Handler(u32, bool),
        }
        let mut exits: Vec<(NodeId, Undo)> = Vec::new();
        let enter = |sc: u32, by_sym: &mut Vec<Vec<u32>>| {
            for s in &scope_syms[start[sc as usize] as usize..start[sc as usize + 1] as usize] {
                if let Some(v) = by_sym.get_mut(s.0 as usize) {
                    v.push(sc);
                }
            }
        };
        enter(0, &mut by_sym);
        exits.push((n, Undo::Scope(0)));
        for id in 0..n {
            while exits.last().is_some_and(|(end, _)| *end <= id) {
                let Some((_, undo)) = exits.pop() else { break };
                match undo {
                    Undo::Scope(sc) => {
                        for s in &scope_syms
                            [start[sc as usize] as usize..start[sc as usize + 1] as usize]
                        {
                            if let Some(v) = by_sym.get_mut(s.0 as usize) {
                                v.pop();
                            }
                        }
                    }
                    Undo::Group(s) => {
                        groups[s.0 as usize].pop();
                    }
                    Undo::Handler(sc, star) => {
                        handlers[sc as usize] -= 1;
                        star_handlers[sc as usize] -= u32::from(star);
                    }
                }
            }
            let w = self.wrap[id as usize];
            if w != NONE {
                enter(w, &mut by_sym);
                exits.push((p.end(id), Undo::Scope(w)));
            }
            let sc = self.scope_of[id as usize];
            let resolve = |s: Sym| by_sym.get(s.0 as usize).and_then(|v| v.last().copied());
            use BindKind::*;
            match p.kind(id) {
                Kind::Await(s)
                | Kind::Cancel(s, _)
                | Kind::Done(s)
                | Kind::Cancelled(s)
                | Kind::Ref(s) => {
                    let r = resolve(*s);
                    self.read(id, *s, 0, r, &[Task, Future, LetFuture]);
                }
                Kind::Resolve(s, _) | Kind::Fail(s, ..) => {
                    let r = resolve(*s);
                    self.read(id, *s, 0, r, &[Future]);
                }
                Kind::Uncancel(Some(s)) | Kind::Cancelling(Some(s)) => {
                    let r = resolve(*s);
                    self.read(id, *s, 0, r, &[Task]);
                }
                Kind::Spawn(_, SpawnMode::In(g)) => {
                    let r = resolve(*g);
                    if self.read(id, *g, 1, r, &[Group]) {
                        let encloses = groups[g.0 as usize].last().copied() == r;
                        if !encloses {
                            let name = p.name(*g);
                            let msg = format!(
                                "`:in {name}` needs the task group `{name}` to enclose this \
                                 spawn; move the spawn inside (taskgroup {name} ...)"
                            );
                            self.error(self.npos(id, 1), msg);
                        }
                    }
                }
                Kind::Forget(s) => {
                    let own = self.binds.get(&(sc, *s)).is_some_and(|b| b.kind.is_some());
                    if !own {
                        let name = p.name(*s);
                        let msg = format!(
                            "`(forget {name})` deletes a local name, but this coroutine does not \
                             bind `{name}` itself (in Python the `del` would make it local here); \
                             forget it in the coroutine that binds it"
                        );
                        self.error(self.npos(id, 0), msg);
                    }
                }
                Kind::Reraise if handlers[sc as usize] == 0 => {
                    let msg =
                        "`(reraise)` is only allowed inside an `(except ...)` handler of the \
                               same coroutine; raise a new exception with (raise E) instead"
                            .to_string();
                    self.error(p.pos(id), msg);
                }
                Kind::Return(_) if star_handlers[sc as usize] > 0 => {
                    let msg = "`(return ...)` cannot appear inside an `(except (group E) ...)` \
                               handler (Python's except* forbids it); let the handler end and \
                               return after the try"
                        .to_string();
                    self.error(p.pos(id), msg);
                }
                Kind::TaskGroup(s) => {
                    groups[s.0 as usize].push(sc);
                    exits.push((p.end(id), Undo::Group(*s)));
                }
                Kind::Except(c) => {
                    handlers[sc as usize] += 1;
                    star_handlers[sc as usize] += u32::from(c.star);
                    exits.push((p.end(id), Undo::Handler(sc, c.star)));
                }
                _ => {}
            }
            let inner = self.inner[id as usize];
            if inner != NONE {
                enter(inner, &mut by_sym);
                exits.push((p.end(id), Undo::Scope(inner)));
            }
        }
    }

    /// Checks one read of `s` at name `which` of node `id`, resolved to scope
    /// `r`. Returns whether it resolved to a binding of an allowed kind.
    fn read(
        &mut self,
        id: NodeId,
        s: Sym,
        which: usize,
        r: Option<u32>,
        allowed: &[BindKind],
    ) -> bool {
        let name = self.p.name(s).to_string();
        let form = self.p.kind(id).keyword();
        let at = self.npos(id, which);
        let Some(r) = r else {
            let how = match allowed {
                [BindKind::Group] => format!("(taskgroup {name} ...)"),
                [BindKind::Future] => format!("(future {name})"),
                [BindKind::Task] => format!("(spawn {name} ...)"),
                _ => format!("(spawn {name} ...), (future {name}) or (let {name} ...)"),
            };
            let msg = format!(
                "`{name}` is not bound in this coroutine or any enclosing one; bind it with {how} first"
            );
            self.error(at, msg);
            return false;
        };
        let Some(b) = self.binds.get(&(r, s)) else {
            return false;
        };
        let Some(kind) = b.kind else { return false };
        if allowed.contains(&kind) {
            return true;
        }
        let want = match allowed {
            [BindKind::Group] => "a task group made by (taskgroup NAME ...)",
            [BindKind::Future] => "a future made by (future NAME)",
            [BindKind::Task] => "a task made by (spawn NAME ...)",
            _ => "a task, a future or a let-future, not a task group",
        };
        let what = if which == 1 { ":in" } else { form };
        let msg = format!(
            "`{what}` needs {want}, but `{name}` here is {} bound {}; name a binding of the right kind",
            kind.describe(),
            Self::at(self.npos(b.node, 0)),
        );
        self.error(at, msg);
        false
    }
}
