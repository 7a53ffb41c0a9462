//! Claims about the `.ct` reader, lowering and static checks: one
//! test per static error and per class of malformed input, each asserting
//! the exact `file:line:col` and the gist of the message.

use canceltree::diag::Diagnostic;
use canceltree::syntax::{parse, parse_bytes, print};

/// A program whose body starts on line 3, column 3.
fn prog(body: &str) -> String {
    format!("(canceltree 1)\n(main\n  {body})\n")
}

#[track_caller]
fn fails(text: &str, line: u32, col: u32, needle: &str) -> Diagnostic {
    let d = match parse("t.ct", text) {
        Ok(p) => panic!("expected an error, parsed:\n{}", print(&p)),
        Err(d) => d,
    };
    assert_eq!(
        (d.file.as_str(), d.line, d.col),
        ("t.ct", line, col),
        "{}",
        d.render(text)
    );
    assert!(
        d.message.contains(needle),
        "message lacks {needle:?}:\n{}",
        d.render(text)
    );
    d
}

#[track_caller]
fn parses(text: &str) {
    if let Err(d) = parse("t.ct", text) {
        panic!("{}", d.render(text));
    }
}

// ---- static checks -------------------------------------------------------

#[test]
fn unbound_name_is_reported_with_line_and_column() {
    let d = fails(&prog("(sleep 1)\n  (await a)"), 4, 10, "`a` is not bound");
    assert!(
        d.message
            .contains("(spawn a ...), (future a) or (let a ...)")
    );
    assert_eq!(d.to_string(), format!("t.ct:4:10: error: {}", d.message));
}

#[test]
fn names_resolve_to_later_bindings_of_enclosing_coroutines() {
    // The seeds' circular await: a's body names b, bound later in main.
    parses(&prog(
        "(spawn a (await b))\n  (spawn b (await a))\n  (await a)",
    ));
    parses(&prog("(spawn a (await a))"));
}

#[test]
fn a_binding_anywhere_in_a_coroutine_shadows_the_enclosing_one() {
    // As in Python, `a` is local to the spawned body because it binds `a`
    // later, so `(resolve a 1)` there names the task, not main's future.
    let text = prog("(future a)\n  (spawn t (resolve a 1) (spawn a))");
    fails(
        &text,
        4,
        21,
        "needs a future made by (future NAME), but `a` here is a task",
    );
}

#[test]
fn in_group_that_does_not_enclose_the_spawn_is_rejected() {
    fails(
        &prog("(taskgroup g)\n  (spawn a :in g)"),
        4,
        16,
        "`:in g` needs the task group `g` to enclose",
    );
}

#[test]
fn in_group_enclosing_through_nested_coroutines_is_accepted() {
    parses(&prog("(taskgroup g (spawn a (spawn b :in g (sleep 1))))"));
    parses(&prog("(taskgroup g (call-soon (spawn b :in g)))"));
}

#[test]
fn in_group_shadowed_by_an_inner_binding_is_rejected() {
    fails(
        &prog("(taskgroup g (spawn a (taskgroup g) (spawn b :in g)))"),
        3,
        52,
        "to enclose",
    );
}

#[test]
fn in_naming_an_unbound_group_is_rejected() {
    fails(
        &prog("(spawn a :in g)"),
        3,
        16,
        "bind it with (taskgroup g ...)",
    );
}

#[test]
fn reraise_outside_handler_is_rejected() {
    fails(
        &prog("(try (reraise) (except ValueError))"),
        3,
        8,
        "only allowed inside an `(except ...)` handler",
    );
}

#[test]
fn reraise_in_a_coroutine_nested_in_a_handler_is_rejected() {
    fails(
        &prog("(try (sleep 1) (except ValueError (spawn a (reraise))))"),
        3,
        46,
        "same coroutine",
    );
}

#[test]
fn reraise_anywhere_inside_a_handler_is_accepted() {
    parses(&prog("(try (sleep 1) (except ValueError (reraise)))"));
    parses(&prog(
        "(try (sleep 1) (except ValueError (try (sleep 1) (finally (reraise)))))",
    ));
}

