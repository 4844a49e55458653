//! Counting: occupancy per zone from person foot points, smoothed over a
//! short window, and accumulated into per-minute buckets for storage.
//!
//! Invariant: what leaves this module is counts per zone and per bucket.
//! No box, position or per-person time is kept or handed on.

use crate::clock::UnixMs;
use crate::config::{zone_key, CameraConfig};
use crate::detection::Detection;
use crate::frame::CameraId;
use crate::geometry::Polygon;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

pub const BUCKET_MS: i64 = 60_000;

/// The smoothed occupancy of one zone at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSample {
    pub camera: CameraId,
    pub zone: String,
    pub at: UnixMs,
    pub occupancy: u32,
}

struct ZoneWindow {
    name: String,
    polygon: Polygon,
    recent: VecDeque<(UnixMs, u32)>,
}

/// Counts the people of one camera per zone.
pub struct ZoneCounter {
    camera: CameraId,
    zones: Vec<ZoneWindow>,
    window_ms: i64,
}

impl ZoneCounter {
    pub fn new(camera: &CameraConfig, smoothing_secs: f64) -> Self {
        let zones = camera
            .zones
            .iter()
            .map(|z| ZoneWindow {
                name: z.name.clone(),
                polygon: z.polygon.clone(),
                recent: VecDeque::new(),
            })
            .collect();
        Self {
            camera: camera.id.clone(),
            zones,
            window_ms: (smoothing_secs * 1000.0) as i64,
        }
    }

    /// One analysed frame's persons in, one smoothed sample per zone out.
    pub fn observe(&mut self, at: UnixMs, persons: &[Detection]) -> Vec<ZoneSample> {
        let feet: Vec<_> = persons.iter().map(|p| p.bbox.foot_point()).collect();
        self.zones
            .iter_mut()
            .map(|zone| {
                let count = feet.iter().filter(|&&f| zone.polygon.contains(f)).count() as u32;
                zone.recent.push_back((at, count));
                while zone
                    .recent
                    .front()
                    .is_some_and(|&(t, _)| t < at - self.window_ms)
                {
                    zone.recent.pop_front();
                }
                ZoneSample {
                    camera: self.camera.clone(),
                    zone: zone.name.clone(),
                    at,
                    occupancy: median(&zone.recent),
                }
            })
            .collect()
    }
}

/// Median of the window's counts: one missed or spurious detection does not
/// move it. With an even number of samples, the upper middle value.
fn median(window: &VecDeque<(UnixMs, u32)>) -> u32 {
    let mut counts: Vec<u32> = window.iter().map(|&(_, c)| c).collect();
    counts.sort_unstable();
    counts.get(counts.len() / 2).copied().unwrap_or(0)
}

/// Current occupancy of each zone, keyed `camera.zone`, for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneOccupancy {
    pub camera: CameraId,
    pub zone: String,
    pub capacity: Option<u32>,
    /// None until the first analysed frame.
    pub occupancy: Option<u32>,
    pub updated_at: Option<UnixMs>,
}

#[derive(Debug, Clone, Default)]
pub struct OccupancyBoard(Arc<RwLock<BTreeMap<String, ZoneOccupancy>>>);

impl OccupancyBoard {
    pub fn new(cameras: &[CameraConfig]) -> Self {
        let map = cameras
            .iter()
            .flat_map(|c| {
                c.zones.iter().map(move |z| {
                    let entry = ZoneOccupancy {
                        camera: c.id.clone(),
                        zone: z.name.clone(),
                        capacity: z.capacity,
                        occupancy: None,
                        updated_at: None,
                    };
                    (zone_key(&c.id, &z.name), entry)
                })
            })
            .collect();
        Self(Arc::new(RwLock::new(map)))
    }

    pub fn record(&self, sample: &ZoneSample) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(z) = map.get_mut(&zone_key(&sample.camera, &sample.zone)) {
            z.occupancy = Some(sample.occupancy);
            z.updated_at = Some(sample.at);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, ZoneOccupancy> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What one flush adds to one minute bucket. Storage merges deltas
/// additively, so a restart within a minute never overwrites what was saved.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketDelta {
    pub camera: CameraId,
    pub zone: String,
    pub bucket_start: UnixMs,
    pub samples: u32,
    pub occupancy_sum: u64,
    pub occupancy_max: u32,
}

/// Accumulates samples into minute buckets between flushes.
#[derive(Debug, Default)]
pub struct MinuteAggregator {
    pending: BTreeMap<(CameraId, String, UnixMs), BucketDelta>,
}

pub fn bucket_start(at: UnixMs) -> UnixMs {
    at.div_euclid(BUCKET_MS) * BUCKET_MS
}

impl MinuteAggregator {
    pub fn add(&mut self, s: &ZoneSample) {
        let start = bucket_start(s.at);
        let delta = self
            .pending
            .entry((s.camera.clone(), s.zone.clone(), start))
            .or_insert_with(|| BucketDelta {
                camera: s.camera.clone(),
                zone: s.zone.clone(),
                bucket_start: start,
                samples: 0,
                occupancy_sum: 0,
                occupancy_max: 0,
            });
        delta.samples += 1;
        delta.occupancy_sum += s.occupancy as u64;
        delta.occupancy_max = delta.occupancy_max.max(s.occupancy);
    }

