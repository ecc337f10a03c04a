//! A small deterministic generator for election timeouts. The driver chooses the seed, so
//! the same seed and inputs always give the same timeouts.

/// SplitMix64: a tiny, fast, seedable generator, good enough to spread timeouts uniformly
/// and to drive fault injection reproducibly.
///
/// Not part of the core's public API: the core only takes a seed. The simulator and
/// tests reach it as `actraft::testkit::SplitMix64`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)`; `bound` must be non-zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        // Multiply-shift: unbiased enough for timeouts, and branch-free.
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}
