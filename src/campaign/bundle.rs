//! Finding bundles: one directory per signature, holding everything needed
//! to understand and rerun a failure without the campaign that found it.
//!
//! ```text
//! DIR/<slug>/case.ct      the program, with a comment header
//!            case.py      standalone export for the first backend
//!            traces.txt   the side-by-side diff, then every full trace
//!            README.md    what failed, where, how to rerun
//!            meta.json    signature, backends, origin, sizes
//!            BACKEND.trace  each backend's text trace (e.g. cpython-3.11.trace)
//! ```
//!
//! A bundle is written into a hidden temporary directory and renamed into
//! place, so a reader (or a killed campaign) never sees half of one. The
//! same layout is what `tests/regressions/NAME/` holds.

use super::checks::Violation;
use super::signature;
use crate::ast::Program;
use crate::backend::{self, Spec};
use crate::render;
use crate::syntax;
use crate::trace::Trace;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Backends disagree.
    Divergence,
    /// A backend's trace breaks an invariant.
    Violation,
    /// A violation an upstream CPython issue already explains
    /// (`invariants::known_cpython_bug`); the model reproduces those too.
    KnownBug,
    /// The model and its CPython differ in a way `known` explains (only
    /// in finalization, or after a RecursionError): expected today.
    KnownGap,
    /// A backend crashed on the program: a model panic, a CPython worker
    /// that died, or an error in the tracing runtime. (A hang is counted,
    /// not kept: minimizing one costs a wall-clock timeout per run.)
    Crash,
}

/// Where a campaign found the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The campaign seed; the program is `generate::program(seed + case, size)`.
    pub seed: u64,
    pub case: u64,
    pub size: usize,
}

/// `meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub signature: String,
    pub kind: FindingKind,
    /// The backends to rerun on; for a divergence the first is the reference.
    pub backends: Vec<String>,
    /// Backend spec to the file holding its expected text trace.
    pub traces: BTreeMap<String, String>,
    /// Backend spec to the interpreter or profile that produced the traces.
    #[serde(default)]
    pub described: BTreeMap<String, String>,
    #[serde(default)]
    pub origin: Option<Origin>,
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// False for a bundle written before minimization finished.
    #[serde(default = "yes")]
    pub minimized: bool,
    /// `backend: invariant at node N: message`, for violations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One backend's run of the bundled program.
pub struct Run<'a> {
    pub spec: &'a str,
    pub describe: &'a str,
    pub trace: &'a Trace,
}

/// Everything a bundle is made from.
pub struct Finding<'a> {
    pub signature: &'a str,
    pub kind: FindingKind,
    pub program: &'a Program,
    /// The backends of the finding, first the reference.
    pub runs: Vec<Run<'a>>,
    pub violations: Vec<(String, Violation)>,
    pub origin: Option<Origin>,
    pub nodes_before: usize,
    pub minimized: bool,
}

/// The file name of a backend's expected trace: `cpython:3.11` gives `cpython-3.11.trace`.
pub fn trace_file(spec: &str) -> String {
    format!("{}.trace", signature::slug(spec))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, then a rename over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), unique()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// How to name the bundle in prose and commands: the path as given.
fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Writes (or replaces) the bundle `out/slug`, returning its path.
pub fn write(out: &Path, slug: &str, f: &Finding) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let target = out.join(slug);
    let tmp = out.join(format!(".{slug}.tmp-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&tmp)?;
    let result = fill(&tmp, &target, f).and_then(|_| replace_dir(&tmp, &target, out, slug));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|_| target)
}

/// Puts the finished `tmp` in place of `target`: swapped with the old
/// bundle in one step where the system can. Elsewhere the old bundle is
/// moved aside first (a directory cannot be renamed over a non-empty one),
/// then deleted, and `recover` puts it back if a kill struck in between.
fn replace_dir(tmp: &Path, target: &Path, out: &Path, slug: &str) -> std::io::Result<()> {
    if target.exists() && exchange(tmp, target)? {
        // `tmp` now holds the old bundle; a kill before it is gone leaves
        // a `.tmp-` directory, which `recover` removes.
        let _ = std::fs::remove_dir_all(tmp);
        Ok(())
    } else if target.exists() {
        let old = out.join(format!(".{slug}.old-{}-{}", std::process::id(), unique()));
        std::fs::rename(target, &old)?;
        std::fs::rename(tmp, target)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    } else {
        std::fs::rename(tmp, target)
    }
}

