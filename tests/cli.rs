//! The command line as a user meets it: exit codes, error positions, output.

use std::process::{Command, Output};

fn canceltree(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canceltree"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("canceltree-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn has_python(minor: u32) -> bool {
    canceltree::backend::discover::versions().contains(&(3, minor))
}

#[test]
fn malformed_input_exits_2_with_file_line_column_and_caret() {
    let cases = [
        ("unclosed.ct", "(canceltree 1)\n(main\n  (sleep 1)\n"),
        ("bad_char.ct", "(canceltree 1)\n(main (sleep 1) @)\n"),
        ("unknown_form.ct", "(canceltree 1)\n(main (sleeep 1))\n"),
        ("unbound.ct", "(canceltree 1)\n(main\n  (await nobody))\n"),
        ("no_header.ct", "(main (sleep 1))\n"),
        ("binary.ct", "\u{0}\u{1}\u{2}(("),
    ];
    for (name, text) in cases {
        let path = temp_file(name, text);
        let o = canceltree(&["run", &path, "--backend", "cpython:3.12"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{path}:")),
            "{name}: no file:line:col in {err}"
        );
        assert!(err.contains('^'), "{name}: no caret in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn a_missing_file_or_bad_backend_spec_exits_2_and_says_why() {
    let o = canceltree(&["run", "/nonexistent/x.ct"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read /nonexistent/x.ct"),
        "{}",
        stderr(&o)
    );
    let o = canceltree(&[
        "run",
        "examples/say_after_sequential.ct",
        "--backend",
        "cpython:3.12+turbo",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("+turbo"), "{}", stderr(&o));
}

#[test]
fn run_on_one_backend_prints_the_trace_and_exits_0() {
    if !has_python(12) {
        return eprintln!("no CPython 3.12: skipped");
    }
    let o = canceltree(&[
        "run",
        "examples/say_after_sequential.ct",
        "--backend",
        "cpython:3.12",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("events:\n"), "{out}");
    assert!(out.contains("outcome: main result None"), "{out}");
}

#[test]
fn run_on_backends_that_differ_prints_a_diff_and_exits_1() {
    if !has_python(11) || !has_python(12) {
        return eprintln!("needs CPython 3.11 and 3.12: skipped");
    }
    // 3.12 rebuilt wait_for on timeout(), which changes who wins a timer tie.
    let o = canceltree(&[
        "run",
        "examples/wait_for_timer_tie.ct",
        "-b",
        "cpython:3.11",
        "-b",
        "cpython:3.12",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("cpython:3.11") && out.contains("cpython:3.12") && out.contains('!'),
        "{out}"
    );
}

#[test]
fn run_on_backends_that_agree_exits_0_and_prints_one_trace() {
    if !has_python(12) {
        return eprintln!("no CPython 3.12: skipped");
    }
    let o = canceltree(&[
        "run",
        "examples/taskgroup_basic.ct",
        "-b",
        "cpython:3.12",
        "-b",
        "cpython:3.12+pytask",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("all 2 backends agree:\n"));
}

#[test]
fn json_output_parses_as_a_trace() {
    if !has_python(12) {
        return eprintln!("no CPython 3.12: skipped");
    }
    let o = canceltree(&[
        "run",
        "examples/cancel_gather_from_child.ct",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t: canceltree::trace::Trace = serde_json::from_slice(&o.stdout).expect("a Trace in JSON");
    assert!(!t.events.is_empty());
}

#[test]
fn gen_is_deterministic_and_its_output_parses() {
    let a = stdout(&canceltree(&["gen", "--seed", "42", "--size", "20"]));
    let b = stdout(&canceltree(&["gen", "--seed", "42", "--size", "20"]));
    assert_eq!(a, b);
    canceltree::syntax::parse("gen.ct", &a).unwrap_or_else(|d| panic!("{}", d.render(&a)));
}

#[test]
fn export_prints_a_script_that_names_its_source() {
    let o = canceltree(&["export", "examples/say_after_sequential.ct"]);
    assert_eq!(o.status.code(), Some(0));
    let s = stdout(&o);
    assert!(
        s.contains("examples/say_after_sequential.ct") && s.contains("async def main():"),
        "{s}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly_not_with_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    // Far more text than a pipe buffers, so the writes after the reader
    // is gone fail with a broken pipe (as in `canceltree gen ... | head`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_canceltree"))
        .args(["gen", "--seed", "1", "--size", "200000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first[..14], b"(canceltree 1)");
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn fingerprint_prints_a_line_per_program_and_a_column_per_backend() {
    let o = canceltree(&[
        "fingerprint",
        "--cases",
        "3",
        "--size",
        "10",
        "--size",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[0],
        "# size seed model:3.11 model:3.12 model:3.13 model:3.12+eager model:3.13+eager"
    );
    let keys: Vec<String> = lines[1..]
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(keys, ["10 7", "10 8", "10 9", "20 7", "20 8", "20 9"]);
    assert!(lines[1..].iter().all(|l| l.split(' ').count() == 7), "{s}");
    let bad = canceltree(&["fingerprint", "-b", "model:2.7", "--cases", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).starts_with("error:"), "{}", stderr(&bad));
}
