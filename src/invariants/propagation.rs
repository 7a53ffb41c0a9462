//! Propagation: a cancel reaching a gather, an awaiting task or a wait_for
//! travels on to what it waits for; a TaskGroup child's failure cancels the
//! rest of the group; a group exits after its children with the right
//! ExceptionGroup.

use super::Out;
use super::cancels::CancelReq;
use super::facts::{BodyExit, Facts, Target, is_base_only, is_cancel, same_exc};
use crate::ast::{Kind, NodeId, SpawnMode};
use crate::render;
use crate::trace::{Exc, Fin, Res};

/// The gather node a task parked at `n` is waiting on: a gather statement,
/// or `(await NAME)` of a `let`-bound gather.
fn gather_awaited(f: &Facts, n: NodeId) -> Option<NodeId> {
    match f.kind(n)? {
        Kind::Gather { .. }
            if !matches!(f.parent(n).and_then(|q| f.kind(q)), Some(Kind::Let(_))) =>
        {
            Some(n)
        }
        Kind::Await(s) => match f.target(*s) {
            Target::Let(g) if matches!(f.kind(g), Some(Kind::Gather { .. })) => Some(g),
            _ => None,
        },
        _ => None,
    }
}

/// The children of gather `g` as tasks, or `None` if one is not certainly a task.
fn gather_tasks(f: &Facts, g: NodeId) -> Option<Vec<u32>> {
    f.children(g)
        .into_iter()
        .map(|c| f.awaitable_task(c))
        .collect()
}

/// Whether gather `g`, whose children are `tasks`, is certainly not done
/// just before event `i`: no child has finished in a way that completes it.
fn gather_pending(f: &Facts, g: NodeId, tasks: &[u32], i: usize) -> bool {
    let return_exceptions = matches!(
        f.kind(g),
        Some(Kind::Gather {
            return_exceptions: true
        })
    );
    let all_done = tasks.iter().all(|&t| f.done_before(t, i));
    let failed = tasks
        .iter()
        .any(|&t| f.done_before(t, i) && !matches!(f.fin(t), Some(Fin::Result(_))));
    !tasks.is_empty() && !all_done && (return_exceptions || !failed)
}

fn require_cancelled(
    f: &Facts,
    out: &mut Out,
    children: &[u32],
    i: usize,
    why: &str,
    node: NodeId,
) {
    for &c in children {
        if f.created(c).is_some_and(|x| x < i) && !f.done_before(c, i) && !f.received_cancel(c, i) {
            out.push(
                Some(node),
                Some(c),
                format!(
                    "{why}, but {} (not done then) was never cancelled",
                    f.task_name(c)
                ),
            );
        }
    }
}

/// Cancel requests on tasks parked at a node, from something other than
/// the task itself: `(task, request, node it is parked at)`.
fn parked_cancels(f: &Facts) -> Vec<(u32, CancelReq, NodeId)> {
    f.cancel_requests()
        .iter()
        .copied()
        .filter(|r| f.parked(r.target, r.at))
        .filter_map(|r| f.innermost(r.target, r.at).map(|n| (r.target, r, n)))
        .collect()
}

pub fn gather_cancels_children(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    // (cancel NAME) of a let-bound gather that returned True.
    for r in 0..f.p.len() as NodeId {
        let Some(Kind::Cancel(s, _)) = f.kind(r) else {
            continue;
        };
        let Target::Let(g) = f.target(*s) else {
            continue;
        };
        if !matches!(f.kind(g), Some(Kind::Gather { .. })) {
            continue;
        }
        let (Some(at), Some(Res::Val(crate::trace::Value::Bool(true)))) = (f.end(r), f.end_res(r))
        else {
            continue;
        };
        let tasks: Vec<u32> = f
            .children(g)
            .into_iter()
            .filter_map(|c| f.awaitable_task(c))
            .collect();
        require_cancelled(
            f,
            out,
            &tasks,
            at,
            &format!("gather #{g} was cancelled by #{r}"),
            g,
        );
    }
    // A task cancelled while it awaits a gather cancels the gather.
    for (task, req, n) in parked_cancels(f) {
        let Some(g) = gather_awaited(f, n) else {
            continue;
        };
        let Some(tasks) = gather_tasks(f, g) else {
            continue;
        };
        if gather_pending(f, g, &tasks, req.at) {
            let why = format!(
                "{} was cancelled while awaiting gather #{g}",
                f.task_name(task)
            );
            require_cancelled(f, out, &tasks, req.at, &why, g);
        }
    }
}

pub fn awaited_task_cancelled(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for (task, req, n) in parked_cancels(f) {
        let Some(Kind::Await(s)) = f.kind(n) else {
            continue;
        };
        let Some(u) = f.target_task(*s) else { continue };
        if u != task {
            let why = format!(
                "{} was cancelled while awaiting {} at #{n}",
                f.task_name(task),
                f.task_name(u)
            );
            require_cancelled(f, out, &[u], req.at, &why, n);
        }
    }
}

pub fn wait_for_cancels_inner(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for (task, req, n) in parked_cancels(f) {
        let Some(Kind::WaitFor(_)) = f.kind(n) else {
            continue;
        };
        let Some(inner) = f.children(n).first().and_then(|&c| f.awaitable_task(c)) else {
            continue;
        };
        if inner != task {
            let why = format!("{} was cancelled while in wait_for #{n}", f.task_name(task));
            require_cancelled(f, out, &[inner], req.at, &why, n);
        }
    }
}

