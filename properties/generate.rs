//! Properties of the program generator (`canceltree::generate`): generated
//! programs pass every static check, print and parse back, respect their
//! caps, avoid CPython's unspecified behaviour and are deterministic per
//! seed; each weighted feature shows up at a useful rate over 2,000
//! programs; and a failing property shrinks structurally to a small
//! program, through proptest's own `TestRunner`.
//!
//! `PROPTEST_CASES` sets the number of cases of the proptest properties
//! (default 256); `CANCELTREE_COVERAGE_PROGRAMS` the number of programs the
//! coverage test counts (default 2000). Run with `--nocapture` to see the
//! feature rates.

use canceltree::ast::{
    CatchClass, ExcClass, Kind, NodeId, Program, SpawnMode, Sym, Time, WaitWhen,
};
use canceltree::backend::{self, Spec};
use canceltree::generate::strategy::{arb_program, programs};
use canceltree::generate::{
    self, MAX_DEPTH, SLACK, avoids_unspecified, fuzz_program, fuzz_program_bytes, program,
};
use canceltree::syntax;
use canceltree::trace::{Fin, State};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

/// The deepest node's depth (main is 1).
fn depth(p: &Program) -> usize {
    let parents = p.parents();
    let mut d = vec![0usize; p.len()];
    for id in 0..p.len() {
        d[id] = parents[id].map_or(1, |q| d[q as usize] + 1);
    }
    d.into_iter().max().unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_pass_every_static_check(p in arb_program()) {
        let errors = syntax::check(&p, "gen.ct");
        prop_assert!(errors.is_empty(), "{:?}\n{}", errors, syntax::print(&p));
    }

    #[test]
    fn generated_programs_print_and_parse_back(p in arb_program()) {
        let text = syntax::print(&p);
        let q = syntax::parse("gen.ct", &text).map_err(|d| TestCaseError::fail(d.render(&text)))?;
        prop_assert!(q == p, "reparsed program differs:\n{}", text);
        prop_assert_eq!(syntax::print(&q), text);
    }

    #[test]
    fn generated_programs_avoid_unspecified_behaviour(p in arb_program()) {
        prop_assert!(avoids_unspecified(&p), "{}", syntax::print(&p));
    }

    #[test]
    fn programs_are_deterministic_per_seed_and_capped(seed in any::<u64>(), size in 1usize..300) {
        let p = program(seed, size);
        prop_assert_eq!(&p, &program(seed, size));
        prop_assert!(p.len() <= size + SLACK, "{} nodes for size {}", p.len(), size);
        prop_assert!(depth(&p) <= MAX_DEPTH, "depth {} for seed {}", depth(&p), seed);
        prop_assert!(syntax::check(&p, "gen.ct").is_empty());
    }

    #[test]
    fn any_fuzz_input_decodes_to_a_valid_program(data in prop::collection::vec(any::<u8>(), 0..600)) {
        let p = fuzz_program(&data);
        prop_assert!(syntax::check(&p, "fuzz.ct").is_empty(), "{}", syntax::print(&p));
        prop_assert!(avoids_unspecified(&p));
        prop_assert!(p.len() <= generate::MAX_FUZZ_SIZE + SLACK);
        prop_assert_eq!(p, fuzz_program(&data));
    }
}

#[test]
fn the_strategy_is_deterministic_per_runner_seed() {
    let draw = || {
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        (0..50)
            .map(|_| programs(1..=30).new_tree(&mut runner).unwrap().current())
            .collect::<Vec<Program>>()
    };
    assert_eq!(draw(), draw());
}

#[test]
fn seeded_programs_are_fuzz_inputs_too() {
    for seed in 0..200 {
        let size = 1 + (seed as usize * 7) % generate::MAX_FUZZ_SIZE;
        assert_eq!(
            fuzz_program(&fuzz_program_bytes(seed, size)),
            program(seed, size)
        );
    }
}

// ---- coverage ---------------------------------------------------------------

