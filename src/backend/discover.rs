//! Finds CPython interpreters: under pyenv's `versions/` and on PATH.
//! `cpython:3.12` resolves to the newest 3.12 found; nothing is hard-coded.

use super::Interpreter;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Asyncio as this tool uses it (TaskGroup, timeout) needs 3.11.
pub const OLDEST: (u32, u32) = (3, 11);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub version: (u32, u32, u32),
}

impl Found {
    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }
}

/// Asks an interpreter for its version; `None` if it does not run.
pub fn probe(path: &Path) -> Option<Found> {
    let out = Command::new(path)
        .args(["-I", "-c", "import sys; print(*sys.version_info[:3])"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<u32>().ok());
    let version = (it.next()??, it.next()??, it.next()??);
    Some(Found {
        path: path.to_path_buf(),
        version,
    })
}

fn pyenv_root() -> Option<PathBuf> {
    if let Some(r) = std::env::var_os("PYENV_ROOT") {
        return Some(PathBuf::from(r));
    }
    if let Ok(out) = Command::new("pyenv").arg("root").output()
        && out.status.success()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return Some(PathBuf::from(s));
        }
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv"))
}

/// Candidate interpreters with the minor version their name claims, pyenv's
/// first. Names are only a hint: `probe` decides.
fn candidates() -> Vec<(PathBuf, Option<(u32, u32)>)> {
    let mut out = Vec::new();
    if let Some(root) = pyenv_root()
        && let Ok(rd) = std::fs::read_dir(root.join("versions"))
    {
        let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for d in dirs {
            let name = d
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            let mut parts = name.split('.').map(|x| x.parse::<u32>().ok());
            let hint = match (parts.next().flatten(), parts.next().flatten()) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            };
            out.push((d.join("bin").join("python"), hint));
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.components().any(|c| c.as_os_str() == "shims") {
            continue; // pyenv shims only expose the global version
        }
        for minor in 11..=20 {
            let p = dir.join(format!("python3.{minor}"));
            if p.is_file() {
                out.push((p, Some((3, minor))));
            }
        }
    }
    out
}

/// Every usable interpreter (3.11 or later), one per real file, sorted by version.
pub fn all() -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut seen = Vec::new();
    for (path, hint) in candidates() {
        if hint.is_some_and(|h| h < OLDEST) {
            continue;
        }
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        if let Some(f) = probe(&path)
            && (f.version.0, f.version.1) >= OLDEST
        {
            found.push(f);
        }
    }
    found.sort_by(|a, b| a.version.cmp(&b.version).then(a.path.cmp(&b.path)));
    found
}

/// The interpreter a spec names: the newest patch release of that version.
pub fn resolve(interp: &Interpreter) -> Result<Found, String> {
    match interp {
        Interpreter::Path(p) => {
            let f = probe(p)
                .ok_or_else(|| format!("{} does not run as a Python interpreter", p.display()))?;
            if (f.version.0, f.version.1) < OLDEST {
                return Err(format!(
                    "{} is Python {}; canceltree needs 3.11 or later",
                    p.display(),
                    f.version_string()
                ));
            }
            Ok(f)
        }
        Interpreter::Version(a, b) => {
            let mut best: Option<Found> = None;
            for (path, hint) in candidates() {
                if hint.is_some_and(|h| h != (*a, *b)) {
                    continue;
                }
                if let Some(f) = probe(&path)
                    && (f.version.0, f.version.1) == (*a, *b)
                    && best.as_ref().is_none_or(|x| f.version > x.version)
                {
                    best = Some(f);
                }
            }
            best.ok_or_else(|| {
                format!(
                    "no CPython {a}.{b} found under pyenv (`pyenv install {a}.{b}`) or on PATH as python{a}.{b}; \
                     name one directly with cpython:/path/to/python"
                )
            })
        }
    }
}

/// Versions present for the given minor versions, e.g. for tests that run
/// on every discovered 3.11+.
pub fn versions() -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = all().iter().map(|f| (f.version.0, f.version.1)).collect();
    v.dedup();
    v
}
