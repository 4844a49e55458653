//! Robust hour-of-week baselines: is this hour's occupancy or flow far from
//! what the same hour of the week usually sees?
//!
//! The baseline of an hour is the values of the same local hour-of-week
//! (Monday 09:00-10:00, ...) in the last `HISTORY_WEEKS` weeks, read from
//! the stored aggregates. Median and MAD (median absolute deviation) rather
//! than mean and standard deviation, so one odd week (a holiday, an event)
//! neither drags the baseline nor widens it enough to hide the next one.
//! Hours of the week are local so that a DST change does not shift a shop's
//! 09:00 rush into the 08:00 slot; only recent weeks count so that the
//! baseline follows seasons and changed habits.
//!
//! The deviation is a robust z-score: `(value - median) / scale`, with
//! `scale = max(1.4826 * MAD, 0.5, 0.1 * |median|, sqrt(|median|))`. 1.4826
//! makes the MAD comparable to a standard deviation for normal data; the
//! floors keep a perfectly constant history (all zeros at night) from making
//! every small change infinitely unusual, and a MAD of the few weeks there
//! are from being narrower than a count's own Poisson noise (a count whose
//! mean is m varies by about sqrt(m)): without that floor, a generated site
//! raised 4 false alarms per space and week, with it 1 (`headcount-bench
//! patterns`). An hour is unusual only when the score reaches
//! the threshold AND the difference reaches `min_difference` people, so
//! small counts never alarm on their own.

use crate::clock::UnixMs;
pub use crate::config::anomaly::BaselineSettings;
use crate::retention::HOUR_MS;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Samples older than this many weeks (before the assessed hour) are not
/// part of the baseline.
pub const HISTORY_WEEKS: i64 = 8;
const WEEK_MS: i64 = 7 * 24 * HOUR_MS;
/// Makes the MAD an estimate of the standard deviation for normal data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// The scale never goes below this many people...
const SCALE_FLOOR: f64 = 0.5;
/// ...nor below this fraction of the median (nor below the square root of
/// the median: the Poisson noise of a count).
const SCALE_FLOOR_FRACTION: f64 = 0.1;

/// How an hour's value compares with its baseline. `mad` is the raw median
/// absolute deviation (not scaled); `score` the robust z-score (negative
/// below the median).
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    WarmingUp { weeks: usize, needed: usize },
    Normal { median: f64, mad: f64, score: f64 },
    Unusual { median: f64, mad: f64, score: f64 },
}

impl Assessment {
    pub fn is_unusual(&self) -> bool {
        matches!(self, Assessment::Unusual { .. })
    }
}

/// The local hour of the week of an instant: 0 is Monday 00:00-01:00, 167
/// Sunday 23:00-24:00. (An instant jiff cannot represent is taken as UTC.)
pub fn hour_of_week(hour_start: UnixMs, tz: &TimeZone) -> usize {
    match Timestamp::from_millisecond(hour_start) {
        Ok(ts) => {
            let local = tz.to_datetime(ts);
            local.weekday().to_monday_zero_offset() as usize * 24 + local.hour() as usize
        }
        // 1970-01-01 was a Thursday: 72 hours after a Monday midnight.
        Err(_) => (hour_start.div_euclid(HOUR_MS) + 72).rem_euclid(168) as usize,
    }
}

/// Judges `value` for the hour starting at `hour_start` against the
/// history of the same local hour-of-week.
///
/// `history` is (hour start, value) of past hours in any order and of any
/// hour of the week; those at or after `hour_start`, those more than
/// `HISTORY_WEEKS` weeks (plus an hour of DST slack) before it and
/// non-finite values are ignored. Each remaining sample counts as a week
/// for the warm-up (the repeated hour of a fall-back night gives that week
/// two).
pub fn assess(
    history: &[(UnixMs, f64)],
    hour_start: UnixMs,
    value: f64,
    settings: &BaselineSettings,
    tz: &TimeZone,
) -> Assessment {
    let slot = hour_of_week(hour_start, tz);
    let oldest = hour_start.saturating_sub(HISTORY_WEEKS * WEEK_MS + HOUR_MS);
    let mut samples: Vec<f64> = history
        .iter()
        .filter(|(t, v)| *t < hour_start && *t >= oldest && v.is_finite())
        .filter(|(t, _)| hour_of_week(*t, tz) == slot)
        .map(|&(_, v)| v)
        .collect();
    if samples.len() < settings.min_weeks.max(1) {
        return Assessment::WarmingUp {
            weeks: samples.len(),
            needed: settings.min_weeks.max(1),
        };
    }
    let median = median(&mut samples);
    let mut deviations: Vec<f64> = samples.iter().map(|v| (v - median).abs()).collect();
    let mad = self::median(&mut deviations);
    let floor = SCALE_FLOOR
        .max(SCALE_FLOOR_FRACTION * median.abs())
        .max(median.abs().sqrt());
    let scale = (MAD_TO_SIGMA * mad).max(floor);
    let score = (value - median) / scale;
    if score.abs() >= settings.threshold && (value - median).abs() >= settings.min_difference {
        Assessment::Unusual { median, mad, score }
    } else {
        Assessment::Normal { median, mad, score }
    }
}