/// What the coverage test looks at in one program.
struct Facts<'a> {
    p: &'a Program,
    parents: Vec<Option<NodeId>>,
}

impl<'a> Facts<'a> {
    fn new(p: &'a Program) -> Facts<'a> {
        Facts {
            p,
            parents: p.parents(),
        }
    }

    fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        0..self.p.len() as NodeId
    }

    fn any(&self, f: impl Fn(&Kind) -> bool) -> bool {
        self.p.nodes.iter().any(|n| f(&n.kind))
    }

    fn ancestors(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::successors(self.parents[id as usize], |&a| self.parents[a as usize])
    }

    fn prev_sibling(&self, id: NodeId) -> Option<NodeId> {
        let parent = self.parents[id as usize]?;
        self.p.children(parent).take_while(|&c| c != id).last()
    }

    /// The spawn that binds task `s` (generated names are unique).
    fn spawn_of(&self, s: Sym) -> Option<NodeId> {
        self.ids()
            .find(|&id| matches!(self.p.kind(id), Kind::Spawn(n, SpawnMode::Bind | SpawnMode::In(_)) if *n == s))
    }

    /// The time task `s` first sleeps, if its body starts with a sleep.
    fn wakes_at(&self, s: Sym) -> Option<Time> {
        let spawn = self.spawn_of(s)?;
        match self.p.children(spawn).next().map(|c| self.p.kind(c)) {
            Some(Kind::Sleep(t)) => Some(*t),
            _ => None,
        }
    }

    fn reads(&self, id: NodeId) -> Option<Sym> {
        match self.p.kind(id) {
            Kind::Await(s) | Kind::Ref(s) => Some(*s),
            _ => None,
        }
    }

    fn under_except(&self, id: NodeId) -> bool {
        self.ancestors(id)
            .any(|a| matches!(self.p.kind(a), Kind::Except(_)))
    }

    /// A cancel of a task in the same iteration as the task wakes up: the
    /// canceller sleeps (or a call-later waits) exactly the task's first sleep.
    fn cancel_at_wakeup(&self) -> bool {
        self.ids().any(|id| {
            let Kind::Cancel(s, _) = self.p.kind(id) else {
                return false;
            };
            let Some(wake) = self.wakes_at(*s) else {
                return false;
            };
            let before = self.prev_sibling(id).map(|b| self.p.kind(b));
            let parent = self.parents[id as usize].map(|q| self.p.kind(q));
            matches!(before, Some(Kind::Sleep(t)) if *t == wake)
                || matches!(parent, Some(Kind::CallLater(t)) if *t == wake)
        })
    }

    fn sleep0_chain(&self) -> bool {
        self.ids().any(|id| {
            matches!(self.p.kind(id), Kind::Sleep(Time(0.0)))
                && self
                    .prev_sibling(id)
                    .is_some_and(|b| matches!(self.p.kind(b), Kind::Sleep(Time(0.0))))
        })
    }

    /// A timeout, wait-for or wait deadline equal to the sleep it races.
    fn deadline_tie(&self) -> bool {
        self.ids().any(|id| {
            let deadline = match self.p.kind(id) {
                Kind::Timeout(Some(t)) | Kind::WaitFor(Some(t)) => *t,
                Kind::Wait {
                    timeout: Some(t), ..
                }
                | Kind::AsCompleted { timeout: Some(t) } => *t,
                _ => return false,
            };
            self.p.children(id).any(|c| match self.p.kind(c) {
                Kind::Sleep(t) => *t == deadline,
                Kind::Await(s) | Kind::Ref(s) => self.wakes_at(*s) == Some(deadline),
                _ => false,
            })
        })
    }

    fn nested_combinators(&self) -> bool {
        let comb = |k: &Kind| {
            matches!(
                k,
                Kind::Gather { .. }
                    | Kind::Shield
                    | Kind::TaskGroup(_)
                    | Kind::Timeout(_)
                    | Kind::WaitFor(_)
            )
        };
        self.ids()
            .any(|id| comb(self.p.kind(id)) && self.ancestors(id).any(|a| comb(self.p.kind(a))))
    }