#[test]
fn return_in_except_star_handler_is_rejected() {
    let text = prog("(try (sleep 1)\n    (except (group ValueError) (timeout 1 (return 1))))");
    fails(&text, 4, 43, "except*");
}

#[test]
fn return_in_plain_handler_or_except_star_body_is_accepted() {
    parses(&prog("(try (sleep 1) (except ValueError (return 1)))"));
    parses(&prog("(try (return 1) (except (group ValueError)))"));
    parses(&prog(
        "(try (sleep 1) (except (group ValueError) (spawn a (return 1))))",
    ));
}

#[test]
fn forget_of_a_name_bound_by_an_enclosing_coroutine_is_rejected() {
    fails(
        &prog("(spawn a)\n  (spawn b (forget a))"),
        4,
        20,
        "does not bind `a` itself",
    );
}

#[test]
fn forget_of_an_unbound_name_is_rejected() {
    fails(&prog("(forget a)"), 3, 11, "does not bind `a`");
}

#[test]
fn forget_of_a_name_the_coroutine_binds_is_accepted() {
    parses(&prog("(forget a)\n  (spawn a)"));
    parses(&prog("(let a (gather)) (forget a) (forget a)"));
}

#[test]
fn name_bound_with_two_kinds_in_one_scope_reports_both_positions() {
    let d = fails(
        &prog("(spawn a)\n  (future a)"),
        4,
        11,
        "bound as a task at 3:10 and as a future here",
    );
    assert!(d.message.contains("rename one"));
}

#[test]
fn one_name_may_have_different_kinds_in_different_coroutines() {
    parses(&prog("(spawn a (future a) (resolve a 1))\n  (await a)"));
}

#[test]
fn resolve_of_a_task_is_rejected() {
    fails(
        &prog("(spawn t)\n  (resolve t 1)"),
        4,
        12,
        "`resolve` needs a future",
    );
}

#[test]
fn fail_of_a_let_future_is_rejected() {
    fails(
        &prog("(let l (gather))\n  (fail l ValueError)"),
        4,
        9,
        "`fail` needs a future",
    );
}

#[test]
fn uncancel_of_a_future_is_rejected() {
    fails(
        &prog("(future f)\n  (cancelling f)"),
        4,
        15,
        "`cancelling` needs a task",
    );
}

#[test]
fn await_of_a_task_group_is_rejected() {
    fails(&prog("(taskgroup g (await g))"), 3, 23, "not a task group");
}

#[test]
fn in_naming_a_task_is_rejected() {
    fails(
        &prog("(spawn g)\n  (spawn a :in g)"),
        4,
        16,
        "`:in` needs a task group",
    );
}

#[test]
fn spawn_in_call_soon_binds_no_name() {
    fails(
        &prog("(call-soon (spawn a))\n  (await a)"),
        4,
        10,
        "`a` is not bound",
    );
}

#[test]
fn weak_and_keep_spawns_bind_no_name() {
    fails(&prog("(spawn a :weak)\n  (await a)"), 4, 10, "not bound");
    fails(&prog("(spawn a :keep)\n  (await a)"), 4, 10, "not bound");
}

#[test]
fn static_errors_report_the_earliest_position() {
    fails(&prog("(await x)\n  (await y)"), 3, 10, "`x`");
}

// ---- shapes ----------------------------------------------------------------

#[test]
fn missing_argument_is_reported_at_the_closing_paren() {
    let d = fails(&prog("(sleep)"), 3, 9, "`sleep` is missing a time");
    assert_eq!(d.help.as_deref(), Some("usage: (sleep T)"));
}

#[test]
fn extra_argument_is_reported_at_itself() {
    fails(&prog("(sleep 1 2)"), 3, 12, "takes no further arguments");
}

#[test]
fn wrong_argument_kind_is_reported_at_itself() {
    fails(&prog("(sleep x)"), 3, 10, "expects a time");
    fails(&prog("(return 0.5)"), 3, 11, "literal value");
    fails(&prog("(raise Oops)"), 3, 10, "expects an exception class");
    fails(&prog("(sleep none)"), 3, 10, "expects a time");
}

