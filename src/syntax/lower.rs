//! Lowering: s-expressions to an `ast::Program`, checking every form's shape
//! (arity, argument kinds, where a form may appear) at the offending token.
//!
//! Works with an explicit stack of open forms, never recursion, so nesting
//! depth is limited only by memory.

use std::collections::HashMap;

use super::args::{self, Args};
use super::reader::{Atom, SExprs};
use crate::ast::{Builder, Kind, NodeId, Pos, Program, SpawnMode, Sym, Value};
use crate::diag::Diagnostic;

/// A lowered program with the position of each node's names: `[first, second]`
/// (the second is the GROUP of `spawn ... :in GROUP`), or the node's own
/// position where it has none.
pub struct Lowered {
    pub prog: Program,
    pub name_pos: Vec<[Pos; 2]>,
}

/// Where a form appears, which decides what it may be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctx {
    /// A statement of a body.
    Body,
    /// A child of gather, shield or wait-for: a statement or `(ref NAME)`.
    Await,
    /// A child of wait or as-completed: only `(ref NAME)`.
    Refs,
    /// The child of let: gather or shield.
    LetChild,
    /// The child of call-soon or call-later: cancel, resolve, fail or spawn.
    CallStmt,
    /// A child of try: body statements, then clauses.
    TryBody,
    /// A clause of a try: except or finally.
    Clause,
}

/// An open node whose remaining children are still to be lowered.
struct Frame {
    next: u32,
    end: u32,
    ctx: Ctx,
    form: &'static str,
    pos: Pos,
    /// For a try: whether a clause was seen, and whether the excepts are `(group E)`.
    clause: bool,
    star: Option<bool>,
    finally: bool,
}

struct Lower<'a> {
    s: &'a SExprs,
    file: &'a str,
    b: Builder,
    syms: HashMap<String, Sym>,
    name_pos: Vec<[Pos; 2]>,
}

pub fn lower(file: &str, s: &SExprs) -> Result<Lowered, Diagnostic> {
    let mut tops = s.children(u32::MAX);
    let err = |p: Pos, m: &str| Diagnostic::new(file, p.line, p.col, m);
    let header = "a .ct file starts with the header `(canceltree 1)`, then holds one `(main ...)`";
    let Some(h) = tops.next() else {
        return Err(err(s.eof, &format!("empty program; {header}")));
    };
    check_header(file, s, h)?;
    let Some(m) = tops.next() else {
        return Err(err(
            s.eof,
            "expected `(main ...)` after the header `(canceltree 1)`",
        ));
    };
    let mut kids = s.children(m);
    if !s.is_list(m) || kids.next().and_then(|k| s.sym(k)) != Some("main") {
        return Err(err(
            s.node(m).pos,
            "expected `(main ...)` here; after the header a file holds exactly one `(main BODY...)`",
        ));
    }
    if let Some(extra) = tops.next() {
        return Err(err(
            s.node(extra).pos,
            "unexpected form after `(main ...)`; a file holds exactly one program, so move this \
             into main or delete it",
        ));
    }
    let mut lw = Lower {
        s,
        file,
        b: Builder::new(),
        syms: HashMap::new(),
        name_pos: Vec::new(),
    };
    let pos = s.node(m).pos;
    lw.open(Kind::Main, pos, [pos; 2]);
    let first = kids.next().unwrap_or(s.end(m));
    let mut frames = vec![Frame::new(first, s.end(m), Ctx::Body, "main", pos)];
    while let Some(f) = frames.last_mut() {
        if f.next >= f.end {
            if f.ctx == Ctx::TryBody && !f.clause {
                return Err(err(
                    f.pos,
                    "`try` needs at least one clause: add `(except E ...)` or `(finally ...)` \
                     after its body",
                ));
            }
            lw.b.close();
            frames.pop();
            continue;
        }
        let i = f.next;
        f.next = s.end(i);
        let ctx = if f.ctx == Ctx::TryBody {
            try_child(file, s, i, f)?
        } else {
            f.ctx
        };
        let parent = f.form;
        if let Some(frame) = lw.form(i, ctx, parent)? {
            frames.push(frame);
        }
    }
    let prog = lw.b.finish();
    Ok(Lowered {
        prog,
        name_pos: lw.name_pos,
    })
}

