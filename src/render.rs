//! Renders traces as aligned text, and two traces side by side from their
//! first difference. The text must match `render` in python/runtime.py byte
//! for byte (exported scripts print it); docs/TRACE.md specifies it.

use crate::ast::Program;
use crate::trace::{Event, Exc, Fin, Link, Outcome, Res, State, Trace, Value, What};
use std::fmt::Write;

/// Python's `repr` of a value (strings in traces are ASCII).
pub fn value(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => crate::pygen::py_str(s),
        Value::List(xs) => format!("[{}]", xs.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Obj { obj } => format!("<{obj}>"),
    }
}

pub fn exc(e: &Exc) -> String {
    let mut inner: Vec<String> = e.args.iter().map(value).collect();
    if let Some(group) = &e.group {
        inner.push(format!(
            "[{}]",
            group.iter().map(exc).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut s = format!("{}({})", e.cls, inner.join(", "));
    for (link, cls) in &e.chain {
        s.push_str(match link {
            Link::Cause => " from ",
            Link::Context => " during ",
        });
        s.push_str(cls);
    }
    s
}

pub fn fin(f: &Fin) -> String {
    match f {
        Fin::Result(v) => format!("result {}", value(v)),
        Fin::Exception(e) => format!("exception {}", exc(e)),
        Fin::Cancelled(None) => "cancelled".into(),
        Fin::Cancelled(Some(m)) => format!("cancelled {}", crate::pygen::py_str(m)),
    }
}

/// Virtual time as Python would print it through `decimal`: no exponent,
/// integers without a fraction.
pub fn time(t: f64) -> String {
    format!("{t}")
}

/// Node labels for rendering: the node's head as written in `.ct`.
pub fn labels(p: &Program) -> Vec<String> {
    (0..p.len() as u32)
        .map(|id| crate::syntax::head(p, id))
        .collect()
}

fn label(labels: &[String], node: u32) -> &str {
    labels.get(node as usize).map_or("?", |s| s.as_str())
}

fn task_name(t: &Trace, i: u32) -> String {
    t.tasks
        .get(i as usize)
        .map_or_else(|| format!("task{i}"), |x| x.name.to_string())
}

/// The event column of one event.
pub fn event_text(t: &Trace, labels: &[String], e: &Event) -> String {
    match &e.what {
        What::Start(n) => format!("start #{n} {}", label(labels, *n)),
        What::End { node, res } => {
            let mut s = format!("end #{node} {}", label(labels, *node));
            match res {
                Res::Ok => {}
                Res::Val(v) => {
                    let _ = write!(s, " -> {}", value(v));
                }
                Res::Raise(x) => {
                    let _ = write!(s, " !! {}", exc(x));
                }
            }
            s
        }
        What::Create { name, node, .. } => format!("create {name} #{node}"),
        What::Done { task, fin: f } => format!("done {}: {}", task_name(t, *task), fin(f)),
        What::Handler { msg, obj, exc: x } => {
            let mut s = format!("handler: {msg}");
            if let Some(o) = obj {
                let _ = write!(s, " [{o}]");
            }
            if let Some(x) = x {
                let _ = write!(s, " {}", exc(x));
            }
            s
        }
        What::Phase(p) => format!("-- {p} --"),
        What::Inject { task, ret } => {
            format!(
                "inject cancel {} -> {}",
                task_name(t, *task),
                if *ret { "True" } else { "False" }
            )
        }
    }
}

fn rows(t: &Trace, labels: &[String]) -> Vec<(String, String, String)> {
    t.events
        .iter()
        .map(|e| {
            let task = e.task.map_or_else(|| "-".to_string(), |i| task_name(t, i));
            (time(e.t), task, event_text(t, labels, e))
        })
        .collect()
}

pub fn outcome(t: &Trace) -> String {
    match &t.outcome {
        Outcome::Main(f) => format!("main {}", fin(f)),
        Outcome::Deadlock(ws) => {
            let parts: Vec<String> = ws
                .iter()
                .map(|w| format!("{} awaits {}", task_name(t, w.task), w.on))
                .collect();
            format!("deadlock: {}", parts.join("; "))
        }
        Outcome::Escaped(x) => format!("escaped {}", exc(x)),
        Outcome::Hung { secs } => format!("hung: no answer within {secs} s"),
        Outcome::Crashed(msg) => format!("crashed: {}", msg.trim_end()),
    }
}

fn state(s: &State) -> String {
    match s {
        State::Pending => "pending".into(),
        State::Destroyed => "destroyed".into(),
        State::Done(f) => fin(f),
    }
}

/// The whole trace as text.
pub fn text(t: &Trace, labels: &[String]) -> String {
    let rows = rows(t, labels);
    let w1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::from("events:\n");
    for (a, b, c) in &rows {
        let _ = writeln!(out, "  {a:>w1$}  {b:<w2$}  {c}");
    }
    let _ = writeln!(out, "outcome: {}", outcome(t));
    out.push_str("tasks:\n");
    let w = t.tasks.iter().map(|x| x.name.len()).max().unwrap_or(0);
    for task in &t.tasks {
        let c = task
            .cancelling
            .map_or_else(|| "?".to_string(), |c| c.to_string());
        let _ = writeln!(
            out,
            "  {:<w$}  {}  cancelling={c}",
            task.name,
            state(&task.state)
        );
    }
    out
}

/// Two or more traces side by side, from the first event where any differs
/// (with two lines of context before it), then each outcome and task table
/// that differs. Returns `None` when all traces are equal.
pub fn diff(traces: &[(&str, &Trace)], labels: &[String]) -> Option<String> {
    let first = traces.first()?.1;
    if traces.iter().all(|(_, t)| *t == first) {
        return None;
    }
    // The iteration is shown here (not in plain text) so that a difference
    // in it alone is visible.
    let columns: Vec<Vec<String>> = traces
        .iter()
        .map(|(_, t)| {
            rows(t, labels)
                .into_iter()
                .zip(&t.events)
                .map(|((a, b, c), e)| format!("{a}/{} {b} {c}", e.it))
                .collect()
        })
        .collect();
    let len = columns.iter().map(|c| c.len()).max().unwrap_or(0);
    let at = (0..len)
        .find(|&i| columns.iter().any(|c| c.get(i) != columns[0].get(i)))
        .unwrap_or(len);
    let width = columns
        .iter()
        .flatten()
        .map(|s| s.len())
        .max()
        .unwrap_or(0)
        .clamp(20, 60);
    let mut out = String::new();
    let header: Vec<String> = traces.iter().map(|(n, _)| format!("{n:<width$}")).collect();
    if at == len {
        let _ = writeln!(
            out,
            "all {len} events agree; the outcome or the final task states differ"
        );
    } else {
        let _ = writeln!(out, "first difference at event {at}:");
    }
    let _ = writeln!(out, "  {}", header.join(" | ").trim_end());
    for i in at.saturating_sub(2)..len {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| format!("{:<width$}", c.get(i).map_or("", |s| s.as_str())))
            .collect();
        let mark = if columns.iter().any(|c| c.get(i) != columns[0].get(i)) {
            '!'
        } else {
            ' '
        };
        let _ = writeln!(out, "{mark} {}", cells.join(" | ").trim_end());
    }
    for (name, t) in traces {
        let _ = writeln!(out, "outcome on {name}: {}", outcome(t));
    }
    if traces.iter().any(|(_, t)| t.tasks != first.tasks) {
        for (name, t) in traces {
            let tasks: Vec<String> = t
                .tasks
                .iter()
                .map(|x| {
                    let c = x
                        .cancelling
                        .map_or_else(|| "?".to_string(), |c| c.to_string());
                    format!("{} {} cancelling={c}", x.name, state(&x.state))
                })
                .collect();
            let _ = writeln!(out, "tasks on {name}: {}", tasks.join(", "));
        }
    }
    Some(out)
}
