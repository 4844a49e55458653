//! JSON wire types: the API's public contract, kept apart from internal
//! types so that no internal field can reach a response by accident.
//! Every type here is an aggregate or a health figure; none names a person.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Health {
    pub site: String,
    /// `ok` when every camera streams and the disk has its headroom,
    /// `degraded` otherwise.
    pub status: &'static str,
    pub cameras: Vec<CameraHealth>,
    pub storage: StorageHealth,
}

/// The database's size and the disk's headroom, as last measured (every
/// minute; the audit log's size with each hourly sweep).
#[derive(Debug, Serialize)]
pub struct StorageHealth {
    pub database_bytes: u64,
    pub audit_entries: u64,
    pub audit_bytes: u64,
    /// Null until measured.
    pub free_bytes: Option<u64>,
    pub min_free_bytes: u64,
    /// Below `min_free_bytes`: new reads are refused (an admin's excepted).
    pub nearly_full: bool,
}

#[derive(Debug, Serialize)]
pub struct CameraHealth {
    pub camera: String,
    /// `connecting` (never streamed yet), `streaming`, `reconnecting`
    /// (streamed within the last minute, being retried) or `failing`.
    pub state: &'static str,
    pub reason: Option<String>,
    pub last_frame_age_ms: Option<i64>,
    pub frames_analysed: u64,
    pub frames_dropped: u64,
    pub frames_obscured: u64,
    /// Frames counted without the person model: the view had not moved.
    pub frames_coasted: u64,
    /// Person-like boxes not counted now: still at one place, nothing
    /// inside them changing, for `detection.fixture_after_secs` (a sign).
    pub fixtures: usize,
    pub reconnects: u64,
    /// The configured analysis rate.
    pub analysis_fps: f64,
    /// The rate measured over the last window; null until measured.
    pub analysed_fps: Option<f64>,
    /// True when the camera is analysed clearly below its rate (the box
    /// cannot keep up; every camera is slowed evenly).
    pub behind: bool,
    /// In words: `analysing at 1.2 of 2 fps: ...`.
    pub analysis: String,
}

#[derive(Debug, Serialize)]
pub struct Occupancy {
    pub at: String,
    pub zones: Vec<ZoneOccupancy>,
    pub spaces: Vec<SpaceOccupancy>,
}

#[derive(Debug, Serialize)]
pub struct SpaceOccupancy {
    pub space: String,
    /// `zones` (sum of its zones), `entrances` (entries minus exits) or
    /// `entrances+zones` (entries minus exits, corrected by the zones).
    pub method: &'static str,
    pub occupancy: Option<u32>,
    pub capacity: Option<u32>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ZoneOccupancy {
    /// `camera.zone`
    pub zone: String,
    pub camera: String,
    /// None until the zone's camera has delivered an analysed frame.
    pub occupancy: Option<u32>,
    pub capacity: Option<u32>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OccupancyHistory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    pub from: String,
    pub to: String,
    pub bucket: &'static str,
    pub buckets: Vec<OccupancyBucket>,
}

#[derive(Debug, Serialize)]
pub struct OccupancyBucket {
    pub start: String,
    pub mean_occupancy: f64,
    pub max_occupancy: u32,
    pub samples: u32,
}

#[derive(Debug, Serialize)]
pub struct Flow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    pub from: String,
    pub to: String,
    pub bucket: &'static str,
    /// Only buckets in which the line was watched.
    pub buckets: Vec<FlowBucket>,
    pub entries: u64,
    pub exits: u64,
}

#[derive(Debug, Serialize)]
pub struct FlowBucket {
    pub start: String,
    pub entries: u32,
    pub exits: u32,
}

#[derive(Debug, Serialize)]
pub struct Dwell {
    pub zone: String,
    pub from: String,
    pub to: String,
    pub bucket: &'static str,
    /// Visits by the bucket in which they ended; only buckets with visits.
    pub buckets: Vec<DwellBucket>,
    pub visits: u64,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DwellBucket {
    pub start: String,
    pub visits: u64,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Error {
    pub error: String,
}

/// The caller's own token, as `GET /api/v1/whoami` shows it.
#[derive(Debug, Serialize)]
pub struct WhoAmI {
    pub name: String,
    /// How the audit log and the security events name this token.
    pub pseudonym: String,
    pub role: &'static str,
    pub expires_at: Option<String>,
}

/// What the dashboard lays itself out from.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub site: String,
    /// IANA name of the site's time zone.
    pub timezone: String,
    /// Local midnight of today, in UTC.
    pub today_start: String,
    /// Whether redacted calibration snapshots are served (zone editor).
    pub snapshots: bool,
    pub cameras: Vec<String>,
    pub zones: Vec<DashboardZone>,
    pub spaces: Vec<DashboardSpace>,
    pub lines: Vec<DashboardLine>,
}

#[derive(Debug, Serialize)]
pub struct DashboardZone {
    pub zone: String,
    pub camera: String,
    pub capacity: Option<u32>,
    /// The bucket today's chart reads: 15m for a zone below k people.
    pub history_bucket: &'static str,
}

#[derive(Debug, Serialize)]
pub struct DashboardSpace {
    pub space: String,
    pub capacity: Option<u32>,
    pub method: &'static str,
}

#[derive(Debug, Serialize)]
pub struct DashboardLine {
    pub line: String,
    pub camera: String,
}

/// Mean occupancy per local hour of the week.
#[derive(Debug, Serialize)]
pub struct Heatmap {
    pub zone: Option<String>,
    pub space: Option<String>,
    pub timezone: String,
    pub weeks: u32,
    pub from: String,
    pub to: String,
    /// Only the hours with data.
    pub cells: Vec<HeatmapCell>,
}

#[derive(Debug, Serialize)]
pub struct HeatmapCell {
    /// 0 = Monday.
    pub day: u8,
    pub hour: u8,
    pub mean_occupancy: f64,
    pub max_occupancy: u32,
    pub samples: u64,
}
