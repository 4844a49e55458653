//! Counting: people are tracked per camera; from their tracks come zone
//! occupancy (smoothed), line crossings with direction, dwell per zone and
//! the occupancy of spaces; all of it accumulates into minute buckets.
//!
//! Invariant: what leaves this module is counts per zone, line, space and
//! bucket, and dwell histograms. Track ids, positions and per-person times
//! stay private here (`tracking`, `Visit`, `Crossing` are not public).

pub mod adjust;
mod dwell;
mod lines;
mod spaces;
mod tracking;
pub mod validation;
mod zones;

pub use dwell::DwellHistogram;

use crate::clock::UnixMs;
use crate::config::{zone_key, AnalyticsConfig, CameraConfig, Config, LineConfig, ZoneConfig};
use crate::detection::Detection;
use crate::geometry::{BBox, Polygon};
use crate::pixels::frame::CameraId;
use lines::{Direction, LineCounter};
use spaces::SpaceCounter;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use tracking::{Tracker, TrackerParams};
use zones::ZoneState;

pub const BUCKET_MS: i64 = 60_000;

pub fn bucket_start(at: UnixMs) -> UnixMs {
    at.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// What occupancy figures are about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Zone { camera: CameraId, zone: String },
    Space(String),
}

/// What one flush adds to one minute of one zone's or space's occupancy.
/// Storage merges deltas additively, so a restart within a minute never
/// overwrites what was saved.
#[derive(Debug, Clone, PartialEq)]
pub struct OccupancyDelta {
    pub scope: Scope,
    pub bucket_start: UnixMs,
    pub samples: u32,
    pub occupancy_sum: u64,
    pub occupancy_max: u32,
}

/// Entries and exits over one line in one minute. A row with zeros means
/// the camera was watching and nobody crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowDelta {
    pub camera: CameraId,
    pub line: String,
    pub bucket_start: UnixMs,
    pub entries: u32,
    pub exits: u32,
}

/// Visits to one zone that ended in one minute, by duration.
#[derive(Debug, Clone, PartialEq)]
pub struct DwellDelta {
    pub camera: CameraId,
    pub zone: String,
    pub bucket_start: UnixMs,
    pub histogram: DwellHistogram,
}

/// A space's entries minus exits at a moment, and its entries since the
/// last reset: saved with every flush, so a restart does not empty a
/// building that is not empty, nor forget how busy its day has been.
#[derive(Debug, Clone, PartialEq)]
pub struct EntranceCount {
    pub space: String,
    pub count: u32,
    pub entries: u64,
    pub at: UnixMs,
}

/// Everything accumulated between two flushes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deltas {
    pub occupancy: Vec<OccupancyDelta>,
    pub flows: Vec<FlowDelta>,
    pub dwell: Vec<DwellDelta>,
    /// The latest count of each entrance-counted space (replaces, not adds).
    pub entrance_counts: Vec<EntranceCount>,
}

impl Deltas {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn extend(&mut self, other: Deltas) {
        self.occupancy.extend(other.occupancy);
        self.flows.extend(other.flows);
        self.dwell.extend(other.dwell);
        self.entrance_counts.extend(other.entrance_counts);
    }

    pub fn len(&self) -> usize {
        self.occupancy.len() + self.flows.len() + self.dwell.len() + self.entrance_counts.len()
    }
}

#[derive(Debug, Default)]
struct Pending {
    occupancy: BTreeMap<(Scope, UnixMs), (u32, u64, u32)>,
    flows: BTreeMap<(CameraId, String, UnixMs), (u32, u32)>,
    dwell: BTreeMap<(CameraId, String, UnixMs), DwellHistogram>,
}

impl Pending {
    fn occupancy(&mut self, scope: Scope, at: UnixMs, value: u32) {
        let acc = self.occupancy.entry((scope, bucket_start(at))).or_default();
        acc.0 += 1;
        acc.1 += u64::from(value);
        acc.2 = acc.2.max(value);
    }