#[test]
fn unknown_form_suggests_the_closest_one() {
    fails(&prog("(cancel-slef)"), 3, 4, "did you mean `cancel-self`?");
}

#[test]
fn invalid_names_say_which_rule_they_break() {
    fails(&prog("(spawn Task1)"), 3, 10, "rename it, e.g. `task1`");
    fails(&prog("(future lambda)"), 3, 11, "Python keyword");
    fails(&prog("(future asyncio)"), 3, 11, "reserved");
    fails(&prog("(future none)"), 3, 11, "reserved");
}

#[test]
fn unknown_option_is_rejected() {
    fails(
        &prog("(spawn a :strong)"),
        3,
        12,
        "unknown or misplaced option `:strong`",
    );
    fails(&prog("(wait :any (ref a))"), 3, 9, "unknown option `:any`");
}

#[test]
fn wait_options_must_come_in_order() {
    fails(
        &prog("(spawn a) (wait :timeout 1 :first-completed (ref a))"),
        3,
        30,
        "must come before `:timeout`",
    );
}

#[test]
fn wait_without_refs_is_rejected() {
    fails(
        &prog("(wait :timeout 1)"),
        3,
        19,
        "at least one `(ref NAME)`",
    );
}

#[test]
fn wait_takes_only_refs() {
    fails(
        &prog("(wait (sleep 1))"),
        3,
        9,
        "takes only `(ref NAME)` children",
    );
}

#[test]
fn ref_outside_an_awaitable_position_is_rejected() {
    fails(&prog("(spawn a) (ref a)"), 3, 13, "(await NAME)");
}

#[test]
fn let_binds_only_gather_or_shield() {
    fails(
        &prog("(let x (sleep 1))"),
        3,
        10,
        "`let` binds a `(gather ...)` or `(shield ...)`",
    );
}

#[test]
fn call_soon_runs_only_callback_statements() {
    let d = fails(
        &prog("(call-later 1 (sleep 1))"),
        3,
        17,
        "can only `cancel`, `resolve`, `fail` or",
    );
    assert_eq!(d.help.as_deref(), Some("usage: (call-later T STMT)"));
}

#[test]
fn shield_takes_exactly_one_awaitable() {
    fails(
        &prog("(shield (sleep 1) (sleep 2))"),
        3,
        21,
        "exactly one awaitable",
    );
    fails(&prog("(shield)"), 3, 10, "missing awaitable");
}

#[test]
fn except_outside_a_try_is_rejected() {
    fails(
        &prog("(except ValueError)"),
        3,
        3,
        "only allowed as a clause",
    );
}

#[test]
fn try_without_a_clause_is_rejected() {
    fails(&prog("(try (sleep 1))"), 3, 3, "needs at least one clause");
}

#[test]
fn statement_after_a_clause_is_rejected() {
    fails(
        &prog("(try (except KeyError) (sleep 1))"),
        3,
        26,
        "statement after the clauses",
    );
}

#[test]
fn finally_must_be_the_last_clause() {
    fails(
        &prog("(try (finally) (except KeyError))"),
        3,
        18,
        "after `finally`",
    );
    fails(&prog("(try (finally) (finally))"), 3, 18, "at most one");
}

#[test]
fn plain_and_group_clauses_cannot_be_mixed() {
    fails(
        &prog("(try (except KeyError) (except (group E1)))"),
        3,
        26,
        "cannot mix",
    );
}

#[test]
fn malformed_group_clause_is_rejected() {
    fails(
        &prog("(try (except (grop E1)))"),
        3,
        16,
        "write `(group E)`",
    );
    fails(
        &prog("(try (except Oops))"),
        3,
        16,
        "expects an exception class",
    );
}

#[test]
fn main_inside_main_is_rejected() {
    fails(&prog("(main)"), 3, 3, "only once, at the top level");
}

#[test]
fn atom_where_a_statement_belongs_is_rejected() {
    fails(&prog("sleep"), 3, 3, "expected a statement form");
    fails(&prog("()"), 3, 3, "empty form");
    fails(&prog("(1 2)"), 3, 4, "expected a form name");
}