/// Swaps `a` and `b` in one step, so that a kill never finds `b` missing
/// (a reader of a killed campaign's state file must find every bundle it
/// names). False where the system cannot, for the caller to move aside.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that outlive the call, which
    // only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    // An old kernel or a file system without the flag.
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Cleans up after a killed writer: half-written bundles are removed and a
/// moved-aside bundle whose replacement never landed is put back.
pub fn recover(out: &Path) {
    let Ok(rd) = std::fs::read_dir(out) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix('.') else {
            continue;
        };
        if let Some((slug, _)) = rest.split_once(".old-") {
            let target = out.join(slug);
            if target.exists() {
                let _ = std::fs::remove_dir_all(e.path());
            } else {
                let _ = std::fs::rename(e.path(), target);
            }
        } else if rest.contains(".tmp-") {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
    }
}

fn fill(dir: &Path, target: &Path, f: &Finding) -> std::io::Result<()> {
    let backends: Vec<String> = f.runs.iter().map(|r| r.spec.to_string()).collect();
    let labels = render::labels(f.program);
    let program_text = syntax::print(f.program);

    // case.ct
    let mut ct = String::new();
    let _ = writeln!(ct, "; canceltree finding: {}", f.signature);
    let _ = writeln!(ct, "; backends: {}", backends.join(" "));
    if let Some(o) = f.origin {
        let _ = writeln!(
            ct,
            "; found by `canceltree fuzz --seed {}` at case {} (generator seed {}, size {})",
            o.seed,
            o.case,
            o.seed.wrapping_add(o.case),
            o.size
        );
    }
    if f.minimized {
        let _ = writeln!(
            ct,
            "; minimized from {} to {} nodes",
            f.nodes_before,
            f.program.len()
        );
    } else {
        let _ = writeln!(ct, "; not minimized yet ({} nodes)", f.program.len());
    }
    let _ = writeln!(ct, "; rerun: canceltree repro {}", shown(target));
    ct.push_str(&program_text);
    std::fs::write(dir.join("case.ct"), &ct)?;

    // case.py
    let first = f.runs.first().map_or("cpython:3.12", |r| r.spec);
    let (pytask, eager) = Spec::parse(first).map_or((false, false), |s| (s.pytask, s.eager));
    std::fs::write(
        dir.join("case.py"),
        backend::export_script(f.program, "case.ct", pytask, eager),
    )?;

    // traces.txt and BACKEND.trace
    let mut traces = String::new();
    let _ = writeln!(traces, "{}\n", f.signature);
    if !f.violations.is_empty() {
        traces.push_str("violations:\n");
        for (b, v) in &f.violations {
            let _ = writeln!(traces, "  {}", violation_line(b, v));
        }
        traces.push('\n');
    }
    let refs: Vec<(&str, &Trace)> = f.runs.iter().map(|r| (r.spec, r.trace)).collect();
    if let Some(d) = signature::first_difference(f.program, &refs) {
        traces.push_str(&d);
        traces.push('\n');
    }
    if let Some(d) = render::diff(&refs, &labels) {
        traces.push_str(&d);
        traces.push('\n');
    }
    let mut files = BTreeMap::new();
    let mut described = BTreeMap::new();
    for r in &f.runs {
        let text = render::text(r.trace, &labels);
        let _ = writeln!(traces, "== {} ({}) ==\n{text}", r.spec, r.describe);
        let file = trace_file(r.spec);
        std::fs::write(dir.join(&file), &text)?;
        files.insert(r.spec.to_string(), file);
        described.insert(r.spec.to_string(), r.describe.to_string());
    }
    std::fs::write(dir.join("traces.txt"), &traces)?;

    // README.md
    std::fs::write(
        dir.join("README.md"),
        readme(f, target, &backends, &described, &program_text),
    )?;

    // meta.json
    let meta = Meta {
        signature: f.signature.to_string(),
        kind: f.kind,
        backends,
        traces: files,
        described,
        origin: f.origin,
        nodes_before: f.nodes_before,
        nodes_after: f.program.len(),
        minimized: f.minimized,
        violations: f
            .violations
            .iter()
            .map(|(b, v)| violation_line(b, v))
            .collect(),
    };
    let json = serde_json::to_string_pretty(&meta).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("meta.json"), json + "\n")
}