/// The median of a non-empty slice (sorted in place); 0 if empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Whole hours within `[from, to)`: `from` rounded up, `to` down.
pub fn whole_hours(from: UnixMs, to: UnixMs) -> (UnixMs, UnixMs) {
    let up = from.saturating_add(HOUR_MS - 1);
    (up - up.rem_euclid(HOUR_MS), to - to.rem_euclid(HOUR_MS))
}

pub fn hour_of(bucket_start: UnixMs) -> UnixMs {
    bucket_start - bucket_start.rem_euclid(HOUR_MS)
}

/// The stored hourly history the baselines are learned from; the store
/// implements it over its minutes and rollups.
pub trait HourlyHistory {
    type Error;

    /// Mean occupancy of a space per whole hour in [from, to) (hours with no
    /// samples left out), oldest first. Partial hours at either end are left
    /// out. The mean is the hour's occupancy sum over its samples, whether
    /// the hour is stored as minutes or as rollups.
    fn space_occupancy_hours(
        &self,
        space: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, f64)>, Self::Error>;

    /// Entries (sum over the given lines, (camera, line) pairs) per whole
    /// hour in [from, to) (hours with no rows left out), oldest first. An
    /// hour with rows of zeros (watched, nobody came) is kept as 0. Partial
    /// hours at either end are left out.
    fn entry_hours(
        &self,
        lines: &[(String, String)],
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, f64)>, Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn at(text: &str) -> UnixMs {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    /// A Berlin wall-clock time `weeks_back` weeks before `text`.
    fn local_weeks_back(text: &str, weeks_back: i64) -> UnixMs {
        let dt: DateTime = text.parse().unwrap();
        let dt = dt
            .checked_sub(jiff::Span::new().days(7 * weeks_back))
            .unwrap();
        berlin().to_timestamp(dt).unwrap().as_millisecond()
    }

    /// The same local hour in each of the weeks before `text`, with values.
    fn weekly(text: &str, values: &[f64]) -> Vec<(UnixMs, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (local_weeks_back(text, i as i64 + 1), v))
            .collect()
    }

    #[test]
    fn hours_of_the_week_are_local_across_dst() {
        let tz = berlin();
        // Monday 2026-03-23 10:00 CET and Monday 2026-03-30 10:00 CEST.
        assert_eq!(hour_of_week(at("2026-03-23T09:00Z"), &tz), 10);
        assert_eq!(hour_of_week(at("2026-03-30T08:00Z"), &tz), 10);
        // A UTC week later is a different local hour.
        assert_eq!(hour_of_week(at("2026-03-30T09:00Z"), &tz), 11);
        // Sunday 2026-03-29: 01:00 CET, then 03:00 CEST (02:00 skipped).
        assert_eq!(hour_of_week(at("2026-03-29T00:00Z"), &tz), 6 * 24 + 1);
        assert_eq!(hour_of_week(at("2026-03-29T01:00Z"), &tz), 6 * 24 + 3);
        // Sunday 2026-10-25: 02:00 twice.
        assert_eq!(hour_of_week(at("2026-10-25T00:00Z"), &tz), 6 * 24 + 2);
        assert_eq!(hour_of_week(at("2026-10-25T01:00Z"), &tz), 6 * 24 + 2);
        // Week edges.
        assert_eq!(hour_of_week(at("2026-03-29T22:00Z"), &tz), 0);
        assert_eq!(hour_of_week(at("2026-03-29T21:00Z"), &tz), 167);
        assert_eq!(hour_of_week(at("1970-01-01T00:00Z"), &TimeZone::UTC), 72);
    }

