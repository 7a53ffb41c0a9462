//! Weak-reference retention: the loop holds tasks only weakly, so a task
//! lives exactly as long as something strong holds it. A task held by a
//! live frame, a task group or the background set survives; an unreachable
//! pending one is collected and reported; a collected one is reported.

use super::Out;
use super::facts::{Bind, Facts, Target};
use crate::ast::{Kind, NodeId, SpawnMode, Sym};
use crate::trace::{State, What};

const DESTROYED: &str = "Task was destroyed but it is pending!";

/// `(event, task)` of every "destroyed but pending" report naming a task.
fn destroyed_reports(f: &Facts) -> Vec<(usize, u32)> {
    f.t.events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.what {
            What::Handler {
                msg, obj: Some(o), ..
            } if msg == DESTROYED => f.task_named(o).map(|t| (i, t)),
            _ => None,
        })
        .collect()
}

/// Whether node `n` is a statement of main's own body, so a name it binds
/// is a local of main's frame (try, timeout and task group bodies are part
/// of the same frame).
fn in_main_frame(f: &Facts, n: NodeId) -> bool {
    let mut c = n;
    while let Some(q) = f.parent(c) {
        match f.kind(q) {
            Some(Kind::Main) => return true,
            Some(
                Kind::Try | Kind::Except(_) | Kind::Finally | Kind::Timeout(_) | Kind::TaskGroup(_),
            ) => c = q,
            _ => return false,
        }
    }
    false
}

fn forgotten(f: &Facts, s: Sym) -> bool {
    f.p.nodes.iter().any(|x| x.kind == Kind::Forget(s))
}

/// Why `task` is strongly held while main runs, if it is: a local of main's
/// frame, or a child of a task group that main runs.
fn held_by_main(f: &Facts, task: u32) -> Option<String> {
    let n = f.spawn_node(task)?;
    match f.kind(n)? {
        Kind::Spawn(s, SpawnMode::Bind) => {
            let unique = f.binding(*s) == Bind::Unique(n);
            (unique && in_main_frame(f, n) && !forgotten(f, *s))
                .then(|| format!("main's local `{}`", f.p.name(*s)))
        }
        Kind::Spawn(_, SpawnMode::In(g)) => match f.target(*g) {
            Target::Group(tg) if f.node_ctx.get(tg as usize).copied().flatten() == Some(0) => {
                Some(format!("task group #{tg}, which main runs"))
            }
            _ => None,
        },
        _ => None,
    }
}

pub fn strong_ref_retained(f: &Facts, out: &mut Out) {
    // Main's frame lives until main is done; at the final collection
    // everything of the run is garbage.
    let main_done = f
        .done(0)
        .unwrap_or(usize::MAX)
        .min(f.collect.unwrap_or(usize::MAX));
    for (i, task) in destroyed_reports(f) {
        if i > main_done {
            continue;
        }
        if let Some(holder) = held_by_main(f, task) {
            out.push(
                f.task_node[task as usize],
                Some(task),
                format!(
                    "{} was collected while pending although {holder} held it",
                    f.task_name(task)
                ),
            );
        }
    }
}

fn is_keep(f: &Facts, task: u32) -> bool {
    f.spawn_node(task)
        .is_some_and(|n| matches!(f.kind(n), Some(Kind::Spawn(_, SpawnMode::Keep))))
}

pub fn background_set_retains(f: &Facts, out: &mut Out) {
    // The set is a global of the program: it is dropped with everything else
    // when the final collection starts.
    let end = f.collect.unwrap_or(usize::MAX);
    for (i, task) in destroyed_reports(f) {
        if is_keep(f, task) && i < end {
            out.push(
                f.task_node[task as usize],
                Some(task),
                format!(
                    "{} was collected while pending although the background set held it",
                    f.task_name(task)
                ),
            );
        }
    }
    if !f.undisturbed() {
        return;
    }
    for task in 0..f.ntasks as u32 {
        let late = f
            .shutdown
            .is_some_and(|s| f.created(task).is_some_and(|c| c > s));
        // A task that died in its constructor never joined the set.
        if is_keep(f, task) && !late && f.done(task).is_none() && !f.died_in_constructor(task) {
            out.push(
                f.task_node[task as usize],
                Some(task),
                format!(
                    "{} from the background set never finished",
                    f.task_name(task)
                ),
            );
        }
    }
}

