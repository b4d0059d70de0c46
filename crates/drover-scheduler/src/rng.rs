//! A small deterministic random number generator (SplitMix64).
//!
//! Schedulers take randomness as a value: the node shuffle and dynamic port picks are drawn from
//! a [`Rng`] seeded from the evaluation, so the same inputs and seed give the same plan. No
//! global RNG, no OS entropy.

/// SplitMix64: fast, tiny, good enough for shuffles and port picks (not for secrets).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The seed Nomad derives for an evaluation: the last 8 bytes of the eval ID (hex digits
    /// of the UUID) as a big-endian u64, XOR the state index, shifted right by 2. A refreshed
    /// state (new index) therefore gives a retry a different node order.
    pub fn for_eval(eval_id: &str, state_index: u64) -> Self {
        let hex: String = eval_id.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        let tail = if hex.len() >= 16 {
            &hex[hex.len() - 16..]
        } else {
            hex.as_str()
        };
        let v = u64::from_str_radix(tail, 16).unwrap_or(0);
        Rng::new((v ^ state_index) >> 2)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_spread() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            counts[a.below(4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850 && c < 1150), "{counts:?}");
    }

    #[test]
    fn eval_seed_changes_with_index() {
        let id = "5a6b7c8d-0000-4000-8000-0123456789ab";
        assert_ne!(
            Rng::for_eval(id, 10).next_u64(),
            Rng::for_eval(id, 11 << 2).next_u64()
        );
    }
}
