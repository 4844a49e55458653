//! The stored hourly history the unusual-pattern detector learns from
//! (`headcount_domain::anomaly::baseline::HourlyHistory`): mean occupancy
//! and entries per whole hour, whether the hour is stored as minutes or as
//! rollups.

use crate::{Database, StorageError};
use headcount_domain::analytics::Scope;
use headcount_domain::anomaly::baseline::{hour_of, whole_hours, HourlyHistory};
use headcount_domain::clock::UnixMs;
use headcount_domain::retention::HOUR_MS;
use std::collections::BTreeMap;

impl HourlyHistory for Database {
    type Error = StorageError;

    fn space_occupancy_hours(
        &self,
        space: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, f64)>, Self::Error> {
        let (from, to) = whole_hours(from, to);
        if from >= to {
            return Ok(Vec::new());
        }
        let rows = self.occupancy_series(&Scope::Space(space.to_string()), HOUR_MS, from, to)?;
        let mut hours: BTreeMap<UnixMs, (u64, u128)> = BTreeMap::new();
        for row in rows {
            let hour = hour_of(row.bucket_start);
            if hour < from || hour >= to {
                continue;
            }
            let (samples, sum) = hours.entry(hour).or_default();
            *samples += u64::from(row.samples);
            *sum += u128::from(row.occupancy_sum);
        }
        Ok(hours
            .into_iter()
            .filter(|(_, (samples, _))| *samples > 0)
            .map(|(hour, (samples, sum))| (hour, sum as f64 / samples as f64))
            .collect())
    }

    fn entry_hours(
        &self,
        lines: &[(String, String)],
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, f64)>, Self::Error> {
        let (from, to) = whole_hours(from, to);
        if from >= to {
            return Ok(Vec::new());
        }
        let mut hours: BTreeMap<UnixMs, u64> = BTreeMap::new();
        for (camera, line) in lines {
            for row in self.flow_series(camera, line, HOUR_MS, from, to)? {
                let hour = hour_of(row.bucket_start);
                if hour < from || hour >= to {
                    continue;
                }
                *hours.entry(hour).or_default() += u64::from(row.entries);
            }
        }
        Ok(hours
            .into_iter()
            .map(|(hour, entries)| (hour, entries as f64))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_domain::analytics::{Deltas, FlowDelta, OccupancyDelta};
    use headcount_domain::anomaly::monitor::Change;
    use headcount_domain::anomaly::unusual::{UnusualWatch, JUDGE_AFTER_MS};
    use headcount_domain::anomaly::{Kind, Subject};
    use headcount_domain::config::{Config, SystemSecrets};
    use std::path::Path;

    fn at(text: &str) -> UnixMs {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    const MIN: i64 = 60_000;

    fn occupancy(space: &str, bucket_start: UnixMs, samples: u32, sum: u64) -> OccupancyDelta {
        OccupancyDelta {
            scope: Scope::Space(space.to_string()),
            bucket_start,
            samples,
            occupancy_sum: sum,
            occupancy_max: sum as u32,
        }
    }

    fn flow(camera: &str, line: &str, bucket_start: UnixMs, entries: u32) -> FlowDelta {
        FlowDelta {
            camera: camera.into(),
            line: line.to_string(),
            bucket_start,
            entries,
            exits: 1,
        }
    }

    #[test]
    fn hourly_values_from_a_real_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("b.db")).unwrap();
        let h = at("2026-06-01T08:00Z");
        db.apply(&Deltas {
            occupancy: vec![
                occupancy("hall", h, 10, 50),
                occupancy("hall", h + MIN, 10, 150),
                occupancy("hall", h + 2 * HOUR_MS + 30 * MIN, 5, 5),
                occupancy("other", h + HOUR_MS, 10, 1000),
            ],
            flows: vec![
                flow("cam1", "door", h, 3),
                flow("cam1", "door", h + 5 * MIN, 2),
                flow("cam2", "gate", h + 10 * MIN, 4),
                flow("cam1", "door", h + HOUR_MS, 0),
                flow("cam1", "other", h + 2 * HOUR_MS, 7),
            ],
            ..Deltas::default()
        })
        .unwrap();
        let lines = [
            ("cam1".to_string(), "door".to_string()),
            ("cam2".to_string(), "gate".to_string()),
        ];
        let check = |db: &Database| {
            assert_eq!(
                db.space_occupancy_hours("hall", h - 30 * MIN, h + 3 * HOUR_MS)
                    .unwrap(),
                vec![(h, 10.0), (h + 2 * HOUR_MS, 1.0)]
            );
            // Partial hours at the ends are left out.
            assert_eq!(
                db.space_occupancy_hours("hall", h + MIN, h + 2 * HOUR_MS + 59 * MIN)
                    .unwrap(),
                vec![]
            );
            assert_eq!(
                db.space_occupancy_hours("nowhere", h, h + 3 * HOUR_MS)
                    .unwrap(),
                vec![]
            );
            assert_eq!(
                db.entry_hours(&lines, h, h + 3 * HOUR_MS).unwrap(),
                vec![(h, 9.0), (h + HOUR_MS, 0.0)]
            );
            assert_eq!(db.entry_hours(&[], h, h + 3 * HOUR_MS).unwrap(), vec![]);
        };
        check(&db);
        // Once rolled up into quarters, hours and days, the same hours.
        db.roll_up(h + 3 * 24 * HOUR_MS, 0).unwrap();
        assert!(db.rollup_mark(HOUR_MS).unwrap().is_some());
        check(&db);
    }

    /// Monday 2025-11-24 09:00 UTC.
    const HOUR: UnixMs = 1_763_974_800_000;
    const WEEK: i64 = 7 * 24 * HOUR_MS;

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

    /// An hour of the shop: `people` present every minute, `entries` in its first minute.
    fn hour(start: UnixMs, people: u32, entries: u32) -> Deltas {
        let mut deltas = Deltas::default();
        for m in 0..60 {
            deltas.occupancy.push(OccupancyDelta {
                scope: Scope::Space("shop".into()),
                bucket_start: start + m * 60_000,
                samples: 1,
                occupancy_sum: u64::from(people),
                occupancy_max: people,
            });
            deltas.flows.push(FlowDelta {
                camera: "lobby".into(),
                line: "door".into(),
                bucket_start: start + m * 60_000,
                entries: if m == 0 { entries } else { 0 },
                exits: 0,
            });
        }
        deltas
    }

    #[test]
    fn an_hour_far_from_its_weekday_baseline_opens_and_the_next_closes() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("h.db")).unwrap();
        let config = config();
        let mut watch = UnusualWatch::new(&config).unwrap();
        let after = |h: UnixMs| h + HOUR_MS + JUDGE_AFTER_MS;

