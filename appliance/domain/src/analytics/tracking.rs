//! Multi-object tracking of person detections, ByteTrack-style: a
//! constant-velocity Kalman filter per track predicts where each person is
//! now; confident detections are matched first, then weak detections may
//! only continue tracks that were matched on the previous frame (a person
//! half hidden keeps their track, a weak false positive starts none).
//! Tracks that lose their detection coast on their prediction for a while,
//! so detector flicker and brief occlusion do not break them.
//!
//! Private to `analytics`: track ids and positions never leave it.

use crate::clock::UnixMs;
use crate::detection::Detection;
use crate::geometry::{BBox, Point};

#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackerParams {
    /// Detections at or above this score are matched first and start tracks.
    pub high_score: f32,
    /// A new track is confirmed after this many matched frames.
    pub confirm_hits: u32,
    /// A confirmed track is dropped after this long without a detection.
    pub max_coast_ms: i64,
}

impl TrackerParams {
    pub fn new(high_score: f32) -> Self {
        Self {
            high_score,
            confirm_hits: 2,
            max_coast_ms: 3_000,
        }
    }
}

/// Position and velocity along one axis with its 2x2 covariance.
#[derive(Debug, Clone, Copy)]
struct Axis {
    pos: f32,
    vel: f32,
    p: [f32; 3], // [var pos, cov pos-vel, var vel]
}

impl Axis {
    fn new(pos: f32, pos_std: f32, vel_std: f32) -> Self {
        Self {
            pos,
            vel: 0.0,
            p: [pos_std * pos_std, 0.0, vel_std * vel_std],
        }
    }

    /// Constant velocity over `dt` seconds, with white-noise acceleration
    /// of standard deviation `accel`.
    fn predict(&mut self, dt: f32, accel: f32) {
        let [p00, p01, p11] = self.p;
        let q = accel * accel;
        self.pos += self.vel * dt;
        self.p = [
            p00 + 2.0 * dt * p01 + dt * dt * p11 + q * dt.powi(4) / 4.0,
            p01 + dt * p11 + q * dt.powi(3) / 2.0,
            p11 + q * dt * dt,
        ];
    }

    fn update(&mut self, measured: f32, noise_std: f32) {
        let [p00, p01, p11] = self.p;
        let s = p00 + noise_std * noise_std;
        let (k0, k1) = (p00 / s, p01 / s);
        let innovation = measured - self.pos;
        self.pos += k0 * innovation;
        self.vel += k1 * innovation;
        self.p = [(1.0 - k0) * p00, (1.0 - k0) * p01, p11 - k1 * p01];
    }
}

/// A person's box as centre, width and height, each filtered.
#[derive(Debug, Clone)]
struct BoxFilter {
    axes: [Axis; 4], // cx, cy, w, h
}

impl BoxFilter {
    fn new(b: &BBox) -> Self {
        let h = b.height().max(1e-3);
        let z = measurement(b);
        Self {
            axes: [
                Axis::new(z[0], 0.05 * h, 0.5 * h),
                Axis::new(z[1], 0.05 * h, 0.5 * h),
                Axis::new(z[2], 0.05 * h, 0.1 * h),
                Axis::new(z[3], 0.05 * h, 0.1 * h),
            ],
        }
    }

    fn predict(&mut self, dt: f32) {
        let h = self.axes[3].pos.max(1e-3);
        // People change pace and direction: about a body height per s².
        for (i, axis) in self.axes.iter_mut().enumerate() {
            axis.predict(dt, if i < 2 { h } else { 0.2 * h });
        }
    }

    fn update(&mut self, b: &BBox) {
        let z = measurement(b);
        let noise = 0.05 * b.height().max(1e-3);
        for (axis, value) in self.axes.iter_mut().zip(z) {
            axis.update(value, noise);
        }
        // Sizes do not move on their own.
        self.axes[2].vel = 0.0;
        self.axes[3].vel = 0.0;
    }

    fn bbox(&self) -> BBox {
        let [cx, cy, w, h] = self.axes.map(|a| a.pos);
        let (w, h) = (w.max(1e-3), h.max(1e-3));
        BBox {
            x1: cx - w / 2.0,
            y1: cy - h / 2.0,
            x2: cx + w / 2.0,
            y2: cy + h / 2.0,
        }
    }
}

fn measurement(b: &BBox) -> [f32; 4] {
    [
        (b.x1 + b.x2) / 2.0,
        (b.y1 + b.y2) / 2.0,
        b.width(),
        b.height(),
    ]
}

