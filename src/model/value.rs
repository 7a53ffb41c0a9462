//! Values: the `V` a literal makes, a list's items and the exceptions
//! they hold, and a `V` as a trace shows it, built in the buffers of the
//! traces given back (`ValuePool`).

use super::fut::{I64, V};
use super::graph::N;
use super::machine::Machine;
use crate::ast::{Kind, NodeId, Value as Lit};
use crate::trace::{Fin, Value};

/// The strings and lists of the values of traces given back, emptied,
/// for the next runs' values: each one allocated anew and freed with its
/// trace cost about 100 instructions, a small program one or two.
#[derive(Default)]
pub struct ValuePool {
    strs: Vec<String>,
    lists: Vec<Vec<Value>>,
    /// A deadlock's list of waiting tasks, emptied.
    pub waiting: Vec<crate::trace::Waiting>,
}

/// How many buffers of each kind a pool keeps, and the largest: one huge
/// value does not pin its memory for good.
const POOL_MAX: usize = 256;
const POOL_CAPACITY: usize = 256;

impl ValuePool {
    /// A string of `text`, in a kept buffer if there is one.
    #[inline]
    fn string(&mut self, text: &str) -> String {
        match self.strs.pop() {
            Some(mut s) => {
                s.push_str(text);
                s
            }
            None => text.to_string(),
        }
    }

    /// An empty list with room for `len` items, a kept buffer if there
    /// is one. Made anew, it is exactly that big: a list grown from empty
    /// takes room for at least four, and a gather of gathers, whose every
    /// level shows every level below, made three times the memory.
    #[inline]
    fn list(&mut self, len: usize) -> Vec<Value> {
        match self.lists.pop() {
            Some(mut l) => {
                l.reserve_exact(len);
                l
            }
            None => Vec::with_capacity(len),
        }
    }

    #[inline]
    pub fn keep_str(&mut self, mut s: String) {
        if self.strs.len() < POOL_MAX && s.capacity() <= POOL_CAPACITY {
            s.clear();
            self.strs.push(s);
        }
    }

    /// Takes what `v` owns, its items dropped, to reuse.
    #[inline]
    pub fn keep(&mut self, v: Value) {
        match v {
            Value::Str(s) | Value::Obj { obj: s } => self.keep_str(s),
            Value::List(mut items) => {
                if self.lists.len() < POOL_MAX && items.capacity() <= POOL_CAPACITY {
                    items.clear();
                    self.lists.push(items);
                }
            }
            Value::None | Value::Bool(_) | Value::Int(_) => {}
        }
    }

    /// Takes a deadlock's list and its texts.
    pub fn keep_waiting(&mut self, mut waiting: Vec<crate::trace::Waiting>) {
        for w in waiting.drain(..) {
            self.keep_str(w.on);
        }
        if waiting.capacity() > self.waiting.capacity() && waiting.capacity() <= POOL_CAPACITY {
            self.waiting = waiting;
        }
    }

