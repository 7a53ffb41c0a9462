//! Result ordering: which value lands where in what `gather`, `as_completed`
//! and `wait` return, derived from the program (which awaitable is which)
//! and from the `done` events of the tasks behind them.

use super::Out;
use super::facts::Facts;
use crate::ast::{Kind, NodeId};
use crate::render;
use crate::trace::{Fin, Res, Value};

/// The value a gather puts in its list for a child that finished with `fin`,
/// or `None` if the gather cannot have produced a list at all.
fn gathered(fin: &Fin, return_exceptions: bool) -> Option<Value> {
    match fin {
        Fin::Result(v) => Some(v.clone()),
        Fin::Exception(x) if return_exceptions => Some(Value::Obj {
            obj: x.cls.to_string(),
        }),
        Fin::Cancelled(_) if return_exceptions => Some(Value::Obj {
            obj: "CancelledError".into(),
        }),
        _ => None,
    }
}

/// The events at which gather `g` handed a list to someone: its own `end`
/// when it is a statement, or the `end` of each `(await NAME)` of the
/// `let`-bound gather.
fn deliveries(f: &Facts, g: NodeId) -> Vec<(NodeId, usize, &'static str)> {
    let mut out = Vec::new();
    if let Some(Kind::Let(_)) = f.parent(g).and_then(|q| f.kind(q)) {
        for n in 0..f.p.len() as NodeId {
            if let Some(Kind::Await(s)) = f.kind(n)
                && f.target(*s) == super::facts::Target::Let(g)
                && let Some(e) = f.end(n)
            {
                out.push((n, e, "await of the gather"));
            }
        }
    } else if let Some(e) = f.end(g) {
        out.push((g, e, "gather"));
    }
    out
}

pub fn result_order(f: &Facts, out: &mut Out) {
    for g in 0..f.p.len() as NodeId {
        let Some(Kind::Gather { return_exceptions }) = f.kind(g) else {
            continue;
        };
        let children = f.children(g);
        for (at_node, at, what) in deliveries(f, g) {
            let Some(Res::Val(Value::List(vs))) = f.end_res(at_node) else {
                continue;
            };
            if vs.len() != children.len() {
                out.push(
                    Some(at_node),
                    f.ctx(at),
                    format!(
                        "{what} #{at_node} returned {} values for {} awaitables",
                        vs.len(),
                        children.len()
                    ),
                );
                continue;
            }
            for (j, (&c, got)) in children.iter().zip(vs).enumerate() {
                let Some(task) = f.awaitable_task(c) else {
                    continue;
                };
                let name = f.task_name(task);
                let (Some(done), Some(fin)) = (f.done(task), f.fin(task)) else {
                    out.push(Some(c), Some(task), format!("{what} #{at_node} returned a list while {name} (argument {j}) was not done"));
                    continue;
                };
                if done > at {
                    out.push(Some(c), Some(task), format!("{what} #{at_node} returned a list before {name} (argument {j}) was done"));
                    continue;
                }
                match gathered(fin, *return_exceptions) {
                    None => out.push(
                        Some(c),
                        Some(task),
                        format!("{what} #{at_node} returned a list although {name} (argument {j}) ended {}", render::fin(fin)),
                    ),
                    Some(want) if &want != got => out.push(
                        Some(c),
                        Some(task),
                        format!(
                            "{what} #{at_node}: argument {j} ({name}) ended {} but the list holds {} there",
                            render::fin(fin),
                            render::value(got)
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}

/// The distinct tasks behind the `ref` children of `n`, or `None` if some
/// child is not certainly a task.
fn ref_tasks(f: &Facts, n: NodeId) -> Option<Vec<u32>> {
    let mut tasks = Vec::new();
    for c in f.children(n) {
        let Some(Kind::Ref(s)) = f.kind(c) else {
            return None;
        };
        let t = f.target_task(*s)?;
        if !tasks.contains(&t) {
            tasks.push(t);
        }
    }
    Some(tasks)
}

pub fn as_completed_order(f: &Facts, out: &mut Out) {
    for a in 0..f.p.len() as NodeId {
        let Some(Kind::AsCompleted { .. }) = f.kind(a) else {
            continue;
        };
        let (Some(start), Some(end)) = (f.start(a), f.end(a)) else {
            continue;
        };
        let Some(Res::Val(Value::List(vs))) = f.end_res(a) else {
            continue;
        };
        let Some(tasks) = ref_tasks(f, a) else {
            continue;
        };
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut ok = true;
        for &t in &tasks {
            match (f.done(t), f.fin(t)) {
                (Some(d), Some(Fin::Result(v))) if d < end => {
                    if d < start {
                        before.push(v.clone())
                    } else {
                        after.push((d, v.clone()))
                    }
                }
                (_, fin) => {
                    ok = false;
                    let how = fin.map_or_else(
                        || "not done".to_string(),
                        |x| format!("ended {}", render::fin(x)),
                    );
                    out.push(
                        Some(a),
                        Some(t),
                        format!(
                            "as_completed #{a} returned a full list while {} was {how}",
                            f.task_name(t)
                        ),
                    );
                }
            }
        }
        if !ok {
            continue;
        }
        after.sort_by_key(|(d, _)| *d);
        if vs.len() != tasks.len() {
            out.push(
                Some(a),
                f.ctx(end),
                format!(
                    "as_completed #{a} returned {} values for {} tasks",
                    vs.len(),
                    tasks.len()
                ),
            );
            continue;
        }
        // Tasks already done when as_completed starts come first, in set
        // (address) order; the others in the order they completed.
        let (head, tail) = vs.split_at(before.len());
        let mut head_sorted: Vec<String> = head.iter().map(render::value).collect();
        let mut want_head: Vec<String> = before.iter().map(render::value).collect();
        head_sorted.sort();
        want_head.sort();
        let want_tail: Vec<Value> = after.into_iter().map(|(_, v)| v).collect();
        if head_sorted != want_head || tail != want_tail.as_slice() {
            let want: Vec<String> = want_tail.iter().map(render::value).collect();
            out.push(
                Some(a),
                f.ctx(end),
                format!(
                    "as_completed #{a} returned {} but the tasks completed as {{{}}} (already done) then [{}]",
                    render::value(&Value::List(vs.clone())),
                    want_head.join(", "),
                    want.join(", ")
                ),
            );
        }
    }
}

pub fn wait_counts_done(f: &Facts, out: &mut Out) {
    for w in 0..f.p.len() as NodeId {
        let Some(Kind::Wait { .. }) = f.kind(w) else {
            continue;
        };
        let Some(end) = f.end(w) else { continue };
        let Some(Res::Val(Value::Int(n))) = f.end_res(w) else {
            continue;
        };
        let Some(tasks) = ref_tasks(f, w) else {
            continue;
        };
        let done = tasks.iter().filter(|&&t| f.done_before(t, end)).count();
        if *n != done as i64 {
            out.push(
                Some(w),
                f.ctx(end),
                format!("wait #{w} reported {n} done futures but {done} of its tasks were done"),
            );
        }
    }
}
