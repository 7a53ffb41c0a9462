//! Statements that complete without suspending: spawn, cancel, futures,
//! names, callbacks, `block`, `gc`. Shared by task frames and plain loop
//! callbacks (`t` is `None` there).

use super::exc::{Cls, ExcId};
use super::fut::{Cb, FKind, V};
use super::machine::Machine;
use super::names::Obj;
use super::run::Hcb;
use crate::ast::{ExcClass, Kind, NodeId, SpawnMode};

impl Machine {
    fn attr_error(&mut self, t: Option<u32>, o: Obj, attr: &str) -> ExcId {
        let ty = match o {
            Obj::Tg(_) => "TaskGroup",
            Obj::Fut(f) => match self.futs[f as usize].kind {
                FKind::Gather(_) => "_GatheringFuture",
                FKind::Plain => "_asyncio.Future",
                FKind::Task(_) => "_asyncio.Task",
            },
        };
        self.raise_new(
            t,
            Cls::AttributeError,
            &format!("'{ty}' object has no attribute '{attr}'"),
        )
    }

    /// `asyncio.get_running_loop()`: fails in code a finalizer runs after
    /// the loop stopped (a coroutine catching GeneratorExit at the end).
    pub fn need_loop(&mut self, t: Option<u32>) -> Result<(), ExcId> {
        if self.running {
            Ok(())
        } else {
            Err(self.raise_new(t, Cls::RUNTIME, "no running event loop"))
        }
    }

    fn target_task(
        &mut self,
        t: Option<u32>,
        node: NodeId,
        named: bool,
        attr: &str,
    ) -> Result<u32, ExcId> {
        if !named {
            // `asyncio.current_task()`: the task whose step is running,
            // which is not `t` when a collection in another task's step
            // closes `t`'s coroutine.
            self.need_loop(t)?;
            return match self.current {
                Some(t) => Ok(t),
                None => Err(self.raise_new(
                    t,
                    Cls::AttributeError,
                    &format!("'NoneType' object has no attribute '{attr}'"),
                )),
            };
        }
        let o = self.read(t, node)?;
        match o {
            Obj::Fut(f) => match self.task_of(f) {
                Some(x) => Ok(x),
                None => Err(self.attr_error(t, o, attr)),
            },
            Obj::Tg(_) => Err(self.attr_error(t, o, attr)),
        }
    }

    fn fut_or_attr(&mut self, t: Option<u32>, node: NodeId, attr: &str) -> Result<u32, ExcId> {
        match self.read(t, node)? {
            Obj::Fut(f) => Ok(f),
            o => Err(self.attr_error(t, o, attr)),
        }
    }

    /// A statement that finished a future: raises what scheduling its
    /// callbacks on a closed loop raised (`closed_loop_callbacks`).
    fn raised_if(&mut self, t: Option<u32>, closed: Option<ExcId>) -> Result<V, ExcId> {
        match closed {
            Some(e) => {
                self.raise_here(t, e);
                Err(e)
            }
            None => Ok(V::None),
        }
    }

