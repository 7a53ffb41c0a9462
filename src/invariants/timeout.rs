//! Timeouts: `asyncio.timeout` (and the 3.12+ `wait_for` built on it) turns
//! into TimeoutError exactly the cancellation its own expiry caused.
//!
//! Time reasoning: the virtual clock only moves between iterations (and by
//! `block`), and a timer fires in the first iteration whose starting clock
//! reaches its deadline, so an event at time >= deadline in iteration m
//! proves the timer fired by iteration m + 1.

use super::Out;
use super::facts::{BodyExit, Facts, is_cancel};
use crate::ast::{Kind, NodeId, Time};
use crate::trace::{Exc, Fin, Link, Res};

const EPS: f64 = 1e-6;

/// The deadline of a timeout or wait_for node: its start time plus the delay.
fn deadline(f: &Facts, n: NodeId, delay: Option<Time>) -> Option<f64> {
    Some(f.time(f.start(n)?) + delay?.0)
}

fn is_timeout_from_cancel(x: &Exc) -> bool {
    x.cls == "TimeoutError"
        && x.chain
            .first()
            .is_some_and(|(l, c)| *l == Link::Cause && c == "CancelledError")
}

/// For a wait_for node: the event where the awaitable inside ended
/// cancelled, if it did (a task it made or was given, or the coroutine it
/// ran inline in the same task).
fn wait_for_inner_cancelled(f: &Facts, w: NodeId) -> Option<usize> {
    let c = *f.children(w).first()?;
    if let Some(inner) = f.awaitable_task(c) {
        return matches!(f.fin(inner), Some(Fin::Cancelled(_)))
            .then(|| f.done(inner))
            .flatten();
    }
    match f.kind(c)? {
        Kind::Do => match f.body_exit(c) {
            BodyExit::Raised(i, x) if is_cancel(x) => Some(i),
            _ => None,
        },
        _ => match f.end_res(c)? {
            Res::Raise(x) if is_cancel(x) => f.end(c),
            _ => None,
        },
    }
}

pub fn converts_own_cancel(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for n in 0..f.p.len() as NodeId {
        let (delay, what) = match f.kind(n) {
            Some(Kind::Timeout(d)) => (*d, "timeout"),
            Some(Kind::WaitFor(d)) => (*d, "wait_for"),
            _ => continue,
        };
        let (Some(start), Some(Res::Raise(x)), Some(task)) =
            (f.start(n), f.end_res(n), f.node_ctx[n as usize])
        else {
            continue;
        };
        // The cancellation it converted ended the body here.
        let inner_end = match f.kind(n) {
            Some(Kind::Timeout(_)) => match f.body_exit(n) {
                BodyExit::Raised(i, y) if is_cancel(y) && x.cls == "TimeoutError" => Some(i),
                _ => None,
            },
            _ if is_timeout_from_cancel(x) => wait_for_inner_cancelled(f, n),
            _ => None,
        };
        let Some(b) = inner_end else { continue };
        match deadline(f, n, delay) {
            None => out.push(
                Some(n),
                Some(task),
                format!("{what} #{n} has no deadline but raised TimeoutError"),
            ),
            Some(d) if f.time(b) < d - EPS => out.push(
                Some(n),
                Some(task),
                format!(
                    "{what} #{n} raised TimeoutError at {} before its deadline {d}",
                    f.time(b)
                ),
            ),
            _ => {}
        }
        if f.uncancel_may_touch(task) {
            continue;
        }
        let end = f.end(n).unwrap_or(b);
        if let Some(r) = f
            .cancel_requests()
            .iter()
            .find(|r| r.target == task && r.at > start && r.at < end)
        {
            let by = r.node.map_or_else(
                || "an injected cancel".to_string(),
                |c| format!("the cancel at #{c}"),
            );
            out.push(
                Some(n),
                Some(task),
                format!(
                    "{what} #{n} raised TimeoutError although {by} also cancelled {} inside it",
                    f.task_name(task)
                ),
            );
        }
    }
}

