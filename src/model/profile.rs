//! One struct of named flags per CPython version: every place where the
//! asyncio (and interpreter) behaviour of 3.11.7, 3.12.1 and 3.13.0
//! differs in a way a program can observe. tests/model_profiles.rs holds,
//! for each flag, a program on which the versions really differ.
//!
//! Differences checked and found unobservable in the language (so not
//! flags): 3.13's `min(max(0, when - now), MAX)` select timeout (same f64
//! as 3.12's clamping), the 3.13 `as_completed` iterator class (registers
//! its callbacks at the same moment for `[await f for f in ...]`), 3.13's
//! `coro.close()` of a coroutine TaskGroup refuses (never started, so no
//! events), `issubclass(CancelledError)` tests in 3.13 (the language has
//! no CancelledError subclasses), and the 3.11/3.12 order of
//! `add_done_callback`/`_tasks.add` in `TaskGroup.create_task` (3.12's
//! done check only matters for eager tasks, which 3.11 lacks).

/// The behaviour of one CPython version (plus the `+eager` variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub major: u32,
    pub minor: u32,
    /// `+eager`: `eager_task_factory` tasks run their first step inside
    /// `create_task` (3.12+).
    pub eager: bool,
    /// 3.12+: `gather` completes synchronously for children that are
    /// already done (`done_futs`), instead of through `add_done_callback`.
    pub gather_sync_done: bool,
    /// 3.12+: `wait_for` is `async with timeout(...)` around an inline
    /// await; 3.11 wraps a coroutine in a task and waits on a waiter
    /// future with its own timer.
    pub wait_for_via_timeout: bool,
    /// 3.13: `uncancel()` reaching 0 clears `_must_cancel` (takes back an
    /// undelivered cancel).
    pub uncancel_clears_must_cancel: bool,
    /// 3.13: `TaskGroup.__aexit__` uncancels the parent after waiting for
    /// the children (not before), and re-cancels a parent that is still
    /// being cancelled when it raises the group.
    pub taskgroup_313_exit: bool,
    /// 3.13: `Timeout.__aexit__` inserts a TimeoutError into the context
    /// chain of a non-CancelledError exception leaving an expired block.
    pub timeout_313_exit: bool,
    /// 3.12+: a finished coroutine frame kept by a traceback keeps its
    /// caller (`f_back`): the eval loop clears generator frames before
    /// unlinking them (3.11 unlinks first). A task's exception then reaches
    /// the loop's frames and `run_until_complete`'s future: a reference
    /// cycle, so "exception was never retrieved" waits for `gc.collect()`.
    pub frame_keeps_caller: bool,
    /// 3.11: a coroutine frame awaiting another coroutine runs it through
    /// `SEND` as a C call (3.12 pushes the awaited frame inline), so the
    /// whole chain of the running task executes with no saved stack
    /// pointer, and the collector traverses none of those frames' locals:
    /// what they hold counts as referred to from outside.
    pub awaiting_frames_execute: bool,
    /// 3.11: `task_wakeup` gets the error of a future that is not exactly
    /// a `Future` or `Task` (gather's `_GatheringFuture`) by calling its
    /// `result()` and fetching (type, value, traceback); it holds that
    /// traceback until the step it starts returns, even once another
    /// `result()` has given the exception a new one. 3.12 fetches only
    /// the exception.
    pub wakeup_holds_traceback: bool,
}

impl Profile {
    /// The profile for CPython `major.minor`, if the model has one.
    pub fn new(major: u32, minor: u32, eager: bool) -> Result<Profile, String> {
        let v = (major, minor);
        if !(v == (3, 11) || v == (3, 12) || v == (3, 13)) {
            return Err(format!(
                "the model has profiles for 3.11, 3.12 and 3.13, not {major}.{minor}"
            ));
        }
        if eager && v < (3, 12) {
            return Err(format!(
                "eager tasks need 3.12 or later, not {major}.{minor}"
            ));
        }
        let ge12 = v >= (3, 12);
        let ge13 = v >= (3, 13);
        Ok(Profile {
            major,
            minor,
            eager,
            gather_sync_done: ge12,
            wait_for_via_timeout: ge12,
            uncancel_clears_must_cancel: ge13,
            taskgroup_313_exit: ge13,
            timeout_313_exit: ge13,
            frame_keeps_caller: ge12,
            awaiting_frames_execute: !ge12,
            wakeup_holds_traceback: !ge12,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "reference model, CPython {}.{} profile{}",
            self.major,
            self.minor,
            if self.eager { " with eager tasks" } else { "" }
        )
    }
}
