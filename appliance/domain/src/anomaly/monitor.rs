//! The live detectors: fed the counting engine's signals, each analysed
//! frame's image statistics and the cameras' last frame times, they open
//! and close anomalies. Every rule works on counts and durations only.
//!
//! - over capacity (zone, space): above the capacity for the hold time
//!   opens; at or below the clear level closes (hysteresis);
//! - loitering (zone): the longest visit now in progress beyond the zone's
//!   limit; closes when no visit is beyond it;
//! - after hours (space with a schedule): at least `after_hours_min`
//!   people outside opening hours for the hold time;
//! - wrong way (one-way line): each crossing the other way, at once;
//! - tamper (camera): the conditions `tamper::TamperDetector` holds active;
//! - stream loss (camera): no frame for the camera's limit;
//! - counter drift (space with entrances and a schedule): in minus out
//!   still above the tolerance `DRIFT_DELAY_MS` after closing time; the
//!   tolerance grows with the day's entries (`drift_tolerance`).

use super::tamper::{TamperCondition, TamperDetector};
use super::{Finding, Kind, Severity, Subject};
use crate::analytics::{EntranceTally, Signals};
use crate::clock::UnixMs;
use crate::config::anomaly::SpaceSchedule;
use crate::config::{zone_key, Config, Way};
use crate::pixels::frame::CameraId;
use crate::pixels::stats::FrameStats;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How long after closing time the entrance count is checked: people
/// leaving at closing time have left by then.
pub const DRIFT_DELAY_MS: i64 = 15 * 60_000;

/// A break in over capacity or presence after hours shorter than this
/// (or than two frame intervals of the slowest camera) neither restarts
/// its hold nor ends it: one person leaving as another comes in, or a
/// count that dips for a frame, is the same presence.
pub const COUNT_GAP_MS: i64 = 1000;

/// Standard deviations of working doors' leftover that are still not drift.
const DRIFT_SIGMAS: f64 = 3.0;

/// The drift tolerance of a space after `entries` entries since its reset:
/// the configured one, or, on a busy day, what working doors leave counted.
///
/// Doors that each way miss a share p of the crossings leave the missed
/// exits minus the missed entries counted once everyone has left: about
/// normal, with variance 2·p·entries. A fixed tolerance of 2 is then
/// crossed on most days in a hall of 1500 visitors (standard deviation
/// 5.5 at p = 1 %), while a door that misses a tenth of its exits leaves
/// far more.
pub fn drift_tolerance(schedule: &SpaceSchedule, entries: u64) -> u32 {
    let sigma = (2.0 * schedule.drift_miss_rate * entries as f64).sqrt();
    schedule
        .drift_tolerance
        .max((DRIFT_SIGMAS * sigma).ceil() as u32)
}

/// A change to store and announce.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Open {
        started: UnixMs,
        finding: Finding,
    },
    Close {
        kind: Kind,
        subject: Subject,
        started: UnixMs,
        ended: UnixMs,
    },
    /// An anomaly that starts and ends at once (a wrong-way crossing,
    /// counter drift at closing).
    Instant {
        at: UnixMs,
        finding: Finding,
    },
}

struct Limits {
    capacity: Option<u32>,
    clear: Option<u32>,
}

struct ZoneRules {
    limits: Limits,
    loiter_ms: Option<i64>,
}

struct SpaceRules {
    limits: Limits,
    schedule: Option<SpaceSchedule>,
    counts_entrances: bool,
    /// Counted at its entrances only (no zones to correct the count).
    entrances_only: bool,
    /// The closing time last checked for drift.
    drift_checked: Option<UnixMs>,
}

struct LineRules {
    allowed: Way,
    /// Crossings the other way seen so far (the engine's running total).
    against: Option<u64>,
}

struct CameraWatch {
    tamper: Option<TamperDetector>,
    stream_loss_ms: i64,
}

struct Opened {
    started: UnixMs,
    /// When its condition was last seen to stop, while the break is
    /// shorter than its kind's gap.
    clearing_since: Option<UnixMs>,
}

/// A condition seen, not yet held long enough to open.
struct Pending {
    since: UnixMs,
    /// When it was last seen to stop, while the break is shorter than its
    /// kind's gap.
    broken_since: Option<UnixMs>,
}

/// How a condition is held: how long before it opens, how long a break
/// may last and not count, and how far behind the frames' capture times
/// the observation's time may be.
#[derive(Clone, Copy)]
struct Hold {
    ms: i64,
    gap_ms: i64,
    /// A tick observes at the wall clock's time, the frames at their
    /// capture times, which are behind it by the pipeline's latency: a
    /// tick opens, or ends a break, only this much later, so that a frame
    /// that shows otherwise has time to arrive. It assumes the latency
    /// stays under the gap (p99 capture to count 538 ms on a loaded box,
    /// `scripts/bench.sh`); a later frame still corrects the count, but
    /// the anomaly's open or close stands.
    lag_ms: i64,
}

impl Hold {
    /// Opens at once and closes at once (the rule holds by itself).
    const NONE: Hold = Hold {
        ms: 0,
        gap_ms: 0,
        lag_ms: 0,
    };

    /// Whether a break that began at `since` is over at `at`.
    fn break_over(&self, since: Option<UnixMs>, at: UnixMs) -> bool {
        since.is_some_and(|since| at - self.lag_ms - since >= self.gap_ms)
    }
}

/// The longest break that does not count for this config's cameras.
fn count_gap_ms(config: &Config) -> i64 {
    let slowest_fps = config
        .cameras
        .iter()
        .map(|c| c.analysis_fps)
        .fold(f64::INFINITY, f64::min);
    let two_frames = if slowest_fps.is_finite() && slowest_fps > 0.0 {
        (2000.0 / slowest_fps).ceil() as i64
    } else {
        0
    };
    COUNT_GAP_MS.max(two_frames)
}

/// The detectors of one appliance (or one `analyze` run).
pub struct Monitor {
    zones: HashMap<String, ZoneRules>,
    spaces: HashMap<String, SpaceRules>,
    lines: HashMap<String, LineRules>,
    cameras: HashMap<CameraId, CameraWatch>,
    capacity_hold_ms: i64,
    after_hours_hold_ms: i64,
    /// `count_gap_ms` of the config.
    count_gap_ms: i64,
    /// When each held condition was first seen, not yet long enough to open.
    pending: HashMap<(Kind, Subject), Pending>,
    open: BTreeMap<(Kind, Subject), Opened>,
    started: UnixMs,
    /// Every line's latest (entries, exits): where a line made one-way by
    /// `reconfigure` starts counting crossings against it.
    line_totals: HashMap<String, (u64, u64)>,
}

impl Monitor {
    /// Detectors for every zone, space, line and camera in the config,
    /// starting (and starting to learn tamper references) at `now`.
    pub fn new(config: &Config, now: UnixMs) -> Monitor {
        let zones = zone_rules(config);
        let lines = one_way_rules(config)
            .map(|(key, allowed)| {
                let rules = LineRules {
                    allowed,
                    against: None,
                };
                (key, rules)
            })
            .collect();
        let mut cameras = HashMap::new();
        for camera in &config.cameras {
            cameras.insert(
                camera.id.clone(),
                CameraWatch {
                    tamper: camera.tamper.map(|s| TamperDetector::new(s, now)),
                    stream_loss_ms: camera.stream_loss_ms,
                },
            );
        }
        let spaces = config
            .spaces
            .iter()
            .map(|s| {
                // Closings before the start were not watched.
                let drift_checked = s
                    .schedule
                    .as_ref()
                    .and_then(|sch| sch.schedule.last_closing(now - DRIFT_DELAY_MS));
                let rules = SpaceRules {
                    limits: Limits {
                        capacity: s.capacity,
                        clear: s.capacity_clear,
                    },
                    schedule: s.schedule.clone(),
                    counts_entrances: !s.entrances.is_empty(),
                    entrances_only: s.entrances_only(),
                    drift_checked,
                };
                (s.name.clone(), rules)
            })
            .collect();
        Monitor {
            zones,
            spaces,
            lines,
            cameras,
            capacity_hold_ms: config.anomalies.capacity_hold_ms,
            after_hours_hold_ms: config.anomalies.after_hours_hold_ms,
            count_gap_ms: count_gap_ms(config),
            pending: HashMap::new(),
            open: BTreeMap::new(),
            started: now,
            line_totals: HashMap::new(),
        }
    }

