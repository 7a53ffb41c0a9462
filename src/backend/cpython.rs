//! The CPython backend: a persistent worker process per interpreter, fed
//! generated programs as JSON lines (one process per case is ~500x slower).
//! A case that exceeds the wall timeout, or kills the worker, is reported as
//! that case's outcome and the worker is restarted for the next one.

use super::discover::Found;
use super::{Backend, Spec};
use crate::ast::Program;
use crate::pygen;
use crate::trace::{Injection, Outcome, Trace};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PRELUDE: &str = include_str!("../../python/prelude.py");
const RUNTIME: &str = include_str!("../../python/runtime.py");
const WORKER: &str = include_str!("../../python/worker.py");

/// Default per-case wall timeout; `CANCELTREE_CASE_TIMEOUT` (seconds) overrides it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a dead worker's stderr to keep for the crash report.
const STDERR_TAIL: usize = 4000;

pub struct CpythonBackend {
    spec: Spec,
    found: Found,
    timeout: Duration,
    worker: Option<Worker>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// One case for the worker: the program's code (without `LABELS` and `CORO`,
/// see `pygen::program_code`), its coroutine table, and the cancels to inject.
#[derive(serde::Serialize)]
struct Request<'a> {
    src: &'a str,
    coro: &'a [(String, String, crate::ast::NodeId)],
    inject: Vec<(u32, &'a str, Option<&'a str>)>,
}

#[derive(serde::Deserialize)]
struct Reply {
    trace: Option<Trace>,
    error: Option<String>,
}

impl CpythonBackend {
    pub fn start(spec: Spec, found: Found) -> Result<CpythonBackend, String> {
        let timeout = std::env::var("CANCELTREE_CASE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        let mut b = CpythonBackend {
            spec,
            found,
            timeout,
            worker: None,
        };
        b.worker = Some(b.spawn()?);
        Ok(b)
    }

    fn spawn(&self) -> Result<Worker, String> {
        let code = format!("{PRELUDE}\n{RUNTIME}\n{WORKER}");
        let mut cmd = Command::new(&self.found.path);
        cmd.args(["-I", "-c", &code]);
        if self.spec.pytask {
            cmd.arg("--pytask");
        }
        if self.spec.eager {
            cmd.arg("--eager");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.found.path.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.extend_from_slice(&buf[..n]);
                let excess = s.len().saturating_sub(STDERR_TAIL);
                s.drain(..excess);
            }
        });
        let mut w = Worker {
            child,
            stdin,
            lines,
            stderr,
        };
        match w.lines.recv_timeout(self.timeout) {
            Ok(hello) if hello.contains("\"hello\"") => Ok(w),
            _ => {
                let _ = w.child.kill();
                let _ = w.child.wait();
                Err(format!(
                    "the worker for {} did not start: {}",
                    self.found.path.display(),
                    w.stderr_tail()
                ))
            }
        }
    }

    fn fail(&mut self, outcome: Outcome) -> Trace {
        if let Some(mut w) = self.worker.take() {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
        Trace::failed(outcome)
    }
}

impl Worker {
    fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&s).trim().to_string()
    }
}

impl Backend for CpythonBackend {
    fn name(&self) -> &str {
        &self.spec.text
    }

    fn describe(&self) -> String {
        format!(
            "CPython {} at {}",
            self.found.version_string(),
            self.found.path.display()
        )
    }

    fn run_with(&mut self, program: &Program, inject: &[Injection]) -> Trace {
        if self.worker.is_none() {
            match self.spawn() {
                Ok(w) => self.worker = Some(w),
                Err(e) => return Trace::failed(Outcome::Crashed(e)),
            }
        }
        let w = self.worker.as_mut().expect("worker started above");
        let code = pygen::program_code(program);
        let request = Request {
            src: &code.text,
            coro: &code.coros,
            inject: inject
                .iter()
                .map(|i| (i.iteration, &*i.task, i.msg.as_deref()))
                .collect(),
        };
        let mut line = serde_json::to_vec(&request).expect("a request always serializes");
        line.push(b'\n');
        if w.stdin
            .write_all(&line)
            .and_then(|_| w.stdin.flush())
            .is_err()
        {
            let msg = format!("worker died: {}", w.stderr_tail());
            return self.fail(Outcome::Crashed(msg));
        }
        match w.lines.recv_timeout(self.timeout) {
            Ok(line) => match serde_json::from_str::<Reply>(&line) {
                Ok(Reply { trace: Some(t), .. }) => t,
                Ok(Reply { error: Some(e), .. }) => Trace::failed(Outcome::Crashed(e)),
                _ => {
                    let msg = format!("unreadable reply from worker: {}", truncate(&line, 500));
                    self.fail(Outcome::Crashed(msg))
                }
            },
            Err(RecvTimeoutError::Timeout) => {
                let secs = self.timeout.as_secs_f64();
                self.fail(Outcome::Hung { secs })
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = w.child.wait();
                std::thread::sleep(Duration::from_millis(20));
                let msg = format!("worker died: {}", w.stderr_tail());
                self.fail(Outcome::Crashed(msg))
            }
        }
    }

    fn run_in_process(&mut self, programs: &[Program]) -> Option<(f64, u64)> {
        self.batch(programs).ok()
    }
}

impl CpythonBackend {
    fn batch(&mut self, programs: &[Program]) -> Result<(f64, u64), String> {
        let w = self.worker.as_mut().ok_or("worker not running")?;
        let codes: Vec<pygen::Code> = programs.iter().map(pygen::program_code).collect();
        let batch: Vec<Request> = codes
            .iter()
            .map(|c| Request {
                src: &c.text,
                coro: &c.coros,
                inject: Vec::new(),
            })
            .collect();
        let request = serde_json::json!({ "batch": batch }).to_string();
        writeln!(w.stdin, "{request}")
            .and_then(|_| w.stdin.flush())
            .map_err(|e| e.to_string())?;
        let line = w.lines.recv().map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        match (v["secs"].as_f64(), v["events"].as_u64()) {
            (Some(s), Some(e)) => Ok((s, e)),
            _ => Err(truncate(&line, 500).to_string()),
        }
    }
}

impl Drop for CpythonBackend {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            drop(w.stdin);
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A standalone script that runs `program` on the virtual-time loop and
/// prints its text trace, needing nothing but the interpreter. The program
/// comes first so a reader of a bug report sees it before the machinery.
pub fn export_script(program: &Program, source_name: &str, pytask: bool, eager: bool) -> String {
    let mut s = String::new();
    s.push_str("# Generated by `canceltree export` from ");
    s.push_str(source_name);
    s.push_str(".\n# Runs the program on asyncio's own event loop with a virtual clock and\n");
    s.push_str("# prints its trace; the tracing runtime follows the program.\nimport sys\n");
    if pytask {
        s.push_str("sys.modules['_asyncio'] = None  # the pure-Python Task and Future\n");
    }
    s.push('\n');
    s.push_str(&pygen::program_source(program));
    s.push_str("\n\n");
    let runtime = if eager {
        RUNTIME.replace("EAGER = '--eager' in sys.argv", "EAGER = True")
    } else {
        RUNTIME.replace("EAGER = '--eager' in sys.argv", "EAGER = False")
    };
    s.push_str(&runtime);
    // Called from a function, like the worker's `_serve`, so that a
    // RecursionError strikes at the same depth in both.
    s.push_str(
        "\n\ndef _serve():\n    print(render(run(main, CORO), LABELS), end='')\n\n\n_serve()\n",
    );
    s
}
