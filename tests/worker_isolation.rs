//! A CPython worker runs case after case. What one case prints must not
//! depend on which cases ran before it on the same worker, or a finding
//! would not replay on its own. tests/worker_isolation/ holds a pair found
//! by the differential suite at size 30 (seeds 102970 and 102971): run
//! after `before.ct`, `case.ct` used to finalize its tasks at the final
//! collection in another order than on a fresh worker. It also holds a
//! pair that still differs (`first_case*.ct`): a worker's first case.

mod common;

use canceltree::backend::{self, Spec};
use canceltree::syntax;

fn program(name: &str) -> canceltree::ast::Program {
    let path = format!("tests/worker_isolation/{name}");
    let text = std::fs::read_to_string(&path).unwrap();
    syntax::parse(&path, &text).unwrap_or_else(|d| panic!("{}", d.render(&text)))
}

#[test]
fn a_case_prints_the_same_trace_whatever_the_worker_ran_before() {
    let (before, case) = (program("before.ct"), program("case.ct"));
    let mut checked = 0;
    for key in common::cpython_keys() {
        let spec = Spec::parse(&format!("cpython:{key}")).unwrap();
        let mut fresh = backend::open(&spec).expect("a discovered interpreter opens");
        let alone = fresh.run(&case);
        let mut used = backend::open(&spec).expect("a discovered interpreter opens");
        used.run(&before);
        let after = used.run(&case);
        assert!(
            !alone.backend_failed(),
            "cpython:{key} failed to run the case"
        );
        assert_eq!(
            alone, after,
            "cpython:{key} printed another trace after before.ct"
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!("skipped: no CPython found (`canceltree backends` lists what is here)");
    }
}

/// What is wrong: a worker's first case runs in another interpreter state
/// than every later one, and `first_case.ct` shows it. As a worker's first
/// case CPython finalizes `d`'s task, then closes its coroutine, then `e`;
/// after `first_case_before.ct` (or after several other cases) it
/// finalizes `e` first. A warm-up at worker start
/// (`contextvars.copy_context().run(lambda: None)`, or a small
/// `asyncio.run`) makes the first case behave like the later ones; the
/// first case also imports modules lazily (`pickle`, `fnmatch`). The model
/// agrees with the first-case trace. Found when `canceltree minimize` on
/// size-50 seed 284586 (3.11) ended on this program, which does not fail
/// on a fresh worker. Until the worker starts in the state later cases
/// see (and the model follows), this asserts today's behaviour.
#[test]
fn a_workers_first_case_is_finalized_in_another_order_than_later_ones() {
    let (before, case) = (program("first_case_before.ct"), program("first_case.ct"));
    for key in common::cpython_keys() {
        if !matches!(key.as_str(), "3.11" | "3.12" | "3.13") {
            continue;
        }
        let spec = Spec::parse(&format!("cpython:{key}")).unwrap();
        let alone = backend::open(&spec)
            .expect("a discovered interpreter opens")
            .run(&case);
        let mut used = backend::open(&spec).expect("a discovered interpreter opens");
        used.run(&before);
        let after = used.run(&case);
        assert!(
            !alone.backend_failed(),
            "cpython:{key} failed to run the case"
        );
        assert_ne!(
            alone, after,
            "cpython:{key}: a worker's first case now prints what later ones do; \
             make this test assert equality, as the one above does"
        );
    }
}
