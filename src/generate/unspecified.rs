//! What CPython leaves to set order, which no generated program may touch.

use super::*;

/// Whether `p` stays clear of what CPython leaves unspecified: every
/// `as-completed`, and every `wait :first-exception`, with two or more
/// distinct refs takes only tasks and futures bound by the statements
/// right before it in the same body, each a `(future NAME)` or a
/// `(spawn NAME ...)` whose body starts with a sleep. Then none of them is
/// done when the call registers its callbacks (not even an eager task),
/// and the set order in which CPython registers them cannot show.
pub fn avoids_unspecified(p: &Program) -> bool {
    let parents = p.parents();
    (0..p.len() as NodeId).all(|id| {
        let ordered = match p.kind(id) {
            Kind::AsCompleted { .. } => true,
            Kind::Wait { when, .. } => *when == WaitWhen::FirstException,
            _ => false,
        };
        if !ordered {
            return true;
        }
        let mut refs: Vec<Sym> = Vec::new();
        for c in p.children(id) {
            if let Kind::Ref(s) = p.kind(c)
                && !refs.contains(s)
            {
                refs.push(*s);
            }
        }
        if refs.len() < 2 {
            return true;
        }
        let Some(parent) = parents[id as usize] else {
            return false;
        };
        let siblings: Vec<NodeId> = p.children(parent).collect();
        let at = siblings.iter().position(|&c| c == id).unwrap_or(0);
        let mut fresh: Vec<Sym> = Vec::new();
        for &c in siblings[..at].iter().rev() {
            match p.kind(c) {
                Kind::Future(s) => fresh.push(*s),
                Kind::Spawn(s, SpawnMode::Bind)
                    if p.children(c)
                        .next()
                        .is_some_and(|b| matches!(p.kind(b), Kind::Sleep(_))) =>
                {
                    fresh.push(*s)
                }
                _ => break,
            }
        }
        refs.iter().all(|s| fresh.contains(s))
    })
}