    fn swallowing_handler(&self) -> bool {
        self.ids().any(|id| {
            matches!(
                self.p.kind(id),
                Kind::Except(c) if matches!(c.class, CatchClass::Class(ExcClass::CancelledError) | CatchClass::BaseException)
            ) && self.p.end(id) == id + 1
        })
    }

    fn task_awaits_task(&self) -> bool {
        self.ids().any(|id| {
            self.reads(id).is_some_and(|s| self.spawn_of(s).is_some())
                && self
                    .ancestors(id)
                    .any(|a| matches!(self.p.kind(a), Kind::Spawn(..)))
        })
    }

    /// A task body reading a task that its enclosing coroutine binds later.
    fn forward_ref(&self) -> bool {
        self.ids().any(|id| {
            let Some(s) = self.reads(id) else {
                return false;
            };
            let Some(bind) = self.spawn_of(s) else {
                return false;
            };
            self.ancestors(id).any(|a| {
                matches!(self.p.kind(a), Kind::Spawn(..))
                    && a < bind
                    && self.parents[a as usize] == self.parents[bind as usize]
            })
        })
    }

    /// Two tasks each reading the other.
    fn cycle(&self) -> bool {
        let reads_in = |spawn: NodeId, s: Sym| {
            (spawn + 1..self.p.end(spawn)).any(|d| self.reads(d) == Some(s))
        };
        self.ids().any(|a| {
            let Kind::Spawn(na, SpawnMode::Bind) = self.p.kind(a) else {
                return false;
            };
            self.ids().any(|b| {
                let Kind::Spawn(nb, SpawnMode::Bind) = self.p.kind(b) else {
                    return false;
                };
                a != b && reads_in(a, *nb) && reads_in(b, *na)
            })
        })
    }

