//! A future's done callbacks: what each is, and the list a future keeps
//! them in.

use super::fut::FutId;

/// A done callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cb {
    /// `Task.__wakeup` of a task.
    Wakeup(u32),
    /// The runtime's own callback: traced at once when scheduled.
    Traced,
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

/// A future's done callbacks. Most futures get one or two, so those are
/// held in the record: no list to allocate, or to keep for reuse between
/// runs and hand out again, for each future.
#[derive(Clone, Debug)]
pub enum Cbs {
    /// The first `n` of the array.
    Few(u8, [Cb; 2]),
    Many(Vec<Cb>),
}

impl Default for Cbs {
    #[inline]
    fn default() -> Cbs {
        Cbs::Few(0, [Cb::Traced; 2])
    }
}

impl Cbs {
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
