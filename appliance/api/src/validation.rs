//! On-site validation of a line's count without video
//! (`headcount_domain::analytics::validation`): an installer starts a
//! session on a line, taps "in" and "out" as people cross it, and finishes;
//! the appliance compares the taps with its own count over the same
//! seconds. No pixel and no recording: only the taps' times, kept in memory
//! for the session, and the result, which goes to the audit log.
//!
//! Caps: at most `MAX_OPEN` sessions at once (a new one beyond that ends
//! the oldest), each ended after `MAX_AGE_MS`, taps capped per session.

use super::{ApiError, AppState};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headcount_domain::analytics::validation::{Report, Tap, Validation};
use headcount_domain::clock::UnixMs;
use headcount_domain::security::Caller;
use headcount_store::{AuditAction, AuditEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const MAX_OPEN: usize = 4;
const MAX_AGE_MS: i64 = 2 * 3600 * 1000;

/// The sessions open now.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<Open>>);

#[derive(Default)]
struct Open {
    sessions: BTreeMap<u64, Validation>,
    next_id: u64,
}

impl Sessions {
    fn with<T>(&self, f: impl FnOnce(&mut Open) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Start {
    /// `camera.line`
    line: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TapBody {
    /// `in` or `out`
    direction: String,
}

#[derive(Serialize)]
struct WireReport {
    id: u64,
    line: String,
    seconds: f64,
    taps_in: u64,
    taps_out: u64,
    counted_in: u64,
    counted_out: u64,
    /// (counted - tapped) / tapped, both directions; null before a tap.
    error: Option<f64>,
    /// 95 % confidence interval of `error`; null until two windows of 30 s.
    interval: Option<[f64; 2]>,
    windows: usize,
    finished: bool,
}

fn wire(id: u64, r: Report, finished: bool) -> WireReport {
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    WireReport {
        id,
        line: r.line,
        seconds: round(r.seconds),
        taps_in: r.taps_in,
        taps_out: r.taps_out,
        counted_in: r.counted_in,
        counted_out: r.counted_out,
        error: r.error.map(round),
        interval: r.interval.map(|(low, high)| [round(low), round(high)]),
        windows: r.windows,
        finished,
    }
}

/// The line's crossings so far, (in, out).
fn totals(state: &AppState, line: &str) -> (u64, u64) {
    state
        .occupancy
        .snapshot()
        .lines
        .get(line)
        .copied()
        .unwrap_or((0, 0))
}

fn session_id(id: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    id.parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a validation id (a number)")))
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!(
        "no open validation {id} (finished, or ended after {} h)",
        MAX_AGE_MS / 3_600_000
    ))
}

impl Open {
    /// Drops the sessions older than `MAX_AGE_MS`.
    fn expire(&mut self, now: UnixMs) {
        self.sessions.retain(|_, v| now - v.started() < MAX_AGE_MS);
    }
}

pub(super) async fn start(
    State(state): State<AppState>,
    body: Result<Json<Start>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(Start { line }) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let config = state.config.get();
    let known = config
        .cameras
        .iter()
        .flat_map(|c| c.lines.iter().map(move |l| format!("{}.{}", c.id, l.name)))
        .any(|key| key == line);
    if !known {
        return Err(ApiError::NotFound(format!(
            "no line `{line}` (name it as camera.line)"
        )));
    }
    let now = state.clock.now_ms();
    let at_start = totals(&state, &line);
    let (id, report) = state.validations.with(|open| {
        open.expire(now);
        if open.sessions.len() >= MAX_OPEN {
            // The oldest gives way: no caller can hold every slot.
            open.sessions.pop_first();
        }
        let id = open.next_id;
        open.next_id += 1;
        let session = Validation::start(&line, now, at_start);
        let report = session.report(now, at_start);
        open.sessions.insert(id, session);
        (id, report)
    });
    Ok((StatusCode::CREATED, Json(wire(id, report, false))).into_response())
}

pub(super) async fn tap(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<TapBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = session_id(id)?;
    let Json(TapBody { direction }) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let tap = match direction.as_str() {
        "in" => Tap::In,
        "out" => Tap::Out,
        other => {
            return Err(ApiError::BadRequest(format!(
                "direction `{other}` is not `in` or `out`"
            )))
        }
    };
    let now = state.clock.now_ms();
    state.validations.with(|open| {
        open.expire(now);
        let session = open.sessions.get_mut(&id).ok_or_else(|| not_found(id))?;
        let at = totals(&state, session.line());
        session.tap(tap, now, at).map_err(|_| {
            ApiError::Conflict("this session has all the taps it can take; finish it".into())
        })?;
        Ok(Json(wire(id, session.report(now, at), false)).into_response())
    })
}

pub(super) async fn read(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = session_id(id)?;
    let now = state.clock.now_ms();
    state.validations.with(|open| {
        open.expire(now);
        let session = open.sessions.get_mut(&id).ok_or_else(|| not_found(id))?;
        let at = totals(&state, session.line());
        session.sample(now, at);
        Ok(Json(wire(id, session.report(now, at), false)).into_response())
    })
}

/// Ends the session and records its result in the audit log.
pub(super) async fn finish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = session_id(id)?;
    let now = state.clock.now_ms();
    let session = state.validations.with(|open| {
        open.expire(now);
        open.sessions.remove(&id).ok_or_else(|| not_found(id))
    })?;
    let report = wire(
        id,
        session.report(now, totals(&state, session.line())),
        true,
    );
    let entry = AuditEntry {
        actor: caller.pseudonym(),
        role: caller.role.as_str().to_string(),
        action: AuditAction::ConfigChange,
        target: format!("validation of line {}", report.line),
        rows: 0,
        detail: serde_json::json!({
            "seconds": report.seconds,
            "taps": [report.taps_in, report.taps_out],
            "counted": [report.counted_in, report.counted_out],
            "error": report.error,
            "interval": report.interval,
        }),
    };
    state
        .writer
        .audit(now, vec![entry])
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot record the validation: {e}")))?;
    tracing::info!(line = %report.line, error = ?report.error, "line validation finished");
    Ok(Json(report).into_response())
}