    fn drain(&mut self) -> Deltas {
        let taken = std::mem::take(self);
        Deltas {
            occupancy: taken
                .occupancy
                .into_iter()
                .map(|((scope, start), (samples, sum, max))| OccupancyDelta {
                    scope,
                    bucket_start: start,
                    samples,
                    occupancy_sum: sum,
                    occupancy_max: max,
                })
                .collect(),
            flows: taken
                .flows
                .into_iter()
                .map(|((camera, line, start), (entries, exits))| FlowDelta {
                    camera,
                    line,
                    bucket_start: start,
                    entries,
                    exits,
                })
                .collect(),
            dwell: taken
                .dwell
                .into_iter()
                .map(|((camera, zone, start), histogram)| DwellDelta {
                    camera,
                    zone,
                    bucket_start: start,
                    histogram,
                })
                .collect(),
            entrance_counts: Vec::new(),
        }
    }
}

/// A frame this much older than its camera's latest means the wall clock
/// stepped back; workers reorder frames by well under a second.
const CLOCK_STEP_BACK_MS: UnixMs = 10_000;

/// One camera's tracker and the zones and lines drawn on its view.
struct CameraAnalytics {
    tracker: Tracker,
    zones: Vec<ZoneState>,
    lines: Vec<LineCounter>,
    /// Persons whose foot point lies in one of these are not tracked.
    exclusions: Vec<Polygon>,
    last_at: Option<UnixMs>,
    /// Typical time between analysed frames: each observation stands for it.
    interval_ms: f64,
}

/// Cumulative figures since start, for `headcount analyze`'s summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub lines: BTreeMap<String, (u64, u64)>,
    pub dwell: BTreeMap<String, DwellHistogram>,
    /// Per zone or space key: (samples, sum, peak).
    pub occupancy: BTreeMap<String, (u64, u64, u32)>,
}

/// A zone as the anomaly rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSignal {
    /// `camera.zone`
    pub key: String,
    pub occupancy: u32,
    /// The longest visit still in progress (0 without one).
    pub longest_visit_ms: i64,
}

/// A space as the anomaly rules see it (once it has a count).
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceSignal {
    pub name: String,
    pub occupancy: u32,
    /// Counted at its entrances: entries minus exits, and entries since
    /// the last reset.
    pub entrances: Option<EntranceTally>,
}

/// A space's entrance count as the drift rule needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntranceTally {
    /// Entries minus exits, never below zero.
    pub count: u32,
    /// Entries since the last reset.
    pub entries: u64,
}

/// A line's crossings since start, per direction.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSignal {
    /// `camera.line`
    pub key: String,
    pub entries: u64,
    pub exits: u64,
}

/// Counts and durations for the anomaly rules (`anomaly::monitor`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub zones: Vec<ZoneSignal>,
    pub spaces: Vec<SpaceSignal>,
    pub lines: Vec<LineSignal>,
}

/// The whole site's counting: one per appliance (or per `analyze` run).
pub struct Analytics {
    cameras: HashMap<CameraId, CameraAnalytics>,
    spaces: Vec<SpaceCounter>,
    /// Latest smoothed occupancy per zone key, for the spaces.
    zone_values: HashMap<String, u32>,
    /// Latest occupancy per space, for the anomaly rules.
    space_values: HashMap<String, u32>,
    board: OccupancyBoard,
    pending: Pending,
    totals: Totals,
    timezone: jiff::tz::TimeZone,
    /// The running settings: zones and lines drawn anew are built with them.
    settings: AnalyticsConfig,
}

impl Analytics {
    pub fn new(config: &Config, board: OccupancyBoard) -> Self {
        let settings = &config.analytics;
        let params = TrackerParams::new(config.detection.person_threshold);
        let cameras = config
            .cameras
            .iter()
            .map(|c| (c.id.clone(), camera_analytics(c, settings, params)))
            .collect();
        let spaces = config
            .spaces
            .iter()
            .map(|s| SpaceCounter::new(s, settings.correction_secs))
            .collect();
        // Every line has totals from the start, zero until someone crosses.
        let lines = config
            .cameras
            .iter()
            .flat_map(|c| c.lines.iter().map(|l| (zone_key(&c.id, &l.name), (0, 0))))
            .collect();
        Self {
            cameras,
            spaces,
            zone_values: HashMap::new(),
            space_values: HashMap::new(),
            board,
            pending: Pending::default(),
            totals: Totals {
                lines,
                ..Totals::default()
            },
            timezone: config.timezone.clone(),
            settings: settings.clone(),
        }
    }

