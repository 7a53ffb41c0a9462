//! Name slots: the objects a name can hold, binding them, and reading
//! them back with CPython's errors for a name not (or no longer) bound.

use super::exc::{Cls, ExcId};
use super::fut::FutId;
use super::machine::Machine;
use crate::ast::NodeId;

/// A reference a name slot can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obj {
    Fut(FutId),
    Tg(u32),
}

impl Machine {
    pub fn bind(&mut self, node: NodeId, o: Obj) {
        let slot = self.sc.slot[node as usize];
        if slot != super::scope::NONE {
            self.slots[slot as usize] = Some(o);
        }
    }

    /// The program name of a variable slot, for error messages.
    pub(super) fn slot_name(&self, slot: u32) -> String {
        self.sc
            .slot_sym
            .get(slot as usize)
            .map_or_else(|| "?".to_string(), |&s| self.p().name(s).to_string())
    }

    /// Reads the object a name-reading node names.
    pub fn read(&mut self, t: Option<u32>, node: NodeId) -> Result<Obj, ExcId> {
        let slot = self.sc.slot[node as usize];
        if slot != super::scope::NONE
            && let Some(o) = self.slots[slot as usize]
        {
            return Ok(o);
        }
        let name = self.slot_name(slot);
        let e = if self.sc.local[node as usize] {
            self.excs.msg(Cls::UnboundLocalError, &unbound_local(&name))
        } else {
            self.excs.msg(
                Cls::NameError,
                &format!("cannot access free variable '{name}' where it is not associated with a value in enclosing scope"),
            )
        };
        self.raise_here(t, e);
        Err(e)
    }

    pub fn read_fut(&mut self, t: Option<u32>, node: NodeId) -> Result<FutId, ExcId> {
        match self.read(t, node)? {
            Obj::Fut(f) => Ok(f),
            Obj::Tg(_) => Err(self.raise_new(
                t,
                Cls::Prog(crate::ast::ExcClass::TypeError),
                "object TaskGroup can't be used in 'await' expression",
            )),
        }
    }
}

/// CPython's message for reading a local before its binding ran.
pub(super) fn unbound_local(name: &str) -> String {
    format!("cannot access local variable '{name}' where it is not associated with a value")
}
