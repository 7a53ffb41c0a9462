//! Model bugs found by fuzzing (and one of the CPython backend: its README
//! says so), replayed. Each directory under
//! tests/model_findings/ holds `case.ct`, a README saying what went wrong,
//! and `cpython-X.Y.trace` files: what that CPython printed. The model on
//! profile X.Y must print exactly that; where the interpreter is present,
//! CPython is run too, so a stale trace file shows up here, and the two
//! traces must be equal in what the text leaves out (loop iterations).
//! `CANCELTREE_BLESS=1` rewrites the trace files from CPython.

mod common;

use canceltree::backend::{self, Spec};
use canceltree::{render, syntax};
use std::path::PathBuf;

fn cases() -> Vec<PathBuf> {
    common::case_dirs("tests/model_findings")
}

#[test]
fn every_model_finding_matches_cpython_on_its_profiles() {
    let bless = std::env::var_os("CANCELTREE_BLESS").is_some();
    let present = common::cpython_keys();
    let mut checked = 0;
    let mut failures = Vec::new();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let ct = dir.join("case.ct");
        let text = std::fs::read_to_string(&ct).unwrap();
        let program = syntax::parse(&ct.display().to_string(), &text)
            .unwrap_or_else(|d| panic!("{}", d.render(&text)));
        let labels = render::labels(&program);
        let mut traces: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| {
                let f = p.file_name()?.to_str()?.to_string();
                let v = f.strip_prefix("cpython-")?.strip_suffix(".trace")?;
                Some((v.to_string(), p))
            })
            .collect();
        traces.sort();
        assert!(!traces.is_empty(), "{name} has no cpython-X.Y.trace");
        for (version, path) in traces {
            let mut want = std::fs::read_to_string(&path).unwrap();
            let mut cpython = None;
            if present.contains(&version) {
                let mut cp = backend::open(&Spec::parse(&format!("cpython:{version}")).unwrap())
                    .expect("a discovered interpreter opens");
                let trace = cp.run(&program);
                let real = render::text(&trace, &labels);
                cpython = Some(trace);
                if bless {
                    std::fs::write(&path, &real).unwrap();
                    want = real;
                } else if real != want {
                    failures.push(format!(
                        "{name}: cpython:{version} no longer prints {}:\n{real}",
                        path.display()
                    ));
                }
            }
            let mut m = backend::open(&Spec::parse(&format!("model:{version}")).unwrap())
                .expect("the model opens");
            let trace = m.run(&program);
            let got = render::text(&trace, &labels);
            if got != want {
                failures.push(format!(
                    "{name} on model:{version}:\n--- cpython\n{want}--- model\n{got}"
                ));
            } else if let Some(real) = cpython.filter(|real| *real != trace) {
                // The text leaves out loop iterations; the traces have them.
                let model = format!("model:{version}");
                let cp = format!("cpython:{version}");
                let diff = render::diff(&[(&model, &trace), (&cp, &real)], &labels);
                failures.push(format!("{name} on {model}:\n{}", diff.unwrap_or_default()));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no model finding was checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