    /// Runs a statement that does not suspend; Err is an exception already
    /// raised (chained) where `t` is.
    pub fn simple(&mut self, t: Option<u32>, node: NodeId) -> Result<V, ExcId> {
        let p = self.p();
        match p.kind(node) {
            Kind::Block(d) => {
                if d.0 < 0.0 {
                    return Err(self.raise_new(t, Cls::VALUE, "sleep length must be non-negative"));
                }
                self.lp.now += d.0;
                Ok(V::None)
            }
            Kind::Raise(c, m) => {
                let e = self.excs.create(Cls::Prog(*c), self.sc.message(node, m));
                self.raise_here(t, e);
                self.tb_here(t, e);
                Err(e)
            }
            Kind::Reraise => match t.and_then(|t| self.handled_top(t)) {
                Some(e) => Err(e),
                None => Err(self.raise_new(t, Cls::RUNTIME, "No active exception to reraise")),
            },
            Kind::Future(s) => {
                self.need_loop(t)?;
                let f = self.new_fut(FKind::Plain);
                self.futs[f as usize].label = Some(self.sc.label(p, node, *s));
                self.bind(node, Obj::Fut(f));
                Ok(V::None)
            }
            Kind::Resolve(_, v) => {
                let f = self.fut_or_attr(t, node, "set_result")?;
                if self.task_of(f).is_some() {
                    return Err(self.raise_new(
                        t,
                        Cls::RUNTIME,
                        "Task does not support set_result operation",
                    ));
                }
                let closed = self.closed_loop_callbacks(f);
                let v = self.lit(node, v);
                if !self.set_result(f, v) {
                    return Err(self.raise_new(t, Cls::InvalidStateError, "invalid state"));
                }
                self.raised_if(t, closed)
            }
            Kind::Fail(_, c, m) => {
                let f = self.fut_or_attr(t, node, "set_exception")?;
                if self.task_of(f).is_some() {
                    return Err(self.raise_new(
                        t,
                        Cls::RUNTIME,
                        "Task does not support set_exception operation",
                    ));
                }
                let e = self.excs.create(Cls::Prog(*c), self.sc.message(node, m));
                let closed = self.closed_loop_callbacks(f);
                if !self.set_exception(f, e) {
                    return Err(self.raise_new(t, Cls::InvalidStateError, "invalid state"));
                }
                if closed.is_some() {
                    // `fut_log_tb = 1` comes after scheduling the callbacks,
                    // which raised: nothing reports the exception.
                    self.futs[f as usize].log_tb = false;
                }
                self.raised_if(t, closed)
            }
            Kind::Gc => {
                self.gc_collect();
                Ok(V::None)
            }
            Kind::Forget(_) => {
                let slot = self.sc.slot[node as usize];
                if slot == super::scope::NONE || self.slots[slot as usize].is_none() {
                    let msg = super::names::unbound_local(&self.slot_name(slot));
                    return Err(self.raise_new(t, Cls::UnboundLocalError, &msg));
                }
                self.slots[slot as usize] = None;
                if self.gc_watch() {
                    self.refcount_check(false);
                }
                Ok(V::None)
            }
            Kind::Cancel(_, m) => {
                let f = self.fut_or_attr(t, node, "cancel")?;
                let m = self.sc.message(node, m);
                match self.cancel(f, m) {
                    Ok(b) => Ok(V::Bool(b)),
                    Err(e) => {
                        self.raise_here(t, e);
                        Err(e)
                    }
                }
            }
            Kind::CancelSelf(m) => {
                let x = self.target_task(t, node, false, "cancel")?;
                let f = self.tasks[x as usize].fut;
                let m = self.sc.message(node, m);
                match self.cancel(f, m) {
                    Ok(b) => Ok(V::Bool(b)),
                    Err(e) => {
                        self.raise_here(t, e);
                        Err(e)
                    }
                }
            }
            Kind::Uncancel(s) => {
                let x = self.target_task(t, node, s.is_some(), "uncancel")?;
                Ok(V::int(self.uncancel(x) as i64))
            }
            Kind::Cancelling(s) => {
                let x = self.target_task(t, node, s.is_some(), "cancelling")?;
                Ok(V::int(self.cancelling(x) as i64))
            }
            Kind::Done(_) => {
                let f = self.fut_or_attr(t, node, "done")?;
                Ok(V::Bool(self.done(f)))
            }
            Kind::Cancelled(_) => {
                let f = self.fut_or_attr(t, node, "cancelled")?;
                Ok(V::Bool(
                    self.futs[f as usize].state == super::fut::FState::Cancelled,
                ))
            }
            Kind::Spawn(_, mode) => self.spawn(t, node, *mode),
            Kind::Let(_) => {
                let inner = p.children(node).next().expect("let has an operand");
                let f = match p.kind(inner) {
                    Kind::Gather { .. } => self.gather_new(t, inner)?,
                    _ => self.shield_new(t, inner)?,
                };
                let s = self.sc.slot[node as usize];
                if s != super::scope::NONE {
                    let label = self.sc.label(p, node, self.sc.slot_sym[s as usize]);
                    self.futs[f as usize].label = Some(label);
                }
                self.bind(node, Obj::Fut(f));
                Ok(V::None)
            }
            Kind::CallSoon => {
                self.need_loop(t)?;
                self.lp.call_soon(Hcb::User(node));
                Ok(V::None)
            }
            Kind::CallLater(d) => {
                self.need_loop(t)?;
                self.lp.call_later(d.0, Hcb::User(node));
                Ok(V::None)
            }
            k => unreachable!("{k:?} is not a simple statement"),
        }
    }

    fn spawn(&mut self, t: Option<u32>, node: NodeId, mode: SpawnMode) -> Result<V, ExcId> {
        let name = self.sc.task_name(self.p(), node);
        if !matches!(mode, SpawnMode::In(_)) {
            self.need_loop(t)?;
        }
        match mode {
            SpawnMode::In(_) => {
                let gs = self.sc.group_slot[node as usize];
                let g = match (gs != super::scope::NONE)
                    .then(|| self.slots[gs as usize])
                    .flatten()
                {
                    Some(Obj::Tg(g)) => g,
                    Some(o) => return Err(self.attr_error(t, o, "create_task")),
                    None => {
                        let gname = self.slot_name(gs);
                        let e = self.excs.msg(
                            Cls::NameError,
                            &format!("cannot access free variable '{gname}' where it is not associated with a value in enclosing scope"),
                        );
                        self.raise_here(t, e);
                        return Err(e);
                    }
                };
                let f = self.tg_create_task(t, g, node, name)?;
                if !self.sc.in_callback[node as usize] {
                    self.bind(node, Obj::Fut(f));
                }
            }
            SpawnMode::Bind => {
                let f = self.create_task(node, name)?;
                if !self.sc.in_callback[node as usize] {
                    self.bind(node, Obj::Fut(f));
                }
            }
            SpawnMode::Weak => {
                self.create_task(node, name)?;
            }
            SpawnMode::Keep => {
                let f = self.create_task(node, name)?;
                self.bg.push(f);
                self.add_done_callback(f, Cb::BgDiscard);
            }
        }
        Ok(V::None)
    }
}

pub fn is_base_error(c: Cls) -> bool {
    c == Cls::Prog(ExcClass::KeyboardInterrupt)
}