/// Whether something other than a timeout may cancel its task `task`
/// between events `lo` and `hi`: a holder of its name, an injection, its
/// own cancel-self, the shutdown, an enclosing task group or an enclosing
/// timeout due before `hi`. (A task group inside the body is no excuse: it
/// takes back the requests it makes, except before 3.13, which is the
/// known bug `TASKGROUP_LEAKS_CANCEL`.)
fn other_cancels(f: &Facts, task: u32, lo: usize, hi: usize) -> bool {
    if f.exposed(task) || f.shutdown.is_some_and(|s| s > lo && s < hi) {
        return true;
    }
    if f.cancel_requests()
        .iter()
        .any(|r| r.target == task && r.at > lo && r.at < hi)
    {
        return true;
    }
    let t_hi = f.time(hi);

    f.open_nodes(task, lo).into_iter().any(|m| match f.kind(m) {
        Some(Kind::TaskGroup(_)) => true,
        Some(Kind::Timeout(d) | Kind::WaitFor(d)) => {
            deadline(f, m, *d).is_some_and(|dl| dl <= t_hi + EPS)
        }
        _ => false,
    })
}

/// Whether timeout `n` (deadline `dl`, task `task`) surely fired between
/// events `start` and `b` while its task was inside the body: an event at
/// or past the deadline lies two iterations before `b` (so the timer ran
/// in an earlier iteration), or a `sleep` of the body directly under `n`
/// was cut short by a CancelledError at or past the deadline. Only the
/// task's `cancel()` cancels a sleep's future, and `other_cancels` has
/// ruled out every other caller.
fn fired(f: &Facts, n: NodeId, task: u32, start: usize, b: usize, dl: f64) -> bool {
    if (start..=b).any(|e| f.time(e) >= dl && f.it(e).saturating_add(2) <= f.it(b)) {
        return true;
    }
    f.task_starts[task as usize].iter().any(|&(s, m)| {
        let Some(Kind::Sleep(d)) = f.kind(m) else {
            return false;
        };
        let (Some(e), Some(Res::Raise(x))) = (f.end(m), f.end_res(m)) else {
            return false;
        };
        let direct = {
            let mut q = f.parent(m);
            loop {
                match q {
                    Some(q2) if q2 == n => break true,
                    Some(q2)
                        if matches!(
                            f.kind(q2),
                            Some(
                                Kind::Timeout(_)
                                    | Kind::TaskGroup(_)
                                    | Kind::WaitFor(_)
                                    | Kind::Spawn(..)
                            )
                        ) =>
                    {
                        break false;
                    }
                    Some(q2) => q = f.parent(q2),
                    None => break false,
                }
            }
        };
        direct
            && s > start
            && e <= b
            && is_cancel(x)
            && f.time(e) >= dl
            && f.time(e) < f.time(s) + d.0 - EPS
    })
}

pub fn expiry_converts(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for n in 0..f.p.len() as NodeId {
        let Some(Kind::Timeout(delay)) = f.kind(n) else {
            continue;
        };
        let (Some(start), Some(res), Some(task)) =
            (f.start(n), f.end_res(n), f.node_ctx[n as usize])
        else {
            continue;
        };
        let Some(dl) = deadline(f, n, *delay) else {
            continue;
        };
        let BodyExit::Raised(b, y) = f.body_exit(n) else {
            continue;
        };
        if !is_cancel(y) || other_cancels(f, task, start, b) {
            continue;
        }
        if !fired(f, n, task, start, b, dl) {
            continue;
        }
        let ok = matches!(res, Res::Raise(x) if x.cls == "TimeoutError");
        if !ok {
            let how = match res {
                Res::Raise(x) => format!("raised {}", crate::render::exc(x)),
                _ => "ended normally".to_string(),
            };
            out.push(
                Some(n),
                Some(task),
                format!("timeout #{n} expired (deadline {dl}) and its body ended in CancelledError, but it {how} instead of TimeoutError"),
            );
        }
    }
}
