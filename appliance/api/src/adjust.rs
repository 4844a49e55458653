//! `POST /api/v1/spaces/{space}/adjust`: a space's entrance count corrected
//! by hand (as Axis's `adjustOccupancy`), when the door miscounted or the
//! appliance started with people inside. The analytics thread has it
//! recorded in the audit log (who, why, the count before and after) and
//! only then applies it: a correction that cannot be recorded is not made.

use super::{ApiError, AppState};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headcount_domain::analytics::adjust::{AdjustError, Adjustment, Corrector};
use headcount_domain::security::Caller;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The reason is kept in the audit log: short, one line.
const MAX_REASON_CHARS: usize = 200;
/// Analytics takes requests between frames, at least twice a second.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdjustBody {
    /// The count to set...
    set: Option<u32>,
    /// ...or the change to add (negative: fewer).
    add: Option<i64>,
    reason: String,
}

#[derive(Serialize)]
struct Adjusted {
    space: String,
    before: u32,
    occupancy: u32,
}

pub(super) async fn adjust(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    space: Result<Path<String>, PathRejection>,
    body: Result<Json<AdjustBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(space) = space.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let adjustment = match (body.set, body.add) {
        (Some(n), None) => Adjustment::Set(n),
        (None, Some(by)) => Adjustment::Add(by),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `set` (the count) and `add` (the change)".into(),
            ))
        }
    };
    let reason = body.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.contains(['\n', '\r'])
    {
        return Err(ApiError::BadRequest(format!(
            "`reason` must be one line of 1 to {MAX_REASON_CHARS} characters: it goes to the audit log"
        )));
    }
    let answer = state
        .adjustments
        .request(
            space.clone(),
            adjustment,
            Corrector {
                actor: caller.pseudonym(),
                role: caller.role.as_str().to_string(),
                reason: reason.to_string(),
            },
        )
        .ok_or_else(|| {
            ApiError::Unavailable("too many corrections are waiting; try again".into())
        })?;
    let result = tokio::task::spawn_blocking(move || answer.recv_timeout(ANSWER_WITHIN))
        .await
        .map_err(|e| ApiError::Internal(format!("waiting for analytics: {e}")))?
        .map_err(|_| {
            ApiError::Unavailable("counting did not answer; is the appliance running?".into())
        })?;
    let adjusted = result.map_err(|e| match e {
        AdjustError::UnknownSpace(_) => {
            ApiError::NotFound(format!("{e}; GET /api/v1/occupancy lists them"))
        }
        AdjustError::NotCountedAtEntrances(_) | AdjustError::BelowZero { .. } => {
            ApiError::Conflict(e.to_string())
        }
        AdjustError::TooMany(_) => ApiError::BadRequest(e.to_string()),
        AdjustError::NotRecorded(_) => ApiError::Unavailable(e.to_string()),
    })?;
    Ok(Json(Adjusted {
        space,
        before: adjusted.before,
        occupancy: adjusted.after,
    })
    .into_response())
}
