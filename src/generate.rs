//! The program generator: well-formed `.ct` programs weighted toward the
//! places where cancellation bugs live.
//!
//! One generator, three ways to drive it. It reads every decision from a
//! [`Choices`] source: the seeded [`Rng`] (`program(seed, size)`, used by
//! `canceltree gen`, campaigns, benchmarks and the differential suite),
//! fuzzer bytes ([`Bytes`]; `fuzz_program`, and with the `arbitrary`
//! feature `arbitrary::Arbitrary for Program`), or a proptest runner (with
//! the `proptest` feature, [`strategy::ProgramStrategy`], whose shrinking
//! edits the program tree, not the seed). Choice 0 is always the simplest
//! option, and an exhausted byte source reads as 0, so short inputs give
//! small programs and every byte string gives a program.
//!
//! **Well formed by construction.** The generator tracks the coroutine
//! scopes it is in, the names each binds and of which kind, the task
//! groups lexically entered and the handlers it is inside, so every name
//! is bound where it is read, `(forget NAME)` only names what the current
//! coroutine bound, `(reraise)` only appears in handlers, there is no
//! `return` in `except*` handlers, and `:in G` only appears inside
//! `(taskgroup G ...)`. Names are fresh (`t1`, `f2`, `l3`, `g4`, `w5`,
//! `k6`), so no binding shadows another and kinds never clash.
//!
//! **Capped.** About `size` nodes (main takes statements until the budget
//! is spent): a compound form or motif is only chosen while the budget has
//! room for it and its deepest node stays within `MAX_DEPTH`, so a program
//! exceeds `size` by at most the mandatory children of the forms still
//! open (`SLACK`; 12 is the most measured) and is at most `MAX_DEPTH`
//! deep; other bodies have at most `MAX_BODY` statements. The generator
//! recurses at most `MAX_DEPTH` deep. Nothing follows a statement that
//! always leaves its body (return, raise, reraise), and directly in main
//! what may raise usually sits in a try, so that most of main runs.
//!
//! **Deterministic.** Own PRNG, no hash maps, nothing read from the
//! environment: the same seed and size give the same program everywhere.
//!
//! **Weighted** toward, besides every form of the language:
//! - cancels landing in the same loop iteration as a completion or a
//!   timeout: a task and its canceller sleeping the same time, `sleep 0`
//!   chains on both sides, `call-later` cancels at a task's wake-up time,
//!   `timeout`/`wait-for` deadlines equal to the sleep inside;
//! - nested gather, shield, TaskGroup, timeout and wait_for;
//! - handlers that swallow `CancelledError` (empty) or call `uncancel`;
//! - cancels with messages; `cancel-self`;
//! - fire-and-forget `:weak` tasks and `(gc)`, `:keep` tasks;
//! - tasks awaiting tasks, including cycles: a task body may name a task
//!   that its enclosing coroutine binds later (a "promise" the generator
//!   keeps before the body ends);
//! - `let` gathers and shields that are cancelled, awaited late or never;
//! - `call-soon`/`call-later` cancels, futures resolved and failed;
//! - `wait`/`as-completed` over refs (never coroutines).
//!
//! Times come from {0, 0.5, 1, 2}, so float drift never matters.
//!
//! **Unspecified behaviour avoided.** CPython iterates a set of futures in
//! `as_completed` and `wait` and registers done callbacks in that (memory
//! address) order. For futures that are already done at the call, the
//! callbacks run in that order: `as_completed` then yields them in address
//! order, and `wait(return_when=FIRST_EXCEPTION)` decides by it which
//! exceptions count as retrieved. So with two or more distinct refs these
//! forms only take tasks and futures created just before them, with
//! nothing in between that could finish one ([`avoids_unspecified`]).

mod choices;
mod forms;
mod fuzz;
mod patterns;
pub mod shrink;
mod unspecified;

#[cfg(feature = "arbitrary")]
mod arb;
#[cfg(feature = "proptest")]
pub mod strategy;

pub use choices::{Bytes, Choices, Recorder, Rng};
pub use fuzz::{
    DIFFERENTIAL_PROFILES, MAX_FUZZ_SIZE, MODEL_PROFILES, check_differential,
    check_model_invariants, fuzz_differential, fuzz_model_invariants, fuzz_program,
    fuzz_program_bytes,
};
pub use unspecified::avoids_unspecified;

