//! The program tree of a `.ct` file, stored flat in pre-order.
//!
//! A node's index in `Program::nodes` is its pre-order number, which is the
//! number traces use. Each node records where its subtree ends, so children are
//! found by hopping from one subtree end to the next. Nothing here recurses:
//! a million-deep program clones, compares and drops like a flat vector.

use std::fmt;

/// Index of a node in pre-order; node 0 is always `main`.
pub type NodeId = u32;

/// Index into `Program::names`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(pub u32);

/// A source position, 1-based. Programs that were not parsed carry `Pos::NONE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const NONE: Pos = Pos { line: 0, col: 0 };
}

/// Virtual seconds. Compared by bits so that equality is exact; NaN and
/// infinities never get in (the parser rejects them).
#[derive(Clone, Copy, Debug)]
pub struct Time(pub f64);

impl PartialEq for Time {
    fn eq(&self, other: &Time) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl fmt::Display for Time {
    /// Shortest decimal that reads back to the same f64, never an exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A literal value: `(return V)`, `(resolve NAME V)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
}

/// The exception classes a program can raise or catch by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExcClass {
    ValueError,
    KeyError,
    RuntimeError,
    TypeError,
    TimeoutError,
    CancelledError,
    KeyboardInterrupt,
    /// `E1`..`E9`: user classes, subclasses of `Exception`.
    User(u8),
}

impl ExcClass {
    pub const BUILTINS: [ExcClass; 7] = [
        ExcClass::ValueError,
        ExcClass::KeyError,
        ExcClass::RuntimeError,
        ExcClass::TypeError,
        ExcClass::TimeoutError,
        ExcClass::CancelledError,
        ExcClass::KeyboardInterrupt,
    ];

    pub fn name(self) -> String {
        match self {
            ExcClass::User(n) => format!("E{n}"),
            other => format!("{other:?}"),
        }
    }

    pub fn from_name(s: &str) -> Option<ExcClass> {
        if let Some(d) = s.strip_prefix('E')
            && d.len() == 1
            && (b'1'..=b'9').contains(&d.as_bytes()[0])
        {
            return Some(ExcClass::User(d.as_bytes()[0] - b'0'));
        }
        ExcClass::BUILTINS.into_iter().find(|c| c.name() == s)
    }
}

/// What an `except` clause names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchClass {
    Class(ExcClass),
    Exception,
    BaseException,
}

/// `(except E ...)` or, with `star`, `(except (group E) ...)`, Python's `except*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Catch {
    pub class: CatchClass,
    pub star: bool,
}

/// How `(spawn NAME ...)` keeps the task it creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnMode {
    /// `NAME = asyncio.create_task(...)`.
    Bind,
    /// `asyncio.create_task(...)`, no reference kept.
    Weak,
    /// The background-set idiom: only a set holds the task until it is done.
    Keep,
    /// `NAME = GROUP.create_task(...)`.
    In(Sym),
}

/// `return_when` of `asyncio.wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WaitWhen {
    #[default]
    AllCompleted,
    FirstCompleted,
    FirstException,
}

/// One node. Which children a kind has is documented per variant; children
/// are the nodes between `id + 1` and `end`, hopping over subtrees.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// The root. Children: body.
    Main,
    Sleep(Time),
    Block(Time),
    Return(Value),
    Raise(ExcClass, Option<String>),
    /// Children: the task's body.
    Spawn(Sym, SpawnMode),
    Await(Sym),
    Cancel(Sym, Option<String>),
    CancelSelf(Option<String>),
    Uncancel(Option<Sym>),
    Cancelling(Option<Sym>),
    Done(Sym),
    Cancelled(Sym),
    Future(Sym),
    Resolve(Sym, Value),
    Fail(Sym, ExcClass, Option<String>),
    /// Children: awaitables (`Ref`, or any node standing for a new coroutine).
    Gather {
        return_exceptions: bool,
    },
    /// Only as an awaitable: an existing task or future.
    Ref(Sym),
    /// Children: a body. As an awaitable, a multi-statement coroutine; as a
    /// statement, `await` of that coroutine.
    Do,
    /// One child: the awaitable.
    Shield,
    /// One child: the awaitable. `None` is `timeout=None`.
    WaitFor(Option<Time>),
    /// One child, a `Gather` or `Shield`, created and bound but not awaited.
    Let(Sym),
    /// Children: body.
    Timeout(Option<Time>),
    /// Children: body.
    TaskGroup(Sym),
    /// Children: `Ref`s.
    Wait {
        when: WaitWhen,
        timeout: Option<Time>,
    },
    /// Children: `Ref`s.
    AsCompleted {
        timeout: Option<Time>,
    },
    /// Children: body statements, then `Except` clauses, then at most one `Finally`.
    Try,
    /// Children: handler body, possibly empty.
    Except(Catch),
    /// Children: body.
    Finally,
    Reraise,
    /// One child: a synchronous statement run as a plain loop callback.
    CallSoon,
    /// One child, as `CallSoon`.
    CallLater(Time),
    Gc,
    Forget(Sym),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    /// One past the last node of this subtree.
    pub end: NodeId,
}