        // Two weeks of history: still warming up, nothing judged unusual.
        for w in 1..=2 {
            db.apply(&hour(HOUR - w * WEEK, 10 + w as u32, 20)).unwrap();
        }
        db.apply(&hour(HOUR, 40, 90)).unwrap();
        assert_eq!(watch.evaluate(&db, after(HOUR)).unwrap(), []);

        // With a third week, the same hour is unusual in both measures.
        db.apply(&hour(HOUR - 3 * WEEK, 12, 22)).unwrap();
        let mut watch = UnusualWatch::new(&config).unwrap();
        let changes = watch.evaluate(&db, after(HOUR)).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        let Change::Open { started, finding } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(*started, HOUR);
        assert_eq!(finding.kind, Kind::UnusualOccupancy);
        assert_eq!(finding.subject, Subject::Space("shop".into()));
        assert_eq!((finding.value, finding.threshold), (40.0, 12.0));
        assert!(
            finding.explanation.contains("Mon 09:00") && finding.explanation.contains("12.0"),
            "{}",
            finding.explanation
        );
        let Change::Open { finding, .. } = &changes[1] else {
            panic!("{changes:?}")
        };
        assert_eq!((finding.kind, finding.value), (Kind::UnusualFlow, 90.0));

        // Judged once only, however often asked.
        assert_eq!(watch.evaluate(&db, after(HOUR) + 60_000).unwrap(), []);

        // The next hour is as usual (its own history): both close at its start.
        let next = HOUR + HOUR_MS;
        for w in 1..=3 {
            db.apply(&hour(next - w * WEEK, 30, 50)).unwrap();
        }
        db.apply(&hour(next, 31, 52)).unwrap();
        let changes = watch.evaluate(&db, after(next)).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        for change in changes {
            let Change::Close { started, ended, .. } = change else {
                panic!("{change:?}")
            };
            assert_eq!((started, ended), (HOUR, next));
        }
    }
}
