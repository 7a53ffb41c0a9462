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

// ---- the generator's targets: model_invariants and differential ----------

use canceltree::generate;

/// The generated seeds of the two corpora, as (seed, size): written as
/// the bytes that decode to `generate::program(seed, size)`.
fn generated_seeds() -> Vec<(u64, usize)> {
    [4, 8, 12, 16, 24, 32, 48, 64]
        .into_iter()
        .flat_map(|size| (0..5).map(move |seed| (seed, size)))
        .collect()
}

const GENERATOR_CORPORA: [&str; 2] = ["fuzz/corpus/model_invariants", "fuzz/corpus/differential"];

/// With `CANCELTREE_WRITE_CORPUS=1` (run this test alone: `cargo test --test
/// fuzz_corpus the_generator_corpora`), (re)writes the seed corpora of the
/// model_invariants and differential targets: every example as it is
/// (`.ct` text, which the targets read as that program), and the generated
/// seeds that pass both targets' properties today (a corpus is a set of
/// starting points, not a regression suite: programs that fail are
/// findings, reported and minimized elsewhere). Without the variable it
/// checks that both corpora hold every example unchanged.
#[test]
fn the_generator_corpora_hold_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("CANCELTREE_WRITE_CORPUS").is_some() {
        for dir in GENERATOR_CORPORA {
            fs::create_dir_all(root.join(dir)).expect("corpus directory");
        }
        let mut kept = 0;
        for (seed, size) in generated_seeds() {
            let data = generate::fuzz_program_bytes(seed, size);
            let passes = std::panic::catch_unwind(|| {
                generate::fuzz_model_invariants(&data);
                generate::fuzz_differential(&data);
            })
            .is_ok();
            for dir in GENERATOR_CORPORA {
                let path = root.join(dir).join(format!("gen-s{seed}-n{size}"));
                if passes {
                    fs::write(&path, &data).expect("corpus file");
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
            kept += usize::from(passes);
        }
        eprintln!("kept {kept} of {} generated seeds", generated_seeds().len());
        for example in files("examples", Some("ct")) {
            let text = fs::read(&example).expect("example");
            for dir in GENERATOR_CORPORA {
                let name = example.file_name().expect("a file name");
                fs::write(root.join(dir).join(name), &text).expect("corpus file");
            }
        }
    }
    for example in files("examples", Some("ct")) {
        let name = example.file_name().expect("a file name");
        let text = fs::read(&example).expect("example");
        for dir in GENERATOR_CORPORA {
            let seed = root.join(dir).join(name);
            assert!(
                fs::read(&seed).is_ok_and(|s| s == text),
                "{} is missing or differs from {}; refresh the corpora with \
                 CANCELTREE_WRITE_CORPUS=1 cargo test --test fuzz_corpus the_generator_corpora",
                seed.display(),
                example.display()
            );
        }
    }
}

#[test]
fn every_model_invariants_corpus_input_keeps_the_invariants_on_every_profile() {
    let n = replay(
        "fuzz/corpus/model_invariants",
        None,
        generate::fuzz_model_invariants,
    );
    assert!(n >= 60, "the model_invariants corpus has only {n} seeds");
}

#[test]
fn every_differential_corpus_input_agrees_with_cpython() {
    // Skips (with a message) each profile whose CPython is not installed.
    let n = replay(
        "fuzz/corpus/differential",
        None,
        generate::fuzz_differential,
    );
    assert!(n >= 60, "the differential corpus has only {n} seeds");
}

#[test]
fn generated_corpus_seeds_decode_to_their_programs() {
    for dir in GENERATOR_CORPORA {
        for path in files(dir, None) {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix("gen-s") else {
                continue;
            };
            let (seed, size) = rest.split_once("-n").expect("gen-sSEED-nSIZE");
            let (seed, size): (u64, usize) = (seed.parse().unwrap(), size.parse().unwrap());
            let data = fs::read(&path).unwrap();
            assert_eq!(
                generate::fuzz_program(&data),
                generate::program(seed, size),
                "{} no longer decodes to program({seed}, {size}); the generator changed, so \
                 refresh the corpora with CANCELTREE_WRITE_CORPUS=1 cargo test --test fuzz_corpus the_generator_corpora",
                path.display()
            );
        }
    }
}