    /// Takes up the zone rules (capacity, clear level, loitering) and the
    /// one-way lines of an edited `config`; cameras (tamper references,
    /// stream loss), spaces and their schedules stay as running.
    ///
    /// Invariant: an open anomaly ends only when what it is about is gone.
    /// Those of a removed zone or line, or of a rule a zone no longer has,
    /// close now (returned); the others stay open and are judged by the
    /// new rules from the next counts on. A line made one-way, or turned
    /// round, counts crossings against it from its latest totals, so
    /// crossings before the edit raise nothing.
    pub fn reconfigure(&mut self, config: &Config, now: UnixMs) -> Vec<Change> {
        self.zones = zone_rules(config);
        self.count_gap_ms = count_gap_ms(config);
        let mut old = std::mem::take(&mut self.lines);
        for (key, allowed) in one_way_rules(config) {
            let rules = match old.remove(&key) {
                Some(rules) if rules.allowed == allowed => rules,
                _ => {
                    let against = self
                        .line_totals
                        .get(&key)
                        .map(|&(entries, exits)| crossings_against(allowed, entries, exits));
                    LineRules { allowed, against }
                }
            };
            self.lines.insert(key, rules);
        }
        // A removed line's totals restart at zero should it come back.
        let drawn: HashSet<String> = config
            .cameras
            .iter()
            .flat_map(|c| c.lines.iter().map(|l| zone_key(&c.id, &l.name)))
            .collect();
        self.line_totals.retain(|key, _| drawn.contains(key));

        // Pending holds go too: a rule that comes back needs a full hold.
        let mut gone: Vec<(Kind, Subject)> = self
            .open
            .keys()
            .chain(self.pending.keys())
            .filter(|(kind, subject)| !self.judges(*kind, subject))
            .cloned()
            .collect();
        gone.sort();
        gone.dedup();
        let mut changes = Vec::new();
        for (kind, subject) in gone {
            self.release(now, kind, &subject, &mut changes);
        }
        changes
    }

    /// Whether a rule still watches `kind` on `subject`.
    fn judges(&self, kind: Kind, subject: &Subject) -> bool {
        match subject {
            Subject::Zone(key) => self.zones.get(key).is_some_and(|rules| match kind {
                Kind::OverCapacity => rules.limits.capacity.is_some(),
                Kind::Loitering => rules.loiter_ms.is_some(),
                _ => true,
            }),
            Subject::Line(key) => self.lines.contains_key(key),
            Subject::Space(_) | Subject::Camera(_) | Subject::Appliance(_) => true,
        }
    }

    /// The counting engine's signals after a frame captured at `at`.
    pub fn observe_counts(&mut self, at: UnixMs, signals: &Signals) -> Vec<Change> {
        self.judge_counts(at, 0, signals)
    }

    /// The counts at `at`, observed `lag_ms` behind the frames at most.
    fn judge_counts(&mut self, at: UnixMs, lag_ms: i64, signals: &Signals) -> Vec<Change> {
        let counted = |ms| Hold {
            ms,
            gap_ms: self.count_gap_ms,
            lag_ms,
        };
        let (capacity_hold, after_hours_hold) = (
            counted(self.capacity_hold_ms),
            counted(self.after_hours_hold_ms),
        );
        let mut changes = Vec::new();
        for zone in &signals.zones {
            let Some(rules) = self.zones.get(&zone.key) else {
                continue;
            };
            let subject = Subject::Zone(zone.key.clone());
            let over = self.is_open(at, Kind::OverCapacity, &subject, capacity_hold);
            let capacity = capacity_finding(&rules.limits, zone.occupancy, &subject, over);
            let loiter = rules.loiter_ms.map(|limit| (limit, zone.longest_visit_ms));
            self.held(
                at,
                Kind::OverCapacity,
                &subject,
                capacity,
                capacity_hold,
                &mut changes,
            );
            if let Some((limit, longest)) = loiter {
                let finding = (longest > limit).then(|| Finding {
                    kind: Kind::Loitering,
                    subject: subject.clone(),
                    severity: Severity::Warning,
                    value: minutes(longest),
                    threshold: minutes(limit),
                    explanation: format!(
                        "a person exceeded {} min in zone {}",
                        fmt_minutes(limit),
                        zone.key
                    ),
                });
                // The limit is the hold: a visit is already that long.
                self.held(
                    at,
                    Kind::Loitering,
                    &subject,
                    finding,
                    Hold::NONE,
                    &mut changes,
                );
            }
        }
        for space in &signals.spaces {
            let Some(rules) = self.spaces.get(&space.name) else {
                continue;
            };
            let subject = Subject::Space(space.name.clone());
            let over = self.is_open(at, Kind::OverCapacity, &subject, capacity_hold);
            let capacity = capacity_finding(&rules.limits, space.occupancy, &subject, over);
            let after_hours = rules.schedule.as_ref().and_then(|s| {
                // Entries minus exits alone cannot tell people from drift:
                // within the drift tolerance it is no evidence of presence.
                let min = if rules.entrances_only {
                    let entries = space.entrances.map_or(0, |e| e.entries);
                    s.after_hours_min.max(drift_tolerance(s, entries) + 1)
                } else {
                    s.after_hours_min
                };
                (!s.schedule.is_open(at) && space.occupancy >= min).then(|| Finding {
                    kind: Kind::AfterHours,
                    subject: subject.clone(),
                    severity: Severity::Critical,
                    value: f64::from(space.occupancy),
                    threshold: f64::from(min),
                    explanation: format!(
                        "{} present in {} outside its opening hours (at least {min} raises this)",
                        people(space.occupancy),
                        space.name,
                    ),
                })
            });
            let has_schedule = rules.schedule.is_some();
            self.held(
                at,
                Kind::OverCapacity,
                &subject,
                capacity,
                capacity_hold,
                &mut changes,
            );
            if has_schedule {
                self.held(
                    at,
                    Kind::AfterHours,
                    &subject,
                    after_hours,
                    after_hours_hold,
                    &mut changes,
                );
            }
            if let Some(entrances) = space.entrances {
                self.check_drift(at, &space.name, entrances, &mut changes);
            }
        }
        for line in &signals.lines {
            match self.line_totals.get_mut(&line.key) {
                Some(totals) => *totals = (line.entries, line.exits),
                None => {
                    self.line_totals
                        .insert(line.key.clone(), (line.entries, line.exits));
                }
            }
            let Some(rules) = self.lines.get_mut(&line.key) else {
                continue;
            };
            let against = crossings_against(rules.allowed, line.entries, line.exits);
            let before = rules.against.replace(against).unwrap_or(0);
            if against > before {
                let n = against - before;
                let allowed = match rules.allowed {
                    Way::In => "in",
                    Way::Out => "out",
                };
                changes.push(Change::Instant {
                    at,
                    finding: Finding {
                        kind: Kind::WrongWay,
                        subject: Subject::Line(line.key.clone()),
                        severity: Severity::Warning,
                        value: n as f64,
                        threshold: 0.0,
                        explanation: format!(
                            "{} against the one-way direction of line {} (only {allowed} is allowed)",
                            if n == 1 { "1 crossing".to_string() } else { format!("{n} crossings") },
                            line.key
                        ),
                    },
                });
            }
        }
        changes
    }

