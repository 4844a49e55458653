//! Phase one: the config file as written. Every table denies unknown fields,
//! so a typo is an error, not a silently ignored setting.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppliance {
    pub site: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub database: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub onnxruntime_library: Option<PathBuf>,
    pub timezone: Option<String>,
    pub min_free_mb: Option<u64>,
    /// [latitude, longitude] in degrees (WGS 84), for the fleet's site descriptor.
    pub location: Option<Vec<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub bind: Option<String>,
    pub tls: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub lockout_failures: Option<u32>,
    pub lockout_secs: Option<u64>,
    pub token_burst: Option<u32>,
    pub token_rate: Option<f64>,
    pub hosts: Option<Vec<String>>,
    pub connections: Option<super::connections::RawConnections>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    pub syslog: Option<String>,
}

/// Settings merged into every camera unless the camera sets them itself.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCameraDefaults {
    pub analysis_fps: Option<f64>,
    pub transport: Option<String>,
    pub analysis_width: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCamera {
    pub url: Option<String>,
    pub purpose: Option<String>,
    pub legal_basis: Option<String>,
    pub credentials: Option<RawCredentials>,
    #[serde(flatten)]
    pub overrides: RawCameraDefaults,
    #[serde(default)]
    pub zones: BTreeMap<String, RawZone>,
    #[serde(default)]
    pub lines: BTreeMap<String, RawLine>,
    pub tamper: Option<super::anomaly::RawTamper>,
    /// [x1, y1, x2, y2]: where people are small.
    pub detail: Option<Vec<f64>>,
    /// Privacy masks: blanked before anything looks at the frame.
    #[serde(default)]
    pub masks: BTreeMap<String, RawShape>,
    /// Detection exclusions: persons standing inside are not counted.
    #[serde(default)]
    pub exclusions: BTreeMap<String, RawShape>,
}

/// A named outline with nothing else to it (a mask, an exclusion).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShape {
    pub polygon: Vec<Vec<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub user: String,
    pub password_ref: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub polygon: Vec<Vec<f64>>,
    pub capacity: Option<u32>,
    pub capacity_clear: Option<u32>,
    pub loiter_minutes: Option<f64>,
    pub small_zone_justification: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLine {
    pub points: Vec<Vec<f64>>,
    #[serde(rename = "in")]
    pub in_side: String,
    pub one_way: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpace {
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default)]
    pub entrances: Vec<String>,
    pub capacity: Option<u32>,
    pub capacity_clear: Option<u32>,
    pub reset_at: Option<String>,
    /// Split by `Validator::space_schedule` (two of its keys are not hours).
    pub schedule: Option<toml::Table>,
    pub unusual: Option<super::anomaly::RawUnusual>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetection {
    pub person_threshold: Option<f32>,
    pub person_low_threshold: Option<f32>,
    pub face_threshold: Option<f32>,
    pub person_tiling: Option<bool>,
    pub motion_gate: Option<bool>,
    pub refresh_secs: Option<f64>,
    pub fixture_after_secs: Option<u64>,
    pub crop_to_zones: Option<bool>,
    pub auto_detail: Option<bool>,
    pub workers: Option<usize>,
    pub threads_per_worker: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    pub redaction: Option<crate::pixels::redaction::RedactionMode>,
    pub mask_scale: Option<f32>,
    pub hold_ms: Option<u32>,
    /// Replaced by `hold_ms`: accepted only to name the new key in its error.
    pub hold_frames: Option<toml::Value>,
    pub snapshots: Option<bool>,
    pub detection_deadline_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalytics {
    pub smoothing_secs: Option<f64>,
    pub flush_secs: Option<u64>,
    pub line_band: Option<f64>,
    pub dwell_gap_secs: Option<f64>,
    pub correction_secs: Option<f64>,
}
