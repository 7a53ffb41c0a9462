//! A CPython worker runs case after case. What one case prints must not
//! depend on which cases ran before it on the same worker, or a finding
//! would not replay on its own. tests/worker_isolation/ holds a pair found
//! by the differential suite at size 30 (seeds 102970 and 102971): run
//! after `before.ct`, `case.ct` used to finalize its tasks at the final
//! collection in another order than on a fresh worker; and a pair
//! (`first_case*.ct`) where the background set's order did the same.

mod common;

use canceltree::backend::{self, Spec};
use canceltree::syntax;

fn program(name: &str) -> canceltree::ast::Program {
    let path = format!("tests/worker_isolation/{name}");
    let text = std::fs::read_to_string(&path).unwrap();
    syntax::parse(&path, &text).unwrap_or_else(|d| panic!("{}", d.render(&text)))
}

/// Runs `case` on a fresh worker and on one that ran `before` first, on
/// every discovered interpreter, and asserts the two traces are the same.
fn same_trace_after(before: &str, case: &str) {
    let (b, c) = (program(before), program(case));
    let mut checked = 0;
    for key in common::cpython_keys() {
        let spec = Spec::parse(&format!("cpython:{key}")).unwrap();
        let mut fresh = backend::open(&spec).expect("a discovered interpreter opens");
        let alone = fresh.run(&c);
        let mut used = backend::open(&spec).expect("a discovered interpreter opens");
        used.run(&b);
        let after = used.run(&c);
        assert!(
            !alone.backend_failed(),
            "cpython:{key} failed to run {case}"
        );
        assert_eq!(
            alone, after,
            "cpython:{key} printed another trace for {case} after {before}"
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!("skipped: no CPython found (`canceltree backends` lists what is here)");
    }
}

#[test]
fn a_case_prints_the_same_trace_whatever_the_worker_ran_before() {
    same_trace_after("before.ct", "case.ct");
}

/// `first_case.ct` ends with `d` and `e` in the background set of
/// `(spawn NAME :keep ...)`, which the runtime lets go of just before the
/// final collection. As a `set` it did so in memory-address order: after
/// `first_case_before.ct` CPython finalized `e` before `d`, on a fresh
/// worker `d` first. Found when `canceltree minimize` on size-50 seed
/// 284586 (3.11) ended on this program, which did not fail on a fresh
/// worker. The set is now insertion-ordered (docs/TRACE.md, pinned orders).
#[test]
fn the_background_set_lets_go_of_its_tasks_in_the_same_order_after_any_case() {
    same_trace_after("first_case_before.ct", "first_case.ct");
}