    /// One analysed frame's image statistics.
    pub fn observe_frame(
        &mut self,
        camera: &CameraId,
        at: UnixMs,
        stats: &FrameStats,
    ) -> Vec<Change> {
        let Some(detector) = self.cameras.get_mut(camera).and_then(|c| c.tamper.as_mut()) else {
            return Vec::new();
        };
        let readings = detector.observe(at, stats);
        let subject = Subject::Camera(camera.to_string());
        let mut changes = Vec::new();
        for condition in [
            TamperCondition::Covered,
            TamperCondition::Defocused,
            TamperCondition::Moved,
            TamperCondition::Frozen,
        ] {
            let kind = tamper_kind(condition);
            let finding = readings
                .iter()
                .find(|r| r.condition == condition)
                .map(|r| Finding {
                    kind,
                    subject: subject.clone(),
                    severity: match condition {
                        TamperCondition::Defocused => Severity::Warning,
                        _ => Severity::Critical,
                    },
                    value: r.value,
                    threshold: r.threshold,
                    explanation: format!("camera {camera}: {}", r.explanation),
                });
            // The detector holds its conditions itself.
            self.held(at, kind, &subject, finding, Hold::NONE, &mut changes);
        }
        changes
    }

    /// Time passing: stream loss from each camera's last frame time (None:
    /// none since start), and schedule-driven rules when no frame comes.
    pub fn tick(
        &mut self,
        at: UnixMs,
        last_frames: &[(CameraId, Option<UnixMs>)],
        signals: &Signals,
    ) -> Vec<Change> {
        // The counts are the last frame's, observed at the wall clock's
        // time: a break in them ends by a tick only a gap later still.
        let mut changes = self.judge_counts(at, self.count_gap_ms, signals);
        for (camera, last) in last_frames {
            let Some(watch) = self.cameras.get(camera) else {
                continue;
            };
            let since = last.unwrap_or(self.started).max(self.started);
            let silent = at - since;
            let finding = (silent > watch.stream_loss_ms).then(|| Finding {
                kind: Kind::StreamLoss,
                subject: Subject::Camera(camera.to_string()),
                severity: Severity::Critical,
                value: silent as f64 / 1000.0,
                threshold: watch.stream_loss_ms as f64 / 1000.0,
                explanation: format!(
                    "camera {camera} has delivered no frame for {} s (limit {} s)",
                    silent / 1000,
                    watch.stream_loss_ms / 1000
                ),
            });
            let subject = Subject::Camera(camera.to_string());
            self.held(
                at,
                Kind::StreamLoss,
                &subject,
                finding,
                Hold::NONE,
                &mut changes,
            );
        }
        changes
    }

    /// An admin re-armed a camera's tamper reference: it learns the view
    /// afresh from `at`, and its open tamper anomalies end. False when the
    /// camera has no tamper detection.
    pub fn rearm(&mut self, camera: &CameraId, at: UnixMs) -> (bool, Vec<Change>) {
        let Some(detector) = self.cameras.get_mut(camera).and_then(|c| c.tamper.as_mut()) else {
            return (false, Vec::new());
        };
        detector.rearm(at);
        let subject = Subject::Camera(camera.to_string());
        let mut changes = Vec::new();
        for condition in [
            TamperCondition::Covered,
            TamperCondition::Defocused,
            TamperCondition::Moved,
            TamperCondition::Frozen,
        ] {
            self.release(at, tamper_kind(condition), &subject, &mut changes);
        }
        (true, changes)
    }

    /// Ends every open anomaly at `at` (the end of a recording).
    pub fn finish(&mut self, at: UnixMs) -> Vec<Change> {
        self.pending.clear();
        std::mem::take(&mut self.open)
            .into_iter()
            .map(|((kind, subject), opened)| Change::Close {
                kind,
                subject,
                started: opened.started,
                ended: opened.clearing_since.unwrap_or(at).max(opened.started),
            })
            .collect()
    }

    /// Whether `kind` is open on `subject` at `at`, and not in a break that
    /// is over.
    fn is_open(&self, at: UnixMs, kind: Kind, subject: &Subject, hold: Hold) -> bool {
        self.open
            .get(&(kind, subject.clone()))
            .is_some_and(|opened| !hold.break_over(opened.clearing_since, at))
    }

    /// Opens the anomaly once `finding` has held for `hold.ms`; closes it
    /// when there is no finding, ended when it stopped. A break shorter
    /// than `hold.gap_ms` does neither.
    fn held(
        &mut self,
        at: UnixMs,
        kind: Kind,
        subject: &Subject,
        finding: Option<Finding>,
        hold: Hold,
        changes: &mut Vec<Change>,
    ) {
        let key = (kind, subject.clone());
        let Some(finding) = finding else {
            if let Some(pending) = self.pending.get_mut(&key) {
                // A break that begins after `at` (the clock stepped back)
                // begins again now.
                let since = pending.broken_since.get_or_insert(at);
                *since = (*since).min(at);
                if hold.break_over(pending.broken_since, at) {
                    self.pending.remove(&key);
                }
            }
            if let Some(opened) = self.open.get_mut(&key) {
                let since = opened.clearing_since.get_or_insert(at);
                *since = (*since).min(at);
                if hold.break_over(opened.clearing_since, at) {
                    self.release(at, kind, subject, changes);
                }
            }
            return;
        };
        if let Some(opened) = self.open.get_mut(&key) {
            if !hold.break_over(opened.clearing_since, at) {
                opened.clearing_since = None;
                return;
            }
            // It ended in a break not seen out: this is a new start.
            self.release(at, kind, subject, changes);
        }
        let pending = self.pending.entry(key.clone()).or_insert(Pending {
            since: at,
            broken_since: None,
        });
        if hold.break_over(pending.broken_since, at) {
            pending.since = at;
        }
        pending.broken_since = None;
        // A tick opens only once frames, however late, could not have
        // shown a break.
        if at - hold.lag_ms - pending.since >= hold.ms {
            self.pending.remove(&key);
            let opened = Opened {
                started: at,
                clearing_since: None,
            };
            self.open.insert(key, opened);
            changes.push(Change::Open {
                started: at,
                finding,
            });
        }
    }

    /// Forgets `kind`'s hold on `subject` and closes it if open, at once:
    /// ended when its condition stopped, or at `at` if it had not.
    fn release(&mut self, at: UnixMs, kind: Kind, subject: &Subject, changes: &mut Vec<Change>) {
        let key = (kind, subject.clone());
        self.pending.remove(&key);
        if let Some(opened) = self.open.remove(&key) {
            changes.push(Change::Close {
                kind,
                subject: subject.clone(),
                started: opened.started,
                ended: opened.clearing_since.unwrap_or(at).max(opened.started),
            });
        }
    }

    fn check_drift(
        &mut self,
        at: UnixMs,
        space: &str,
        entrances: EntranceTally,
        changes: &mut Vec<Change>,
    ) {
        let Some(rules) = self.spaces.get_mut(space) else {
            return;
        };
        let (Some(schedule), true) = (&rules.schedule, rules.counts_entrances) else {
            return;
        };
        let Some(closing) = schedule.schedule.last_closing(at - DRIFT_DELAY_MS) else {
            return;
        };
        if rules.drift_checked.is_some_and(|c| c >= closing) || schedule.schedule.is_open(at) {
            return;
        }
        rules.drift_checked = Some(closing);
        let EntranceTally { count, entries } = entrances;
        let tolerance = drift_tolerance(schedule, entries);
        if count > tolerance {
            changes.push(Change::Instant {
                at,
                finding: Finding {
                    kind: Kind::CounterDrift,
                    subject: Subject::Space(space.to_string()),
                    severity: Severity::Info,
                    value: f64::from(count),
                    threshold: f64::from(tolerance),
                    explanation: format!(
                        "entries minus exits of {space} is {count}, {} min after closing time (tolerance {tolerance} after {entries} entries): a door may be miscounting",
                        DRIFT_DELAY_MS / 60_000,
                    ),
                },
            });
        }
    }
}

fn crossings_against(allowed: Way, entries: u64, exits: u64) -> u64 {
    match allowed {
        Way::In => exits,
        Way::Out => entries,
    }
}

fn zone_rules(config: &Config) -> HashMap<String, ZoneRules> {
    config
        .cameras
        .iter()
        .flat_map(|camera| {
            camera.zones.iter().map(|zone| {
                let rules = ZoneRules {
                    limits: Limits {
                        capacity: zone.capacity,
                        clear: zone.capacity_clear,
                    },
                    loiter_ms: zone.loiter_ms,
                };
                (zone_key(&camera.id, &zone.name), rules)
            })
        })
        .collect()
}