/// A whole program. Equality compares structure and names, not positions.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub nodes: Vec<Node>,
    pub names: Vec<String>,
    /// Source position of each node, parallel to `nodes`.
    pub pos: Vec<Pos>,
}

impl PartialEq for Program {
    fn eq(&self, other: &Program) -> bool {
        self.nodes.len() == other.nodes.len()
            && self
                .nodes
                .iter()
                .zip(&other.nodes)
                .all(|(a, b)| a.end == b.end && kind_eq(&a.kind, self, &b.kind, other))
    }
}

/// Kinds are equal when they match after resolving their symbols to text.
fn kind_eq(a: &Kind, pa: &Program, b: &Kind, pb: &Program) -> bool {
    let mut sa = Vec::new();
    let mut sb = Vec::new();
    a.syms(&mut sa);
    b.syms(&mut sb);
    let names_eq =
        sa.len() == sb.len() && sa.iter().zip(&sb).all(|(x, y)| pa.name(*x) == pb.name(*y));
    names_eq && a.with_syms_erased() == b.with_syms_erased()
}

impl Kind {
    /// The symbols this node mentions, in the order they are written.
    pub fn syms(&self, out: &mut Vec<Sym>) {
        out.extend(self.first_sym());
        if let Kind::Spawn(_, SpawnMode::In(g)) = self {
            out.push(*g);
        }
    }

    /// The first symbol this node mentions, without collecting the rest.
    pub fn first_sym(&self) -> Option<Sym> {
        use Kind::*;
        match self {
            Spawn(s, _)
            | Await(s)
            | Cancel(s, _)
            | Done(s)
            | Cancelled(s)
            | Future(s)
            | Resolve(s, _)
            | Fail(s, _, _)
            | Ref(s)
            | Let(s)
            | TaskGroup(s)
            | Forget(s)
            | Uncancel(Some(s))
            | Cancelling(Some(s)) => Some(*s),
            _ => None,
        }
    }

    fn with_syms_erased(&self) -> Kind {
        use Kind::*;
        let z = Sym(0);
        match self.clone() {
            Spawn(_, SpawnMode::In(_)) => Spawn(z, SpawnMode::In(z)),
            Spawn(_, m) => Spawn(z, m),
            Await(_) => Await(z),
            Cancel(_, m) => Cancel(z, m),
            Done(_) => Done(z),
            Cancelled(_) => Cancelled(z),
            Future(_) => Future(z),
            Resolve(_, v) => Resolve(z, v),
            Fail(_, e, m) => Fail(z, e, m),
            Ref(_) => Ref(z),
            Let(_) => Let(z),
            TaskGroup(_) => TaskGroup(z),
            Forget(_) => Forget(z),
            Uncancel(s) => Uncancel(s.map(|_| z)),
            Cancelling(s) => Cancelling(s.map(|_| z)),
            k => k,
        }
    }

    /// The keyword that opens this node in `.ct` text.
    pub fn keyword(&self) -> &'static str {
        use Kind::*;
        match self {
            Main => "main",
            Sleep(_) => "sleep",
            Block(_) => "block",
            Return(_) => "return",
            Raise(..) => "raise",
            Spawn(..) => "spawn",
            Await(_) => "await",
            Cancel(..) => "cancel",
            CancelSelf(_) => "cancel-self",
            Uncancel(_) => "uncancel",
            Cancelling(_) => "cancelling",
            Done(_) => "done",
            Cancelled(_) => "cancelled",
            Future(_) => "future",
            Resolve(..) => "resolve",
            Fail(..) => "fail",
            Gather { .. } => "gather",
            Ref(_) => "ref",
            Do => "do",
            Shield => "shield",
            WaitFor(_) => "wait-for",
            Let(_) => "let",
            Timeout(_) => "timeout",
            TaskGroup(_) => "taskgroup",
            Wait { .. } => "wait",
            AsCompleted { .. } => "as-completed",
            Try => "try",
            Except(_) => "except",
            Finally => "finally",
            Reraise => "reraise",
            CallSoon => "call-soon",
            CallLater(_) => "call-later",
            Gc => "gc",
            Forget(_) => "forget",
        }
    }

    /// Whether this node's children are a body of statements (as opposed to
    /// awaitables or a single operand).
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Kind::Main
                | Kind::Spawn(..)
                | Kind::Do
                | Kind::Timeout(_)
                | Kind::TaskGroup(_)
                | Kind::Try
                | Kind::Except(_)
                | Kind::Finally
        )
    }
}

