//! Tracebacks: which frames and objects an exception keeps alive. An
//! exception's traceback holds the frames it was raised in or passed
//! through, and so their locals; the refcount checks and collections
//! (`finalize.rs`, `collect.rs`) read these entries as its references
//! (`gc.rs::tb_edges`).

use super::coro::NONE;
use super::exc::ExcId;
use super::gc::TbRef;
use super::machine::Machine;
use crate::ast::NodeId;

impl Machine {
    /// Tracebacks: exception `e` was raised in (or passed through) the
    /// innermost function of task `t`.
    pub fn tb_here(&mut self, t: Option<u32>, e: ExcId) {
        let Some(t) = t else { return };
        if let Some(func) = self.innermost_fn(t) {
            self.tb_add(e, func);
        }
    }

    /// An exception whose traceback keeps `Handle._run`'s frame (a plain
    /// function, so on every version; or a coroutine's frame on 3.12+)
    /// keeps its `f_back` chain: `_run_once` (handle = None, unless a
    /// KeyboardInterrupt leaves the iteration: `run_once_kept`) ->
    /// `run_forever` -> the runtime's `run_until_complete(future)`, whose
    /// `future` is `main_task` during the main run and the shutdown gather
    /// during the shutdown, and on to `_drive`, whose loop variable `t`
    /// keeps the last leftover task once the shutdown has made it.
    pub fn tb_handle_frames(&mut self, e: ExcId) {
        match self.until {
            Some(f) => self.tb_ref(e, TbRef::Fut(f)),
            None => return,
        }
        self.run_once_kept.push(e);
        match self.shutdown_refs.last() {
            Some(&last) => self.tb_ref(e, TbRef::Fut(last)),
            None => self.drive_excs.push(e),
        }
    }

    pub fn tb_add(&mut self, e: ExcId, func: NodeId) {
        self.tb_ref(e, TbRef::Frame(func));
    }

    /// Exception `e`'s traceback entries, made empty on first use.
    pub fn tb_mut(&mut self, e: ExcId) -> &mut Vec<TbRef> {
        let i = e as usize;
        if self.tbs.len() <= i {
            self.tbs.resize(i + 1, Vec::new());
        }
        &mut self.tbs[i]
    }

    /// Exception `e`'s traceback holds a frame whose locals hold `r`
    /// (`Timeout.__aexit__`'s `self._task`, a TaskGroup, wait_for's `fut`).
    /// Every rare path leaves by a tail call, so the common one saves and
    /// restores no registers.
    pub fn tb_ref(&mut self, e: ExcId, r: TbRef) {
        if let TbRef::Frame(f) = r {
            self.frame_kept[f as usize] = true;
            if !self.tb_no_entry.is_empty() {
                return self.tb_entry_made(e, f, r);
            }
        }
        self.tb_entry(e, r)
    }

    /// `tb_ref` past its frame: the entry itself. One bounds check per
    /// list; making room (for the key, or a new entry), rare, goes out of
    /// line.
    #[inline(always)]
    fn tb_entry(&mut self, e: ExcId, r: TbRef) {
        let i = e as usize;
        let key = self.lp.clock.get();
        if let (Some(k), Some(tb)) = (self.tb_keys.get_mut(i), self.tbs.get_mut(i)) {
            // Duplicates only cost memory; checking the last entry keeps a
            // traceback through a million frames linear.
            if tb.last() == Some(&r) {
                *k = key;
                return;
            }
            if tb.len() < tb.capacity() {
                tb.push(r);
                *k = key;
                return;
            }
        }
        self.tb_grow(i, key, r)
    }

    // `tb_ref`'s rare paths, out of line: it runs for every frame an
    // exception passes.
    #[cold]
    #[inline(never)]
    fn tb_entry_made(&mut self, e: ExcId, f: NodeId, r: TbRef) {
        if let Some(i) = self.tb_no_entry.iter().position(|&x| x == (e, f)) {
            self.tb_no_entry.swap_remove(i);
        }
        self.tb_entry(e, r)
    }

