//! Generated patterns aimed at where cancellation bugs live: races at one
//! iteration, sleep-0 chains, timer ties, await cycles, swallowed cancels,
//! fire-and-forget tasks, wait/as-completed over fresh refs.

use super::*;

impl Gen<'_> {
    pub(super) fn wait(&mut self) {
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
    pub(super) fn call_stmt(&mut self) {
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
    pub(super) fn race(&mut self) {
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
    pub(super) fn chain(&mut self) {
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
    pub(super) fn timer_tie(&mut self) {
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
    pub(super) fn cycle(&mut self) {
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
    pub(super) fn swallow(&mut self) {
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
    pub(super) fn fire_forget(&mut self) {
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
    pub(super) fn fresh_refs(&mut self) {
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
    pub(super) fn group_try(&mut self) {
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
