//! Unusual patterns: each finished hour's mean occupancy and entries of a
//! space against its hour-of-week baseline (`baseline`), read from the
//! stored aggregates. An unusual hour opens an anomaly that starts at the
//! hour's start; the next usual hour closes it.
//!
//! A space counted at its entrances only is not judged on its occupancy in
//! an hour its schedule keeps closed throughout: its count then is what the
//! doors left (entries they missed or exits), which counter drift judges
//! against a tolerance that knows the day's entries, and people truly
//! present raise presence after hours. Judged there too, the leftover of a
//! busy day made most of this detector's false alarms (`headcount-bench
//! patterns`). Such an hour closes an unusual occupancy still open.

use super::baseline::{assess, Assessment, BaselineSettings, HourlyHistory, HISTORY_WEEKS};
use super::monitor::Change;
use super::{Finding, Kind, Severity, Subject};
use crate::clock::UnixMs;
use crate::config::Config;
use crate::retention::HOUR_MS;
use crate::schedule::Schedule;
use std::collections::HashMap;

/// An hour is judged this long after it ends: its last minute buckets are
/// flushed by then.
pub const JUDGE_AFTER_MS: i64 = 5 * 60_000;

struct Watched {
    space: String,
    /// (camera, line) of each entrance.
    entrances: Vec<(String, String)>,
    settings: BaselineSettings,
    /// Counted at its entrances only, with opening hours: its occupancy in
    /// closed hours is the doors' drift, not judged here.
    drift_when_closed: Option<Schedule>,
}

/// The unusual-pattern detector of an appliance.
pub struct UnusualWatch {
    spaces: Vec<Watched>,
    timezone: jiff::tz::TimeZone,
    /// The last hour judged.
    judged: Option<UnixMs>,
    /// Open anomalies: (kind, space) -> the start of their first hour.
    open: HashMap<(Kind, String), UnixMs>,
}

impl UnusualWatch {
    /// None when no space has `unusual` on.
    pub fn new(config: &Config) -> Option<UnusualWatch> {
        let spaces: Vec<Watched> = config
            .spaces
            .iter()
            .filter_map(|s| {
                let unusual = s.unusual.as_ref()?;
                let entrances = s
                    .entrances
                    .iter()
                    .filter_map(|key| key.split_once('.'))
                    .map(|(camera, line)| (camera.to_string(), line.to_string()))
                    .collect();
                let drift_when_closed = s
                    .schedule
                    .as_ref()
                    .filter(|_| s.entrances_only())
                    .map(|hours| hours.schedule.clone());
                Some(Watched {
                    space: s.name.clone(),
                    entrances,
                    settings: unusual.settings,
                    drift_when_closed,
                })
            })
            .collect();
        (!spaces.is_empty()).then(|| UnusualWatch {
            spaces,
            timezone: config.timezone.clone(),
            judged: None,
            open: HashMap::new(),
        })
    }

    /// Judges the latest finished hour, once.
    pub fn evaluate<H: HourlyHistory>(
        &mut self,
        history: &H,
        now: UnixMs,
    ) -> Result<Vec<Change>, H::Error> {
        let end = now - JUDGE_AFTER_MS;
        let hour = end - end.rem_euclid(HOUR_MS) - HOUR_MS;
        if self.judged.is_some_and(|j| j >= hour) {
            return Ok(Vec::new());
        }
        self.judged = Some(hour);
        let from = hour - HISTORY_WEEKS * 7 * 24 * HOUR_MS;
        let mut changes = Vec::new();
        for i in 0..self.spaces.len() {
            let w = &self.spaces[i];
            let drift_only = w
                .drift_when_closed
                .as_ref()
                .is_some_and(|hours| hours.closed_throughout(hour, hour + HOUR_MS));
            let occupancy = if drift_only {
                // Nothing to judge: what is open closes.
                Vec::new()
            } else {
                history.space_occupancy_hours(&w.space, from, hour + HOUR_MS)?
            };
            let entries = if w.entrances.is_empty() {
                None
            } else {
                Some(history.entry_hours(&w.entrances, from, hour + HOUR_MS)?)
            };
            for (kind, series) in [
                (Kind::UnusualOccupancy, Some(occupancy)),
                (Kind::UnusualFlow, entries),
            ] {
                let Some(series) = series else { continue };
                let finding = self.judge(i, kind, hour, &series);
                let space = self.spaces[i].space.clone();
                self.apply(kind, space, hour, finding, &mut changes);
            }
        }
        Ok(changes)
    }

    /// The hour's finding; None when it is usual, warming up, or has no data.
    fn judge(
        &self,
        i: usize,
        kind: Kind,
        hour: UnixMs,
        series: &[(UnixMs, f64)],
    ) -> Option<Finding> {
        let w = &self.spaces[i];
        let &(last, value) = series.last()?;
        if last != hour {
            return None;
        }
        let history = &series[..series.len() - 1];
        let Assessment::Unusual { median, score, .. } =
            assess(history, hour, value, &w.settings, &self.timezone)
        else {
            return None;
        };
        let local = jiff::Timestamp::from_millisecond(hour)
            .ok()?
            .to_zoned(self.timezone.clone());
        let (what, unit) = match kind {
            Kind::UnusualFlow => ("entries", ""),
            _ => ("mean occupancy", " people"),
        };
        Some(Finding {
            kind,
            subject: Subject::Space(w.space.clone()),
            severity: Severity::Info,
            value,
            threshold: median,
            explanation: format!(
                "{what} of {} was {value:.1}{unit} in the hour from {}, where {} at that hour usually sees {median:.1} (robust score {score:+.1}, threshold {})",
                w.space,
                local.strftime("%a %H:%M"),
                w.space,
                w.settings.threshold
            ),
        })
    }

