//! Lifecycle and termination: a run ends with an outcome, its records of
//! tasks and statements are coherent (nothing runs in a task outside its
//! life, a statement runs at most once), and every task exception is either
//! retrieved or reported when the task is collected.

use super::Out;
use super::facts::{Facts, is_base_only, same_exc, same_fin_later};
use crate::ast::{Kind, NodeId, SpawnMode};
use crate::render;
use crate::trace::{Fin, Outcome, Res, State, What};

const NEVER_RETRIEVED: &str = "Task exception was never retrieved";

pub fn run_terminates(f: &Facts, out: &mut Out) {
    let collects =
        f.t.events
            .iter()
            .filter(|e| e.what == What::Phase("collect".into()))
            .count();
    if collects != 1 {
        out.push(
            None,
            None,
            format!("the run has {collects} final collections instead of one"),
        );
    }
    let loop_end = f.shutdown.or(f.collect).unwrap_or(f.t.events.len());
    match &f.t.outcome {
        Outcome::Main(fin) => match (f.done(0), f.fin(0)) {
            (Some(d), Some(got)) if d < loop_end => {
                if !same_fin_later(got, fin) {
                    out.push(
                        None,
                        Some(0),
                        format!(
                            "the outcome says main {} but main ended {}",
                            render::fin(fin),
                            render::fin(got)
                        ),
                    );
                }
            }
            _ => out.push(
                None,
                Some(0),
                format!(
                    "the outcome says main {} but main never finished",
                    render::fin(fin)
                ),
            ),
        },
        Outcome::Deadlock(ws) => {
            if f.done_before(0, loop_end) {
                out.push(
                    None,
                    Some(0),
                    "a deadlock was reported after main finished".into(),
                );
            }
            if !ws.iter().any(|w| w.task == 0) {
                out.push(
                    None,
                    Some(0),
                    "the deadlock does not list main as pending".into(),
                );
            }
            for (k, w) in ws.iter().enumerate() {
                if f.created(w.task).is_none_or(|c| c > loop_end) || f.done_before(w.task, loop_end)
                {
                    out.push(
                        None,
                        Some(w.task),
                        format!(
                            "the deadlock lists {}, which was not pending",
                            f.task_name(w.task)
                        ),
                    );
                }
                if ws[..k].iter().any(|v| v.task == w.task) {
                    out.push(
                        None,
                        Some(w.task),
                        format!("the deadlock lists {} twice", f.task_name(w.task)),
                    );
                }
            }
        }
        _ => {}
    }
    if let Some(c) = f.collect {
        for e in &f.t.events[c + 1..] {
            if matches!(
                e.what,
                What::Create { .. } | What::Done { .. } | What::Inject { .. } | What::Phase(_)
            ) {
                out.push(
                    None,
                    e.task,
                    "something was scheduled after the final collection".into(),
                );
                break;
            }
        }
    }
    if !f.undisturbed() {
        return;
    }
    for (k, x) in f.t.tasks.iter().enumerate() {
        let late = f
            .shutdown
            .is_some_and(|s| f.created(k as u32).is_some_and(|c| c > s));
        if x.state == State::Pending && !late {
            out.push(
                f.task_node.get(k).copied().flatten(),
                Some(k as u32),
                format!("{} was left pending after the shutdown", x.name),
            );
        }
    }
}

pub fn no_event_after_done(f: &Facts, out: &mut Out) {
    let mut reported = vec![false; f.ntasks];
    for (i, e) in f.t.events.iter().enumerate() {
        let Some(task) = e.task else { continue };
        let k = task as usize;
        if k >= f.ntasks {
            out.push(
                None,
                Some(task),
                format!("event {i} runs in task {task}, which was never created"),
            );
            return;
        }
        if reported[k] {
            continue;
        }
        if f.created(task).is_none_or(|c| c > i) {
            reported[k] = true;
            out.push(
                None,
                Some(task),
                format!(
                    "event {i} runs in {} before it was created",
                    f.task_name(task)
                ),
            );
        } else if f.done_before(task, i) {
            reported[k] = true;
            let node = match &e.what {
                What::Start(n) | What::End { node: n, .. } => Some(*n),
                _ => None,
            };
            out.push(
                node,
                Some(task),
                format!("event {i} runs in {} after it was done", f.task_name(task)),
            );
        }
    }
}

