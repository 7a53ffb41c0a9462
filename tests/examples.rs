//! Every example runs on every discovered CPython 3.11+ (C tasks, pure-Python
//! tasks, and eager tasks on 3.12+) and must print its golden trace; its
//! exported script must print exactly the same text.
//!
//! Goldens live in tests/golden/: `NAME.trace` holds what most backends
//! print, and `NAME.KEY.trace` what a backend key (`3.11`, `3.12+pytask`,
//! `3.13+eager`, ...) prints when it differs from that.
//! `CANCELTREE_BLESS=1 cargo test --test examples` rewrites them; review the
//! diff before committing, since a golden records what CPython did.

mod common;

use canceltree::backend::{self, Backend, Spec, discover};
use canceltree::{render, syntax};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    PathBuf::from("tests/golden")
}

struct Run {
    stem: String,
    key: String,
    text: String,
}

fn run_all() -> Vec<Run> {
    let programs: Vec<(String, canceltree::ast::Program)> = common::examples()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable example");
            let prog = syntax::parse(&p.display().to_string(), &text)
                .unwrap_or_else(|d| panic!("{}", d.render(&text)));
            (p.file_stem().unwrap().to_string_lossy().to_string(), prog)
        })
        .collect();
    let mut runs = Vec::new();
    for key in common::cpython_keys() {
        let spec = Spec::parse(&format!("cpython:{key}")).expect("valid spec");
        let mut b: Box<dyn Backend> = backend::open(&spec).expect("discovered interpreter starts");
        for (stem, prog) in &programs {
            let text = render::text(&b.run(prog), &render::labels(prog));
            runs.push(Run {
                stem: stem.clone(),
                key: key.clone(),
                text,
            });
        }
    }
    runs
}

/// Writes `NAME.trace` with the text most keys produced, and `NAME.KEY.trace`
/// for each key that produced something else.
fn bless(runs: &[Run]) {
    std::fs::create_dir_all(golden_dir()).unwrap();
    let mut by_stem: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by_stem.entry(&r.stem).or_default().push(r);
    }
    for (stem, rs) in by_stem {
        for e in std::fs::read_dir(golden_dir()).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with(&format!("{stem}.")) && name.ends_with(".trace") {
                std::fs::remove_file(&p).unwrap();
            }
        }
        let common = rs
            .iter()
            .max_by_key(|r| {
                (
                    rs.iter().filter(|x| x.text == r.text).count(),
                    std::cmp::Reverse(&r.key),
                )
            })
            .map(|r| r.text.clone())
            .unwrap_or_default();
        std::fs::write(golden_dir().join(format!("{stem}.trace")), &common).unwrap();
        for r in rs.iter().filter(|r| r.text != common) {
            std::fs::write(
                golden_dir().join(format!("{stem}.{}.trace", r.key)),
                &r.text,
            )
            .unwrap();
        }
    }
}

#[test]
fn every_example_matches_its_golden_trace_on_every_discovered_cpython() {
    if common::cpython_keys().is_empty() {
        eprintln!("no CPython 3.11+ found: golden traces not checked");
        return;
    }
    let runs = run_all();
    let mut failures = Vec::new();
    if std::env::var_os("CANCELTREE_BLESS").is_some() {
        bless(&runs);
    }
    for r in &runs {
        match common::golden_for(&r.stem, &r.key) {
            None => failures.push(format!(
                "{}: no golden trace for cpython:{}; run CANCELTREE_BLESS=1 cargo test --test examples",
                r.stem, r.key
            )),
            Some((path, want)) if want != r.text => failures.push(format!(
                "{}: cpython:{} differs from {}:\n--- golden\n{want}--- got\n{}",
                r.stem,
                r.key,
                path.display(),
                r.text
            )),
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn python_for(key: &str) -> PathBuf {
    let spec = Spec::parse(&format!("cpython:{}", key.split('+').next().unwrap())).unwrap();
    match spec.family {
        backend::Family::Cpython(i) => discover::resolve(&i).unwrap().path,
        _ => unreachable!(),
    }
}

#[test]
fn exported_scripts_print_exactly_the_backend_trace() {
    let mut failures = Vec::new();
    for key in common::cpython_keys() {
        let spec = Spec::parse(&format!("cpython:{key}")).unwrap();
        let mut b = backend::open(&spec).unwrap();
        let python = python_for(&key);
        for path in common::examples() {
            let text = std::fs::read_to_string(&path).unwrap();
            let prog = syntax::parse(&path.display().to_string(), &text).unwrap();
            let want = render::text(&b.run(&prog), &render::labels(&prog));
            let script =
                backend::export_script(&prog, &path.display().to_string(), spec.pytask, spec.eager);
            let got = run_script(&python, &script);
            if got != want {
                failures.push(format!(
                    "{} on {key}:\n--- backend\n{want}--- script\n{got}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn run_script(python: &Path, script: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("canceltree-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("case.py");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(python).arg("-I").arg(&file).output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        s.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    s
}