fn check_header(file: &str, s: &SExprs, h: u32) -> Result<(), Diagnostic> {
    let p = s.node(h).pos;
    let mut kids = s.children(h);
    let fix = "start the file with `(canceltree 1)`";
    if !s.is_list(h) || kids.next().and_then(|k| s.sym(k)) != Some("canceltree") {
        return Err(Diagnostic::new(
            file,
            p.line,
            p.col,
            format!("expected the header `(canceltree 1)`; {fix}"),
        ));
    }
    let v = kids.next();
    match v.map(|v| &s.node(v).atom) {
        Some(Some(Atom::Int(1))) => {}
        Some(Some(Atom::Int(n))) => {
            let q = s.node(v.unwrap_or(h)).pos;
            return Err(Diagnostic::new(
                file,
                q.line,
                q.col,
                format!(
                    "unsupported format version {n}; this canceltree reads version 1, so {fix}"
                ),
            ));
        }
        _ => {
            let q = v.map(|v| s.node(v).pos).unwrap_or(s.node(h).close);
            return Err(Diagnostic::new(
                file,
                q.line,
                q.col,
                format!("the header needs the format version 1; {fix}"),
            ));
        }
    }
    if let Some(extra) = kids.next() {
        let q = s.node(extra).pos;
        return Err(Diagnostic::new(
            file,
            q.line,
            q.col,
            format!("unexpected extra in the header; {fix}"),
        ));
    }
    Ok(())
}

/// Decides whether child `i` of a try is a body statement or a clause, and
/// enforces the clause order.
fn try_child(file: &str, s: &SExprs, i: u32, f: &mut Frame) -> Result<Ctx, Diagnostic> {
    let head = if s.is_list(i) {
        s.children(i).next().and_then(|h| s.sym(h))
    } else {
        None
    };
    let p = s.node(i).pos;
    let err = |m: &str| Err(Diagnostic::new(file, p.line, p.col, m).with_help(args::usage("try")));
    match head {
        Some("except") => {
            if f.finally {
                return err("`except` after `finally`; `finally` must be the last clause of a try");
            }
            let star = is_star_clause(s, i);
            if f.star.is_some_and(|st| st != star) {
                return err(
                    "cannot mix `(except (group E) ...)` (Python's except*) and plain \
                     `(except E ...)` clauses in one try, as Python forbids it; nest a second try",
                );
            }
            f.star = Some(star);
            f.clause = true;
            Ok(Ctx::Clause)
        }
        Some("finally") => {
            if f.finally {
                return err("a try has at most one `(finally ...)`; merge the two bodies");
            }
            f.finally = true;
            f.clause = true;
            Ok(Ctx::Clause)
        }
        _ if f.clause => err(
            "statement after the clauses of a try; move it before the first `except` or \
             `finally`, or after the try",
        ),
        _ => Ok(Ctx::Body),
    }
}

/// Whether except clause `i` names `(group E)`.
fn is_star_clause(s: &SExprs, i: u32) -> bool {
    s.children(i).nth(1).is_some_and(|c| s.is_list(c))
}

impl Frame {
    fn new(next: u32, end: u32, ctx: Ctx, form: &'static str, pos: Pos) -> Frame {
        Frame {
            next,
            end,
            ctx,
            form,
            pos,
            clause: false,
            star: None,
            finally: false,
        }
    }
}