use crate::ast::{
    Builder, Catch, CatchClass, ExcClass, Kind, NodeId, Pos, Program, SpawnMode, Sym, Time, Value,
    WaitWhen,
};
use crate::syntax::BindKind;

/// The deepest nesting of open nodes (main counts as one).
pub const MAX_DEPTH: usize = 7;
/// The most statements the generator puts in one body other than main's
/// (which takes statements until the node budget is spent).
pub const MAX_BODY: usize = 12;
/// A generated program has at most `size + SLACK` nodes.
pub const SLACK: usize = 24;
/// The largest `size` the generator accepts; larger sizes are clamped.
pub const MAX_SIZE: usize = 100_000;

/// The times every generated time is drawn from, simplest first.
pub const TIMES: [f64; 4] = [0.0, 1.0, 0.5, 2.0];

/// A random program of about `size` nodes (at most `size + SLACK`).
pub fn program(seed: u64, size: usize) -> Program {
    generate(&mut Rng::new(seed), size)
}

/// A program of about `size` nodes, with every decision read from `c`.
pub fn generate(c: &mut dyn Choices, size: usize) -> Program {
    let size = size.clamp(1, MAX_SIZE);
    let mut g = Gen {
        b: Builder::new(),
        c,
        size,
        scopes: Vec::new(),
        groups: Vec::new(),
        counter: 0,
    };
    g.b.open(Kind::Main, Pos::NONE);
    g.main_body();
    g.b.finish()
}

/// A coroutine scope (main, a task body, an awaitable, a `do`) or the
/// function scope of a `call-soon`/`call-later` statement, which binds nothing.
struct Scope {
    function: bool,
    /// Names bound so far in this scope, in binding order.
    names: Vec<(Sym, BindKind)>,
    /// Task names this scope will bind before its body ends; readable in
    /// task bodies nested in it, which run later.
    promised: Vec<Sym>,
    /// Except handlers of this scope the current node is inside, and how
    /// many of those are `except*`.
    handlers: u32,
    star: u32,
    /// The task whose body this scope is.
    task: Option<Sym>,
}

struct Gen<'c> {
    b: Builder,
    c: &'c mut dyn Choices,
    size: usize,
    scopes: Vec<Scope>,
    /// Task groups lexically enclosing the current node.
    groups: Vec<Sym>,
    counter: u32,
}

const AWAITABLE: &[BindKind] = &[BindKind::Task, BindKind::Future, BindKind::LetFuture];
const TASK: &[BindKind] = &[BindKind::Task];
const FUTURE: &[BindKind] = &[BindKind::Future];

/// The forms and motifs `item` chooses among.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    Sleep,
    Await,
    Cancel,
    Spawn,
    Weak,
    Keep,
    SpawnIn,
    Future,
    Resolve,
    Fail,
    Gather,
    Let,
    Shield,
    WaitFor,
    Timeout,
    TaskGroup,
    Try,
    Do,
    Wait,
    AsCompleted,
    CallSoon,
    CallLater,
    Gc,
    Forget,
    Return,
    Raise,
    Reraise,
    CancelSelf,
    Uncancel,
    Cancelling,
    Query,
    Block,
    // Motifs: several statements.
    Race,
    Chain,
    TimerTie,
    Cycle,
    Swallow,
    FireForget,
    FreshRefs,
    GroupTry,
}

