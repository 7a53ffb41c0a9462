//! Fuzz campaigns end to end: determinism, minimization, bundles and
//! `repro`, `--resume` (also after a kill), and a short cross-version
//! campaign that must find something. Needs CPython 3.11 and 3.12; each test
//! says so and returns when one is missing.

mod common;

use canceltree::ast::Program;
use canceltree::campaign::bundle::{self, FindingKind};
use canceltree::campaign::minimize::Budget;
use canceltree::campaign::{
    self, Config, Opened, Verdict, case_program, judge, minimize_failure, state,
};
use canceltree::syntax;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CROSS: [&str; 2] = ["cpython:3.11", "cpython:3.12"];

fn have_cross() -> bool {
    let v = canceltree::backend::discover::versions();
    let ok = v.contains(&(3, 11)) && v.contains(&(3, 12));
    if !ok {
        eprintln!("needs CPython 3.11 and 3.12: skipped");
    }
    ok
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("canceltree-campaign-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn canceltree(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canceltree"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `examples/wait_for_timer_tie.ct`, on which 3.11 and 3.12 disagree.
fn timer_tie() -> Program {
    let path = "examples/wait_for_timer_tie.ct";
    let src = std::fs::read_to_string(path).unwrap();
    syntax::parse(path, &src).unwrap()
}

/// `program` judged on freshly opened `specs`, which are returned for
/// further runs.
fn judged(program: &Program, specs: &[&str]) -> (Vec<Opened>, Verdict) {
    let mut opened: Vec<Opened> = specs.iter().map(|s| Opened::open(s).unwrap()).collect();
    let mut refs: Vec<&mut Opened> = opened.iter_mut().collect();
    let v = judge(program, &mut refs);
    (opened, v)
}

fn config(out: &Path, seed: u64, cases: u64, jobs: usize) -> Config {
    let mut c = Config::new(out);
    c.backends = CROSS.iter().map(|s| s.to_string()).collect();
    c.seed = Some(seed);
    c.cases = Some(cases);
    c.jobs = Some(jobs);
    c
}

fn signatures(s: &campaign::Summary) -> Vec<String> {
    s.hits.keys().cloned().collect()
}

#[test]
fn the_same_seed_gives_the_same_programs_and_findings() {
    for i in 0..20 {
        assert_eq!(case_program(7, i, 12), case_program(7, i, 12));
        assert_eq!(
            case_program(7, i + 1, 12),
            case_program(8, i, 12),
            "case i of seed S is program S+i"
        );
    }
    if !have_cross() {
        return;
    }
    let (a, b, c) = (temp_dir("det-a"), temp_dir("det-b"), temp_dir("det-c"));
    let one = campaign::run(&config(&a, 40, 120, 1)).expect("campaign runs");
    let two = campaign::run(&config(&b, 40, 120, 2)).expect("campaign runs");
    let again = campaign::run(&config(&c, 40, 120, 1)).expect("campaign runs");
    assert_eq!(
        one.counts, two.counts,
        "counts do not depend on the number of jobs"
    );
    assert_eq!(
        signatures(&one),
        signatures(&two),
        "signatures do not depend on the number of jobs"
    );
    assert_eq!(one.counts, again.counts);
    assert!(
        !one.hits.is_empty(),
        "120 cross-version cases find something"
    );
    for r in &one.findings {
        let ct = |d: &Path| {
            std::fs::read_to_string(d.join(&r.slug).join("case.ct")).expect("bundle written")
        };
        assert_eq!(
            ct(&a).replace(&a.display().to_string(), ""),
            ct(&c).replace(&c.display().to_string(), ""),
            "one job, same seed: the same minimized program"
        );
    }
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn minimization_keeps_the_signature_and_shrinks_the_timer_tie() {
    if !have_cross() {
        return;
    }
    let program = timer_tie();
    let (mut opened, v) = judged(&program, &CROSS);
    let mut refs: Vec<&mut Opened> = opened.iter_mut().collect();
    let failure = v
        .failures
        .first()
        .expect("3.11 and 3.12 disagree on the timer tie")
        .clone();
    assert_eq!(failure.kind, FindingKind::Divergence);
    let (small, stats) = minimize_failure(&program, &failure, &mut refs, Budget::default());
    assert_eq!(stats.nodes_before, program.len());
    assert_eq!(stats.nodes_after, small.len());
    assert!(
        small.len() <= 15 && small.len() < program.len(),
        "{}",
        syntax::print(&small)
    );
    let again = judge(&small, &mut refs);
    assert!(
        again
            .failures
            .iter()
            .any(|f| f.signature == failure.signature),
        "minimized program lost {}: {:?}",
        failure.signature,
        again.failures
    );
    // The result is a valid program that prints and parses back to itself.
    let printed = syntax::print(&small);
    assert!(syntax::parse("min.ct", &printed).unwrap() == small);
}

#[test]
fn a_short_cross_version_campaign_finds_divergences_and_bundles_them() {
    if !have_cross() {
        return;
    }
    let out = temp_dir("short");
    let o = canceltree(&[
        "fuzz",
        "--cases",
        "200",
        "--seed",
        "1",
        "--backend",
        CROSS[0],
        "--backend",
        CROSS[1],
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("plan: cpython:3.11 vs cpython:3.12"), "{all}");
    assert!(all.contains("ran 200 cases"), "{all}");
    let bundles = bundle::scan(&out);
    let divergences = bundles
        .iter()
        .filter(|(_, m)| m.kind == FindingKind::Divergence)
        .count();
    assert!(divergences >= 1, "no divergence in 200 cases:\n{all}");
    for (slug, meta) in &bundles {
        let dir = out.join(slug);
        for f in ["case.ct", "case.py", "traces.txt", "README.md", "meta.json"] {
            assert!(dir.join(f).is_file(), "{slug} has no {f}");
        }
        for b in &meta.backends {
            assert!(
                dir.join(&meta.traces[b]).is_file(),
                "{slug} has no trace for {b}"
            );
        }
        assert!(meta.minimized, "{slug}");
        assert!(meta.nodes_after <= 15, "{slug}: {} nodes", meta.nodes_after);
        if meta.kind == FindingKind::Divergence {
            assert!(
                meta.signature.starts_with("cpython:3.11!=cpython:3.12@"),
                "{}",
                meta.signature
            );
            assert_eq!(meta.backends, CROSS);
        }
        assert!(
            all.contains(&meta.signature),
            "summary lists {}",
            meta.signature
        );
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains(&format!("canceltree repro {}", dir.display())),
            "{readme}"
        );
    }
    let st = state::load(&out).expect("state file written");
    assert_eq!(st.next_case, 200);
    assert_eq!(st.counts.cases, 200);
    assert_eq!(st.findings.len(), bundles.len());

    // Every bundle still fails on its backends: repro exits 1, on the
    // directory and on its case.ct alone.
    let (slug, meta) = bundles
        .iter()
        .find(|(_, m)| m.kind == FindingKind::Divergence)
        .unwrap();
    let dir = out.join(slug);
    let o = canceltree(&["repro", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("same signature as recorded"),
        "{}",
        text(&o)
    );
    let o = canceltree(&["repro", dir.join("case.ct").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&meta.signature), "{}", text(&o));
    // On one backend alone it cannot differ: exit 0, unless that trace
    // breaks an invariant.
    let o = canceltree(&["repro", dir.to_str().unwrap(), "--backend", CROSS[1]]);
    let out1 = text(&o);
    match o.status.code() {
        Some(0) => assert!(out1.contains("passes"), "{out1}"),
        Some(1) => assert!(
            out1.contains("violation:") && !out1.contains("!="),
            "{out1}"
        ),
        other => panic!("exit {other:?}: {out1}"),
    }
    // Bad input: exit 2.
    let o = canceltree(&["repro", out.join("no-such-bundle").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn minimize_by_hand_prints_a_program_repro_can_rerun() {
    if !have_cross() {
        return;
    }
    let o = canceltree(&[
        "minimize",
        "examples/wait_for_timer_tie.ct",
        "-b",
        CROSS[0],
        "-b",
        CROSS[1],
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        printed.starts_with("; canceltree finding: cpython:3.11!=cpython:3.12@"),
        "{printed}"
    );
    let file = temp_dir("hand").with_extension("ct");
    std::fs::write(&file, &printed).unwrap();
    let o = canceltree(&["repro", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let _ = std::fs::remove_file(file);
    // A program on which the backends agree has nothing to minimize.
    let o = canceltree(&[
        "minimize",
        "examples/say_after_sequential.ct",
        "-b",
        CROSS[0],
        "-b",
        CROSS[1],
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nothing to minimize"), "{}", text(&o));
}

#[test]
fn resume_continues_from_the_state_file() {
    if !have_cross() {
        return;
    }
    let out = temp_dir("resume");
    let first = campaign::run(&config(&out, 5, 60, 2)).expect("campaign runs");
    assert_eq!((first.first_case, first.next_case), (0, 60));
    let mut cfg = config(&out, 5, 100, 2);
    cfg.seed = None; // taken from the state file
    cfg.resume = true;
    let second = campaign::run(&cfg).expect("resumed campaign runs");
    assert_eq!((second.first_case, second.next_case), (60, 100));
    assert_eq!(second.seed, 5);
    assert_eq!(second.counts.cases, 40);
    assert_eq!(second.total.cases, 100);
    // The two sessions together count exactly what one campaign of 100 does.
    let whole =
        campaign::run(&config(&temp_dir("resume-whole"), 5, 100, 2)).expect("campaign runs");
    assert_eq!(second.total, whole.counts);
    // Resuming under another seed, or with other backends, is refused.
    cfg.seed = Some(6);
    assert!(campaign::run(&cfg).unwrap_err().contains("--seed 6"));
    cfg.seed = None;
    cfg.backends = vec![CROSS[1].to_string(), CROSS[0].to_string()];
    assert!(campaign::run(&cfg).unwrap_err().contains("other backends"));
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(temp_dir("resume-whole"));
}

#[test]
fn a_killed_campaign_loses_no_finding_and_resumes() {
    if !have_cross() {
        return;
    }
    let out = temp_dir("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_canceltree"))
        .args([
            "fuzz",
            "--time",
            "120",
            "--seed",
            "9",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--backend", CROSS[0], "--backend", CROSS[1]])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    // Wait for a bundle and a state file that has moved past case 0.
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let moved = state::load(&out).is_ok_and(|s| s.next_case > 0 && !s.findings.is_empty());
        if moved && !bundle::scan(&out).is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no finding or state after 60 s"
        );
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let saved = state::load(&out).expect("the state file is whole after a kill");
    // Every finding the state file names has a bundle with a program.
    for r in &saved.findings {
        let dir = out.join(&r.slug);
        assert!(
            dir.join("meta.json").is_file() && dir.join("case.ct").is_file(),
            "{} lost",
            r.signature
        );
    }
    let known: Vec<String> = bundle::scan(&out)
        .into_iter()
        .map(|(_, m)| m.signature)
        .collect();
    let mut cfg = config(&out, 9, saved.next_case + 30, 2);
    cfg.seed = None;
    cfg.resume = true;
    let resumed = campaign::run(&cfg).expect("resume after a kill");
    assert_eq!(resumed.first_case, saved.next_case);
    assert_eq!(resumed.next_case, saved.next_case + 30);
    let after: Vec<String> = bundle::scan(&out)
        .into_iter()
        .map(|(_, m)| m.signature)
        .collect();
    for s in &known {
        assert!(after.contains(s), "{s} lost on resume");
    }
    assert!(
        bundle::scan(&out).iter().all(|(_, m)| m.minimized),
        "resumed campaign finishes minimizing"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_bundle_left_unminimized_is_minimized_by_the_next_session() {
    if !have_cross() {
        return;
    }
    let out = temp_dir("unminimized");
    let program = timer_tie();
    let (_, v) = judged(&program, &CROSS);
    let failure = v.failures[0].clone();
    let slug = canceltree::campaign::signature::slug(&failure.signature);
    let described = Default::default();
    // What a campaign killed while minimizing leaves behind.
    let from = campaign::Provenance {
        origin: None,
        nodes_before: program.len(),
        minimized: false,
    };
    campaign::write_bundle(&out, &slug, &program, &failure, &v, &described, from).unwrap();
    assert!(!bundle::scan(&out)[0].1.minimized);
    let summary = campaign::run(&config(&out, 1, 0, 1)).expect("campaign runs");
    assert_eq!(summary.counts.cases, 0);
    let (_, meta) = &bundle::scan(&out)[0];
    assert!(
        meta.minimized && meta.nodes_after < program.len(),
        "{meta:?}"
    );
    assert_eq!(meta.signature, failure.signature);
    let _ = std::fs::remove_dir_all(out);
}

/// A stand-in for CPython 3.12 that exits abruptly (as a segfault would)
/// on every program that calls `uncancel`.
fn crashing_312() -> PathBuf {
    let real =
        canceltree::backend::discover::resolve(&canceltree::backend::Interpreter::Version(3, 12))
            .expect("3.12 found")
            .path;
    common::crashing_interpreter(&real, &temp_dir("fake"), ".uncancel()")
}

#[test]
fn a_crash_is_counted_and_kept_as_a_minimized_finding_not_a_divergence() {
    if !have_cross() {
        return;
    }
    let fake = crashing_312();
    let out = temp_dir("crashes");
    let mut cfg = config(&out, 3, 40, 2);
    let crasher = format!("cpython:{}", fake.display());
    cfg.backends = vec!["cpython:3.12".to_string(), crasher.clone()];
    let s = campaign::run(&cfg).expect("campaign runs");
    assert_eq!(s.counts.cases, 40, "no case is lost");
    assert!(
        s.counts.backend_failures > 0 && s.counts.crashed == s.counts.backend_failures,
        "{:?}",
        s.counts
    );
    assert_eq!(
        s.counts.divergent, 0,
        "the same interpreter agrees with itself: {:?}",
        s.findings
    );
    let crashes: Vec<_> = s
        .findings
        .iter()
        .filter(|r| r.kind == FindingKind::Crash)
        .collect();
    assert_eq!(
        crashes.len(),
        1,
        "one cause, one signature: {:?}",
        s.findings
    );
    let c = crashes[0];
    assert_eq!(c.signature, format!("crash:{crasher}:worker died:"));
    assert_eq!(c.backends, vec![crasher]);
    // Only `(uncancel)` makes the stand-in crash: minimization keeps it
    // and drops the rest.
    assert!(c.minimized && c.nodes_after <= 3, "{c:?}");
    let case = std::fs::read_to_string(out.join(&c.slug).join("case.ct")).unwrap();
    assert!(case.contains("(uncancel"), "{case}");
    assert!(s.findings.iter().all(|r| matches!(
        r.kind,
        FindingKind::Violation | FindingKind::KnownBug | FindingKind::Crash
    )));
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(fake.parent().unwrap());
}

fn verdict_kinds(program: &str, specs: &[&str]) -> Vec<(String, FindingKind)> {
    let p = syntax::parse("case.ct", &format!("(canceltree 1)\n{program}")).expect("valid program");
    judged(&p, specs)
        .1
        .failures
        .into_iter()
        .map(|f| (f.signature, f.kind))
        .collect()
}

/// Size-50 seed 370736, minimized on 3.12. What is wrong: after
/// `main`'s `(gc)`, CPython's collector list has the weak task `e` ahead
/// of `c` and `d` (which await each other, named by cells of `a`'s
/// frame), so the final collection reports `e` destroyed first; the
/// model's replay of that collection puts `e` last. The cause is not
/// pinned down. Until it is, this is a known gap, kept apart from
/// divergences. (The gaps this test held before are fixed: size-30 seeds
/// 222082, 174400 on 3.11 and 209836 on the eager profiles, size-50 seeds
/// 449 and 241788, and campaign case 3419, in tests/model_findings/
/// a-gathers-children-list-*, a-cancel-leaving-3-11-wait-for-*,
/// wait-for-0-re-raising-*, a-task-woken-by-a-failed-future-*,
/// a-frame-lets-go-of-its-locals-in-localsplus-order and
/// a-frames-cells-reach-*.)
#[test]
fn a_finalization_only_difference_is_a_known_model_gap_not_a_divergence() {
    if !canceltree::backend::discover::versions().contains(&(3, 12)) {
        return;
    }
    let found = verdict_kinds(
        "(main (spawn a (future b) (try (await b) (except BaseException)) \
         (cancel-self) (spawn c (await d)) (spawn d (await c)) (wait (ref b))) \
         (try (await a) (except BaseException)) (spawn e :weak (sleep 1)) (gc))",
        &["model:3.12", "cpython:3.12"],
    );
    assert_eq!(
        found,
        vec![(
            "finalization:model:3.12!=cpython:3.12@handler".to_string(),
            FindingKind::KnownGap
        )]
    );
}

#[test]
fn a_violation_gh_86296_explains_is_a_known_cpython_bug() {
    let found = verdict_kinds(
        "(main (cancel-self) (wait-for 1 (cancelling)))",
        &["model:3.11"],
    );
    assert_eq!(
        found,
        vec![(
            "gh-86296:cancel_delivered@cancel-self".to_string(),
            FindingKind::KnownBug
        )]
    );
}