    /// Takes what `fin` owns but a shared exception.
    #[inline]
    pub fn keep_fin(&mut self, fin: Fin) {
        match fin {
            Fin::Result(v) => self.keep(v),
            Fin::Cancelled(Some(s)) => self.keep_str(s),
            Fin::Cancelled(None) | Fin::Exception(_) => {}
        }
    }
}

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
            V::Str(node) => Value::Str(self.pooled_str(self.lit_text(node))),
            V::List(at, len) => {
                // Taken before the items are made: a nested list takes
                // its own.
                let mut items = self.pool.borrow_mut().list(len as usize);
                items.extend(self.items(at, len).iter().map(|x| self.value(x)));
                Value::List(items)
            }
            V::Exc(e) => Value::Obj {
                obj: self.pooled_str(self.excs.cls(e).name()),
            },
        }
    }

    /// A string of `text` for a trace, in a kept buffer if there is one.
    pub(super) fn pooled_str(&self, text: &str) -> String {
        self.pool.borrow_mut().string(text)
    }

    /// The texts `parts` joined, for a trace, in a kept buffer if there
    /// is one.
    pub(super) fn pooled_concat(&self, parts: &[&str]) -> String {
        let mut s = self.pool.borrow_mut().string(parts[0]);
        for part in &parts[1..] {
            s.push_str(part);
        }
        s
    }

    /// `fin.clone()`, with what it owns in kept buffers. The cases that
    /// own nothing (a scalar result, an exception, a cancel without a
    /// message) are made in place.
    #[inline(always)]
    pub(super) fn clone_fin(&self, fin: &Fin) -> Fin {
        match fin {
            Fin::Result(Value::None) => Fin::Result(Value::None),
            Fin::Result(Value::Bool(b)) => Fin::Result(Value::Bool(*b)),
            Fin::Result(Value::Int(i)) => Fin::Result(Value::Int(*i)),
            Fin::Exception(x) => Fin::Exception(x.clone()),
            Fin::Cancelled(None) => Fin::Cancelled(None),
            _ => self.clone_fin_held(fin),
        }
    }

    fn clone_fin_held(&self, fin: &Fin) -> Fin {
        match fin {
            Fin::Result(v) => Fin::Result(self.clone_value(v)),
            Fin::Cancelled(Some(s)) => Fin::Cancelled(Some(self.pooled_str(s))),
            _ => fin.clone(),
        }
    }

    /// `v.clone()`, with its strings and lists in kept buffers. Nested
    /// as deep as the value, like the derived clone it stands for.
    fn clone_value(&self, v: &Value) -> Value {
        match v {
            Value::Str(s) => Value::Str(self.pooled_str(s)),
            Value::Obj { obj } => Value::Obj {
                obj: self.pooled_str(obj),
            },
            Value::List(xs) => {
                let mut items = self.pool.borrow_mut().list(xs.len());
                items.extend(xs.iter().map(|x| match x {
                    Value::None => Value::None,
                    Value::Bool(b) => Value::Bool(*b),
                    Value::Int(i) => Value::Int(*i),
                    _ => self.clone_value(x),
                }));
                Value::List(items)
            }
            Value::None => Value::None,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
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

#[cfg(test)]
mod tests {
    use crate::trace::{Fin, Res, State, Value, What};

    /// The room `v`'s lists have beyond their items, nested ones too.
    fn spare_room(v: &Value) -> usize {
        let mut spare = 0;
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            if let Value::List(items) = v {
                spare += items.capacity() - items.len();
                stack.extend(items);
            }
        }
        spare
    }

    /// A gather of gathers shows every level's list at every level above
    /// (in its end event, its task's done event and the task table), so a
    /// list made with room to spare multiplies the trace's memory: with
    /// room for four items in each one-item list, 2,000 levels took three
    /// times the memory of exact lists.
    #[test]
    fn a_fresh_runs_lists_take_no_more_room_than_their_items() {
        let n = 50;
        let text = format!(
            "(canceltree 1)\n(main\n  (let g {}(return 1){})\n  (await g))\n",
            "(gather ".repeat(n),
            ")".repeat(n)
        );
        let p = crate::syntax::parse("nested.ct", &text).expect("a valid program");
        let profile = super::super::Profile::new(3, 12, false).expect("a modelled version");
        let trace = super::super::run(&p, profile);
        let mut lists = 0;
        let mut spare = 0;
        for e in &trace.events {
            let v = match &e.what {
                What::End {
                    res: Res::Val(v), ..
                } => v,
                What::Done {
                    fin: Fin::Result(v),
                    ..
                } => v,
                _ => continue,
            };
            lists += matches!(v, Value::List(_)) as usize;
            spare += spare_room(v);
        }
        for t in &trace.tasks {
            if let State::Done(Fin::Result(v)) = &t.state {
                spare += spare_room(v);
            }
        }
        assert!(lists >= 2 * n, "every level's result is a list: {lists}");
        assert_eq!(spare, 0, "room to spare in a fresh run's lists");
    }
}
