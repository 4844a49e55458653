//! The latest redacted frame of each camera, for calibration snapshots.
//!
//! It holds `RedactedFrame`s only, so the snapshot endpoint cannot serve a
//! raw frame. It is empty and refuses frames unless snapshots are enabled
//! in the config, so by default no pixel is kept at all. A snapshot is
//! taken every `SNAPSHOT_EVERY_MS` per camera: only that frame is searched
//! for faces and redacted (`due`), no other live frame's pixels leave
//! inference.

use crate::clock::UnixMs;
use crate::pixels::frame::CameraId;
use crate::pixels::redaction::RedactedFrame;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How often a camera's snapshot is renewed, in frame time.
pub const SNAPSHOT_EVERY_MS: i64 = 2000;

#[derive(Clone, Default)]
pub struct SnapshotBoard {
    enabled: bool,
    latest: Arc<Mutex<HashMap<CameraId, Arc<RedactedFrame>>>>,
}

impl SnapshotBoard {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            latest: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the camera's frame taken at `at` is to be its next snapshot:
    /// snapshots are on and the latest is older than `SNAPSHOT_EVERY_MS`.
    pub fn due(&self, camera: &CameraId, at: UnixMs) -> bool {
        self.enabled
            && self
                .lock()
                .get(camera)
                .is_none_or(|latest| (at - latest.timestamp_ms()).abs() >= SNAPSHOT_EVERY_MS)
    }

    /// Keeps `frame` as its camera's latest; a no-op when disabled.
    pub fn publish(&self, frame: RedactedFrame) {
        if self.enabled {
            self.lock().insert(frame.camera().clone(), Arc::new(frame));
        }
    }

    pub fn latest(&self, camera: &str) -> Option<Arc<RedactedFrame>> {
        self.lock().get(camera).cloned()
    }

    /// How many snapshots are held now.
    pub fn held(&self) -> usize {
        self.lock().len()
    }

    /// Drops every snapshot taken before `before` (the snapshot retention
    /// limit: a camera that stopped must not leave its last frame forever).
    pub fn expire(&self, before: crate::clock::UnixMs) -> usize {
        let mut latest = self.lock();
        let held = latest.len();
        latest.retain(|_, frame| frame.timestamp_ms() >= before);
        held - latest.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CameraId, Arc<RedactedFrame>>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}