#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub id: u64,
    filter: BoxFilter,
    hits: u32,
    last_seen: UnixMs,
    /// Matched to a detection on the latest frame.
    pub matched: bool,
    /// Matched on the frame before (may take a weak detection).
    was_matched: bool,
}

impl Track {
    pub fn confirmed(&self, params: &TrackerParams) -> bool {
        self.hits >= params.confirm_hits
    }

    /// Counted as a person present now: confirmed and matched on this frame,
    /// as ByteTrack outputs. A person missed for a frame or two is carried
    /// by the occupancy median instead, so a coasting duplicate never
    /// inflates a count.
    pub fn present(&self, params: &TrackerParams) -> bool {
        self.matched && self.confirmed(params)
    }

    /// Started on this frame (or, on a tracker's first frame, confirmed at once).
    pub fn just_born(&self) -> bool {
        self.hits == 1
    }

    /// The filtered box.
    pub fn bbox(&self) -> BBox {
        self.filter.bbox()
    }

    /// Where the person stands: the bottom centre of the filtered box.
    pub fn foot_point(&self) -> Point {
        self.filter.bbox().foot_point()
    }
}

pub(crate) struct Tracker {
    params: TrackerParams,
    tracks: Vec<Track>,
    next_id: u64,
    last_at: Option<UnixMs>,
}

/// How well a predicted box and a detection agree; None when they cannot be
/// the same person. Lower is better.
fn match_cost(predicted: &BBox, detected: &BBox, strict: bool) -> Option<f32> {
    let h = predicted.height().max(1e-3);
    let ratio = detected.height() / h;
    if !(0.5..=2.0).contains(&ratio) {
        return None;
    }
    let iou = predicted.iou(detected);
    let (pc, dc) = (measurement(predicted), measurement(detected));
    // Centre distance in body heights: scale-free, and still defined at low
    // frame rates where boxes of a walking person no longer overlap.
    let distance = (pc[0] - dc[0]).hypot(pc[1] - dc[1]) / h;
    let (min_iou, max_distance) = if strict { (0.3, 0.3) } else { (0.1, 0.6) };
    (iou >= min_iou || distance <= max_distance).then_some(distance - iou)
}

