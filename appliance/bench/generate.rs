//! A deterministic generator for the benches' generated data, so runs
//! compare.

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }

    /// A number in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Poisson-ish count with the given mean (sum of Bernoulli trials).
    pub fn count(&mut self, mean: f64) -> u32 {
        let trials = (mean * 4.0).ceil().max(1.0) as u32;
        let p = (mean / f64::from(trials)).min(1.0);
        (0..trials).filter(|_| self.chance(p)).count() as u32
    }
}
