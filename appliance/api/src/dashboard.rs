//! The facilities dashboard: its static files (embedded in the binary, so
//! it works without internet), login and logout, what the page needs to lay
//! itself out, and the hour-of-week heatmap. The page shows numbers, charts
//! and states only; the one image it can load is the redacted calibration
//! snapshot, for the admin's zone editor.

use super::access::{check_token, client_of, refuse, spend};
use super::session::{SessionKey, MAX_SESSIONS};
use super::{parsed, read, rfc3339, round2, wire, ApiError, AppState, Layout, RowsServed};
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use headcount_domain::analytics::Scope;
use headcount_domain::disclosure::policy;
use headcount_domain::security::{Caller, SecurityEvent};
use headcount_store::{AuditAction, AuditEntry};
use serde::{Deserialize, Serialize};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Sent with every response: the page may load its own files and talk to
/// its own origin only, and may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated each load: a new binary's files are used at once.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(super) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

/// Who the session belongs to, and the CSRF token its state changes need.
#[derive(Debug, Serialize)]
struct SessionInfo {
    name: String,
    role: &'static str,
    expires_at: Option<String>,
    /// None for a caller with a bearer token: it has no session to protect.
    csrf: Option<String>,
}

/// A login body is a token in JSON: nothing bigger is read.
const MAX_LOGIN_BYTES: usize = 4096;
const LOGIN_ROUTE: &str = "/api/v1/login";

/// What gives away a login a browser sent for a page of another site:
/// `Sec-Fetch-Site` other than same-origin (or none, a user's own action),
/// or an `Origin` other than this host. Clients that are not browsers send
/// neither and pass: they have no one's browser to borrow.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| {
        headers.get(name).map(|v| {
            v.to_str()
                .unwrap_or("(not text)")
                .chars()
                .take(200)
                .collect::<String>()
        })
    };
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site.as_str(), "same-origin" | "none") {
            return Some(format!("Sec-Fetch-Site: {site}"));
        }
    }
    let origin = text(header::ORIGIN.as_str())?;
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = text(header::HOST.as_str());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(&host) => None,
        _ => Some(format!("Origin: {origin}")),
    }
}

/// Whether the body is declared JSON: a page of another site cannot send
/// that without a CORS preflight, which this API never grants.
fn declared_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Exchanges a token for a session cookie. Only the dashboard's own page
/// (or a client that is not a browser) may log in: a login from another
/// site is refused (403, `CROSS_SITE_REFUSED`) before its token is read,
/// so it counts towards no lockout. Wrong tokens count like any other
/// failed authentication.
pub(super) async fn login(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let client = client_of(&request);
    if let Some(evidence) = cross_site(request.headers()) {
        state.guard.events.emit(SecurityEvent::CrossSiteRefused {
            client: client.to_string(),
            evidence,
            route: LOGIN_ROUTE.into(),
        });
        return Err(ApiError::Forbidden(
            "a login must come from the dashboard's own page, not from another site".into(),
        ));
    }
    if !declared_json(request.headers()) {
        return Err(ApiError::UnsupportedMediaType(
            "a login is a JSON body {\"token\": \"...\"} sent with `Content-Type: application/json`"
                .into(),
        ));
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BYTES)
        .await
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "a login is a JSON body of at most {MAX_LOGIN_BYTES} bytes"
            ))
        })?;
    let Login { token } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("a login is JSON {{\"token\": \"...\"}}: {e}"))
    })?;
    let now = state.clock.now_ms();
    let (caller, grant) = match check_token(&state.guard, client, token.trim(), LOGIN_ROUTE, now) {
        Ok(found) => found,
        Err(refusal) => return Ok(refuse(refusal).await),
    };
    // Each login opens a session and an audit entry: it spends like any request.
    if let Err(refused) = spend(&state, &caller, client, LOGIN_ROUTE, now).await {
        return Ok(refused);
    }
    let opened = state
        .guard
        .sessions
        .open(grant, caller.role, now)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "{MAX_SESSIONS} dashboard sessions are open already; try again when one has ended"
            ))
        })?;
    audit_session(&state, &caller, "opened").await?;
    let cookie = state
        .guard
        .sessions
        .cookie(&opened.id)
        .ok_or_else(|| ApiError::Internal("cannot make the session cookie".into()))?;
    let mut response = Json(session_info(caller, Some(opened.csrf))).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A login or logout, in the audit log like every access.
async fn audit_session(state: &AppState, caller: &Caller, what: &str) -> Result<(), ApiError> {
    let entry = AuditEntry {
        actor: caller.pseudonym(),
        role: caller.role.as_str().to_string(),
        action: AuditAction::ApiAccess,
        target: format!("session {what}"),
        rows: 0,
        detail: serde_json::json!({ "session": what }),
    };
    state
        .writer
        .audit(state.clock.now_ms(), vec![entry])
        .await
        .map(|_| ())
        .map_err(|e| {
            ApiError::Unavailable(format!(
                "the session could not be recorded in the audit log: {e}"
            ))
        })
}

fn session_info(caller: Caller, csrf: Option<String>) -> SessionInfo {
    SessionInfo {
        name: caller.name,
        role: caller.role.as_str(),
        expires_at: caller.expires_ms.map(rfc3339),
        csrf,
    }
}

