//! A port of the part of numpy's random module that sacrebleu's paired bootstrap
//! uses: `np.random.default_rng(seed).choice(n, size=(k, n), replace=True)`.
//!
//! That is `SeedSequence(seed)` → `PCG64` (128-bit LCG, XSL-RR output) → bounded
//! integers by Lemire's method on 32-bit draws (each 64-bit output gives two 32-bit
//! draws, low half first). The same seed gives the same indices as numpy, so the
//! bootstrap resamples — and the p-values — are identical to sacrebleu's. Checked
//! against numpy 2.x by `tests/reference`.

/// numpy's `SeedSequence` pool size (in 32-bit words).
const POOL_SIZE: usize = 4;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
/// PCG64's default 128-bit multiplier.
const PCG_MULTIPLIER: u128 = (2_549_297_995_355_413_924u128 << 64) + 4_865_540_595_714_422_341;

/// `SeedSequence(seed).generate_state(4, np.uint64)` for an integer seed with no
/// spawn key.
fn seed_sequence_state(seed: u64) -> [u64; 4] {
    // `_coerce_to_uint32_array`: little-endian 32-bit words, at least one.
    let entropy: Vec<u32> = if seed >> 32 == 0 {
        vec![seed as u32]
    } else {
        vec![seed as u32, (seed >> 32) as u32]
    };
    let mut hash_const = INIT_A;
    let mut hashmix = |value: u32| -> u32 {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> XSHIFT)
    };
    let mix = |x: u32, y: u32| -> u32 {
        let r = MIX_MULT_L
            .wrapping_mul(x)
            .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> XSHIFT)
    };
    let mut pool = [0u32; POOL_SIZE];
    for (i, slot) in pool.iter_mut().enumerate() {
        *slot = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..POOL_SIZE {
        for dst in 0..POOL_SIZE {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    // Entropy beyond the pool size (never for a u64 seed) would be mixed in here.
    let mut words = [0u32; 8];
    let mut hash_b = INIT_B;
    for (i, word) in words.iter_mut().enumerate() {
        let mut v = pool[i % POOL_SIZE] ^ hash_b;
        hash_b = hash_b.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_b);
        *word = v ^ (v >> XSHIFT);
    }
    let mut out = [0u64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32);
    }
    out
}

/// numpy's `Generator(PCG64(seed))`, reduced to the draws the bootstrap needs.
#[derive(Debug, Clone)]
pub struct NumpyRng {
    state: u128,
    inc: u128,
    buffered: Option<u32>,
}

impl NumpyRng {
    /// The generator `np.random.default_rng(seed)` starts from.
    pub fn new(seed: u64) -> NumpyRng {
        let s = seed_sequence_state(seed);
        let init_state = (u128::from(s[0]) << 64) | u128::from(s[1]);
        let init_seq = (u128::from(s[2]) << 64) | u128::from(s[3]);
        let mut rng = NumpyRng {
            state: 0,
            inc: (init_seq << 1) | 1,
            buffered: None,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self
            .state
            .wrapping_mul(PCG_MULTIPLIER)
            .wrapping_add(self.inc);
    }

    /// The next raw 64-bit output (`bit_generator.random_raw()`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let x = ((s >> 64) as u64) ^ (s as u64);
        x.rotate_right((s >> 122) as u32)
    }

    /// The next 32-bit draw: the low half of a 64-bit output, then its high half.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let next = self.next_u64();
        self.buffered = Some((next >> 32) as u32);
        next as u32
    }

    /// A uniform integer in `0..n` as `Generator.integers(0, n)` draws it for
    /// `n <= 2^32` (Lemire's method); `n` of 0 or 1 gives 0 without a draw.
    pub fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let rng_excl = u64::from(n);
        let mut m = u64::from(self.next_u32()) * rng_excl;
        let mut leftover = m & 0xFFFF_FFFF;
        if leftover < rng_excl {
            let threshold = (u64::from(u32::MAX) - (rng_excl - 1)) % rng_excl;
            while leftover < threshold {
                m = u64::from(self.next_u32()) * rng_excl;
                leftover = m & 0xFFFF_FFFF;
            }
        }
        (m >> 32) as u32
    }

    /// Fills `out` with indices in `0..n`, as one row of
    /// `choice(n, size=(rows, out.len()), replace=True)`.
    pub fn fill_indices(&mut self, n: u32, out: &mut [usize]) {
        for slot in out {
            *slot = self.below(n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_for_the_sacrebleu_seed() {
        // np.random.PCG64(12345).random_raw(2)
        let mut raw = NumpyRng::new(12345);
        assert_eq!(raw.next_u64(), 4_193_609_425_186_963_869);
        assert_eq!(raw.next_u64(), 5_843_160_025_838_961_886);
        // np.random.default_rng(12345).choice(10, 8)
        let mut rng = NumpyRng::new(12345);
        let mut idx = [0usize; 8];
        rng.fill_indices(10, &mut idx);
        assert_eq!(idx, [6, 2, 7, 3, 2, 7, 6, 6]);
    }

    #[test]
    fn large_ranges_and_degenerate_ones() {
        // np.random.default_rng(0).choice(2**31 + 11, 2)
        let mut rng = NumpyRng::new(0);
        assert_eq!(rng.below((1 << 31) + 11), 1_826_701_624);
        assert_eq!(rng.below((1 << 31) + 11), 1_367_864_814);
        let mut a = NumpyRng::new(7);
        let mut b = NumpyRng::new(7);
        assert_eq!(a.below(1), 0);
        assert_eq!(a.below(0), 0);
        assert_eq!(a.next_u32(), b.next_u32(), "n <= 1 must not consume a draw");
    }
}
