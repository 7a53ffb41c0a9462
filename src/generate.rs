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

mod fuzz;
pub mod shrink;

#[cfg(feature = "arbitrary")]
mod arb;
#[cfg(feature = "proptest")]
pub mod strategy;

pub use fuzz::{
    DIFFERENTIAL_PROFILES, MAX_FUZZ_SIZE, MODEL_PROFILES, check_differential,
    check_model_invariants, fuzz_differential, fuzz_model_invariants, fuzz_program,
    fuzz_program_bytes,
};

use crate::ast::{
    Builder, Catch, CatchClass, ExcClass, Kind, NodeId, Pos, Program, SpawnMode, Sym, Time, Value,
    WaitWhen,
};
use crate::syntax::BindKind;

/// A source of decisions. `choose(n)` returns a number in `0..n` (0 when
/// `n <= 1`); 0 must be what an exhausted source returns, and the
/// generator makes 0 the simplest option everywhere.
pub trait Choices {
    fn choose(&mut self, n: u32) -> u32;
}

/// SplitMix64: tiny, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

impl Choices for Rng {
    fn choose(&mut self, n: u32) -> u32 {
        if n <= 1 {
            0
        } else {
            (self.next() % u64::from(n)) as u32
        }
    }
}

/// How many bytes a choice among `n` options takes in [`Bytes`].
fn width(n: u32) -> usize {
    match n - 1 {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

/// Choices read from bytes: a choice among `n` options reads `width(n)`
/// bytes big-endian, modulo `n`; missing bytes read as zero. A choice among
/// one option reads nothing. [`Recorder`] writes the inverse.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, at: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
}

impl Choices for Bytes<'_> {
    fn choose(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let v = (0..width(n)).fold(0u64, |v, _| v << 8 | u64::from(self.byte()));
        (v % u64::from(n)) as u32
    }
}

/// Passes another source's choices through and writes them as the bytes
/// that make [`Bytes`] repeat them: generating from a seed through a
/// recorder yields a fuzz input that decodes to the same program.
pub struct Recorder<C> {
    pub inner: C,
    pub bytes: Vec<u8>,
}