/// The tasks created into the task group opened at node `g`.
fn group_children(f: &Facts, g: NodeId) -> Vec<u32> {
    (0..f.ntasks as u32)
        .filter(|&t| {
            f.spawn_node(t).is_some_and(|n| match f.kind(n) {
                Some(Kind::Spawn(_, SpawnMode::In(s))) => f.target(*s) == Target::Group(g),
                _ => false,
            })
        })
        .collect()
}

fn child_errors<'a>(f: &'a Facts, children: &[u32]) -> Vec<(usize, u32, &'a Exc)> {
    let mut errs: Vec<(usize, u32, &Exc)> = children
        .iter()
        .filter_map(|&c| match (f.done(c), f.fin(c)) {
            (Some(d), Some(Fin::Exception(x))) => Some((d, c, &**x)),
            _ => None,
        })
        .collect();
    errs.sort_by_key(|e| e.0);
    errs
}

fn has_base_error(f: &Facts, g: NodeId, errs: &[(usize, u32, &Exc)]) -> bool {
    errs.iter().any(|e| is_base_only(e.2))
        || matches!(f.body_exit(g), BodyExit::Raised(_, x) if is_base_only(x))
}

pub fn taskgroup_failure_cancels(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for g in 0..f.p.len() as NodeId {
        let Some(Kind::TaskGroup(_)) = f.kind(g) else {
            continue;
        };
        let (Some(_), Some(parent)) = (f.start(g), f.node_ctx[g as usize]) else {
            continue;
        };
        let children = group_children(f, g);
        let errs = child_errors(f, &children);
        if has_base_error(f, g, &errs) {
            continue;
        }
        let Some(&(i, failed, x)) = errs.first() else {
            continue;
        };
        // The group's done callback runs at the latest in the next iteration.
        let callback_it = f.it(i).saturating_add(1);
        let exit = f.body_exit(g);
        let from = exit.event().map_or(i, |b| b.min(i));
        let why = format!(
            "{} failed with {} in task group #{g}",
            f.task_name(failed),
            render::exc(x)
        );
        for &c in &children {
            if c == failed || f.done(c).is_some_and(|d| f.it(d) <= callback_it) {
                continue;
            }
            if !f.received_cancel(c, from) {
                out.push(
                    Some(g),
                    Some(c),
                    format!("{why}, but sibling {} was never cancelled", f.task_name(c)),
                );
            }
        }
        // The body, if still running when the callback ran, is cancelled.
        let Some(b) = exit.event() else { continue };
        if f.it(b) <= callback_it
            || f.absorbing_between(parent, i, b)
            || f.uncancel_may_touch(parent)
        {
            continue;
        }
        let saw = f.task_events[parent as usize].iter().any(|&e| {
            e > i && e <= b && matches!(&f.t.events[e].what, crate::trace::What::End { res: Res::Raise(x), .. } if is_cancel(x))
        });
        if !saw {
            out.push(
                Some(g),
                Some(parent),
                format!("{why} while the body of #{g} was running, but no CancelledError reached the body"),
            );
        }
    }
}

pub fn taskgroup_waits_children(f: &Facts, out: &mut Out) {
    // A RecursionError raised by cancel() inside the group's abort leaves
    // __aexit__ early: that is the recursion, not the group, failing.
    if !f.undisturbed() {
        return;
    }
    for g in 0..f.p.len() as NodeId {
        let Some(Kind::TaskGroup(_)) = f.kind(g) else {
            continue;
        };
        let Some(end) = f.end(g) else { continue };
        for c in group_children(f, g) {
            if f.done(c).is_none_or(|d| d > end) {
                out.push(
                    Some(g),
                    Some(c),
                    format!(
                        "task group #{g} exited while its child {} was not done",
                        f.task_name(c)
                    ),
                );
            }
        }
    }
}

pub fn taskgroup_error_group(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for g in 0..f.p.len() as NodeId {
        let Some(Kind::TaskGroup(_)) = f.kind(g) else {
            continue;
        };
        let Some(res) = f.end_res(g) else { continue };
        let errs = child_errors(f, &group_children(f, g));
        if has_base_error(f, g, &errs) {
            continue;
        }
        let mut want: Vec<&Exc> = errs.iter().map(|e| e.2).collect();
        match f.body_exit(g) {
            BodyExit::Raised(_, x) if !is_cancel(x) => want.push(x),
            BodyExit::Unfinished => continue,
            _ => {}
        }
        let got = match res {
            Res::Raise(x) if matches!(&*x.cls, "ExceptionGroup" | "BaseExceptionGroup") => {
                x.group.as_ref()
            }
            _ => None,
        };
        let show = |xs: &[&Exc]| {
            xs.iter()
                .map(|x| render::exc(x))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match got {
            None if !want.is_empty() => out.push(
                Some(g),
                f.node_ctx[g as usize],
                format!(
                    "task group #{g} had errors [{}] but did not raise an ExceptionGroup",
                    show(&want)
                ),
            ),
            Some(members) => {
                let same = members.len() == want.len()
                    && members.iter().zip(&want).all(|(a, b)| same_exc(a, b));
                if !same {
                    let members: Vec<&Exc> = members.iter().collect();
                    out.push(
                        Some(g),
                        f.node_ctx[g as usize],
                        format!(
                            "task group #{g} raised an ExceptionGroup of [{}]; its non-cancel errors were [{}]",
                            show(&members),
                            show(&want)
                        ),
                    );
                }
            }
            None => {}
        }
    }
}
