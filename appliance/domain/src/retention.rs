//! What headcount keeps, and for how long: the data classes a data-protection
//! officer audits, each with a lifetime the appliance enforces itself (the
//! sweeper in `storage::governance` deletes what is past it and leaves a
//! receipt in the audit log).
//!
//! Every class has a maximum a config cannot exceed without a written
//! justification; the justification is shown in the processing record.

use crate::clock::UnixMs;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
const YEAR_MS: i64 = 365 * DAY_MS;

/// A kind of data with its own lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataClass {
    /// Line crossings and anomalies as single events (none are stored yet:
    /// crossings are counted straight into minute buckets).
    Events,
    /// Per-minute buckets: the finest aggregates, for the facilities dashboard.
    Aggregates1m,
    Aggregates15m,
    Aggregates1h,
    Aggregates1d,
    /// Redacted calibration snapshots (held in memory only, never written).
    Snapshots,
    /// The hash-chained record of every access, change, export and deletion.
    AuditLog,
    /// Which API consumer spent how much of its daily privacy budget.
    PrivacyBudget,
}

impl DataClass {
    pub const ALL: [DataClass; 8] = [
        DataClass::Events,
        DataClass::Aggregates1m,
        DataClass::Aggregates15m,
        DataClass::Aggregates1h,
        DataClass::Aggregates1d,
        DataClass::Snapshots,
        DataClass::AuditLog,
        DataClass::PrivacyBudget,
    ];

    /// The key under `[retention]` and the name the API reports.
    pub fn key(self) -> &'static str {
        match self {
            DataClass::Events => "events",
            DataClass::Aggregates1m => "aggregates_1m",
            DataClass::Aggregates15m => "aggregates_15m",
            DataClass::Aggregates1h => "aggregates_1h",
            DataClass::Aggregates1d => "aggregates_1d",
            DataClass::Snapshots => "snapshots",
            DataClass::AuditLog => "audit_log",
            DataClass::PrivacyBudget => "privacy_budget",
        }
    }

    pub fn from_key(key: &str) -> Option<DataClass> {
        DataClass::ALL.into_iter().find(|c| c.key() == key)
    }

    pub fn description(self) -> &'static str {
        match self {
            DataClass::Events => "anomalies (kind, zone/space/line/camera, start, end, measured value and threshold; no identity); swept once ended this long ago. Crossings are counted straight into minute buckets, never stored singly",
            DataClass::Aggregates1m => "per-minute counts per zone, space and line (occupancy, entries and exits, dwell histograms)",
            DataClass::Aggregates15m => "15-minute counts rolled up from the minutes, and the suppressed aggregates published from them",
            DataClass::Aggregates1h => "hourly counts rolled up from the 15-minute ones, and their published aggregates",
            DataClass::Aggregates1d => "daily counts rolled up from the hourly ones, and their published aggregates",
            DataClass::Snapshots => "redacted calibration snapshots (faces and persons obscured), the latest per camera, in memory only",
            DataClass::AuditLog => "who read or changed what and when (token pseudonym, role, route, rows; identical reads repeated within a minute as one entry with a count), hash-chained with signed checkpoints; the names behind the pseudonyms stay in the token table until a token has ended this long ago",
            DataClass::PrivacyBudget => "per day of data, the differential-privacy releases (published buckets) and the epsilon they spent",
        }
    }

    /// How long it is kept unless the config says otherwise.
    pub fn default_limit_ms(self) -> i64 {
        match self {
            DataClass::Events | DataClass::Snapshots => 72 * HOUR_MS,
            DataClass::Aggregates1m => 7 * DAY_MS,
            DataClass::Aggregates15m => 90 * DAY_MS,
            DataClass::Aggregates1h => 2 * YEAR_MS,
            DataClass::Aggregates1d => 5 * YEAR_MS,
            DataClass::AuditLog => YEAR_MS,
            DataClass::PrivacyBudget => 31 * DAY_MS,
        }
    }

    /// The longest lifetime a config may set without a justification.
    pub fn maximum_ms(self) -> i64 {
        match self {
            // EDPB guidance on video devices: 72 hours.
            DataClass::Events | DataClass::Snapshots => 72 * HOUR_MS,
            DataClass::Aggregates1m => 31 * DAY_MS,
            DataClass::Aggregates15m => 400 * DAY_MS,
            DataClass::Aggregates1h => 3 * YEAR_MS,
            DataClass::Aggregates1d => 10 * YEAR_MS,
            DataClass::AuditLog => 3 * YEAR_MS,
            DataClass::PrivacyBudget => 31 * DAY_MS,
        }
    }

    /// The shortest lifetime that keeps the appliance working: rollups read
    /// the finer class until the coarser bucket is complete, a day's
    /// privacy budget must outlive the day, and today's line counts and
    /// chart are read from the quarter-hours since local midnight, so those
    /// must outlive the longest local day (25 hours when the clocks go back).
    pub fn minimum_ms(self) -> i64 {
        match self {
            DataClass::Aggregates1m => HOUR_MS,
            DataClass::Aggregates15m => 25 * HOUR_MS,
            DataClass::Aggregates1h | DataClass::PrivacyBudget => 2 * DAY_MS,
            DataClass::Aggregates1d => 31 * DAY_MS,
            DataClass::Events | DataClass::Snapshots | DataClass::AuditLog => HOUR_MS,
        }
    }

    /// The bucket width of an aggregate class.
    pub fn bucket_ms(self) -> Option<i64> {
        match self {
            DataClass::Aggregates1m => Some(MINUTE_MS),
            DataClass::Aggregates15m => Some(15 * MINUTE_MS),
            DataClass::Aggregates1h => Some(HOUR_MS),
            DataClass::Aggregates1d => Some(DAY_MS),
            _ => None,
        }
    }
}

