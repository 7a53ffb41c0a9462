//! Known divergences (tests/known_divergences/README.md): asserts today's
//! behaviour of each side, so the test fails when either changes.

use canceltree::backend::{self, Spec, discover};
use canceltree::{render, syntax};

fn load(path: &str) -> canceltree::ast::Program {
    let text = std::fs::read_to_string(path).unwrap();
    syntax::parse(path, &text).unwrap_or_else(|d| panic!("{}", d.render(&text)))
}

#[test]
fn deep_cancel_chain_gh_80637_model_cancels_the_chain_cpython_raises_recursion_error() {
    let dir = "tests/known_divergences";
    let p = load(&format!("{dir}/deep_cancel_chain.ct"));
    let labels = render::labels(&p);
    let mut m = backend::open(&Spec::parse("model:3.12").unwrap()).unwrap();
    let got = render::text(&m.run(&p), &labels);
    let want =
        std::fs::read_to_string(format!("{dir}/deep_cancel_chain.model-3.12.trace")).unwrap();
    assert_eq!(got, want, "the model's trace changed");
    assert!(got.contains("end #5002 cancel c1 -> True"));
    let cpy =
        std::fs::read_to_string(format!("{dir}/deep_cancel_chain.cpython-3.12.trace")).unwrap();
    assert!(
        cpy.contains("end #5002 cancel c1 !! RecursionError('maximum recursion depth exceeded')")
    );
    if !discover::versions().contains(&(3, 12)) {
        eprintln!("no CPython 3.12: only the checked-in CPython trace was checked");
        return;
    }
    let mut c = backend::open(&Spec::parse("cpython:3.12").unwrap()).unwrap();
    let live = render::text(&c.run(&p), &labels);
    // How many shutdown cancels fail depends on the interpreter's stack
    // use; the divergence itself is the first cancel.
    assert!(
        live.contains("end #5002 cancel c1 !! RecursionError('maximum recursion depth exceeded')"),
        "CPython 3.12 no longer raises RecursionError in cancel():\n{}",
        live.lines()
            .filter(|l| l.contains("cancel c1"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
