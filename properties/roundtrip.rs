//! Properties of the `.ct` syntax: the canonical printer and the parser are
//! inverse on every well-formed program, printing is a fixed point, and no
//! input, however malformed, panics the parser.

#[path = "strategy.rs"]
mod strategy;

use canceltree::syntax::{self, draft, parse, print};
use proptest::prelude::*;
use strategy::arb_program;

proptest! {
    // 512 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_programs_pass_every_static_check(p in arb_program()) {
        prop_assert_eq!(syntax::check(&p, "gen.ct"), vec![]);
    }

    #[test]
    fn parse_of_print_is_the_program(p in arb_program()) {
        let text = print(&p);
        let q = parse("gen.ct", &text).map_err(|d| TestCaseError::fail(d.render(&text)))?;
        prop_assert!(q == p, "reparsed program differs:\n{}", text);
    }

    #[test]
    fn print_is_a_fixed_point(p in arb_program()) {
        let text = print(&p);
        let q = parse("gen.ct", &text).map_err(|d| TestCaseError::fail(d.render(&text)))?;
        prop_assert_eq!(print(&q), text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(data in prop::collection::vec(any::<u8>(), 0..256)) {
        syntax::fuzz_parse(&data);
    }

    #[test]
    fn edited_programs_never_panic_the_parser(
        p in arb_program(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..4),
    ) {
        // Delete, duplicate, replace or insert characters of a valid program,
        // which reaches far deeper into the lowering and checks than noise.
        let mut chars: Vec<char> = print(&p).chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len().max(1)).min(chars.len());
            match op {
                0 if i < chars.len() => { chars.remove(i); }
                1 if i < chars.len() => { let d = chars[i]; chars.insert(i, d); }
                2 if i < chars.len() => chars[i] = c,
                _ => chars.insert(i, c),
            }
        }
        let text: String = chars.into_iter().collect();
        syntax::fuzz_parse(text.as_bytes());
    }

    #[test]
    fn token_soup_never_panics_the_parser(tokens in prop::collection::vec(token(), 0..40)) {
        let text = format!("(canceltree 1)\n(main {})", tokens.join(" "));
        syntax::fuzz_parse(text.as_bytes());
    }

    #[test]
    fn drafts_from_any_bytes_round_trip(data in prop::collection::vec(any::<u8>(), 0..512)) {
        syntax::fuzz_parse_print(&data);
    }
}

/// Tokens of the language, so that random sequences form near-programs.
fn token() -> impl Strategy<Value = String> {
    let words: Vec<&'static str> = syntax::args::FORMS
        .iter()
        .map(|(n, _)| *n)
        .chain([
            "(",
            "(",
            "(",
            ")",
            ")",
            ")",
            "a",
            "b",
            "g",
            "f",
            ":weak",
            ":keep",
            ":in",
            ":timeout",
            ":return-exceptions",
            ":first-completed",
            "(group",
            "ValueError",
            "Exception",
            "E1",
            "none",
            "true",
            "1",
            "0.5",
            "-1",
            "\"m\"",
        ])
        .collect();
    prop::sample::select(words).prop_map(str::to_string)
}

#[test]
fn draft_bytes_decode_deterministically() {
    let data: Vec<u8> = (0..=255).collect();
    assert_eq!(draft::from_bytes(&data), draft::from_bytes(&data));
}