pub fn node_runs_once(f: &Facts, out: &mut Out) {
    let n = f.p.len();
    let mut starts = vec![0u32; n];
    let mut ends = vec![0u32; n];
    for (i, e) in f.t.events.iter().enumerate() {
        let (node, is_start) = match &e.what {
            What::Start(k) => (*k, true),
            What::End { node, .. } => (*node, false),
            _ => continue,
        };
        let k = node as usize;
        if k >= n {
            out.push(
                None,
                e.task,
                format!("event {i} names node #{node}, which the program does not have"),
            );
            return;
        }
        if is_start {
            starts[k] += 1;
            if starts[k] == 2 {
                out.push(Some(node), e.task, format!("#{node} started twice"));
            }
            continue;
        }
        ends[k] += 1;
        if ends[k] == 2 {
            out.push(Some(node), e.task, format!("#{node} ended twice"));
        }
        let Some(s) = f.start(node).filter(|&s| s < i) else {
            out.push(
                Some(node),
                e.task,
                format!("#{node} ended without starting"),
            );
            continue;
        };
        let closed_by_gc =
            matches!(&e.what, What::End { res: Res::Raise(x), .. } if x.cls == "GeneratorExit");
        let owner = f.ctx(s);
        let owner_finished = owner.is_none_or(|t| {
            matches!(
                f.t.tasks.get(t as usize).map(|x| &x.state),
                Some(State::Done(_))
            )
        });
        let after_collect = f.collect.is_some_and(|c| i > c);
        if e.task != owner && !closed_by_gc && owner_finished && !after_collect {
            let name =
                |t: Option<u32>| t.map_or_else(|| "a callback".to_string(), |t| f.task_name(t));
            out.push(
                Some(node),
                e.task,
                format!(
                    "#{node} started in {} but ended in {}",
                    name(owner),
                    name(e.task)
                ),
            );
        }
    }
}

pub fn task_records_agree(f: &Facts, out: &mut Out) {
    let mut creates = 0u32;
    let mut dones = vec![0u32; f.ntasks];
    for e in &f.t.events {
        match &e.what {
            What::Create { task, name, .. } => {
                if *task != creates {
                    out.push(
                        None,
                        Some(*task),
                        format!("task {task} ({name}) was created as the task number {creates}"),
                    );
                }
                if f.t
                    .tasks
                    .get(*task as usize)
                    .is_some_and(|x| &x.name != name)
                {
                    out.push(
                        None,
                        Some(*task),
                        format!(
                            "task {task} was created as {name} but is listed under another name"
                        ),
                    );
                }
                creates += 1;
            }
            What::Done { task, .. } => {
                if let Some(d) = dones.get_mut(*task as usize) {
                    *d += 1;
                    if *d == 2 {
                        out.push(
                            None,
                            Some(*task),
                            format!("{} finished twice", f.task_name(*task)),
                        );
                    }
                } else {
                    out.push(
                        None,
                        Some(*task),
                        format!("task {task} finished without being created"),
                    );
                }
            }
            What::Inject { task, .. } if f.created(*task).is_none() => {
                out.push(
                    None,
                    Some(*task),
                    format!("a cancel was injected into task {task}, which does not exist"),
                );
            }
            _ => {}
        }
    }
    if creates as usize != f.t.tasks.len() {
        out.push(
            None,
            None,
            format!(
                "{creates} tasks were created but {} are listed",
                f.t.tasks.len()
            ),
        );
    }
    for (k, x) in f.t.tasks.iter().enumerate() {
        let task = k as u32;
        match (&x.state, f.fin(task)) {
            (State::Done(want), Some(got)) if !same_fin_later(got, want) => out.push(
                None,
                Some(task),
                format!(
                    "{} finished {} but is listed as {}",
                    x.name,
                    render::fin(got),
                    render::fin(want)
                ),
            ),
            (State::Done(_), None) => out.push(
                None,
                Some(task),
                format!("{} is listed as done but never finished", x.name),
            ),
            (State::Pending | State::Destroyed, Some(got)) => out.push(
                None,
                Some(task),
                format!(
                    "{} finished {} but is listed as not done",
                    x.name,
                    render::fin(got)
                ),
            ),
            _ => {}
        }
    }
}