/// Who is calling and, with the session cookie, the session's CSRF token
/// (a caller with a bearer token has no session, so no CSRF token).
pub(super) async fn session(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    let csrf = super::session::session_id(request.headers())
        .and_then(|id| {
            state
                .guard
                .sessions
                .find(SessionKey::of(&id), state.clock.now_ms())
        })
        .map(|found| found.csrf);
    let mut response = Json(session_info(caller, csrf)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Ends the session of the cookie and clears the cookie.
pub(super) async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    if let Some(id) = super::session::session_id(request.headers()) {
        state.guard.sessions.close(SessionKey::of(&id));
        audit_session(&state, &caller, "closed").await?;
    }
    let mut response = (StatusCode::NO_CONTENT, Body::empty()).into_response();
    if let Some(cookie) = state.guard.sessions.clearing_cookie() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// What the page lays itself out from: the site, its time zone and the
/// start of its day, and the zones, spaces, lines and cameras there are.
pub(super) async fn overview(
    State(state): State<AppState>,
) -> Result<Json<wire::Dashboard>, ApiError> {
    let config = state.config.get();
    let now = jiff::Timestamp::from_millisecond(state.clock.now_ms())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let today_start = now
        .to_zoned(config.timezone.clone())
        .start_of_day()
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .timestamp();
    let board = state.occupancy.snapshot();
    Ok(Json(wire::Dashboard {
        site: config.site.clone(),
        timezone: config.timezone.iana_name().unwrap_or("UTC").to_string(),
        today_start: today_start.to_string(),
        snapshots: state.snapshots.enabled(),
        cameras: config.cameras.iter().map(|c| c.id.to_string()).collect(),
        zones: board
            .zones
            .into_iter()
            .map(|(zone, z)| wire::DashboardZone {
                history_bucket: if policy::is_small_zone(z.capacity, config.aggregates.k) {
                    "15m"
                } else {
                    "5m"
                },
                zone,
                camera: z.camera.map(|c| c.to_string()).unwrap_or_default(),
                capacity: z.capacity,
            })
            .collect(),
        spaces: board
            .spaces
            .into_iter()
            .map(|(space, s)| wire::DashboardSpace {
                space,
                capacity: s.capacity,
                method: s.method.unwrap_or("zones"),
            })
            .collect(),
        lines: config
            .cameras
            .iter()
            .flat_map(|c| {
                c.lines.iter().map(|l| wire::DashboardLine {
                    line: headcount_domain::config::zone_key(&c.id, &l.name),
                    camera: c.id.to_string(),
                })
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeatmapQuery {
    zone: Option<String>,
    space: Option<String>,
    weeks: Option<u32>,
}

const MAX_HEATMAP_WEEKS: u32 = 8;
/// Stored buckets are read at this width: fine enough for a time zone a
/// quarter or half an hour off UTC.
const HEATMAP_BUCKET_MS: i64 = 900_000;
const WEEK_MS: i64 = 7 * 86_400_000;

/// Mean occupancy per local hour of the week over the last weeks, from the
/// stored aggregates: the busiest hours at a glance.
pub(super) async fn heatmap(
    State(state): State<AppState>,
    query: Result<Query<HeatmapQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Extension<RowsServed>, Json<wire::Heatmap>), ApiError> {
    let q = parsed(query)?;
    let config = state.config.get();
    let scope = match (&q.zone, &q.space) {
        (Some(key), None) => {
            let (camera, zone) = Layout::new(&config).zone(key)?;
            Scope::Zone { camera, zone }
        }
        (None, Some(name)) if config.spaces.iter().any(|s| &s.name == name) => {
            Scope::Space(name.clone())
        }
        (None, Some(name)) => {
            return Err(ApiError::NotFound(format!(
                "no space `{name}`; GET /api/v1/occupancy lists them"
            )))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "either `zone` (camera.zone) or `space` is required".into(),
            ))
        }
    };
    let weeks = q.weeks.unwrap_or(4);
    if !(1..=MAX_HEATMAP_WEEKS).contains(&weeks) {
        return Err(ApiError::BadRequest(format!(
            "`weeks` must be between 1 and {MAX_HEATMAP_WEEKS}"
        )));
    }
    let to = state.clock.now_ms().div_euclid(HEATMAP_BUCKET_MS) * HEATMAP_BUCKET_MS;
    let from = to - i64::from(weeks) * WEEK_MS;
    let rows = read(&state, move |db| {
        db.occupancy_series(&scope, HEATMAP_BUCKET_MS, from, to)
    })
    .await?;
    // (samples, sum, max) per Monday-first day and hour.
    let mut cells = [[(0u64, 0u64, 0u32); 24]; 7];
    for row in &rows {
        let Ok(at) = jiff::Timestamp::from_millisecond(row.bucket_start) else {
            continue;
        };
        let local = at.to_zoned(config.timezone.clone());
        let day = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let hour = usize::try_from(local.hour()).unwrap_or(0);
        let cell = &mut cells[day % 7][hour % 24];
        cell.0 += u64::from(row.samples);
        cell.1 += row.occupancy_sum;
        cell.2 = cell.2.max(row.occupancy_max);
    }
    let cells: Vec<wire::HeatmapCell> = cells
        .iter()
        .enumerate()
        .flat_map(|(day, hours)| {
            hours.iter().enumerate().filter(|(_, c)| c.0 > 0).map(
                move |(hour, &(samples, sum, max))| wire::HeatmapCell {
                    day: day as u8,
                    hour: hour as u8,
                    mean_occupancy: round2(sum as f64 / samples as f64),
                    max_occupancy: max,
                    samples,
                },
            )
        })
        .collect();
    Ok((
        Extension(RowsServed(cells.len() as u64)),
        Json(wire::Heatmap {
            zone: q.zone,
            space: q.space,
            timezone: config.timezone.iana_name().unwrap_or("UTC").to_string(),
            weeks,
            from: rfc3339(from),
            to: rfc3339(to),
            cells,
        }),
    ))
}
