//! Anomaly detection: conditions a facilities manager wants to be told
//! about, computed from counts and from in-memory image statistics only.
//! An anomaly names a kind and a subject (zone, space, line or camera) and
//! carries the measured value, the threshold and a short explanation; it
//! never carries an identity, a track id, a position or a pixel.
//!
//! - `tamper`: per-camera image statistics (brightness, contrast,
//!   sharpness, a coarse structure signature, frame-to-frame change)
//!   measured on the raw frame and kept in memory; covered, defocused,
//!   moved and frozen cameras against a learned reference.
//! - `schedule`: weekly opening hours in a time zone, with exception dates.
//! - `baseline`: robust hour-of-week baselines (median and MAD) learned
//!   from stored aggregates, for unusual occupancy and flow.

pub mod baseline;
pub mod monitor;
pub mod tamper;
pub mod unusual;

use crate::clock::UnixMs;
use serde::{Deserialize, Serialize};

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    OverCapacity,
    Loitering,
    AfterHours,
    WrongWay,
    LensCovered,
    Defocused,
    CameraMoved,
    FrozenImage,
    StreamLoss,
    UnusualOccupancy,
    UnusualFlow,
    CounterDrift,
    /// The database's disk has less free space than `appliance.min_free_mb`.
    DiskNearlyFull,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::OverCapacity,
        Kind::Loitering,
        Kind::AfterHours,
        Kind::WrongWay,
        Kind::LensCovered,
        Kind::Defocused,
        Kind::CameraMoved,
        Kind::FrozenImage,
        Kind::StreamLoss,
        Kind::UnusualOccupancy,
        Kind::UnusualFlow,
        Kind::CounterDrift,
        Kind::DiskNearlyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OverCapacity => "over_capacity",
            Kind::Loitering => "loitering",
            Kind::AfterHours => "after_hours",
            Kind::WrongWay => "wrong_way",
            Kind::LensCovered => "lens_covered",
            Kind::Defocused => "defocused",
            Kind::CameraMoved => "camera_moved",
            Kind::FrozenImage => "frozen_image",
            Kind::StreamLoss => "stream_loss",
            Kind::UnusualOccupancy => "unusual_occupancy",
            Kind::UnusualFlow => "unusual_flow",
            Kind::CounterDrift => "counter_drift",
            Kind::DiskNearlyFull => "disk_nearly_full",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What an anomaly is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// `camera.zone`
    Zone(String),
    Space(String),
    /// `camera.line`
    Line(String),
    Camera(String),
    /// The appliance itself (its site's name).
    Appliance(String),
}

impl Subject {
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Zone(_) => "zone",
            Subject::Space(_) => "space",
            Subject::Line(_) => "line",
            Subject::Camera(_) => "camera",
            Subject::Appliance(_) => "appliance",
        }
    }
    pub fn name(&self) -> &str {
        match self {
            Subject::Zone(n)
            | Subject::Space(n)
            | Subject::Line(n)
            | Subject::Camera(n)
            | Subject::Appliance(n) => n,
        }
    }
    pub fn parse(kind: &str, name: &str) -> Option<Subject> {
        let name = name.to_string();
        Some(match kind {
            "zone" => Subject::Zone(name),
            "space" => Subject::Space(name),
            "line" => Subject::Line(name),
            "camera" => Subject::Camera(name),
            "appliance" => Subject::Appliance(name),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A condition as measured: the value against its threshold, and a short
/// explanation in words that names both.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub subject: Subject,
    pub severity: Severity,
    pub value: f64,
    pub threshold: f64,
    pub explanation: String,
}

/// An anomaly as stored and served: `ended_ms` is `None` while it is open;
/// an instant anomaly (a wrong-way crossing, counter drift at closing)
/// starts and ends at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub subject_type: String,
    pub subject: String,
    pub started_ms: UnixMs,
    pub ended_ms: Option<UnixMs>,
    pub severity: Severity,
    pub value: f64,
    pub threshold: f64,
    pub explanation: String,
    pub acknowledged_ms: Option<UnixMs>,
    /// The token name that acknowledged it.
    pub acknowledged_by: Option<String>,
}

/// What happened to an anomaly, as pushed to the webhook and MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Opened,
    Closed,
    Acknowledged,
}

/// One push: sent only once the change is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub site: String,
    pub transition: Transition,
    pub anomaly: Anomaly,
}

/// Requests from the API to the monitor (which runs on the analytics
/// thread): cameras whose tamper reference an admin re-armed.
#[derive(Debug, Clone, Default)]
pub struct Control(std::sync::Arc<std::sync::Mutex<Vec<crate::pixels::frame::CameraId>>>);

impl Control {
    /// Asks for a re-arm; one pending request per camera is enough.
    pub fn rearm(&self, camera: crate::pixels::frame::CameraId) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.contains(&camera) {
            pending.push(camera);
        }
    }

    /// The re-arm requests since the last call.
    pub fn take_rearms(&self) -> Vec<crate::pixels::frame::CameraId> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