/// One class's configured lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionLimit {
    pub class: DataClass,
    pub limit_ms: i64,
    /// Required when `limit_ms` exceeds the class maximum; shown to the DPO.
    pub justification: Option<String>,
}

/// Every class's lifetime (the config's `[retention]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    limits: Vec<RetentionLimit>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            limits: DataClass::ALL
                .into_iter()
                .map(|class| RetentionLimit {
                    class,
                    limit_ms: class.default_limit_ms(),
                    justification: None,
                })
                .collect(),
        }
    }
}

impl RetentionPolicy {
    /// From validated limits; classes not named keep their default.
    pub fn new(limits: Vec<RetentionLimit>) -> RetentionPolicy {
        let mut policy = RetentionPolicy::default();
        for limit in limits {
            if let Some(slot) = policy.limits.iter_mut().find(|l| l.class == limit.class) {
                *slot = limit;
            }
        }
        policy
    }

    pub fn limit_ms(&self, class: DataClass) -> i64 {
        self.get(class).limit_ms
    }

    pub fn get(&self, class: DataClass) -> &RetentionLimit {
        // `new` and `default` fill every class, so the fallback never runs.
        self.limits
            .iter()
            .find(|l| l.class == class)
            .unwrap_or(&self.limits[0])
    }

    pub fn limits(&self) -> &[RetentionLimit] {
        &self.limits
    }

    /// Rows of `class` that started before this time are past their lifetime.
    pub fn cutoff(&self, class: DataClass, now: UnixMs) -> UnixMs {
        now - self.limit_ms(class)
    }
}

/// A lifetime such as `30m`, `72h`, `90d` or `2y` (365 days), in ms; at
/// most 100 years.
pub fn parse_lifetime(text: &str) -> Option<i64> {
    let split = text.char_indices().last().map(|(i, _)| i)?;
    let (number, unit) = text.split_at(split);
    let unit_ms = match unit {
        "m" => MINUTE_MS,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        "y" => YEAR_MS,
        _ => return None,
    };
    let n: i64 = number.parse().ok()?;
    (n > 0 && n <= 100 * YEAR_MS / unit_ms).then_some(n * unit_ms)
}

/// A lifetime as people write it: hours below a week (`72h`), else the
/// largest exact unit (`90d`, `2y`).
pub fn format_lifetime(ms: i64) -> String {
    let (n, unit) = lifetime_parts(ms);
    format!("{n}{unit}")
}

/// A lifetime as a number of its largest whole unit: `y`, `d` (a week or
/// more), `h` or `m`.
pub fn lifetime_parts(ms: i64) -> (i64, &'static str) {
    for (unit, unit_ms) in [("y", YEAR_MS), ("d", DAY_MS), ("h", HOUR_MS)] {
        let below_a_week = unit == "d" && ms < 7 * DAY_MS;
        if ms % unit_ms == 0 && !below_a_week {
            return (ms / unit_ms, unit);
        }
    }
    (ms / MINUTE_MS, "m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_and_print_back() {
        for text in ["30m", "72h", "90d", "7d", "2y", "400d"] {
            let ms = parse_lifetime(text).unwrap();
            assert_eq!(format_lifetime(ms), text);
        }
        assert_eq!(parse_lifetime("72h"), Some(72 * HOUR_MS));
        for bad in ["", "h", "0d", "-1d", "7w", "1.5d", "101y", "d7"] {
            assert_eq!(parse_lifetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_default_is_within_its_bounds_and_finer_classes_do_not_outlive_coarser() {
        for class in DataClass::ALL {
            let d = class.default_limit_ms();
            assert!(
                class.minimum_ms() <= d && d <= class.maximum_ms(),
                "{class:?}"
            );
            assert_eq!(DataClass::from_key(class.key()), Some(class));
        }
        let aggregates = [
            DataClass::Aggregates1m,
            DataClass::Aggregates15m,
            DataClass::Aggregates1h,
            DataClass::Aggregates1d,
        ];
        for pair in aggregates.windows(2) {
            assert!(pair[0].default_limit_ms() < pair[1].default_limit_ms());
        }
    }

    #[test]
    fn a_policy_keeps_defaults_for_classes_it_does_not_name() {
        let policy = RetentionPolicy::new(vec![RetentionLimit {
            class: DataClass::AuditLog,
            limit_ms: 6 * YEAR_MS,
            justification: Some("tax law".into()),
        }]);
        assert_eq!(policy.limit_ms(DataClass::AuditLog), 6 * YEAR_MS);
        assert_eq!(policy.limit_ms(DataClass::Events), 72 * HOUR_MS);
        assert_eq!(
            policy.cutoff(DataClass::Events, 100 * HOUR_MS),
            28 * HOUR_MS
        );
    }
}
