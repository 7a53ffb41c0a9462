//! The hand-written trace of tests/invariants.rs: main gathers two tasks,
//! written event by event so the checkers can be tested with no
//! interpreter.

use super::support::parse;
use canceltree::ast::Program;
use canceltree::trace::{Event, Fin, Outcome, Res, State, Trace, Value, What};

pub fn ev(it: u32, task: Option<u32>, what: What) -> Event {
    Event {
        t: 0.0,
        it,
        task,
        what,
    }
}

/// main gathers two tasks that return 1 and 2: a trace written by hand.
pub fn gather_trace(values: Vec<i64>) -> (Program, Trace) {
    let p = parse("(main (spawn a (return 1)) (spawn b (return 2)) (gather (ref a) (ref b)))");
    let create = |task: u32, name: &str, node: u32| What::Create {
        task,
        name: name.into(),
        node,
    };
    let ok = |node: u32| What::End { node, res: Res::Ok };
    let list = Value::List(values.into_iter().map(Value::Int).collect());
    let events = vec![
        ev(0, None, create(0, "main", 0)),
        ev(1, Some(0), What::Start(1)),
        ev(1, Some(0), create(1, "a", 1)),
        ev(1, Some(0), ok(1)),
        ev(1, Some(0), What::Start(3)),
        ev(1, Some(0), create(2, "b", 3)),
        ev(1, Some(0), ok(3)),
        ev(1, Some(0), What::Start(5)),
        ev(2, Some(1), What::Start(2)),
        ev(2, Some(1), ok(2)),
        ev(
            2,
            Some(1),
            What::Done {
                task: 1,
                fin: Fin::Result(Value::Int(1)),
            },
        ),
        ev(2, Some(2), What::Start(4)),
        ev(2, Some(2), ok(4)),
        ev(
            2,
            Some(2),
            What::Done {
                task: 2,
                fin: Fin::Result(Value::Int(2)),
            },
        ),
        ev(
            4,
            Some(0),
            What::End {
                node: 5,
                res: Res::Val(list.clone()),
            },
        ),
        ev(
            4,
            Some(0),
            What::Done {
                task: 0,
                fin: Fin::Result(list.clone()),
            },
        ),
        ev(5, None, What::Phase("collect".into())),
    ];
    let fin = |v: Value| State::Done(Fin::Result(v));
    let tasks = vec![
        canceltree::trace::TaskFinal {
            name: "main".into(),
            state: fin(list.clone()),
            cancelling: Some(0),
        },
        canceltree::trace::TaskFinal {
            name: "a".into(),
            state: fin(Value::Int(1)),
            cancelling: Some(0),
        },
        canceltree::trace::TaskFinal {
            name: "b".into(),
            state: fin(Value::Int(2)),
            cancelling: Some(0),
        },
    ];
    (
        p,
        Trace {
            events,
            outcome: Outcome::Main(Fin::Result(list)),
            tasks,
        },
    )
}
