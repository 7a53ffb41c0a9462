//! Drafts: a tree of choice bytes that `build` turns into a program which
//! passes every static check. The proptest strategy (properties/strategy.rs)
//! and the `parse_print` fuzz target both generate drafts, so any tree of
//! drafts, however random, becomes a well-formed, statically valid program.
//!
//! `build` recurses over the draft tree; drafts come from bounded generators
//! (`from_bytes` caps the depth at `MAX_DEPTH`), never from user text.

use crate::ast::WaitWhen;
use crate::ast::{
    Builder, Catch, CatchClass, ExcClass, Kind, Pos, Program, SpawnMode, Time, Value,
};

use super::check::BindKind;

/// One statement to be: `op` picks the form, `a` and `b` pick names and
/// options, `kids` become its body, awaitables or clauses.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub op: u8,
    pub a: u8,
    pub b: u8,
    pub time: Time,
    pub value: Value,
    /// Printable ASCII only.
    pub msg: Option<String>,
    pub kids: Vec<Draft>,
}

/// The deepest draft `from_bytes` makes.
pub const MAX_DEPTH: usize = 8;

const TASKS: [&str; 4] = ["a", "b", "c", "worker_1"];
const FUTURES: [&str; 2] = ["f", "fut2"];
const LETS: [&str; 2] = ["l", "pair"];
const AWAITABLE: &[BindKind] = &[BindKind::Task, BindKind::Future, BindKind::LetFuture];

struct Scope {
    function: bool,
    bound: Vec<(&'static str, BindKind)>,
    handlers: u32,
    star_handlers: u32,
}

struct Gen {
    b: Builder,
    scopes: Vec<Scope>,
    /// Names of the task groups lexically enclosing the current node.
    groups: Vec<String>,
    next_group: u32,
}

/// Builds `(main BODY...)` from the drafts of its body statements.
pub fn build(body: &[Draft]) -> Program {
    let mut g = Gen {
        b: Builder::new(),
        scopes: Vec::new(),
        groups: Vec::new(),
        next_group: 0,
    };
    g.b.open(Kind::Main, Pos::NONE);
    g.body(body, false);
    g.b.finish()
}

impl Gen {
    fn push_scope(&mut self, function: bool) {
        self.scopes.push(Scope {
            function,
            bound: Vec::new(),
            handlers: 0,
            star_handlers: 0,
        });
    }

    fn cur(&mut self) -> &mut Scope {
        if self.scopes.is_empty() {
            self.push_scope(false);
        }
        let n = self.scopes.len() - 1;
        &mut self.scopes[n]
    }

    /// A body in a new coroutine scope (or a call-soon function scope).
    fn body(&mut self, kids: &[Draft], function: bool) {
        self.push_scope(function);
        for k in kids {
            self.stmt(k);
        }
        self.scopes.pop();
    }

    fn leaf(&mut self, k: Kind) {
        self.b.leaf(k, Pos::NONE);
    }

    fn bind(&mut self, name: &'static str, kind: BindKind) {
        let s = self.cur();
        if !s.function {
            s.bound.push((name, kind));
        }
    }

    /// A name visible here of one of `kinds`, chosen by `pick`.
    fn pick(&mut self, kinds: &[BindKind], pick: u8) -> Option<crate::ast::Sym> {
        let mut seen: Vec<&'static str> = Vec::new();
        for s in self.scopes.iter().rev() {
            for (n, k) in &s.bound {
                if kinds.contains(k) && !seen.contains(n) {
                    seen.push(n);
                }
            }
        }
        if seen.is_empty() {
            return None;
        }
        let name = seen[pick as usize % seen.len()];
        Some(self.b.sym(name))
    }

    fn exc(x: u8) -> ExcClass {
        match x % 8 {
            7 => ExcClass::User(1 + (x / 8) % 9),
            i => ExcClass::BUILTINS[i as usize],
        }
    }

    fn opt_time(d: &Draft) -> Option<Time> {
        (d.b & 8 == 0).then_some(d.time)
    }

    /// A statement from `d`, followed, when its form has no use for children,
    /// by `d.kids` as further statements of the same body.
    fn stmt(&mut self, d: &Draft) {
        if self.form(d) {
            for k in &d.kids {
                self.stmt(k);
            }
        }
    }

