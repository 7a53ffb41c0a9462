//! The `.ct` language: reading text into an `ast::Program` (reader, lower),
//! the static checks Python would enforce or that make a program meaningless
//! (check), and the canonical printer (print). docs/FORMAT.md is the spec.
//!
//! Pipeline: `reader::read` (characters to s-expressions) → `lower::lower`
//! (s-expressions to nodes, shape errors) → `check::check` (names and
//! placement). Nothing recurses on input depth.

pub mod args;
pub mod check;
pub mod draft;
pub mod lower;
pub mod print;
pub mod reader;

pub use check::BindKind;
pub use print::{head, print};

use crate::ast::Program;
use crate::diag::Diagnostic;

/// Reads, lowers and checks a program. `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Program, Diagnostic> {
    let l = lower::lower(file, &reader::read(file, text)?)?;
    match check::check(&l.prog, file, Some(&l.name_pos))
        .into_iter()
        .next()
    {
        Some(d) => Err(d),
        None => Ok(l.prog),
    }
}

/// Reads and lowers a program without the static checks of `check`: the
/// shape is valid, but names may be unbound or misused.
pub fn parse_unchecked(file: &str, text: &str) -> Result<Program, Diagnostic> {
    Ok(lower::lower(file, &reader::read(file, text)?)?.prog)
}

/// Like `parse`, but from raw bytes: invalid UTF-8 is reported at the
/// position of the first bad byte.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Program, Diagnostic> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(file, text),
        Err(e) => {
            let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
            let line = good.matches('\n').count() as u32 + 1;
            let col = good.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
            Err(Diagnostic::new(
                file,
                line,
                col,
                "the file is not valid UTF-8; save it as UTF-8 (outside comments, only ASCII \
                 is allowed)",
            ))
        }
    }
}

/// All static-check problems of a program built in code (positions are the
/// nodes' `pos`, so `Pos::NONE` for unparsed programs), sorted by position.
pub fn check(p: &Program, file: &str) -> Vec<Diagnostic> {
    check::check(p, file, None)
}

/// The `parse` fuzz target's property, callable from tests: arbitrary bytes
/// never panic the parser, errors point inside the text, and an accepted
/// program prints to text that parses back to the same program and prints
/// identically. Panics when the property fails.
pub fn fuzz_parse(data: &[u8]) {
    match parse_bytes("fuzz.ct", data) {
        Ok(p) => assert_roundtrip(&p),
        Err(d) => {
            let text = String::from_utf8_lossy(data);
            let lines = text.split('\n').count() as u32;
            assert!(
                d.line >= 1 && d.line <= lines && d.col >= 1,
                "error outside the text: {d}"
            );
            let _ = d.render(&text);
        }
    }
}

/// The `parse_print` fuzz target's property: bytes are read as drafts
/// (`draft::from_bytes`), built into a statically valid program, which must
/// print, parse back equal, and print identically.
pub fn fuzz_parse_print(data: &[u8]) {
    let p = draft::build(&draft::from_bytes(data));
    assert!(
        check(&p, "draft").is_empty(),
        "draft::build made an invalid program: {:?}",
        check(&p, "draft")
    );
    assert_roundtrip(&p);
}

fn assert_roundtrip(p: &Program) {
    let text = print(p);
    let q = match parse("printed.ct", &text) {
        Ok(q) => q,
        Err(d) => panic!(
            "printed program does not parse:\n{}\n{text}",
            d.render(&text)
        ),
    };
    assert!(
        q == *p,
        "printed program parses to a different program:\n{text}"
    );
    assert_eq!(print(&q), text, "printing is not idempotent");
}
