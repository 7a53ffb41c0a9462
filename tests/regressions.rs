//! Confirmed findings, replayed. Each directory under tests/regressions/ is
//! a copy of a finding bundle (see `canceltree fuzz`): `case.ct`,
//! `meta.json` naming its backends, and each backend's expected text trace
//! in the file `meta.json` maps it to (`cpython-3.11.trace`, ...). Every
//! case runs on every one of its backends that is present here and must
//! print exactly its expected trace; backends whose interpreter is missing
//! are skipped with a message. When all of a case's backends are present,
//! the case must also still show the signature it was recorded with.
//!
//! `CANCELTREE_BLESS=1 cargo test --test regressions` rewrites the expected
//! traces; review the diff before committing, since they record what
//! CPython did.

use canceltree::campaign::bundle::Meta;
use canceltree::campaign::{Opened, judge};
use canceltree::{render, syntax};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;

fn cases() -> Vec<PathBuf> {
    common::case_dirs("tests/regressions")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[test]
fn every_regression_prints_its_expected_traces() {
    let dirs = cases();
    assert!(!dirs.is_empty(), "tests/regressions/ holds no cases");
    let bless = std::env::var_os("CANCELTREE_BLESS").is_some();
    // Each backend is opened once; `None` when it cannot be here.
    let mut opened: BTreeMap<String, Option<Opened>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let meta: Meta = serde_json::from_str(&read(&dir.join("meta.json")))
            .unwrap_or_else(|e| panic!("{name}/meta.json: {e}"));
        let ct = dir.join("case.ct");
        let text = read(&ct);
        let program = syntax::parse(&ct.display().to_string(), &text)
            .unwrap_or_else(|d| panic!("{}", d.render(&text)));
        let labels = render::labels(&program);
        let mut present = 0;
        for spec in &meta.backends {
            let slot = opened
                .entry(spec.clone())
                .or_insert_with(|| match Opened::open(spec) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        eprintln!(
                            "{spec} is not available here ({e}): its regression traces are skipped"
                        );
                        None
                    }
                });
            let Some(o) = slot else { continue };
            present += 1;
            let file = meta
                .traces
                .get(spec)
                .unwrap_or_else(|| panic!("{name}/meta.json has no trace file for {spec}"));
            let expected_path = dir.join(file);
            let got = render::text(&o.backend.run(&program), &labels);
            if bless {
                std::fs::write(&expected_path, &got).expect("writable regression dir");
                continue;
            }
            let expected = read(&expected_path);
            checked += 1;
            if got != expected {
                failures.push(format!(
                    "{name} on {spec} ({}): the trace differs from {}\n--- expected\n{expected}--- got\n{got}",
                    o.backend.describe(),
                    expected_path.display()
                ));
            }
        }
        if present == meta.backends.len() && !bless {
            let mut refs: Vec<&mut Opened> = Vec::new();
            for (spec, slot) in opened.iter_mut() {
                if meta.backends.contains(spec) {
                    refs.push(slot.as_mut().expect("present"));
                }
            }
            // judge compares against the first backend: keep meta's order.
            refs.sort_by_key(|o| meta.backends.iter().position(|b| *b == o.spec));
            let v = judge(&program, &mut refs);
            if !v.failures.iter().any(|f| f.signature == meta.signature) {
                let now: Vec<&str> = v.failures.iter().map(|f| f.signature.as_str()).collect();
                failures.push(format!(
                    "{name}: no longer shows {} (now: {now:?})",
                    meta.signature
                ));
            }
        }
    }
    eprintln!(
        "{checked} regression traces checked in {} cases",
        dirs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
