//! One test per profile flag: a small program on which the CPython
//! versions really differ (tests/model_profiles/FLAG.ct), with each
//! version's CPython trace checked in as FLAG.KEY.trace. The model must
//! print exactly that trace on every profile; when an interpreter is
//! present, CPython is also re-run live and must still print it.

use canceltree::backend::{self, Spec, discover};
use canceltree::{render, syntax};

const KEYS: [&str; 5] = ["3.11", "3.12", "3.13", "3.12+eager", "3.13+eager"];

fn expected(flag: &str, key: &str) -> String {
    let path = format!("tests/model_profiles/{flag}.{key}.trace");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn render_on(spec: &str, flag: &str) -> Option<String> {
    let path = format!("tests/model_profiles/{flag}.ct");
    let text = std::fs::read_to_string(&path).unwrap();
    let prog = syntax::parse(&path, &text).unwrap_or_else(|d| panic!("{}", d.render(&text)));
    let mut b = backend::open(&Spec::parse(spec).unwrap()).ok()?;
    Some(render::text(&b.run(&prog), &render::labels(&prog)))
}

/// Checks the model (and live CPython when found) on every key, and that
/// the checked-in traces of `differ` pairs really differ.
fn check(flag: &str, differ: &[(&str, &str)]) {
    for (a, b) in differ {
        assert_ne!(
            expected(flag, a),
            expected(flag, b),
            "{flag}: CPython {a} and {b} should differ"
        );
    }
    let versions = discover::versions();
    let mut failures = Vec::new();
    for key in KEYS {
        let want = expected(flag, key);
        let got = render_on(&format!("model:{key}"), flag).expect("model opens");
        if got != want {
            failures.push(format!("model:{key}:\n--- want\n{want}--- got\n{got}"));
        }
        let (a, b) = key.split('+').next().unwrap().split_once('.').unwrap();
        if versions.contains(&(a.parse().unwrap(), b.parse().unwrap()))
            && let Some(live) = render_on(&format!("cpython:{key}"), flag)
            && live != want
        {
            failures.push(format!(
                "cpython:{key} no longer prints the checked-in trace:\n{live}"
            ));
        }
    }
    assert!(failures.is_empty(), "{flag}:\n{}", failures.join("\n"));
}

#[test]
fn gather_of_done_children_completes_synchronously_from_3_12() {
    check("gather_sync_done", &[("3.11", "3.12")]);
}

#[test]
fn wait_for_wraps_a_task_on_3_11_and_awaits_inline_under_timeout_from_3_12() {
    check("wait_for_via_timeout", &[("3.11", "3.12")]);
}

#[test]
fn uncancel_to_zero_takes_back_pending_cancel_on_3_13() {
    check("uncancel_clears_must_cancel", &[("3.12", "3.13")]);
}

#[test]
fn taskgroup_exit_uncancels_after_waiting_on_3_13() {
    check("taskgroup_313_exit", &[("3.12", "3.13")]);
}

#[test]
fn expired_timeout_inserts_timeout_error_into_the_context_chain_on_3_13() {
    check("timeout_313_exit", &[("3.12", "3.13")]);
}

#[test]
fn finished_frames_keep_their_callers_from_3_12_so_never_retrieved_waits_for_gc() {
    check("frame_keeps_caller", &[("3.11", "3.12")]);
}

#[test]
fn eager_tasks_run_their_first_step_inside_create_task() {
    check("eager", &[("3.12", "3.12+eager"), ("3.13", "3.13+eager")]);
}

#[test]
fn frames_awaiting_a_coroutine_are_not_traversed_on_3_11_so_their_locals_stay_in_place() {
    check("awaiting_frames_execute", &[("3.11", "3.12")]);
}

#[test]
fn a_wakeup_on_a_gathering_future_holds_its_traceback_until_the_step_returns_on_3_11() {
    check("wakeup_holds_traceback", &[("3.11", "3.12")]);
}
