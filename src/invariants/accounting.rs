//! Cancel accounting: what `cancel()`, `done()`, `cancelled()`,
//! `cancelling()` and `uncancel()` return, and that a requested cancel is
//! delivered as a CancelledError unless the program swallows it.

use super::Out;
use super::facts::{Facts, is_cancel};
use crate::ast::{Kind, NodeId};
use crate::trace::{Fin, Res, Value, What};

pub fn cancel_return_value(f: &Facts, out: &mut Out) {
    for (i, e) in f.t.events.iter().enumerate() {
        match &e.what {
            What::Inject { task, ret } => {
                if f.done_before(*task, i) {
                    out.push(
                        None,
                        Some(*task),
                        format!(
                            "a cancel was injected into {}, which was already done",
                            f.task_name(*task)
                        ),
                    );
                } else if !ret {
                    out.push(
                        None,
                        Some(*task),
                        format!(
                            "cancel() of pending task {} returned False",
                            f.task_name(*task)
                        ),
                    );
                }
            }
            What::End {
                node,
                res: Res::Val(Value::Bool(got)),
            } => {
                let Some(start) = f.start(*node) else {
                    continue;
                };
                let (want, what) = match f.kind(*node) {
                    Some(Kind::CancelSelf(_)) => (true, "the running task".to_string()),
                    Some(Kind::Cancel(s, _)) => match f.target_task(*s) {
                        Some(u) if f.created(u).is_some_and(|c| c < start) => {
                            let done = f.done_before(u, start);
                            (
                                !done,
                                format!(
                                    "{} ({})",
                                    f.task_name(u),
                                    if done { "done" } else { "not done" }
                                ),
                            )
                        }
                        _ => continue,
                    },
                    _ => continue,
                };
                if *got != want {
                    out.push(
                        Some(*node),
                        e.task,
                        format!("cancel() of {what} returned {got}, expected {want}"),
                    );
                }
            }
            _ => {}
        }
    }
}

pub fn done_query_consistent(f: &Facts, out: &mut Out) {
    for n in 0..f.p.len() as NodeId {
        let (s, cancelled) = match f.kind(n) {
            Some(Kind::Done(s)) => (*s, false),
            Some(Kind::Cancelled(s)) => (*s, true),
            _ => continue,
        };
        let (Some(start), Some(Res::Val(Value::Bool(got)))) = (f.start(n), f.end_res(n)) else {
            continue;
        };
        let Some(u) = f.target_task(s) else { continue };
        if f.created(u).is_none_or(|c| c > start) {
            continue;
        }
        let done = f.done_before(u, start);
        let want = if cancelled {
            done && matches!(f.fin(u), Some(Fin::Cancelled(_)))
        } else {
            done
        };
        if *got != want {
            let q = if cancelled { "cancelled" } else { "done" };
            out.push(
                Some(n),
                f.node_ctx[n as usize],
                format!("{}.{q}() returned {got}, expected {want}", f.task_name(u)),
            );
        }
    }
}

/// A `cancelling()` or `uncancel()` value that disagrees with the count of
/// requests: (event, node, expected, got).
struct Mismatch {
    at: usize,
    node: NodeId,
    want: i64,
    got: i64,
}

