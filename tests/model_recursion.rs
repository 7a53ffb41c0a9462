//! Nothing in the model recurses on the Rust stack in proportion to the
//! program or to an await chain (issue 3, "Recursion safety").

use canceltree::ast::{Builder, ExcClass, Kind, Pos, Program, SpawnMode, Sym, Time};
use canceltree::model::{self, Profile};
use canceltree::trace::{Fin, Outcome, Res, State, What};

fn name(b: &mut Builder, s: String) -> Sym {
    // Program::intern searches linearly; a million names need a push.
    b.prog.names.push(s);
    Sym(b.prog.names.len() as u32 - 1)
}

fn profile() -> Profile {
    Profile::new(3, 12, false).unwrap()
}

/// main -> do -> do -> ... (depth n) -> sleep 0.
fn deep_program(n: usize) -> Program {
    let mut b = Builder::new();
    b.open(Kind::Main, Pos::NONE);
    for _ in 0..n {
        b.open(Kind::Do, Pos::NONE);
    }
    b.leaf(Kind::Sleep(Time(0.0)), Pos::NONE);
    b.finish()
}

/// c1 awaits c2 awaits ... awaits cn, which sleeps; main cancels c1.
fn chain_program(n: usize) -> Program {
    let mut b = Builder::new();
    let names: Vec<Sym> = (1..=n).map(|i| name(&mut b, format!("c{i}"))).collect();
    b.open(Kind::Main, Pos::NONE);
    for i in 0..n {
        b.open(Kind::Spawn(names[i], SpawnMode::Bind), Pos::NONE);
        if i + 1 < n {
            b.leaf(Kind::Await(names[i + 1]), Pos::NONE);
        } else {
            b.leaf(Kind::Sleep(Time(10.0)), Pos::NONE);
        }
        b.close();
    }
    b.leaf(Kind::Sleep(Time(1.0)), Pos::NONE);
    b.leaf(Kind::Cancel(names[0], None), Pos::NONE);
    b.open(Kind::Try, Pos::NONE);
    b.leaf(Kind::Await(names[0]), Pos::NONE);
    b.open(
        Kind::Except(canceltree::ast::Catch {
            class: canceltree::ast::CatchClass::Class(ExcClass::CancelledError),
            star: false,
        }),
        Pos::NONE,
    );
    b.close();
    b.close();
    b.finish()
}

#[test]
fn a_million_node_program_runs_without_recursion() {
    let n = 1_000_000;
    let p = deep_program(n);
    assert!(p.len() > n);
    let t = model::run(&p, profile());
    assert_eq!(
        t.outcome,
        Outcome::Main(Fin::Result(canceltree::trace::Value::None))
    );
    // Every do starts and ends.
    let ends = t
        .events
        .iter()
        .filter(|e| matches!(e.what, What::End { .. }))
        .count();
    assert_eq!(ends, n + 1);
}

/// main -> try -> timeout -> try -> ... (depth n) -> sleep 0: a block
/// starts its body in the step that enters it, never its inner block's.
#[test]
fn deeply_nested_blocks_start_without_recursion() {
    let n = 1_000_000;
    let mut b = Builder::new();
    b.open(Kind::Main, Pos::NONE);
    for i in 0..n {
        let k = if i % 2 == 0 {
            Kind::Try
        } else {
            Kind::Timeout(None)
        };
        b.open(k, Pos::NONE);
    }
    b.leaf(Kind::Sleep(Time(0.0)), Pos::NONE);
    for i in (0..n).rev() {
        if i % 2 == 0 {
            b.open(
                Kind::Except(canceltree::ast::Catch {
                    class: canceltree::ast::CatchClass::Class(ExcClass::ValueError),
                    star: false,
                }),
                Pos::NONE,
            );
            b.close();
        }
        b.close();
    }
    let t = model::run(&b.finish(), profile());
    assert_eq!(
        t.outcome,
        Outcome::Main(Fin::Result(canceltree::trace::Value::None))
    );
}

#[test]
fn a_cancel_travels_down_a_million_deep_chain_of_tasks() {
    let n = 1_000_000;
    let p = chain_program(n);
    let t = model::run(&p, profile());
    let cancel = t
        .events
        .iter()
        .find_map(|e| match &e.what {
            What::End { node, res } if matches!(p.kind(*node), Kind::Cancel(..)) => {
                Some(res.clone())
            }
            _ => None,
        })
        .expect("the cancel ran");
    assert_eq!(cancel, Res::Val(canceltree::trace::Value::Bool(true)));
    assert_eq!(t.tasks.len(), n + 1);
    for task in &t.tasks[1..] {
        assert_eq!(
            task.state,
            State::Done(Fin::Cancelled(None)),
            "{}",
            task.name
        );
    }
    assert_eq!(t.tasks[1].cancelling, Some(1));
}

#[test]
fn a_cancel_on_an_await_cycle_raises_recursion_error_and_hides_the_counts() {
    let text = "(canceltree 1)\n(main\n  (spawn a (await b))\n  (spawn b (await a))\n  (sleep 1)\n  (cancel a))\n";
    let p = canceltree::syntax::parse("cycle.ct", text).unwrap();
    let t = model::run(&p, profile());
    let raised = t.events.iter().any(
        |e| matches!(&e.what, What::End { res: Res::Raise(x), .. } if x.cls == "RecursionError"),
    );
    assert!(raised, "cancel() on a cycle raises RecursionError");
    assert!(t.tasks.iter().all(|x| x.cancelling.is_none()));
}

#[test]
fn a_task_awaiting_itself_gets_runtime_error() {
    let text = "(canceltree 1)\n(main\n  (spawn t (await t))\n  (await t))\n";
    let p = canceltree::syntax::parse("self.ct", text).unwrap();
    let t = model::run(&p, profile());
    match &t.tasks[1].state {
        State::Done(Fin::Exception(x)) => {
            assert_eq!(x.cls, "RuntimeError");
            assert_eq!(
                x.args,
                vec![canceltree::trace::Value::Str(
                    "Task cannot await on itself: <Task>".into()
                )]
            );
        }
        other => panic!("{other:?}"),
    }
}
