//! Randomness as an input: the [`Entropy`] trait every sans-IO core draws
//! from, the operating system's source for apps, and a seeded one that
//! replays exactly for tests and simulations.
//!
//! Nothing in the engine, the sessions or the relay's core draws randomness
//! of its own: whoever drives them passes an `Entropy` in, as it passes the
//! time.

/// A source of random bytes.
pub trait Entropy: Send {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

/// The operating system's random source (`getrandom`): what an app and a
/// relay use.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    /// # Panics
    ///
    /// When the operating system has no working random source. Keys and
    /// challenges made from anything weaker would be worse than stopping.
    fn fill(&mut self, out: &mut [u8]) {
        if let Err(error) = getrandom::fill(out) {
            panic!("the operating system's random source failed: {error}");
        }
    }
}

/// A deterministic stream of bytes from a seed (blake3 in XOF mode): the
/// same seed gives the same bytes, so a simulation replays exactly.
///
/// **For tests and simulations only.** Anyone who knows the seed knows
/// every key and nonce drawn from it; a real device or relay uses
/// [`OsEntropy`].
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    seed: [u8; 32],
    drawn: u64,
    /// Bytes handed out before the stream: what a test wants drawn first.
    prefix: Vec<u8>,
}

impl SeededEntropy {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededEntropy {
            seed: *blake3::hash(&seed.to_le_bytes()).as_bytes(),
            drawn: 0,
            prefix: Vec::new(),
        }
    }

    /// The stream of `seed`, after `prefix`: a test that wants a device id
    /// it knows passes the id (the engine's first draw at a first open).
    pub fn starting_with(prefix: &[u8], seed: u64) -> Self {
        SeededEntropy {
            prefix: prefix.to_vec(),
            ..SeededEntropy::new(seed)
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        let from_prefix = self.prefix.len().min(out.len());
        out[..from_prefix].copy_from_slice(&self.prefix[..from_prefix]);
        self.prefix.drain(..from_prefix);
        let rest = &mut out[from_prefix..];
        let mut reader = blake3::Hasher::new_keyed(&self.seed).finalize_xof();
        reader.set_position(self.drawn);
        reader.fill(rest);
        self.drawn += rest.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_entropy_replays_and_seeds_differ() {
        let draw = |seed| {
            let mut e = SeededEntropy::new(seed);
            let (mut a, mut b) = ([0u8; 16], [0u8; 32]);
            e.fill(&mut a);
            e.fill(&mut b);
            (a, b)
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let (a, b) = draw(1);
        assert_ne!(a[..], b[..16], "a second draw continues the stream");
        // One draw of 48 bytes is the two draws above, concatenated.
        let mut whole = [0u8; 48];
        SeededEntropy::new(1).fill(&mut whole);
        assert_eq!((&whole[..16], &whole[16..]), (&a[..], &b[..]));
    }

    #[test]
    fn a_prefix_comes_first_then_the_stream() {
        let mut e = SeededEntropy::starting_with(&[7; 16], 1);
        let mut id = [0u8; 16];
        e.fill(&mut id);
        assert_eq!(id, [7; 16]);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        e.fill(&mut a);
        SeededEntropy::new(1).fill(&mut b);
        assert_eq!(a, b, "the stream is untouched by the prefix");
        let mut e = SeededEntropy::starting_with(&[7; 3], 1);
        let mut five = [0u8; 5];
        e.fill(&mut five);
        assert_eq!(five[..3], [7; 3]);
    }

    #[test]
    fn os_entropy_fills_the_buffer() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OsEntropy.fill(&mut a);
        OsEntropy.fill(&mut b);
        assert_ne!(a, b);
        OsEntropy.fill(&mut []);
    }
}
