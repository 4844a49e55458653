//! Anomalies: listed for facilities managers, acknowledged by them, and
//! an admin's re-arm of a camera's tamper reference.

use super::{camera_name, parse_time, parsed, read, rfc3339, ApiError, AppState, RowsServed};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headcount_domain::anomaly::{Anomaly, Kind};
use headcount_domain::security::Caller;
use headcount_store::anomaly::AnomalyQuery;
use serde::{Deserialize, Serialize};

/// What `recent` covers besides the open ones.
const RECENT_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnomaliesQuery {
    /// open | recent (open, or ended in the last 24 h; the default) | all
    state: Option<String>,
    /// Only anomalies open at or after this time (RFC 3339).
    since: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct AnomalyList {
    /// How many of the listed ones are open.
    open: usize,
    anomalies: Vec<WireAnomaly>,
}

/// An anomaly with its times also in RFC 3339, as every response writes them.
#[derive(Debug, Serialize)]
struct WireAnomaly {
    #[serde(flatten)]
    anomaly: Anomaly,
    started_at: String,
    ended_at: Option<String>,
}

impl From<Anomaly> for WireAnomaly {
    fn from(anomaly: Anomaly) -> Self {
        WireAnomaly {
            started_at: rfc3339(anomaly.started_ms),
            ended_at: anomaly.ended_ms.map(rfc3339),
            anomaly,
        }
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<AnomaliesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = parsed(query)?;
    let now = state.clock.now_ms();
    let (open_only, mut since) = match q.state.as_deref().unwrap_or("recent") {
        "open" => (true, None),
        "recent" => (false, Some(now - RECENT_MS)),
        "all" => (false, None),
        other => {
            return Err(ApiError::BadRequest(format!(
                "`state` must be open, recent or all, not `{other}`"
            )))
        }
    };
    if let Some(s) = q.since.as_deref() {
        since = Some(parse_time("since", s)?);
    }
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            Kind::parse(k).ok_or_else(|| {
                let known: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                ApiError::BadRequest(format!(
                    "`type` must be one of {}, not `{k}`",
                    known.join(", ")
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit` must be between 1 and 1000".into(),
        ));
    }
    let query = AnomalyQuery {
        open_only,
        since,
        kind,
        limit,
    };
    let anomalies = read(&state, move |db| db.anomalies(&query)).await?;
    let served = anomalies.len() as u64;
    let open = anomalies.iter().filter(|a| a.ended_ms.is_none()).count();
    let anomalies = anomalies.into_iter().map(WireAnomaly::from).collect();
    let mut response = Json(AnomalyList { open, anomalies }).into_response();
    response.extensions_mut().insert(RowsServed(served));
    Ok(response)
}

/// The open anomalies as `GET /api/v1/anomalies?state=open` lists them,
/// for the dashboard's live stream.
pub(super) async fn open_now(state: &AppState) -> Result<impl Serialize, ApiError> {
    let query = AnomalyQuery {
        open_only: true,
        since: None,
        kind: None,
        limit: 100,
    };
    let anomalies = read(state, move |db| db.anomalies(&query)).await?;
    Ok(AnomalyList {
        open: anomalies.len(),
        anomalies: anomalies.into_iter().map(WireAnomaly::from).collect(),
    })
}

/// Acknowledges an anomaly in the caller's name; the first
/// acknowledgement stands.
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not an anomaly id (a number)")))?;
    let anomaly = state
        .writer
        .acknowledge(id, caller.name, state.clock.now_ms())
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot record the acknowledgement: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no anomaly {id}")))?;
    Ok(Json(WireAnomaly::from(anomaly)).into_response())
}

#[derive(Debug, Serialize)]
struct Rearmed {
    camera: String,
    /// The camera learns its view afresh for this long; tamper anomalies
    /// are not raised meanwhile.
    learning_secs: f64,
}

/// Re-arms a camera's tamper reference: after a deliberate change of view,
/// the camera learns the new one; its open tamper anomalies end.
pub(super) async fn rearm(
    State(state): State<AppState>,
    camera: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let camera = camera_name(camera)?;
    let running = state.config.get();
    let config = running
        .cameras
        .iter()
        .find(|c| *c.id == *camera)
        .ok_or_else(|| ApiError::NotFound(format!("no camera `{camera}`")))?;
    let Some(tamper) = config.tamper else {
        return Err(ApiError::Conflict(format!(
            "camera `{camera}` has tamper detection off (cameras.{camera}.tamper.sensitivity = \"off\")"
        )));
    };
    state.anomaly_control.rearm(config.id.clone());
    Ok((
        StatusCode::ACCEPTED,
        Json(Rearmed {
            camera,
            learning_secs: tamper.learning_ms as f64 / 1000.0,
        }),
    )
        .into_response())
}