// ---- file structure --------------------------------------------------------

#[test]
fn empty_file_asks_for_the_header() {
    fails("; nothing\n", 2, 1, "empty program");
}

#[test]
fn missing_header_is_rejected() {
    fails("(main)", 1, 1, "expected the header `(canceltree 1)`");
}

#[test]
fn other_format_version_is_rejected() {
    fails(
        "(canceltree 2)\n(main)",
        1,
        13,
        "unsupported format version 2",
    );
    fails("(canceltree)\n(main)", 1, 12, "needs the format version 1");
}

#[test]
fn missing_main_is_rejected() {
    fails("(canceltree 1)\n", 2, 1, "expected `(main ...)`");
    fails("(canceltree 1) (sleep 1)", 1, 16, "expected `(main ...)`");
}

#[test]
fn form_after_main_is_rejected() {
    fails(
        "(canceltree 1)\n(main)\n(main)",
        3,
        1,
        "exactly one program",
    );
}

// ---- characters --------------------------------------------------------------

#[test]
fn unclosed_paren_points_at_the_unclosed_paren() {
    // The innermost form still open at the end of the file.
    fails(
        "(canceltree 1)\n(main\n  (spawn a\n    (sleep 1)\n  (await a))\n",
        2,
        1,
        "never closed",
    );
    fails(
        "(canceltree 1)\n(main\n  (spawn a\n    (sleep 1)\n",
        3,
        3,
        "never closed",
    );
}

#[test]
fn unmatched_close_paren_is_reported_at_itself() {
    fails("(canceltree 1)\n(main (sleep 1)))", 2, 17, "unmatched `)`");
}

#[test]
fn unterminated_string_points_at_its_opening_quote() {
    fails(
        "(canceltree 1)\n(main (raise E1 \"oops\n))",
        2,
        17,
        "unterminated string",
    );
    fails(
        "(canceltree 1)\n(main (raise E1 \"oops",
        2,
        17,
        "unterminated string",
    );
}

#[test]
fn unknown_string_escape_is_rejected_at_the_backslash() {
    fails(
        "(canceltree 1)\n(main (raise E1 \"a\\tb\"))",
        2,
        19,
        "unknown escape `\\t`",
    );
}

#[test]
fn non_ascii_in_a_string_is_rejected() {
    fails(
        "(canceltree 1)\n(main (raise E1 \"café\"))",
        2,
        21,
        "printable ASCII",
    );
}

#[test]
fn unexpected_character_is_rejected_at_itself() {
    fails(
        "(canceltree 1)\n(main #t)",
        2,
        7,
        "unexpected character `#`",
    );
    fails("(canceltree 1)\n(main\n  λ)", 3, 3, "unexpected character");
}

#[test]
fn integer_overflow_is_rejected() {
    fails(
        &prog("(return 9223372036854775808)"),
        3,
        11,
        "does not fit in 64 bits",
    );
}

#[test]
fn malformed_number_is_rejected() {
    fails(&prog("(sleep 1e3)"), 3, 10, "malformed number `1e3`");
    fails(&prog("(sleep .5)"), 3, 10, "malformed atom `.5`");
}

#[test]
fn invalid_utf8_is_reported_at_the_bad_byte() {
    let d = parse_bytes("t.ct", b"(canceltree 1)\n(main ; \xff\n)").unwrap_err();
    assert_eq!((d.line, d.col), (2, 9));
    assert!(d.message.contains("UTF-8"));
}

#[test]
fn comments_and_any_characters_in_them_are_ignored() {
    parses("; héllo ✓\n(canceltree 1) ; header\n(main ; body\n  (sleep 1)) ; end");
}

#[test]
fn diagnostics_render_with_a_caret_under_the_column() {
    let text = prog("(await a)");
    let d = parse("t.ct", &text).unwrap_err();
    let r = d.render(&text);
    assert!(r.starts_with("error: `a` is not bound"), "{r}");
    assert!(
        r.contains(" --> t.ct:3:10\n  |\n3 |   (await a))\n  |          ^\n"),
        "{r}"
    );
}
