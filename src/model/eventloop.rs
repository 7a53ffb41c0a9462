//! `base_events`' loop: a FIFO ready queue of handles, timers in a binary
//! heap with exactly `heapq`'s sift order (ties pop in heap order, not
//! FIFO), lazy removal of cancelled timers with the >100 / >half rebuild,
//! and `_run_once`'s clock arithmetic in the same f64 order.

pub type HId = u32;

/// `_ready`, a FIFO of handles. Handles are never reused within a run, so
/// a queue never holds more than the run made: a list and the index of
/// its front, both reset with the loop, make popping an index bump
/// (a `VecDeque` also wraps its head around a ring on every pop), and
/// what is queued one slice.
#[derive(Default)]
pub struct Ready {
    buf: Vec<HId>,
    head: usize,
    /// The end of the queue when this loop iteration began: it runs the
    /// handles before it (`pop_this_iteration`). Kept here, not in a
    /// local of the loop, which the handles' calls made a stack slot
    /// spilled and reloaded for each.
    mark: usize,
}

impl Ready {
    #[inline]
    pub fn push_back(&mut self, h: HId) {
        self.buf.push(h);
    }

    #[inline]
    pub fn pop_front(&mut self) -> Option<HId> {
        let h = *self.buf.get(self.head)?;
        self.head += 1;
        Some(h)
    }

    /// Marks the end of the handles this iteration runs.
    #[inline]
    pub fn mark(&mut self) {
        self.mark = self.buf.len();
    }

    /// The front handle, if queued before the last `mark`.
    #[inline]
    pub fn pop_this_iteration(&mut self) -> Option<HId> {
        if self.head >= self.mark {
            return None;
        }
        self.pop_front()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.mark = 0;
    }

    /// The queued handles, front first.
    #[inline]
    pub fn as_slice(&self) -> &[HId] {
        &self.buf[self.head..]
    }

    pub fn iter(&self) -> std::slice::Iter<'_, HId> {
        self.as_slice().iter()
    }
}

impl<'a> IntoIterator for &'a Ready {
    type Item = &'a HId;
    type IntoIter = std::slice::Iter<'a, HId>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::ops::Index<usize> for Ready {
    type Output = HId;
    #[inline]
    fn index(&self, k: usize) -> &HId {
        &self.as_slice()[k]
    }
}

pub const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;
pub const MIN_CANCELLED_TIMER_HANDLES_FRACTION: f64 = 0.5;
pub const MAXIMUM_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;
pub const CLOCK_RESOLUTION: f64 = 1e-9;

/// A handle: a callback the loop will run, with its cancelled flag.
#[derive(Clone, Copy, Debug)]
pub struct Handle<C: Copy> {
    pub cb: C,
    pub cancelled: bool,
    pub when: f64,
    /// In the timer heap (`_scheduled`).
    pub scheduled: bool,
    /// Its place in the collector's list (`gcorder.rs`), and that of the
    /// object allocated just before it that only it refers to (a task's
    /// step wrapper, an `args` tuple, a bound method), where there is one.
    pub key: u32,
    pub wrap_key: u32,
}

pub struct EventLoop<C: Copy> {
    pub handles: Vec<Handle<C>>,
    pub ready: Ready,
    /// `_scheduled`, a heap ordered by `when` only.
    pub heap: Vec<HId>,
    pub timer_cancelled_count: usize,
    pub now: f64,
    pub stopping: bool,
    pub iteration: u32,
    /// `loop.close()` ran: `call_soon` raises RuntimeError from now on.
    pub closed: bool,
    /// The collector list's allocation clock (`gcorder.rs`): the last
    /// position given out, to handles and to the machine's objects alike.
    /// Shared with the exception arena, which stamps each exception with
    /// it as it is made.
    pub clock: std::rc::Rc<std::cell::Cell<u32>>,
}

/// How far apart the allocation clock gives out positions: each step
/// leaves room for the object allocated just before (a handle's step
/// wrapper, a task's coroutine), which takes the key one less.
pub const KEY_STEP: u32 = 2;

impl<C: Copy> Default for EventLoop<C> {
    fn default() -> Self {
        EventLoop {
            handles: Vec::new(),
            ready: Ready::default(),
            heap: Vec::new(),
            timer_cancelled_count: 0,
            now: 0.0,
            stopping: false,
            iteration: 0,
            closed: false,
            clock: Default::default(),
        }
    }
}

impl<C: Copy> EventLoop<C> {
    pub fn clear(&mut self) {
        self.handles.clear();
        self.ready.clear();
        self.heap.clear();
        self.timer_cancelled_count = 0;
        self.now = 0.0;
        self.stopping = false;
        self.iteration = 0;
        self.closed = false;
        self.clock.set(0);
    }

    fn alloc(&mut self, cb: C, when: f64, scheduled: bool) -> HId {
        let key = self.clock.get() + KEY_STEP;
        self.clock.set(key);
        let h = Handle {
            cb,
            cancelled: false,
            when,
            scheduled,
            key,
            wrap_key: key - 1,
        };
        self.handles.push(h);
        self.handles.len() as HId - 1
    }

    pub fn call_soon(&mut self, cb: C) -> HId {
        let h = self.alloc(cb, 0.0, false);
        self.ready.push_back(h);
        h
    }

