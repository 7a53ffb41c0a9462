//! Compiles a program to plain asyncio Python: one `async def` per coroutine,
//! each statement wrapped in `with N(k):` so the runtime can trace it.
//!
//! The CPython worker executes exactly this source, and `canceltree export`
//! prints it with the runtime attached, so a backend trace and an exported
//! script cannot drift apart. Generation is iterative (explicit work stack);
//! CPython itself rejects code nested more than 100 blocks deep, which then
//! shows up as a crashed case, not as a problem here.

use crate::ast::{
    Catch, CatchClass, ExcClass, Kind, NodeId, Program, SpawnMode, Time, Value, WaitWhen,
};
use std::collections::HashMap;
use std::fmt::Write;

/// The Python half of a program: `async def main()`, then `LABELS` (node
/// labels for the text trace) and `CORO` (coroutine function name to task
/// name and node, so the runtime can name the tasks it sees).
pub fn program_source(p: &Program) -> String {
    let Code { mut text, coros } = program_code(p);
    text.push_str("\n\nLABELS = [\n");
    for id in 0..p.len() as NodeId {
        let _ = writeln!(text, "    {},", py_str(&crate::syntax::head(p, id)));
    }
    text.push_str("]\nCORO = {\n");
    for (fname, task, node) in &coros {
        let _ = writeln!(text, "    {}: ({}, {node}),", py_str(fname), py_str(task));
    }
    text.push_str("}\n");
    text
}

/// The executable part of a program's Python: the `async def`s that
/// [`program_source`] starts with, and the `CORO` table as data.
pub struct Code {
    pub text: String,
    /// (function name, task name, node) of every coroutine function.
    pub coros: Vec<(String, String, NodeId)>,
}

/// What the worker compiles: the program's code without `LABELS` and `CORO`,
/// which [`program_source`] appends after it. The worker has no use for the
/// labels (it returns JSON, not text) and gets `CORO` as data, so CPython's
/// compiler (the costliest step of a run through the worker) skips them; the
/// code, and so its line numbers and behaviour, is the exported script's.
pub fn program_code(p: &Program) -> Code {
    let mut g = Gen::new(p);
    g.run();
    Code {
        text: g.out,
        coros: g.coros,
    }
}

/// A Python string literal for ASCII text (what `.ct` strings and names are).
pub fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn py_time(t: Time) -> String {
    format!("{:?}", t.0)
}

fn py_opt_time(t: Option<Time>) -> String {
    t.map_or_else(|| "None".to_string(), py_time)
}

fn py_value(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => py_str(s),
    }
}

fn py_class(c: ExcClass) -> String {
    match c {
        ExcClass::CancelledError => "asyncio.CancelledError".into(),
        other => other.name(),
    }
}

fn py_exc(c: ExcClass, msg: &Option<String>) -> String {
    format!(
        "{}({})",
        py_class(c),
        msg.as_deref().map(py_str).unwrap_or_default()
    )
}

fn py_catch(c: Catch) -> String {
    let class = match c.class {
        CatchClass::Class(e) => py_class(e),
        CatchClass::Exception => "Exception".into(),
        CatchClass::BaseException => "BaseException".into(),
    };
    format!("{} {class}:", if c.star { "except*" } else { "except" })
}

enum Work {
    /// Emit statement `id`; `tail` when its value is the coroutine's value.
    Stmt {
        id: NodeId,
        indent: usize,
        tail: bool,
        callback: bool,
    },
    /// Emit an already formatted line.
    Line { text: String, indent: usize },
    /// Emit `async def NAME():` and the coroutine made of node `id`: its
    /// body if it is a `do`, else the node itself as the one statement.
    Coro {
        id: NodeId,
        name: String,
        indent: usize,
    },
}

struct Gen<'a> {
    p: &'a Program,
    out: String,
    stack: Vec<Work>,
    /// (function name, task name, node) of every coroutine function.
    coros: Vec<(String, String, NodeId)>,
    /// How many spawn nodes use each name: unique ones keep the bare name.
    spawn_names: HashMap<&'a str, usize>,
}

