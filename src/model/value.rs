//! Values: the `V` a literal makes, a list's items and the exceptions
//! they hold, and a `V` as a trace shows it.

use super::fut::{I64, V};
use super::graph::N;
use super::machine::Machine;
use crate::ast::{Kind, NodeId, Value as Lit};
use crate::trace::Value;

impl Machine {
    /// Node `node`'s literal `v`.
    pub fn lit(&self, node: NodeId, v: &Lit) -> V {
        match v {
            Lit::None => V::None,
            Lit::Bool(b) => V::Bool(*b),
            Lit::Int(i) => V::int(*i),
            Lit::Str(_) => V::Str(node),
        }
    }

    /// The string literal of node `node`, which a `V::Str` names.
    pub fn lit_text(&self, node: NodeId) -> &str {
        match self.p().kind(node) {
            Kind::Return(Lit::Str(s)) | Kind::Resolve(_, Lit::Str(s)) => s,
            _ => unreachable!("a string value comes from a literal"),
        }
    }

    /// The list of the items pushed to `lists` since it was `at` long.
    pub fn list_since(&self, at: usize) -> V {
        V::List(at as u32, (self.lists.len() - at) as u32)
    }

    /// The items of the list `V::List(at, len)`.
    pub fn items(&self, at: u32, len: u32) -> &[V] {
        &self.lists[at as usize..(at + len) as usize]
    }

    /// Most values are scalars, made in place; the others out of line.
    #[inline(always)]
    pub fn value(&self, v: &V) -> Value {
        match v {
            V::None => Value::None,
            V::Bool(b) => Value::Bool(*b),
            &V::Int(I64(i)) => Value::Int(i),
            _ => self.value_held(v),
        }
    }

    pub(super) fn value_held(&self, v: &V) -> Value {
        match *v {
            V::None | V::Bool(_) | V::Int(_) => unreachable!("a scalar is made in place"),
            V::Str(node) => Value::Str(self.lit_text(node).to_string()),
            V::List(at, len) => {
                Value::List(self.items(at, len).iter().map(|x| self.value(x)).collect())
            }
            V::Exc(e) => Value::Obj {
                obj: self.excs.cls(e).name().to_string(),
            },
        }
    }
}

/// The exceptions `v` holds if it is a result list (`gather(...,
/// return_exceptions=True)` returns them), and so their tracebacks.
pub(super) fn value_edges(lists: &[V], v: V, out: &mut Vec<N>) {
    // Nested lists (a gather of gathers) go on a stack made only then.
    let mut nested: Vec<V> = Vec::new();
    let mut cur = v;
    loop {
        if let V::List(at, len) = cur {
            for &x in &lists[at as usize..(at + len) as usize] {
                match x {
                    V::Exc(e) => out.push(N::Exc(e)),
                    V::List(..) => nested.push(x),
                    _ => {}
                }
            }
        }
        match nested.pop() {
            Some(x) => cur = x,
            None => return,
        }
    }
}