    /// Takes up the zones and lines of each running camera from an edited
    /// `config`; the rest of it (cameras, spaces, settings) is ignored and
    /// stays as running. A running camera missing from `config` is left
    /// with no zones or lines.
    ///
    /// Invariant: nothing counted is lost. Tracks survive, so occupancy
    /// re-derives at the next frame. A zone drawn the same (name and
    /// polygon) keeps its smoothing window and visits in progress; a zone
    /// moved or removed ends its visits now as dwell (as `finish` does)
    /// and a moved one starts afresh. A line drawn the same keeps its
    /// tracks' sides; a line key that stays keeps its totals, a new one
    /// starts at zero, a removed one leaves them. Spaces keep their
    /// entrance counts, and minutes already accumulated (of removed zones
    /// and lines too) stay pending for the next drain.
    pub fn reconfigure(&mut self, config: &Config, now: UnixMs) {
        let mut zone_keys = HashSet::new();
        let mut line_keys = HashSet::new();
        for (camera, cam) in &mut self.cameras {
            let found = config.cameras.iter().find(|c| c.id == *camera);
            let (zones, lines) = found.map_or((&[][..], &[][..]), |c| (&c.zones[..], &c.lines[..]));
            cam.exclusions = found.map(exclusions_of).unwrap_or_default();

            let mut old = std::mem::take(&mut cam.zones);
            for zone in zones {
                let state = match old.iter().position(|z| z.same_as(zone)) {
                    Some(i) => old.swap_remove(i),
                    None => new_zone(camera, zone, &self.settings),
                };
                zone_keys.insert(state.key().to_string());
                cam.zones.push(state);
            }
            // What is left was moved or removed: its visits end here.
            let at = cam.last_at.unwrap_or(now);
            for zone in &mut old {
                let ended = zone.finish(cam.interval_ms);
                record_visits(&mut self.pending, &mut self.totals, camera, zone, at, ended);
            }

            let mut old = std::mem::take(&mut cam.lines);
            for line in lines {
                let counter = match old.iter().position(|l| l.same_as(line)) {
                    Some(i) => old.swap_remove(i),
                    None => new_line(camera, line, &self.settings),
                };
                line_keys.insert(counter.key().to_string());
                cam.lines.push(counter);
            }
        }
        self.zone_values.retain(|key, _| zone_keys.contains(key));
        self.totals.lines.retain(|key, _| line_keys.contains(key));
        for key in line_keys {
            self.totals.lines.entry(key).or_default();
        }
        self.board.reconfigure(config);
    }

    /// One analysed frame of one camera: its person detections (any score
    /// from the detector's low threshold up) at time `at`. A frame older
    /// than the camera's latest is ignored.
    pub fn observe(&mut self, camera: &CameraId, at: UnixMs, persons: &[Detection]) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        match cam.last_at {
            // The wall clock stepped back (NTP, an operator): far more than
            // any reordering. The frames keep counting in the minutes the
            // clock now shows; visits end at the last frame before the step
            // so that no dwell spans it, and tracking starts afresh.
            Some(last) if at < last - CLOCK_STEP_BACK_MS => {
                tracing::warn!(camera = %camera, back_s = (last - at) / 1000, "the wall clock stepped back; tracking restarts");
                cam.restart(camera, last, &mut self.pending, &mut self.totals);
            }
            // Workers analyse a camera's frames in parallel, so one may finish
            // after its successor; tracks and lines need time to run forward.
            Some(last) if at <= last => {
                tracing::debug!(camera = %camera, "frame analysed out of order; skipped by the counting");
                return;
            }
            _ => {}
        }
        if let Some(last) = cam.last_at {
            let step = (at - last).clamp(1, 5_000) as f64;
            cam.interval_ms = 0.8 * cam.interval_ms + 0.2 * step;
        }
        cam.last_at = Some(at);
        let counted: Vec<Detection>;
        let persons = if cam.exclusions.is_empty() {
            persons
        } else {
            counted = persons
                .iter()
                .filter(|p| {
                    !cam.exclusions
                        .iter()
                        .any(|e| e.contains(p.bbox.foot_point()))
                })
                .copied()
                .collect();
            &counted
        };
        let removed = cam.tracker.update(at, persons);
        let params = *cam.tracker.params();

