//! Anomalies leaving the box (the webhook and the MQTT anomalies topic), as
//! the disclosure policy allows them (`policy::TABLE`, `Class::Events`).
//!
//! Anomalies are person-related events: a loitering anomaly opens when one
//! visit passes its limit and closes when that visit ends, so its times are
//! one person's stay; a single wrong-way crossing is one person's movement.
//! So what leaves the box is minimised ([`PushedNotice`]):
//!
//! - times rounded down to the minute;
//! - no `acknowledged_by` (a token name) and no free-text explanation, only
//!   a summary made of the kind and the subject;
//! - a measured value that counts people is banded below k (`policy::band`),
//!   and loitering's value (a person's stay) is never pushed; so is such a
//!   kind's threshold, since an anomaly's threshold bounds its value (drift
//!   above a tolerance of 3 with its value withheld below k = 5 is 4), and
//!   some thresholds are counts themselves (unusual occupancy's median, a
//!   drift tolerance grown with the day's entries);
//! - wrong-way crossings go out as one count per line and bucket
//!   ([`WrongWayPush::Count`], the default), not one event each.

use super::policy::band;
use crate::anomaly::{Anomaly, Kind, Notice, Severity, Transition};
use crate::clock::UnixMs;
pub use crate::config::anomaly::WrongWayPush;
use serde::Serialize;
use std::collections::BTreeMap;

const MINUTE_MS: i64 = 60_000;

/// What happened, as pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushedTransition {
    Opened,
    Closed,
    Acknowledged,
    /// A count of wrong-way crossings over a bucket that has ended.
    Counted,
}

/// One push to the webhook or MQTT.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushedNotice {
    pub site: String,
    pub transition: PushedTransition,
    pub anomaly: PushedAnomaly,
}

/// An anomaly as it leaves the box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushedAnomaly {
    /// The stored anomaly's id; None for a count of crossings.
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub subject_type: String,
    pub subject: String,
    pub severity: Severity,
    /// None when it would count fewer than k people, or be a person's stay.
    pub value: Option<f64>,
    /// None when it would count fewer than k people.
    pub threshold: Option<f64>,
    /// RFC 3339, rounded down to the minute.
    pub started: String,
    pub ended: Option<String>,
    /// Kind and subject in words, e.g. "loitering in zone lobby.waiting".
    pub summary: String,
}

impl PushedNotice {
    /// The same for every retry of this push, so a receiver can drop
    /// duplicates: `opened-42`, or `counted-lobby.door-1767225600000`.
    pub fn delivery_id(&self) -> String {
        let transition = match self.transition {
            PushedTransition::Opened => "opened",
            PushedTransition::Closed => "closed",
            PushedTransition::Acknowledged => "acknowledged",
            PushedTransition::Counted => "counted",
        };
        match self.anomaly.id {
            Some(id) => format!("{transition}-{id}"),
            None => format!(
                "{transition}-{}-{}",
                self.anomaly.subject, self.anomaly.started
            ),
        }
    }
}

fn minute(ms: UnixMs) -> String {
    crate::clock::rfc3339(ms.div_euclid(MINUTE_MS) * MINUTE_MS)
}

/// Kinds whose measured value is a number of people (or crossings).
fn counts_people(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::OverCapacity
            | Kind::AfterHours
            | Kind::WrongWay
            | Kind::CounterDrift
            | Kind::UnusualOccupancy
            | Kind::UnusualFlow
    )
}

fn summary(kind: Kind, subject_type: &str, subject: &str) -> String {
    format!(
        "{} in {subject_type} {subject}",
        kind.as_str().replace('_', " ")
    )
}

/// The pushed form of a stored anomaly.
pub fn minimise(anomaly: &Anomaly, k: u32) -> PushedAnomaly {
    // Counts are whole numbers; a negative one cannot occur.
    let banded = |count: f64| band(count.max(0.0).round() as u64, k).map(|v| v as f64);
    let value = match anomaly.kind {
        Kind::Loitering => None,
        kind if counts_people(kind) => banded(anomaly.value),
        _ => Some(anomaly.value),
    };
    // Wrong way's threshold is 0, no count; the others' are published as
    // the API serves them, unless below k.
    let threshold = match anomaly.kind {
        kind if counts_people(kind) && kind != Kind::WrongWay => {
            banded(anomaly.threshold).map(|_| anomaly.threshold)
        }
        _ => Some(anomaly.threshold),
    };
    PushedAnomaly {
        id: Some(anomaly.id),
        kind: anomaly.kind,
        subject_type: anomaly.subject_type.clone(),
        subject: anomaly.subject.clone(),
        severity: anomaly.severity,
        value,
        threshold,
        started: minute(anomaly.started_ms),
        ended: anomaly.ended_ms.map(minute),
        summary: summary(anomaly.kind, &anomaly.subject_type, &anomaly.subject),
    }
}