impl Lower<'_> {
    fn sym(&mut self, name: String) -> Sym {
        if let Some(&s) = self.syms.get(&name) {
            return s;
        }
        let s = Sym(self.b.prog.names.len() as u32);
        self.b.prog.names.push(name.clone());
        self.syms.insert(name, s);
        s
    }

    fn open(&mut self, kind: Kind, pos: Pos, names: [Pos; 2]) -> NodeId {
        self.name_pos.push(names);
        self.b.open(kind, pos)
    }

    fn leaf(&mut self, kind: Kind, pos: Pos, names: [Pos; 2]) -> Result<Option<Frame>, Diagnostic> {
        self.name_pos.push(names);
        self.b.leaf(kind, pos);
        Ok(None)
    }

    fn err(&self, p: Pos, msg: String) -> Diagnostic {
        Diagnostic::new(self.file, p.line, p.col, msg)
    }

    /// Lowers form `i` appearing in `ctx` under `parent`. Returns the frame
    /// to push when the form has children.
    fn form(
        &mut self,
        i: u32,
        ctx: Ctx,
        parent: &'static str,
    ) -> Result<Option<Frame>, Diagnostic> {
        let s = self.s;
        let pos = s.node(i).pos;
        let what = match ctx {
            Ctx::Refs => "a `(ref NAME)`",
            Ctx::LetChild => "a `(gather ...)` or `(shield ...)`",
            Ctx::Await => "an awaitable (a statement form or `(ref NAME)`)",
            _ => "a statement form like `(sleep 1)`",
        };
        if !s.is_list(i) {
            let msg = format!("expected {what} inside `{parent}`, found {}", s.describe(i));
            return Err(self
                .err(pos, msg)
                .with_help(format!("usage: {}", args::usage(parent))));
        }
        let Some(h) = s.children(i).next() else {
            return Err(self.err(pos, format!("empty form `()`; expected {what} here")));
        };
        let head = match s.sym(h) {
            Some(h) if !h.starts_with(':') => h,
            _ => {
                let msg = format!(
                    "expected a form name like `sleep` here, found {}",
                    s.describe(h)
                );
                return Err(self.err(s.node(h).pos, msg));
            }
        };
        let Some(&(form, _)) = args::FORMS.iter().find(|(n, _)| *n == head) else {
            let hint = match args::suggest(head) {
                Some(g) => format!("did you mean `{g}`?"),
                None => "docs/FORMAT.md lists every form".to_string(),
            };
            return Err(self.err(s.node(h).pos, format!("unknown form `{head}`; {hint}")));
        };
        self.check_place(form, ctx, parent, pos)?;
        let mut a = Args {
            s,
            file: self.file,
            form,
            next: s.end(h),
            end: s.end(i),
            close: s.node(i).close,
        };
        let frame = |a: &Args, ctx: Ctx| Frame::new(a.next, a.end, ctx, form, pos);
        let p2 = [pos; 2];
        let kind = match form {
            "sleep" | "block" => {
                let t = a.time()?;
                a.finish()?;
                let k = if form == "sleep" {
                    Kind::Sleep(t)
                } else {
                    Kind::Block(t)
                };
                return self.leaf(k, pos, p2);
            }
            "return" => {
                let v = if a.peek().is_some() {
                    a.value()?
                } else {
                    Value::None
                };
                a.finish()?;
                return self.leaf(Kind::Return(v), pos, p2);
            }
            "raise" => {
                let e = a.exc()?;
                let m = a.opt_msg();
                a.finish()?;
                return self.leaf(Kind::Raise(e, m), pos, p2);
            }
            "await" | "done" | "cancelled" | "future" | "forget" | "ref" => {
                let (n, np) = a.name(if form == "future" {
                    "a future"
                } else {
                    "a task or future"
                })?;
                a.finish()?;
                let n = self.sym(n);
                let k = match form {
                    "await" => Kind::Await(n),
                    "done" => Kind::Done(n),
                    "cancelled" => Kind::Cancelled(n),
                    "future" => Kind::Future(n),
                    "forget" => Kind::Forget(n),
                    _ => Kind::Ref(n),
                };
                return self.leaf(k, pos, [np, np]);
            }
            "cancel" => {
                let (n, np) = a.name("a task or future")?;
                let m = a.opt_msg();
                a.finish()?;
                let n = self.sym(n);
                return self.leaf(Kind::Cancel(n, m), pos, [np, np]);
            }
            "cancel-self" => {
                let m = a.opt_msg();
                a.finish()?;
                return self.leaf(Kind::CancelSelf(m), pos, p2);
            }
            "uncancel" | "cancelling" => {
                let n = a.opt_name("a task")?;
                a.finish()?;
                let np = n.as_ref().map_or(pos, |n| n.1);
                let n = n.map(|n| self.sym(n.0));
                let k = if form == "uncancel" {
                    Kind::Uncancel(n)
                } else {
                    Kind::Cancelling(n)
                };
                return self.leaf(k, pos, [np, np]);
            }
            "resolve" => {
                let (n, np) = a.name("a future")?;
                let v = a.value()?;
                a.finish()?;
                let n = self.sym(n);
                return self.leaf(Kind::Resolve(n, v), pos, [np, np]);
            }
            "fail" => {
                let (n, np) = a.name("a future")?;
                let e = a.exc()?;
                let m = a.opt_msg();
                a.finish()?;
                let n = self.sym(n);
                return self.leaf(Kind::Fail(n, e, m), pos, [np, np]);
            }
            "reraise" | "gc" => {
                a.finish()?;
                let k = if form == "gc" {
                    Kind::Gc
                } else {
                    Kind::Reraise
                };
                return self.leaf(k, pos, p2);
            }
            "spawn" => return self.spawn(a, pos),
            "gather" => {
                let re = a.flag(":return-exceptions");
                a.no_more_options("`:return-exceptions`")?;
                self.open(
                    Kind::Gather {
                        return_exceptions: re,
                    },
                    pos,
                    p2,
                );
                return Ok(Some(frame(&a, Ctx::Await)));
            }
            "do" | "try" | "finally" => {
                a.no_more_options("no options")?;
                let (k, c) = match form {
                    "do" => (Kind::Do, Ctx::Body),
                    "try" => (Kind::Try, Ctx::TryBody),
                    _ => (Kind::Finally, Ctx::Body),
                };
                self.open(k, pos, p2);
                return Ok(Some(frame(&a, c)));
            }
            "shield" => {
                a.exactly_one_form("awaitable")?;
                Kind::Shield
            }
            "wait-for" => {
                let t = a.opt_time(true)?;
                a.exactly_one_form("awaitable")?;
                Kind::WaitFor(t)
            }
            "call-soon" => {
                a.exactly_one_form("statement")?;
                Kind::CallSoon
            }
            "call-later" => {
                let t = a.time()?;
                a.exactly_one_form("statement")?;
                Kind::CallLater(t)
            }
            "let" => {
                let (n, np) = a.name("a future")?;
                a.exactly_one_form("`(gather ...)` or `(shield ...)`")?;
                let n = self.sym(n);
                self.open(Kind::Let(n), pos, [np, np]);
                return Ok(Some(frame(&a, Ctx::LetChild)));
            }
            "timeout" => {
                let t = a.opt_time(true)?;
                a.no_more_options("no options")?;
                Kind::Timeout(t)
            }
            "taskgroup" => {
                let (n, np) = a.name("a task group")?;
                a.no_more_options("no options")?;
                let n = self.sym(n);
                self.open(Kind::TaskGroup(n), pos, [np, np]);
                return Ok(Some(frame(&a, Ctx::Body)));
            }
            "wait" | "as-completed" => {
                let k = a.wait_options()?;
                if a.peek().is_none() {
                    let m = format!("`{form}` needs at least one `(ref NAME)` to wait for");
                    return Err(a.err_at(a.close, m));
                }
                self.open(k, pos, p2);
                return Ok(Some(frame(&a, Ctx::Refs)));
            }
            "except" => {
                let c = a.catch()?;
                a.no_more_options("no options")?;
                self.open(Kind::Except(c), pos, p2);
                return Ok(Some(frame(&a, Ctx::Body)));
            }
            // `main` is rejected by `check_place`.
            _ => return Err(self.err(pos, format!("`{form}` is not allowed here"))),
        };
        let ctx = match kind {
            Kind::CallSoon | Kind::CallLater(_) => Ctx::CallStmt,
            Kind::Timeout(_) => Ctx::Body,
            _ => Ctx::Await,
        };
        self.open(kind, pos, p2);
        Ok(Some(frame(&a, ctx)))
    }

    /// Rejects forms that may not appear in `ctx`.
    fn check_place(&self, form: &str, ctx: Ctx, parent: &str, pos: Pos) -> Result<(), Diagnostic> {
        let msg = match (form, ctx) {
            ("main", _) => "`main` may appear only once, at the top level; use `(do ...)` for a \
                            nested coroutine"
                .to_string(),
            ("except" | "finally", c) if c != Ctx::Clause => format!(
                "`{form}` is only allowed as a clause at the end of a `(try ...)`; wrap the \
                 statements in (try BODY... ({form} ...))"
            ),
            ("ref", Ctx::Await | Ctx::Refs) => return Ok(()),
            ("ref", _) => "`(ref NAME)` is only allowed as an awaitable (inside gather, shield or \
                           wait-for) or inside wait and as-completed; to await a task as a \
                           statement write (await NAME)"
                .to_string(),
            (_, Ctx::Refs) => format!(
                "`{parent}` takes only `(ref NAME)` children, found `({form} ...)`; spawn it first \
                 with (spawn NAME ...) and pass (ref NAME)"
            ),
            ("gather" | "shield", Ctx::LetChild) => return Ok(()),
            (_, Ctx::LetChild) => format!(
                "`let` binds a `(gather ...)` or `(shield ...)` future, found `({form} ...)`; to \
                 start a coroutine without awaiting it use (spawn NAME ...)"
            ),
            ("cancel" | "resolve" | "fail" | "spawn", Ctx::CallStmt) => return Ok(()),
            (_, Ctx::CallStmt) => format!(
                "`{parent}` runs a plain callback, which can only `cancel`, `resolve`, `fail` or \
                 `spawn`, found `({form} ...)`; put other statements in a spawned task"
            ),
            _ => return Ok(()),
        };
        // Misplaced children get the parent's usage; misplaced forms their own.
        let help_form = match ctx {
            Ctx::Refs | Ctx::LetChild | Ctx::CallStmt if form != "main" => parent,
            _ => form,
        };
        Err(self
            .err(pos, msg)
            .with_help(format!("usage: {}", args::usage(help_form))))
    }

    fn spawn(&mut self, mut a: Args, pos: Pos) -> Result<Option<Frame>, Diagnostic> {
        let (n, np) = a.name("a task")?;
        let mut gp = np;
        let mode = if a.flag(":weak") {
            SpawnMode::Weak
        } else if a.flag(":keep") {
            SpawnMode::Keep
        } else if a.flag(":in") {
            let (g, p) = a.name("a task group")?;
            gp = p;
            SpawnMode::In(self.sym(g))
        } else {
            SpawnMode::Bind
        };
        a.no_more_options("one of `:weak`, `:keep` or `:in GROUP`, right after the name")?;
        let n = self.sym(n);
        self.open(Kind::Spawn(n, mode), pos, [np, gp]);
        Ok(Some(Frame::new(a.next, a.end, Ctx::Body, "spawn", pos)))
    }
}