        let mut crossings = Vec::new();
        for line in &mut cam.lines {
            for track in cam.tracker.tracks().iter().filter(|t| t.matched) {
                if let Some(direction) =
                    line.observe(track.id, track.foot_point(), track.confirmed(&params))
                {
                    crossings.push((line.key().to_string(), line.name().to_string(), direction));
                }
            }
            line.forget(&removed);
            self.pending
                .flows
                .entry((camera.clone(), line.name().to_string(), bucket_start(at)))
                .or_default();
        }
        for (key, name, direction) in crossings {
            let flow = self
                .pending
                .flows
                .entry((camera.clone(), name, bucket_start(at)))
                .or_default();
            let total = self.totals.lines.entry(key.clone()).or_default();
            match direction {
                Direction::In => {
                    flow.0 += 1;
                    total.0 += 1;
                }
                Direction::Out => {
                    flow.1 += 1;
                    total.1 += 1;
                }
            }
            self.board.record_line(&key, *total);
            if let Some(day) = local_day(at, &self.timezone) {
                self.board.count_line_today(&key, day, direction);
            }
            for space in &mut self.spaces {
                space.on_crossing(&key, direction);
            }
        }

        for zone in &mut cam.zones {
            let ended = zone.observe(at, cam.tracker.tracks(), &params, &removed, cam.interval_ms);
            record_visits(&mut self.pending, &mut self.totals, camera, zone, at, ended);
            let occupancy = zone.occupancy();
            self.zone_values.insert(zone.key().to_string(), occupancy);
            self.board.record_zone(zone.key(), occupancy, at);
            record_total(&mut self.totals, zone.key(), occupancy);
            self.pending.occupancy(
                Scope::Zone {
                    camera: camera.clone(),
                    zone: zone.name().to_string(),
                },
                at,
                occupancy,
            );
        }
        self.update_spaces(at, Some(camera));
    }

    /// Corrects a space's entrance count by hand at `at` (the live board
    /// shows it at once), once `record` has made the correction durable in
    /// the audit log: a correction the log does not hold is never made
    /// (`record`'s error is returned and nothing changes). A space that
    /// also has zones is corrected by them again if they keep disagreeing
    /// (`correction_secs`).
    pub fn adjust_space(
        &mut self,
        name: &str,
        adjustment: adjust::Adjustment,
        at: UnixMs,
        record: impl FnOnce(adjust::Adjusted) -> Result<(), adjust::AdjustError>,
    ) -> Result<adjust::Adjusted, adjust::AdjustError> {
        let adjusted = self.plan_adjustment(name, adjustment)?;
        record(adjusted)?;
        if let Some(space) = self.spaces.iter_mut().find(|s| s.name() == name) {
            space.set_count(adjusted.after);
        }
        self.space_values.insert(name.to_string(), adjusted.after);
        self.board.record_space(name, adjusted.after, at);
        Ok(adjusted)
    }

    /// What `adjust_space` would do now, changing nothing.
    fn plan_adjustment(
        &self,
        name: &str,
        adjustment: adjust::Adjustment,
    ) -> Result<adjust::Adjusted, adjust::AdjustError> {
        let space = self
            .spaces
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| adjust::AdjustError::UnknownSpace(name.to_string()))?;
        if !space.counts_entrances() {
            return Err(adjust::AdjustError::NotCountedAtEntrances(name.to_string()));
        }
        let before = space.entrance_count();
        let after = adjustment.apply(name, before)?;
        Ok(adjust::Adjusted { before, after })
    }

    /// Daily resets and corrections that are due even when no camera of a
    /// space delivers frames.
    pub fn tick(&mut self, at: UnixMs) {
        self.update_spaces(at, None);
    }

    fn update_spaces(&mut self, at: UnixMs, camera: Option<&CameraId>) {
        // The local time only matters for daily resets.
        let local = self
            .spaces
            .iter()
            .any(SpaceCounter::resets)
            .then(|| jiff::Timestamp::from_millisecond(at).ok())
            .flatten()
            .map(|t| t.to_zoned(self.timezone.clone()).datetime());
        for space in &mut self.spaces {
            let reset = local.is_some_and(|l| space.reset_if_due(l));
            if !reset && !camera.is_some_and(|c| space.watches(c)) {
                continue;
            }
            let occupancy = space.update(at, &self.zone_values);
            self.space_values
                .insert(space.name().to_string(), occupancy);
            self.board.record_space(space.name(), occupancy, at);
            record_total(&mut self.totals, space.name(), occupancy);
            self.pending
                .occupancy(Scope::Space(space.name().to_string()), at, occupancy);
        }
    }

    /// Ends every visit still open (end of a recording) at the last frame.
    pub fn finish(&mut self) {
        for (camera, cam) in &mut self.cameras {
            let Some(at) = cam.last_at else { continue };
            for zone in &mut cam.zones {
                let ended = zone.finish(cam.interval_ms);
                record_visits(&mut self.pending, &mut self.totals, camera, zone, at, ended);
            }
        }
    }

    /// Everything accumulated since the last drain, and the entrance counts
    /// as of the latest frame, for storage.
    pub fn drain(&mut self) -> Deltas {
        let mut deltas = self.pending.drain();
        if let Some(at) = self.cameras.values().filter_map(|c| c.last_at).max() {
            deltas.entrance_counts = self
                .spaces
                .iter()
                .filter(|s| s.counts_entrances())
                .map(|s| EntranceCount {
                    space: s.name().to_string(),
                    count: s.entrance_count(),
                    entries: s.entries(),
                    at,
                })
                .collect();
        }
        deltas
    }

    /// Takes up the entrance counts saved before a restart (those a daily
    /// reset has not made stale since).
    pub fn restore(&mut self, saved: &[EntranceCount], now: UnixMs) {
        let local = |at: UnixMs| {
            jiff::Timestamp::from_millisecond(at)
                .ok()
                .map(|t| t.to_zoned(self.timezone.clone()).datetime())
        };
        let Some(now_local) = local(now) else { return };
        for saved in saved {
            let space = self.spaces.iter_mut().find(|s| s.name() == saved.space);
            if let (Some(space), Some(saved_local)) = (space, local(saved.at)) {
                space.restore(saved.count, saved.entries, saved_local, now_local);
                let count = space.entrance_count();
                self.board.record_space(space.name(), count, now);
                // A space counted at its doors only is judged from now on,
                // before any camera of it delivers a frame (a night with
                // the camera down: drift and presence after hours); one
                // with zones waits for them to correct its door count.
                if space.entrances_only() {
                    self.space_values.insert(space.name().to_string(), count);
                }
            }
        }
    }

    /// What the anomaly rules watch: counts and durations, no identities.
    pub fn signals(&self) -> Signals {
        let zones = self
            .cameras
            .values()
            .flat_map(|c| &c.zones)
            .map(|z| ZoneSignal {
                key: z.key().to_string(),
                occupancy: self.zone_values.get(z.key()).copied().unwrap_or(0),
                longest_visit_ms: z.longest_visit_ms(),
            })
            .collect();
        let spaces = self
            .spaces
            .iter()
            .filter_map(|s| {
                Some(SpaceSignal {
                    name: s.name().to_string(),
                    occupancy: *self.space_values.get(s.name())?,
                    entrances: s.counts_entrances().then(|| EntranceTally {
                        count: s.entrance_count(),
                        entries: s.entries(),
                    }),
                })
            })
            .collect();
        let lines = self
            .totals
            .lines
            .iter()
            .map(|(key, &(entries, exits))| LineSignal {
                key: key.clone(),
                entries,
                exits,
            })
            .collect();
        Signals {
            zones,
            spaces,
            lines,
        }
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// How many people a camera's tracker holds as present now.
    pub fn present(&self, camera: &CameraId) -> u32 {
        self.present_boxes(camera).len() as u32
    }

    /// Where the people the tracker holds present on `camera` are (the
    /// tracks' filtered boxes): what `present` counts.
    pub fn present_boxes(&self, camera: &CameraId) -> Vec<BBox> {
        self.cameras.get(camera).map_or_else(Vec::new, |c| {
            let params = c.tracker.params();
            c.tracker
                .tracks()
                .iter()
                .filter(|t| t.present(params))
                .map(|t| t.bbox())
                .collect()
        })
    }
}