/// Replays the cancel requests an unexposed task can receive and compares
/// every `cancelling()`/`uncancel()` it reads (outside timeouts, task
/// groups and wait_for, which add their own balanced requests) and its
/// final count. With `across_groups`, keeps going after a task group exits
/// (3.13 promises the group leaves the count as it found it); otherwise
/// stops there. Returns the mismatches and the event of the first group exit.
fn replay(f: &Facts, task: u32, across_groups: bool) -> (Vec<Mismatch>, Option<usize>) {
    let mut found = Vec::new();
    let mut group_exit = None;
    let mut count: i64 = 0;
    let inside = |i: usize| {
        f.open_nodes(task, i).iter().any(|&n| {
            matches!(
                f.kind(n),
                Some(Kind::Timeout(_) | Kind::TaskGroup(_) | Kind::WaitFor(_))
            )
        })
    };
    let born = f.created(task).unwrap_or(usize::MAX);
    for (i, e) in f.t.events.iter().enumerate().skip(born) {
        if f.done_before(task, i) {
            break;
        }
        match &e.what {
            What::Inject { task: t, ret: true } if *t == task => count += 1,
            What::Phase(p) if p == "shutdown" => count += 1,
            What::End { node, res } => {
                let mine = f.node_ctx.get(*node as usize).copied().flatten() == Some(task);
                let got = match res {
                    Res::Val(Value::Int(v)) => Some(*v),
                    _ => None,
                };
                match f.kind(*node) {
                    Some(Kind::CancelSelf(_))
                        if mine && matches!(res, Res::Val(Value::Bool(true))) =>
                    {
                        count += 1
                    }
                    Some(Kind::Uncancel(None)) if mine => {
                        let Some(v) = got else { continue };
                        if inside(i) {
                            return (found, group_exit);
                        }
                        if v != (count - 1).max(0) {
                            found.push(Mismatch {
                                at: i,
                                node: *node,
                                want: (count - 1).max(0),
                                got: v,
                            });
                        }
                        count = v;
                    }
                    Some(Kind::Cancelling(target)) => {
                        let reads_me = match target {
                            None => mine,
                            Some(s) => f.target_task(*s) == Some(task),
                        };
                        if let (true, Some(v)) = (reads_me, got)
                            && !inside(i)
                            && v != count
                        {
                            found.push(Mismatch {
                                at: i,
                                node: *node,
                                want: count,
                                got: v,
                            });
                        }
                    }
                    Some(Kind::TaskGroup(_)) if mine => {
                        group_exit.get_or_insert(i);
                        if !across_groups {
                            return (found, group_exit);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let (Some(d), Some(c)) = (f.done(task), f.cancelling(task))
        && c as i64 != count
    {
        found.push(Mismatch {
            at: d,
            node: f.task_node[task as usize].unwrap_or(0),
            want: count,
            got: c as i64,
        });
    }
    (found, group_exit)
}

fn report(f: &Facts, out: &mut Out, task: u32, m: &Mismatch) {
    let what = if f.done(task) == Some(m.at) {
        "final cancelling()".to_string()
    } else {
        format!(
            "#{} {}",
            m.node,
            f.kind(m.node).map_or("?", |k| k.keyword())
        )
    };
    out.push(
        Some(m.node),
        Some(task),
        format!(
            "{what} of {} gave {}, but the cancel() and uncancel() calls it received add up to {}",
            f.task_name(task),
            m.got,
            m.want
        ),
    );
}

/// Tasks whose count only they, injections and the shutdown can change.
fn replayable(f: &Facts) -> Vec<u32> {
    if f.recursed || f.escaped {
        return Vec::new();
    }
    (0..f.ntasks as u32)
        .filter(|&t| f.created(t).is_some() && !f.exposed(t))
        .collect()
}

pub fn cancelling_bookkeeping(f: &Facts, out: &mut Out) {
    for task in replayable(f) {
        for m in replay(f, task, false).0 {
            report(f, out, task, &m);
        }
    }
}

pub fn taskgroup_keeps_cancelling(f: &Facts, out: &mut Out) {
    for task in replayable(f) {
        let (found, exit) = replay(f, task, true);
        let Some(exit) = exit else { continue };
        if let Some(m) = found.iter().find(|m| m.at > exit) {
            report(f, out, task, m);
        }
    }
}

pub fn cancel_delivered(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for &r in f.cancel_requests() {
        let x = r.target;
        if f.done_before(x, r.at) {
            continue;
        }
        let finished = f.done(x);
        // The shutdown's loop stops once the tasks it knew of are done; a
        // task made during it, or cancelled late in it, may never run again.
        let late = f
            .shutdown
            .is_some_and(|s| r.at > s || f.created(x).is_some_and(|c| c > s));
        if finished.is_none() && late {
            continue;
        }
        let until = finished.unwrap_or(f.t.events.len());
        if matches!(f.fin(x), Some(Fin::Cancelled(_))) {
            continue;
        }
        let raised = f.task_events[x as usize].iter().any(|&i| {
            i > r.at && matches!(&f.t.events[i].what, What::End { res: Res::Raise(e), .. } if is_cancel(e))
        });
        if raised || f.uncancel_may_touch(x) || f.absorbing_between(x, r.at, until) {
            continue;
        }
        // A running task that finishes without suspending again never gets
        // the CancelledError thrown in; an exception it raises wins.
        let running = f.ctx(r.at) == Some(x)
            || (!f.parked(x, r.at) && f.last_event_before(x, r.at).is_some());
        if running && matches!(f.fin(x), Some(Fin::Exception(_))) {
            continue;
        }
        if matches!(
            f.t.tasks.get(x as usize).map(|t| &t.state),
            Some(crate::trace::State::Destroyed)
        ) {
            continue;
        }
        let how = match (r.node, f.fin(x)) {
            (_, Some(fin)) => format!("it then ended {}", crate::render::fin(fin)),
            _ => "it never finished".to_string(),
        };
        let by = match r.node {
            Some(n) => format!("by #{n}"),
            None => "by injection".to_string(),
        };
        out.push(
            r.node,
            Some(x),
            format!(
                "{} was cancelled {by} before it finished, but no CancelledError reached it; {how}",
                f.task_name(x)
            ),
        );
    }
}
