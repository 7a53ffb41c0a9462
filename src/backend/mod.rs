//! Backends run a program and return its trace. A backend knows nothing of
//! checks or campaigns; it is named by a spec string such as `cpython:3.12+eager`.

mod cpython;
pub mod discover;

pub use cpython::{CpythonBackend, export_script};

use crate::ast::Program;
use crate::trace::{Injection, Trace};
use std::path::PathBuf;

/// Something that runs programs. Implementations keep whatever state makes
/// repeated runs fast (a persistent worker, reused buffers).
pub trait Backend: Send {
    /// The spec it was opened from, e.g. `cpython:3.12+pytask`.
    fn name(&self) -> &str;
    /// A human description: interpreter path and exact version, model profile.
    fn describe(&self) -> String;
    /// Runs one program. A backend that fails on this case returns a trace
    /// whose outcome says so (`Hung`, `Crashed`) and stays usable.
    fn run(&mut self, program: &Program) -> Trace {
        self.run_with(program, &[])
    }
    /// Runs one program, injecting cancels between loop iterations
    /// (exploration); with no injections it is `run`.
    fn run_with(&mut self, program: &Program, inject: &[Injection]) -> Trace;
    /// Takes back a trace this backend returned, once the caller is done
    /// with it, so that later runs can reuse its memory. Callers that run
    /// many programs give every trace back; the default just drops it.
    fn recycle(&mut self, trace: Trace) {
        drop(trace);
    }
    /// For benchmarks: runs all `programs` inside the backend with no
    /// transport in between, returning (seconds, events), if the backend has
    /// such a mode. The default says it has none.
    fn run_in_process(&mut self, _programs: &[Program]) -> Option<(f64, u64)> {
        None
    }
}

/// Which interpreter a `cpython:` spec names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interpreter {
    /// `cpython:3.12`: discovered on PATH or under pyenv.
    Version(u32, u32),
    /// `cpython:/path/to/python`.
    Path(PathBuf),
}

/// A parsed backend spec: `FAMILY:TARGET[+VARIANT]...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub text: String,
    pub family: Family,
    /// The pure-Python `Task`/`Future` instead of the C ones.
    pub pytask: bool,
    /// `asyncio.eager_task_factory` (3.12+).
    pub eager: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Family {
    Cpython(Interpreter),
    /// `model:3.11` etc.: the reference model's profile for that version.
    Model(u32, u32),
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let help = "backend specs look like cpython:3.12, cpython:3.12+pytask, cpython:3.13+eager, \
                    cpython:/usr/bin/python3.11 or model:3.12; `canceltree backends` lists what is here";
        let (family, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not a backend spec: {help}"))?;
        let mut parts = rest.split('+');
        let target = parts.next().unwrap_or_default();
        let (mut pytask, mut eager) = (false, false);
        for v in parts {
            match v {
                "pytask" => pytask = true,
                "eager" => eager = true,
                other => {
                    return Err(format!(
                        "unknown variant `+{other}` in `{text}`: use +pytask or +eager"
                    ));
                }
            }
        }
        let family = match family {
            "cpython" => Family::Cpython(match parse_version(target) {
                Some((a, b)) => Interpreter::Version(a, b),
                None if target.contains('/') => Interpreter::Path(PathBuf::from(target)),
                None => {
                    return Err(format!(
                        "`{target}` in `{text}` is neither a version like 3.12 nor a path to python: {help}"
                    ));
                }
            }),
            "model" => {
                let (a, b) = parse_version(target).ok_or_else(|| {
                    format!("`{target}` in `{text}` is not a version like 3.12: {help}")
                })?;
                if pytask {
                    return Err(format!(
                        "`{text}`: +pytask only applies to cpython backends"
                    ));
                }
                Family::Model(a, b)
            }
            other => {
                return Err(format!(
                    "unknown backend family `{other}` in `{text}`: {help}"
                ));
            }
        };
        Ok(Spec {
            text: text.to_string(),
            family,
            pytask,
            eager,
        })
    }
}

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Opens the backend a spec names. Errors say how to get a working one.
pub fn open(spec: &Spec) -> Result<Box<dyn Backend>, String> {
    let first = open_unguarded(spec)?;
    let spec2 = spec.clone();
    Ok(Box::new(PanicGuard {
        name: spec.text.clone(),
        inner: Some(first),
        reopen: Box::new(move || open_unguarded(&spec2)),
    }))
}

fn open_unguarded(spec: &Spec) -> Result<Box<dyn Backend>, String> {
    match &spec.family {
        Family::Cpython(interp) => {
            let found = discover::resolve(interp)?;
            if spec.eager && (found.version.0, found.version.1) < (3, 12) {
                return Err(format!(
                    "`{}`: eager tasks need CPython 3.12 or later, and {} is {}",
                    spec.text,
                    found.path.display(),
                    found.version_string()
                ));
            }
            Ok(Box::new(CpythonBackend::start(spec.clone(), found)?))
        }
        Family::Model(a, b) => {
            let profile = crate::model::Profile::new(*a, *b, spec.eager)
                .map_err(|e| format!("`{}`: {e}", spec.text))?;
            Ok(Box::new(crate::model::ModelBackend::new(
                &spec.text, profile,
            )))
        }
    }
}