impl CameraAnalytics {
    /// Ends every visit at `last` (the latest frame) as dwell and forgets
    /// every track, zone window and line side: the state after a clock step.
    fn restart(
        &mut self,
        camera: &CameraId,
        last: UnixMs,
        pending: &mut Pending,
        totals: &mut Totals,
    ) {
        for zone in &mut self.zones {
            let ended = zone.restart(self.interval_ms);
            record_visits(pending, totals, camera, zone, last, ended);
        }
        let ids: Vec<u64> = self.tracker.tracks().iter().map(|t| t.id).collect();
        for line in &mut self.lines {
            line.forget(&ids);
        }
        self.tracker = Tracker::new(*self.tracker.params());
        self.last_at = None;
    }
}

/// Adds the durations of visits that ended at `at` to the minute's
/// histogram and to the totals: from here on they are counts in bins.
fn record_visits(
    pending: &mut Pending,
    totals: &mut Totals,
    camera: &CameraId,
    zone: &ZoneState,
    at: UnixMs,
    ended: Vec<f64>,
) {
    if ended.is_empty() {
        return;
    }
    let minute = pending
        .dwell
        .entry((camera.clone(), zone.name().to_string(), bucket_start(at)))
        .or_default();
    let total = totals.dwell.entry(zone.key().to_string()).or_default();
    for seconds in ended {
        minute.add(seconds);
        total.add(seconds);
    }
}

