//! The local HTTP API (axum). One `router()` over an `AppState`; error kinds
//! map to HTTP status in exactly one place (`ApiError::into_response`).

pub mod wire;

use crate::analytics::OccupancyBoard;
use crate::clock::{Clock, UnixMs};
use crate::health::{CameraState, HealthBoard};
use crate::redaction::StillFormat;
use crate::snapshot::SnapshotBoard;
use crate::storage::Database;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// The longest history one request may ask for.
const MAX_HISTORY_MS: i64 = 31 * 24 * 3_600_000;
const DEFAULT_HISTORY_MS: i64 = 3_600_000;

#[derive(Clone)]
pub struct AppState {
    pub site: String,
    pub occupancy: OccupancyBoard,
    pub health: HealthBoard,
    pub database: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub snapshots: SnapshotBoard,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/occupancy", get(occupancy))
        .route("/api/v1/occupancy/history", get(occupancy_history))
        .route("/api/v1/cameras/{camera}/snapshot", get(snapshot))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
}

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Forbidden(String),
    Unavailable(String),
    /// Logged in full; the client only learns that it happened.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_string(),
                )
            }
        };
        (status, Json(wire::Error { error: message })).into_response()
    }
}

fn rfc3339(ms: UnixMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn parse_time(name: &str, value: &str) -> Result<UnixMs, ApiError> {
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time such as 2026-01-31T08:00:00Z"
            ))
        })
}

async fn health(State(state): State<AppState>) -> Json<wire::Health> {
    let now = state.clock.now_ms();
    let cameras: Vec<wire::CameraHealth> = state
        .health
        .snapshot()
        .into_iter()
        .map(|(camera, h)| {
            let (label, reason) = match h.state {
                CameraState::Connecting => ("connecting", None),
                CameraState::Streaming => ("streaming", None),
                CameraState::Failing { reason } => ("failing", Some(reason)),
            };
            wire::CameraHealth {
                camera: camera.to_string(),
                state: label,
                reason,
                last_frame_age_ms: h.last_frame_at.map(|t| (now - t).max(0)),
                frames_analysed: h.frames_analysed,
                frames_dropped: h.frames_dropped,
                frames_obscured: h.frames_obscured,
                reconnects: h.reconnects,
            }
        })
        .collect();
    let status = if cameras.iter().all(|c| c.state == "streaming") {
        "ok"
    } else {
        "degraded"
    };
    Json(wire::Health {
        site: state.site.clone(),
        status,
        cameras,
    })
}

async fn occupancy(State(state): State<AppState>) -> Json<wire::Occupancy> {
    let zones = state
        .occupancy
        .snapshot()
        .into_iter()
        .map(|(key, z)| wire::ZoneOccupancy {
            zone: key,
            camera: z.camera.to_string(),
            occupancy: z.occupancy,
            capacity: z.capacity,
            updated_at: z.updated_at.map(rfc3339),
        })
        .collect();
    Json(wire::Occupancy {
        at: rfc3339(state.clock.now_ms()),
        zones,
    })
}

/// A calibration snapshot: the camera's latest frame with every face and
/// every person redacted, as JPEG. Only `RedactedFrame`s reach this handler.
async fn snapshot(
    State(state): State<AppState>,
    Path(camera): Path<String>,
) -> Result<Response, ApiError> {
    if !state.snapshots.enabled() {
        return Err(ApiError::Forbidden(
            "snapshots are disabled; set privacy.snapshots = true to enable them".into(),
        ));
    }
    if !state.health.snapshot().contains_key(camera.as_str()) {
        return Err(ApiError::NotFound(format!("no camera `{camera}`")));
    }
    let frame = state.snapshots.latest(&camera).ok_or_else(|| {
        ApiError::Unavailable(format!("camera `{camera}` has not delivered a frame yet"))
    })?;
    let jpeg = tokio::task::spawn_blocking(move || frame.encode(StillFormat::Jpeg))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    zone: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn occupancy_history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::OccupancyHistory>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let zone_key = q
        .zone
        .ok_or_else(|| ApiError::BadRequest("`zone` is required (camera.zone)".into()))?;
    let known = state.occupancy.snapshot();
    let zone = known.get(&zone_key).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no zone `{zone_key}`; GET /api/v1/occupancy lists them"
        ))
    })?;
    let to = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => state.clock.now_ms(),
    };
    let from = match &q.from {
        Some(f) => parse_time("from", f)?,
        None => to - DEFAULT_HISTORY_MS,
    };
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    if to - from > MAX_HISTORY_MS {
        return Err(ApiError::BadRequest(
            "at most 31 days of minute buckets per request".into(),
        ));
    }
    let (camera, zone_name, path) = (
        zone.camera.to_string(),
        zone.zone.clone(),
        state.database.clone(),
    );
    let rows = tokio::task::spawn_blocking(move || {
        Database::open_read_only(&path)
            .and_then(|db| db.occupancy_minutes(&camera, &zone_name, from, to))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let buckets = rows
        .into_iter()
        .map(|b| wire::OccupancyBucket {
            start: rfc3339(b.bucket_start),
            mean_occupancy: (b.occupancy_sum as f64 / b.samples.max(1) as f64 * 100.0).round()
                / 100.0,
            max_occupancy: b.occupancy_max,
            samples: b.samples,
        })
        .collect();
    Ok(Json(wire::OccupancyHistory {
        zone: zone_key,
        from: rfc3339(from),
        to: rfc3339(to),
        bucket: "1m",
        buckets,
    }))
}

#[cfg(test)]
mod tests;