    /// `tb_ref`'s entry for exception `i`, after making room for its key
    /// and more (growing them one exception at a time cost a call per new
    /// exception; past what was used they read as no key, NONE, as a
    /// missing one does), or for a new entry in its list.
    #[cold]
    #[inline(never)]
    fn tb_grow(&mut self, i: usize, key: u32, r: TbRef) {
        let want = (i + 1).max(2 * self.tb_keys.len()).max(16);
        if self.tb_keys.len() <= i {
            self.tb_keys.resize(want, NONE);
        }
        // The lists stay exact: the reset empties each one kept.
        self.tb_mut(i as ExcId);
        self.tb_keys[i] = key;
        let tb = &mut self.tbs[i];
        if tb.last() != Some(&r) {
            tb.push(r);
        }
    }

    /// Like `tb_ref`, for what a frame in `e`'s traceback reaches later
    /// through `f_back`: no traceback object is made for it, so the
    /// traceback keeps its place in the collector's list.
    pub fn tb_ref_through_f_back(&mut self, e: ExcId, r: TbRef) {
        let key = self.tb_keys.get(e as usize).copied();
        self.tb_ref(e, r);
        if let Some(k) = key {
            self.tb_keys[e as usize] = k;
        }
    }

    /// `e`'s traceback was replaced, and `old`, what it had, dropped. A
    /// function still running whose frame `old` held is handling `e` (it
    /// caught it, or its `finally` runs): when it re-raises `e`, the frame
    /// joins no traceback again (a re-raise adds no entry), so `e` leaves
    /// it without keeping its locals (checked on 3.11.7, 3.12.1, 3.13.0).
    pub fn tb_entries_lost(&mut self, e: ExcId, old: &[TbRef]) {
        for &r in old {
            if let TbRef::Frame(f) = r
                && !self.fn_done[f as usize]
                && !self.tbs[e as usize].contains(&r)
                && !self.tb_no_entry.contains(&(e, f))
            {
                self.tb_no_entry.push((e, f));
            }
        }
    }

    /// A coroutine function of task `t` finished. CPython 3.12+ clears a
    /// finished frame before unlinking it, so a frame object something
    /// keeps takes its caller as `f_back`. Inside an eager first step the
    /// caller of the task's coroutine is the task factory, whose
    /// `create_task` frame keeps the task in its local `task`, and on into
    /// the creating function's frame, through `gather()`'s own frame when
    /// a gather made the task. Elsewhere the caller of the task's
    /// coroutine is the loop's own frames, which `tb_handle_frames` covers
    /// for the exception that ends a task. Above it, the caller is the
    /// function that awaited this one (through any of asyncio's frames in
    /// between, which are kept the same way): an exception that stopped in
    /// this frame, caught or converted there, keeps the caller's frame and
    /// so its locals (checked with `gc.get_referrers` on 3.12.1 and
    /// 3.13.0; 3.11.7 unlinks first and keeps no `f_back`).
    pub fn frame_finished(&mut self, t: u32, func: NodeId, bottom: bool) {
        if !self.profile.frame_keeps_caller {
            return;
        }
        if !bottom {
            // Not `frame_kept[func]`: inlined into drive's loop, each
            // index's panic location was loaded on every call of drive.
            let kept = match self.frame_kept.get(func as usize) {
                Some(&k) => k,
                None => no_function(func),
            };
            if kept {
                self.caller_kept(t, func);
            }
            return;
        }
        if let Some(&start) = self.eager_stack.last()
            && start.task == t
        {
            self.eager_back(func, start);
        }
    }

    /// Bottom frame `func` of an eager start's task keeps the frame that
    /// started it. Out of line, like `caller_kept`.
    #[inline(never)]
    fn eager_back(&mut self, func: NodeId, start: super::machine::EagerStart) {
        self.frame_back[func as usize] = Some(start);
        if let Some(pf) = start.parent_fn {
            self.fns[func as usize].caller = pf;
            self.frame_kept[pf as usize] = true;
        }
    }

    /// Kept frame `func` keeps its caller's, the function task `t` runs
    /// in now. Out of line, for drive's prologue (see `frame_finished`).
    #[inline(never)]
    fn caller_kept(&mut self, t: u32, func: NodeId) {
        if let Some(caller) = self.innermost_fn(t) {
            self.fns[func as usize].caller = caller;
            self.frame_kept[caller as usize] = true;
        }
    }
}

#[cold]
#[inline(never)]
fn no_function(func: NodeId) -> ! {
    unreachable!("function {func} is not in the program")
}