fn record_total(totals: &mut Totals, key: &str, occupancy: u32) {
    let t = totals.occupancy.entry(key.to_string()).or_default();
    t.0 += 1;
    t.1 += u64::from(occupancy);
    t.2 = t.2.max(occupancy);
}

fn camera_analytics(
    camera: &CameraConfig,
    settings: &AnalyticsConfig,
    params: TrackerParams,
) -> CameraAnalytics {
    CameraAnalytics {
        tracker: Tracker::new(params),
        zones: camera
            .zones
            .iter()
            .map(|z| new_zone(&camera.id, z, settings))
            .collect(),
        lines: camera
            .lines
            .iter()
            .map(|l| new_line(&camera.id, l, settings))
            .collect(),
        exclusions: exclusions_of(camera),
        last_at: None,
        interval_ms: 1000.0 / camera.analysis_fps.max(0.1),
    }
}

fn exclusions_of(camera: &CameraConfig) -> Vec<Polygon> {
    camera
        .exclusions
        .iter()
        .map(|e| e.polygon.clone())
        .collect()
}

/// The calendar day `at` falls on in `timezone`.
pub fn local_day(at: UnixMs, timezone: &jiff::tz::TimeZone) -> Option<jiff::civil::Date> {
    jiff::Timestamp::from_millisecond(at)
        .ok()
        .map(|t| t.to_zoned(timezone.clone()).date())
}

fn new_zone(camera: &CameraId, zone: &ZoneConfig, settings: &AnalyticsConfig) -> ZoneState {
    ZoneState::new(
        zone_key(camera, &zone.name),
        zone,
        settings.smoothing_secs,
        settings.dwell_gap_secs,
    )
}

fn new_line(camera: &CameraId, line: &LineConfig, settings: &AnalyticsConfig) -> LineCounter {
    LineCounter::new(zone_key(camera, &line.name), line, settings.line_band)
}

/// Current occupancy of a zone or space, for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOccupancy {
    /// The camera of a zone; None for a space.
    pub camera: Option<CameraId>,
    pub capacity: Option<u32>,
    /// None until the first analysed frame.
    pub occupancy: Option<u32>,
    pub updated_at: Option<UnixMs>,
    /// How a space is counted: `zones`, `entrances` or `entrances+zones`.
    pub method: Option<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardView {
    /// By `camera.zone`.
    pub zones: BTreeMap<String, LiveOccupancy>,
    pub spaces: BTreeMap<String, LiveOccupancy>,
    /// Crossings (in, out) since the appliance started, by `camera.line`;
    /// a line appears at its first crossing. For on-site validation.
    pub lines: BTreeMap<String, (u64, u64)>,
    /// Crossings of the local day (`appliance.timezone`), by `camera.line`:
    /// seeded at start from storage, counted on, restarted at midnight.
    pub lines_today: BTreeMap<String, LineDay>,
}

/// A line's crossings on one local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineDay {
    pub day: jiff::civil::Date,
    pub entries: u64,
    pub exits: u64,
}

impl LineDay {
    /// (entries, exits) on `day`: zero when these are another day's.
    pub fn on(&self, day: jiff::civil::Date) -> (u64, u64) {
        if self.day == day {
            (self.entries, self.exits)
        } else {
            (0, 0)
        }
    }
}

/// Current occupancy of every zone and space, shared with the API.
#[derive(Debug, Clone, Default)]
pub struct OccupancyBoard(Arc<RwLock<BoardView>>);

