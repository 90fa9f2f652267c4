//! Sources of random decisions.

/// Something that answers "pick a number below `n`".
///
/// Implementations never fail: a source that runs dry (fuzzer bytes, a
/// proptest vector) answers 0 from then on, which makes generators pick
/// their first, simplest option and keeps short inputs meaningful.
pub trait Choices {
    /// A number in `0..n`; `n` must be at least 1.
    fn below(&mut self, n: u64) -> u64;

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// An index into a slice of `len` items; `len` must be at least 1.
    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// One item of a non-empty slice.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Shuffles `items` in place (Fisher–Yates).
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// SplitMix64: a tiny, fast, well-mixed PRNG. One seed, one stream, on
/// every platform and every run; that is all a simulation needs.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A new generator whose stream is independent of this one's, for a
    /// part of the simulation that should not shift every later decision
    /// when it draws one number more or less.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

impl Choices for Rng {
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        // Multiply-shift: unbiased enough for tests, and branch-free.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Fuzzer bytes as choices, through `arbitrary`.
pub struct Bytes<'a> {
    pub u: arbitrary::Unstructured<'a>,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes {
            u: arbitrary::Unstructured::new(data),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.u.is_empty()
    }
}

impl Choices for Bytes<'_> {
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.u.int_in_range(0..=n - 1).unwrap_or(0)
    }
}

/// A list of numbers (from proptest, which shrinks it toward fewer and
/// smaller numbers) as choices: each number is taken modulo `n`.
#[derive(Debug, Clone)]
pub struct List<'a> {
    values: &'a [u32],
    next: usize,
}

impl<'a> List<'a> {
    pub fn new(values: &'a [u32]) -> Self {
        List { values, next: 0 }
    }
}

impl Choices for List<'_> {
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let value = self.values.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        value as u64 % n
    }
}