    /// The statement `d` picks; returns whether `d.kids` were left unused.
    fn form(&mut self, d: &Draft) -> bool {
        use Kind::*;
        let zero = Sleep(Time(0.0));
        let op = d.op % 30;
        match op {
            0 => self.leaf(Sleep(d.time)),
            1 => self.leaf(Block(d.time)),
            2 if self.cur().star_handlers == 0 => self.leaf(Return(d.value.clone())),
            3 if self.cur().handlers > 0 && d.b & 16 == 16 => self.leaf(Reraise),
            2 | 3 => self.leaf(Raise(Self::exc(d.a), d.msg.clone())),
            4 => self.spawn(d),
            5 | 6 | 10 | 11 => match self.pick(AWAITABLE, d.a) {
                Some(s) => self.leaf(match op {
                    5 => Await(s),
                    6 => Cancel(s, d.msg.clone()),
                    10 => Done(s),
                    _ => Cancelled(s),
                }),
                None => self.leaf(zero),
            },
            7 => self.leaf(CancelSelf(d.msg.clone())),
            8 | 9 => {
                let s = if d.b & 1 == 1 {
                    self.pick(&[BindKind::Task], d.a)
                } else {
                    None
                };
                self.leaf(if op == 8 { Uncancel(s) } else { Cancelling(s) });
            }
            12 => {
                let name = FUTURES[d.a as usize % FUTURES.len()];
                let s = self.b.sym(name);
                self.leaf(Future(s));
                self.bind(name, BindKind::Future);
            }
            13 | 14 => match self.pick(&[BindKind::Future], d.a) {
                Some(s) if op == 13 => self.leaf(Resolve(s, d.value.clone())),
                Some(s) => self.leaf(Fail(s, Self::exc(d.b), d.msg.clone())),
                None => self.leaf(zero),
            },
            15 => {
                self.b.open(
                    Gather {
                        return_exceptions: d.b & 1 == 1,
                    },
                    Pos::NONE,
                );
                for k in &d.kids {
                    self.awaitable(k);
                }
                self.b.close();
            }
            16 | 17 => {
                let k = if op == 16 {
                    Shield
                } else {
                    WaitFor(Self::opt_time(d))
                };
                self.b.open(k, Pos::NONE);
                self.first_awaitable(d);
                self.b.close();
            }
            18 => {
                let name = LETS[d.a as usize % LETS.len()];
                let s = self.b.sym(name);
                self.b.open(Let(s), Pos::NONE);
                if d.b & 1 == 1 {
                    self.b.open(Shield, Pos::NONE);
                    self.first_awaitable(d);
                } else {
                    self.b.open(
                        Gather {
                            return_exceptions: d.b & 2 == 2,
                        },
                        Pos::NONE,
                    );
                    for k in &d.kids {
                        self.awaitable(k);
                    }
                }
                self.b.close();
                self.b.close();
                self.bind(name, BindKind::LetFuture);
            }
            19 => {
                self.b.open(Timeout(Self::opt_time(d)), Pos::NONE);
                for k in &d.kids {
                    self.stmt(k);
                }
                self.b.close();
            }
            20 => {
                let name = format!("tg{}", self.next_group);
                self.next_group += 1;
                let s = self.b.sym(&name);
                self.b.open(TaskGroup(s), Pos::NONE);
                self.groups.push(name);
                for k in &d.kids {
                    self.stmt(k);
                }
                self.groups.pop();
                self.b.close();
            }
            21 | 22 => self.wait(d),
            23 => self.try_(d),
            24 if self.cur().handlers > 0 => self.leaf(Reraise),
            25 | 26 => {
                let k = if op == 25 {
                    CallSoon
                } else {
                    CallLater(d.time)
                };
                self.b.open(k, Pos::NONE);
                self.push_scope(true);
                self.call_stmt(d.kids.first().unwrap_or(d));
                self.scopes.pop();
                self.b.close();
            }
            28 => {
                let bound = &self.cur().bound;
                if bound.is_empty() {
                    self.leaf(Gc);
                } else {
                    let name = bound[d.a as usize % bound.len()].0;
                    let s = self.b.sym(name);
                    self.leaf(Forget(s));
                }
            }
            29 => {
                self.b.open(Do, Pos::NONE);
                self.body(&d.kids, false);
                self.b.close();
            }
            _ => self.leaf(Gc),
        }
        !matches!(op, 4 | 15..=20 | 23 | 25 | 26 | 29)
    }

    fn spawn(&mut self, d: &Draft) {
        let name = TASKS[d.a as usize % TASKS.len()];
        let s = self.b.sym(name);
        let mode = match d.b % 4 {
            1 => SpawnMode::Weak,
            2 => SpawnMode::Keep,
            3 if !self.groups.is_empty() => {
                let g = self.groups[(d.b / 4) as usize % self.groups.len()].clone();
                SpawnMode::In(self.b.sym(&g))
            }
            _ => SpawnMode::Bind,
        };
        if matches!(mode, SpawnMode::Bind | SpawnMode::In(_)) {
            self.bind(name, BindKind::Task);
        }
        self.b.open(Kind::Spawn(s, mode), Pos::NONE);
        self.body(&d.kids, false);
        self.b.close();
    }

    /// A child of gather, shield or wait-for.
    fn awaitable(&mut self, d: &Draft) {
        if d.op.is_multiple_of(7)
            && let Some(s) = self.pick(AWAITABLE, d.a)
        {
            self.leaf(Kind::Ref(s));
            return;
        }
        self.push_scope(false);
        self.form(d);
        self.scopes.pop();
    }

    fn first_awaitable(&mut self, d: &Draft) {
        match d.kids.first() {
            Some(k) => self.awaitable(k),
            None => {
                self.push_scope(false);
                self.leaf(Kind::Sleep(d.time));
                self.scopes.pop();
            }
        }
    }

