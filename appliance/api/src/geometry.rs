//! The admin's zone and line editor: read a camera's geometry, and save a
//! new one into the config file. A save is validated whole first (every
//! problem is answered at once, each with its key, for the editor to show
//! next to the shape it concerns), written atomically, recorded in the
//! audit log, and applied to the running appliance without a restart.

use super::{camera_name, ApiError, AppState};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headcount_domain::config::live::{EditError, Geometry};
use headcount_domain::security::Caller;
use headcount_store::{AuditAction, AuditEntry};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct CameraGeometry {
    camera: String,
    #[serde(flatten)]
    geometry: Geometry,
}

#[derive(Debug, Serialize)]
struct Saved {
    saved: bool,
    camera: String,
    #[serde(flatten)]
    geometry: Geometry,
}

#[derive(Debug, Serialize)]
struct Problem {
    key: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct Invalid {
    error: String,
    errors: Vec<Problem>,
}

pub(super) async fn get_geometry(
    State(state): State<AppState>,
    camera: Result<Path<String>, PathRejection>,
) -> Result<Json<impl Serialize>, ApiError> {
    let camera = camera_name(camera)?;
    let geometry = Geometry::of(&state.config.get(), &camera)
        .ok_or_else(|| ApiError::NotFound(format!("no camera `{camera}`")))?;
    Ok(Json(CameraGeometry { camera, geometry }))
}

pub(super) async fn put_geometry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    camera: Result<Path<String>, PathRejection>,
    body: Result<Json<Geometry>, JsonRejection>,
) -> Result<Response, ApiError> {
    let camera = camera_name(camera)?;
    let Json(geometry) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let before = Geometry::of(&state.config.get(), &camera)
        .ok_or_else(|| ApiError::NotFound(format!("no camera `{camera}`")))?;
    let live = state.config.clone();
    let (cam, shapes) = (camera.clone(), geometry.clone());
    let saved = tokio::task::spawn_blocking(move || live.save_geometry(&cam, &shapes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let running = match saved {
        Ok(running) => running,
        Err(EditError::Invalid(errors)) => {
            let count = errors.0.len();
            let body = Invalid {
                error: format!("the geometry has {count} problem(s); nothing was saved"),
                errors: errors
                    .0
                    .into_iter()
                    .map(|e| Problem {
                        key: e.path,
                        message: e.message,
                    })
                    .collect(),
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
        Err(EditError::NoFile) => {
            return Err(ApiError::Conflict(
                "this appliance was not started from a config file, so there is nothing to save to".into(),
            ))
        }
        Err(EditError::File(message)) => {
            return Err(ApiError::Unavailable(format!(
                "{message}; nothing was changed (the service saves geometry to its state directory, which must be writable)"
            )))
        }
    };
    let after = Geometry::of(&running, &camera).unwrap_or(geometry);
    let names = |g: &Geometry| {
        serde_json::json!({
            "zones": g.zones.iter().map(|z| &z.name).collect::<Vec<_>>(),
            "lines": g.lines.iter().map(|l| &l.name).collect::<Vec<_>>(),
        })
    };
    let entry = AuditEntry {
        actor: caller.pseudonym(),
        role: caller.role.as_str().to_string(),
        action: AuditAction::ConfigChange,
        target: format!("cameras.{camera} zones and lines"),
        rows: 0,
        detail: serde_json::json!({ "before": names(&before), "after": names(&after) }),
    };
    // Saved and running already: an audit failure is reported, not undone.
    if let Err(e) = state.writer.audit(state.clock.now_ms(), vec![entry]).await {
        return Err(ApiError::Internal(format!(
            "geometry of {camera} saved and applied, but its audit entry failed: {e}"
        )));
    }
    tracing::info!(camera = %camera, by = %caller.pseudonym(), "zones and lines saved and applied");
    Ok(Json(Saved {
        saved: true,
        camera,
        geometry: after,
    })
    .into_response())
}
