//! One zone of one camera: how many tracked people stand in it (the median
//! over a short window, so one missed or spurious frame does not move it)
//! and how long each visit lasts. A visit survives its person stepping out
//! or going unseen for up to the gap, and a new track that starts near
//! where a lost or coasting track was last seen takes over its visit: track
//! breaks do not split visits.

use super::tracking::{Track, TrackerParams};
use crate::clock::UnixMs;
use crate::config::ZoneConfig;
use crate::geometry::{Point, Polygon};
use std::collections::{HashMap, VecDeque};

/// How far (fraction of the frame) a new track may start from where a lost
/// one was last seen and still continue its visit.
const RESUME_DISTANCE: f32 = 0.08;

#[derive(Debug, Clone)]
struct Visit {
    entered: UnixMs,
    last_inside: UnixMs,
    last_foot: Point,
    /// Only visits of confirmed tracks are counted.
    confirmed: bool,
}

impl Visit {
    fn seconds(&self, interval_ms: f64) -> f64 {
        // Each observation stands for one analysis interval.
        ((self.last_inside - self.entered) as f64 + interval_ms) / 1000.0
    }
}

pub(super) struct ZoneState {
    key: String,
    name: String,
    polygon: Polygon,
    window_ms: i64,
    gap_ms: i64,
    recent: VecDeque<(UnixMs, u32)>,
    visits: HashMap<u64, Visit>,
    /// Visits whose track was lost, waiting for the gap to pass or for a
    /// new track to take them over.
    orphans: Vec<Visit>,
}

impl ZoneState {
    pub fn new(key: String, zone: &ZoneConfig, smoothing_secs: f64, gap_secs: f64) -> Self {
        Self {
            key,
            name: zone.name.clone(),
            polygon: zone.polygon.clone(),
            window_ms: (smoothing_secs * 1000.0) as i64,
            gap_ms: (gap_secs * 1000.0) as i64,
            recent: VecDeque::new(),
            visits: HashMap::new(),
            orphans: Vec::new(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `zone` draws this very zone (name and polygon; capacity and
    /// the anomaly limits do not shape it), so its state may be kept.
    pub fn same_as(&self, zone: &ZoneConfig) -> bool {
        self.name == zone.name && self.polygon == zone.polygon
    }

    /// Updates with the tracks after a frame at `at`; returns the durations
    /// (seconds) of the visits that ended.
    pub fn observe(
        &mut self,
        at: UnixMs,
        tracks: &[Track],
        params: &TrackerParams,
        removed: &[u64],
        interval_ms: f64,
    ) -> Vec<f64> {
        for id in removed {
            if let Some(visit) = self.visits.remove(id) {
                self.orphans.push(visit);
            }
        }
        let mut present = 0;
        for track in tracks {
            let foot = track.foot_point();
            let inside = self.polygon.contains(foot);
            let confirmed = track.confirmed(params);
            if inside && track.present(params) {
                present += 1;
            }
            if !(track.matched && inside) {
                continue;
            }
            let visit = match self.visits.remove(&track.id) {
                Some(v) => v,
                None => self
                    .resume_orphan(at, foot)
                    .or_else(|| {
                        track
                            .just_born()
                            .then(|| self.take_from_coasting(at, foot, tracks))
                            .flatten()
                    })
                    .unwrap_or(Visit {
                        entered: at,
                        last_inside: at,
                        last_foot: foot,
                        confirmed,
                    }),
            };
            self.visits.insert(
                track.id,
                Visit {
                    last_inside: at,
                    last_foot: foot,
                    confirmed: visit.confirmed || confirmed,
                    ..visit
                },
            );
        }

        let gap = self.gap_ms;
        let mut ended = Vec::new();
        self.visits.retain(|_, v| {
            let open = at - v.last_inside <= gap;
            if !open && v.confirmed {
                ended.push(v.seconds(interval_ms));
            }
            open
        });
        self.orphans.retain(|v| {
            let open = at - v.last_inside <= gap;
            if !open && v.confirmed {
                ended.push(v.seconds(interval_ms));
            }
            open
        });

        self.recent.push_back((at, present));
        while self
            .recent
            .front()
            .is_some_and(|&(t, _)| t < at - self.window_ms)
        {
            self.recent.pop_front();
        }
        ended
    }

    /// The closest orphaned visit near `foot`, if any.
    fn resume_orphan(&mut self, at: UnixMs, foot: Point) -> Option<Visit> {
        let distance = |v: &Visit| (v.last_foot.x - foot.x).hypot(v.last_foot.y - foot.y);
        let best = self
            .orphans
            .iter()
            .enumerate()
            .filter(|(_, v)| at - v.last_inside <= self.gap_ms && distance(v) <= RESUME_DISTANCE)
            .min_by(|a, b| distance(a.1).total_cmp(&distance(b.1)))
            .map(|(i, _)| i)?;
        Some(self.orphans.swap_remove(best))
    }

    /// The visit of the nearest track that lost its detection near `foot`:
    /// a track born there is most likely the same person, re-found.
    fn take_from_coasting(&mut self, at: UnixMs, foot: Point, tracks: &[Track]) -> Option<Visit> {
        let distance = |v: &Visit| (v.last_foot.x - foot.x).hypot(v.last_foot.y - foot.y);
        let coasting = |id: &u64| tracks.iter().any(|t| t.id == *id && !t.matched);
        let id = self
            .visits
            .iter()
            .filter(|(id, v)| {
                coasting(id) && at - v.last_inside <= self.gap_ms && distance(v) <= RESUME_DISTANCE
            })
            .min_by(|a, b| distance(a.1).total_cmp(&distance(b.1)))
            .map(|(&id, _)| id)?;
        self.visits.remove(&id)
    }

    /// Ends every open visit (the end of a recording).
    pub fn finish(&mut self, interval_ms: f64) -> Vec<f64> {
        self.visits
            .drain()
            .map(|(_, v)| v)
            .chain(self.orphans.drain(..))
            .filter(|v| v.confirmed)
            .map(|v| v.seconds(interval_ms))
            .collect()
    }

    /// Ends every visit (as `finish` does) and empties the smoothing
    /// window, whose times a clock step has made meaningless.
    pub fn restart(&mut self, interval_ms: f64) -> Vec<f64> {
        self.recent.clear();
        self.finish(interval_ms)
    }

    /// How long the longest confirmed visit still in progress has lasted
    /// (0 without one): a duration only, for the loitering rule.
    pub fn longest_visit_ms(&self) -> i64 {
        self.visits
            .values()
            .chain(&self.orphans)
            .filter(|v| v.confirmed)
            .map(|v| v.last_inside - v.entered)
            .max()
            .unwrap_or(0)
    }

    /// Median of the window's counts. With an even number of samples, the
    /// upper middle value.
    pub fn occupancy(&self) -> u32 {
        let mut counts: Vec<u32> = self.recent.iter().map(|&(_, c)| c).collect();
        counts.sort_unstable();
        counts.get(counts.len() / 2).copied().unwrap_or(0)
    }
}