    #[test]
    fn warming_up_until_enough_weeks() {
        let tz = berlin();
        let now = "2026-06-01T10:00";
        let hour = local_weeks_back(now, 0);
        let settings = BaselineSettings::default();
        let mut history = weekly(now, &[40.0, 41.0]);
        // Other hours of the week and the hour itself do not count.
        history.push((hour - HOUR_MS, 40.0));
        history.push((hour - 24 * HOUR_MS, 40.0));
        history.push((hour, 40.0));
        history.push((hour + WEEK_MS, 40.0));
        assert_eq!(
            assess(&history, hour, 40.0, &settings, &tz),
            Assessment::WarmingUp {
                weeks: 2,
                needed: 3
            }
        );
        history.extend(weekly(now, &[0.0, 0.0, 39.0]).into_iter().skip(2));
        assert!(matches!(
            assess(&history, hour, 40.0, &settings, &tz),
            Assessment::Normal { .. }
        ));
    }

    #[test]
    fn weeks_align_across_a_dst_change() {
        let tz = berlin();
        // Monday 2026-04-06 10:00 CEST; two of the weeks before are CET.
        let now = "2026-04-06T10:00";
        let hour = local_weeks_back(now, 0);
        let history = weekly(now, &[40.0, 41.0, 39.0, 40.0]);
        let got = assess(&history, hour, 40.0, &BaselineSettings::default(), &tz);
        assert!(matches!(got, Assessment::Normal { median, .. } if median == 40.0));
    }

    #[test]
    fn normal_high_and_low() {
        let tz = berlin();
        let now = "2026-06-01T10:00";
        let hour = local_weeks_back(now, 0);
        let settings = BaselineSettings::default();
        let history = weekly(now, &[38.0, 40.0, 42.0, 41.0, 39.0, 40.0]);
        // Median 40, MAD 1; the floor is the scale: a count's Poisson noise,
        // sqrt(40) = 6.32, above 0.1 * 40 = 4 and 1.4826 * MAD.
        let poisson = 40f64.sqrt();
        let judged = |v: f64| assess(&history, hour, v, &settings, &tz);
        let Assessment::Normal { median, mad, score } = judged(43.0) else {
            panic!("43 against 38..42 should be normal");
        };
        assert_eq!((median, mad), (40.0, 1.0));
        assert!((score - 3.0 / poisson).abs() < 1e-9);
        let Assessment::Unusual { score, .. } = judged(80.0) else {
            panic!("80 against 38..42 should be unusual");
        };
        assert!((score - 40.0 / poisson).abs() < 1e-9);
        let Assessment::Unusual { score, .. } = judged(0.0) else {
            panic!("0 against 38..42 should be unusual");
        };
        assert!((score + 40.0 / poisson).abs() < 1e-9);
        // Within the Poisson noise of a count of 40: usual.
        assert!(!judged(60.0).is_unusual());
        // A spread-out history widens the scale: 1.4826 * MAD.
        let wide = weekly(now, &[20.0, 40.0, 60.0, 30.0, 50.0]);
        let Assessment::Normal { mad, score, .. } = assess(&wide, hour, 70.0, &settings, &tz)
        else {
            panic!("70 against 20..60 should be normal");
        };
        assert_eq!(mad, 10.0);
        assert!((score - 30.0 / 14.826).abs() < 1e-9);
    }

    #[test]
    fn constant_zero_history_needs_a_real_difference() {
        let tz = berlin();
        let now = "2026-06-01T03:00";
        let hour = local_weeks_back(now, 0);
        let settings = BaselineSettings::default();
        let history = weekly(now, &[0.0; 5]);
        let judge = |v| assess(&history, hour, v, &settings, &tz);
        // Scale floor 0.5: 1 scores 2, 2 scores 4 but is under min_difference.
        assert_eq!(
            judge(1.0),
            Assessment::Normal {
                median: 0.0,
                mad: 0.0,
                score: 2.0
            }
        );
        assert!(!judge(2.0).is_unusual());
        assert!(judge(3.0).is_unusual());
        assert_eq!(
            judge(20.0),
            Assessment::Unusual {
                median: 0.0,
                mad: 0.0,
                score: 40.0
            }
        );
    }

    #[test]
    fn only_the_last_eight_weeks_count() {
        let tz = berlin();
        let now = "2026-06-01T10:00";
        let hour = local_weeks_back(now, 0);
        let settings = BaselineSettings::default();
        // Weeks 1-8 at 40, weeks 9-14 at 0: the old zeros would win the median.
        let mut values = vec![40.0; 8];
        values.extend([0.0; 6]);
        let history = weekly(now, &values);
        assert!(matches!(
            assess(&history, hour, 40.0, &settings, &tz),
            Assessment::Normal { median, .. } if median == 40.0
        ));
        // Two recent weeks and many old ones: still warming up.
        let sparse: Vec<_> = history
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 2 || *i >= 8)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            assess(&sparse, hour, 40.0, &settings, &tz),
            Assessment::WarmingUp {
                weeks: 2,
                needed: 3
            }
        );
    }
}
