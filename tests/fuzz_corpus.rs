//! Replays the fuzz corpora through the fuzz targets' properties, so every
//! seed and every saved finding is checked by a plain `cargo test`, with no
//! nightly toolchain. Files starting with `.` (libFuzzer's scratch) are skipped.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &str, ext: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    out.sort();
    out
}

fn replay(dir: &str, ext: Option<&str>, property: fn(&[u8])) -> usize {
    let paths = files(dir, ext);
    for path in &paths {
        let data = fs::read(path).expect("corpus file");
        if std::panic::catch_unwind(|| property(&data)).is_err() {
            panic!("{} fails its fuzz property", path.display());
        }
    }
    paths.len()
}

#[test]
fn every_parse_corpus_input_keeps_the_parse_property() {
    let n = replay("fuzz/corpus/parse", None, canceltree::syntax::fuzz_parse);
    assert!(n >= 10, "the parse corpus has only {n} seeds");
}

#[test]
fn every_parse_print_corpus_input_keeps_the_parse_print_property() {
    let n = replay(
        "fuzz/corpus/parse_print",
        None,
        canceltree::syntax::fuzz_parse_print,
    );
    assert!(n >= 3, "the parse_print corpus has only {n} seeds");
}

#[test]
fn every_example_keeps_the_parse_property() {
    replay("examples", Some("ct"), canceltree::syntax::fuzz_parse);
}

#[test]
fn the_parse_corpus_holds_accepted_and_rejected_programs() {
    let (mut ok, mut bad) = (0, 0);
    for path in files("fuzz/corpus/parse", None) {
        match canceltree::syntax::parse_bytes("seed.ct", &fs::read(&path).expect("corpus file")) {
            Ok(_) => ok += 1,
            Err(_) => bad += 1,
        }
    }
    assert!(ok >= 3 && bad >= 5, "{ok} accepted, {bad} rejected");
}