impl<C: Choices> Choices for Recorder<C> {
    fn choose(&mut self, n: u32) -> u32 {
        let c = self.inner.choose(n);
        if n > 1 {
            let w = width(n);
            self.bytes.extend_from_slice(&c.to_be_bytes()[4 - w..]);
        }
        c
    }
}

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

    fn choose(&mut self, n: usize) -> usize {
        self.c.choose(n.min(u32::MAX as usize) as u32) as usize
    }

    /// True with about `pct` percent; false on an exhausted source.
    fn chance(&mut self, pct: u32) -> bool {
        self.c.choose(100) >= 100 - pct.min(100)
    }

    /// An index into `weights`, chosen in proportion; zero weights never.
    fn weighted(&mut self, weights: &[u32]) -> usize {
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

    fn time(&mut self) -> Time {
        Time(TIMES[self.weighted(&[3, 3, 2, 2])])
    }

    /// A time for a deadline: `none` now and then.
    fn opt_time(&mut self) -> Option<Time> {
        if self.chance(12) {
            None
        } else {
            Some(self.time())
        }
    }

    fn msg(&mut self) -> Option<String> {
        if self.chance(40) {
            Some(["stop", "bye", "m", "", "timeout"][self.weighted(&[4, 3, 3, 1, 1])].to_string())
        } else {
            None
        }
    }

    fn value(&mut self) -> Value {
        match self.weighted(&[5, 2, 2, 1]) {
            0 => Value::Int(self.choose(10) as i64),
            1 => Value::Str(["ok", "done", "x"][self.choose(3)].to_string()),
            2 => Value::None,
            _ => Value::Bool(self.chance(50)),
        }
    }

    /// A class to raise or to fail a future with.
    fn exc(&mut self) -> ExcClass {
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

    fn raise_msg(&mut self) -> Option<String> {
        self.chance(25).then(|| "boom".to_string())
    }

    // ---- the tree --------------------------------------------------------

    fn nodes(&self) -> usize {
        self.b.prog.nodes.len()
    }

    /// Nodes left in the budget.
    fn left(&self) -> usize {
        self.size.saturating_sub(self.nodes())
    }

    fn depth(&self) -> usize {
        self.b.depth()
    }

    /// Whether a compound form costing about `cost` nodes fits, `extra`
    /// levels deeper than here.
    fn fits(&self, cost: usize, extra: usize) -> bool {
        self.left() >= cost && self.depth() + extra <= MAX_DEPTH
    }

    fn leaf(&mut self, k: Kind) {
        self.b.leaf(k, Pos::NONE);
    }

    fn open(&mut self, k: Kind) {
        self.b.open(k, Pos::NONE);
    }

    fn close(&mut self) {
        self.b.close();
    }

    /// A new name; the counter makes it unique, so it is appended to the
    /// name table directly (interning would search the table).
    fn fresh(&mut self, prefix: &str) -> Sym {
        self.counter += 1;
        let names = &mut self.b.prog.names;
        names.push(format!("{prefix}{}", self.counter));
        Sym(names.len() as u32 - 1)
    }

    fn cur(&mut self) -> &mut Scope {
        self.scopes.last_mut().expect("a scope is open")
    }

    fn bind(&mut self, s: Sym, k: BindKind) {
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
    fn visible(&self, kinds: &[BindKind]) -> Vec<Sym> {
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
    fn own_tasks(&self) -> Vec<Sym> {
        self.scopes.iter().filter_map(|s| s.task).collect()
    }

    /// Readable names of `kinds` other than the tasks we are running in.
    fn others(&self, kinds: &[BindKind]) -> Vec<Sym> {
        let own = self.own_tasks();
        let mut names = self.visible(kinds);
        names.retain(|s| !own.contains(s));
        names
    }

    fn has_target(&self, kinds: &[BindKind]) -> bool {
        !self.others(kinds).is_empty()
    }

    /// A readable name of `kinds`, recent ones likelier; rarely the task
    /// we are running in (awaiting it is a RuntimeError).
    fn target(&mut self, kinds: &[BindKind]) -> Option<Sym> {
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

    fn push_scope(&mut self, task: Option<Sym>, function: bool) {
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
    fn scoped_body(&mut self, task: Option<Sym>, function: bool, min: usize, max: usize) {
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
    fn keep_promises(&mut self) {
        while let Some(&s) = self.cur().promised.first() {
            self.open(Kind::Spawn(s, SpawnMode::Bind));
            self.scoped_body(Some(s), false, 0, 2);
            self.close();
            self.bind(s, BindKind::Task);
        }
    }

    /// Statements of the current body: at least `min` while the budget
    /// lasts, at most `max`.
    fn block(&mut self, min: usize, max: usize) {
        let pct = if self.left() > 8 { 72 } else { 45 };
        self.statements(min, max.min(MAX_BODY), pct);
    }

    /// Main's body: statements until the budget is spent (or, rarely,
    /// earlier; at once on an exhausted source).
    fn main_body(&mut self) {
        self.push_scope(None, false);
        self.statements(1, usize::MAX, 0);
        self.keep_promises();
        self.scopes.pop();
    }

    /// At least `min` statements while the budget lasts, at most `max`,
    /// another one with `pct` percent chance (with 0: unless a choice
    /// among `size + 10` comes out 0).
    fn statements(&mut self, min: usize, max: usize, pct: u32) {
        let mut n = 0;
        while n < max {
            let more = if self.left() == 0 {
                false
            } else if n < min {
                true
            } else if pct == 0 {
                let n = (self.size + 10).min(u32::MAX as usize) as u32;
                self.c.choose(n) != 0
            } else {
                self.chance(pct)
            };
            if !more {
                break;
            }
            let first = self.nodes();
            self.item(false);
            n += 1;
            // Nothing after a statement that always leaves the body.
            if matches!(
                self.b.prog.nodes[first].kind,
                Kind::Return(_) | Kind::Raise(..) | Kind::Reraise
            ) {
                break;
            }
        }
    }

    // ---- statements ------------------------------------------------------

    /// One statement, or with `single` false possibly a motif of several.
    fn item(&mut self, single: bool) {
        let aw = self.has_target(AWAITABLE);
        let futs = self.has_target(FUTURE);
        let sc = self.scopes.last().expect("a scope is open");
        let (handlers, star) = (sc.handlers, sc.star);
        let bound_here = sc.names.iter().any(|(_, k)| *k != BindKind::Group);
        let group = !self.groups.is_empty();
        // A return or raise in main's own body ends the program: only
        // near the end of the budget.
        let in_main = self.scopes.len() == 1 && handlers == 0 && self.left() > 3;
        let c = |ok: bool, w: u32| if ok { w } else { 0 };
        let m = !single;
        use F::*;
        let table: [(F, u32); 40] = [
            (Sleep, 10),
            (Await, c(aw, 8)),
            (Cancel, c(aw, 9)),
            (Spawn, c(self.fits(2, 2), 11)),
            (Weak, c(self.fits(2, 2), 3)),
            (Keep, c(self.fits(2, 2), 3)),
            (SpawnIn, c(group && self.fits(2, 2), 14)),
            (Future, c(m && self.fits(4, 2), 4)),
            (Resolve, c(futs, 3)),
            (Fail, c(futs, 2)),
            (Gather, c(self.fits(3, 2), 7)),
            (Let, c(m && self.fits(4, 3), 4)),
            (Shield, c(self.fits(2, 2), 4)),
            (WaitFor, c(self.fits(2, 2), 5)),
            (Timeout, c(self.fits(2, 2), 5)),
            (TaskGroup, c(self.fits(4, 2), 4)),
            (Try, c(self.fits(3, 3), 7)),
            (Do, c(self.fits(2, 2), 2)),
            (Wait, c(aw && self.fits(2, 2), 3)),
            (AsCompleted, c(aw && self.fits(2, 2), 2)),
            (CallSoon, c(self.fits(2, 3), 3)),
            (CallLater, c(self.fits(2, 3), 4)),
            (Gc, 3),
            (Forget, c(bound_here, 1)),
            (Return, c(star == 0 && !in_main, 2)),
            (Raise, c(!in_main, 3)),
            (Reraise, c(handlers > 0, 8)),
            (CancelSelf, 2),
            (Uncancel, 2),
            (Cancelling, 1),
            (Query, c(aw, 2)),
            (Block, 1),
            (Race, c(m && self.fits(6, 2), 7)),
            (Chain, c(m && self.fits(7, 2), 3)),
            (TimerTie, c(m && self.fits(5, 3), 5)),
            (Cycle, c(m && self.fits(6, 3), 3)),
            (Swallow, c(m && self.fits(7, 4), 5)),
            (FireForget, c(m && self.fits(4, 2), 3)),
            (FreshRefs, c(m && self.fits(6, 2), 3)),
            (GroupTry, c(m && self.fits(8, 4), 3)),
        ];
        let weights: Vec<u32> = table.iter().map(|(_, w)| *w).collect();
        let f = table[self.weighted(&weights)].0;
        // Directly in main, what may raise usually sits in a try, so that
        // one timeout or cancellation does not cut the rest of main off.
        let risky = matches!(
            f,
            Await
                | WaitFor
                | Timeout
                | Gather
                | Shield
                | TaskGroup
                | AsCompleted
                | Wait
                | Cycle
                | CancelSelf
                | Do
        );
        if risky && self.depth() == 1 && self.fits(3, 3) && self.chance(60) {
            self.shelter(f);
        } else {
            self.form(f);
        }
    }

    /// `(try FORM (except E [uncancel]))` with a broad E, for main's body.
    fn shelter(&mut self, f: F) {
        self.open(Kind::Try);
        self.form(f);
        if f == F::CancelSelf {
            self.leaf(Kind::Sleep(Time(0.0)));
        }
        const C: [CatchClass; 4] = [
            CatchClass::Class(ExcClass::CancelledError),
            CatchClass::BaseException,
            CatchClass::Exception,
            CatchClass::Class(ExcClass::TimeoutError),
        ];
        // Mostly a class that catches what the form is likely to raise.
        let weights = match f {
            F::CancelSelf => [4, 1, 0, 0],
            F::Timeout | F::WaitFor => [1, 1, 1, 4],
            _ => [3, 3, 1, 1],
        };
        let class = C[self.weighted(&weights)];
        self.open(Kind::Except(Catch { class, star: false }));
        let cancel = matches!(
            class,
            CatchClass::BaseException | CatchClass::Class(ExcClass::CancelledError)
        );
        if cancel && self.chance(40) {
            self.leaf(Kind::Uncancel(None));
        }
        self.close();
        if class == C[0] && self.chance(50) {
            self.open(Kind::Except(Catch {
                class: CatchClass::Exception,
                star: false,
            }));
            self.close();
        }
        self.close();
    }

    fn form(&mut self, f: F) {
        use F::*;
        match f {
            Sleep => {
                let t = self.time();
                self.leaf(Kind::Sleep(t));
            }
            Block => {
                let t = self.time();
                self.leaf(Kind::Block(t));
            }
            Await => match self.target(AWAITABLE) {
                Some(s) => self.leaf(Kind::Await(s)),
                None => self.leaf(Kind::Sleep(Time(0.0))),
            },
            Cancel => match self.target(AWAITABLE) {
                Some(s) => {
                    let m = self.msg();
                    self.leaf(Kind::Cancel(s, m));
                }
                None => self.leaf(Kind::CancelSelf(None)),
            },
            Spawn => {
                self.spawn(SpawnMode::Bind);
            }
            Weak => {
                self.spawn(SpawnMode::Weak);
            }
            Keep => {
                self.spawn(SpawnMode::Keep);
            }
            SpawnIn => {
                let i = self.groups.len() - 1 - self.choose(self.groups.len());
                self.spawn(SpawnMode::In(self.groups[i]));
            }
            Future => self.future(),
            Resolve | Fail => match self.target(FUTURE) {
                Some(s) if f == Resolve => {
                    let v = self.value();
                    self.leaf(Kind::Resolve(s, v));
                }
                Some(s) => {
                    let (e, m) = (self.exc(), self.raise_msg());
                    self.leaf(Kind::Fail(s, e, m));
                }
                None => self.leaf(Kind::Gc),
            },
            Gather => self.gather(),
            Let => self.let_(),
            Shield => {
                self.open(Kind::Shield);
                self.awaitable(None);
                self.close();
            }
            WaitFor => {
                let t = self.opt_time();
                self.open(Kind::WaitFor(t));
                // A deadline equal to the sleep inside: both timers fire
                // in the same iteration.
                let tie = t.filter(|_| self.chance(35));
                self.awaitable(tie);
                self.close();
            }
            Timeout => {
                let t = self.opt_time();
                self.open(Kind::Timeout(t));
                if let Some(t) = t.filter(|_| self.chance(40)) {
                    self.leaf(Kind::Sleep(t));
                }
                self.block(1, 3);
                self.close();
            }
            TaskGroup => self.taskgroup(),
            Try => self.try_with(|g| g.block(1, 3)),
            Do => {
                self.open(Kind::Do);
                self.scoped_body(None, false, 1, 3);
                self.close();
            }
            Wait => self.wait(),
            AsCompleted => match self.target(AWAITABLE) {
                // One distinct ref: no order to leave unspecified.
                Some(s) => {
                    let t = self.opt_time().filter(|_| self.chance(40));
                    self.open(Kind::AsCompleted { timeout: t });
                    self.leaf(Kind::Ref(s));
                    self.close();
                }
                None => self.leaf(Kind::Gc),
            },
            CallSoon | CallLater => {
                if f == CallSoon {
                    self.open(Kind::CallSoon);
                } else {
                    let t = self.time();
                    self.open(Kind::CallLater(t));
                }
                self.push_scope(None, true);
                self.call_stmt();
                self.scopes.pop();
                self.close();
            }
            Gc => self.leaf(Kind::Gc),
            Forget => {
                let names: Vec<Sym> = self
                    .cur()
                    .names
                    .iter()
                    .filter(|(_, k)| *k != BindKind::Group)
                    .map(|(s, _)| *s)
                    .collect();
                let s = names[self.choose(names.len())];
                self.cur().names.retain(|(n, _)| *n != s);
                self.leaf(Kind::Forget(s));
            }
            Return => {
                let v = self.value();
                self.leaf(Kind::Return(v));
            }
            Raise => {
                let (e, m) = (self.exc(), self.raise_msg());
                self.leaf(Kind::Raise(e, m));
            }
            Reraise => self.leaf(Kind::Reraise),
            CancelSelf => {
                let m = self.msg();
                self.leaf(Kind::CancelSelf(m));
            }
            Uncancel | Cancelling => {
                let s = if self.chance(40) {
                    self.target(TASK)
                } else {
                    None
                };
                self.leaf(if f == Uncancel {
                    Kind::Uncancel(s)
                } else {
                    Kind::Cancelling(s)
                });
            }
            Query => match self.target(AWAITABLE) {
                Some(s) => {
                    let k = if self.chance(50) {
                        Kind::Done(s)
                    } else {
                        Kind::Cancelled(s)
                    };
                    self.leaf(k);
                }
                None => self.leaf(Kind::Cancelling(None)),
            },
            Race => self.race(),
            Chain => self.chain(),
            TimerTie => self.timer_tie(),
            Cycle => self.cycle(),
            Swallow => self.swallow(),
            FireForget => self.fire_forget(),
            FreshRefs => self.fresh_refs(),
            GroupTry => self.group_try(),
        }
    }

    /// `(spawn NAME [mode] BODY...)` with a generated body; returns the name.
    fn spawn(&mut self, mode: SpawnMode) -> Sym {
        let prefix = match mode {
            SpawnMode::Weak => "w",
            SpawnMode::Keep => "k",
            _ => "t",
        };
        let s = self.fresh(prefix);
        self.open(Kind::Spawn(s, mode));
        self.push_scope(Some(s), false);
        if self.chance(45) {
            let t = self.time();
            self.leaf(Kind::Sleep(t));
        }
        self.block(1, 4);
        self.keep_promises();
        self.scopes.pop();
        self.close();
        if matches!(mode, SpawnMode::Bind | SpawnMode::In(_)) {
            self.bind(s, BindKind::Task);
        }
        s
    }

    /// `(spawn NAME BODY)` with a body made by `body`, bound in this scope.
    fn spawn_with(&mut self, mode: SpawnMode, body: impl FnOnce(&mut Self)) -> Sym {
        let s = self.fresh(if mode == SpawnMode::Weak { "w" } else { "t" });
        self.spawn_named(s, mode, body);
        s
    }

    fn spawn_named(&mut self, s: Sym, mode: SpawnMode, body: impl FnOnce(&mut Self)) {
        self.open(Kind::Spawn(s, mode));
        self.push_scope(Some(s), false);
        body(self);
        self.keep_promises();
        self.scopes.pop();
        self.close();
        if matches!(mode, SpawnMode::Bind | SpawnMode::In(_)) {
            self.bind(s, BindKind::Task);
        }
    }

    /// An awaitable child: a ref, or a new coroutine of one statement or
    /// of a `do` body. With `tie`, a `(sleep tie)` coroutine or a ref.
    fn awaitable(&mut self, tie: Option<Time>) {
        if let Some(t) = tie {
            self.push_scope(None, false);
            self.leaf(Kind::Sleep(t));
            self.scopes.pop();
            return;
        }
        let aw = self.has_target(AWAITABLE);
        let deeper = self.fits(2, 2);
        let choice = self.weighted(&[4, if aw { 8 } else { 0 }, if deeper { 3 } else { 0 }, 4]);
        let target = if choice == 1 {
            self.target(AWAITABLE)
        } else {
            None
        };
        match choice {
            1 if target.is_some() => {
                self.leaf(Kind::Ref(target.expect("matched")));
            }
            0 | 1 => {
                self.push_scope(None, false);
                let t = self.time();
                self.leaf(Kind::Sleep(t));
                self.scopes.pop();
            }
            2 => {
                self.open(Kind::Do);
                self.scoped_body(None, false, 1, 3);
                self.close();
            }
            _ => {
                self.push_scope(None, false);
                self.item(true);
                self.scopes.pop();
            }
        }
    }

    fn gather(&mut self) {
        let return_exceptions = self.chance(35);
        self.open(Kind::Gather { return_exceptions });
        let n = [2, 1, 3, 0][self.weighted(&[5, 2, 3, 1])];
        for _ in 0..n {
            self.awaitable(None);
        }
        self.close();
    }

    /// `(let l (gather ...))` or `(let l (shield ...))`, then cancelled,
    /// awaited or left alone.
    fn let_(&mut self) {
        let s = self.fresh("l");
        self.open(Kind::Let(s));
        if self.chance(70) {
            let return_exceptions = self.chance(30);
            self.open(Kind::Gather { return_exceptions });
            for _ in 0..1 + self.choose(3) {
                self.awaitable(None);
            }
        } else {
            self.open(Kind::Shield);
            self.awaitable(None);
        }
        self.close();
        self.close();
        self.bind(s, BindKind::LetFuture);
        match self.weighted(&[4, 4, 3]) {
            0 => {}
            1 => {
                if self.chance(50) {
                    let t = self.time();
                    self.leaf(Kind::Sleep(t));
                }
                let m = self.msg();
                self.leaf(Kind::Cancel(s, m));
            }
            _ => self.guarded(|g| g.leaf(Kind::Await(s))),
        }
    }

    /// `stmt`, half the time inside a try that catches what it may raise.
    /// (Directly in main, usually: see `shelter`.)
    fn guarded(&mut self, stmt: impl FnOnce(&mut Self)) {
        let bare = if self.depth() == 1 { 20 } else { 50 };
        if !self.fits(3, 2) || self.chance(bare) {
            stmt(self);
            return;
        }
        self.open(Kind::Try);
        stmt(self);
        let class = [
            CatchClass::Class(ExcClass::CancelledError),
            CatchClass::BaseException,
            CatchClass::Class(ExcClass::TimeoutError),
            CatchClass::Exception,
        ][self.weighted(&[4, 2, 2, 1])];
        self.open(Kind::Except(Catch { class, star: false }));
        self.close();
        self.close();
    }

    /// `(future f)` and, usually, something that settles it.
    fn future(&mut self) {
        let f = self.fresh("f");
        self.leaf(Kind::Future(f));
        self.bind(f, BindKind::Future);
        match self.weighted(&[2, 4, 2, 2, 3]) {
            0 => {}
            1 => {
                let t = self.time();
                self.open(Kind::CallLater(t));
                self.settle(f);
                self.close();
            }
            2 => {
                self.open(Kind::CallSoon);
                self.settle(f);
                self.close();
            }
            3 => {
                let t = self.time();
                self.spawn_with(SpawnMode::Bind, |g| {
                    g.leaf(Kind::Sleep(t));
                    g.settle(f);
                });
            }
            _ => {
                self.guarded(|g| g.leaf(Kind::Await(f)));
            }
        }
    }

    fn settle(&mut self, f: Sym) {
        if self.chance(70) {
            let v = self.value();
            self.leaf(Kind::Resolve(f, v));
        } else {
            let (e, m) = (self.exc(), self.raise_msg());
            self.leaf(Kind::Fail(f, e, m));
        }
    }

    fn taskgroup(&mut self) {
        let g = self.fresh("g");
        self.open(Kind::TaskGroup(g));
        self.bind(g, BindKind::Group);
        self.groups.push(g);
        self.block(1, 4);
        self.groups.pop();
        self.close();
    }

    /// `(try BODY... CLAUSES...)`; `body` makes the body.
    fn try_with(&mut self, body: impl FnOnce(&mut Self)) {
        let star = self.chance(20);
        self.open(Kind::Try);
        body(self);
        let n = 1 + usize::from(self.chance(25));
        let fin = self.chance(20);
        let mut used = Vec::new();
        for _ in 0..n {
            self.handler(star, &mut used);
        }
        if fin {
            self.open(Kind::Finally);
            self.block(0, 2);
            self.close();
        }
        self.close();
    }

    /// An except clause catching a class not in `used` (earlier clauses).
    fn handler(&mut self, star: bool, used: &mut Vec<CatchClass>) {
        let mut class = self.catch_class(star);
        if used.contains(&class) {
            class = [CatchClass::Exception, CatchClass::BaseException]
                .into_iter()
                .find(|c| !used.contains(c))
                .unwrap_or(class);
        }
        used.push(class);
        self.open(Kind::Except(Catch { class, star }));
        self.cur().handlers += 1;
        self.cur().star += u32::from(star);
        self.handler_body();
        self.cur().handlers -= 1;
        self.cur().star -= u32::from(star);
        self.close();
    }

    fn catch_class(&mut self, star: bool) -> CatchClass {
        if star {
            const C: [CatchClass; 6] = [
                CatchClass::Class(ExcClass::User(1)),
                CatchClass::Class(ExcClass::ValueError),
                CatchClass::Class(ExcClass::CancelledError),
                CatchClass::Exception,
                CatchClass::BaseException,
                CatchClass::Class(ExcClass::TimeoutError),
            ];
            C[self.weighted(&[4, 3, 3, 3, 1, 1])]
        } else {
            const C: [CatchClass; 8] = [
                CatchClass::Class(ExcClass::CancelledError),
                CatchClass::Exception,
                CatchClass::BaseException,
                CatchClass::Class(ExcClass::ValueError),
                CatchClass::Class(ExcClass::User(1)),
                CatchClass::Class(ExcClass::TimeoutError),
                CatchClass::Class(ExcClass::RuntimeError),
                CatchClass::Class(ExcClass::User(2)),
            ];
            C[self.weighted(&[12, 4, 3, 3, 3, 4, 1, 1])]
        }
    }

    /// Empty (swallow), uncancel, reraise, return (never inside an
    /// `except*` handler, however nested), or statements.
    fn handler_body(&mut self) {
        let star = self.cur().star > 0;
        match self.weighted(&[10, 6, 5, if star { 0 } else { 3 }, 6]) {
            0 => {}
            1 => {
                self.leaf(Kind::Uncancel(None));
                if self.chance(30) {
                    self.item(false);
                }
            }
            2 => self.leaf(Kind::Reraise),
            3 => {
                let v = self.value();
                self.leaf(Kind::Return(v));
            }
            _ => self.block(1, 2),
        }
    }

    fn wait(&mut self) {
        let when = [
            WaitWhen::AllCompleted,
            WaitWhen::FirstCompleted,
            WaitWhen::FirstException,
        ][self.weighted(&[3, 3, 2])];
        let timeout = self.opt_time().filter(|_| self.chance(40));
        let mut refs: Vec<Sym> = Vec::new();
        for _ in 0..1 + self.choose(3) {
            if let Some(s) = self.target(AWAITABLE) {
                if when == WaitWhen::FirstException && !refs.is_empty() && !refs.contains(&s) {
                    // See avoids_unspecified: several refs only fresh.
                    continue;
                }
                refs.push(s);
            }
        }
        self.open(Kind::Wait { when, timeout });
        for s in refs {
            self.leaf(Kind::Ref(s));
        }
        self.close();
    }

    /// The statement of a call-soon/call-later: cancel, resolve, fail or spawn.
    fn call_stmt(&mut self) {
        let aw = self.has_target(AWAITABLE);
        let futs = self.has_target(FUTURE);
        let choice = self.weighted(&[3, if aw { 10 } else { 0 }, if futs { 3 } else { 0 }]);
        let target = match choice {
            1 => self.target(AWAITABLE),
            2 => self.target(FUTURE),
            _ => None,
        };
        match (choice, target) {
            (1, Some(s)) => {
                let m = self.msg();
                self.leaf(Kind::Cancel(s, m));
            }
            (2, Some(f)) => self.settle(f),
            _ => {
                let mode =
                    [SpawnMode::Weak, SpawnMode::Keep, SpawnMode::Bind][self.weighted(&[3, 1, 1])];
                let mode = if !self.groups.is_empty() && self.chance(20) {
                    SpawnMode::In(self.groups[self.groups.len() - 1])
                } else {
                    mode
                };
                self.spawn(mode);
            }
        }
    }

    // ---- motifs ----------------------------------------------------------

    /// A task and its canceller: the task wakes at T, the canceller cancels
    /// it at T (usually the same T), then maybe awaits it.
    fn race(&mut self) {
        let t = self.time();
        let ends = self.weighted(&[3, 2, 2, 1]);
        let task = self.spawn_with(SpawnMode::Bind, |g| {
            g.leaf(Kind::Sleep(t));
            match ends {
                0 => {
                    let v = g.value();
                    g.leaf(Kind::Return(v));
                }
                1 => {
                    let (e, m) = (g.exc(), g.raise_msg());
                    g.leaf(Kind::Raise(e, m));
                }
                2 => {}
                _ => {
                    let t2 = g.time();
                    g.leaf(Kind::Sleep(t2));
                }
            }
        });
        let when = if self.chance(75) { t } else { self.time() };
        if self.chance(25) {
            self.open(Kind::CallLater(when));
            let m = self.msg();
            self.leaf(Kind::Cancel(task, m));
            self.close();
            self.leaf(Kind::Sleep(when));
        } else {
            self.leaf(Kind::Sleep(when));
            let m = self.msg();
            self.leaf(Kind::Cancel(task, m));
        }
        if self.chance(60) {
            self.guarded(|g| g.leaf(Kind::Await(task)));
        }
    }

    /// `sleep 0` chains on both sides of a cancel.
    fn chain(&mut self) {
        let k = 1 + self.choose(3);
        let task = self.spawn_with(SpawnMode::Bind, |g| {
            for _ in 0..k {
                g.leaf(Kind::Sleep(Time(0.0)));
            }
            let v = g.value();
            g.leaf(Kind::Return(v));
        });
        for _ in 0..1 + self.choose(3) {
            self.leaf(Kind::Sleep(Time(0.0)));
        }
        let m = self.msg();
        self.leaf(Kind::Cancel(task, m));
        if self.chance(50) {
            self.guarded(|g| g.leaf(Kind::Await(task)));
        }
    }

    /// A deadline equal to the completion it races: a timeout or wait-for
    /// around a task that finishes at the same time.
    fn timer_tie(&mut self) {
        let t = Time(TIMES[1 + self.choose(3)]);
        let task = self.spawn_with(SpawnMode::Bind, |g| {
            g.leaf(Kind::Sleep(t));
            let v = g.value();
            g.leaf(Kind::Return(v));
        });
        match self.weighted(&[3, 3, 2]) {
            0 => self.guarded(|g| {
                g.open(Kind::WaitFor(Some(t)));
                g.leaf(Kind::Ref(task));
                g.close();
            }),
            1 => self.guarded(|g| {
                g.open(Kind::Timeout(Some(t)));
                g.leaf(Kind::Await(task));
                g.close();
            }),
            _ => {
                self.open(Kind::Wait {
                    when: WaitWhen::AllCompleted,
                    timeout: Some(t),
                });
                self.leaf(Kind::Ref(task));
                self.close();
            }
        }
    }

    /// Two tasks awaiting each other: the first names the second, which
    /// this coroutine binds later; then something cancels or awaits one.
    fn cycle(&mut self) {
        let b = self.fresh("t");
        self.cur().promised.push(b);
        let yield_first = self.chance(50);
        let a = self.spawn_with(SpawnMode::Bind, |g| {
            if yield_first {
                g.leaf(Kind::Sleep(Time(0.0)));
            }
            g.leaf(Kind::Await(b));
        });
        self.spawn_named(b, SpawnMode::Bind, |g| {
            if g.chance(50) {
                g.leaf(Kind::Sleep(Time(0.0)));
            }
            g.leaf(Kind::Await(a));
        });
        match self.weighted(&[4, 2, 2, 1]) {
            0 => {
                let t = self.time();
                self.leaf(Kind::Sleep(t));
                let m = self.msg();
                self.leaf(Kind::Cancel(a, m));
            }
            1 => {
                let return_exceptions = self.chance(50);
                self.open(Kind::Gather { return_exceptions });
                self.leaf(Kind::Ref(a));
                self.leaf(Kind::Ref(b));
                self.open(Kind::Do);
                self.push_scope(None, false);
                self.leaf(Kind::Sleep(Time(1.0)));
                self.leaf(Kind::Cancel(a, None));
                self.scopes.pop();
                self.close();
                self.close();
            }
            2 => {
                let t = Some(self.time());
                self.open(Kind::WaitFor(t));
                self.leaf(Kind::Ref(a));
                self.close();
            }
            _ => {}
        }
    }

    /// A task that swallows its cancellation (empty handler, uncancel, or
    /// a return from the handler), cancelled at its wake-up time.
    fn swallow(&mut self) {
        let t = self.time();
        let task = self.spawn_with(SpawnMode::Bind, |g| {
            g.open(Kind::Try);
            g.leaf(Kind::Sleep(t));
            g.open(Kind::Except(Catch {
                class: CatchClass::Class(ExcClass::CancelledError),
                star: false,
            }));
            g.cur().handlers += 1;
            match g.weighted(&[4, 4, 2, 2]) {
                0 => {}
                1 => g.leaf(Kind::Uncancel(None)),
                2 => {
                    let v = g.value();
                    g.leaf(Kind::Return(v));
                }
                _ => {
                    g.leaf(Kind::Cancelling(None));
                    g.leaf(Kind::Sleep(Time(0.0)));
                }
            }
            g.cur().handlers -= 1;
            g.close();
            g.close();
            if g.chance(50) {
                let t2 = g.time();
                g.leaf(Kind::Sleep(t2));
            }
            let v = g.value();
            g.leaf(Kind::Return(v));
        });
        let when = if self.chance(70) { t } else { self.time() };
        self.leaf(Kind::Sleep(when));
        let m = self.msg();
        self.leaf(Kind::Cancel(task, m));
        if self.chance(70) {
            self.guarded(|g| g.leaf(Kind::Await(task)));
        }
    }

    /// A task nobody keeps, then a collection.
    fn fire_forget(&mut self) {
        let mode = if self.chance(70) {
            SpawnMode::Weak
        } else {
            SpawnMode::Keep
        };
        let f = self.chance(50).then(|| {
            let f = self.fresh("f");
            self.leaf(Kind::Future(f));
            self.bind(f, BindKind::Future);
            f
        });
        let t = self.time();
        self.spawn_with(mode, |g| match f {
            Some(f) => g.leaf(Kind::Await(f)),
            None => g.leaf(Kind::Sleep(t)),
        });
        if self.chance(40) {
            self.leaf(Kind::Sleep(Time(0.0)));
        }
        self.leaf(Kind::Gc);
    }

    /// Tasks (and futures) created just before a `wait :first-exception`
    /// or `as-completed` over all of them, so none is done at the call.
    fn fresh_refs(&mut self) {
        let n = 2 + self.choose(2);
        let mut refs = Vec::new();
        for _ in 0..n {
            if self.chance(20) {
                let f = self.fresh("f");
                self.leaf(Kind::Future(f));
                self.bind(f, BindKind::Future);
                refs.push(f);
                continue;
            }
            let t = self.time();
            let s = self.spawn_with(SpawnMode::Bind, |g| {
                g.leaf(Kind::Sleep(t));
                match g.weighted(&[4, 2, 1]) {
                    0 => {
                        let v = g.value();
                        g.leaf(Kind::Return(v));
                    }
                    1 => {
                        let (e, m) = (g.exc(), g.raise_msg());
                        g.leaf(Kind::Raise(e, m));
                    }
                    _ => g.leaf(Kind::CancelSelf(None)),
                }
            });
            refs.push(s);
        }
        let timeout = self.opt_time().filter(|_| self.chance(40));
        let k = if self.chance(55) {
            Kind::AsCompleted { timeout }
        } else {
            Kind::Wait {
                when: WaitWhen::FirstException,
                timeout,
            }
        };
        self.open(k);
        for s in refs {
            self.leaf(Kind::Ref(s));
        }
        self.close();
    }

    /// A TaskGroup whose child fails while a sibling sleeps, inside a try
    /// with `except*` (or a plain handler).
    fn group_try(&mut self) {
        self.try_with(|g| {
            let grp = g.fresh("g");
            g.open(Kind::TaskGroup(grp));
            g.bind(grp, BindKind::Group);
            g.groups.push(grp);
            let t = g.time();
            g.spawn_with(SpawnMode::In(grp), |g| {
                g.leaf(Kind::Sleep(t));
                let (e, m) = (g.exc(), g.raise_msg());
                g.leaf(Kind::Raise(e, m));
            });
            let t2 = g.time();
            g.spawn_with(SpawnMode::In(grp), |g| {
                g.leaf(Kind::Sleep(t2));
                if g.chance(40) {
                    g.item(false);
                }
            });
            if g.chance(50) {
                g.item(false);
            }
            g.groups.pop();
            g.close();
        });
    }
}

// ---- unspecified behaviour -------------------------------------------------

/// Whether `p` stays clear of what CPython leaves unspecified: every
/// `as-completed`, and every `wait :first-exception`, with two or more
/// distinct refs takes only tasks and futures bound by the statements
/// right before it in the same body, each a `(future NAME)` or a
/// `(spawn NAME ...)` whose body starts with a sleep. Then none of them is
/// done when the call registers its callbacks (not even an eager task),
/// and the set order in which CPython registers them cannot show.
pub fn avoids_unspecified(p: &Program) -> bool {
    let parents = p.parents();
    (0..p.len() as NodeId).all(|id| {
        let ordered = match p.kind(id) {
            Kind::AsCompleted { .. } => true,
            Kind::Wait { when, .. } => *when == WaitWhen::FirstException,
            _ => false,
        };
        if !ordered {
            return true;
        }
        let mut refs: Vec<Sym> = Vec::new();
        for c in p.children(id) {
            if let Kind::Ref(s) = p.kind(c)
                && !refs.contains(s)
            {
                refs.push(*s);
            }
        }
        if refs.len() < 2 {
            return true;
        }
        let Some(parent) = parents[id as usize] else {
            return false;
        };
        let siblings: Vec<NodeId> = p.children(parent).collect();
        let at = siblings.iter().position(|&c| c == id).unwrap_or(0);
        let mut fresh: Vec<Sym> = Vec::new();
        for &c in siblings[..at].iter().rev() {
            match p.kind(c) {
                Kind::Future(s) => fresh.push(*s),
                Kind::Spawn(s, SpawnMode::Bind)
                    if p.children(c)
                        .next()
                        .is_some_and(|b| matches!(p.kind(b), Kind::Sleep(_))) =>
                {
                    fresh.push(*s)
                }
                _ => break,
            }
        }
        refs.iter().all(|s| fresh.contains(s))
    })
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