impl OccupancyBoard {
    pub fn new(config: &Config) -> Self {
        Self(Arc::new(RwLock::new(board_view(config))))
    }

    /// Takes up an edited config's zones and the capacities of its zones
    /// and spaces. Keys that stay keep their latest occupancy and time;
    /// the set of spaces stays the running one, as the counting keeps its
    /// spaces (`Analytics::reconfigure`).
    pub fn reconfigure(&self, config: &Config) {
        let fresh = board_view(config);
        let mut view = self.0.write().unwrap_or_else(|e| e.into_inner());
        let zones = fresh
            .zones
            .into_iter()
            .map(|(key, mut entry)| {
                if let Some(old) = view.zones.get(&key) {
                    entry.occupancy = old.occupancy;
                    entry.updated_at = old.updated_at;
                }
                (key, entry)
            })
            .collect();
        view.zones = zones;
        let lines: std::collections::HashSet<String> = config
            .cameras
            .iter()
            .flat_map(|c| c.lines.iter().map(|l| zone_key(&c.id, &l.name)))
            .collect();
        view.lines_today.retain(|key, _| lines.contains(key));
        for (name, entry) in &mut view.spaces {
            if let Some(space) = fresh.spaces.get(name) {
                entry.capacity = space.capacity;
            }
        }
    }

    fn record(&self, space: bool, key: &str, occupancy: u32, at: UnixMs) {
        let mut view = self.0.write().unwrap_or_else(|e| e.into_inner());
        let map = if space {
            &mut view.spaces
        } else {
            &mut view.zones
        };
        if let Some(entry) = map.get_mut(key) {
            entry.occupancy = Some(occupancy);
            entry.updated_at = Some(at);
        }
    }

    pub fn record_line(&self, key: &str, totals: (u64, u64)) {
        let mut view = self.0.write().unwrap_or_else(|e| e.into_inner());
        view.lines.insert(key.to_string(), totals);
    }

    /// Takes up a line's crossings on `day` counted before this start.
    pub fn seed_line_today(&self, key: &str, day: jiff::civil::Date, entries: u64, exits: u64) {
        let mut view = self.0.write().unwrap_or_else(|e| e.into_inner());
        view.lines_today.insert(
            key.to_string(),
            LineDay {
                day,
                entries,
                exits,
            },
        );
    }

    /// One crossing on local `day`; a new day starts from zero.
    fn count_line_today(&self, key: &str, day: jiff::civil::Date, direction: Direction) {
        let mut view = self.0.write().unwrap_or_else(|e| e.into_inner());
        let entry = view.lines_today.entry(key.to_string()).or_insert(LineDay {
            day,
            entries: 0,
            exits: 0,
        });
        if entry.day != day {
            *entry = LineDay {
                day,
                entries: 0,
                exits: 0,
            };
        }
        match direction {
            Direction::In => entry.entries += 1,
            Direction::Out => entry.exits += 1,
        }
    }

    pub fn record_zone(&self, key: &str, occupancy: u32, at: UnixMs) {
        self.record(false, key, occupancy, at);
    }

    pub fn record_space(&self, name: &str, occupancy: u32, at: UnixMs) {
        self.record(true, name, occupancy, at);
    }

    pub fn snapshot(&self) -> BoardView {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Every zone and space of `config`, with no occupancy yet.
fn board_view(config: &Config) -> BoardView {
    let zones = config
        .cameras
        .iter()
        .flat_map(|c| {
            c.zones.iter().map(move |z| {
                let entry = LiveOccupancy {
                    camera: Some(c.id.clone()),
                    capacity: z.capacity,
                    occupancy: None,
                    updated_at: None,
                    method: None,
                };
                (zone_key(&c.id, &z.name), entry)
            })
        })
        .collect();
    let spaces = config
        .spaces
        .iter()
        .map(|s| {
            let method = match (s.zones.is_empty(), s.entrances.is_empty()) {
                (false, true) => "zones",
                (true, false) => "entrances",
                _ => "entrances+zones",
            };
            let entry = LiveOccupancy {
                camera: None,
                capacity: s.capacity,
                occupancy: None,
                updated_at: None,
                method: Some(method),
            };
            (s.name.clone(), entry)
        })
        .collect();
    BoardView {
        zones,
        spaces,
        lines: BTreeMap::new(),
        lines_today: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests;
