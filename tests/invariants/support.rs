//! Helpers of tests/invariants.rs: parsing programs and examples, the
//! CPython backend the corruption tests run on, the assertions that a
//! trace is clean or that a named invariant fires on it, and the small
//! edits that corrupt a real trace in one place.

use canceltree::ast::Program;
use canceltree::backend::{self, Backend, Spec, discover};
use canceltree::invariants::{self, Violation};
use canceltree::trace::{Event, Exc, Fin, Res, State, Trace, Value, What};
use canceltree::{render, syntax};

pub fn parse(src: &str) -> Program {
    let text = format!("(canceltree 1)\n{src}\n");
    syntax::parse("test.ct", &text).unwrap_or_else(|d| panic!("{}", d.render(&text)))
}

pub fn example(stem: &str) -> Program {
    let path = format!("examples/{stem}.ct");
    let text = std::fs::read_to_string(&path).expect("example exists");
    syntax::parse(&path, &text).unwrap_or_else(|d| panic!("{}", d.render(&text)))
}

/// A CPython backend for the corruption tests: 3.12 if present, else the
/// first one discovered. `None` (with a note) when there is none.
pub fn cpython() -> Option<(Box<dyn Backend>, (u32, u32))> {
    let versions = discover::versions();
    let v = if versions.contains(&(3, 12)) {
        (3, 12)
    } else {
        *versions.first()?
    };
    let spec = Spec::parse(&format!("cpython:{}.{}", v.0, v.1)).unwrap();
    Some((
        backend::open(&spec).expect("discovered interpreter starts"),
        v,
    ))
}

fn show(p: &Program, t: &Trace, found: &[Violation]) -> String {
    let list: Vec<String> = found
        .iter()
        .map(|v| format!("{}: {}", v.invariant, v.message))
        .collect();
    format!(
        "{}\n{}",
        list.join("\n"),
        render::text(t, &render::labels(p))
    )
}

/// Asserts the trace as given satisfies everything, then returns it.
pub fn clean(p: &Program, t: Trace, version: (u32, u32)) -> Trace {
    let found = invariants::check(p, &t, version);
    assert!(
        found.is_empty(),
        "the unmodified trace already violates:\n{}",
        show(p, &t, &found)
    );
    t
}

/// Asserts `name` is among the violations of the trace.
pub fn fires(p: &Program, t: &Trace, version: (u32, u32), name: &str) {
    assert!(
        invariants::by_name(name).is_some(),
        "{name} is not an invariant"
    );
    let found = invariants::check(p, t, version);
    assert!(
        found.iter().any(|v| v.invariant == name),
        "{name} did not fire; violations:\n{}",
        show(p, t, &found)
    );
}

pub fn run(b: &mut Box<dyn Backend>, version: (u32, u32), p: &Program) -> Trace {
    clean(p, b.run(p), version)
}

pub fn task(t: &Trace, name: &str) -> u32 {
    t.tasks
        .iter()
        .position(|x| &*x.name == name)
        .unwrap_or_else(|| panic!("no task {name}")) as u32
}

pub fn end_of(t: &mut Trace, node: u32) -> &mut Res {
    t.events
        .iter_mut()
        .find_map(|e| match &mut e.what {
            What::End { node: n, res } if *n == node => Some(res),
            _ => None,
        })
        .unwrap_or_else(|| panic!("node #{node} never ended"))
}

pub fn done_of(t: &mut Trace, k: u32) -> &mut Fin {
    t.events
        .iter_mut()
        .find_map(|e| match &mut e.what {
            What::Done { task, fin } if *task == k => Some(fin),
            _ => None,
        })
        .unwrap_or_else(|| panic!("task {k} never finished"))
}

pub fn exc(cls: &str) -> Exc {
    Exc {
        cls: cls.to_string().into(),
        args: vec![],
        group: None,
        chain: vec![],
    }
}

/// Removes every trace of a cancellation from task `k`: it finishes with
/// `None`, no CancelledError leaves its statements, its count is 0.
pub fn erase_cancel(t: &mut Trace, k: u32) {
    for e in &mut t.events {
        match &mut e.what {
            What::Done { task, fin } if *task == k => *fin = Fin::Result(Value::None),
            What::End { res, .. } if e.task == Some(k) => {
                if matches!(res, Res::Raise(x) if x.cls == "CancelledError") {
                    *res = Res::Ok
                }
            }
            _ => {}
        }
    }
    let x = &mut t.tasks[k as usize];
    x.state = State::Done(Fin::Result(Value::None));
    x.cancelling = Some(0);
}

pub fn handler(t: &Trace, at: usize, msg: &str, obj: &str) -> Event {
    Event {
        t: t.events[at].t,
        it: t.events[at].it,
        task: t.events[at].task,
        what: What::Handler {
            msg: msg.to_string().into(),
            obj: Some(obj.into()),
            exc: None,
        },
    }
}