pub fn violation_line(backend: &str, v: &Violation) -> String {
    let mut s = format!("{backend}: {}", v.invariant);
    if let Some(n) = v.node {
        let _ = write!(s, " at node {n}");
    }
    if let Some(t) = v.task {
        let _ = write!(s, " in task {t}");
    }
    let _ = write!(s, ": {}", v.message);
    s
}

fn readme(
    f: &Finding,
    target: &Path,
    backends: &[String],
    described: &BTreeMap<String, String>,
    program_text: &str,
) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# Finding `{}`\n", f.signature);
    match f.kind {
        FindingKind::Divergence => {
            let (head, place) = f.signature.split_once('@').unwrap_or((f.signature, "?"));
            let (first, others) = head.split_once("!=").unwrap_or((head, "?"));
            let _ = writeln!(
                r,
                "**What failed:** the backends disagree. The trace of `{others}` differs from \
                 the trace of `{first}`, first at `{place}` (event kind, then the keyword of the \
                 node it is about; `outcome` or `tasks` when every event agrees). `traces.txt` \
                 shows the traces side by side from the first difference.\n"
            );
        }
        FindingKind::Violation => {
            let _ = writeln!(
                r,
                "**What failed:** an invariant (docs/INVARIANTS.md) does not hold:\n"
            );
            for (b, v) in &f.violations {
                let _ = writeln!(r, "- {}", violation_line(b, v));
            }
            r.push('\n');
        }
        FindingKind::KnownBug => {
            let _ = writeln!(
                r,
                "**What failed:** an invariant (docs/INVARIANTS.md) does not hold, in a way a \
                 known CPython bug (`{}`, see docs/INVARIANTS.md, \"Findings\") explains:\n",
                f.signature.split(':').next().unwrap_or("")
            );
            for (b, v) in &f.violations {
                let _ = writeln!(r, "- {}", violation_line(b, v));
            }
            r.push('\n');
        }
        FindingKind::KnownGap => {
            let _ = writeln!(
                r,
                "**What failed:** the model and CPython differ, but only in a way that is a \
                 known gap of the model (`{}`): see src/campaign/known.rs. `traces.txt` shows \
                 the traces side by side from the first difference.\n",
                f.signature.split(':').next().unwrap_or("")
            );
        }
        FindingKind::Crash => {
            let _ = writeln!(
                r,
                "**What failed:** a backend crashed on this program instead of producing a \
                 trace. A crash of a `model:` backend is a bug in canceltree's model; one of a \
                 `cpython:` backend is a dead interpreter or an error in the tracing runtime. \
                 The message is in the backend's trace file.\n"
            );
        }
    }
    r.push_str("**Backends:**\n\n");
    for b in backends {
        let _ = writeln!(
            r,
            "- `{b}`: {}",
            described.get(b).map_or("", |s| s.as_str())
        );
    }
    let size = if f.minimized {
        format!(
            "{} nodes, minimized from {}",
            f.program.len(),
            f.nodes_before
        )
    } else {
        format!("{} nodes, not minimized yet", f.program.len())
    };
    let origin = f.origin.map_or(String::new(), |o| {
        format!(
            "; found by `canceltree fuzz --seed {}` at case {}",
            o.seed, o.case
        )
    });
    let _ = writeln!(
        r,
        "\n**Program** ({size}{origin}):\n\n```\n{program_text}```\n"
    );
    let path = shown(target);
    let bflags: String = backends.iter().map(|b| format!(" --backend {b}")).collect();
    let _ = writeln!(
        r,
        "## Rerun\n\n    canceltree repro {path}\n\nreruns `case.ct` on the backends above and exits 1 \
         while it still fails, 0 once it passes (`--backend` overrides the backends). To see \
         the traces yourself:\n\n    canceltree run {path}/case.ct{bflags}\n\n`case.py` is a \
         standalone script (no canceltree needed) that prints `{}`'s trace:\n\n    python3 {path}/case.py\n",
        backends.first().map_or("", |s| s.as_str())
    );
    let _ = writeln!(
        r,
        "## Make it a regression\n\nOnce the finding is confirmed (a CPython bug, or a \
         deliberate difference between versions), copy the bundle into the test suite, named \
         after its signature or its upstream CPython issue:\n\n    cp -r {path} tests/regressions/NAME\n\n\
         `cargo test` then replays `case.ct` on every backend in `meta.json` whose interpreter \
         is present and compares each trace with its `BACKEND.trace` file."
    );
    r
}

