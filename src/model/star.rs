//! `except*`: splitting exception groups by class, running each matching
//! clause on its part, and re-raising what is left the way
//! `_PyExc_PrepReraiseStar` combines it.

use super::coro::{Act, Comp, Frame, NONE, TryPh};
use super::exc::{Cls, ExcId};
use super::machine::Machine;
use crate::ast::{CatchClass, Kind, NodeId};

impl Machine {
    /// `g.split(pred)`'s match part, keeping the group structure
    /// (`derive` copies message, cause and context).
    fn split(&mut self, g: ExcId, pred: &dyn Fn(&Machine, ExcId) -> bool) -> Option<ExcId> {
        if pred(self, g) {
            return Some(g);
        }
        let members = self.excs.get(g).group.clone()?;
        let mut matched = Vec::new();
        for &m in members.iter() {
            if let Some(x) = self.split(m, pred) {
                matched.push(x);
            }
        }
        if matched.is_empty() {
            return None;
        }
        if matched.len() == members.len() && matched.iter().zip(members.iter()).all(|(a, b)| a == b)
        {
            return Some(g);
        }
        let o = self.excs.get(g).clone();
        let all_exc = matched.iter().all(|&e| self.excs.cls(e).is_exception());
        let cls = if all_exc {
            Cls::ExceptionGroup
        } else {
            Cls::BaseExceptionGroup
        };
        let d = self
            .excs
            .group(cls, o.msg.as_deref().unwrap_or(""), &matched);
        let x = self.excs.get_mut(d);
        x.cause = o.cause;
        x.context = o.context;
        x.suppress = o.suppress;
        Some(d)
    }

    fn leaves(&self, g: ExcId, out: &mut Vec<ExcId>) {
        match &self.excs.get(g).group {
            Some(ms) => {
                for &m in ms.iter() {
                    self.leaves(m, out);
                }
            }
            None => out.push(g),
        }
    }

    fn class_pred(c: CatchClass) -> impl Fn(&Machine, ExcId) -> bool {
        move |m: &Machine, e: ExcId| m.excs.cls(e).is_a(c)
    }

    /// The body raised `e` and the try has `except*` clauses.
    pub fn except_star(&mut self, t: u32, fr: &mut Frame, node: NodeId, e: ExcId) -> Act {
        let naked = !self.excs.cls(e).is_group();
        if naked {
            // The model gives an exception its entry for this frame when it
            // leaves the function; wrapped, it never leaves, but CPython
            // made the entry where it was raised (a failing statement, not
            // only `raise`), so its traceback keeps this frame's locals
            // while the group lives (checked on 3.11.7, 3.12.1, 3.13.0).
            self.tb_here(Some(t), e);
        }
        let eg = if naked {
            let cls = if self.excs.cls(e).is_exception() {
                Cls::ExceptionGroup
            } else {
                Cls::BaseExceptionGroup
            };
            self.excs.group(cls, "", &[e])
        } else {
            e
        };
        self.star.insert(
            (node, t),
            StarState {
                orig: e,
                rest: Some(eg),
                raised: Vec::new(),
                matches: Vec::new(),
                naked,
            },
        );
        self.star_next(fr, node, t, node + 1)
    }

