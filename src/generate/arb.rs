//! `arbitrary::Arbitrary` for programs (feature `arbitrary`, on by default).
//!
//! The bytes are read exactly as `fuzz_program` reads them: `arbitrary`
//! reads one choice for the size (1 to `MAX_FUZZ_SIZE`) and then the
//! generator's choices, each from as few bytes as [`Bytes`] would take,
//! with missing bytes read as zero; `arbitrary_take_rest` is
//! `fuzz_program` on the rest, which also accepts `.ct` text. So
//! `Program::arbitrary_take_rest(Unstructured::new(data))` and
//! `fuzz_program(data)` are the same program, and the fuzz corpora replay
//! the same way through either.
//!
//! [`Bytes`]: super::Bytes

use super::choices::width;
use super::{Choices, MAX_FUZZ_SIZE, fuzz_program, generate};
use crate::ast::Program;
use arbitrary::{Arbitrary, Result, Unstructured};

/// Choices read from an `Unstructured`, byte for byte like `Bytes`.
struct FromUnstructured<'a, 'b>(&'b mut Unstructured<'a>);

impl Choices for FromUnstructured<'_, '_> {
    fn choose(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let mut buf = [0u8; 4];
        let w = width(n);
        // Pads with zeros when the data runs out, as `Bytes` does.
        let _ = self.0.fill_buffer(&mut buf[..w]);
        let v = buf[..w].iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
        (v % u64::from(n)) as u32
    }
}

impl<'a> Arbitrary<'a> for Program {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Program> {
        let mut c = FromUnstructured(u);
        let size = 1 + c.choose(MAX_FUZZ_SIZE as u32) as usize;
        Ok(generate(&mut c, size))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> Result<Program> {
        Ok(fuzz_program(u.take_rest()))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (0, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::fuzz_program_bytes;

    #[test]
    fn arbitrary_reads_bytes_like_fuzz_program() {
        for seed in 0..30 {
            let data = fuzz_program_bytes(seed, 1 + seed as usize % 40);
            let a = Program::arbitrary(&mut Unstructured::new(&data)).unwrap();
            let b = Program::arbitrary_take_rest(Unstructured::new(&data)).unwrap();
            assert_eq!(a, fuzz_program(&data));
            assert_eq!(b, fuzz_program(&data));
        }
        let noise: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        assert_eq!(
            Program::arbitrary(&mut Unstructured::new(&noise)).unwrap(),
            fuzz_program(&noise)
        );
    }
}
