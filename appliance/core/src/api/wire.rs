//! JSON wire types: the API's public contract, kept apart from internal
//! types so that no internal field can reach a response by accident.
//! Every type here is an aggregate or a health figure; none names a person.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Health {
    pub site: String,
    /// `ok` when every camera streams, `degraded` otherwise.
    pub status: &'static str,
    pub cameras: Vec<CameraHealth>,
}

#[derive(Debug, Serialize)]
pub struct CameraHealth {
    pub camera: String,
    /// `connecting`, `streaming` or `failing`.
    pub state: &'static str,
    pub reason: Option<String>,
    pub last_frame_age_ms: Option<i64>,
    pub frames_analysed: u64,
    pub frames_dropped: u64,
    pub frames_obscured: u64,
    pub reconnects: u64,
}

#[derive(Debug, Serialize)]
pub struct Occupancy {
    pub at: String,
    pub zones: Vec<ZoneOccupancy>,
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
    pub zone: String,
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
pub struct Error {
    pub error: String,
}
