//! What one run of a program produced, whatever backend ran it.
//!
//! The JSON shape of these types (serde's default external tagging) is the
//! wire format between the Python worker and Rust, and `--format json`
//! prints it; `docs/TRACE.md` documents both it and the text rendering.
//! Checks compare `Trace` values; text is made only for display.

use serde::{Deserialize, Serialize};

/// A task's or object's name: shared, so that a backend naming a task once
/// does not copy the name into each event that mentions it.
pub type Name = std::sync::Arc<str>;

/// Text that is usually a fixed string (a handler message, a phase name):
/// borrowed then, owned only when read from another backend's output.
pub type Text = std::borrow::Cow<'static, str>;

/// A Python value as it appears in a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    /// Any other object, by type name.
    Obj {
        obj: String,
    },
}

/// How an exception was linked to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// `raise X from Y`: `__cause__`.
    Cause,
    /// Raised while handling: `__context__`, not suppressed.
    Context,
}

/// An exception: class, arguments (reprs normalised), the members of an
/// exception group, and the `__cause__`/`__context__` chain by class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exc {
    /// Class names are static in the model, so this borrows instead of
    /// allocating per raise; traces read from CPython own theirs.
    pub cls: ClsName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Value>,
    /// For `ExceptionGroup`/`BaseExceptionGroup`: `exceptions`, in order.
    /// `args` then holds only the group's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Vec<Exc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<(Link, ClsName)>,
}

/// An exception as events hold it: shared, so that one exception passing
/// through many statements is encoded once.
pub type ExcRef = std::sync::Arc<Exc>;

/// An exception class name.
pub type ClsName = std::borrow::Cow<'static, str>;

/// How a node ended. An explicit tag byte, as for `What`: most events
/// are statement ends, and dropping one otherwise decoded `Ok` from the
/// value's tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Res {
    /// A simple statement produced this value.
    Val(Value),
    /// A compound statement (body, handler, callback) completed normally or returned.
    Ok,
    /// An exception left the node.
    Raise(ExcRef),
}

/// How a task or `main` finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fin {
    Result(Value),
    Exception(ExcRef),
    /// Cancelled, with the cancel message if there was one.
    Cancelled(Option<String>),
}

/// An explicit tag byte: the niche layout otherwise chosen made every
/// event's drop decode its variant from a 64-bit field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum What {
    /// A node began executing.
    Start(u32),
    End {
        node: u32,
        res: Res,
    },
    /// A task was created; `node` is the node whose coroutine it runs.
    Create {
        task: u32,
        name: Name,
        node: u32,
    },
    /// A task finished (traced from a done callback, see TRACE.md).
    Done {
        task: u32,
        fin: Fin,
    },
    /// The loop's exception handler was called.
    Handler {
        msg: Text,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        obj: Option<Name>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exc: Option<ExcRef>,
    },
    /// A phase of the run began: `shutdown`, `collect`.
    Phase(Text),
    /// Exploration cancelled task `task` between two loop iterations;
    /// `ret` is what `cancel()` returned.
    Inject {
        task: u32,
        ret: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Virtual time, `loop.time()`.
    pub t: f64,
    /// The loop iteration (`_run_once` call, from 1) it happened in; 0
    /// before the loop first runs.
    pub it: u32,
    /// The current task, or `None` outside any task (loop callbacks, shutdown).
    pub task: Option<u32>,
    pub what: What,
}

/// A task blocked at deadlock, and a description of what it awaits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub task: u32,
    pub on: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// `main` finished.
    Main(Fin),
    /// Nothing ready, no timer, `main` pending.
    Deadlock(Vec<Waiting>),
    /// An exception left the event loop itself (`KeyboardInterrupt`, `SystemExit`).
    Escaped(Exc),
    /// The backend did not answer within the per-case wall timeout.
    Hung { secs: f64 },
    /// The backend died or answered garbage; the text says what it printed.
    Crashed(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    /// Collected while pending ("Task was destroyed but it is pending!").
    Destroyed,
    Done(Fin),
}

/// A task's state when the run ended (before the final collection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskFinal {
    pub name: Name,
    pub state: State,
    /// `cancelling()`; unknown for a task destroyed while pending.
    pub cancelling: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub events: Vec<Event>,
    pub outcome: Outcome,
    /// Every task, in creation order; index 0 is `main`.
    pub tasks: Vec<TaskFinal>,
}

/// A cancel that exploration injects before loop iteration `iteration`
/// (1-based), into the task named `task`, if it exists and is not done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injection {
    pub iteration: u32,
    pub task: String,
    pub msg: Option<String>,
}

impl Trace {
    /// A trace with no events, for a case the backend could not run.
    pub fn failed(outcome: Outcome) -> Trace {
        Trace {
            events: Vec::new(),
            outcome,
            tasks: Vec::new(),
        }
    }

    /// Whether the backend itself failed (hung or crashed) on this case.
    pub fn backend_failed(&self) -> bool {
        matches!(self.outcome, Outcome::Hung { .. } | Outcome::Crashed(_))
    }
}
