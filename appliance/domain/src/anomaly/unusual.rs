//! Unusual patterns: each finished hour's mean occupancy and entries of a
//! space against its hour-of-week baseline (`baseline`), read from the
//! stored aggregates. An unusual hour opens an anomaly that starts at the
//! hour's start; the next usual hour closes it.

use super::baseline::{assess, Assessment, BaselineSettings, HourlyHistory, HISTORY_WEEKS};
use super::monitor::Change;
use super::{Finding, Kind, Severity, Subject};
use crate::clock::UnixMs;
use crate::config::Config;
use crate::retention::HOUR_MS;
use std::collections::HashMap;

/// An hour is judged this long after it ends: its last minute buckets are
/// flushed by then.
pub const JUDGE_AFTER_MS: i64 = 5 * 60_000;

struct Watched {
    space: String,
    /// (camera, line) of each entrance.
    entrances: Vec<(String, String)>,
    settings: BaselineSettings,
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
                Some(Watched {
                    space: s.name.clone(),
                    entrances,
                    settings: unusual.settings,
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
            let occupancy = history.space_occupancy_hours(&w.space, from, hour + HOUR_MS)?;
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

    #[test]
    fn without_a_space_watched_there_is_no_watch() {
        let mut config = config();
        let watch = UnusualWatch::new(&config).unwrap();
        assert_eq!(watch.spaces.len(), 1, "quiet has unusual off");
        config.spaces.retain(|s| s.name == "quiet");
        assert!(UnusualWatch::new(&config).is_none());
    }
}
