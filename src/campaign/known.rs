//! Known gaps of the reference model: differences between a model trace and
//! its CPython's that are expected today, so a campaign keeps them apart
//! from new divergences instead of letting them drown those. Two kinds:
//!
//! - `finalization`: the traces agree once what finalizers produce is left
//!   out. When refcounting or the collector frees an object, and so when
//!   "Task was destroyed" or "exception was never retrieved" is reported, is
//!   the part of the model not yet exact in every case (issue 3).
//! - `recursion-depth`: CPython raised RecursionError. How deep
//!   `Task.cancel` got on an await cycle, and so what the program observes
//!   afterwards, depends on the interpreter's stack (docs/TRACE.md). What
//!   came before cannot depend on it: the traces must agree up to and
//!   including the first event that shows the RecursionError.
//!
//! The differential suite (properties/differential.rs) counts programs by
//! the same rules.

use crate::trace::{Res, Trace, What};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gap {
    Finalization,
    RecursionDepth,
}

impl Gap {
    /// The prefix of a known gap's signature.
    pub fn name(self) -> &'static str {
        match self {
            Gap::Finalization => "finalization",
            Gap::RecursionDepth => "recursion-depth",
        }
    }
}

/// A RecursionError anywhere in the trace.
pub fn recursion(t: &Trace) -> bool {
    format!("{t:?}").contains("RecursionError")
}

/// The trace without what finalizers produce: loop exception-handler
/// events, ends by GeneratorExit (coroutines closed by the collector),
/// everything from the final collection on, and the task table.
pub fn strip_finalization(t: &Trace) -> (Vec<(u32, Option<u32>, String)>, String) {
    let mut out = Vec::new();
    for e in &t.events {
        if let What::Phase(p) = &e.what
            && p == "collect"
        {
            break;
        }
        match &e.what {
            What::Handler { .. } => continue,
            What::End {
                res: Res::Raise(x), ..
            } if x.cls == "GeneratorExit" => continue,
            _ => {}
        }
        out.push((e.it, e.task, format!("{:?}", e.what)));
    }
    (out, format!("{:?}", t.outcome))
}

/// The index of the first event that shows a RecursionError.
fn first_recursion(t: &Trace) -> Option<usize> {
    t.events
        .iter()
        .position(|e| format!("{:?}", e.what).contains("RecursionError"))
}

/// Whether the two traces agree up to and including the first event,
/// in either, that shows a RecursionError: whether it is raised at all,
/// where, and chained to what, does not depend on how deep it got.
fn agree_until_recursion(model: &Trace, cpython: &Trace) -> bool {
    let first = match (first_recursion(model), first_recursion(cpython)) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(usize::MAX),
    };
    let n = first.saturating_add(1);
    model
        .events
        .iter()
        .take(n)
        .eq(cpython.events.iter().take(n))
}

/// Which known gap explains how a model trace differs from its CPython's,
/// if one does.
pub fn classify(model: &Trace, cpython: &Trace) -> Option<Gap> {
    if recursion(cpython) && agree_until_recursion(model, cpython) {
        Some(Gap::RecursionDepth)
    } else if strip_finalization(model) == strip_finalization(cpython) {
        Some(Gap::Finalization)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Event, Fin, Outcome, Value};

    fn trace(whats: Vec<What>) -> Trace {
        Trace {
            events: whats
                .into_iter()
                .map(|what| Event {
                    t: 0.0,
                    it: 1,
                    task: Some(0),
                    what,
                })
                .collect(),
            outcome: Outcome::Main(Fin::Result(Value::None)),
            tasks: Vec::new(),
        }
    }

    fn handler() -> What {
        What::Handler {
            msg: "Task was destroyed but it is pending!".into(),
            obj: Some("a".into()),
            exc: None,
        }
    }

    #[test]
    fn traces_differing_only_in_handler_events_are_a_finalization_gap() {
        let model = trace(vec![What::Start(1), handler()]);
        let cpython = trace(vec![handler(), What::Start(1)]);
        assert_eq!(classify(&model, &cpython), Some(Gap::Finalization));
        let other = trace(vec![What::Start(2), handler()]);
        assert_eq!(classify(&model, &other), None);
    }

    fn recursion_error() -> crate::trace::Exc {
        crate::trace::Exc {
            cls: "RecursionError".into(),
            args: Vec::new(),
            group: None,
            chain: Vec::new(),
        }
    }

    fn raised(node: u32, x: crate::trace::Exc) -> What {
        What::End {
            node,
            res: Res::Raise(std::sync::Arc::new(x)),
        }
    }

    #[test]
    fn a_difference_after_cpythons_recursion_error_is_a_recursion_depth_gap() {
        let model = trace(vec![raised(1, recursion_error()), What::Start(2)]);
        let cpython = trace(vec![raised(1, recursion_error()), What::Start(3)]);
        assert_eq!(classify(&model, &cpython), Some(Gap::RecursionDepth));
        // Only in the outcome: every event must agree.
        let mut escaped = trace(vec![What::Start(2)]);
        escaped.outcome = Outcome::Escaped(recursion_error());
        assert_eq!(
            classify(&trace(vec![What::Start(2)]), &escaped),
            Some(Gap::RecursionDepth)
        );
        assert_eq!(classify(&trace(vec![What::Start(1)]), &escaped), None);
    }

    #[test]
    fn a_difference_before_or_at_cpythons_recursion_error_is_no_known_gap() {
        let cpython = trace(vec![What::Start(1), raised(2, recursion_error())]);
        let before = trace(vec![What::Start(9), raised(2, recursion_error())]);
        assert_eq!(classify(&before, &cpython), None);
        let mut chained = recursion_error();
        chained
            .chain
            .push((crate::trace::Link::Context, "CancelledError".into()));
        let at = trace(vec![What::Start(1), raised(2, chained)]);
        assert_eq!(classify(&at, &cpython), None);
        let missing = trace(vec![What::Start(1), What::Start(2)]);
        assert_eq!(classify(&missing, &cpython), None);
    }
}