/// Whether nothing in the program can retrieve the exception of the task
/// made by spawn node `n`: it is fire-and-forget, or its name is never
/// awaited, passed, cancelled (cancel() of a done task silences the report)
/// or uncancelled. Background-set tasks are left out: the harness's set may
/// still hold a task whose discard callback had no iteration left to run.
fn unretrievable(f: &Facts, n: NodeId) -> bool {
    match f.kind(n) {
        Some(Kind::Spawn(_, SpawnMode::Weak)) => true,
        Some(Kind::Spawn(s, SpawnMode::Bind)) => !f.p.nodes.iter().any(|x| match &x.kind {
            Kind::Await(y) | Kind::Cancel(y, _) | Kind::Ref(y) | Kind::Uncancel(Some(y)) => y == s,
            _ => false,
        }),
        _ => false,
    }
}

pub fn exception_reported(f: &Facts, out: &mut Out) {
    let mut reports: Vec<(usize, u32)> = Vec::new();
    for (i, e) in f.t.events.iter().enumerate() {
        let What::Handler {
            msg,
            obj: Some(o),
            exc,
        } = &e.what
        else {
            continue;
        };
        if msg != NEVER_RETRIEVED {
            continue;
        }
        let Some(task) = f.task_named(o) else {
            continue;
        };
        if f.died_in_constructor(task) {
            continue;
        }
        match (f.done(task), f.fin(task), exc) {
            (Some(d), Some(Fin::Exception(x)), Some(y)) if d < i => {
                if !same_exc(x, y) {
                    out.push(
                        None,
                        Some(task),
                        format!(
                            "{} raised {} but was reported for {}",
                            o,
                            render::exc(x),
                            render::exc(y)
                        ),
                    );
                }
            }
            _ => out.push(
                None,
                Some(task),
                format!("{o} was reported for an unretrieved exception it did not have"),
            ),
        }
        if reports.iter().any(|r| r.1 == task) {
            out.push(
                None,
                Some(task),
                format!("{o}'s exception was reported twice"),
            );
        }
        reports.push((i, task));
    }
    if !f.undisturbed() {
        return;
    }
    for task in 0..f.ntasks as u32 {
        let (Some(d), Some(Fin::Exception(x)), Some(n)) =
            (f.done(task), f.fin(task), f.spawn_node(task))
        else {
            continue;
        };
        if is_base_only(x) || f.shutdown.is_some_and(|s| d > s) || !unretrievable(f, n) {
            continue;
        }
        // A task collected while pending runs its finalizer then; if the
        // collection resurrects it and it later fails, Python does not run
        // the finalizer again (PEP 442), so nothing can report it.
        let finalized = f.t.events[..d].iter().any(|e| {
            matches!(&e.what, What::Handler { msg, obj: Some(o), .. }
                if msg == "Task was destroyed but it is pending!" && f.task_named(o) == Some(task))
        });
        if finalized {
            continue;
        }
        if !reports.iter().any(|&(i, t)| t == task && i > d) {
            out.push(
                Some(n),
                Some(task),
                format!(
                    "{} raised {}, which nothing could retrieve, but it was never reported",
                    f.task_name(task),
                    render::exc(x)
                ),
            );
        }
    }
}
