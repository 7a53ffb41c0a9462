//! A small seeded generator of well-formed programs, for `canceltree gen`
//! and the first differential runs. Deterministic: the same seed and size
//! give the same program on every machine (own PRNG, no hash maps).

use crate::ast::{Builder, Catch, CatchClass, ExcClass, Kind, Pos, Program, SpawnMode, Sym, Time, Value};

/// SplitMix64: tiny, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const TIMES: [f64; 5] = [0.0, 0.0, 0.5, 1.0, 2.0];
const MAX_DEPTH: usize = 3;

struct Gen {
    b: Builder,
    rng: Rng,
    budget: usize,
    fresh: u32,
    /// Task names visible at this point, innermost scope last.
    scopes: Vec<Vec<Sym>>,
}

/// A random program of roughly `size` nodes.
pub fn program(seed: u64, size: usize) -> Program {
    let mut g = Gen { b: Builder::new(), rng: Rng::new(seed), budget: size.max(2), fresh: 0, scopes: vec![vec![]] };
    g.b.open(Kind::Main, Pos::NONE);
    g.body(0, 3);
    g.b.finish()
}

impl Gen {
    fn time(&mut self) -> Time {
        Time(self.rng.pick(&TIMES))
    }

    fn visible(&self) -> Vec<Sym> {
        self.scopes.iter().flatten().copied().collect()
    }

    fn leaf(&mut self, kind: Kind) {
        self.budget = self.budget.saturating_sub(1);
        self.b.leaf(kind, Pos::NONE);
    }

    fn open(&mut self, kind: Kind) {
        self.budget = self.budget.saturating_sub(1);
        self.b.open(kind, Pos::NONE);
    }

    /// At least `min` statements, more while the budget lasts.
    fn body(&mut self, depth: usize, min: usize) {
        let mut n = 0;
        while n < min || (self.budget > 0 && self.rng.chance(70)) {
            self.stmt(depth);
            n += 1;
            if n > 8 {
                break;
            }
        }
    }

    /// A new coroutine scope around `f`.
    fn scoped(&mut self, f: impl FnOnce(&mut Gen)) {
        self.scopes.push(Vec::new());
        f(self);
        self.scopes.pop();
    }

    fn stmt(&mut self, depth: usize) {
        let tasks = self.visible();
        let deep = depth >= MAX_DEPTH || self.budget == 0;
        match self.rng.below(if deep { 5 } else { 11 }) {
            0 | 1 => {
                let t = self.time();
                self.leaf(Kind::Sleep(t))
            }
            2 if !tasks.is_empty() => {
                let t = self.rng.pick(&tasks);
                self.leaf(Kind::Await(t))
            }
            3 if !tasks.is_empty() => {
                let t = self.rng.pick(&tasks);
                let msg = self.rng.chance(30).then(|| "stop".to_string());
                self.leaf(Kind::Cancel(t, msg))
            }
            4 => match self.rng.below(3) {
                0 => {
                    let v = self.rng.below(10) as i64;
                    self.leaf(Kind::Return(Value::Int(v)))
                }
                1 => self.leaf(Kind::Raise(ExcClass::ValueError, None)),
                _ => self.leaf(Kind::Uncancel(None)),
            },
            5 | 6 => {
                self.fresh += 1;
                let name = self.b.sym(&format!("t{}", self.fresh));
                let weak = self.rng.chance(15);
                self.open(Kind::Spawn(name, if weak { SpawnMode::Weak } else { SpawnMode::Bind }));
                self.scoped(|g| g.body(depth + 1, 1));
                self.b.close();
                if !weak {
                    self.scopes.last_mut().expect("a scope is open").push(name);
                }
            }
            7 => {
                let return_exceptions = self.rng.chance(40);
                self.open(Kind::Gather { return_exceptions });
                for _ in 0..1 + self.rng.below(3) {
                    if !tasks.is_empty() && self.rng.chance(50) {
                        let t = self.rng.pick(&tasks);
                        self.leaf(Kind::Ref(t));
                    } else {
                        self.scoped(|g| g.stmt(depth + 1));
                    }
                }
                self.b.close();
            }
            8 => {
                self.open(Kind::Try);
                self.body(depth + 1, 1);
                let class = self.rng.pick(&[
                    CatchClass::Class(ExcClass::CancelledError),
                    CatchClass::Exception,
                    CatchClass::Class(ExcClass::ValueError),
                ]);
                self.open(Kind::Except(Catch { class, star: false }));
                if self.rng.chance(50) {
                    self.stmt(depth + 1);
                }
                self.b.close();
                self.b.close();
            }
            9 => {
                let t = Time(self.rng.pick(&[0.5, 1.0, 1.5]));
                self.open(Kind::Timeout(Some(t)));
                self.body(depth + 1, 1);
                self.b.close();
            }
            _ => {
                let t = Time(self.rng.pick(&[0.5, 1.0]));
                self.open(Kind::WaitFor(Some(t)));
                if !tasks.is_empty() && self.rng.chance(50) {
                    let r = self.rng.pick(&tasks);
                    self.leaf(Kind::Ref(r));
                } else {
                    self.scoped(|g| g.stmt(depth + 1));
                }
                self.b.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_program() {
        for seed in 0..50 {
            assert_eq!(program(seed, 12), program(seed, 12));
        }
        assert_ne!(program(1, 12), program(2, 12));
    }
}
