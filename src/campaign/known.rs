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
//!   afterwards, depends on the interpreter's stack (docs/TRACE.md).
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

/// Which known gap explains how a model trace differs from its CPython's,
/// if one does.
pub fn classify(model: &Trace, cpython: &Trace) -> Option<Gap> {
    if recursion(cpython) {
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

    #[test]
    fn a_recursion_error_in_cpython_is_a_recursion_depth_gap() {
        let model = trace(vec![What::Start(1)]);
        let mut cpython = trace(vec![What::Start(2)]);
        cpython.outcome = Outcome::Escaped(crate::trace::Exc {
            cls: "RecursionError".into(),
            args: Vec::new(),
            group: None,
            chain: Vec::new(),
        });
        assert_eq!(classify(&model, &cpython), Some(Gap::RecursionDepth));
    }
}
