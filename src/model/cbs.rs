//! A future's done callbacks: what each is, the list a future keeps
//! them in, adding them, and scheduling them when it finishes (the
//! runtime's own traced at once).

use super::fut::FutId;
use super::machine::Machine;
use super::run::Hcb;
use crate::trace::What;

/// A done callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cb {
    /// The runtime's own callback: traced at once when scheduled. First,
    /// so that its tag is zero: a new future's list of `FEW`, filled with
    /// it, is then all zeros, stored with the record's other zeros.
    Traced,
    /// `Task.__wakeup` of a task.
    Wakeup(u32),
    /// `_run_until_complete_cb`: stops the loop.
    RunUntil,
    /// gather's `_done_callback`.
    Gather(u32),
    /// shield's `_inner_done_callback` (outer).
    ShieldInner(FutId),
    /// shield's `_outer_done_callback` (inner).
    ShieldOuter(FutId),
    /// `bg.discard` of the background-set idiom.
    BgDiscard,
    /// `TaskGroup._on_task_done`.
    TgDone(u32),
    /// `_wait`'s `_on_completion`.
    WaitDone(u32),
    /// `functools.partial(_release_waiter, waiter)`.
    Release(FutId),
    /// `as_completed`'s `_on_completion`.
    AcDone(u32),
}

/// How many callbacks a future keeps in its record. With two, one push in
/// twenty went past them (small programs), and the list allocated and
/// freed for it cost more than room for five in every record (measured
/// with 3, 4, 5 and 6: 5 was the least, and no small or medium bench
/// program then needs a list).
pub const FEW: usize = 5;

/// A future's done callbacks. Nearly all futures get five or fewer, so
/// those are held in the record: no list to allocate, or to keep for reuse
/// between runs and hand out again, for each future.
#[derive(Clone, Debug)]
pub enum Cbs {
    /// The first `n` of the array.
    Few(u8, [Cb; FEW]),
    Many(Vec<Cb>),
}

impl Default for Cbs {
    #[inline]
    fn default() -> Cbs {
        Cbs::traced(false)
    }
}

impl Cbs {
    /// A new future's list: empty, or, `traced`, holding the runtime's
    /// own callback (`Cb::Traced`) a pending task gets as it is made.
    #[inline]
    pub fn traced(traced: bool) -> Cbs {
        Cbs::Few(traced as u8, [Cb::Traced; FEW])
    }
    #[inline]
    pub fn as_slice(&self) -> &[Cb] {
        match self {
            Cbs::Few(n, a) => &a[..*n as usize],
            Cbs::Many(v) => v,
        }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
    #[inline]
    pub fn push(&mut self, cb: Cb) {
        if let Cbs::Few(n, a) = self
            && (*n as usize) < a.len()
        {
            a[*n as usize] = cb;
            *n += 1;
            return;
        }
        self.push_more(cb);
    }

    /// `push` past the record's room, out of line: its allocation made
    /// every push save and restore registers.
    #[cold]
    #[inline(never)]
    fn push_more(&mut self, cb: Cb) {
        match self {
            Cbs::Few(_, a) => {
                let mut v = Vec::with_capacity(2 * a.len());
                v.extend_from_slice(a);
                v.push(cb);
                *self = Cbs::Many(v);
            }
            Cbs::Many(v) => v.push(cb),
        }
    }
    /// Removes every callback equal to `cb`, keeping the others' order.
    pub fn remove(&mut self, cb: Cb) {
        match self {
            Cbs::Few(n, a) => {
                let mut kept = 0;
                for i in 0..*n as usize {
                    if a[i] != cb {
                        a[kept] = a[i];
                        kept += 1;
                    }
                }
                *n = kept as u8;
            }
            Cbs::Many(v) => v.retain(|c| *c != cb),
        }
    }
    #[inline]
    pub fn clear(&mut self) {
        match self {
            Cbs::Few(n, _) => *n = 0,
            Cbs::Many(v) => v.clear(),
        }
    }
}

impl<'a> IntoIterator for &'a Cbs {
    type Item = &'a Cb;
    type IntoIter = std::slice::Iter<'a, Cb>;
    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl Machine {
    #[inline]
    pub fn add_done_callback(&mut self, f: FutId, cb: Cb) {
        if let Cb::Wakeup(t) = cb {
            self.tasks[t as usize].wake_key = self.next_gc_key();
        }
        let x = &mut self.futs[f as usize];
        if x.done() {
            return self.call_soon_cb_now(cb, f);
        }
        x.callbacks.push(cb);
    }

    /// A callback added to a done future, scheduled at once: rare, so out
    /// of line, leaving `add_done_callback` no registers to save.
    #[cold]
    #[inline(never)]
    fn call_soon_cb_now(&mut self, cb: Cb, f: FutId) {
        self.call_soon_cb(cb, f);
    }

    /// `remove_done_callback`: removes every registration equal to `cb`.
    /// Its usual caller, `run_until_complete`, finds the future done and
    /// its list emptied: tested here, that spares the call.
    #[inline]
    pub fn remove_done_callback(&mut self, f: FutId, cb: Cb) {
        let cbs = &mut self.futs[f as usize].callbacks;
        if !cbs.is_empty() {
            cbs.remove(cb);
        }
    }

    pub(super) fn call_soon_cb(&mut self, cb: Cb, f: FutId) {
        if cb == Cb::Traced {
            self.trace_done(f);
        } else {
            self.lp.call_soon(Hcb::FutCb(cb, f));
        }
    }

    /// Always inlined into the three ways a future finishes, each of
    /// which ends with it.
    #[inline(always)]
    pub(super) fn schedule_callbacks(&mut self, f: FutId) {
        // A done future takes no more callbacks (`add_done_callback`
        // schedules them at once): nothing is kept for it. The usual
        // record of up to `FEW` is read and emptied in place, without
        // moving the list out and checking what to drop.
        match &mut self.futs[f as usize].callbacks {
            Cbs::Few(n, a) => {
                let (n, a) = (std::mem::take(n), *a);
                for &cb in &a[..n as usize] {
                    self.call_soon_cb(cb, f);
                }
            }
            Cbs::Many(_) => self.schedule_many(f),
        }
    }

    /// `schedule_callbacks` of more than `FEW`, out of line.
    #[cold]
    #[inline(never)]
    fn schedule_many(&mut self, f: FutId) {
        let cbs = std::mem::take(&mut self.futs[f as usize].callbacks);
        for &cb in &cbs {
            self.call_soon_cb(cb, f);
        }
    }

    /// Out of line: inlined, it made `call_soon_cb`, which runs for every
    /// callback, save and restore registers only it needs.
    #[inline(never)]
    pub(super) fn trace_done(&mut self, f: FutId) {
        let t = self.task_of(f).expect("traced callbacks are on tasks");
        let fin = self.fin(f);
        let kept = self.clone_fin(&fin);
        let task = &mut self.tasks[t as usize];
        // A task finishes once, so there is no earlier record: not
        // dropping one spares a check of what it holds.
        let old = task.done_fin.replace(kept);
        debug_assert!(old.is_none(), "a task finishes once");
        std::mem::forget(old);
        task.done_cancelling = task.num_cancels;
        super::run::ev_in_place!(self, What::Done { task: t, fin });
    }
}