    pub fn call_at(&mut self, when: f64, cb: C) -> HId {
        let h = self.alloc(cb, when, true);
        self.heap.push(h);
        // A timer alone in the heap (the usual case) has nowhere to move.
        let n = self.heap.len();
        if n > 1 {
            self.sift_down(0, n - 1);
        }
        h
    }

    pub fn call_later(&mut self, delay: f64, cb: C) -> HId {
        let when = self.now + delay;
        self.call_at(when, cb)
    }

    /// `Handle.cancel()` / `TimerHandle.cancel()`.
    pub fn cancel(&mut self, h: HId) {
        let x = &mut self.handles[h as usize];
        if x.cancelled {
            return;
        }
        x.cancelled = true;
        if x.scheduled {
            self.timer_cancelled_count += 1;
        }
    }

    fn lt(&self, a: HId, b: HId) -> bool {
        self.handles[a as usize].when < self.handles[b as usize].when
    }

    /// heapq._siftdown: move the item at `pos` up towards `start`.
    fn sift_down(&mut self, start: usize, mut pos: usize) {
        let item = self.heap[pos];
        while pos > start {
            let parentpos = (pos - 1) >> 1;
            let parent = self.heap[parentpos];
            if self.lt(item, parent) {
                self.heap[pos] = parent;
                pos = parentpos;
                continue;
            }
            break;
        }
        self.heap[pos] = item;
    }

    /// heapq._siftup: move the item at `pos` down to a leaf, then sift it up.
    #[inline(always)]
    fn sift_up(&mut self, mut pos: usize) {
        let endpos = self.heap.len();
        let startpos = pos;
        let item = self.heap[pos];
        let mut childpos = 2 * pos + 1;
        while childpos < endpos {
            let rightpos = childpos + 1;
            if rightpos < endpos && !self.lt(self.heap[childpos], self.heap[rightpos]) {
                childpos = rightpos;
            }
            self.heap[pos] = self.heap[childpos];
            pos = childpos;
            childpos = 2 * pos + 1;
        }
        self.heap[pos] = item;
        self.sift_down(startpos, pos);
    }

    fn heappop(&mut self) -> HId {
        let last = self.heap.pop().expect("heappop on empty heap");
        if self.heap.is_empty() {
            return last;
        }
        let ret = self.heap[0];
        self.heap[0] = last;
        self.sift_up(0);
        ret
    }

    fn heapify(&mut self) {
        let n = self.heap.len();
        for i in (0..n / 2).rev() {
            self.sift_up(i);
        }
    }

    /// The first half of `_run_once`: drop cancelled timers, wait (advance
    /// the virtual clock) and move expired timers to the ready queue.
    /// Returns false when `select(None)` would block forever (deadlock).
    /// Always inlined into `_run_once`, its one caller, which runs it
    /// every iteration.
    #[inline(always)]
    pub fn prepare(&mut self) -> bool {
        let sched_count = self.heap.len();
        if sched_count > MIN_SCHEDULED_TIMER_HANDLES
            && (self.timer_cancelled_count as f64) / (sched_count as f64)
                > MIN_CANCELLED_TIMER_HANDLES_FRACTION
        {
            let old = std::mem::take(&mut self.heap);
            for h in old {
                if self.handles[h as usize].cancelled {
                    self.handles[h as usize].scheduled = false;
                } else {
                    self.heap.push(h);
                }
            }
            self.heapify();
            self.timer_cancelled_count = 0;
        } else {
            while let Some(&h) = self.heap.first() {
                if !self.handles[h as usize].cancelled {
                    break;
                }
                self.timer_cancelled_count -= 1;
                let h = self.heappop();
                self.handles[h as usize].scheduled = false;
            }
        }
        let timeout = if !self.ready.is_empty() || self.stopping {
            Some(0.0)
        } else if let Some(&h) = self.heap.first() {
            let when = self.handles[h as usize].when;
            // `_run_once`'s `if timeout > MAX ... elif timeout < 0`: clamp
            // gives the same f64 for every input, -0.0 and NaN included.
            Some((when - self.now).clamp(0.0, MAXIMUM_SELECT_TIMEOUT))
        } else {
            None
        };
        let Some(timeout) = timeout else { return false };
        self.now += timeout;
        let end_time = self.now + CLOCK_RESOLUTION;
        while let Some(&h) = self.heap.first() {
            if self.handles[h as usize].when >= end_time {
                break;
            }
            let h = self.heappop();
            self.handles[h as usize].scheduled = false;
            self.ready.push_back(h);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ties_pop_in_heap_order_not_fifo() {
        // Ten call_at with the same deadline plus one later timer fire as
        // [0, 2, 6, 5, 9, 8, 7, 1, 3, 4] on CPython (scheduling facts, 2).
        let mut l: EventLoop<u32> = EventLoop::default();
        for i in 0..10 {
            l.call_at(1.0, i);
        }
        l.call_at(2.0, 99);
        assert!(l.prepare());
        let order: Vec<u32> = l.ready.iter().map(|&h| l.handles[h as usize].cb).collect();
        assert_eq!(order, vec![0, 2, 6, 5, 9, 8, 7, 1, 3, 4]);
    }
}
