//! Signatures: what makes two failures "the same finding".
//!
//! A divergence's signature names the backends that disagree with the first
//! one and where the traces part: the kind of the first differing event and
//! the keyword of the node it is about, e.g.
//! `cpython:3.11!=cpython:3.12@end:wait-for`. An invariant failure's is
//! `invariant@node-keyword`. Signatures are short, stable under minimization
//! (the minimizer keeps them fixed) and readable in a directory listing once
//! turned into a slug.

use crate::ast::Program;
use crate::trace::{Event, Trace, What};

/// The keyword of node `id`, or `?` for a node the program does not have.
pub fn keyword(p: &Program, id: u32) -> &'static str {
    if (id as usize) < p.len() {
        p.kind(id).keyword()
    } else {
        "?"
    }
}

/// The keyword of what made task `name`, which runs node `id`'s coroutine:
/// the spawn (or main) for a named task, else, for a task named `@k`, the
/// combinator whose awaitable node `k` is (`gather`, `shield`, 3.11's
/// `wait-for`), so that one cause gives one signature whatever the awaitable.
pub fn maker(p: &Program, name: &str, id: u32) -> &'static str {
    if !name.starts_with('@') {
        return keyword(p, id);
    }
    let parent = (0..id.min(p.len() as u32)).rev().find(|&a| p.end(a) > id);
    parent.map_or("?", |a| p.kind(a).keyword())
}

/// Where an event happens, as `kind:keyword`: `end:wait-for`,
/// `create:spawn`, `done:gather` (for tasks, what made them), `handler`.
pub fn event_site(p: &Program, t: &Trace, e: &Event) -> String {
    match &e.what {
        What::Start(n) => format!("start:{}", keyword(p, *n)),
        What::End { node, .. } => format!("end:{}", keyword(p, *node)),
        What::Create { node, name, .. } => format!("create:{}", maker(p, name, *node)),
        What::Done { task, .. } => {
            let made_by = t.events.iter().find_map(|e| match &e.what {
                What::Create {
                    task: k,
                    node,
                    name,
                } if k == task => Some(maker(p, name, *node)),
                _ => None,
            });
            format!("done:{}", made_by.unwrap_or("main"))
        }
        What::Handler { .. } => "handler".to_string(),
        What::Phase(ph) => format!("phase:{ph}"),
        What::Inject { .. } => "inject".to_string(),
    }
}

/// A divergence among `traces` (the first is the reference): the signature
/// and the indices of the traces that disagree with the first. `None` when
/// all agree. Callers leave out backends that failed (hung, crashed).
pub fn divergence(p: &Program, traces: &[(&str, &Trace)]) -> Option<(String, Vec<usize>)> {
    let (first_name, first) = *traces.first()?;
    let others: Vec<usize> = (1..traces.len())
        .filter(|&i| traces[i].1 != first)
        .collect();
    if others.is_empty() {
        return None;
    }
    // The first event index at which any disagreeing trace differs.
    let split = |t: &Trace| {
        let common = first.events.len().min(t.events.len());
        (0..common)
            .find(|&i| first.events[i] != t.events[i])
            .unwrap_or(if first.events.len() == t.events.len() {
                usize::MAX
            } else {
                common
            })
    };
    let (at, who) = others
        .iter()
        .map(|&i| (split(traces[i].1), i))
        .min()
        .expect("others is not empty");
    let site = if at != usize::MAX {
        match first.events.get(at) {
            Some(e) => event_site(p, first, e),
            None => {
                let t = traces[who].1;
                event_site(p, t, &t.events[at])
            }
        }
    } else if others.iter().any(|&i| traces[i].1.outcome != first.outcome) {
        "outcome".to_string()
    } else {
        "tasks".to_string()
    };
    let names: Vec<&str> = others.iter().map(|&i| traces[i].0).collect();
    Some((format!("{first_name}!={}@{site}", names.join(",")), others))
}