/// Turns stored anomaly changes into pushes, holding wrong-way crossings
/// back as counts when so configured.
#[derive(Debug)]
pub struct PushFeed {
    site: String,
    k: u32,
    wrong_way: WrongWayPush,
    /// (line, bucket start) -> crossings against its direction.
    counts: BTreeMap<(String, UnixMs), u64>,
}

impl PushFeed {
    pub fn new(site: &str, k: u32, wrong_way: WrongWayPush) -> PushFeed {
        PushFeed {
            site: site.to_string(),
            k,
            wrong_way,
            counts: BTreeMap::new(),
        }
    }

    /// The push for one stored change, if it leaves now.
    pub fn accept(&mut self, notice: &Notice) -> Option<PushedNotice> {
        let a = &notice.anomaly;
        if let (Kind::WrongWay, WrongWayPush::Count { bucket_ms }) = (a.kind, self.wrong_way) {
            if notice.transition == Transition::Opened {
                let bucket = a.started_ms.div_euclid(bucket_ms) * bucket_ms;
                let crossings = a.value.max(0.0).round() as u64;
                *self.counts.entry((a.subject.clone(), bucket)).or_default() += crossings;
            }
            return None;
        }
        let transition = match notice.transition {
            Transition::Opened => PushedTransition::Opened,
            Transition::Closed => PushedTransition::Closed,
            Transition::Acknowledged => PushedTransition::Acknowledged,
        };
        Some(PushedNotice {
            site: self.site.clone(),
            transition,
            anomaly: minimise(a, self.k),
        })
    }