    /// Runs the next matching clause at or after `from`, or finishes.
    fn star_next(&mut self, fr: &mut Frame, node: NodeId, t: u32, from: NodeId) -> Act {
        let p = self.p();
        let mut c = from;
        let end = p.end(node);
        while c < end {
            if let Kind::Except(k) = p.kind(c) {
                let st = self.star.get(&(node, t)).cloned().expect("star state");
                if let Some(rest) = st.rest {
                    let pred = Self::class_pred(k.class);
                    if let Some(m) = self.split(rest, &pred) {
                        let not = move |mm: &Machine, x: ExcId| {
                            !mm.excs.cls(x).is_a(k.class) && !mm.excs.cls(x).is_group()
                        };
                        let new_rest = if m == rest {
                            None
                        } else {
                            self.split(rest, &not)
                        };
                        let s = self.star.get_mut(&(node, t)).unwrap();
                        s.rest = new_rest;
                        s.matches.push(m);
                        *fr = Frame::Try {
                            node,
                            ph: TryPh::Handler(m),
                        };
                        self.star_at.insert((node, t), p.end(c));
                        return Act::Push(super::frames::clause(p, c));
                    }
                }
            }
            c = p.end(c);
        }
        // Done: combine what handlers raised with what is left.
        let st = self.star.remove(&(node, t)).expect("star state");
        // As after a plain `except` clause, the frame lets go of the
        // exception it handled (`handler_released`): what only it held
        // is freed before the statement ends (checked on 3.11.7, 3.12.1
        // and 3.13.0).
        if !st.matches.is_empty() {
            self.handler_done = true;
        }
        if st.naked {
            // A naked exception was wrapped: one clause ran at most, and
            // what it raised (the wrapper itself for a bare `raise`) goes on.
            *fr = Frame::Try {
                node,
                ph: TryPh::Body,
            };
            return match (st.raised.first(), st.rest) {
                (Some(&x), _) => {
                    if st.matches.contains(&x) {
                        // A bare `raise` of the wrapper.
                        self.star_made(t, x);
                    }
                    self.try_finally(fr, node, Comp::Raise(x))
                }
                (None, Some(_)) => self.try_finally(fr, node, Comp::Raise(st.orig)),
                (None, None) => self.try_finally(fr, node, Comp::Norm(super::fut::V::None)),
            };
        }
        let mut reraised = Vec::new();
        let mut raised = Vec::new();
        for x in st.raised {
            // `is_same_exception_metadata(x, orig)`: only a bare `raise` of
            // a handler's part keeps the traceback, cause and context the
            // split copied from `orig`. A leaf of `orig` raised again (an
            // `await` of its task) has its own, and counts as new.
            if x == st.orig || st.matches.contains(&x) {
                self.leaves(x, &mut reraised);
            } else {
                raised.push(x);
            }
        }
        if let Some(r) = st.rest {
            let mut ls = Vec::new();
            self.leaves(r, &mut ls);
            reraised.extend(ls);
        }
        let result = if raised.is_empty() && reraised.is_empty() {
            None
        } else {
            let re_eg = if reraised.is_empty() {
                None
            } else {
                let keep = reraised.clone();
                self.split(st.orig, &move |_m: &Machine, x: ExcId| keep.contains(&x))
            };
            if raised.is_empty() {
                re_eg
            } else {
                let mut all = raised;
                all.extend(re_eg);
                if all.len() == 1 {
                    // `_PyExc_PrepReraiseStar`: a single exception is raised as is.
                    return self.star_finish(fr, node, Some(all[0]));
                }
                let all_exc = all.iter().all(|&e| self.excs.cls(e).is_exception());
                let cls = if all_exc {
                    Cls::ExceptionGroup
                } else {
                    Cls::BaseExceptionGroup
                };
                // This new group, too, leaves without this frame, but each
                // of its parts holds the frame already, so the model adds it.
                Some(self.excs.group(cls, "", &all))
            }
        };
        self.star_finish(fr, node, result)
    }

    /// `e` is the group `except*` wrapped a naked exception in, made in
    /// task `t`'s innermost function and re-raised by a bare `raise`. That
    /// re-raise adds no traceback entry, so the group leaves the function
    /// without its frame, unlike an exception raised or passing there
    /// (checked on 3.11.7, 3.12.1, 3.13.0).
    fn star_made(&mut self, t: u32, e: ExcId) {
        if let Some(func) = self.innermost_fn(t) {
            self.tb_no_entry.push((e, func));
        }
    }

    fn star_finish(&mut self, fr: &mut Frame, node: NodeId, result: Option<ExcId>) -> Act {
        *fr = Frame::Try {
            node,
            ph: TryPh::Body,
        };
        match result {
            None => self.try_finally(fr, node, Comp::Norm(super::fut::V::None)),
            Some(x) => self.try_finally(fr, node, Comp::Raise(x)),
        }
    }

    /// A handler of an `except*` try finished with `c`.
    pub fn star_handler_done(&mut self, t: u32, fr: &mut Frame, node: NodeId, c: Comp) -> Act {
        match c {
            Comp::Raise(x) => self.star.get_mut(&(node, t)).unwrap().raised.push(x),
            Comp::Ret(_) => {}
            Comp::Norm(_) => {}
        }
        let from = self.star_at.get(&(node, t)).copied().unwrap_or(NONE);
        self.star_next(fr, node, t, from)
    }
}

#[derive(Clone, Debug)]
pub struct StarState {
    pub orig: ExcId,
    pub rest: Option<ExcId>,
    pub raised: Vec<ExcId>,
    /// The part each handler was given, in order.
    pub matches: Vec<ExcId>,
    pub naked: bool,
}
