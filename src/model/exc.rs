//! Exception objects: class, message, group members and the
//! `__cause__`/`__context__` links, in an arena so identity is kept (a
//! re-raised exception is the same object, as chaining requires).

use crate::ast::{CatchClass, ExcClass};
use crate::trace::{Exc, ExcRef, Link, Value};
use std::rc::Rc;

pub type ExcId = u32;

/// How many encodings of exceptions with a message a machine keeps.
const PLAIN_SLOTS: usize = 64;

/// Every exception class a run can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cls {
    Prog(ExcClass),
    GeneratorExit,
    ExceptionGroup,
    BaseExceptionGroup,
    InvalidStateError,
    NameError,
    UnboundLocalError,
    AttributeError,
    RecursionError,
    /// Only from the C Task constructor's bug after a failed eager step
    /// (`task.rs::create_task`).
    SystemError,
}

impl Cls {
    pub const CANCELLED: Cls = Cls::Prog(ExcClass::CancelledError);
    pub const TIMEOUT: Cls = Cls::Prog(ExcClass::TimeoutError);
    pub const RUNTIME: Cls = Cls::Prog(ExcClass::RuntimeError);
    pub const VALUE: Cls = Cls::Prog(ExcClass::ValueError);

    pub fn name(self) -> &'static str {
        match self {
            Cls::Prog(c) => match c {
                ExcClass::ValueError => "ValueError",
                ExcClass::KeyError => "KeyError",
                ExcClass::RuntimeError => "RuntimeError",
                ExcClass::TypeError => "TypeError",
                ExcClass::TimeoutError => "TimeoutError",
                ExcClass::CancelledError => "CancelledError",
                ExcClass::KeyboardInterrupt => "KeyboardInterrupt",
                ExcClass::User(n) => {
                    ["E0", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"][n as usize % 10]
                }
            },
            Cls::GeneratorExit => "GeneratorExit",
            Cls::ExceptionGroup => "ExceptionGroup",
            Cls::BaseExceptionGroup => "BaseExceptionGroup",
            Cls::InvalidStateError => "InvalidStateError",
            Cls::NameError => "NameError",
            Cls::UnboundLocalError => "UnboundLocalError",
            Cls::AttributeError => "AttributeError",
            Cls::RecursionError => "RecursionError",
            Cls::SystemError => "SystemError",
        }
    }

    /// A small number for each class, for hashing.
    fn code(self) -> usize {
        match self {
            Cls::Prog(c) => match c {
                ExcClass::ValueError => 0,
                ExcClass::KeyError => 1,
                ExcClass::RuntimeError => 2,
                ExcClass::TypeError => 3,
                ExcClass::TimeoutError => 4,
                ExcClass::CancelledError => 5,
                ExcClass::KeyboardInterrupt => 6,
                ExcClass::User(n) => 7 + n as usize,
            },
            Cls::GeneratorExit => 1,
            Cls::ExceptionGroup => 2,
            Cls::BaseExceptionGroup => 3,
            Cls::InvalidStateError => 4,
            Cls::NameError => 5,
            Cls::UnboundLocalError => 6,
            Cls::AttributeError => 7,
            Cls::RecursionError => 8,
            Cls::SystemError => 9,
        }
    }

    /// A distinct small number for each class.
    fn slot(self) -> usize {
        match self {
            Cls::Prog(ExcClass::User(n)) => 16 + n as usize,
            Cls::Prog(_) => self.code(),
            _ => 6 + self.code(),
        }
    }

    /// A subclass of `Exception` (as opposed to only `BaseException`).
    pub fn is_exception(self) -> bool {
        !matches!(
            self,
            Cls::Prog(ExcClass::CancelledError)
                | Cls::Prog(ExcClass::KeyboardInterrupt)
                | Cls::GeneratorExit
                | Cls::BaseExceptionGroup
        )
    }

    pub fn is_cancelled(self) -> bool {
        self == Cls::CANCELLED
    }

