//! Exhaustive cancel-point exploration: the points come from the trace, an
//! injected cancel shows in the trace where it was put, exploring examples
//! finds nothing on 3.12, and it does find 3.11's known wait_for bug. Also
//! the `explore` and `check` commands' exit codes.
//!
//! Tests that need an interpreter pass with a note when it is missing.

use canceltree::ast::Program;
use canceltree::backend::{self, Backend, Spec, discover};
use canceltree::explore::{self, points};
use canceltree::trace::{Injection, Trace, What};
use canceltree::{invariants, syntax};
use std::process::Command;

fn example(stem: &str) -> Program {
    let path = format!("examples/{stem}.ct");
    let text = std::fs::read_to_string(&path).expect("example exists");
    syntax::parse(&path, &text).unwrap_or_else(|d| panic!("{}", d.render(&text)))
}

fn open(minor: u32) -> Option<Box<dyn Backend>> {
    if !discover::versions().contains(&(3, minor)) {
        eprintln!("no CPython 3.{minor} found: this test checks nothing");
        return None;
    }
    Some(
        backend::open(&Spec::parse(&format!("cpython:3.{minor}")).unwrap())
            .expect("interpreter starts"),
    )
}

/// The number of points, counted another way: each task is alive at the
/// boundaries after the iteration it was created in, up to the iteration it
/// finished in (or the last one).
fn expected_points(t: &Trace) -> usize {
    let last = t.events.iter().map(|e| e.it).max().unwrap_or(0);
    (0..t.tasks.len() as u32)
        .map(|k| {
            let created = t.events.iter().find_map(|e| match &e.what {
                What::Create { task, .. } if *task == k => Some(e.it),
                _ => None,
            });
            let done = t.events.iter().find_map(|e| match &e.what {
                What::Done { task, .. } if *task == k => Some(e.it),
                _ => None,
            });
            let created = created.expect("every task is created");
            (done.unwrap_or(last).min(last)).saturating_sub(created) as usize
        })
        .sum()
}

#[test]
fn points_cover_each_live_task_at_each_iteration_boundary() {
    let Some(mut b) = open(12) else { return };
    for stem in [
        "say_after_create_task",
        "gather_factorial_coroutines",
        "taskgroup_child_cancelled",
        "nested_cancel_me",
    ] {
        let p = example(stem);
        let t = b.run(&p);
        let ps = points(&t);
        assert!(!ps.is_empty(), "{stem} has cancel points");
        assert_eq!(ps.len(), expected_points(&t), "{stem}: {ps:?}");
        for q in &ps {
            assert!(q.iteration >= 1 && q.msg.is_none());
            assert!(t.tasks.iter().any(|x| *x.name == *q.task));
        }
        // main is alive before the first iteration: cancelling it there is a point.
        assert!(
            ps.iter().any(|q| q.iteration == 1 && q.task == "main"),
            "{stem}: {ps:?}"
        );
    }
}

#[test]
fn an_injected_cancel_shows_up_as_an_inject_event_where_it_was_put() {
    let Some(mut b) = open(12) else { return };
    let p = example("nested_cancel_me");
    let base = b.run(&p);
    for q in points(&base) {
        let t = b.run_with(&p, std::slice::from_ref(&q));
        let injected: Vec<_> = t
            .events
            .iter()
            .filter_map(|e| match &e.what {
                What::Inject { task, ret } => Some((e.it, *task, *ret)),
                _ => None,
            })
            .collect();
        assert_eq!(injected.len(), 1, "one cancel injected at {q:?}");
        let (it, task, ret) = injected[0];
        assert_eq!(it, q.iteration);
        assert_eq!(&*t.tasks[task as usize].name, q.task);
        assert!(ret, "the task was alive, so cancel() returned True");
        // The run is identical to the base run up to the injection.
        let before = t
            .events
            .iter()
            .position(|e| matches!(e.what, What::Inject { .. }))
            .unwrap();
        assert_eq!(t.events[..before], base.events[..before]);
    }
}

/// The runtime catches the RecursionError of a cancel injected into an
/// await cycle and records it as a phase, not as what `cancel()` returned;
/// the model must record the same.
#[test]
fn an_injected_cancel_that_recurses_down_an_await_cycle_is_recorded_as_such() {
    let Some(mut c) = open(12) else { return };
    let text = "(canceltree 1) (main (spawn a (await b)) (spawn b (await a)) (sleep 1))";
    let p = syntax::parse("cycle.ct", text).unwrap();
    // a and b first run in iteration 2; from iteration 3 on they await
    // each other.
    let q = Injection {
        iteration: 3,
        task: "a".into(),
        msg: None,
    };
    let mut m = backend::open(&Spec::parse("model:3.12").unwrap()).unwrap();
    let tc = c.run_with(&p, std::slice::from_ref(&q));
    let tm = m.run_with(&p, std::slice::from_ref(&q));
    let phase = What::Phase("inject cancel of a raised RecursionError".into());
    assert!(tc.events.iter().any(|e| e.what == phase), "{tc:?}");
    assert_eq!(tm, tc);
}