impl<'a> Gen<'a> {
    fn new(p: &'a Program) -> Gen<'a> {
        let mut spawn_names = HashMap::new();
        for n in &p.nodes {
            if let Kind::Spawn(s, _) = n.kind {
                *spawn_names.entry(p.name(s)).or_insert(0) += 1;
            }
        }
        Gen {
            p,
            out: String::new(),
            stack: Vec::new(),
            coros: Vec::new(),
            spawn_names,
        }
    }

    fn run(&mut self) {
        self.out.push_str("async def main():\n");
        self.coros.push(("main".into(), "main".into(), 0));
        self.push_body(0, 1, true, false);
        while let Some(w) = self.stack.pop() {
            match w {
                Work::Line { text, indent } => self.line(indent, &text),
                Work::Stmt {
                    id,
                    indent,
                    tail,
                    callback,
                } => self.stmt(id, indent, tail, callback),
                Work::Coro { id, name, indent } => {
                    self.line(indent, &format!("async def {name}():"));
                    if matches!(self.p.kind(id), Kind::Do) {
                        self.push_body(id, indent + 1, true, false);
                    } else {
                        self.stack.push(Work::Stmt {
                            id,
                            indent: indent + 1,
                            tail: true,
                            callback: false,
                        });
                    }
                }
            }
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Schedules the statements of `parent`'s body (its children that are not
    /// except/finally clauses), `pass` if there are none.
    fn push_body(&mut self, parent: NodeId, indent: usize, tail: bool, callback: bool) {
        let body: Vec<NodeId> = self
            .p
            .children(parent)
            .filter(|&c| !matches!(self.p.kind(c), Kind::Except(_) | Kind::Finally))
            .collect();
        if body.is_empty() {
            self.stack.push(Work::Line {
                text: "pass".into(),
                indent,
            });
        }
        let last = body.len().saturating_sub(1);
        for (i, &c) in body.iter().enumerate().rev() {
            self.stack.push(Work::Stmt {
                id: c,
                indent,
                tail: tail && i == last,
                callback,
            });
        }
    }

    fn task_fn(&self, id: NodeId, name: &str) -> (String, String) {
        if self.spawn_names.get(name).copied().unwrap_or(0) > 1 {
            (format!("_task_{name}_{id}"), format!("{name}@{id}"))
        } else {
            (format!("_task_{name}"), name.to_string())
        }
    }

    /// The Python expression for each awaitable child of `id`, scheduling an
    /// `async def` for each child that is a new coroutine.
    fn awaitables(&mut self, id: NodeId, indent: usize, defs: &mut Vec<Work>) -> Vec<String> {
        let mut exprs = Vec::new();
        for c in self.p.children(id) {
            if let Kind::Ref(s) = self.p.kind(c) {
                exprs.push(self.p.name(*s).to_string());
            } else {
                let name = format!("_aw{c}");
                self.coros.push((name.clone(), format!("@{c}"), c));
                exprs.push(format!("{name}()"));
                defs.push(Work::Coro {
                    id: c,
                    name,
                    indent,
                });
            }
        }
        exprs
    }

    /// `asyncio.gather(...)` or `asyncio.shield(...)` for node `id`, with the
    /// coroutine definitions it needs appended to `defs`.
    fn combinator(&mut self, id: NodeId, indent: usize, defs: &mut Vec<Work>) -> String {
        let args = self.awaitables(id, indent, defs);
        match self.p.kind(id) {
            Kind::Gather { return_exceptions } => {
                let mut a = args.join(", ");
                if *return_exceptions {
                    if !a.is_empty() {
                        a.push_str(", ");
                    }
                    a.push_str("return_exceptions=True");
                }
                format!("_fresh(asyncio.gather({a}))")
            }
            Kind::Shield => format!("asyncio.shield({})", args.join(", ")),
            Kind::WaitFor(t) => {
                format!("asyncio.wait_for({}, {})", args.join(", "), py_opt_time(*t))
            }
            other => unreachable!("combinator on {other:?}"),
        }
    }

    fn stmt(&mut self, id: NodeId, indent: usize, tail: bool, callback: bool) {
        let p = self.p;
        let name = |s| p.name(s);
        let with = format!("with N({id})");
        let simple = |g: &mut Gen, code: String| g.line(indent, &format!("{with}: {code}"));
        let valued = |g: &mut Gen, expr: String| {
            let ret = if tail { "return " } else { "" };
            g.line(indent, &format!("{with} as _n: {ret}_n({expr})"))
        };
        match p.kind(id).clone() {
            Kind::Sleep(t) => simple(self, format!("await asyncio.sleep({})", py_time(t))),
            Kind::Block(t) => simple(self, format!("time.sleep({})", py_time(t))),
            Kind::Return(v) => simple(self, format!("return {}", py_value(&v))),
            Kind::Raise(c, m) => simple(self, format!("raise {}", py_exc(c, &m))),
            Kind::Reraise => simple(self, "raise".into()),
            Kind::Future(s) => simple(self, format!("{0} = future({1})", name(s), py_str(name(s)))),
            Kind::Resolve(s, v) => {
                simple(self, format!("{}.set_result({})", name(s), py_value(&v)))
            }
            Kind::Fail(s, c, m) => simple(
                self,
                format!("{}.set_exception({})", name(s), py_exc(c, &m)),
            ),
            Kind::Gc => simple(self, "gc.collect()".into()),
            Kind::Forget(s) => simple(self, format!("del {}", name(s))),
            Kind::Await(s) => valued(self, format!("await {}", name(s))),
            Kind::Cancel(s, m) => valued(self, format!("{}.cancel({})", name(s), opt_str(&m))),
            Kind::CancelSelf(m) => valued(
                self,
                format!("asyncio.current_task().cancel({})", opt_str(&m)),
            ),
            Kind::Uncancel(s) => valued(self, format!("{}.uncancel()", task_expr(p, s))),
            Kind::Cancelling(s) => valued(self, format!("{}.cancelling()", task_expr(p, s))),
            Kind::Done(s) => valued(self, format!("{}.done()", name(s))),
            Kind::Cancelled(s) => valued(self, format!("{}.cancelled()", name(s))),
            Kind::Wait { when, timeout } => {
                let refs: Vec<&str> = p.children(id).filter_map(|c| ref_name(p, c)).collect();
                let mut args = format!("[{}]", refs.join(", "));
                if let Some(t) = timeout {
                    let _ = write!(args, ", timeout={}", py_time(t));
                }
                match when {
                    WaitWhen::AllCompleted => {}
                    WaitWhen::FirstCompleted => {
                        args.push_str(", return_when=asyncio.FIRST_COMPLETED")
                    }
                    WaitWhen::FirstException => {
                        args.push_str(", return_when=asyncio.FIRST_EXCEPTION")
                    }
                }
                valued(self, format!("len((await asyncio.wait({args}))[0])"))
            }
            Kind::AsCompleted { timeout } => {
                let refs: Vec<&str> = p.children(id).filter_map(|c| ref_name(p, c)).collect();
                let t = timeout
                    .map(|t| format!(", timeout={}", py_time(t)))
                    .unwrap_or_default();
                valued(
                    self,
                    format!(
                        "[await _f for _f in asyncio.as_completed([{}]{t})]",
                        refs.join(", ")
                    ),
                )
            }
            Kind::Gather { .. } | Kind::Shield | Kind::WaitFor(_) => {
                let mut defs = Vec::new();
                let call = self.combinator(id, indent + 1, &mut defs);
                if defs.is_empty() {
                    return valued(self, format!("await {call}"));
                }
                self.line(indent, &format!("{with} as _n:"));
                let ret = if tail { "return " } else { "" };
                self.stack.push(Work::Line {
                    text: format!("{ret}_n(await {call})"),
                    indent: indent + 1,
                });
                self.stack.extend(defs.into_iter().rev());
            }
            Kind::Let(s) => {
                let inner = p.children(id).next().expect("let has an operand");
                let mut defs = Vec::new();
                let call = self.combinator(inner, indent + 1, &mut defs);
                let bind = format!("{0} = named({1}, {call})", name(s), py_str(name(s)));
                if defs.is_empty() {
                    return simple(self, bind);
                }
                self.line(indent, &format!("{with}:"));
                self.stack.push(Work::Line {
                    text: bind,
                    indent: indent + 1,
                });
                self.stack.extend(defs.into_iter().rev());
            }
            Kind::Do => {
                let fname = format!("_do{id}");
                self.coros.push((fname.clone(), format!("@{id}"), id));
                self.line(indent, &format!("{with} as _n:"));
                let ret = if tail { "return " } else { "" };
                self.stack.push(Work::Line {
                    text: format!("{ret}_n(await {fname}())"),
                    indent: indent + 1,
                });
                self.stack.push(Work::Coro {
                    id,
                    name: fname,
                    indent: indent + 1,
                });
            }
            Kind::Spawn(s, mode) => {
                let (fname, task) = self.task_fn(id, name(s));
                self.coros.push((fname.clone(), task.clone(), id));
                let create =
                    |owner: &str| format!("{owner}.create_task({fname}(), name={})", py_str(&task));
                let call = match mode {
                    SpawnMode::Weak => create("asyncio"),
                    SpawnMode::Bind if callback => create("asyncio"),
                    SpawnMode::Bind => format!("{} = {}", name(s), create("asyncio")),
                    SpawnMode::Keep => format!("keep({})", create("asyncio")),
                    SpawnMode::In(g) if callback => create(name(g)),
                    SpawnMode::In(g) => format!("{} = {}", name(s), create(name(g))),
                };
                self.line(indent, &format!("{with}:"));
                self.line(indent + 1, &format!("async def {fname}():"));
                self.stack.push(Work::Line {
                    text: call,
                    indent: indent + 1,
                });
                self.push_body(id, indent + 2, true, false);
            }
            Kind::CallSoon | Kind::CallLater(_) => {
                let inner = p.children(id).next().expect("callback has a statement");
                let fname = format!("_cb{inner}");
                let schedule = match p.kind(id) {
                    Kind::CallLater(t) => format!(
                        "asyncio.get_running_loop().call_later({}, {fname})",
                        py_time(*t)
                    ),
                    _ => format!("asyncio.get_running_loop().call_soon({fname})"),
                };
                self.line(indent, &format!("{with}:"));
                self.line(indent + 1, &format!("def {fname}():"));
                self.stack.push(Work::Line {
                    text: schedule,
                    indent: indent + 1,
                });
                self.stack.push(Work::Stmt {
                    id: inner,
                    indent: indent + 2,
                    tail: false,
                    callback: true,
                });
            }
            Kind::Timeout(t) => {
                self.line(indent, &format!("{with}:"));
                self.line(
                    indent + 1,
                    &format!("async with asyncio.timeout({}):", py_opt_time(t)),
                );
                self.push_body(id, indent + 2, tail, callback);
            }
            Kind::TaskGroup(s) => {
                self.line(indent, &format!("{with}:"));
                self.line(
                    indent + 1,
                    &format!("async with TaskGroup() as {}:", name(s)),
                );
                self.push_body(id, indent + 2, tail, callback);
            }
            Kind::Try => {
                self.line(indent, &format!("{with}:"));
                self.line(indent + 1, "try:");
                let clauses: Vec<NodeId> = p
                    .children(id)
                    .filter(|&c| matches!(p.kind(c), Kind::Except(_) | Kind::Finally))
                    .collect();
                for &c in clauses.iter().rev() {
                    let (header, clause_tail) = match p.kind(c) {
                        Kind::Except(catch) => (py_catch(*catch), tail && !catch.star),
                        _ => ("finally:".to_string(), false),
                    };
                    self.stack.push(Work::Stmt {
                        id: c,
                        indent: indent + 2,
                        tail: clause_tail,
                        callback,
                    });
                    self.stack.push(Work::Line {
                        text: header,
                        indent: indent + 1,
                    });
                }
                self.push_body(id, indent + 2, tail, callback);
            }
            Kind::Except(_) | Kind::Finally => {
                self.line(indent, &format!("{with}:"));
                self.push_body(id, indent + 1, tail, callback);
            }
            Kind::Main | Kind::Ref(_) => unreachable!("{:?} is not a statement", p.kind(id)),
        }
    }
}

fn opt_str(m: &Option<String>) -> String {
    m.as_deref().map(py_str).unwrap_or_default()
}

fn task_expr(p: &Program, s: Option<crate::ast::Sym>) -> String {
    s.map_or_else(
        || "asyncio.current_task()".to_string(),
        |s| p.name(s).to_string(),
    )
}

fn ref_name(p: &Program, id: NodeId) -> Option<&str> {
    match p.kind(id) {
        Kind::Ref(s) => Some(p.name(*s)),
        _ => None,
    }
}
