//! canceltree: a test suite and fuzzer for asyncio-style cancellation semantics.
//!
//! Data flows one way: a program (`ast`, read by `syntax`) runs on a backend
//! (`backend`), which yields a `trace`; checks and campaigns only see traces.
//! ARCHITECTURE.md has the map.

pub mod ast;
pub mod backend;
pub mod bench;
pub mod campaign;
pub mod diag;
pub mod explore;
pub mod fingerprint;
pub mod generate;
pub mod invariants;
pub mod model;
pub mod pygen;
pub mod render;
pub mod syntax;
pub mod trace;