thread_local! {
    /// How many guarded backend runs this thread is inside.
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Where the last guarded panic happened, for the crash message.
    static PANIC_AT: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// Installs (once) a panic hook that keeps quiet about panics a guard will
/// turn into a `crashed` outcome, noting only where they happened; a
/// campaign minimizing a crash would otherwise print one report per run.
/// Other panics go to the previous hook as before.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(|g| g.get()) > 0 {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                PANIC_AT.with(|p| p.set(at));
            } else {
                previous(info);
            }
        }));
    });
}

/// Turns a panic inside a backend (a model bug) into that case's `crashed`
/// outcome and reopens the backend for the next case, so one bad case never
/// takes a campaign down.
struct PanicGuard {
    name: String,
    inner: Option<Box<dyn Backend>>,
    reopen: Box<dyn Fn() -> Result<Box<dyn Backend>, String> + Send>,
}

impl Backend for PanicGuard {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        self.inner.as_ref().map_or_else(
            || format!("{} (failed to reopen)", self.name),
            |b| b.describe(),
        )
    }

    fn run_with(&mut self, program: &Program, inject: &[Injection]) -> Trace {
        if self.inner.is_none() {
            match (self.reopen)() {
                Ok(b) => self.inner = Some(b),
                Err(e) => return Trace::failed(crate::trace::Outcome::Crashed(e)),
            }
        }
        let inner = self.inner.as_mut().expect("opened above");
        quiet_panics();
        GUARDED.with(|g| g.set(g.get() + 1));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.run_with(program, inject)
        }));
        GUARDED.with(|g| g.set(g.get() - 1));
        match r {
            Ok(t) => t,
            Err(payload) => {
                self.inner = None;
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".to_string());
                let at = PANIC_AT
                    .with(|p| p.take())
                    .map_or(String::new(), |l| format!(" at {l}"));
                Trace::failed(crate::trace::Outcome::Crashed(format!(
                    "{} panicked{at}: {msg}",
                    self.name
                )))
            }
        }
    }

    fn recycle(&mut self, trace: Trace) {
        if let Some(b) = self.inner.as_mut() {
            b.recycle(trace);
        }
    }

    fn run_in_process(&mut self, programs: &[Program]) -> Option<(f64, u64)> {
        self.inner.as_mut()?.run_in_process(programs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on programs of more than one node, like a model bug would.
    struct Fragile;

    impl Backend for Fragile {
        fn name(&self) -> &str {
            "fragile"
        }
        fn describe(&self) -> String {
            "fragile".into()
        }
        fn run_with(&mut self, program: &Program, _: &[Injection]) -> Trace {
            assert!(program.len() < 2, "boom");
            Trace::failed(crate::trace::Outcome::Hung { secs: 0.0 })
        }
    }

    #[test]
    fn a_panicking_backend_costs_one_case_and_is_reopened() {
        let reopened = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = reopened.clone();
        let mut guard = PanicGuard {
            name: "fragile".into(),
            inner: Some(Box::new(Fragile)),
            reopen: Box::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(Box::new(Fragile) as Box<dyn Backend>)
            }),
        };
        let small = crate::generate::program(0, 1);
        let big = crate::generate::program(0, 10);
        assert!(
            matches!(guard.run(&big).outcome, crate::trace::Outcome::Crashed(ref m) if m.contains("boom"))
        );
        assert!(matches!(
            guard.run(&small).outcome,
            crate::trace::Outcome::Hung { .. }
        ));
        assert_eq!(reopened.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn specs_parse_versions_paths_and_variants() {
        let s = Spec::parse("cpython:3.12+pytask+eager").unwrap();
        assert_eq!(s.family, Family::Cpython(Interpreter::Version(3, 12)));
        assert!(s.pytask && s.eager);
        let s = Spec::parse("cpython:/usr/bin/python3.11").unwrap();
        assert_eq!(
            s.family,
            Family::Cpython(Interpreter::Path("/usr/bin/python3.11".into()))
        );
        assert_eq!(
            Spec::parse("model:3.13").unwrap().family,
            Family::Model(3, 13)
        );
    }

    #[test]
    fn bad_specs_explain_the_expected_form() {
        for bad in [
            "python3",
            "cpython:three",
            "cpython:3.12+fast",
            "jython:2.7",
            "model:3.12+pytask",
        ] {
            let e = Spec::parse(bad).unwrap_err();
            assert!(
                e.contains(bad) || e.contains("+fast") || e.contains("jython"),
                "{e}"
            );
        }
    }
}