impl Gen<'_> {
    // ---- choices ---------------------------------------------------------

    pub(super) fn choose(&mut self, n: usize) -> usize {
        self.c.choose(n.min(u32::MAX as usize) as u32) as usize
    }

    /// True with about `pct` percent; false on an exhausted source.
    pub(super) fn chance(&mut self, pct: u32) -> bool {
        self.c.choose(100) >= 100 - pct.min(100)
    }

    /// An index into `weights`, chosen in proportion; zero weights never.
    pub(super) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut r = self.c.choose(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.iter().position(|&w| w > 0).unwrap_or(0)
    }

    pub(super) fn time(&mut self) -> Time {
        Time(TIMES[self.weighted(&[3, 3, 2, 2])])
    }

    /// A time for a deadline: `none` now and then.
    pub(super) fn opt_time(&mut self) -> Option<Time> {
        if self.chance(12) {
            None
        } else {
            Some(self.time())
        }
    }

    pub(super) fn msg(&mut self) -> Option<String> {
        if self.chance(40) {
            Some(["stop", "bye", "m", "", "timeout"][self.weighted(&[4, 3, 3, 1, 1])].to_string())
        } else {
            None
        }
    }

    pub(super) fn value(&mut self) -> Value {
        match self.weighted(&[5, 2, 2, 1]) {
            0 => Value::Int(self.choose(10) as i64),
            1 => Value::Str(["ok", "done", "x"][self.choose(3)].to_string()),
            2 => Value::None,
            _ => Value::Bool(self.chance(50)),
        }
    }

    /// A class to raise or to fail a future with.
    pub(super) fn exc(&mut self) -> ExcClass {
        const C: [ExcClass; 9] = [
            ExcClass::ValueError,
            ExcClass::User(1),
            ExcClass::User(2),
            ExcClass::RuntimeError,
            ExcClass::KeyError,
            ExcClass::TypeError,
            ExcClass::TimeoutError,
            ExcClass::CancelledError,
            ExcClass::KeyboardInterrupt,
        ];
        C[self.weighted(&[8, 6, 3, 3, 1, 1, 3, 4, 1])]
    }

    pub(super) fn raise_msg(&mut self) -> Option<String> {
        self.chance(25).then(|| "boom".to_string())
    }

    // ---- the tree --------------------------------------------------------

    pub(super) fn nodes(&self) -> usize {
        self.b.prog.nodes.len()
    }

    /// Nodes left in the budget.
    pub(super) fn left(&self) -> usize {
        self.size.saturating_sub(self.nodes())
    }

    pub(super) fn depth(&self) -> usize {
        self.b.depth()
    }

    /// Whether a compound form costing about `cost` nodes fits, `extra`
    /// levels deeper than here.
    pub(super) fn fits(&self, cost: usize, extra: usize) -> bool {
        self.left() >= cost && self.depth() + extra <= MAX_DEPTH
    }

    pub(super) fn leaf(&mut self, k: Kind) {
        self.b.leaf(k, Pos::NONE);
    }

    pub(super) fn open(&mut self, k: Kind) {
        self.b.open(k, Pos::NONE);
    }

    pub(super) fn close(&mut self) {
        self.b.close();
    }

    /// A new name; the counter makes it unique, so it is appended to the
    /// name table directly (interning would search the table).
    pub(super) fn fresh(&mut self, prefix: &str) -> Sym {
        self.counter += 1;
        let names = &mut self.b.prog.names;
        names.push(format!("{prefix}{}", self.counter));
        Sym(names.len() as u32 - 1)
    }

    pub(super) fn cur(&mut self) -> &mut Scope {
        self.scopes.last_mut().expect("a scope is open")
    }

    pub(super) fn bind(&mut self, s: Sym, k: BindKind) {
        let sc = self.cur();
        if !sc.function {
            sc.names.push((s, k));
            sc.promised.retain(|&p| p != s);
        }
    }

    /// Names of `kinds` readable here: those bound so far in this and the
    /// enclosing scopes (the last `RECENT` of each, which keeps large
    /// programs linear), and the promised tasks of scopes enclosing a task
    /// body we are in. Outer scopes first, each in binding order.
    pub(super) fn visible(&self, kinds: &[BindKind]) -> Vec<Sym> {
        const RECENT: usize = 24;
        let mut out: Vec<Sym> = Vec::new();
        for (i, sc) in self.scopes.iter().enumerate() {
            let recent = &sc.names[sc.names.len().saturating_sub(RECENT)..];
            for &(s, k) in recent {
                if kinds.contains(&k) && !out.contains(&s) {
                    out.push(s);
                }
            }
            let later_task_body = self.scopes[i + 1..].iter().any(|s| s.task.is_some());
            if later_task_body && kinds.contains(&BindKind::Task) {
                for &s in &sc.promised {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    /// Tasks whose bodies enclose the current node.
    pub(super) fn own_tasks(&self) -> Vec<Sym> {
        self.scopes.iter().filter_map(|s| s.task).collect()
    }

    /// Readable names of `kinds` other than the tasks we are running in.
    pub(super) fn others(&self, kinds: &[BindKind]) -> Vec<Sym> {
        let own = self.own_tasks();
        let mut names = self.visible(kinds);
        names.retain(|s| !own.contains(s));
        names
    }

    pub(super) fn has_target(&self, kinds: &[BindKind]) -> bool {
        !self.others(kinds).is_empty()
    }

    /// A readable name of `kinds`, recent ones likelier; rarely the task
    /// we are running in (awaiting it is a RuntimeError).
    pub(super) fn target(&mut self, kinds: &[BindKind]) -> Option<Sym> {
        let mut names = self.others(kinds);
        if names.is_empty() || self.chance(6) {
            names = self.visible(kinds);
        }
        if names.is_empty() {
            return None;
        }
        let n = names.len();
        // Half the time one of the last three bound.
        let i = if n > 3 && self.chance(50) {
            n - 1 - self.choose(3)
        } else {
            self.choose(n)
        };
        Some(names[i])
    }

    pub(super) fn push_scope(&mut self, task: Option<Sym>, function: bool) {
        self.scopes.push(Scope {
            function,
            names: Vec::new(),
            promised: Vec::new(),
            handlers: 0,
            star: 0,
            task,
        });
    }

    /// A body in a new scope, keeping the scope's promises at its end.
    pub(super) fn scoped_body(
        &mut self,
        task: Option<Sym>,
        function: bool,
        min: usize,
        max: usize,
    ) {
        self.push_scope(task, function);
        if !function && self.fits(6, 2) && self.chance(10) {
            let s = self.fresh("t");
            self.cur().promised.push(s);
        }
        self.block(min, max);
        self.keep_promises();
        self.scopes.pop();
    }

    /// Spawns the tasks the current scope promised and has not bound.
    pub(super) fn keep_promises(&mut self) {
        while let Some(&s) = self.cur().promised.first() {
            self.open(Kind::Spawn(s, SpawnMode::Bind));
            self.scoped_body(Some(s), false, 0, 2);
            self.close();
            self.bind(s, BindKind::Task);
        }
    }

    /// Statements of the current body: at least `min` while the budget
    /// lasts, at most `max`.
    pub(super) fn block(&mut self, min: usize, max: usize) {
        let pct = if self.left() > 8 { 72 } else { 45 };
        self.statements(min, max.min(MAX_BODY), pct);
    }

    /// Main's body: statements until the budget is spent (or, rarely,
    /// earlier; at once on an exhausted source).
    pub(super) fn main_body(&mut self) {
        self.push_scope(None, false);
        self.statements(1, usize::MAX, 0);
        self.keep_promises();
        self.scopes.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax;

    #[test]
    fn same_seed_gives_the_same_program() {
        for seed in 0..50 {
            assert_eq!(program(seed, 12), program(seed, 12));
        }
        assert_ne!(program(1, 12), program(2, 12));
    }

    #[test]
    fn generated_programs_are_valid_and_capped() {
        for seed in 0..300 {
            let size = 1 + (seed as usize % 60);
            let p = program(seed, size);
            let errors = syntax::check(&p, "gen.ct");
            assert!(
                errors.is_empty(),
                "seed {seed}: {errors:?}\n{}",
                syntax::print(&p)
            );
            assert!(
                p.len() <= size + SLACK,
                "seed {seed}: {} nodes for size {size}",
                p.len()
            );
            assert!(avoids_unspecified(&p), "seed {seed}\n{}", syntax::print(&p));
        }
    }

    #[test]
    fn large_programs_are_valid_and_capped() {
        for (seed, size) in [(1, 500), (2, 2_000), (3, 20_000)] {
            let p = program(seed, size);
            assert!(syntax::check(&p, "gen.ct").is_empty(), "seed {seed}");
            assert!(
                p.len() <= size + SLACK && p.len() >= size / 2,
                "{} nodes for {size}",
                p.len()
            );
        }
    }

    #[test]
    fn recorded_choices_replay_from_bytes() {
        for seed in 0..40 {
            let mut r = Recorder {
                inner: Rng::new(seed),
                bytes: Vec::new(),
            };
            let p = generate(&mut r, 20);
            assert_eq!(generate(&mut Bytes::new(&r.bytes), 20), p);
        }
    }

    #[test]
    fn exhausted_bytes_give_the_smallest_program() {
        let p = generate(&mut Bytes::new(&[]), 50);
        assert_eq!(syntax::print(&p), "(canceltree 1)\n\n(main\n  (sleep 0))\n");
    }
}
