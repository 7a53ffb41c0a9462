//! Where the generator's decisions come from: a seeded PRNG, fuzzer bytes,
//! or a recorder around either (for proptest's value trees).

/// A source of decisions. `choose(n)` returns a number in `0..n` (0 when
/// `n <= 1`); 0 must be what an exhausted source returns, and the
/// generator makes 0 the simplest option everywhere.
pub trait Choices {
    fn choose(&mut self, n: u32) -> u32;
}

/// SplitMix64: tiny, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    #[allow(clippy::should_implement_trait)]
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

impl Choices for Rng {
    fn choose(&mut self, n: u32) -> u32 {
        if n <= 1 {
            0
        } else {
            (self.next() % u64::from(n)) as u32
        }
    }
}

/// How many bytes a choice among `n` options takes in [`Bytes`].
pub(super) fn width(n: u32) -> usize {
    match n - 1 {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

/// Choices read from bytes: a choice among `n` options reads `width(n)`
/// bytes big-endian, modulo `n`; missing bytes read as zero. A choice among
/// one option reads nothing. [`Recorder`] writes the inverse.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, at: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
}

impl Choices for Bytes<'_> {
    fn choose(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let v = (0..width(n)).fold(0u64, |v, _| v << 8 | u64::from(self.byte()));
        (v % u64::from(n)) as u32
    }
}

/// Passes another source's choices through and writes them as the bytes
/// that make [`Bytes`] repeat them: generating from a seed through a
/// recorder yields a fuzz input that decodes to the same program.
pub struct Recorder<C> {
    pub inner: C,
    pub bytes: Vec<u8>,
}

impl<C: Choices> Choices for Recorder<C> {
    fn choose(&mut self, n: u32) -> u32 {
        let c = self.inner.choose(n);
        if n > 1 {
            let w = width(n);
            self.bytes.extend_from_slice(&c.to_be_bytes()[4 - w..]);
        }
        c
    }
}
