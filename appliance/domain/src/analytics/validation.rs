//! On-site validation without video: an installer taps "in" and "out" on a
//! phone as people cross a line, and the appliance compares the taps with
//! its own count of that line over the same seconds. Nothing is recorded
//! but the taps' times and the line's totals.
//!
//! The error is the appliance's count minus the taps, in both directions
//! together, as a share of the taps. Its 95 % confidence interval comes from
//! the spread of that difference over consecutive windows of at least
//! `WINDOW_MS` (a t interval over the windows' differences, scaled to the
//! session): a few minutes of taps give a wide interval, and the report
//! says so rather than a bare percentage.

use crate::clock::UnixMs;

/// Windows are at least this long: a crossing counted a second after the
/// tap (the tracker needs a few frames) then rarely falls in another window.
pub const WINDOW_MS: i64 = 30_000;
/// Taps kept per session: hours of a busy door.
pub const MAX_TAPS: usize = 20_000;
/// The appliance counts a crossing up to this long after it happens (the
/// tracker confirms over a few frames): a tap belongs to the window that
/// holds its time plus this.
const COUNT_LAG_MS: i64 = 2_000;

/// A crossing direction as tapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    In,
    Out,
}

/// One validation session of one line.
#[derive(Debug, Clone)]
pub struct Validation {
    line: String,
    started: UnixMs,
    /// The line's totals (in, out) when the session started.
    start_totals: (u64, u64),
    taps: Vec<(UnixMs, Tap)>,
    /// The line's totals sampled over the session (at each tap and each
    /// read), for the windows.
    samples: Vec<(UnixMs, (u64, u64))>,
}

/// How the appliance's count compares with the taps.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub line: String,
    pub seconds: f64,
    pub taps_in: u64,
    pub taps_out: u64,
    pub counted_in: u64,
    pub counted_out: u64,
    /// (counted - tapped) / tapped, both directions; None before any tap.
    pub error: Option<f64>,
    /// 95 % confidence interval of `error`; None with fewer than two
    /// windows.
    pub interval: Option<(f64, f64)>,
    pub windows: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TooManyTaps;

impl Validation {
    pub fn start(line: &str, at: UnixMs, totals: (u64, u64)) -> Validation {
        Validation {
            line: line.to_string(),
            started: at,
            start_totals: totals,
            taps: Vec::new(),
            samples: vec![(at, totals)],
        }
    }

    pub fn line(&self) -> &str {
        &self.line
    }

    pub fn started(&self) -> UnixMs {
        self.started
    }

    /// Records a tap at `at`, with the line's totals then.
    pub fn tap(&mut self, tap: Tap, at: UnixMs, totals: (u64, u64)) -> Result<(), TooManyTaps> {
        if self.taps.len() >= MAX_TAPS {
            return Err(TooManyTaps);
        }
        self.taps.push((at.max(self.started), tap));
        self.sample(at, totals);
        Ok(())
    }

    /// Records the line's totals at `at` (each read of the session does).
    pub fn sample(&mut self, at: UnixMs, totals: (u64, u64)) {
        if self.samples.len() < MAX_TAPS && self.samples.last().is_none_or(|&(last, _)| at >= last)
        {
            self.samples.push((at, totals));
        }
    }

    /// The comparison so far, as of `at` with the line's `totals` then.
    pub fn report(&self, at: UnixMs, totals: (u64, u64)) -> Report {
        let tapped = |dir: Tap| self.taps.iter().filter(|(_, t)| *t == dir).count() as u64;
        let (taps_in, taps_out) = (tapped(Tap::In), tapped(Tap::Out));
        let counted_in = totals.0.saturating_sub(self.start_totals.0);
        let counted_out = totals.1.saturating_sub(self.start_totals.1);
        let taps = taps_in + taps_out;
        let error =
            (taps > 0).then(|| ((counted_in + counted_out) as f64 - taps as f64) / taps as f64);
        let differences = self.window_differences(at, totals);
        let interval = match (error, differences.len()) {
            (Some(error), n) if n >= 2 => {
                let mean = differences.iter().sum::<f64>() / n as f64;
                let var =
                    differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                // The total difference is the sum over n windows.
                let half = t_95(n - 1) * (var * n as f64).sqrt() / taps as f64;
                Some((error - half, error + half))
            }
            _ => None,
        };
        Report {
            line: self.line.clone(),
            seconds: (at - self.started).max(0) as f64 / 1000.0,
            taps_in,
            taps_out,
            counted_in,
            counted_out,
            error,
            interval,
            windows: differences.len(),
        }
    }

