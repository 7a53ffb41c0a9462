//! The generator's statement forms: bodies, spawns, awaitables, gather,
//! let, futures, task groups, try and its handlers.

use super::*;

impl Gen<'_> {
    /// At least `min` statements while the budget lasts, at most `max`,
    /// another one with `pct` percent chance (with 0: unless a choice
    /// among `size + 10` comes out 0).
    pub(super) fn statements(&mut self, min: usize, max: usize, pct: u32) {
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
    pub(super) fn item(&mut self, single: bool) {
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
    pub(super) fn shelter(&mut self, f: F) {
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

    pub(super) fn form(&mut self, f: F) {
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
    pub(super) fn spawn(&mut self, mode: SpawnMode) -> Sym {
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
    pub(super) fn spawn_with(&mut self, mode: SpawnMode, body: impl FnOnce(&mut Self)) -> Sym {
        let s = self.fresh(if mode == SpawnMode::Weak { "w" } else { "t" });
        self.spawn_named(s, mode, body);
        s
    }

    pub(super) fn spawn_named(&mut self, s: Sym, mode: SpawnMode, body: impl FnOnce(&mut Self)) {
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
    pub(super) fn awaitable(&mut self, tie: Option<Time>) {
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

    pub(super) fn gather(&mut self) {
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
    pub(super) fn let_(&mut self) {
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
    pub(super) fn guarded(&mut self, stmt: impl FnOnce(&mut Self)) {
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
    pub(super) fn future(&mut self) {
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

    pub(super) fn settle(&mut self, f: Sym) {
        if self.chance(70) {
            let v = self.value();
            self.leaf(Kind::Resolve(f, v));
        } else {
            let (e, m) = (self.exc(), self.raise_msg());
            self.leaf(Kind::Fail(f, e, m));
        }
    }

    pub(super) fn taskgroup(&mut self) {
        let g = self.fresh("g");
        self.open(Kind::TaskGroup(g));
        self.bind(g, BindKind::Group);
        self.groups.push(g);
        self.block(1, 4);
        self.groups.pop();
        self.close();
    }

    /// `(try BODY... CLAUSES...)`; `body` makes the body.
    pub(super) fn try_with(&mut self, body: impl FnOnce(&mut Self)) {
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
    pub(super) fn handler(&mut self, star: bool, used: &mut Vec<CatchClass>) {
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

    pub(super) fn catch_class(&mut self, star: bool) -> CatchClass {
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
    pub(super) fn handler_body(&mut self) {
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
}
