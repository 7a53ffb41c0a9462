//! The canonical printer: one spelling for every program, so that
//! `parse(print(p)) == p` and printing is idempotent. `head` gives the
//! one-line label that traces print next to node numbers.
//!
//! Layout (documented in docs/FORMAT.md): `(canceltree 1)`, a blank line,
//! then `(main` with each statement on its own line, 2 spaces per level. A
//! node other than main goes on one line when it has no children, or when all
//! its children are childless and the line (indentation included, closing
//! parens of enclosing nodes excluded) is at most 80 columns. Otherwise its
//! head ends the line and each child starts a new one. Indentation stops
//! growing at level 50 so the text stays linear in the program's size.

use crate::ast::{CatchClass, Kind, NodeId, Program, SpawnMode, Time, Value, WaitWhen};

/// Width limit for putting a node with children on one line.
pub const WIDTH: usize = 80;

/// Nesting levels beyond this are indented like this one, so that the text of
/// a deeply nested program stays linear in its size.
pub const MAX_INDENT_LEVEL: usize = 50;

/// A time as the parser reads it back bit for bit: the shortest decimal, with
/// `.0` appended when the integer spelling would not read back (`-0.0`, or
/// beyond the range of a 64-bit integer).
pub fn time(t: Time) -> String {
    let s = format!("{}", t.0);
    if s.contains('.') {
        return s;
    }
    match s.parse::<i64>() {
        Ok(n) if (n as f64).to_bits() == t.0.to_bits() => s,
        _ => format!("{s}.0"),
    }
}

fn opt_time(t: Option<Time>) -> String {
    t.map_or_else(|| "none".to_string(), time)
}

/// A string literal with `\` and `"` escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub fn value(v: &Value) -> String {
    match v {
        Value::None => "none".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Str(s) => string(s),
    }
}

fn word(out: &mut String, w: &str) {
    out.push(' ');
    out.push_str(w);
}

fn msg(out: &mut String, m: &Option<String>) {
    if let Some(m) = m {
        out.push(' ');
        out.push_str(&string(m));
    }
}

/// The node's head on one line, without parens or children: `sleep 1`,
/// `spawn a :weak`, `except (group ValueError)`, `wait :first-completed :timeout 0.5`.
pub fn head(p: &Program, id: NodeId) -> String {
    let mut out = String::new();
    write_head(p, id, &mut out);
    out
}

/// Appends `head(p, id)` to `out`.
fn write_head(p: &Program, id: NodeId, out: &mut String) {
    let kind = p.kind(id);
    out.push_str(kind.keyword());
    match kind {
        Kind::Sleep(t) | Kind::Block(t) | Kind::CallLater(t) => word(out, &time(*t)),
        Kind::Return(v) => word(out, &value(v)),
        Kind::Raise(e, m) => {
            word(out, &e.name());
            msg(out, m);
        }
        Kind::Spawn(s, mode) => {
            word(out, p.name(*s));
            match mode {
                SpawnMode::Bind => {}
                SpawnMode::Weak => word(out, ":weak"),
                SpawnMode::Keep => word(out, ":keep"),
                SpawnMode::In(g) => {
                    word(out, ":in");
                    word(out, p.name(*g));
                }
            }
        }
        Kind::Await(s)
        | Kind::Done(s)
        | Kind::Cancelled(s)
        | Kind::Future(s)
        | Kind::Ref(s)
        | Kind::Let(s)
        | Kind::TaskGroup(s)
        | Kind::Forget(s) => word(out, p.name(*s)),
        Kind::Uncancel(s) | Kind::Cancelling(s) => {
            if let Some(s) = s {
                word(out, p.name(*s));
            }
        }
        Kind::Cancel(s, m) => {
            word(out, p.name(*s));
            msg(out, m);
        }
        Kind::CancelSelf(m) => msg(out, m),
        Kind::Resolve(s, v) => {
            word(out, p.name(*s));
            word(out, &value(v));
        }
        Kind::Fail(s, e, m) => {
            word(out, p.name(*s));
            word(out, &e.name());
            msg(out, m);
        }
        Kind::Gather {
            return_exceptions: true,
        } => word(out, ":return-exceptions"),
        Kind::WaitFor(t) | Kind::Timeout(t) => word(out, &opt_time(*t)),
        Kind::Wait { when, timeout } => {
            match when {
                WaitWhen::AllCompleted => {}
                WaitWhen::FirstCompleted => word(out, ":first-completed"),
                WaitWhen::FirstException => word(out, ":first-exception"),
            }
            if let Some(t) = timeout {
                word(out, ":timeout");
                word(out, &time(*t));
            }
        }
        Kind::AsCompleted { timeout: Some(t) } => {
            word(out, ":timeout");
            word(out, &time(*t));
        }
        Kind::Except(c) => {
            let class = match c.class {
                CatchClass::Class(e) => e.name(),
                CatchClass::Exception => "Exception".to_string(),
                CatchClass::BaseException => "BaseException".to_string(),
            };
            if c.star {
                word(out, &format!("(group {class})"))
            } else {
                word(out, &class)
            }
        }
        _ => {}
    }
}

/// Appends the one-line text of `id` to `out` if it goes on one line at
/// `indent`; otherwise appends nothing and returns false.
fn flat(p: &Program, id: NodeId, indent: usize, out: &mut String) -> bool {
    let start = out.len();
    let fits = |out: &String| indent + out.len() - start <= WIDTH;
    out.push('(');
    write_head(p, id, out);
    if p.end(id) == id + 1 {
        out.push(')');
        return true;
    }
    let ok = !matches!(p.kind(id), Kind::Main)
        && p.children(id).all(|c| {
            if p.end(c) != c + 1 || !fits(out) {
                return false;
            }
            out.push_str(" (");
            write_head(p, c, out);
            out.push(')');
            true
        });
    out.push(')');
    if ok && fits(out) {
        return true;
    }
    out.truncate(start);
    false
}

/// The canonical text of a program, ending with a newline.
pub fn print(p: &Program) -> String {
    let mut out = String::from("(canceltree 1)\n\n");
    // Nodes printed over several lines whose `)` is still to come.
    let mut open: Vec<NodeId> = Vec::new();
    let n = p.len() as NodeId;
    let spaces = " ".repeat(2 * MAX_INDENT_LEVEL);
    let mut id = 0;
    while id < n {
        while open.last().is_some_and(|&top| id >= p.end(top)) {
            open.pop();
            out.push(')');
        }
        if id != 0 {
            out.push('\n');
        }
        let indent = 2 * open.len().min(MAX_INDENT_LEVEL);
        out.push_str(&spaces[..indent]);
        if flat(p, id, indent, &mut out) {
            id = p.end(id).max(id + 1);
        } else {
            out.push('(');
            write_head(p, id, &mut out);
            open.push(id);
            id += 1;
        }
    }
    for _ in open {
        out.push(')');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_exactly() {
        assert_eq!(time(Time(1.0)), "1");
        assert_eq!(time(Time(0.5)), "0.5");
        assert_eq!(time(Time(-0.0)), "-0.0");
        assert_eq!(time(Time(1e20)), "100000000000000000000.0");
        assert_eq!(time(Time(-2.0)), "-2");
    }

    #[test]
    fn strings_are_reescaped() {
        assert_eq!(string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