    fn lets(&self) -> Vec<Sym> {
        self.p
            .nodes
            .iter()
            .filter_map(|n| match n.kind {
                Kind::Let(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn let_cancelled(&self) -> bool {
        let lets = self.lets();
        self.any(|k| matches!(k, Kind::Cancel(s, _) if lets.contains(s)))
    }

    fn let_never_awaited(&self) -> bool {
        self.lets()
            .iter()
            .any(|l| !self.any(|k| matches!(k, Kind::Await(s) | Kind::Ref(s) if s == l)))
    }

    fn callback_cancel(&self) -> bool {
        self.ids().any(|id| {
            matches!(self.p.kind(id), Kind::Cancel(..))
                && self.parents[id as usize]
                    .is_some_and(|q| matches!(self.p.kind(q), Kind::CallSoon | Kind::CallLater(_)))
        })
    }

    fn weak_then_gc(&self) -> bool {
        self.ids().any(|id| {
            matches!(self.p.kind(id), Kind::Spawn(_, SpawnMode::Weak))
                && (self.p.end(id)..self.p.len() as NodeId)
                    .any(|g| matches!(self.p.kind(g), Kind::Gc))
        })
    }
}

type Feature = (&'static str, f64, fn(&Facts) -> bool);

/// Each feature, the least share of programs it must appear in, and its test.
const FEATURES: &[Feature] = &[
    ("cancel in the iteration the task wakes", 0.15, |f| {
        f.cancel_at_wakeup()
    }),
    ("sleep 0 chain", 0.05, |f| f.sleep0_chain()),
    ("deadline equal to the sleep it races", 0.10, |f| {
        f.deadline_tie()
    }),
    (
        "nested gather/shield/taskgroup/timeout/wait-for",
        0.15,
        |f| f.nested_combinators(),
    ),
    ("gather", 0.25, |f| {
        f.any(|k| matches!(k, Kind::Gather { .. }))
    }),
    ("gather :return-exceptions", 0.05, |f| {
        f.any(|k| {
            matches!(
                k,
                Kind::Gather {
                    return_exceptions: true
                }
            )
        })
    }),
    ("shield", 0.08, |f| f.any(|k| matches!(k, Kind::Shield))),
    ("taskgroup", 0.10, |f| {
        f.any(|k| matches!(k, Kind::TaskGroup(_)))
    }),
    ("spawn :in group", 0.08, |f| {
        f.any(|k| matches!(k, Kind::Spawn(_, SpawnMode::In(_))))
    }),
    ("timeout", 0.10, |f| {
        f.any(|k| matches!(k, Kind::Timeout(_)))
    }),
    ("wait-for", 0.12, |f| {
        f.any(|k| matches!(k, Kind::WaitFor(_)))
    }),
    ("handler swallowing CancelledError", 0.12, |f| {
        f.swallowing_handler()
    }),
    ("uncancel in a handler", 0.05, |f| {
        f.ids()
            .any(|id| matches!(f.p.kind(id), Kind::Uncancel(_)) && f.under_except(id))
    }),
    ("reraise", 0.04, |f| f.any(|k| matches!(k, Kind::Reraise))),
    ("except*", 0.03, |f| {
        f.any(|k| matches!(k, Kind::Except(c) if c.star))
    }),
    ("finally", 0.02, |f| f.any(|k| matches!(k, Kind::Finally))),
    ("cancel with a message", 0.20, |f| {
        f.any(|k| matches!(k, Kind::Cancel(_, Some(_)) | Kind::CancelSelf(Some(_))))
    }),
    ("cancel-self", 0.05, |f| {
        f.any(|k| matches!(k, Kind::CancelSelf(_)))
    }),
    ("spawn :weak", 0.10, |f| {
        f.any(|k| matches!(k, Kind::Spawn(_, SpawnMode::Weak)))
    }),
    ("spawn :keep", 0.05, |f| {
        f.any(|k| matches!(k, Kind::Spawn(_, SpawnMode::Keep)))
    }),
    ("gc after a :weak spawn", 0.05, |f| f.weak_then_gc()),
    ("task awaiting a task", 0.20, |f| f.task_awaits_task()),
    ("task naming a task bound later", 0.05, |f| f.forward_ref()),
    ("await cycle", 0.03, |f| f.cycle()),
    ("let gather/shield", 0.08, |f| {
        f.any(|k| matches!(k, Kind::Let(_)))
    }),
    ("let cancelled", 0.02, |f| f.let_cancelled()),
    ("let never awaited", 0.03, |f| f.let_never_awaited()),
    ("call-soon/call-later cancel", 0.05, |f| f.callback_cancel()),
    ("call-later", 0.08, |f| {
        f.any(|k| matches!(k, Kind::CallLater(_)))
    }),
    ("future resolved", 0.05, |f| {
        f.any(|k| matches!(k, Kind::Resolve(..)))
    }),
    ("future failed", 0.02, |f| {
        f.any(|k| matches!(k, Kind::Fail(..)))
    }),
    ("wait", 0.05, |f| f.any(|k| matches!(k, Kind::Wait { .. }))),
    ("wait :first-exception", 0.02, |f| {
        f.any(|k| {
            matches!(
                k,
                Kind::Wait {
                    when: WaitWhen::FirstException,
                    ..
                }
            )
        })
    }),
    ("as-completed", 0.04, |f| {
        f.any(|k| matches!(k, Kind::AsCompleted { .. }))
    }),
    ("as-completed over several refs", 0.01, |f| {
        f.ids().any(|id| {
            matches!(f.p.kind(id), Kind::AsCompleted { .. }) && f.p.children(id).count() >= 2
        })
    }),
    ("uncancel", 0.08, |f| {
        f.any(|k| matches!(k, Kind::Uncancel(_)))
    }),
    ("cancelling", 0.03, |f| {
        f.any(|k| matches!(k, Kind::Cancelling(_)))
    }),
    ("done/cancelled query", 0.03, |f| {
        f.any(|k| matches!(k, Kind::Done(_) | Kind::Cancelled(_)))
    }),
    ("raise", 0.10, |f| f.any(|k| matches!(k, Kind::Raise(..)))),
    ("return", 0.15, |f| f.any(|k| matches!(k, Kind::Return(_)))),
    ("block", 0.01, |f| f.any(|k| matches!(k, Kind::Block(_)))),
    ("do", 0.05, |f| f.any(|k| matches!(k, Kind::Do))),
    ("forget", 0.005, |f| f.any(|k| matches!(k, Kind::Forget(_)))),
    ("timeout none", 0.01, |f| {
        f.any(|k| matches!(k, Kind::Timeout(None) | Kind::WaitFor(None)))
    }),
];

#[test]
fn every_weighted_feature_appears_at_a_useful_rate() {
    let n: u64 = std::env::var("CANCELTREE_COVERAGE_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // Sizes from 6 to 45, the range campaigns and properties use.
    let progs: Vec<Program> = (0..n).map(|s| program(s, 6 + (s as usize % 40))).collect();
    let nodes: usize = progs.iter().map(Program::len).sum();
    let mut counts = vec![0u64; FEATURES.len()];
    for p in &progs {
        let f = Facts::new(p);
        for (i, (_, _, has)) in FEATURES.iter().enumerate() {
            counts[i] += u64::from(has(&f));
        }
    }
    eprintln!(
        "{n} programs, {:.1} nodes on average; share of programs with each feature:",
        nodes as f64 / n as f64
    );
    let mut missing = Vec::new();
    for ((name, least, _), &c) in FEATURES.iter().zip(&counts) {
        let share = c as f64 / n as f64;
        eprintln!("  {:>6.1}%  {name}", share * 100.0);
        if share < *least {
            missing.push(format!(
                "{name}: {:.1}% < {:.1}%",
                share * 100.0,
                least * 100.0
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "features below their rate:\n{}",
        missing.join("\n")
    );
}

// ---- shrinking --------------------------------------------------------------

/// Runs `holds` as a property over generated programs with proptest's own
/// runner and returns the minimal failing program it shrank to.
fn minimal_counterexample(holds: impl Fn(&Program) -> bool) -> Program {
    let config = Config {
        cases: 1000,
        max_shrink_iters: 100_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&programs(10..=40), |p| {
        prop_assert!(holds(&p));
        Ok(())
    });
    match result {
        Err(TestError::Fail(_, p)) => p,
        other => panic!("the property was meant to fail: {other:?}"),
    }
}

#[test]
fn a_program_with_a_gather_shrinks_to_at_most_five_nodes() {
    let p = minimal_counterexample(|p| {
        !p.nodes
            .iter()
            .any(|n| matches!(n.kind, Kind::Gather { .. }))
    });
    let text = syntax::print(&p);
    eprintln!("minimal program with a gather ({} nodes):\n{text}", p.len());
    assert!(p.len() <= 5, "shrank only to {} nodes:\n{text}", p.len());
    assert!(syntax::check(&p, "min.ct").is_empty());
}

#[test]
fn a_task_cancelled_with_a_message_shrinks_to_a_small_program() {
    // A property of runs, not of text: on model:3.12, no task ends
    // cancelled with a message. Shrinking must keep the failure while it
    // removes statements, hoists bodies and simplifies times.
    let spec = Spec::parse("model:3.12").unwrap();
    let model = std::sync::Mutex::new(backend::open(&spec).unwrap());
    let p = minimal_counterexample(|p| {
        let t = model.lock().unwrap().run(p);
        !t.tasks
            .iter()
            .any(|k| matches!(&k.state, State::Done(Fin::Cancelled(Some(_)))))
    });
    let text = syntax::print(&p);
    eprintln!(
        "minimal program cancelling a task with a message ({} nodes):\n{text}",
        p.len()
    );
    assert!(p.len() <= 5, "shrank only to {} nodes:\n{text}", p.len());
}
