//! The `fuzz`, `repro` and `minimize` commands. Each returns the process
//! exit code, or an error message for exit 2 (bad input).

use super::minimize::Budget;
use super::{Config, FindingKind, Opened, bundle, judge, minimize_failure, open_all};
use crate::render;
use crate::syntax;
use crate::trace::Trace;
use std::io::IsTerminal;
use std::path::Path;

/// `canceltree fuzz`: runs a campaign and prints its summary. Exit 0 (the
/// findings are in the bundles), 2 on bad input.
pub fn fuzz(mut cfg: Config) -> Result<u8, String> {
    cfg.tty = std::io::stderr().is_terminal();
    cfg.quiet = false;
    let summary = super::run(&cfg)?;
    print!("{}", summary.text());
    Ok(0)
}

fn opened_refs(opened: &mut [Opened]) -> Vec<&mut Opened> {
    opened.iter_mut().collect()
}

fn specs_for(path: &str, given: &[String], named: &[String]) -> Result<Vec<String>, String> {
    let specs = if given.is_empty() {
        named.to_vec()
    } else {
        given.to_vec()
    };
    if specs.is_empty() {
        return Err(format!(
            "error: {path} names no backends (no meta.json, no `; backends:` header line); \
             give them with --backend, e.g. --backend cpython:3.11 --backend cpython:3.12"
        ));
    }
    Ok(specs)
}

/// `canceltree repro PATH`: reruns a bundle or a `.ct` file on its backends
/// (or `backends`). Exit 1 while it still fails, 0 once it passes.
pub fn repro(path: &str, backends: &[String]) -> Result<u8, String> {
    let loaded = bundle::load(Path::new(path))?;
    let specs = specs_for(path, backends, &loaded.backends)?;
    let mut opened = open_all(&specs).map_err(|e| format!("error: {e}"))?;
    for o in &opened {
        println!("{}: {}", o.spec, o.backend.describe());
    }
    let program = &loaded.program;
    let v = judge(program, &mut opened_refs(&mut opened));
    let recorded = loaded.meta.as_ref().map(|m| m.signature.clone());
    let labels = render::labels(program);
    for spec in &v.failed {
        let t = v.trace(spec).expect("failed backends ran");
        println!("{spec} failed on this case: {}", render::outcome(t));
    }
    let refs: Vec<(&str, &Trace)> = v.traces.iter().map(|(s, t)| (s.as_str(), t)).collect();
    if v.failed.is_empty() {
        if let Some(d) = super::signature::first_difference(program, &refs) {
            print!("{d}");
        }
        if let Some(d) = render::diff(&refs, &labels) {
            print!("{d}");
        }
    }
    for (spec, viol) in &v.violations {
        println!("violation: {}", bundle::violation_line(spec, viol));
    }
    if v.failures.is_empty() && v.failed.is_empty() {
        if refs.len() == 1 {
            print!("{}", render::text(refs[0].1, &labels));
        }
        let was = recorded.map_or(String::new(), |s| format!(" (recorded as {s})"));
        println!(
            "passes: the {} backends agree and no invariant is broken{was}",
            specs.len()
        );
        return Ok(0);
    }
    let now: Vec<&str> = v.failures.iter().map(|f| f.signature.as_str()).collect();
    if now.is_empty() {
        println!("still fails: a backend hung or crashed");
    } else {
        println!("still fails: {}", now.join(", "));
    }
    if let Some(r) = recorded {
        if now.contains(&r.as_str()) {
            println!("same signature as recorded");
        } else {
            println!("recorded as {r}, which no longer shows");
        }
    }
    Ok(1)
}

/// `canceltree minimize FILE --backend B...`: minimizes a failing program
/// by hand, printing the result (with a header naming its signature and
/// backends, so `repro` can rerun it) on stdout.
pub fn minimize(path: &str, backends: &[String], max_tests: usize) -> Result<u8, String> {
    let loaded = bundle::load(Path::new(path))?;
    let specs = specs_for(path, backends, &loaded.backends)?;
    let mut opened = open_all(&specs).map_err(|e| format!("error: {e}"))?;
    let program = &loaded.program;
    let v = judge(program, &mut opened_refs(&mut opened));
    if v.failures.is_empty() && !v.failed.is_empty() {
        return Err(format!(
            "error: cannot minimize: {} hung on {path}; every candidate would cost a wall-clock \
             timeout, so cut the program down by hand",
            v.failed.join(", ")
        ));
    }
    let Some(failure) = v.failures.first() else {
        return Err(format!(
            "error: nothing to minimize: {path} passes on {} (the backends agree and no invariant is broken)",
            specs.join(", ")
        ));
    };
    eprintln!(
        "minimizing {path} ({} nodes) for {}",
        program.len(),
        failure.signature
    );
    let mut sub: Vec<&mut Opened> = opened
        .iter_mut()
        .filter(|o| failure.backends.contains(&o.spec))
        .collect();
    let budget = Budget {
        max_tests,
        deadline: None,
    };
    let (small, stats) = minimize_failure(program, failure, &mut sub, budget);
    eprintln!(
        "{}: {} -> {} nodes ({} runs, {} invalid candidates skipped{})",
        failure.signature,
        stats.nodes_before,
        stats.nodes_after,
        stats.tests,
        stats.invalid,
        if stats.exhausted {
            ", budget exhausted"
        } else {
            ""
        }
    );
    let kind = match failure.kind {
        FindingKind::Divergence => "divergence",
        FindingKind::Violation => "invariant violation",
        FindingKind::Crash => "crash",
        FindingKind::KnownGap => "known model gap",
        FindingKind::KnownBug => "known CPython bug",
    };
    println!("; canceltree finding: {}", failure.signature);
    println!("; backends: {}", failure.backends.join(" "));
    println!(
        "; {kind}, minimized from {} to {} nodes",
        stats.nodes_before, stats.nodes_after
    );
    print!("{}", syntax::print(&small));
    Ok(0)
}