    /// Everything accumulated since the last drain.
    pub fn drain(&mut self) -> Vec<BucketDelta> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, ZoneConfig};
    use crate::geometry::{BBox, Point};

    fn camera() -> CameraConfig {
        let square = |x0: f32, x1: f32| {
            Polygon::new(vec![
                Point { x: x0, y: 0.0 },
                Point { x: x1, y: 0.0 },
                Point { x: x1, y: 1.0 },
                Point { x: x0, y: 1.0 },
            ])
        };
        CameraConfig {
            id: "cam".into(),
            source: Source::TestPattern {
                pattern: "ball".into(),
            },
            purpose: None,
            analysis_fps: 2.0,
            analysis_width: 640,
            zones: vec![
                ZoneConfig {
                    name: "left".into(),
                    polygon: square(0.0, 0.5),
                    capacity: Some(2),
                },
                ZoneConfig {
                    name: "right".into(),
                    polygon: square(0.5, 1.0),
                    capacity: None,
                },
            ],
        }
    }

    /// A person standing with feet at (x, y).
    fn person_at(x: f32, y: f32) -> Detection {
        Detection {
            bbox: BBox {
                x1: x - 0.02,
                y1: y - 0.2,
                x2: x + 0.02,
                y2: y,
            },
            score: 0.9,
        }
    }

    #[test]
    fn zones_count_feet_not_boxes() {
        let mut counter = ZoneCounter::new(&camera(), 0.0);
        // The box of the third person reaches into the left zone, but its feet are right.
        let persons = [
            person_at(0.1, 0.9),
            person_at(0.3, 0.5),
            person_at(0.52, 0.8),
        ];
        let out: Vec<(String, u32)> = counter
            .observe(0, &persons)
            .into_iter()
            .map(|s| (s.zone, s.occupancy))
            .collect();
        assert_eq!(out, [("left".to_string(), 2), ("right".to_string(), 1)]);
    }

    #[test]
    fn smoothing_is_a_median_over_the_window() {
        // (time ms, persons in left zone) -> smoothed left occupancy, window 2 s
        let table: &[(i64, usize, u32)] = &[
            (0, 3, 3),
            (500, 3, 3),
            (1000, 0, 3),
            (1500, 3, 3),
            (2000, 1, 3),
            (2500, 1, 1),
            (3000, 1, 1),
            (5000, 0, 1),
            (5500, 0, 0),
        ];
        let mut counter = ZoneCounter::new(&camera(), 2.0);
        for &(t, n, expected) in table {
            let persons: Vec<_> = (0..n)
                .map(|i| person_at(0.1 + 0.05 * i as f32, 0.5))
                .collect();
            let left = &counter.observe(t, &persons)[0];
            assert_eq!(left.occupancy, expected, "at {t} ms with {n} persons");
        }
    }

    #[test]
    fn minute_buckets_accumulate_and_drain() {
        let mut agg = MinuteAggregator::default();
        let sample = |at: i64, occupancy: u32| ZoneSample {
            camera: "cam".into(),
            zone: "left".into(),
            at,
            occupancy,
        };
        for (at, occ) in [(60_000, 2), (60_500, 4), (119_999, 3), (120_000, 1)] {
            agg.add(&sample(at, occ));
        }
        let out = agg.drain();
        assert_eq!(out.len(), 2);
        assert_eq!(
            (
                out[0].bucket_start,
                out[0].samples,
                out[0].occupancy_sum,
                out[0].occupancy_max
            ),
            (60_000, 3, 9, 4)
        );
        assert_eq!(
            (
                out[1].bucket_start,
                out[1].samples,
                out[1].occupancy_sum,
                out[1].occupancy_max
            ),
            (120_000, 1, 1, 1)
        );
        assert!(agg.is_empty() && agg.drain().is_empty());
        assert_eq!(bucket_start(-1), -60_000);
    }
}