/// A bundle or a `.ct` file read back for `repro`.
pub struct Loaded {
    pub program: Program,
    /// `meta.json`, when the case is part of a bundle.
    pub meta: Option<Meta>,
    /// The backends the case names: `meta.json`'s, else the `; backends:`
    /// header line of the `.ct` file.
    pub backends: Vec<String>,
    /// The bundle directory, if any.
    pub dir: Option<PathBuf>,
}

/// Reads a bundle directory or a `.ct` file. Errors are for the user (exit 2).
pub fn load(path: &Path) -> Result<Loaded, String> {
    let (file, dir) = if path.is_dir() {
        (path.join("case.ct"), Some(path.to_path_buf()))
    } else {
        let dir = path.parent().filter(|d| {
            d.join("meta.json").is_file() && path.file_name() == Some("case.ct".as_ref())
        });
        (path.to_path_buf(), dir.map(Path::to_path_buf))
    };
    let shown = file.display().to_string();
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("error: cannot read {shown}: {e}"))?;
    let program = syntax::parse(&shown, &text).map_err(|d| d.render(&text))?;
    let meta =
        match &dir {
            Some(d) => {
                let mp = d.join("meta.json");
                let mt = std::fs::read_to_string(&mp)
                    .map_err(|e| format!("error: cannot read {}: {e}", mp.display()))?;
                Some(serde_json::from_str::<Meta>(&mt).map_err(|e| {
                    format!("error: {} is not a bundle's meta.json: {e}", mp.display())
                })?)
            }
            None => None,
        };
    let backends = match &meta {
        Some(m) => m.backends.clone(),
        None => header_backends(&text),
    };
    Ok(Loaded {
        program,
        meta,
        backends,
        dir,
    })
}

/// The backends named by a `; backends: A B` comment line.
pub fn header_backends(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.trim_start().starts_with(';') || l.trim().is_empty())
        .find_map(|l| {
            l.trim_start()
                .trim_start_matches(';')
                .trim()
                .strip_prefix("backends:")
                .map(str::to_string)
        })
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The bundles under `out`: (slug, meta) for every directory with a readable meta.json.
pub fn scan(out: &Path) -> Vec<(String, Meta)> {
    let Ok(rd) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Meta)> = rd
        .flatten()
        .filter_map(|e| {
            let slug = e.file_name().to_string_lossy().to_string();
            if slug.starts_with('.') {
                return None;
            }
            let text = std::fs::read_to_string(e.path().join("meta.json")).ok()?;
            Some((slug, serde_json::from_str::<Meta>(&text).ok()?))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_backends_are_read_from_the_comment() {
        let text = "; canceltree finding: x\n; backends: cpython:3.11 cpython:3.12\n(canceltree 1)\n(main)\n";
        assert_eq!(header_backends(text), vec!["cpython:3.11", "cpython:3.12"]);
        assert!(header_backends("(canceltree 1)\n; backends: a\n(main)\n").is_empty());
    }

    #[test]
    fn trace_files_are_named_after_the_backend() {
        assert_eq!(trace_file("cpython:3.11"), "cpython-3.11.trace");
        assert_eq!(trace_file("model:3.13+eager"), "model-3.13-eager.trace");
    }

    /// A killed campaign's state named a finding whose bundle was
    /// moved aside for its minimized form. The replacement must leave the
    /// new bundle in place and nothing hidden behind it.
    #[test]
    fn replacing_a_bundle_leaves_only_the_new_one() {
        let out = std::env::temp_dir().join(format!("ct-replace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let (target, tmp) = (out.join("slug"), out.join(".slug.tmp-1-1"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("case.ct"), "old").unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("case.ct"), "new").unwrap();
        replace_dir(&tmp, &target, &out, "slug").unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("case.ct")).unwrap(),
            "new"
        );
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("slug")]);
        let _ = std::fs::remove_dir_all(&out);
    }
}