/// Greedy assignment by ascending cost: with the tens of people a camera
/// sees, as good as the Hungarian method in practice and far simpler.
fn associate(
    tracks: &[usize],
    dets: &[usize],
    cost: impl Fn(usize, usize) -> Option<f32>,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = tracks
        .iter()
        .flat_map(|&t| {
            let cost = &cost;
            dets.iter().filter_map(move |&d| Some((cost(t, d)?, t, d)))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut used_t, mut used_d) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (_, t, d) in pairs {
        if !used_t.contains(&t) && !used_d.contains(&d) {
            used_t.push(t);
            used_d.push(d);
            out.push((t, d));
        }
    }
    out
}

impl Tracker {
    pub fn new(params: TrackerParams) -> Self {
        Self {
            params,
            tracks: Vec::new(),
            next_id: 0,
            last_at: None,
        }
    }

    pub fn params(&self) -> &TrackerParams {
        &self.params
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// One frame's detections in. Returns the ids of the tracks removed.
    pub fn update(&mut self, at: UnixMs, detections: &[Detection]) -> Vec<u64> {
        // On the very first frame there is no history to wait for: its
        // confident detections are confirmed at once (as in ByteTrack).
        let first_frame = self.last_at.is_none();
        let dt = self
            .last_at
            .map_or(0.0, |last| ((at - last).max(0) as f32) / 1000.0);
        self.last_at = Some(at);
        for track in &mut self.tracks {
            track.filter.predict(dt);
            track.was_matched = track.matched;
            track.matched = false;
        }
        let predicted: Vec<BBox> = self.tracks.iter().map(|t| t.filter.bbox()).collect();
        let (high, low): (Vec<usize>, Vec<usize>) =
            (0..detections.len()).partition(|&i| detections[i].score >= self.params.high_score);

        // First: every track against the confident detections.
        let all: Vec<usize> = (0..self.tracks.len()).collect();
        let first = associate(&all, &high, |t, d| {
            match_cost(&predicted[t], &detections[d].bbox, false)
        });
        // Second: tracks matched last frame against the weak detections.
        let rest: Vec<usize> = all
            .iter()
            .copied()
            .filter(|t| !first.iter().any(|&(ft, _)| ft == *t) && self.tracks[*t].was_matched)
            .collect();
        let second = associate(&rest, &low, |t, d| {
            match_cost(&predicted[t], &detections[d].bbox, true)
        });
        for &(t, d) in first.iter().chain(&second) {
            let track = &mut self.tracks[t];
            track.filter.update(&detections[d].bbox);
            track.hits += 1;
            track.last_seen = at;
            track.matched = true;
        }

        let params = self.params;
        let mut removed = Vec::new();
        self.tracks.retain(|t| {
            // An unconfirmed track must be matched on consecutive frames.
            let keep =
                t.matched || (t.confirmed(&params) && at - t.last_seen <= params.max_coast_ms);
            if !keep {
                removed.push(t.id);
            }
            keep
        });
        for &d in &high {
            if first.iter().any(|&(_, fd)| fd == d) {
                continue;
            }
            let bbox = &detections[d].bbox;
            self.tracks.push(Track {
                id: self.next_id,
                filter: BoxFilter::new(bbox),
                hits: if first_frame { params.confirm_hits } else { 1 },
                last_seen: at,
                matched: true,
                was_matched: false,
            });
            self.next_id += 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::tests::person_scored as person;

    fn confirmed_ids(tracker: &Tracker) -> Vec<u64> {
        let params = *tracker.params();
        tracker
            .tracks()
            .iter()
            .filter(|t| t.confirmed(&params))
            .map(|t| t.id)
            .collect()
    }

    #[test]
    fn a_walker_keeps_one_track_through_flicker_and_weak_detections() {
        let mut tracker = Tracker::new(TrackerParams::new(0.5));
        for i in 0..40 {
            let x = 0.1 + 0.02 * i as f32;
            // Every 5th frame the detector misses; every 3rd it is unsure.
            let dets = match i {
                _ if i % 5 == 4 => vec![],
                _ if i % 3 == 2 => vec![person(x, 0.8, 0.35)],
                _ => vec![person(x, 0.8, 0.9)],
            };
            tracker.update(i * 200, &dets);
        }
        assert_eq!(confirmed_ids(&tracker), [0]);
        let foot = tracker.tracks()[0].foot_point();
        assert!((foot.x - 0.88).abs() < 0.03, "{foot:?}");
    }

    #[test]
    fn weak_detections_alone_start_no_track() {
        let mut tracker = Tracker::new(TrackerParams::new(0.5));
        for i in 0..10 {
            tracker.update(i * 200, &[person(0.5, 0.5, 0.4)]);
        }
        assert!(tracker.tracks().is_empty());
    }

    #[test]
    fn a_single_false_positive_is_never_confirmed() {
        let mut tracker = Tracker::new(TrackerParams::new(0.5));
        tracker.update(0, &[]);
        tracker.update(200, &[person(0.5, 0.5, 0.9)]);
        let removed = tracker.update(400, &[]);
        assert_eq!(removed, [0]);
        assert!(tracker.tracks().is_empty());
    }

    #[test]
    fn two_people_passing_each_other_keep_their_tracks() {
        // At 5 fps, one walks right along y = 0.8 and one left along y = 0.85;
        // the slower detector frames still keep them apart by velocity.
        let mut tracker = Tracker::new(TrackerParams::new(0.5));
        let mut first_id_positions = Vec::new();
        for i in 0..30 {
            let a = 0.2 + 0.02 * i as f32;
            let b = 0.8 - 0.02 * i as f32;
            let mut dets = vec![person(a, 0.8, 0.9)];
            // The one behind is hidden while they overlap.
            if (a - b).abs() > 0.05 {
                dets.push(person(b, 0.85, 0.9));
            }
            tracker.update(i * 200, &dets);
            if let Some(t) = tracker.tracks().iter().find(|t| t.id == 0) {
                first_id_positions.push(t.foot_point().x);
            }
        }
        assert_eq!(confirmed_ids(&tracker), [0, 1]);
        // Track 0 is the one walking right, all the way.
        assert!(first_id_positions.windows(2).all(|w| w[1] > w[0] - 0.01));
        assert!(*first_id_positions.last().unwrap() > 0.7);
    }

    #[test]
    fn a_lost_track_is_dropped_after_its_coast() {
        let mut tracker = Tracker::new(TrackerParams::new(0.5));
        // Confirmed on the first frame: nothing to wait for then.
        tracker.update(0, &[person(0.5, 0.5, 0.9)]);
        assert_eq!(confirmed_ids(&tracker), [0]);
        assert!(tracker.update(3_000, &[]).is_empty());
        assert_eq!(tracker.update(3_300, &[]), [0]);
    }
}
