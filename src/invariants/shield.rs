//! Shield: cancelling the outer future leaves the inner awaitable running
//! and uncancelled, the inner outcome reaches the awaiter unchanged, and the
//! awaiter itself still sees CancelledError when it is the one cancelled.

use super::Out;
use super::facts::{Facts, is_cancel, same_exc};
use crate::ast::{Kind, NodeId};
use crate::render;
use crate::trace::{Fin, Res, What};

fn is_let_child(f: &Facts, n: NodeId) -> bool {
    matches!(f.parent(n).and_then(|q| f.kind(q)), Some(Kind::Let(_)))
}

pub fn inner_unaffected(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for s in 0..f.p.len() as NodeId {
        let Some(Kind::Shield) = f.kind(s) else {
            continue;
        };
        let Some(&c) = f.children(s).first() else {
            continue;
        };
        if matches!(f.kind(c), Some(Kind::Ref(_))) {
            continue; // a named task can be cancelled by anyone holding the name
        }
        let Some(inner) = f.awaitable_task(c) else {
            continue;
        };
        let Some(count) = f.cancelling(inner) else {
            continue;
        };
        // Every cancel() the inner task can receive without the shield:
        // injected ones, its own cancel-self, the shutdown's, and at most one
        // per task group, timeout or wait_for it runs.
        let mut allowed = 0u32;
        for (i, e) in f.t.events.iter().enumerate() {
            match &e.what {
                What::Inject { task, ret: true } if *task == inner => allowed += 1,
                What::Phase(p) if p == "shutdown" && !f.done_before(inner, i) => allowed += 1,
                What::Start(n) if e.task == Some(inner) => {
                    if matches!(
                        f.kind(*n),
                        Some(
                            Kind::CancelSelf(_)
                                | Kind::TaskGroup(_)
                                | Kind::Timeout(_)
                                | Kind::WaitFor(_)
                        )
                    ) {
                        allowed += 1;
                    }
                }
                _ => {}
            }
        }
        if count > allowed {
            out.push(
                Some(s),
                Some(inner),
                format!(
                    "{} behind shield #{s} ended with cancelling()={count}, but only {allowed} cancel(s) could reach it without passing through the shield",
                    f.task_name(inner)
                ),
            );
        }
    }
}

pub fn outcome_kept(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for s in 0..f.p.len() as NodeId {
        let Some(Kind::Shield) = f.kind(s) else {
            continue;
        };
        if is_let_child(f, s) {
            continue;
        }
        let (Some(start), Some(end), Some(res)) = (f.start(s), f.end(s), f.end_res(s)) else {
            continue;
        };
        let Some(&c) = f.children(s).first() else {
            continue;
        };
        let Some(inner) = f.awaitable_task(c) else {
            continue;
        };
        let by_ref = matches!(f.kind(c), Some(Kind::Ref(_)));
        if f.created(inner)
            .is_none_or(|x| x > end || (by_ref && x > start))
        {
            continue;
        }
        // Its exception left create_task inside shield() itself.
        if f.died_in_constructor(inner) {
            continue;
        }
        let fin = f.fin(inner).filter(|_| f.done_before(inner, end));
        let name = f.task_name(inner);
        let bad = match (res, fin) {
            (Res::Val(v), Some(Fin::Result(w))) => (v != w).then(|| {
                format!(
                    "returned {} but {name} returned {}",
                    render::value(v),
                    render::value(w)
                )
            }),
            (Res::Val(v), other) => Some(format!(
                "returned {} while {name} {}",
                render::value(v),
                other.map_or_else(
                    || "was not done".to_string(),
                    |x| format!("ended {}", render::fin(x))
                )
            )),
            (Res::Raise(x), Some(Fin::Exception(y))) if !is_cancel(x) => {
                (!same_exc(x, y)).then(|| {
                    format!(
                        "raised {} but {name} raised {}",
                        render::exc(x),
                        render::exc(y)
                    )
                })
            }
            (Res::Raise(x), other) if !is_cancel(x) => Some(format!(
                "raised {} while {name} {}",
                render::exc(x),
                other.map_or_else(
                    || "was not done".to_string(),
                    |y| format!("ended {}", render::fin(y))
                )
            )),
            _ => None,
        };
        if let Some(msg) = bad {
            out.push(
                Some(s),
                f.node_ctx[s as usize],
                format!("shield #{s} {msg}"),
            );
        }
    }
}

pub fn outer_cancelled(f: &Facts, out: &mut Out) {
    if !f.undisturbed() {
        return;
    }
    for &r in f.cancel_requests() {
        if !f.parked(r.target, r.at) {
            continue;
        }
        let Some(s) = f.innermost(r.target, r.at) else {
            continue;
        };
        if !matches!(f.kind(s), Some(Kind::Shield))
            || is_let_child(f, s)
            || f.uncancel_may_touch(r.target)
        {
            continue;
        }
        match f.end_res(s) {
            Some(Res::Raise(x)) if is_cancel(x) => {}
            Some(res) => {
                let how = match res {
                    Res::Val(v) => format!("returned {}", render::value(v)),
                    Res::Raise(x) => format!("raised {}", render::exc(x)),
                    Res::Ok => "ended".to_string(),
                };
                out.push(
                    Some(s),
                    Some(r.target),
                    format!(
                        "{} was cancelled while awaiting shield #{s}, but the shield {how}",
                        f.task_name(r.target)
                    ),
                );
            }
            None => {}
        }
    }
}
