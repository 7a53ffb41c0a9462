//! A crashed or hung interpreter costs one case, reported as that case's
//! outcome; the backend restarts its worker and the next case runs normally.

mod common;

use canceltree::backend::{self, Spec, discover};
use canceltree::syntax;
use canceltree::trace::{Fin, Outcome, Value};
use std::path::PathBuf;

fn any_python() -> Option<PathBuf> {
    discover::all().into_iter().next().map(|f| f.path)
}

fn program(text: &str) -> canceltree::ast::Program {
    syntax::parse("test.ct", text).unwrap_or_else(|d| panic!("{}", d.render(text)))
}

fn returns_seven() -> canceltree::ast::Program {
    program("(canceltree 1)\n(main (sleep 1) (return 7))")
}

fn assert_returns_seven(t: &canceltree::trace::Trace) {
    assert_eq!(
        t.outcome,
        Outcome::Main(Fin::Result(Value::Int(7))),
        "{t:?}"
    );
}

#[test]
fn a_worker_that_dies_costs_one_case_and_is_restarted() {
    let Some(real) = any_python() else {
        eprintln!("no CPython 3.11+: skipped");
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("canceltree-fake-{}", std::process::id()));
    let fake = common::crashing_interpreter(&real, &dir, "crash_here");
    let spec = Spec::parse(&format!("cpython:{}", fake.display())).unwrap();
    let mut b = backend::open(&spec).expect("the stand-in interpreter starts");
    assert_returns_seven(&b.run(&returns_seven()));
    let crash = b.run(&program(
        "(canceltree 1)\n(main (future crash_here) (return 1))",
    ));
    assert!(
        matches!(crash.outcome, Outcome::Crashed(_)),
        "{:?}",
        crash.outcome
    );
    assert!(crash.backend_failed());
    assert_returns_seven(&b.run(&returns_seven()));
}

#[test]
fn a_case_past_the_wall_timeout_is_reported_hung_and_the_next_case_runs() {
    let Some(real) = any_python() else {
        eprintln!("no CPython 3.11+: skipped");
        return;
    };
    // SAFETY: set before any backend of this test binary reads it; the other
    // test here does not depend on the timeout's value.
    unsafe { std::env::set_var("CANCELTREE_CASE_TIMEOUT", "1") };
    let spec = Spec::parse(&format!("cpython:{}", real.display())).unwrap();
    let mut b = backend::open(&spec).unwrap();
    // select() waits at most a day per loop iteration, so a 1e300-second
    // sleep spins through iterations for ever in virtual time.
    let hang = b.run(&program(
        "(canceltree 1)\n(main (sleep 1000000000000000000000000000000.0))",
    ));
    assert!(
        matches!(hang.outcome, Outcome::Hung { .. }),
        "{:?}",
        hang.outcome
    );
    assert_returns_seven(&b.run(&returns_seven()));
}

#[test]
fn a_generated_source_python_rejects_is_reported_as_crashed_without_losing_the_worker() {
    let Some(real) = any_python() else {
        eprintln!("no CPython 3.11+: skipped");
        return;
    };
    // CPython refuses more than 100 levels of indentation.
    let mut text = String::from("(canceltree 1)\n(main ");
    text.push_str(&"(do ".repeat(120));
    text.push_str(&")".repeat(121));
    let spec = Spec::parse(&format!("cpython:{}", real.display())).unwrap();
    let mut b = backend::open(&spec).unwrap();
    let t = b.run(&program(&text));
    match &t.outcome {
        Outcome::Crashed(msg) => assert!(
            msg.contains("IndentationError") || msg.contains("SyntaxError"),
            "{msg}"
        ),
        other => panic!("expected a crash report, got {other:?}"),
    }
    assert_returns_seven(&b.run(&returns_seven()));
}
