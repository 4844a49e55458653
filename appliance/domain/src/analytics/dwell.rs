//! Dwell-time distributions as histograms with geometric bins (each 5 %
//! wider than the last), so that minute buckets merge into hours and days
//! by adding counts, and any quantile is read back within a bin: 5 %.
//! A histogram holds counts only: no visit, time or person.

use std::collections::BTreeMap;

/// Bin b holds durations in [GROWTH^b, GROWTH^(b+1)) seconds; bin 0 also
/// everything under a second.
const GROWTH: f64 = 1.05;
/// 1.05^240 s is about 4 days: longer visits share the last bin.
pub const MAX_BIN: u16 = 240;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DwellHistogram {
    bins: BTreeMap<u16, u32>,
}

pub fn bin_of(seconds: f64) -> u16 {
    if seconds <= 1.0 {
        return 0;
    }
    ((seconds.ln() / GROWTH.ln()).floor() as u16).min(MAX_BIN)
}

impl DwellHistogram {
    pub fn add(&mut self, seconds: f64) {
        *self.bins.entry(bin_of(seconds)).or_default() += 1;
    }

    pub fn add_bin(&mut self, bin: u16, visits: u32) {
        *self.bins.entry(bin.min(MAX_BIN)).or_default() += visits;
    }

    pub fn merge(&mut self, other: &DwellHistogram) {
        for (&bin, &visits) in &other.bins {
            self.add_bin(bin, visits);
        }
    }

    pub fn bins(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.bins.iter().map(|(&b, &v)| (b, v))
    }

    pub fn visits(&self) -> u64 {
        self.bins.values().map(|&v| u64::from(v)).sum()
    }

    /// The q-quantile (0..=1) in seconds, interpolated between the visits
    /// on either side of it as numpy's default does; a bin's visits are
    /// placed evenly (geometrically) across it. None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.visits();
        if n == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
        let below = rank.floor() as u64;
        let low = self.visit(below);
        let high = self.visit((below + 1).min(n - 1));
        Some(low + (high - low) * (rank - below as f64))
    }

    /// The k-th shortest visit (0-based, k < visits) as this histogram places it.
    fn visit(&self, k: u64) -> f64 {
        let mut before = 0u64;
        for (&bin, &visits) in &self.bins {
            let visits = u64::from(visits);
            if k < before + visits {
                let within = ((k - before) as f64 + 0.5) / visits as f64;
                return GROWTH.powf(f64::from(bin) + within);
            }
            before += visits;
        }
        // k beyond the last visit: the top of the last bin.
        self.bins
            .keys()
            .next_back()
            .map_or(0.0, |&b| GROWTH.powi(i32::from(b) + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_five_percent() {
        let durations = [3.0, 12.5, 40.0, 41.0, 95.0, 180.0, 600.0];
        let mut h = DwellHistogram::default();
        for d in durations {
            h.add(d);
        }
        assert_eq!(h.visits(), 7);
        let median = h.quantile(0.5).unwrap();
        assert!((median / 41.0 - 1.0).abs() < 0.05, "median {median}");
        let single = {
            let mut h = DwellHistogram::default();
            h.add(180.0);
            h.quantile(0.9).unwrap()
        };
        assert!((single / 180.0 - 1.0).abs() < 0.05, "{single}");
        assert_eq!(DwellHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn merged_minutes_equal_one_histogram_of_everything() {
        let (mut a, mut b, mut all) = Default::default();
        for (i, d) in [5.0, 7.0, 300.0, 8.0, 20.0].into_iter().enumerate() {
            let part: &mut DwellHistogram = if i % 2 == 0 { &mut a } else { &mut b };
            part.add(d);
            DwellHistogram::add(&mut all, d);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(bin_of(0.2), 0);
        assert_eq!(bin_of(1e9), MAX_BIN);
    }
}
