//! Every example agrees with its golden CPython trace on every model
//! profile. Goldens are looked up as tests/examples.rs does:
//! `NAME.KEY.trace` if present, else `NAME.trace`. Examples the model does
//! not reproduce yet are listed in `KNOWN_GAPS` (profile key, example); the
//! test fails when a listed gap closes or an unlisted one opens.
//! This runs the model only; tests/examples.rs checks the goldens against
//! CPython itself.

mod common;

use canceltree::backend::{self, Spec};
use canceltree::{render, syntax};

const PROFILES: [&str; 5] = ["3.11", "3.12", "3.13", "3.12+eager", "3.13+eager"];

/// (profile key, example stem) pairs the model does not reproduce yet.
const KNOWN_GAPS: &[(&str, &str)] = &[];

#[test]
fn every_example_matches_its_golden_trace_on_every_model_profile() {
    let mut gaps: Vec<(String, String)> = Vec::new();
    let mut details = Vec::new();
    let mut table = Vec::new();
    for key in PROFILES {
        let mut b =
            backend::open(&Spec::parse(&format!("model:{key}")).unwrap()).expect("model opens");
        let mut pass = 0;
        let files = common::examples();
        for path in &files {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(path).unwrap();
            let prog = syntax::parse(&path.display().to_string(), &text)
                .unwrap_or_else(|d| panic!("{}", d.render(&text)));
            let got = render::text(&b.run(&prog), &render::labels(&prog));
            let want = common::golden_for(&stem, key)
                .map(|(_, t)| t)
                .unwrap_or_else(|| panic!("no golden trace for {stem}"));
            if got == want {
                pass += 1;
            } else {
                gaps.push((key.to_string(), stem.clone()));
                if details.len() < 3 {
                    details.push(format!(
                        "{stem} on model:{key}:\n--- golden\n{want}--- model\n{got}"
                    ));
                }
            }
        }
        table.push(format!(
            "model:{key}: {pass}/{} examples agree",
            files.len()
        ));
    }
    eprintln!("{}", table.join("\n"));
    let known: Vec<(String, String)> = KNOWN_GAPS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let opened: Vec<_> = gaps.iter().filter(|g| !known.contains(g)).collect();
    let closed: Vec<_> = known.iter().filter(|g| !gaps.contains(g)).collect();
    assert!(
        opened.is_empty() && closed.is_empty(),
        "new gaps: {opened:?}\nclosed gaps (remove them from KNOWN_GAPS): {closed:?}\n{}",
        details.join("\n")
    );
}