/// The one-way lines by key, with the direction allowed.
fn one_way_rules(config: &Config) -> impl Iterator<Item = (String, Way)> + '_ {
    config.cameras.iter().flat_map(|camera| {
        camera.lines.iter().filter_map(|line| {
            let allowed = line.one_way?;
            Some((zone_key(&camera.id, &line.name), allowed))
        })
    })
}

fn tamper_kind(condition: TamperCondition) -> Kind {
    match condition {
        TamperCondition::Covered => Kind::LensCovered,
        TamperCondition::Defocused => Kind::Defocused,
        TamperCondition::Moved => Kind::CameraMoved,
        TamperCondition::Frozen => Kind::FrozenImage,
    }
}

/// Hysteresis: above the capacity raises; an open anomaly stays open
/// until the occupancy is at or below the clear level.
fn capacity_finding(
    limits: &Limits,
    occupancy: u32,
    subject: &Subject,
    open: bool,
) -> Option<Finding> {
    let capacity = limits.capacity?;
    let clear = limits.clear.unwrap_or(capacity);
    let level = if open { clear } else { capacity };
    (occupancy > level).then(|| Finding {
        kind: Kind::OverCapacity,
        subject: subject.clone(),
        severity: if f64::from(occupancy) >= 1.5 * f64::from(capacity) {
            Severity::Critical
        } else {
            Severity::Warning
        },
        value: f64::from(occupancy),
        threshold: f64::from(capacity),
        explanation: format!(
            "{} in {} {}, above its capacity of {capacity} (clears at {clear} or fewer)",
            people(occupancy),
            subject.kind(),
            subject.name()
        ),
    })
}

fn people(n: u32) -> String {
    if n == 1 {
        "1 person".into()
    } else {
        format!("{n} people")
    }
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / 60_000.0
}