impl Program {
    pub fn name(&self, s: Sym) -> &str {
        &self.names[s.0 as usize]
    }

    pub fn kind(&self, id: NodeId) -> &Kind {
        &self.nodes[id as usize].kind
    }

    pub fn end(&self, id: NodeId) -> NodeId {
        self.nodes[id as usize].end
    }

    pub fn pos(&self, id: NodeId) -> Pos {
        self.pos.get(id as usize).copied().unwrap_or(Pos::NONE)
    }

    /// The direct children of `id`, in order.
    pub fn children(&self, id: NodeId) -> Children<'_> {
        Children {
            prog: self,
            next: id + 1,
            end: self.end(id),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The parent of every node (`None` for main), computed in one pass.
    pub fn parents(&self) -> Vec<Option<NodeId>> {
        let mut parents = vec![None; self.nodes.len()];
        let mut open: Vec<NodeId> = Vec::new();
        for id in 0..self.nodes.len() as NodeId {
            while let Some(&top) = open.last() {
                if id < self.end(top) {
                    break;
                }
                open.pop();
            }
            parents[id as usize] = open.last().copied();
            open.push(id);
        }
        parents
    }

    /// Interns `name`, returning the existing symbol if it is already known.
    pub fn intern(&mut self, name: &str) -> Sym {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Sym(i as u32);
        }
        self.names.push(name.to_string());
        Sym(self.names.len() as u32 - 1)
    }
}

pub struct Children<'a> {
    prog: &'a Program,
    next: NodeId,
    end: NodeId,
}

impl Iterator for Children<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        if self.next >= self.end {
            return None;
        }
        let id = self.next;
        self.next = self.prog.end(id);
        Some(id)
    }
}

/// Builds a program in pre-order: `open` a node, add its children, `close` it.
/// Leaves are `open` + `close`, or `leaf`.
#[derive(Default)]
pub struct Builder {
    pub prog: Program,
    open: Vec<NodeId>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn sym(&mut self, name: &str) -> Sym {
        self.prog.intern(name)
    }

    pub fn open(&mut self, kind: Kind, pos: Pos) -> NodeId {
        let id = self.prog.nodes.len() as NodeId;
        self.prog.nodes.push(Node { kind, end: id + 1 });
        self.prog.pos.push(pos);
        self.open.push(id);
        id
    }

    /// Closes the most recently opened node.
    pub fn close(&mut self) {
        let id = self.open.pop().expect("close without open");
        self.prog.nodes[id as usize].end = self.prog.nodes.len() as NodeId;
    }

    pub fn leaf(&mut self, kind: Kind, pos: Pos) -> NodeId {
        let id = self.open(kind, pos);
        self.close();
        id
    }

    pub fn depth(&self) -> usize {
        self.open.len()
    }

    pub fn finish(mut self) -> Program {
        while !self.open.is_empty() {
            self.close();
        }
        self.prog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_hop_over_subtrees() {
        let mut b = Builder::new();
        let a = b.sym("a");
        b.open(Kind::Main, Pos::NONE);
        b.open(Kind::Spawn(a, SpawnMode::Bind), Pos::NONE);
        b.leaf(Kind::Sleep(Time(1.0)), Pos::NONE);
        b.close();
        b.leaf(Kind::Await(a), Pos::NONE);
        let p = b.finish();
        assert_eq!(p.children(0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(p.children(1).collect::<Vec<_>>(), vec![2]);
        assert_eq!(p.parents(), vec![None, Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn equality_ignores_positions_and_symbol_numbering() {
        let mut b1 = Builder::new();
        b1.sym("zzz");
        let a1 = b1.sym("a");
        b1.open(Kind::Main, Pos { line: 1, col: 1 });
        b1.leaf(Kind::Await(a1), Pos { line: 2, col: 3 });
        let mut b2 = Builder::new();
        let a2 = b2.sym("a");
        b2.open(Kind::Main, Pos::NONE);
        b2.leaf(Kind::Await(a2), Pos::NONE);
        assert_eq!(b1.finish(), b2.finish());
    }

    #[test]
    fn a_million_deep_program_drops_without_recursion() {
        let mut b = Builder::new();
        b.open(Kind::Main, Pos::NONE);
        for _ in 0..1_000_000 {
            b.open(Kind::Do, Pos::NONE);
        }
        let p = b.finish();
        let q = p.clone();
        assert_eq!(p, q);
        assert_eq!(p.children(0).count(), 1);
    }
}