#[test]
fn exploring_examples_on_3_12_finds_no_violation() {
    let Some(mut b) = open(12) else { return };
    for stem in [
        "gather_cancelled_then_awaited",
        "shield_outer_cancelled",
        "taskgroup_terminate_except_star",
        "timeout_block_expires",
        "wait_for_cancelled",
        "uncancel_after_caught_cancel",
        "background_set_discard",
    ] {
        let p = example(stem);
        let r = explore::explore(b.as_mut(), &p, 1, (3, 12));
        assert_eq!(
            r.runs,
            1 + r.points,
            "{stem}: one run per point plus the base run"
        );
        assert_eq!(r.skipped, 0);
        assert!(
            r.backend_failures.is_empty(),
            "{stem}: {:?}",
            r.backend_failures
        );
        assert!(!r.failed(), "{stem}:\n{}", r.render(&p));
    }
}

#[test]
fn pairs_put_the_second_cancel_where_the_first_left_the_schedule() {
    let Some(mut b) = open(12) else { return };
    let p = example("nested_cancel_me");
    let base = b.run(&p);
    let r = explore::explore(b.as_mut(), &p, 2, (3, 12));
    assert!(!r.failed(), "{}", r.render(&p));
    let singles = points(&base).len();
    assert_eq!(r.points, singles);
    assert!(r.runs > 1 + singles, "pairs were run: {} runs", r.runs);
    // A cap stops the exploration and says how much was left out.
    let capped = explore::explore_capped(b.as_mut(), &p, 2, (3, 12), 5);
    assert_eq!(capped.runs, 5);
    assert!(capped.skipped > 0);
    assert!(capped.render(&p).contains("capped:"));
}

#[test]
fn exploring_3_11_finds_the_known_wait_for_bug() {
    let Some(mut b) = open(11) else { return };
    let p = example("wait_for_timer_tie");
    assert!(
        invariants::check(&p, &b.run(&p), (3, 11)).is_empty(),
        "clean without injection"
    );
    let r = explore::explore(b.as_mut(), &p, 1, (3, 11));
    let f = r
        .findings
        .get("cancel_delivered")
        .expect("cancel_delivered found");
    assert_eq!(
        f.inject,
        vec![Injection {
            iteration: 4,
            task: "main".into(),
            msg: None
        }]
    );
    assert_eq!(f.known, Some(invariants::WAIT_FOR_SWALLOWS_CANCEL));
    assert!(r.findings.contains_key("wait_for_cancels_inner"));
    assert!(r.render(&p).contains("gh-86296"));
}

fn canceltree(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_canceltree"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("canceltree-explore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn explore_and_check_exit_0_when_clean_2_on_bad_input() {
    for args in [
        vec!["explore", "no/such/file.ct"],
        vec!["check", "no/such/file.ct"],
        vec!["explore", "examples/taskgroup_basic.ct", "--cancels", "3"],
        vec![
            "explore",
            "examples/taskgroup_basic.ct",
            "--backend",
            "jython:2.7",
        ],
        vec![
            "check",
            "examples/taskgroup_basic.ct",
            "--backend",
            "cpython:three",
        ],
    ] {
        let o = canceltree(&args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if open(12).is_none() {
        return;
    }
    let o = canceltree(&[
        "explore",
        "examples/taskgroup_basic.ct",
        "--backend",
        "cpython:3.12",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("no invariant violated"), "{out}");
    let o = canceltree(&[
        "check",
        "examples/taskgroup_basic.ct",
        "--backend",
        "cpython:3.12",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn check_exits_1_on_a_violation_and_names_it() {
    // 3.12's TaskGroup leaks its cancel request, and the timeout around it
    // lets CancelledError through (gh-116720, docs/INVARIANTS.md finding 2).
    let Some(_) = open(12) else { return };
    let src = "(canceltree 1)
(main
  (try
    (timeout 1
      (try
        (taskgroup g (spawn a :in g (sleep 0.5) (raise E1)))
        (except (group E1)))
      (sleep 5))
    (except TimeoutError)))
";
    let file = temp_file("leak.ct", src);
    let o = canceltree(&["check", &file, "--backend", "cpython:3.12"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("timeout_expiry_converts") && out.contains("gh-116720"),
        "{out}"
    );
    if discover::versions().contains(&(3, 13)) {
        let o = canceltree(&["check", &file, "--backend", "cpython:3.13"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let o = canceltree(&["explore", &file, "--backend", "cpython:3.12"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