    /// (counted - tapped) in each consecutive window of at least
    /// `WINDOW_MS`, cut at the samples; the unfinished last one joins the
    /// window before it. A tap in the last `COUNT_LAG_MS` falls in none.
    fn window_differences(&self, at: UnixMs, totals: (u64, u64)) -> Vec<f64> {
        let mut samples = self.samples.clone();
        if samples.last().is_none_or(|&(last, _)| at >= last) {
            samples.push((at, totals));
        }
        let mut cuts = vec![samples[0]];
        for &sample in &samples[1..] {
            let (last, _) = cuts[cuts.len() - 1];
            if sample.0 - last >= WINDOW_MS {
                cuts.push(sample);
            }
        }
        // The tail shorter than a window joins the last one.
        let end = samples[samples.len() - 1];
        if cuts.len() >= 2 {
            let last = cuts.len() - 1;
            cuts[last] = end;
        } else {
            cuts.push(end);
        }
        cuts.windows(2)
            .map(|w| {
                let ((from, a), (to, b)) = (w[0], w[1]);
                let counted = (b.0 + b.1).saturating_sub(a.0 + a.1) as f64;
                let first = from == self.started;
                let tapped = self
                    .taps
                    .iter()
                    .map(|&(t, _)| t + COUNT_LAG_MS)
                    .filter(|&t| (t > from || first) && t <= to)
                    .count() as f64;
                counted - tapped
            })
            .collect()
    }
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
fn t_95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        11..=20 => 2.086,
        21..=30 => 2.042,
        _ => 1.96,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_compared_with_the_taps_over_the_same_seconds() {
        // The line had counted 40 in and 30 out before the session.
        let mut v = Validation::start("door.entrance", 0, (40, 30));
        let mut totals = (40, 30);
        // Five minutes: a person in every 10 s; the appliance misses one
        // in ten, and counts each a second after the tap.
        for i in 1..=30 {
            let at = i * 10_000;
            v.tap(Tap::In, at, totals).unwrap();
            if i % 10 != 0 {
                totals.0 += 1;
            }
            v.sample(at + 1_000, totals);
        }
        let report = v.report(305_000, totals);
        assert_eq!((report.taps_in, report.taps_out), (30, 0));
        assert_eq!((report.counted_in, report.counted_out), (27, 0));
        assert!((report.error.unwrap() + 0.1).abs() < 1e-9);
        assert_eq!(report.windows, 10);
        let (low, high) = report.interval.unwrap();
        assert!(low < -0.1 && high > -0.1, "{low} {high}");
        assert!(
            high - low < 0.3,
            "ten windows give a useful interval: {low} {high}"
        );
    }

    #[test]
    fn a_short_session_has_no_interval_and_no_taps_no_error() {
        let v = Validation::start("door.entrance", 0, (0, 0));
        let report = v.report(10_000, (2, 0));
        assert_eq!(report.error, None);
        assert_eq!(report.interval, None);
        let mut v = Validation::start("door.entrance", 0, (0, 0));
        v.tap(Tap::Out, 5_000, (0, 0)).unwrap();
        let report = v.report(20_000, (0, 1));
        assert_eq!(report.error, Some(0.0));
        assert_eq!(report.windows, 1);
        assert_eq!(report.interval, None);
    }

    #[test]
    fn taps_are_capped() {
        let mut v = Validation::start("door.entrance", 0, (0, 0));
        for i in 0..MAX_TAPS {
            v.tap(Tap::In, i as i64, (0, 0)).unwrap();
        }
        assert_eq!(v.tap(Tap::In, 1, (0, 0)), Err(TooManyTaps));
    }
}