    fn wait(&mut self, d: &Draft) {
        let n = 1 + d.a as usize % 3;
        let refs: Vec<_> = (0..n)
            .filter_map(|i| self.pick(AWAITABLE, d.a.wrapping_add(i as u8)))
            .collect();
        if refs.is_empty() {
            self.leaf(Kind::Gc);
            return;
        }
        let timeout = (d.b & 4 == 4).then_some(d.time);
        let k = if d.op % 30 == 21 {
            let when = [
                WaitWhen::AllCompleted,
                WaitWhen::FirstCompleted,
                WaitWhen::FirstException,
            ];
            Kind::Wait {
                when: when[d.b as usize % 3],
                timeout,
            }
        } else {
            Kind::AsCompleted { timeout }
        };
        self.b.open(k, Pos::NONE);
        for s in refs {
            self.leaf(Kind::Ref(s));
        }
        self.b.close();
    }

    fn try_(&mut self, d: &Draft) {
        let c = (1 + d.a as usize % 3).min(d.kids.len()).max(1);
        let split = d.kids.len().saturating_sub(c);
        let (body, clauses) = d.kids.split_at(split);
        let star = d.b & 2 == 2;
        let fin = d.b & 1 == 1;
        self.b.open(Kind::Try, Pos::NONE);
        for k in body {
            self.stmt(k);
        }
        let default = [Draft {
            kids: Vec::new(),
            ..d.clone()
        }];
        let clauses = if clauses.is_empty() {
            &default[..]
        } else {
            clauses
        };
        for (i, cd) in clauses.iter().enumerate() {
            if fin && i == clauses.len() - 1 {
                self.b.open(Kind::Finally, Pos::NONE);
                for k in &cd.kids {
                    self.stmt(k);
                }
                self.b.close();
                break;
            }
            let class = match cd.op % 10 {
                7 => CatchClass::Exception,
                8 => CatchClass::BaseException,
                9 => CatchClass::Class(ExcClass::User(1 + cd.a % 9)),
                i => CatchClass::Class(ExcClass::BUILTINS[i as usize]),
            };
            self.b.open(Kind::Except(Catch { class, star }), Pos::NONE);
            self.cur().handlers += 1;
            self.cur().star_handlers += u32::from(star);
            for k in &cd.kids {
                self.stmt(k);
            }
            self.cur().handlers -= 1;
            self.cur().star_handlers -= u32::from(star);
            self.b.close();
        }
        self.b.close();
    }

    /// The statement of a call-soon/call-later: cancel, resolve, fail or spawn.
    fn call_stmt(&mut self, d: &Draft) {
        let op = d.op % 4;
        let target = match op {
            0 => self.pick(AWAITABLE, d.a),
            1 | 2 => self.pick(&[BindKind::Future], d.a),
            _ => None,
        };
        match (op, target) {
            (0, Some(s)) => self.leaf(Kind::Cancel(s, d.msg.clone())),
            (1, Some(s)) => self.leaf(Kind::Resolve(s, d.value.clone())),
            (2, Some(s)) => self.leaf(Kind::Fail(s, Self::exc(d.b), d.msg.clone())),
            _ => self.spawn(d),
        }
    }
}

/// Reads drafts from arbitrary bytes (missing bytes read as zero): at most 64
/// top-level statements, depth at most `MAX_DEPTH`, about 512 drafts in all.
pub fn from_bytes(data: &[u8]) -> Vec<Draft> {
    let mut r = Bytes {
        data,
        at: 0,
        budget: 512,
    };
    let mut out = Vec::new();
    while r.at < data.len() && out.len() < 64 && r.budget > 0 {
        out.push(r.draft(0));
    }
    out
}

struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
    budget: u32,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, _| acc << 8 | u64::from(self.u8()))
    }

    fn text(&mut self) -> String {
        let n = self.u8() % 8;
        (0..n).map(|_| char::from(b' ' + self.u8() % 95)).collect()
    }

    fn draft(&mut self, depth: usize) -> Draft {
        self.budget = self.budget.saturating_sub(1);
        let (op, a, b) = (self.u8(), self.u8(), self.u8());
        let x = self.u8();
        let time = match x % 8 {
            0..=3 => Time(f64::from(x / 8)),
            4 => Time(f64::from(x / 8) * 0.25),
            5 => {
                let t = f64::from_bits(self.u64());
                Time(if t.is_finite() { t } else { 1.5 })
            }
            6 => Time(-f64::from(x / 8)),
            _ => Time(-0.0),
        };
        let value = match self.u8() % 5 {
            0 => Value::None,
            1 => Value::Bool(true),
            2 => Value::Bool(false),
            3 => Value::Int(self.u64() as i64),
            _ => Value::Str(self.text()),
        };
        let msg = if self.u8().is_multiple_of(3) {
            Some(self.text())
        } else {
            None
        };
        let n = if depth < MAX_DEPTH && self.budget > 0 {
            self.u8() % 4
        } else {
            0
        };
        let kids = (0..n).map(|_| self.draft(depth + 1)).collect();
        Draft {
            op,
            a,
            b,
            time,
            value,
            msg,
            kids,
        }
    }
}
