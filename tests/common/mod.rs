//! Helpers shared by the integration tests: the example list, golden-trace
//! lookup, backend keys, and a stand-in interpreter that crashes on demand.
#![allow(dead_code)] // each test binary uses its own subset

use canceltree::backend::discover;
use std::path::{Path, PathBuf};

/// Every `examples/*.ct`, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("examples")
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ct"))
        .collect();
    v.sort();
    v
}

/// The golden trace of example `stem` for backend key `key` (`3.12`,
/// `3.13+eager`, ...): `NAME.KEY.trace` if there is one, else `NAME.trace`.
pub fn golden_for(stem: &str, key: &str) -> Option<(PathBuf, String)> {
    [format!("{stem}.{key}.trace"), format!("{stem}.trace")]
        .into_iter()
        .map(|f| PathBuf::from("tests/golden").join(f))
        .find_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
}

/// The case directories under `dir` (one case each), sorted.
pub fn case_dirs(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}/ must exist: {e}"))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Backend keys for every discovered minor version: C tasks, pure-Python
/// tasks, and eager tasks from 3.12.
pub fn cpython_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for (a, b) in discover::versions() {
        keys.push(format!("{a}.{b}"));
        keys.push(format!("{a}.{b}+pytask"));
        if (a, b) >= (3, 12) {
            keys.push(format!("{a}.{b}+eager"));
        }
    }
    keys
}

/// A stand-in interpreter in `dir` that runs `real` but exits abruptly, as
/// a segfaulting interpreter would, whenever a generated program's source
/// contains `marker`.
pub fn crashing_interpreter(real: &Path, dir: &Path, marker: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("python3-crashes");
    let patch = format!(
        "import builtins, os\\n_compile = builtins.compile\\n\
         def _crashing_compile(src, *a, **k):\\n    if \"{marker}\" in src: os._exit(139)\\n    return _compile(src, *a, **k)\\n\
         builtins.compile = _crashing_compile\\n"
    );
    let script = format!(
        "#!/usr/bin/env bash\nexec {} \"$1\" \"$2\" \"$(printf '{patch}')\n$3\" \"${{@:4}}\"\n",
        real.display()
    );
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}