pub fn destroyed_is_reported(f: &Facts, out: &mut Out) {
    let reports = destroyed_reports(f);
    for &(i, task) in &reports {
        if f.done_before(task, i) {
            out.push(
                None,
                Some(task),
                format!(
                    "{} was reported destroyed while pending, but it was done",
                    f.task_name(task)
                ),
            );
        }
    }
    let before_collect = f.collect.unwrap_or(usize::MAX);
    for (k, x) in f.t.tasks.iter().enumerate() {
        let task = k as u32;
        if x.state != State::Destroyed
            || f.task_named(&x.name) != Some(task)
            || f.died_in_constructor(task)
        {
            continue;
        }
        // gather() turns off the report for the tasks it makes from coroutines.
        let node = f.task_node.get(k).copied().flatten();
        let of_gather = node
            .and_then(|n| f.parent(n))
            .is_some_and(|q| matches!(f.kind(q), Some(Kind::Gather { .. })));
        if f.task_is_aw[k] && of_gather {
            continue;
        }
        if !reports
            .iter()
            .any(|&(i, t)| t == task && i < before_collect)
        {
            out.push(
                node,
                Some(task),
                format!(
                    "{} was collected while pending but nothing reported it",
                    x.name
                ),
            );
        }
    }
}

/// Whether `w`'s body can hold nothing that keeps it reachable once it
/// parks on a future of its own: no timers, callbacks, child tasks or
/// combinators.
fn plain_body(f: &Facts, w: NodeId) -> bool {
    (w + 1..f.p.end(w)).all(|n| {
        matches!(
            f.kind(n),
            Some(
                Kind::Future(_)
                    | Kind::Await(_)
                    | Kind::Return(_)
                    | Kind::Raise(..)
                    | Kind::Try
                    | Kind::Except(_)
                    | Kind::Finally
                    | Kind::Reraise
                    | Kind::Block(_)
                    | Kind::Done(_)
                    | Kind::Cancelled(_)
                    | Kind::Cancelling(None)
                    | Kind::Do
            )
        )
    })
}

/// Whether every mention of `s` in the program lies inside node `w`.
fn private_name(f: &Facts, s: Sym, w: NodeId) -> bool {
    let mut syms = Vec::new();
    (0..f.p.len() as NodeId).all(|n| {
        syms.clear();
        f.p.kind(n).syms(&mut syms);
        !syms.contains(&s) || (n > w && n < f.p.end(w))
    })
}

pub fn unreferenced_pending_collected(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    let reports = destroyed_reports(f);
    for g in 0..f.p.len() as NodeId {
        let (Some(Kind::Gc), Some(gs), Some(ge)) = (f.kind(g), f.start(g), f.end(g)) else {
            continue;
        };
        for w in 0..f.ntasks as u32 {
            let Some(wn) = f.spawn_node(w) else { continue };
            if !matches!(f.kind(wn), Some(Kind::Spawn(_, SpawnMode::Weak))) || !plain_body(f, wn) {
                continue;
            }
            if !f.parked(w, gs)
                || f.cancel_requests()
                    .iter()
                    .any(|r| r.target == w && r.at < gs)
            {
                continue;
            }
            let Some(Kind::Await(s)) = f.innermost(w, gs).and_then(|n| f.kind(n)) else {
                continue;
            };
            let Bind::Unique(fut) = f.binding(*s) else {
                continue;
            };
            if !matches!(f.kind(fut), Some(Kind::Future(_))) || !private_name(f, *s, wn) {
                continue;
            }
            if !reports.iter().any(|&(i, t)| t == w && i > gs && i < ge) {
                out.push(
                    Some(g),
                    Some(w),
                    format!(
                        "gc.collect() at #{g} left {} alive, though only its own future `{}` referred to it",
                        f.task_name(w),
                        f.p.name(*s)
                    ),
                );
            }
        }
    }
}