fn fmt_minutes(ms: i64) -> String {
    let m = minutes(ms);
    if (m - m.round()).abs() < 1e-9 {
        format!("{}", m.round() as i64)
    } else {
        format!("{m:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{LineSignal, SpaceSignal, ZoneSignal};
    use crate::config::SystemSecrets;
    use crate::pixels::frame::Frame;
    use std::path::Path;

    /// Monday 2025-11-24 16:00 UTC: the spaces below are open 08:00-18:00.
    const NOW: UnixMs = 1_764_000_000_000;
    const SEC: i64 = 1000;
    const MIN: i64 = 60 * SEC;
    const HOUR: i64 = 60 * MIN;
    /// Monday 18:00 UTC, closing time.
    const CLOSING: UnixMs = NOW + 2 * HOUR;

    const CONFIG: &str = r#"
[anomalies]
capacity_hold_secs = 30
after_hours_hold_secs = 60

[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.tamper]
learning_secs = 5
[cameras.lobby.zones.door]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
capacity = 10
capacity_clear = 7
loiter_minutes = 5
[cameras.lobby.lines.entrance]
points = [[0.2, 0.5], [0.8, 0.5]]
in = "left"
one_way = "in"
[cameras.lobby.lines.exit]
points = [[0.2, 0.8], [0.8, 0.8]]
in = "left"
one_way = "out"
[cameras.lobby.lines.free]
points = [[0.2, 0.2], [0.8, 0.2]]
in = "left"

[cameras.yard]
url = "testsrc:ball"
[cameras.yard.tamper]
sensitivity = "off"
stream_loss_secs = 10
[cameras.yard.zones.gate]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]

[spaces.site]
zones = ["lobby.door", "yard.gate"]
capacity = 20
[spaces.site.schedule]
timezone = "UTC"
mon = "08:00-18:00"
tue = "08:00-18:00"
wed = "08:00-18:00"
thu = "08:00-18:00"
fri = "08:00-18:00"
sat = "08:00-18:00"
sun = "08:00-18:00"
after_hours_min = 2

[spaces.hall]
entrances = ["lobby.entrance"]
[spaces.hall.schedule]
timezone = "UTC"
mon = "08:00-18:00"
tue = "08:00-18:00"
wed = "08:00-18:00"
thu = "08:00-18:00"
fri = "08:00-18:00"
sat = "08:00-18:00"
sun = "08:00-18:00"
drift_tolerance = 2
"#;

    fn config() -> Config {
        Config::parse(CONFIG, Path::new("."), &SystemSecrets).unwrap()
    }

    fn monitor() -> Monitor {
        Monitor::new(&config(), NOW)
    }

    fn zone(occupancy: u32, longest_visit_ms: i64) -> Signals {
        Signals {
            zones: vec![ZoneSignal {
                key: "lobby.door".into(),
                occupancy,
                longest_visit_ms,
            }],
            ..Signals::default()
        }
    }

    /// A space; one counted at its entrances has seen `count` people come
    /// in and none leave (a quiet day).
    fn space(name: &str, occupancy: u32, entrance_count: Option<u32>) -> Signals {
        let entrances = entrance_count.map(|count| EntranceTally {
            count,
            entries: u64::from(count),
        });
        Signals {
            spaces: vec![SpaceSignal {
                name: name.into(),
                occupancy,
                entrances,
            }],
            ..Signals::default()
        }
    }

    fn line(key: &str, entries: u64, exits: u64) -> Signals {
        Signals {
            lines: vec![LineSignal {
                key: key.into(),
                entries,
                exits,
            }],
            ..Signals::default()
        }
    }

    fn opened(changes: &[Change]) -> Vec<&Finding> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Open { finding, .. } => Some(finding),
                _ => None,
            })
            .collect()
    }

    fn instants(changes: &[Change]) -> Vec<&Finding> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Instant { finding, .. } => Some(finding),
                _ => None,
            })
            .collect()
    }

    fn closed(changes: &[Change]) -> Vec<(Kind, Subject, UnixMs, UnixMs)> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Close {
                    kind,
                    subject,
                    started,
                    ended,
                } => Some((*kind, subject.clone(), *started, *ended)),
                _ => None,
            })
            .collect()
    }

    fn door() -> Subject {
        Subject::Zone("lobby.door".into())
    }

    #[test]
    fn the_config_reaches_the_monitor() {
        let c = config();
        let lobby = &c.cameras[0];
        assert_eq!(lobby.zones[0].capacity_clear, Some(7));
        assert_eq!(lobby.zones[0].loiter_ms, Some(5 * MIN));
        assert_eq!(lobby.lines[0].one_way, Some(Way::In));
        assert_eq!(c.cameras[1].tamper, None);
        assert_eq!(c.cameras[1].stream_loss_ms, 10 * SEC);
        let site = c.spaces.iter().find(|s| s.name == "site").unwrap();
        assert_eq!(site.capacity_clear, Some(18));
        let schedule = site.schedule.as_ref().unwrap();
        assert!(schedule.schedule.is_open(NOW));
        assert!(!schedule.schedule.is_open(CLOSING));
        assert_eq!(schedule.schedule.last_closing(CLOSING + MIN), Some(CLOSING));
    }

    #[test]
    fn over_capacity_opens_only_after_the_hold() {
        let mut m = monitor();
        assert!(m.observe_counts(NOW, &zone(11, 0)).is_empty());
        assert!(m.observe_counts(NOW + 29 * SEC, &zone(12, 0)).is_empty());
        let changes = m.observe_counts(NOW + 30 * SEC, &zone(11, 0));
        assert_eq!(changes.len(), 1, "{changes:?}");
        let Change::Open { started, finding } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(*started, NOW + 30 * SEC);
        assert_eq!(finding.kind, Kind::OverCapacity);
        assert_eq!(finding.subject, door());
        assert_eq!(finding.value, 11.0);
        assert_eq!(finding.threshold, 10.0);
        assert_eq!(finding.severity, Severity::Warning);
        assert!(
            finding.explanation.contains("11 people") && finding.explanation.contains("10"),
            "{}",
            finding.explanation
        );
        // Still over: no second opening.
        assert!(m.observe_counts(NOW + 60 * SEC, &zone(15, 0)).is_empty());
    }

    #[test]
    fn over_capacity_that_drops_back_before_the_hold_does_not_open() {
        let mut m = monitor();
        assert!(m.observe_counts(NOW, &zone(11, 0)).is_empty());
        // Back at the capacity (not above it): the hold starts again.
        assert!(m.observe_counts(NOW + 10 * SEC, &zone(10, 0)).is_empty());
        assert!(m.observe_counts(NOW + 20 * SEC, &zone(11, 0)).is_empty());
        assert!(m.observe_counts(NOW + 40 * SEC, &zone(11, 0)).is_empty());
        let changes = m.observe_counts(NOW + 50 * SEC, &zone(11, 0));
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
    }

    #[test]
    fn over_capacity_stays_open_above_the_clear_level_and_closes_at_it() {
        let mut m = monitor();
        m.observe_counts(NOW, &zone(16, 0));
        let changes = m.observe_counts(NOW + 30 * SEC, &zone(16, 0));
        let finding = opened(&changes)[0].clone();
        assert_eq!(finding.severity, Severity::Critical, "16 >= 1.5 x 10");
        // Below the capacity but above the clear level (7): still open.
        for (i, occupancy) in [10, 9, 8].into_iter().enumerate() {
            let at = NOW + (40 + i as i64) * SEC;
            assert!(m.observe_counts(at, &zone(occupancy, 0)).is_empty());
        }
        // At it, it ends once the break outlasts the gap, ended when it began.
        assert!(m.observe_counts(NOW + 50 * SEC, &zone(7, 0)).is_empty());
        let changes = m.observe_counts(NOW + 50 * SEC + COUNT_GAP_MS, &zone(7, 0));
        assert_eq!(
            closed(&changes),
            [(Kind::OverCapacity, door(), NOW + 30 * SEC, NOW + 50 * SEC)]
        );
        // Closed: 8 does not reopen (it is below the capacity).
        assert!(m.observe_counts(NOW + 90 * SEC, &zone(8, 0)).is_empty());
    }

    #[test]
    fn a_space_over_capacity_clears_at_90_percent_by_default() {
        let mut m = monitor();
        let site = Subject::Space("site".into());
        assert!(m.observe_counts(NOW, &space("site", 21, None)).is_empty());
        let changes = m.observe_counts(NOW + 30 * SEC, &space("site", 21, None));
        let found = opened(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(
            (
                found[0].kind,
                &found[0].subject,
                found[0].value,
                found[0].threshold
            ),
            (Kind::OverCapacity, &site, 21.0, 20.0)
        );
        assert!(m
            .observe_counts(NOW + 40 * SEC, &space("site", 19, None))
            .is_empty());
        assert!(m
            .observe_counts(NOW + 50 * SEC, &space("site", 18, None))
            .is_empty());
        let changes = m.observe_counts(NOW + 51 * SEC, &space("site", 18, None));
        assert_eq!(
            closed(&changes),
            [(Kind::OverCapacity, site, NOW + 30 * SEC, NOW + 50 * SEC)]
        );
    }

    #[test]
    fn loitering_opens_beyond_the_limit_without_naming_anyone() {
        let mut m = monitor();
        assert!(m.observe_counts(NOW, &zone(1, 5 * MIN)).is_empty());
        let changes = m.observe_counts(NOW + SEC, &zone(1, 5 * MIN + 1));
        let found = opened(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        let f = found[0];
        assert_eq!((f.kind, &f.subject), (Kind::Loitering, &door()));
        assert_eq!(f.threshold, 5.0);
        assert!(f.value > 5.0 && f.value < 5.001, "{}", f.value);
        assert_eq!(f.explanation, "a person exceeded 5 min in zone lobby.door");
        assert!(!f.explanation.contains("track"), "{}", f.explanation);
        // Still beyond: nothing new; the visit ends: it closes.
        assert!(m
            .observe_counts(NOW + 2 * SEC, &zone(1, 6 * MIN))
            .is_empty());
        let changes = m.observe_counts(NOW + 3 * SEC, &zone(0, 0));
        assert_eq!(
            closed(&changes),
            [(Kind::Loitering, door(), NOW + SEC, NOW + 3 * SEC)]
        );
    }

    #[test]
    fn presence_after_hours_opens_after_the_hold_and_closes_when_empty() {
        let mut m = monitor();
        let site = Subject::Space("site".into());
        // Open: 5 people is no anomaly, however long.
        assert!(m.observe_counts(NOW, &space("site", 5, None)).is_empty());
        assert!(m
            .observe_counts(NOW + 10 * MIN, &space("site", 5, None))
            .is_empty());
        // After closing, 1 is below after_hours_min (2).
        let after = CLOSING + 30 * MIN;
        assert!(m.observe_counts(after, &space("site", 1, None)).is_empty());
        assert!(m
            .observe_counts(after + 2 * MIN, &space("site", 1, None))
            .is_empty());
        // 2 people: after the hold (60 s), and not before.
        assert!(m
            .observe_counts(after + 3 * MIN, &space("site", 2, None))
            .is_empty());
        assert!(m
            .observe_counts(after + 3 * MIN + 59 * SEC, &space("site", 2, None))
            .is_empty());
        let at = after + 4 * MIN;
        let changes = m.observe_counts(at, &space("site", 3, None));
        let found = opened(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        let f = found[0];
        assert_eq!(
            (f.kind, &f.subject, f.value, f.threshold, f.severity),
            (Kind::AfterHours, &site, 3.0, 2.0, Severity::Critical)
        );
        assert!(f.explanation.contains("3 people"), "{}", f.explanation);
        assert!(m
            .observe_counts(at + 5 * MIN, &space("site", 0, None))
            .is_empty());
        let changes = m.observe_counts(at + 5 * MIN + SEC, &space("site", 0, None));
        assert_eq!(
            closed(&changes),
            [(Kind::AfterHours, site, at, at + 5 * MIN)]
        );
    }

    #[test]
    fn a_break_shorter_than_the_gap_neither_restarts_a_hold_nor_ends_it() {
        let mut m = monitor();
        let site = Subject::Space("site".into());
        let after = CLOSING + 30 * MIN;
        let count = |m: &mut Monitor, at, n| m.observe_counts(at, &space("site", n, None));
        // Two people after hours; for half a second one leaves as another
        // comes in (1), then two again: the 60 s hold runs on.
        assert!(count(&mut m, after, 2).is_empty());
        assert!(count(&mut m, after + 20 * SEC, 1).is_empty());
        assert!(count(&mut m, after + 20 * SEC + 500, 2).is_empty());
        let changes = count(&mut m, after + 60 * SEC, 2);
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        // A dip for half a second does not end it either.
        assert!(count(&mut m, after + 90 * SEC, 0).is_empty());
        assert!(count(&mut m, after + 90 * SEC + 500, 2).is_empty());
        // A break of the gap does, ended when it began.
        assert!(count(&mut m, after + 100 * SEC, 0).is_empty());
        let changes = count(&mut m, after + 100 * SEC + COUNT_GAP_MS, 0);
        assert_eq!(
            closed(&changes),
            [(
                Kind::AfterHours,
                site.clone(),
                after + 60 * SEC,
                after + 100 * SEC
            )]
        );
        // And a new presence needs the full hold again, even when the break
        // was seen to end only by the count coming back.
        assert!(count(&mut m, after + 200 * SEC, 2).is_empty());
        assert!(count(&mut m, after + 210 * SEC, 0).is_empty());
        assert!(count(&mut m, after + 230 * SEC, 2).is_empty());
        assert!(count(&mut m, after + 289 * SEC, 2).is_empty());
        let changes = count(&mut m, after + 290 * SEC, 2);
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        // Open, a break not seen out (no count in between) ends it where it
        // began and starts a new hold.
        assert!(count(&mut m, after + 300 * SEC, 0).is_empty());
        let changes = count(&mut m, after + 400 * SEC, 2);
        assert_eq!(
            closed(&changes),
            [(Kind::AfterHours, site, after + 290 * SEC, after + 300 * SEC)]
        );
        assert!(opened(&changes).is_empty());
    }

    #[test]
    fn a_tick_ends_a_break_only_when_a_frame_could_no_longer_end_it() {
        let mut m = monitor();
        let site = Subject::Space("site".into());
        let after = CLOSING + 30 * MIN;
        let none = [];
        assert!(m.observe_counts(after, &space("site", 3, None)).is_empty());
        let opened_at = after + 60 * SEC;
        let changes = m.observe_counts(opened_at, &space("site", 3, None));
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        // A frame captured at +100 s shows the space empty; the wall clock
        // is ahead of capture times by the pipeline's latency, so ticks
        // with that count wait a gap more before they end it...
        let empty = space("site", 0, None);
        assert!(m.observe_counts(after + 100 * SEC, &empty).is_empty());
        assert!(m.tick(after + 101 * SEC, &none, &empty).is_empty());
        assert!(m.tick(after + 101 * SEC + 999, &none, &empty).is_empty());
        // ...during which the next frame may show the break over.
        assert!(m
            .observe_counts(after + 100 * SEC + 500, &space("site", 3, None))
            .is_empty());
        assert!(m
            .tick(after + 103 * SEC, &none, &space("site", 3, None))
            .is_empty());
        // Without one, the tick ends it two gaps on, ended when it began.
        assert!(m.observe_counts(after + 110 * SEC, &empty).is_empty());
        assert!(m.tick(after + 111 * SEC, &none, &empty).is_empty());
        let changes = m.tick(after + 112 * SEC, &none, &empty);
        assert_eq!(
            closed(&changes),
            [(Kind::AfterHours, site, opened_at, after + 110 * SEC)]
        );
    }

    #[test]
    fn a_tick_opens_only_once_late_frames_could_not_show_a_break() {
        let mut m = monitor();
        let after = CLOSING + 30 * MIN;
        let none = [];
        let three = space("site", 3, None);
        assert!(m.observe_counts(after, &three).is_empty());
        // The hold (60 s) has passed on the wall clock, not a gap beyond.
        assert!(m.tick(after + 60 * SEC, &none, &three).is_empty());
        // A frame captured before that, late, shows a dip: no anomaly was
        // opened to close before it began; the dip is bridged and the
        // frames open it when their hold is done.
        assert!(m
            .observe_counts(after + 59 * SEC + 500, &space("site", 0, None))
            .is_empty());
        let changes = m.observe_counts(after + 60 * SEC, &three);
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        assert_eq!(opened(&changes)[0].kind, Kind::AfterHours);
    }

    #[test]
    fn a_break_when_the_clock_steps_back_begins_again_at_the_new_time() {
        let mut m = monitor();
        let after = CLOSING + 30 * MIN;
        let site = Subject::Space("site".into());
        m.observe_counts(after, &space("site", 3, None));
        let changes = m.observe_counts(after + 60 * SEC, &space("site", 3, None));
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        assert!(m
            .observe_counts(after + 100 * SEC, &space("site", 0, None))
            .is_empty());
        // Stepped back 10 s: the break ends a gap after the new time.
        let back = after + 90 * SEC;
        assert!(m.observe_counts(back, &space("site", 0, None)).is_empty());
        let changes = m.observe_counts(back + SEC, &space("site", 0, None));
        assert_eq!(
            closed(&changes),
            [(Kind::AfterHours, site, after + 60 * SEC, back)]
        );
    }

    #[test]
    fn the_gap_spans_two_frames_of_the_slowest_camera() {
        assert_eq!(count_gap_ms(&config()), COUNT_GAP_MS);
        let mut slow = config();
        slow.cameras[1].analysis_fps = 0.5;
        assert_eq!(count_gap_ms(&slow), 4000);
        // At one frame in two seconds, a dip for one frame is bridged.
        let mut m = Monitor::new(&slow, NOW);
        assert!(m.observe_counts(NOW, &zone(11, 0)).is_empty());
        assert!(m.observe_counts(NOW + 2 * SEC, &zone(10, 0)).is_empty());
        assert!(m.observe_counts(NOW + 4 * SEC, &zone(11, 0)).is_empty());
        let changes = m.observe_counts(NOW + 30 * SEC, &zone(11, 0));
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
    }

    #[test]
    fn after_a_break_not_seen_out_the_clear_level_no_longer_holds() {
        // No hold: a count judged by the clear level would reopen at once.
        let mut config = config();
        config.anomalies.capacity_hold_ms = 0;
        let mut m = Monitor::new(&config, NOW);
        let changes = m.observe_counts(NOW + 30 * SEC, &zone(11, 0));
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        // At the clear level (7) a break begins; the next count, 9, comes
        // when it is over: between clear level and capacity (10) it closes
        // the anomaly, ended at the break, and starts no new hold.
        assert!(m.observe_counts(NOW + 40 * SEC, &zone(7, 0)).is_empty());
        let changes = m.observe_counts(NOW + 50 * SEC, &zone(9, 0));
        assert_eq!(
            closed(&changes),
            [(Kind::OverCapacity, door(), NOW + 30 * SEC, NOW + 40 * SEC)]
        );
        assert!(opened(&changes).is_empty());
        assert!(m.observe_counts(NOW + 90 * SEC, &zone(9, 0)).is_empty());
    }

    #[test]
    fn a_reconfigure_closes_a_removed_rule_in_a_break_when_the_break_began() {
        let mut m = monitor();
        m.observe_counts(NOW, &zone(11, 0));
        let changes = m.observe_counts(NOW + 30 * SEC, &zone(11, 0));
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        assert!(m.observe_counts(NOW + 40 * SEC, &zone(7, 0)).is_empty());
        let mut edited = config();
        edited.cameras[0].zones[0].capacity = None;
        let changes = m.reconfigure(&edited, NOW + 40 * SEC + 500);
        assert_eq!(
            closed(&changes),
            [(Kind::OverCapacity, door(), NOW + 30 * SEC, NOW + 40 * SEC)]
        );
    }

    #[test]
    fn each_wrong_way_crossing_is_an_instant_anomaly() {
        let mut m = monitor();
        // entrance: only in is allowed; entries are fine.
        assert!(m
            .observe_counts(NOW, &line("lobby.entrance", 5, 0))
            .is_empty());
        let changes = m.observe_counts(NOW + SEC, &line("lobby.entrance", 6, 1));
        assert_eq!(changes.len(), 1, "{changes:?}");
        let Change::Instant { at, finding } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(*at, NOW + SEC);
        assert_eq!(
            (
                finding.kind,
                &finding.subject,
                finding.value,
                finding.threshold
            ),
            (
                Kind::WrongWay,
                &Subject::Line("lobby.entrance".into()),
                1.0,
                0.0
            )
        );
        assert!(
            finding.explanation.contains("1 crossing") && finding.explanation.contains("only in"),
            "{}",
            finding.explanation
        );
        // Unchanged: nothing.
        assert!(m
            .observe_counts(NOW + 2 * SEC, &line("lobby.entrance", 9, 1))
            .is_empty());
        // Three more at once: one anomaly of value 3.
        let changes = m.observe_counts(NOW + 3 * SEC, &line("lobby.entrance", 9, 4));
        let found = instants(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(found[0].value, 3.0);
        assert!(found[0].explanation.contains("3 crossings"));
        // exit: only out is allowed, so entries are wrong.
        assert!(m.observe_counts(NOW, &line("lobby.exit", 0, 7)).is_empty());
        let changes = m.observe_counts(NOW + SEC, &line("lobby.exit", 2, 7));
        let found = instants(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(found[0].value, 2.0);
        assert_eq!(found[0].subject, Subject::Line("lobby.exit".into()));
        // A two-way line never raises.
        assert!(m.observe_counts(NOW, &line("lobby.free", 3, 3)).is_empty());
        assert!(m
            .observe_counts(NOW + SEC, &line("lobby.free", 9, 9))
            .is_empty());
    }

    #[test]
    fn stream_loss_counts_from_the_last_frame_or_the_start() {
        let mut m = monitor();
        let none = Signals::default();
        let yard = Subject::Camera("yard".into());
        // yard's limit is 10 s; no frame since the start.
        assert!(m
            .tick(NOW + 10 * SEC, &[("yard".into(), None)], &none)
            .is_empty());
        let changes = m.tick(NOW + 11 * SEC, &[("yard".into(), None)], &none);
        let found = opened(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(
            (
                found[0].kind,
                &found[0].subject,
                found[0].value,
                found[0].threshold
            ),
            (Kind::StreamLoss, &yard, 11.0, 10.0)
        );
        // Still nothing: stays open.
        assert!(m
            .tick(NOW + 20 * SEC, &[("yard".into(), None)], &none)
            .is_empty());
        // A frame arrives: it closes.
        let changes = m.tick(
            NOW + 21 * SEC,
            &[("yard".into(), Some(NOW + 20_500))],
            &none,
        );
        assert_eq!(
            closed(&changes),
            [(Kind::StreamLoss, yard, NOW + 11 * SEC, NOW + 21 * SEC)]
        );
        // lobby's limit is the default 30 s, and a frame time from before
        // the start counts from the start.
        let old = Some(NOW - HOUR);
        assert!(m
            .tick(NOW + 30 * SEC, &[("lobby".into(), old)], &none)
            .is_empty());
        let changes = m.tick(NOW + 31 * SEC, &[("lobby".into(), old)], &none);
        assert_eq!(opened(&changes).len(), 1, "{changes:?}");
        assert_eq!(opened(&changes)[0].threshold, 30.0);
    }

    #[test]
    fn counter_drift_is_checked_once_per_closing() {
        let mut m = monitor();
        // The count is the occupancy too, so people left after closing also
        // raise presence after hours: only the drift instants count here.
        let hall = |count| space("hall", count, Some(count));
        let mut drift = |at, count| -> Vec<Finding> {
            instants(&m.observe_counts(at, &hall(count)))
                .into_iter()
                .cloned()
                .collect()
        };
        // Open, then just closed: too early to judge.
        assert!(drift(NOW, 9).is_empty());
        assert!(drift(CLOSING + 5 * MIN, 9).is_empty());
        assert!(drift(CLOSING + DRIFT_DELAY_MS - 1, 9).is_empty());
        let at = CLOSING + DRIFT_DELAY_MS;
        let found = drift(at, 3);
        assert_eq!(found.len(), 1, "{found:?}");
        let finding = &found[0];
        assert_eq!(
            (
                finding.kind,
                &finding.subject,
                finding.value,
                finding.threshold
            ),
            (Kind::CounterDrift, &Subject::Space("hall".into()), 3.0, 2.0)
        );
        assert_eq!(finding.severity, Severity::Info);
        assert!(
            finding
                .explanation
                .contains("is 3, 15 min after closing time (tolerance 2 after 3 entries)"),
            "{}",
            finding.explanation
        );
        // Once per closing.
        assert!(drift(at + MIN, 3).is_empty());
        assert!(drift(at + 3 * HOUR, 5).is_empty());
        // The next day's closing is checked afresh: at the tolerance, none,
        // and none later that night either.
        let next = at + 24 * HOUR;
        assert!(drift(next, 2).is_empty());
        assert!(drift(next + MIN, 9).is_empty());
        // The day after, above it again: one.
        let found = drift(next + 24 * HOUR + 5 * MIN, 4);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].value, 4.0);
    }

    #[test]
    fn the_drift_tolerance_grows_with_the_days_entries() {
        let config = config();
        let hall = config.spaces.iter().find(|s| s.name == "hall").unwrap();
        let schedule = hall.schedule.as_ref().unwrap();
        assert_eq!(
            (schedule.drift_tolerance, schedule.drift_miss_rate),
            (2, 0.01)
        );
        // While three standard deviations stay below it, the configured
        // tolerance stands.
        assert_eq!(drift_tolerance(schedule, 0), 2);
        assert_eq!(drift_tolerance(schedule, 22), 2);
        assert_eq!(drift_tolerance(schedule, 23), 3);
        // 1500 visitors: 3 x sqrt(2 x 0.01 x 1500) = 16.4.
        assert_eq!(drift_tolerance(schedule, 1500), 17);
        let fixed = SpaceSchedule {
            drift_miss_rate: 0.0,
            ..schedule.clone()
        };
        assert_eq!(drift_tolerance(&fixed, 1500), 2);
        let generous = SpaceSchedule {
            drift_tolerance: 40,
            ..schedule.clone()
        };
        assert_eq!(drift_tolerance(&generous, 1500), 40);
    }

    #[test]
    fn a_busy_days_leftover_is_neither_drift_nor_presence_after_hours() {
        let mut m = monitor();
        let hall = |count, entries| Signals {
            spaces: vec![SpaceSignal {
                name: "hall".into(),
                occupancy: count,
                entrances: Some(EntranceTally { count, entries }),
            }],
            ..Signals::default()
        };
        // 1500 entries: 12 left counted is within what doors that miss 1 %
        // each way leave (tolerance 17), all night long.
        let mut at = CLOSING + DRIFT_DELAY_MS;
        for _ in 0..5 {
            let changes = m.observe_counts(at, &hall(12, 1500));
            assert!(changes.is_empty(), "{changes:?}");
            at += MIN;
        }
        // The same 12 after a quiet day of 20 entries: the next closing
        // raises drift at once, and presence after the hold.
        let next = CLOSING + 24 * HOUR + DRIFT_DELAY_MS;
        let changes = m.observe_counts(next, &hall(12, 20));
        let found = instants(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!((found[0].value, found[0].threshold), (12.0, 2.0));
        let changes = m.observe_counts(next + 2 * MIN, &hall(12, 20));
        let found = opened(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(
            (found[0].kind, found[0].value, found[0].threshold),
            (Kind::AfterHours, 12.0, 3.0)
        );
        // A busy day's count above its tolerance is drift, threshold 17.
        let third = next + 24 * HOUR;
        let changes = m.observe_counts(third, &hall(30, 1500));
        let found = instants(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!((found[0].value, found[0].threshold), (30.0, 17.0));
        assert!(
            found[0]
                .explanation
                .contains("(tolerance 17 after 1500 entries)"),
            "{}",
            found[0].explanation
        );
    }

    #[test]
    fn counter_drift_is_not_judged_on_a_closing_before_the_start() {
        // Started after closing: that closing was not watched.
        let mut m = Monitor::new(&config(), CLOSING + HOUR);
        let changes = m.observe_counts(CLOSING + 2 * HOUR, &space("hall", 0, Some(9)));
        assert!(instants(&changes).is_empty(), "{changes:?}");
    }

    #[test]
    fn counter_drift_is_also_checked_by_the_tick() {
        let mut m = monitor();
        let signals = space("hall", 0, Some(5));
        let changes = m.tick(CLOSING + DRIFT_DELAY_MS + MIN, &[], &signals);
        assert_eq!(instants(&changes).len(), 1, "{changes:?}");
    }

    /// A 64x48 frame: textured (a different texture per `n`), or black.
    fn frame(camera: &str, n: u32, textured: bool, at: UnixMs) -> Frame {
        let (w, h) = (64u32, 48u32);
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = if textured {
                    let block = ((x / 8 + y / 8) % 2) * 150;
                    let noise = (x * 31 + y * 17 + n * 7) % 40;
                    (40 + block + noise) as u8
                } else {
                    0
                };
                rgb.extend([v, v, v]);
            }
        }
        Frame::new(camera.into(), w, h, rgb, at).unwrap()
    }

    /// Learns lobby's view for its 5 s, then covers it until covered.
    fn covered_lobby(m: &mut Monitor) -> (UnixMs, Vec<Change>) {
        let lobby: CameraId = "lobby".into();
        let mut all = Vec::new();
        let mut at = NOW;
        for n in 0..=10 {
            let stats = FrameStats::measure(&frame("lobby", n, true, at));
            all.extend(m.observe_frame(&lobby, at, &stats));
            at += 500;
        }
        assert!(all.is_empty(), "{all:?}");
        for n in 0..20 {
            let stats = FrameStats::measure(&frame("lobby", n, false, at));
            let changes = m.observe_frame(&lobby, at, &stats);
            if !changes.is_empty() {
                return (at, changes);
            }
            at += 500;
        }
        panic!("a black lobby was never reported covered");
    }

    #[test]
    fn a_covered_lens_opens_and_a_rearm_closes_it() {
        let mut m = monitor();
        let lobby: CameraId = "lobby".into();
        let (at, changes) = covered_lobby(&mut m);
        let found = opened(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(found[0].kind, Kind::LensCovered);
        assert_eq!(found[0].subject, Subject::Camera("lobby".into()));
        assert_eq!(found[0].severity, Severity::Critical);
        assert!(
            found[0].explanation.starts_with("camera lobby: "),
            "{}",
            found[0].explanation
        );
        let (armed, changes) = m.rearm(&lobby, at + SEC);
        assert!(armed);
        assert_eq!(
            closed(&changes),
            [(
                Kind::LensCovered,
                Subject::Camera("lobby".into()),
                at,
                at + SEC
            )]
        );
        // Learning again: black frames raise nothing for now.
        let stats = FrameStats::measure(&frame("lobby", 0, false, at + 2 * SEC));
        assert!(m.observe_frame(&lobby, at + 2 * SEC, &stats).is_empty());
        // A second re-arm has nothing to close.
        let (armed, changes) = m.rearm(&lobby, at + 3 * SEC);
        assert!(armed);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_camera_without_tamper_detection_cannot_be_rearmed() {
        let mut m = monitor();
        let (armed, changes) = m.rearm(&"yard".into(), NOW);
        assert!(!armed);
        assert!(changes.is_empty());
        let (armed, _) = m.rearm(&"attic".into(), NOW);
        assert!(!armed);
        // And its frames are not judged.
        let stats = FrameStats::measure(&frame("yard", 0, false, NOW));
        for i in 0..40 {
            assert!(m
                .observe_frame(&"yard".into(), NOW + i * 500, &stats)
                .is_empty());
        }
    }

    #[test]
    fn finish_closes_everything_open() {
        let mut m = monitor();
        m.observe_counts(NOW, &zone(11, 6 * MIN));
        m.observe_counts(NOW + 30 * SEC, &zone(11, 6 * MIN));
        m.tick(
            NOW + 31 * SEC,
            &[("yard".into(), None)],
            &Signals::default(),
        );
        // Pending (not yet held) conditions do not count.
        m.observe_counts(NOW + 31 * SEC, &space("site", 21, None));
        let end = NOW + MIN;
        let mut done = closed(&m.finish(end));
        done.sort();
        assert_eq!(
            done,
            [
                (Kind::OverCapacity, door(), NOW + 30 * SEC, end),
                (Kind::Loitering, door(), NOW, end),
                (
                    Kind::StreamLoss,
                    Subject::Camera("yard".into()),
                    NOW + 31 * SEC,
                    end
                ),
            ]
        );
        assert!(m.finish(end + 1).is_empty());
        // The space's pending hold was forgotten: it needs a full hold again.
        assert!(m
            .observe_counts(NOW + 62 * SEC, &space("site", 21, None))
            .is_empty());
    }

    /// The config with a capacity on yard.gate too (3, clearing at 2).
    fn gated() -> Config {
        let mut c = config();
        for camera in &mut c.cameras {
            for zone in &mut camera.zones {
                if zone.name == "gate" {
                    zone.capacity = Some(3);
                    zone.capacity_clear = Some(2);
                }
            }
        }
        c
    }

    fn door_and_gate(door: u32, gate: u32) -> Signals {
        let signal = |key: &str, occupancy| ZoneSignal {
            key: key.into(),
            occupancy,
            longest_visit_ms: 0,
        };
        Signals {
            zones: vec![signal("lobby.door", door), signal("yard.gate", gate)],
            ..Signals::default()
        }
    }

    #[test]
    fn a_reconfigure_closes_what_a_removed_zone_had_open_and_keeps_the_rest() {
        let mut m = Monitor::new(&gated(), NOW);
        let gate = Subject::Zone("yard.gate".into());
        assert!(m.observe_counts(NOW, &door_and_gate(11, 4)).is_empty());
        let changes = m.observe_counts(NOW + 30 * SEC, &door_and_gate(11, 4));
        assert_eq!(opened(&changes).len(), 2, "{changes:?}");

        // yard.gate is removed: only its anomaly closes, now.
        let mut edited = gated();
        for camera in &mut edited.cameras {
            camera.zones.retain(|z| z.name != "gate");
        }
        let changes = m.reconfigure(&edited, NOW + 40 * SEC);
        assert_eq!(
            changes,
            [Change::Close {
                kind: Kind::OverCapacity,
                subject: gate,
                started: NOW + 30 * SEC,
                ended: NOW + 40 * SEC,
            }]
        );
        // lobby.door stays open; the removed zone's signal is not judged.
        assert!(m
            .observe_counts(NOW + 50 * SEC, &door_and_gate(11, 9))
            .is_empty());

        // A new capacity for lobby.door: still open, judged by the new
        // clear level from the next counts on.
        edited.cameras[0].zones[0].capacity = Some(20);
        edited.cameras[0].zones[0].capacity_clear = Some(15);
        assert!(m.reconfigure(&edited, NOW + 60 * SEC).is_empty());
        assert!(m
            .observe_counts(NOW + 70 * SEC, &door_and_gate(11, 9))
            .is_empty());
        let changes = m.observe_counts(NOW + 71 * SEC, &door_and_gate(11, 9));
        assert_eq!(
            closed(&changes),
            [(Kind::OverCapacity, door(), NOW + 30 * SEC, NOW + 70 * SEC)]
        );
    }

    #[test]
    fn a_reconfigure_closes_what_a_removed_limit_had_open() {
        let mut m = monitor();
        m.observe_counts(NOW, &zone(11, 6 * MIN));
        m.observe_counts(NOW + 30 * SEC, &zone(11, 6 * MIN));
        let mut edited = config();
        edited.cameras[0].zones[0].capacity = None;
        edited.cameras[0].zones[0].loiter_ms = None;
        let mut done = closed(&m.reconfigure(&edited, NOW + MIN));
        done.sort();
        assert_eq!(
            done,
            [
                (Kind::OverCapacity, door(), NOW + 30 * SEC, NOW + MIN),
                (Kind::Loitering, door(), NOW, NOW + MIN),
            ]
        );
        assert!(m
            .observe_counts(NOW + 2 * MIN, &zone(30, 9 * MIN))
            .is_empty());
    }

    #[test]
    fn a_line_made_one_way_raises_from_its_next_crossing_against_it() {
        let mut m = monitor();
        assert!(m.observe_counts(NOW, &line("lobby.free", 3, 3)).is_empty());
        let mut edited = config();
        for line in &mut edited.cameras[0].lines {
            line.one_way = match line.name.as_str() {
                "free" => Some(Way::In),
                "entrance" => None,
                _ => line.one_way,
            };
        }
        assert!(m.reconfigure(&edited, NOW + SEC).is_empty());
        // The exits before the edit were allowed then; entries still are.
        assert!(m
            .observe_counts(NOW + 2 * SEC, &line("lobby.free", 4, 3))
            .is_empty());
        let changes = m.observe_counts(NOW + 3 * SEC, &line("lobby.free", 4, 5));
        let found = instants(&changes);
        assert_eq!(found.len(), 1, "{changes:?}");
        assert_eq!(
            (found[0].kind, &found[0].subject, found[0].value),
            (Kind::WrongWay, &Subject::Line("lobby.free".into()), 2.0)
        );
        // The entrance, two-way now, raises nothing.
        assert!(m
            .observe_counts(NOW + 4 * SEC, &line("lobby.entrance", 0, 3))
            .is_empty());
    }
}