    fn apply(
        &mut self,
        kind: Kind,
        space: String,
        hour: UnixMs,
        finding: Option<Finding>,
        changes: &mut Vec<Change>,
    ) {
        let key = (kind, space);
        match (finding, self.open.get(&key).copied()) {
            (Some(finding), None) => {
                self.open.insert(key, hour);
                changes.push(Change::Open {
                    started: hour,
                    finding,
                });
            }
            (None, Some(started)) => {
                self.open.remove(&key);
                changes.push(Change::Close {
                    kind,
                    subject: Subject::Space(key.1),
                    started,
                    ended: hour,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SystemSecrets;
    use std::path::Path;

    fn config() -> Config {
        let text = r#"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.zones.hall]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
[cameras.lobby.lines.door]
points = [[0.2, 0.5], [0.8, 0.5]]
in = "left"
[spaces.shop]
zones = ["lobby.hall"]
entrances = ["lobby.door"]
[spaces.shop.unusual]
min_weeks = 3
[spaces.quiet]
zones = ["lobby.hall"]
[spaces.quiet.unusual]
enabled = false
"#;
        Config::parse(text, Path::new("."), &SystemSecrets).unwrap()
    }

    /// Mean occupancy `value_at(hour)` for every space, every hour; no
    /// entry rows.
    struct Hours<F: Fn(UnixMs) -> f64>(F);

    impl<F: Fn(UnixMs) -> f64> HourlyHistory for Hours<F> {
        type Error = std::convert::Infallible;

        fn space_occupancy_hours(
            &self,
            _space: &str,
            from: UnixMs,
            to: UnixMs,
        ) -> Result<Vec<(UnixMs, f64)>, Self::Error> {
            Ok((from..to)
                .step_by(HOUR_MS as usize)
                .map(|h| (h, (self.0)(h)))
                .collect())
        }

        fn entry_hours(
            &self,
            _lines: &[(String, String)],
            _from: UnixMs,
            _to: UnixMs,
        ) -> Result<Vec<(UnixMs, f64)>, Self::Error> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn closed_hours_of_a_space_counted_at_its_doors_are_left_to_the_drift_rule() {
        // Two spaces counted at the same door; `shop` is open 07:00-20:00.
        let text = r#"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.lines.door]
points = [[0.2, 0.5], [0.8, 0.5]]
in = "left"
[spaces.shop]
entrances = ["lobby.door"]
[spaces.shop.schedule]
timezone = "UTC"
mon = "07:00-20:00"
[spaces.depot]
entrances = ["lobby.door"]
"#;
        let config = Config::parse(text, Path::new("."), &SystemSecrets).unwrap();
        // Monday 2026-06-22 00:00 UTC; every hour before was empty.
        let monday: UnixMs = 1_780_272_000_000 + 3 * 7 * 24 * HOUR_MS;
        let (ten, nine_pm) = (monday + 10 * HOUR_MS, monday + 21 * HOUR_MS);
        // This Monday ten people are counted from 10:00 on, all night.
        let history = Hours(|h| if h >= ten { 10.0 } else { 0.0 });
        let judge = |watch: &mut UnusualWatch, hour: UnixMs| {
            let changes = watch
                .evaluate(&history, hour + HOUR_MS + JUDGE_AFTER_MS)
                .unwrap();
            changes
                .into_iter()
                .map(|c| match c {
                    Change::Open { finding, .. } => ("open", finding.subject),
                    Change::Close { subject, .. } => ("close", subject),
                    Change::Instant { finding, .. } => ("instant", finding.subject),
                })
                .collect::<Vec<_>>()
        };
        let space = |name: &str| Subject::Space(name.into());

        // At 10:00 both are unusual; at 21:00, with the shop closed, its
        // count is the doors' leftover: not judged, and its anomaly closes.
        let mut watch = UnusualWatch::new(&config).unwrap();
        let mut opened = judge(&mut watch, ten);
        opened.sort_by_key(|(_, s)| format!("{s:?}"));
        assert_eq!(opened, [("open", space("depot")), ("open", space("shop"))]);
        assert_eq!(judge(&mut watch, nine_pm), [("close", space("shop"))]);

        // Judged first at 21:00: only the space without hours opens.
        let mut watch = UnusualWatch::new(&config).unwrap();
        assert_eq!(judge(&mut watch, nine_pm), [("open", space("depot"))]);
    }

    #[test]
    fn without_a_space_watched_there_is_no_watch() {
        let mut config = config();
        let watch = UnusualWatch::new(&config).unwrap();
        assert_eq!(watch.spaces.len(), 1, "quiet has unusual off");
        config.spaces.retain(|s| s.name == "quiet");
        assert!(UnusualWatch::new(&config).is_none());
    }
}
