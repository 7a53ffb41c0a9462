//! The campaign's view of the invariant checker: one function, so that the
//! campaign, `repro` and `minimize` all ask the same question.

use crate::ast::Program;
use crate::trace::Trace;

pub use crate::invariants::Violation;

/// The invariants `trace` (a run of `program` on a backend following the
/// rules of Python `version`) breaks.
pub fn violations(program: &Program, trace: &Trace, version: (u32, u32)) -> Vec<Violation> {
    crate::invariants::check(program, trace, version)
}