    /// The wrong-way counts of buckets that ended by `now`, oldest first.
    pub fn due(&mut self, now: UnixMs) -> Vec<PushedNotice> {
        let WrongWayPush::Count { bucket_ms } = self.wrong_way else {
            return Vec::new();
        };
        let ended: Vec<(String, UnixMs)> = self
            .counts
            .keys()
            .filter(|(_, start)| start + bucket_ms <= now)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in ended {
            let Some(crossings) = self.counts.remove(&key) else {
                continue;
            };
            let (line, start) = key;
            out.push(PushedNotice {
                site: self.site.clone(),
                transition: PushedTransition::Counted,
                anomaly: PushedAnomaly {
                    id: None,
                    kind: Kind::WrongWay,
                    subject_type: "line".into(),
                    summary: summary(Kind::WrongWay, "line", &line),
                    subject: line,
                    severity: Severity::Warning,
                    value: band(crossings, self.k).map(|v| v as f64),
                    threshold: Some(0.0),
                    started: minute(start),
                    ended: Some(minute(start + bucket_ms)),
                },
            });
        }
        out.sort_by(|a, b| a.anomaly.started.cmp(&b.anomaly.started));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMs = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn stored(id: i64, kind: Kind, subject_type: &str, value: f64, started: UnixMs) -> Anomaly {
        Anomaly {
            id,
            kind,
            subject_type: subject_type.into(),
            subject: "lobby.door".into(),
            started_ms: started,
            ended_ms: Some(started + 754_321),
            severity: Severity::Warning,
            value,
            threshold: 10.0,
            explanation: "a person exceeded 10 min in zone lobby.door".into(),
            acknowledged_ms: Some(started + 5),
            acknowledged_by: Some("Alice Example".into()),
        }
    }

    fn notice(transition: Transition, anomaly: Anomaly) -> Notice {
        Notice {
            site: "hq".into(),
            transition,
            anomaly,
        }
    }

    #[test]
    fn pushes_carry_minutes_no_acknowledger_no_explanation_no_stay() {
        let loiter = stored(7, Kind::Loitering, "zone", 10.4, T + 61_234);
        let mut feed = PushFeed::new("hq", 5, WrongWayPush::Each);
        let pushed = feed.accept(&notice(Transition::Closed, loiter)).unwrap();
        assert_eq!(pushed.anomaly.started, "2026-01-01T00:01:00Z");
        assert_eq!(
            pushed.anomaly.ended.as_deref(),
            Some("2026-01-01T00:13:00Z")
        );
        assert_eq!(pushed.anomaly.value, None);
        assert_eq!(pushed.delivery_id(), "closed-7");
        let json = serde_json::to_string(&pushed).unwrap();
        for absent in [
            "Alice",
            "acknowledged_by",
            "explanation",
            "a person",
            ":01.234",
            "754",
        ] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
    }

    #[test]
    fn people_counts_below_k_are_banded_other_values_kept() {
        let check = |kind, value, k, expected: Option<f64>| {
            let pushed = minimise(&stored(1, kind, "space", value, T), k);
            assert_eq!(pushed.value, expected, "{kind:?} {value}");
        };
        check(Kind::AfterHours, 2.0, 5, None);
        check(Kind::AfterHours, 7.0, 5, Some(7.0));
        check(Kind::OverCapacity, 3.0, 5, None);
        check(Kind::CounterDrift, 4.0, 5, None);
        check(Kind::UnusualOccupancy, 0.0, 5, None);
        // A camera's condition is not a count of people.
        check(Kind::StreamLoss, 31.5, 5, Some(31.5));
        check(Kind::LensCovered, 0.02, 5, Some(0.02));
    }

    #[test]
    fn a_threshold_that_bounds_a_count_below_k_is_banded_too() {
        let pushed = |kind, value, threshold, k| {
            let anomaly = Anomaly {
                threshold,
                ..stored(1, kind, "space", value, T)
            };
            let pushed = minimise(&anomaly, k);
            (pushed.value, pushed.threshold)
        };
        // Drift above a tolerance of 3, its value withheld below k = 5,
        // would be 4 if the threshold went out.
        assert_eq!(pushed(Kind::CounterDrift, 4.0, 3.0, 5), (None, None));
        assert_eq!(
            pushed(Kind::CounterDrift, 21.0, 17.0, 5),
            (Some(21.0), Some(17.0))
        );
        // An hour's usual occupancy below k is a count below k; above it,
        // it goes out as the API serves it.
        assert_eq!(
            pushed(Kind::UnusualOccupancy, 9.0, 2.4, 5),
            (Some(9.0), None)
        );
        assert_eq!(
            pushed(Kind::UnusualOccupancy, 2.0, 12.3, 5),
            (None, Some(12.3))
        );
        // Wrong way's threshold, 0, is no count.
        assert_eq!(pushed(Kind::WrongWay, 1.0, 0.0, 5), (None, Some(0.0)));
        assert_eq!(
            pushed(Kind::OverCapacity, 12.0, 10.0, 5),
            (Some(12.0), Some(10.0))
        );
        // A camera's limit is no count.
        assert_eq!(
            pushed(Kind::StreamLoss, 31.5, 4.0, 5),
            (Some(31.5), Some(4.0))
        );
    }

    #[test]
    fn wrong_way_crossings_leave_as_counts_per_bucket() {
        let mut feed = PushFeed::new("hq", 5, WrongWayPush::Count { bucket_ms: 900_000 });
        for (id, at) in [
            (1, T + 1_000),
            (2, T + 2_000),
            (3, T + 899_000),
            (4, T + 900_000),
        ] {
            let crossing = stored(id, Kind::WrongWay, "line", 1.0, at);
            assert_eq!(
                feed.accept(&notice(Transition::Opened, crossing.clone())),
                None
            );
            assert_eq!(feed.accept(&notice(Transition::Closed, crossing)), None);
        }
        assert!(feed.due(T + 899_999).is_empty());
        let due = feed.due(T + 900_000);
        assert_eq!(due.len(), 1);
        let first = &due[0];
        assert_eq!(first.transition, PushedTransition::Counted);
        // Three crossings: fewer than k, so banded.
        assert_eq!(first.anomaly.value, None);
        assert_eq!(first.anomaly.started, "2026-01-01T00:00:00Z");
        assert_eq!(first.anomaly.ended.as_deref(), Some("2026-01-01T00:15:00Z"));
        assert_eq!(
            first.delivery_id(),
            "counted-lobby.door-2026-01-01T00:00:00Z"
        );
        assert!(feed.due(T + 900_000).is_empty(), "a count goes out once");
        // Each: every crossing is its own push.
        let mut each = PushFeed::new("hq", 5, WrongWayPush::Each);
        let crossing = stored(9, Kind::WrongWay, "line", 1.0, T);
        let pushed = each.accept(&notice(Transition::Opened, crossing)).unwrap();
        assert_eq!((pushed.anomaly.id, pushed.anomaly.value), (Some(9), None));
    }
}
