//! Proptest strategies for `.ct` programs, shared by property suites: a
//! recursive `Draft` strategy, turned into statically valid programs by
//! `canceltree::syntax::draft::build`. Include with
//! `#[path = "strategy.rs"] mod strategy;`.

#![allow(dead_code)]

use canceltree::ast::{Program, Time, Value};
use canceltree::syntax::draft::{Draft, build};
use proptest::prelude::*;

/// Times: mostly small integers and binary fractions, sometimes negative,
/// `-0.0`, or any finite f64 (to test that printing reads back bit for bit).
pub fn arb_time() -> impl Strategy<Value = Time> {
    prop_oneof![
        4 => (0i64..10).prop_map(|n| Time(n as f64)),
        2 => (0u32..16).prop_map(|n| Time(f64::from(n) * 0.25)),
        1 => (-5i64..0).prop_map(|n| Time(n as f64)),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Time),
        1 => Just(Time(-0.0)),
    ]
}

/// Printable ASCII, including `"` and `\` which the printer must escape.
pub fn arb_text() -> impl Strategy<Value = String> {
    "[ -~]{0,12}"
}

pub fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        arb_text().prop_map(Value::Str),
    ]
}

/// Draft ops: any form, with the binding forms (spawn 4, future 12, let 18)
/// made more likely so that later statements find names to use.
fn arb_op() -> impl Strategy<Value = u8> {
    prop_oneof![6 => any::<u8>(), 2 => Just(4u8), 1 => Just(12u8), 1 => Just(18u8)]
}

fn draft_fields() -> impl Strategy<Value = (u8, u8, u8, Time, Value, Option<String>)> {
    (
        arb_op(),
        any::<u8>(),
        any::<u8>(),
        arb_time(),
        arb_value(),
        proptest::option::of(arb_text()),
    )
}

/// A draft tree at most `depth` deep with about `size` drafts.
pub fn arb_draft_sized(depth: u32, size: u32) -> impl Strategy<Value = Draft> {
    let leaf = draft_fields().prop_map(|(op, a, b, time, value, msg)| Draft {
        op,
        a,
        b,
        time,
        value,
        msg,
        kids: Vec::new(),
    });
    leaf.prop_recursive(depth, size, 4, |inner| {
        (draft_fields(), prop::collection::vec(inner, 0..4)).prop_map(
            |((op, a, b, time, value, msg), kids)| Draft {
                op,
                a,
                b,
                time,
                value,
                msg,
                kids,
            },
        )
    })
}

pub fn arb_draft() -> impl Strategy<Value = Draft> {
    arb_draft_sized(6, 128)
}

/// A well-formed program: every name bound before use, every static check
/// satisfied; drafts at most 6 deep, about 8 top-level drafts.
pub fn arb_program() -> impl Strategy<Value = Program> {
    prop::collection::vec(arb_draft(), 0..8).prop_map(|d| build(&d))
}