    pub fn is_group(self) -> bool {
        matches!(self, Cls::ExceptionGroup | Cls::BaseExceptionGroup)
    }

    /// `isinstance(exc, class)` for a class an `except` clause can name.
    pub fn is_a(self, c: CatchClass) -> bool {
        match c {
            CatchClass::BaseException => true,
            CatchClass::Exception => self.is_exception(),
            CatchClass::Class(k) => {
                Cls::Prog(k) == self || (k == ExcClass::RuntimeError && self == Cls::RecursionError)
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExcObj {
    pub cls: Cls,
    pub msg: Option<Rc<str>>,
    pub group: Option<Rc<[ExcId]>>,
    pub cause: Option<ExcId>,
    pub context: Option<ExcId>,
    pub suppress: bool,
    /// Its place in the collector's list (`gcorder.rs`): the allocation
    /// clock when it was made, so just after the object made before it.
    pub key: u32,
    /// Freed by a collection: it holds nothing any more (a garbage cycle
    /// through it, such as a TaskGroup's group naming itself, is gone).
    pub collected: bool,
}

/// A cached encoding of an exception with a message: class, message, encoding.
type PlainEntry = (Cls, Rc<str>, ExcRef);

/// How many encodings of chained exceptions a machine keeps.
const CHAINED_SLOTS: usize = 32;

/// The longest `__cause__`/`__context__` chain an encoding shows.
const CHAIN_MAX: usize = 8;

/// An exception's chain by class, as `encode_depth` walks it, and the
/// same packed in one word (`packed`), which the cache compares: compared
/// link by link, as `Cls` values, the chain cost more than the encoding
/// it found.
#[derive(Clone, Copy)]
struct ChainKey {
    len: u8,
    links: [(Link, Cls); CHAIN_MAX],
    packed: u64,
}

/// Bits per link in `ChainKey::packed`: the link, then the class's `slot`.
const LINK_BITS: u32 = 6;

// The chain's length (4 bits) and every link fit in the word.
const _: () = assert!(4 + LINK_BITS as usize * CHAIN_MAX <= 64);

/// A cached encoding of a chained exception without members: class,
/// message, packed chain, encoding.
type ChainedEntry = (Cls, Option<Rc<str>>, u64, ExcRef);

/// The arena; cleared between runs. Every change to an exception goes
/// through `get_mut`, which invalidates the encodings `encode` keeps.
#[derive(Default)]
pub struct Excs {
    objs: Vec<ExcObj>,
    /// Counts changes to existing exceptions: an encoding made at an
    /// earlier count may be stale (a member's or a linked exception's).
    epoch: u32,
    /// Per exception, its last encoding and the epoch it was made at;
    /// made up to an exception when it is first encoded (many never are).
    encoded: std::cell::RefCell<Vec<Option<(u32, ExcRef)>>>,
    /// Bare encodings by class (`encode_bare`), at the class's `slot`,
    /// kept between runs: an encoding is immutable, so traces may share
    /// one. (Searched as a list, comparing classes cost more than making
    /// the encoding it found had.)
    bare: std::cell::RefCell<Vec<Option<ExcRef>>>,
    /// The bare CancelledError's, also in `bare`: read without a search.
    bare_cancelled: std::cell::OnceCell<ExcRef>,
    /// Likewise for exceptions with a message but no members and no chain
    /// (`encode_bare`), by class and message: messages come from a few
    /// literals, and making one anew costs three allocations (the
    /// encoding, its arguments, the string). A direct-mapped cache of
    /// `PLAIN_SLOTS` (a list searched in turn mispredicted its exit).
    plain: std::cell::RefCell<Vec<Option<PlainEntry>>>,
    /// Likewise for exceptions with a chain but no members (mostly a
    /// TimeoutError from a CancelledError), by class, message and chain:
    /// otherwise each run made these anew and freed them at its end.
    chained: std::cell::RefCell<Vec<Option<ChainedEntry>>>,
    /// The event loop's allocation clock (`EventLoop::clock`), shared.
    pub clock: std::rc::Rc<std::cell::Cell<u32>>,
    /// Messages `msg` made, kept between runs: most are a few constants,
    /// and each made anew cost an allocation and its free.
    texts: Vec<Rc<str>>,
}

/// How many messages `Excs::texts` keeps.
const TEXTS_MAX: usize = 8;

impl Excs {
    pub fn clear(&mut self) {
        self.objs.clear();
        self.encoded.get_mut().clear();
        self.epoch = 0;
    }

    pub fn len(&self) -> usize {
        self.objs.len()
    }

    pub fn get_mut(&mut self, e: ExcId) -> &mut ExcObj {
        self.epoch = self.epoch.wrapping_add(1);
        &mut self.objs[e as usize]
    }

    /// The new exception is written straight into the arena: built and
    /// then moved, it went through the stack.
    pub fn create(&mut self, cls: Cls, msg: Option<Rc<str>>) -> ExcId {
        let key = self.clock.get();
        super::machine::push_in_place!(
            self.objs,
            ExcObj {
                cls,
                msg,
                group: None,
                cause: None,
                context: None,
                suppress: false,
                key,
                collected: false,
            }
        ) as ExcId
    }

    pub fn msg(&mut self, cls: Cls, msg: &str) -> ExcId {
        let text = match self.texts.iter().find(|t| ***t == *msg) {
            Some(t) => t.clone(),
            None => {
                let t: Rc<str> = Rc::from(msg);
                if self.texts.len() < TEXTS_MAX {
                    self.texts.push(t.clone());
                }
                t
            }
        };
        self.create(cls, Some(text))
    }

    /// A group of `members`, copied: a caller's list stays its own to reuse.
    pub fn group(&mut self, cls: Cls, msg: &str, members: &[ExcId]) -> ExcId {
        let id = self.msg(cls, msg);
        self.get_mut(id).group = Some(members.into());
        id
    }

    /// A collection moved `e` in the collector's list; its encoding stands.
    pub fn set_key(&mut self, e: ExcId, key: u32) {
        self.objs[e as usize].key = key;
    }

    pub fn get(&self, e: ExcId) -> &ExcObj {
        &self.objs[e as usize]
    }

    pub fn cls(&self, e: ExcId) -> Cls {
        self.objs[e as usize].cls
    }

    /// `_PyErr_SetObject`'s chaining: raising `e` while `handled` is being
    /// handled sets `e.__context__`, first cutting any cycle through `e`
    /// in `handled`'s context chain.
    /// `raise e from c` inside the handler of `c`, so `c` is also its
    /// context (`raise TimeoutError from exc`; C's `_PyErr_FormatFromCause`).
    pub fn raise_from_handled(&mut self, e: ExcId, c: ExcId) {
        self.chain(e, Some(c));
        let o = self.get_mut(e);
        o.cause = Some(c);
        o.suppress = true;
    }

    pub fn chain(&mut self, e: ExcId, handled: Option<ExcId>) {
        let Some(h) = handled else { return };
        if h == e {
            return;
        }
        let mut o = h;
        let mut steps = 0;
        while let Some(c) = self.objs[o as usize].context {
            if c == e {
                self.get_mut(o).context = None;
                break;
            }
            o = c;
            steps += 1;
            if steps > 100_000 {
                break;
            }
        }
        self.get_mut(e).context = Some(h);
    }

    /// The trace form of an exception, shared as events hold it: made
    /// again only if some exception changed since it was last made.
    ///
    /// The commonest case, a bare CancelledError once one was encoded, is
    /// taken inline; the rest out of line.
    #[inline(always)]
    pub fn encode(&self, e: ExcId) -> ExcRef {
        let o = self.get(e);
        if o.cls == Cls::CANCELLED
            && o.msg.is_none()
            && o.group.is_none()
            && o.cause.is_none()
            && o.context.is_none()
            && let Some(x) = self.bare_cancelled.get()
        {
            return x.clone();
        }
        self.encode_out(e)
    }

    #[inline(never)]
    fn encode_out(&self, e: ExcId) -> ExcRef {
        if let Some(x) = self.encode_bare(e) {
            return x;
        }
        let mut cache = self.encoded.borrow_mut();
        if let Some(Some((at, x))) = cache.get(e as usize)
            && *at == self.epoch
        {
            return x.clone();
        }
        let x = if self.get(e).group.is_none() {
            self.encode_chained(e)
        } else {
            ExcRef::new(self.encode_depth(e, 0))
        };
        if cache.len() <= e as usize {
            cache.resize(e as usize + 1, None);
        }
        cache[e as usize] = Some((self.epoch, x.clone()));
        x
    }

    /// The encoding of `e` if it is bare (no members, no chain: most
    /// CancelledErrors), one per class, or per class and message, shared
    /// by every run.
    fn encode_bare(&self, e: ExcId) -> Option<ExcRef> {
        let o = self.get(e);
        if o.group.is_some() {
            return None;
        }
        // `encode_depth`'s first link, which a cycle back to `e` ends.
        if self.next_link(e).is_some_and(|(_, n)| n != e) {
            return None;
        }
        if let Some(m) = &o.msg {
            return self.encode_plain(o.cls, m);
        }
        let mut bare = self.bare.borrow_mut();
        let slot = o.cls.slot();
        if let Some(Some(x)) = bare.get(slot) {
            return Some(x.clone());
        }
        let x = ExcRef::new(Exc {
            cls: o.cls.name().into(),
            args: Vec::new(),
            group: None,
            chain: Vec::new(),
        });
        if bare.len() <= slot {
            bare.resize(slot + 1, None);
        }
        bare[slot] = Some(x.clone());
        if o.cls == Cls::CANCELLED {
            let _ = self.bare_cancelled.set(x.clone());
        }
        Some(x)
    }

    /// `encode_bare` of an exception with message `m`.
    fn encode_plain(&self, cls: Cls, m: &Rc<str>) -> Option<ExcRef> {
        let mut plain = self.plain.borrow_mut();
        if plain.is_empty() {
            plain.resize(PLAIN_SLOTS, None);
        }
        let b = m.as_bytes();
        let h = cls.code() * 31
            + b.len() * 7
            + b.first().map_or(0, |&c| c as usize)
            + b.last().map_or(0, |&c| 3 * c as usize);
        let slot = &mut plain[h % PLAIN_SLOTS];
        if let Some((c, pm, x)) = slot
            && *c == cls
            && **pm == **m
        {
            return Some(x.clone());
        }
        let x = ExcRef::new(Exc {
            cls: cls.name().into(),
            args: vec![Value::Str(String::from(&**m))],
            group: None,
            chain: Vec::new(),
        });
        *slot = Some((cls, m.clone(), x.clone()));
        Some(x)
    }

    /// The encoding of `e`, which has no members, shared by every run.
    fn encode_chained(&self, e: ExcId) -> ExcRef {
        let o = self.get(e);
        let key = self.chain_key(e);
        let mut cached = self.chained.borrow_mut();
        if cached.is_empty() {
            cached.resize(CHAINED_SLOTS, None);
        }
        let k = key.packed;
        let mut h = o.cls.code() * 31 + (k ^ (k >> 13) ^ (k >> 29)) as usize;
        if let Some(m) = &o.msg {
            h += m.len() * 11;
        }
        let slot = &mut cached[h % CHAINED_SLOTS];
        if let Some((c, m, pk, x)) = slot
            && *c == o.cls
            && *pk == k
            && m.as_deref() == o.msg.as_deref()
        {
            return x.clone();
        }
        let x = ExcRef::new(self.encode_depth(e, 0));
        *slot = Some((o.cls, o.msg.clone(), k, x.clone()));
        x
    }

    /// `e`'s `__cause__`/`__context__` chain by class: at most
    /// `CHAIN_MAX` links, stopping where it comes back to an exception
    /// already on it. Both the encoding and its cache key are made from it.
    fn chain_key(&self, e: ExcId) -> ChainKey {
        let mut key = ChainKey {
            len: 0,
            links: [(Link::Cause, Cls::CANCELLED); CHAIN_MAX],
            packed: 0,
        };
        let mut seen = [e; CHAIN_MAX + 1];
        let mut cur = e;
        while (key.len as usize) < CHAIN_MAX {
            let Some((link, next)) = self.next_link(cur) else {
                break;
            };
            let n = key.len as usize;
            if seen[..=n].contains(&next) {
                break;
            }
            seen[n + 1] = next;
            let cls = self.get(next).cls;
            key.links[n] = (link, cls);
            key.packed |= ((cls.slot() as u64) << 1 | link as u64) << (LINK_BITS * n as u32 + 4);
            key.len += 1;
            cur = next;
        }
        key.packed |= key.len as u64;
        key
    }

    /// The link `encode_depth` follows from `c`: its cause, else its
    /// context unless suppressed.
    fn next_link(&self, c: ExcId) -> Option<(Link, ExcId)> {
        let c = self.get(c);
        if let Some(x) = c.cause {
            Some((Link::Cause, x))
        } else if let (Some(x), false) = (c.context, c.suppress) {
            Some((Link::Context, x))
        } else {
            None
        }
    }

    fn encode_depth(&self, e: ExcId, depth: usize) -> Exc {
        let o = self.get(e);
        let args = match &o.msg {
            Some(m) => vec![Value::Str(String::from(&**m))],
            None => Vec::new(),
        };
        let group = o.group.as_ref().map(|g| {
            if depth < 32 {
                g.iter().map(|&x| self.encode_depth(x, depth + 1)).collect()
            } else {
                Vec::new()
            }
        });
        let key = self.chain_key(e);
        let chain = key.links[..key.len as usize]
            .iter()
            .map(|&(link, c)| (link, c.name().into()))
            .collect();
        Exc {
            cls: o.cls.name().into(),
            args,
            group,
            chain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cls, ExcClass};

    /// Every class, by a match that stops compiling when one is added:
    /// add it to `all` too.
    fn all() -> Vec<Cls> {
        let every = |c: Cls| match c {
            Cls::Prog(_)
            | Cls::GeneratorExit
            | Cls::ExceptionGroup
            | Cls::BaseExceptionGroup
            | Cls::InvalidStateError
            | Cls::NameError
            | Cls::UnboundLocalError
            | Cls::AttributeError
            | Cls::RecursionError
            | Cls::SystemError => c,
        };
        let mut v: Vec<Cls> = ExcClass::BUILTINS.iter().map(|&c| Cls::Prog(c)).collect();
        v.extend((0..=9).map(|n| Cls::Prog(ExcClass::User(n))));
        v.extend([
            Cls::GeneratorExit,
            Cls::ExceptionGroup,
            Cls::BaseExceptionGroup,
            Cls::InvalidStateError,
            Cls::NameError,
            Cls::UnboundLocalError,
            Cls::AttributeError,
            Cls::RecursionError,
            Cls::SystemError,
        ]);
        v.into_iter().map(every).collect()
    }

    /// `encode_bare` keeps one encoding per slot: two classes sharing one
    /// would be encoded as each other. A chain's packed key gives each
    /// slot `LINK_BITS - 1` bits.
    #[test]
    fn every_exception_class_has_its_own_bare_encoding_slot() {
        let all = all();
        for a in &all {
            assert!(a.slot() < 1 << (super::LINK_BITS - 1), "{a:?}'s slot");
        }
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.slot(), b.slot(), "{a:?} and {b:?} share a slot");
            }
        }
    }
}
