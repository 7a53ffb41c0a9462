//! Claims about the canonical printer, `head` labels, docs/FORMAT.md's
//! examples, and parsing at scale (deep nesting on a small stack).

use canceltree::ast::{Kind, Time};
use canceltree::syntax::{head, parse, print};

/// A program whose body starts on line 3, column 3.
fn prog(body: &str) -> String {
    format!("(canceltree 1)\n(main\n  {body})\n")
}

// ---- printer -----------------------------------------------------------------

#[test]
fn printer_layout_is_canonical() {
    let text = "(canceltree 1) (main (spawn a (sleep 1) (return \"a \\\"q\\\" \\\\\")) (try (await a) \
                (except ValueError (cancel-self \"x\"))) (return))";
    let p = parse("t.ct", text).unwrap();
    assert_eq!(
        print(&p),
        "(canceltree 1)\n\n(main\n  (spawn a (sleep 1) (return \"a \\\"q\\\" \\\\\"))\n  (try\n    \
         (await a)\n    (except ValueError (cancel-self \"x\")))\n  (return none))\n"
    );
}

#[test]
fn printer_breaks_lines_longer_than_80_columns() {
    let p = parse("t.ct", &prog("(gather (sleep 1) (sleep 2) (sleep 3) (sleep 4) (sleep 5) (sleep 6) (sleep 7) (sleep 8))"))
        .unwrap();
    assert!(
        print(&p).contains("  (gather\n    (sleep 1)\n"),
        "{}",
        print(&p)
    );
    let p = parse("t.ct", &prog("(gather (sleep 1) (sleep 2) (sleep 3))")).unwrap();
    assert!(print(&p).contains("  (gather (sleep 1) (sleep 2) (sleep 3)))"));
}

#[test]
fn printer_spells_times_so_they_read_back_exactly() {
    let p = parse(
        "t.ct",
        &prog(
            "(sleep 2.50) (sleep -0.0) (sleep 100000000000000000000.0) (wait-for none (sleep 0))",
        ),
    )
    .unwrap();
    let out = print(&p);
    assert!(
        out.contains("(sleep 2.5)\n  (sleep -0.0)\n  (sleep 100000000000000000000.0)"),
        "{out}"
    );
    assert_eq!(parse("t.ct", &out).unwrap(), p);
    assert_eq!(p.kind(2), &Kind::Sleep(Time(-0.0)));
}

#[test]
fn head_labels_are_the_ct_spelling_without_children() {
    let text = prog(
        "(spawn a :weak (sleep 1)) (future f) (cancel f \"bye\") (taskgroup g (spawn b :in g)) \
         (gather :return-exceptions (ref f)) (try (sleep 1) (except (group ValueError))) \
         (spawn c) (wait :first-completed :timeout 0.5 (ref c)) (let l (gather)) (return)",
    );
    let p = parse("t.ct", &text).unwrap();
    let heads: Vec<String> = (0..p.len() as u32).map(|id| head(&p, id)).collect();
    let expect = [
        "main",
        "spawn a :weak",
        "sleep 1",
        "future f",
        "cancel f \"bye\"",
        "taskgroup g",
        "spawn b :in g",
        "gather :return-exceptions",
        "ref f",
        "try",
        "sleep 1",
        "except (group ValueError)",
        "spawn c",
        "wait :first-completed :timeout 0.5",
        "ref c",
        "let l",
        "gather",
        "return none",
    ];
    assert_eq!(heads, expect);
}

#[test]
fn all_completed_is_the_default_and_prints_as_nothing() {
    let a = parse("t.ct", &prog("(spawn a) (wait :all-completed (ref a))")).unwrap();
    let b = parse("t.ct", &prog("(spawn a) (wait (ref a))")).unwrap();
    assert_eq!(a, b);
    assert!(print(&a).contains("(wait (ref a))"));
}

// ---- scale -------------------------------------------------------------------

#[test]
fn a_million_deep_program_parses_checks_and_prints_on_a_small_stack() {
    let n = 1_000_000;
    let mut text = String::from("(canceltree 1)\n(main ");
    text.push_str(&"(do ".repeat(n));
    text.push_str("(spawn a) (await a)");
    text.push_str(&")".repeat(n + 1));
    let run = move || {
        let p = parse("deep.ct", &text).unwrap();
        assert_eq!(p.len(), n + 3);
        let out = print(&p);
        // Header, blank line, main, one line per do, spawn, await.
        assert_eq!(out.lines().count(), n + 5);
        assert!(parse("deep.ct", &out).unwrap() == p);
    };
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn many_distinct_names_parse_in_linear_time() {
    let body: String = (0..50_000).map(|i| format!("(future f{i}) ")).collect();
    let p = parse("t.ct", &prog(&body)).unwrap();
    assert_eq!(p.names.len(), 50_000);
}

// ---- documentation -----------------------------------------------------------

/// The ```lisp blocks of docs/FORMAT.md.
fn format_md_examples() -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    doc.split("```lisp\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn format_md_examples_are_canonical_programs() {
    let blocks = format_md_examples();
    assert!(blocks.len() >= 2);
    for b in blocks {
        let p = parse("FORMAT.md", &b).unwrap_or_else(|d| panic!("{}", d.render(&b)));
        let uncommented: String = b
            .lines()
            .filter(|l| !l.starts_with(';'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(print(&p), uncommented);
    }
}

#[test]
fn format_md_node_table_matches_the_numbering() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let table = doc.split("Its nodes:").nth(1).unwrap();
    let rows: Vec<(u32, String)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = cells.get(1)?.parse().ok()?;
            Some((n, cells.get(2)?.trim_matches('`').to_string()))
        })
        .collect();
    let blocks = format_md_examples();
    let p = parse("FORMAT.md", blocks.last().unwrap()).unwrap();
    assert_eq!(rows.len(), p.len());
    for (n, h) in rows {
        assert_eq!(head(&p, n), h, "node {n}");
    }
}
