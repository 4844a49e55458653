//! Per-camera health, written by ingest and inference, read by the API.
//! Reasons are written by headcount itself and never contain credentials.

use crate::pixels::frame::CameraId;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum CameraState {
    Connecting,
    Streaming,
    /// The camera is being retried; `reason` says what went wrong.
    Failing {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraHealth {
    pub state: CameraState,
    /// When the last frame arrived, on the monotonic clock: a step of the
    /// wall clock never makes a camera look silent or fresh.
    pub last_frame: Option<Instant>,
    /// Frames dropped before inference because analysis was busy (a newer
    /// frame of the camera replaced one still waiting).
    pub frames_dropped: u64,
    pub frames_analysed: u64,
    /// The configured analysis rate, frames per second.
    pub target_fps: f64,
    /// The rate frames were analysed at over the last measured window;
    /// None until a window has passed.
    pub analysed_fps: Option<f64>,
    /// The 99th percentile of the time from a frame's capture to its
    /// count, over the last measured window.
    pub latency_p99_ms: Option<i64>,
    rate: RateWindow,
    /// Frames not counted because detection failed or fell behind its
    /// deadline, and snapshots obscured whole (fail closed).
    pub frames_obscured: u64,
    /// Frames counted without running the person model: the motion gate
    /// found the view unchanged since it last ran.
    pub frames_coasted: u64,
    /// Person-like boxes not counted now: found at one place while nothing
    /// inside them changed for `detection.fixture_after_secs` (`fixtures`).
    pub fixtures: usize,
    pub reconnects: u64,
}

/// Analysed rates are measured over windows of this length.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// A camera analysed below this share of its rate is behind.
const BEHIND_SHARE: f64 = 0.9;

#[derive(Debug, Clone, Default, PartialEq)]
struct RateWindow {
    started: Option<Instant>,
    frames: u64,
    latencies_ms: Vec<i64>,
}

impl CameraHealth {
    /// Counts one analysed frame, at `now`, `latency_ms` after it was
    /// captured.
    pub fn note_analysed(&mut self, now: Instant, latency_ms: i64) {
        self.frames_analysed += 1;
        let started = *self.rate.started.get_or_insert(now);
        self.rate.frames += 1;
        self.rate.latencies_ms.push(latency_ms);
        let elapsed = now.saturating_duration_since(started);
        if elapsed >= RATE_WINDOW {
            // Frames after the window's first, over the time they spanned.
            self.analysed_fps = Some((self.rate.frames - 1) as f64 / elapsed.as_secs_f64());
            let latencies = &mut self.rate.latencies_ms;
            latencies.sort_unstable();
            self.latency_p99_ms = latencies.get(latencies.len() * 99 / 100).copied();
            self.rate = RateWindow {
                started: Some(now),
                frames: 1,
                latencies_ms: Vec::new(),
            };
        }
    }

    /// Whether the camera is analysed clearly below its configured rate
    /// (the box cannot keep up, and every camera is slowed evenly).
    pub fn behind(&self) -> bool {
        self.analysed_fps
            .is_some_and(|fps| fps < self.target_fps * BEHIND_SHARE)
    }

    /// The analysis rate in words, for health: `analysing at 1.2 of 2 fps`.
    pub fn analysis_summary(&self) -> String {
        match self.analysed_fps {
            None => format!("analysing at {} fps (measuring)", self.target_fps),
            Some(fps) if self.behind() => format!(
                "analysing at {fps:.1} of {} fps: the box cannot keep up with its cameras",
                self.target_fps
            ),
            Some(fps) => format!("analysing at {fps:.1} of {} fps", self.target_fps),
        }
    }

    /// Milliseconds since the last frame, None before the first.
    pub fn last_frame_age_ms(&self) -> Option<i64> {
        self.last_frame
            .map(|at| i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX))
    }
}

impl Default for CameraHealth {
    fn default() -> Self {
        Self {
            state: CameraState::Connecting,
            last_frame: None,
            frames_dropped: 0,
            frames_analysed: 0,
            target_fps: 0.0,
            analysed_fps: None,
            latency_p99_ms: None,
            rate: RateWindow::default(),
            frames_obscured: 0,
            frames_coasted: 0,
            fixtures: 0,
            reconnects: 0,
        }
    }
}

/// Shared, cheap to clone. Lock scopes are a few field writes.
#[derive(Debug, Clone, Default)]
pub struct HealthBoard(Arc<Board>);

#[derive(Debug, Default)]
struct Board {
    cameras: RwLock<BTreeMap<CameraId, CameraHealth>>,
    /// The appliance's stages silent for longer than they may be (set by
    /// its supervisor): while any is, the process is not live.
    silent_stages: RwLock<Vec<String>>,
}

impl HealthBoard {
    pub fn new<'a>(cameras: impl IntoIterator<Item = &'a CameraId>) -> Self {
        let map = cameras
            .into_iter()
            .map(|c| (c.clone(), CameraHealth::default()))
            .collect();
        Self(Arc::new(Board {
            cameras: RwLock::new(map),
            silent_stages: RwLock::default(),
        }))
    }

    pub fn update(&self, camera: &CameraId, f: impl FnOnce(&mut CameraHealth)) {
        // A poisoned lock only means a writer panicked mid-update of counters;
        // the data is still usable.
        let mut map = self.0.cameras.write().unwrap_or_else(|e| e.into_inner());
        f(map.entry(camera.clone()).or_default());
    }

    pub fn snapshot(&self) -> BTreeMap<CameraId, CameraHealth> {
        self.0
            .cameras
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_silent_stages(&self, stages: Vec<String>) {
        *self
            .0
            .silent_stages
            .write()
            .unwrap_or_else(|e| e.into_inner()) = stages;
    }

    /// The stages silent for too long; empty while the appliance is live.
    pub fn silent_stages(&self) -> Vec<String> {
        self.0
            .silent_stages
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The database's size and the disk's headroom, measured by the appliance
/// every minute; read by the API (`/api/v1/health`, `/metrics`) and by the
/// storage writer, which refuses new audited reads while the disk is nearly
/// full so that the audit log cannot fill it (counting goes on).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StorageHealth {
    /// The database with its write-ahead log.
    pub database_bytes: u64,
    pub audit_entries: u64,
    /// The audit log's stored fields.
    pub audit_bytes: u64,
    /// Free space on the database's file system; None until measured.
    pub free_bytes: Option<u64>,
    /// Below this much free space the disk counts as nearly full.
    pub min_free_bytes: u64,
}

impl StorageHealth {
    pub fn nearly_full(&self) -> bool {
        self.free_bytes
            .is_some_and(|free| free < self.min_free_bytes)
    }
}

/// The latest `StorageHealth`, shared.
#[derive(Debug, Clone, Default)]
pub struct StorageBoard(Arc<RwLock<StorageHealth>>);

impl StorageBoard {
    pub fn set(&self, health: StorageHealth) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = health;
    }

    pub fn get(&self) -> StorageHealth {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn nearly_full(&self) -> bool {
        self.get().nearly_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analysed_rate_is_measured_per_window_and_says_when_behind() {
        let mut h = CameraHealth {
            target_fps: 2.0,
            ..CameraHealth::default()
        };
        let t0 = Instant::now();
        assert_eq!(h.analysis_summary(), "analysing at 2 fps (measuring)");
        // One frame a second for 12 s: half the configured rate.
        for s in 0..=12 {
            h.note_analysed(t0 + Duration::from_secs(s), 100 + s as i64);
        }
        assert_eq!(h.latency_p99_ms, Some(110), "over the first window");
        assert_eq!(h.frames_analysed, 13);
        assert!((h.analysed_fps.unwrap() - 1.0).abs() < 1e-9);
        assert!(h.behind());
        assert!(h
            .analysis_summary()
            .starts_with("analysing at 1.0 of 2 fps: "));
        // Then at the full rate.
        for i in 1..=40 {
            h.note_analysed(
                t0 + Duration::from_secs(12) + Duration::from_millis(500 * i),
                50,
            );
        }
        assert!(!h.behind(), "{:?}", h.analysed_fps);
        assert_eq!(h.analysis_summary(), "analysing at 2.0 of 2 fps");
    }
}