/// The first event where any trace differs from the first one, with every
/// field shown (the loop iteration too, which the text rendering leaves
/// out), one line per trace. `None` when all events agree.
pub fn first_difference(p: &Program, traces: &[(&str, &Trace)]) -> Option<String> {
    let (_, first) = *traces.first()?;
    let at = traces[1..]
        .iter()
        .filter_map(|(_, t)| {
            let common = first.events.len().min(t.events.len());
            (0..common)
                .find(|&i| first.events[i] != t.events[i])
                .or((first.events.len() != t.events.len()).then_some(common))
        })
        .min()?;
    let labels = crate::render::labels(p);
    let mut out = format!("first differing event: {at} (it = loop iteration, t = virtual time)\n");
    let width = traces.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, t) in traces {
        let line = match t.events.get(at) {
            Some(e) => {
                let task = e.task.map_or("-".to_string(), |k| {
                    t.tasks
                        .get(k as usize)
                        .map_or(format!("task{k}"), |x| x.name.to_string())
                });
                format!(
                    "it={} t={} {task} {}",
                    e.it,
                    crate::render::time(e.t),
                    crate::render::event_text(t, &labels, e)
                )
            }
            None => "(no such event: the trace has ended)".to_string(),
        };
        out.push_str(&format!("  {name:<width$}  {line}\n"));
    }
    Some(out)
}

/// An invariant failure's signature: `invariant@node-keyword`, or
/// `invariant@-` when the violation names no node.
pub fn violation(p: &Program, invariant: &str, node: Option<u32>) -> String {
    format!("{invariant}@{}", node.map_or("-", |n| keyword(p, n)))
}

/// The signature of a crash: `crash:SPEC:WHAT`, where WHAT is the first
/// line of the crash message (a panic's source file and message, a
/// traceback's last line) with numbers blanked, so one bug gives one
/// signature whatever the data.
pub fn crash(spec: &str, message: &str) -> String {
    let panic_site;
    let msg = match message.split_once(" panicked") {
        Some((_, m)) => {
            let m = m.lines().next().unwrap_or("");
            // ` at src/model/coro.rs:283:42: index out of bounds...`
            match m.strip_prefix(" at ").and_then(|r| r.split_once(": ")) {
                Some((place, what)) => {
                    let file = place.split(':').next().unwrap_or(place);
                    let file = file.rsplit('/').next().unwrap_or(file);
                    panic_site = format!("{file}: {what}");
                    panic_site.as_str()
                }
                None => m.trim_start_matches(':').trim_start(),
            }
        }
        None if message.starts_with("Traceback") => message
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(""),
        None => message.lines().next().unwrap_or(""),
    };
    let mut what = String::new();
    for c in msg.trim().chars() {
        let c = if c.is_ascii_digit() { '#' } else { c };
        if !(c == '#' && what.ends_with('#')) {
            what.push(c);
        }
    }
    let what: String = what.chars().take(80).collect();
    format!("crash:{spec}:{what}")
}

/// A file-name-safe form of a signature: `cpython:3.11!=cpython:3.12@end:wait-for`
/// becomes `cpython-3.11-vs-cpython-3.12-at-end-wait-for`.
pub fn slug(signature: &str) -> String {
    let s = signature
        .replace("!=", "-vs-")
        .replace('@', "-at-")
        .replace(',', "-and-");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let keep = c.is_ascii_alphanumeric() || c == '.' || c == '_';
        let c = if keep { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('-') {
        out.pop();
    }
    out.truncate(120);
    if out.is_empty() {
        "finding".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("cpython:3.11!=cpython:3.12@end:wait-for"),
            "cpython-3.11-vs-cpython-3.12-at-end-wait-for"
        );
        assert_eq!(
            slug("cpython:/opt/py/bin/python!=model:3.12+eager@tasks"),
            "cpython-opt-py-bin-python-vs-model-3.12-eager-at-tasks"
        );
        assert_eq!(
            slug("shield-keeps-inner@shield"),
            "shield-keeps-inner-at-shield"
        );
        assert_eq!(slug("//"), "finding");
    }

    #[test]
    fn crash_signatures_name_the_cause_not_the_data() {
        let panic = "model:3.11 panicked at src/model/comb.rs:581:18: wait_for frame got \
                     (Some((0, 4294967295, 12)), true)\nmore";
        assert_eq!(
            crash("model:3.11", panic),
            "crash:model:3.11:comb.rs: wait_for frame got (Some((#, #, #)), true)"
        );
        assert_eq!(
            crash("model:3.12", "model:3.12 panicked: a panic"),
            "crash:model:3.12:a panic"
        );
        let tb = "Traceback (most recent call last):\n  File \"x\", line 3\nKeyError: 'task 12'\n";
        assert_eq!(
            crash("cpython:3.12", tb),
            "crash:cpython:3.12:KeyError: 'task #'"
        );
        assert_eq!(
            crash("cpython:3.13", "worker died: Fatal Python error"),
            "crash:cpython:3.13:worker died: Fatal Python error"
        );
    }
}
