//! Per-camera health, written by ingest and inference, read by the API.
//! Reasons are written by headcount itself and never contain credentials.

use crate::pixels::frame::CameraId;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

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
    /// Frames dropped before inference because analysis was busy.
    pub frames_dropped: u64,
    pub frames_analysed: u64,
    /// Frames obscured whole because detection failed or fell behind its
    /// deadline (fail closed).
    pub frames_obscured: u64,
    pub reconnects: u64,
}

impl CameraHealth {
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
            frames_obscured: 0,
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
