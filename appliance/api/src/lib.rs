//! The local HTTP API (axum). One `router()` over an `AppState`; error kinds
//! map to HTTP status in exactly one place (`ApiError::into_response`).

pub mod access;
mod adjust;
mod anomalies;
mod dashboard;
mod geometry;
mod governance;
pub mod live;
mod quota;
pub mod session;
pub mod validation;
pub mod wire;

pub use governance::OPENAPI;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};
use headcount_domain::analytics::{DwellHistogram, OccupancyBoard, Scope};
use headcount_domain::clock::{Clock, UnixMs};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{zone_key, Config};
use headcount_domain::disclosure::policy;
use headcount_domain::health::{CameraState, HealthBoard};
use headcount_domain::pixels::frame::CameraId;
use headcount_domain::pixels::redaction::StillFormat;
use headcount_domain::security::{Caller, Role};
use headcount_domain::snapshot::SnapshotBoard;
use headcount_store::Database;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The most buckets one request may ask for: 31 days of minutes.
const MAX_BUCKETS: i64 = 31 * 24 * 60;
const DEFAULT_HISTORY_MS: i64 = 3_600_000;
/// Longest zone, space, line or camera name a request may carry.
const MAX_NAME_BYTES: usize = 128;
/// Bucket widths a client may ask for, aligned to UTC.
const BUCKETS: &[(&str, i64)] = &[
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
];

/// What the API may be asked about: zones and lines by their keys
/// (`camera.zone`, `camera.line`), and the entrances of each space.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    zones: BTreeMap<String, (CameraId, String)>,
    lines: BTreeMap<String, (CameraId, String)>,
    space_entrances: BTreeMap<String, Vec<String>>,
}

impl Layout {
    pub fn new(config: &Config) -> Self {
        let keyed = |names: &dyn Fn(&headcount_domain::config::CameraConfig) -> Vec<String>| {
            config
                .cameras
                .iter()
                .flat_map(|c| {
                    names(c)
                        .into_iter()
                        .map(|n| (zone_key(&c.id, &n), (c.id.clone(), n)))
                })
                .collect()
        };
        let zones = keyed(&|c| c.zones.iter().map(|z| z.name.clone()).collect());
        let lines = keyed(&|c| c.lines.iter().map(|l| l.name.clone()).collect());
        let space_entrances = config
            .spaces
            .iter()
            .map(|s| (s.name.clone(), s.entrances.clone()))
            .collect();
        Self {
            zones,
            lines,
            space_entrances,
        }
    }

    /// The camera and zone name of a `camera.zone` key.
    fn zone(&self, key: &str) -> Result<(CameraId, String), ApiError> {
        self.zones.get(key).cloned().ok_or_else(|| {
            ApiError::NotFound(format!("no zone `{key}`; GET /api/v1/occupancy lists them"))
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub site: String,
    pub occupancy: OccupancyBoard,
    pub health: HealthBoard,
    /// The database's size and the disk's headroom.
    pub storage: headcount_domain::health::StorageBoard,
    pub database: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub snapshots: SnapshotBoard,
    pub guard: Arc<access::Guard>,
    /// The running config; the zone editor replaces its geometry.
    pub config: LiveConfig,
    /// Audit entries and privacy-budget charges go through the writer.
    pub writer: headcount_store::Writer,
    /// Re-arm requests to the anomaly monitor.
    pub anomaly_control: headcount_domain::anomaly::Control,
    /// The dashboards' live streams open now.
    pub live_streams: live::StreamSlots,
    /// On-site validation sessions open now.
    pub validations: validation::Sessions,
    /// Manual corrections of entrance counts, applied by analytics.
    pub adjustments: headcount_domain::analytics::adjust::Adjustments,
}

impl AppState {
    /// The zones, lines and spaces a request may name, as running now.
    fn layout(&self) -> Layout {
        Layout::new(&self.config.get())
    }

    /// The finest history bucket of a zone: a small zone's (capacity below
    /// k) is coarser, so that its occupant's day cannot be read by minute.
    fn zone_min_bucket_ms(&self, camera: &str, zone: &str) -> i64 {
        let config = self.config.get();
        let capacity = config
            .cameras
            .iter()
            .filter(|c| &*c.id == camera)
            .flat_map(|c| &c.zones)
            .find(|z| z.name == zone)
            .and_then(|z| z.capacity);
        policy::history_min_bucket_ms(capacity, config.aggregates.k)
    }
}

/// How many rows (buckets, entries) a response carried, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct RowsServed(pub u64);

/// Set by a handler whose answer is a download (CSV): audited as an export.
#[derive(Debug, Clone, Copy)]
pub struct Exported;

use headcount_domain::disclosure::policy::Class;
use headcount_domain::security::Role::{Admin, Dpo, Facilities, Planner};
const ANY_ROLE: &[Role] = &[Admin, Facilities, Planner, Dpo];
use access::{Access, RouteRule};

/// Every route of the API with its access rule; `router` serves exactly
/// these, so a route cannot be added without saying who may call it.
pub const ROUTES: &[RouteRule] = &[
    RouteRule {
        method: Method::GET,
        path: "/livez",
        access: Access::Public,
        serves: &[],
        handler: || get(access::livez),
    },
    // The dashboard's own files: no data in them.
    RouteRule {
        method: Method::GET,
        path: "/",
        access: Access::Public,
        serves: &[],
        handler: || get(dashboard::index),
    },
    RouteRule {
        method: Method::GET,
        path: "/ui/app.js",
        access: Access::Public,
        serves: &[],
        handler: || get(dashboard::app_js),
    },
    RouteRule {
        method: Method::GET,
        path: "/ui/app.css",
        access: Access::Public,
        serves: &[],
        handler: || get(dashboard::app_css),
    },
    // Checks the token itself, with the lockout of every other route.
    RouteRule {
        method: Method::POST,
        path: "/api/v1/login",
        access: Access::Public,
        serves: &[],
        handler: || post(dashboard::login),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/session",
        access: Access::Roles(ANY_ROLE),
        serves: &[],
        handler: || get(dashboard::session),
    },
    RouteRule {
        method: Method::POST,
        path: "/api/v1/logout",
        access: Access::Roles(ANY_ROLE),
        serves: &[],
        handler: || post(dashboard::logout),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dashboard",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::Layout],
        handler: || get(dashboard::overview),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/live",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts, Class::Health, Class::Events],
        handler: || get(live::live),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/occupancy/heatmap",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::History],
        handler: || get(dashboard::heatmap),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/cameras/{camera}/geometry",
        access: Access::Roles(&[Admin]),
        serves: &[Class::Layout],
        handler: || get(geometry::get_geometry),
    },
    RouteRule {
        method: Method::PUT,
        path: "/api/v1/cameras/{camera}/geometry",
        access: Access::Roles(&[Admin]),
        serves: &[Class::Layout],
        handler: || put(geometry::put_geometry),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/whoami",
        access: Access::Roles(ANY_ROLE),
        serves: &[],
        handler: || get(whoami),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/health",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::Health],
        handler: || get(health),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/occupancy",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts],
        handler: || get(occupancy),
    },
    // Counts as counted, on site only: planners read published cells.
    RouteRule {
        method: Method::GET,
        path: "/api/v1/occupancy/history",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::History],
        handler: || get(occupancy_history),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/flow",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::History],
        handler: || get(flow),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dwell",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::History],
        handler: || get(dwell),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/cameras/{camera}/snapshot",
        access: Access::Roles(&[Admin]),
        serves: &[Class::Snapshots],
        handler: || get(snapshot),
    },
    // Published cells only: per space, counts below k withheld, noise stored.
    RouteRule {
        method: Method::GET,
        path: "/api/v1/aggregates",
        access: Access::Roles(&[Admin, Facilities, Planner]),
        serves: &[Class::Published],
        handler: || get(governance::aggregates),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/openapi.json",
        access: Access::Roles(&[Admin, Facilities, Planner, Dpo]),
        serves: &[],
        handler: || get(governance::openapi),
    },
    RouteRule {
        method: Method::GET,
        path: "/metrics",
        access: Access::Roles(&[Admin, Facilities, Planner]),
        serves: &[Class::Published, Class::Health],
        handler: || get(governance::metrics),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dpo/retention",
        access: Access::Roles(&[Admin, Dpo]),
        serves: &[Class::Audit],
        handler: || get(governance::dpo_retention),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dpo/audit",
        access: Access::Roles(&[Admin, Dpo]),
        serves: &[Class::Audit],
        handler: || get(governance::dpo_audit),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dpo/processing-record",
        access: Access::Roles(&[Admin, Dpo]),
        serves: &[Class::Layout],
        handler: || get(governance::dpo_processing_record),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dpo/notice",
        access: Access::Roles(&[Admin, Dpo]),
        serves: &[Class::Layout],
        handler: || get(governance::dpo_notice),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/dpo/dpia",
        access: Access::Roles(&[Admin, Dpo]),
        serves: &[Class::Layout],
        handler: || get(governance::dpo_dpia),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/anomalies",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::Events],
        handler: || get(anomalies::list),
    },
    RouteRule {
        method: Method::POST,
        path: "/api/v1/anomalies/{id}/ack",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::Events],
        handler: || post(anomalies::acknowledge),
    },
    // On-site validation: taps compared with a line's live count.
    RouteRule {
        method: Method::POST,
        path: "/api/v1/validations",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts],
        handler: || post(validation::start),
    },
    RouteRule {
        method: Method::GET,
        path: "/api/v1/validations/{id}",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts],
        handler: || get(validation::read),
    },
    RouteRule {
        method: Method::POST,
        path: "/api/v1/validations/{id}/taps",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts],
        handler: || post(validation::tap),
    },
    RouteRule {
        method: Method::POST,
        path: "/api/v1/validations/{id}/finish",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts],
        handler: || post(validation::finish),
    },
    // A space's entrance count corrected by hand (audited with the reason).
    RouteRule {
        method: Method::POST,
        path: "/api/v1/spaces/{space}/adjust",
        access: Access::Roles(&[Admin, Facilities]),
        serves: &[Class::LiveCounts],
        handler: || post(adjust::adjust),
    },
    RouteRule {
        method: Method::POST,
        path: "/api/v1/cameras/{camera}/tamper/rearm",
        access: Access::Roles(&[Admin]),
        serves: &[Class::Health],
        handler: || post(anomalies::rearm),
    },
];

/// The API: `ROUTES`, each behind its access rule, and an authenticated 404.
/// Every response carries the dashboard's security headers.
pub fn router(state: AppState) -> Router {
    let guard = |rule: &RouteRule| {
        axum::middleware::from_fn_with_state((state.clone(), rule.clone()), access::require)
    };
    // One method router per path; another method gets a 405 behind the
    // access rule of the path's first route.
    let mut paths: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for rule in ROUTES {
        let guarded = (rule.handler)().layer(guard(rule));
        match paths.iter_mut().find(|(path, _)| *path == rule.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(guarded),
            None => {
                let refuse = MethodRouter::new()
                    .fallback(access::method_not_allowed)
                    .layer(guard(rule));
                paths.push((rule.path, refuse.merge(guarded)));
            }
        }
    }
    let mut router = Router::new();
    for (path, methods) in paths {
        router = router.route(path, methods);
    }
    router
        .fallback(access::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The headers that keep a browser from framing, sniffing or leaking.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            dashboard::CONTENT_SECURITY_POLICY,
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    NotFound(String),
    Forbidden(String),
    TooManyRequests(String),
    MethodNotAllowed(String),
    UnsupportedMediaType(String),
    UriTooLong,
    Unavailable(String),
    Conflict(String),
    /// Logged in full; the client only learns that it happened.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::TooManyRequests(m) => (StatusCode::TOO_MANY_REQUESTS, m),
            ApiError::MethodNotAllowed(m) => (StatusCode::METHOD_NOT_ALLOWED, m),
            ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            ApiError::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                format!(
                    "the request target is longer than {} bytes",
                    access::MAX_URI_BYTES
                ),
            ),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
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

pub use headcount_domain::clock::rfc3339;

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

/// The caller's own token: name, role and expiry (never the secret).
async fn whoami(Extension(caller): Extension<Caller>) -> Json<wire::WhoAmI> {
    Json(wire::WhoAmI {
        pseudonym: caller.pseudonym(),
        name: caller.name,
        role: caller.role.as_str(),
        expires_at: caller.expires_ms.map(rfc3339),
    })
}

async fn health(State(state): State<AppState>) -> Json<wire::Health> {
    Json(health_now(&state))
}

/// A camera that streamed less than this long ago and is being retried is
/// `reconnecting`; one retried for longer, or that never streamed, `failing`.
const RECONNECTING_MS: i64 = 60_000;

fn health_now(state: &AppState) -> wire::Health {
    let cameras: Vec<wire::CameraHealth> = state
        .health
        .snapshot()
        .into_iter()
        .map(|(camera, h)| {
            let age_ms = h.last_frame_age_ms();
            let recent_frame = age_ms.is_some_and(|age| age < RECONNECTING_MS);
            let (behind, analysis) = (h.behind(), h.analysis_summary());
            let (label, reason) = match h.state {
                CameraState::Connecting if age_ms.is_some() => ("reconnecting", None),
                CameraState::Connecting => ("connecting", None),
                CameraState::Streaming => ("streaming", None),
                CameraState::Failing { reason } if recent_frame => ("reconnecting", Some(reason)),
                CameraState::Failing { reason } => ("failing", Some(reason)),
            };
            wire::CameraHealth {
                camera: camera.to_string(),
                state: label,
                reason,
                last_frame_age_ms: age_ms,
                frames_analysed: h.frames_analysed,
                frames_dropped: h.frames_dropped,
                frames_obscured: h.frames_obscured,
                frames_coasted: h.frames_coasted,
                fixtures: h.fixtures,
                reconnects: h.reconnects,
                analysis_fps: h.target_fps,
                analysed_fps: h.analysed_fps.map(|fps| (fps * 100.0).round() / 100.0),
                behind,
                analysis,
            }
        })
        .collect();
    let storage = state.storage.get();
    let status = if cameras.iter().all(|c| c.state == "streaming") && !storage.nearly_full() {
        "ok"
    } else {
        "degraded"
    };
    wire::Health {
        site: state.site.clone(),
        status,
        cameras,
        storage: wire::StorageHealth {
            database_bytes: storage.database_bytes,
            audit_entries: storage.audit_entries,
            audit_bytes: storage.audit_bytes,
            free_bytes: storage.free_bytes,
            min_free_bytes: storage.min_free_bytes,
            nearly_full: storage.nearly_full(),
        },
    }
}

async fn occupancy(State(state): State<AppState>) -> Json<wire::Occupancy> {
    Json(occupancy_now(&state))
}

fn occupancy_now(state: &AppState) -> wire::Occupancy {
    let view = state.occupancy.snapshot();
    let zones = view
        .zones
        .into_iter()
        .map(|(key, z)| wire::ZoneOccupancy {
            zone: key,
            camera: z.camera.map(|c| c.to_string()).unwrap_or_default(),
            occupancy: z.occupancy,
            capacity: z.capacity,
            updated_at: z.updated_at.map(rfc3339),
        })
        .collect();
    let spaces = view
        .spaces
        .into_iter()
        .map(|(name, s)| wire::SpaceOccupancy {
            space: name,
            method: s.method.unwrap_or("zones"),
            occupancy: s.occupancy,
            capacity: s.capacity,
            updated_at: s.updated_at.map(rfc3339),
        })
        .collect();
    wire::Occupancy {
        at: rfc3339(state.clock.now_ms()),
        zones,
        spaces,
    }
}

/// The `{camera}` of a route, at most `MAX_NAME_BYTES` long.
fn camera_name(
    camera: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    let Path(camera) = camera.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if camera.len() > MAX_NAME_BYTES {
        return Err(ApiError::BadRequest(format!(
            "a camera name is at most {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(camera)
}

/// A calibration snapshot: the camera's latest frame with every face and
/// every person redacted, as JPEG. Only `RedactedFrame`s reach this handler.
async fn snapshot(
    State(state): State<AppState>,
    camera: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let camera = camera_name(camera)?;
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

/// The query of every time-series route; each uses the keys it needs. An
/// unknown key is an error, not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    zone: Option<String>,
    space: Option<String>,
    line: Option<String>,
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

/// A validated time range cut into buckets.
struct Series {
    from: UnixMs,
    to: UnixMs,
    bucket_ms: i64,
    bucket: &'static str,
}

impl Series {
    /// The range and bucket asked for, in buckets of at least `min_bucket_ms`.
    fn parse(
        state: &AppState,
        q: &SeriesQuery,
        default_bucket: &str,
        min_bucket_ms: i64,
    ) -> Result<Series, ApiError> {
        let label = q.bucket.as_deref().unwrap_or(default_bucket);
        let &(bucket, bucket_ms) = BUCKETS.iter().find(|(l, _)| *l == label).ok_or_else(|| {
            let known: Vec<_> = BUCKETS.iter().map(|(l, _)| *l).collect();
            ApiError::BadRequest(format!("`bucket` must be one of {}", known.join(", ")))
        })?;
        if bucket_ms < min_bucket_ms {
            let finest = BUCKETS
                .iter()
                .find(|(_, ms)| *ms >= min_bucket_ms)
                .map_or("1d", |(l, _)| *l);
            return Err(ApiError::Forbidden(format!(
                "a zone whose capacity is below k is read in buckets of {finest} or more"
            )));
        }
        let to = match &q.to {
            Some(t) => parse_time("to", t)?,
            None => state.clock.now_ms(),
        };
        let from = match &q.from {
            Some(f) => parse_time("from", f)?,
            None => to - DEFAULT_HISTORY_MS.max(bucket_ms),
        };
        if from >= to {
            return Err(ApiError::BadRequest("`from` must be before `to`".into()));
        }
        if (to - from) / bucket_ms > MAX_BUCKETS {
            let days = MAX_BUCKETS * bucket_ms / 86_400_000;
            return Err(ApiError::BadRequest(format!(
                "at most {days} days of {bucket} buckets per request; ask for a coarser bucket or a shorter range"
            )));
        }
        Ok(Series {
            from,
            to,
            bucket_ms,
            bucket,
        })
    }

    fn start_of(&self, minute: UnixMs) -> UnixMs {
        minute.div_euclid(self.bucket_ms) * self.bucket_ms
    }

    /// Folds minute rows (oldest first) into this series' buckets.
    fn fold<R, A: Default>(
        &self,
        rows: Vec<R>,
        minute: impl Fn(&R) -> UnixMs,
        mut add: impl FnMut(&mut A, R),
    ) -> Vec<(UnixMs, A)> {
        let mut out: Vec<(UnixMs, A)> = Vec::new();
        for row in rows {
            let start = self.start_of(minute(&row));
            if out.last().is_none_or(|(s, _)| *s != start) {
                out.push((start, A::default()));
            }
            if let Some((_, acc)) = out.last_mut() {
                add(acc, row);
            }
        }
        out
    }
}

/// Runs a read-only query on the database off the async threads.
async fn read<T: Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&Database) -> Result<T, headcount_store::StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    let path = state.database.clone();
    tokio::task::spawn_blocking(move || Database::open_read_only(&path).and_then(|db| query(&db)))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A query string as its typed keys, or a 400 saying what is wrong.
fn parsed<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn series_query(
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<SeriesQuery, ApiError> {
    let q = parsed(query)?;
    for (key, value) in [
        ("zone", &q.zone),
        ("space", &q.space),
        ("line", &q.line),
        ("from", &q.from),
        ("to", &q.to),
        ("bucket", &q.bucket),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_NAME_BYTES) {
            return Err(ApiError::BadRequest(format!(
                "`{key}` is longer than {MAX_NAME_BYTES} bytes"
            )));
        }
    }
    Ok(q)
}

/// Rounded to two decimals: enough for a chart, no false precision.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

async fn occupancy_history(
    State(state): State<AppState>,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Extension<RowsServed>, Json<wire::OccupancyHistory>), ApiError> {
    let q = series_query(query)?;
    let mut min_bucket_ms = 60_000;
    let scope = match (&q.zone, &q.space) {
        (Some(key), None) => {
            let (camera, zone) = state.layout().zone(key)?;
            min_bucket_ms = state.zone_min_bucket_ms(&camera, &zone);
            Scope::Zone { camera, zone }
        }
        (None, Some(name)) => {
            if !state.occupancy.snapshot().spaces.contains_key(name) {
                return Err(ApiError::NotFound(format!(
                    "no space `{name}`; GET /api/v1/occupancy lists them"
                )));
            }
            Scope::Space(name.clone())
        }
        _ => {
            return Err(ApiError::BadRequest(
                "either `zone` (camera.zone) or `space` is required".into(),
            ))
        }
    };
    let series = Series::parse(&state, &q, "1m", min_bucket_ms)?;
    let (from, to) = (series.from, series.to);
    let width = series.bucket_ms;
    let rows = read(&state, move |db| {
        db.occupancy_series(&scope, width, from, to)
    })
    .await?;
    let buckets = series
        .fold(
            rows,
            |r| r.bucket_start,
            |acc: &mut (u32, u64, u32), r| {
                acc.0 += r.samples;
                acc.1 += r.occupancy_sum;
                acc.2 = acc.2.max(r.occupancy_max);
            },
        )
        .into_iter()
        .map(|(start, (samples, sum, max))| wire::OccupancyBucket {
            start: rfc3339(start),
            mean_occupancy: round2(sum as f64 / f64::from(samples.max(1))),
            max_occupancy: max,
            samples,
        })
        .collect::<Vec<_>>();
    let served = Extension(RowsServed(buckets.len() as u64));
    Ok((
        served,
        Json(wire::OccupancyHistory {
            zone: q.zone,
            space: q.space,
            from: rfc3339(from),
            to: rfc3339(to),
            bucket: series.bucket,
            buckets,
        }),
    ))
}

/// Entries and exits per bucket over one line, or summed over a space's entrances.
async fn flow(
    State(state): State<AppState>,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Extension<RowsServed>, Json<wire::Flow>), ApiError> {
    let q = series_query(query)?;
    let layout = state.layout();
    let line_keys = match (&q.line, &q.space) {
        (Some(line), None) => {
            if !layout.lines.contains_key(line) {
                return Err(ApiError::NotFound(format!(
                    "no line `{line}`; lines are named camera.line as in the config"
                )));
            }
            vec![line.clone()]
        }
        (None, Some(space)) => match layout.space_entrances.get(space) {
            Some(entrances) if !entrances.is_empty() => entrances.clone(),
            Some(_) => {
                return Err(ApiError::BadRequest(format!(
                    "space `{space}` has no entrances, so no flow"
                )))
            }
            None => return Err(ApiError::NotFound(format!("no space `{space}`"))),
        },
        _ => {
            return Err(ApiError::BadRequest(
                "either `line` (camera.line) or `space` is required".into(),
            ))
        }
    };
    let series = Series::parse(&state, &q, "15m", 60_000)?;
    let (from, to, width) = (series.from, series.to, series.bucket_ms);
    let lines: Vec<(CameraId, String)> = line_keys
        .iter()
        .filter_map(|k| layout.lines.get(k).cloned())
        .collect();
    let mut rows = read(&state, move |db| {
        let mut all = Vec::new();
        for (camera, line) in &lines {
            all.extend(db.flow_series(camera, line, width, from, to)?);
        }
        Ok(all)
    })
    .await?;
    rows.sort_by_key(|r| r.bucket_start);
    let buckets: Vec<wire::FlowBucket> = series
        .fold(
            rows,
            |r| r.bucket_start,
            |acc: &mut (u32, u32), r| {
                acc.0 += r.entries;
                acc.1 += r.exits;
            },
        )
        .into_iter()
        .map(|(start, (entries, exits))| wire::FlowBucket {
            start: rfc3339(start),
            entries,
            exits,
        })
        .collect();
    let served = Extension(RowsServed(buckets.len() as u64));
    Ok((
        served,
        Json(wire::Flow {
            entries: buckets.iter().map(|b| u64::from(b.entries)).sum(),
            exits: buckets.iter().map(|b| u64::from(b.exits)).sum(),
            line: q.line,
            space: q.space,
            from: rfc3339(from),
            to: rfc3339(to),
            bucket: series.bucket,
            buckets,
        }),
    ))
}

/// How long visits to a zone lasted: per bucket (by when they ended) and
/// overall; the median and p90 of fewer than k visits are withheld.
async fn dwell(
    State(state): State<AppState>,
    query: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Extension<RowsServed>, Json<wire::Dwell>), ApiError> {
    let q = series_query(query)?;
    let key = q
        .zone
        .clone()
        .ok_or_else(|| ApiError::BadRequest("`zone` is required (camera.zone)".into()))?;
    let (camera, zone) = state.layout().zone(&key)?;
    let min_bucket_ms = state.zone_min_bucket_ms(&camera, &zone);
    let series = Series::parse(&state, &q, "15m", min_bucket_ms)?;
    let k = state.config.get().aggregates.k;
    let (from, to) = (series.from, series.to);
    let width = series.bucket_ms;
    let rows = read(&state, move |db| {
        db.dwell_series(&camera, &zone, width, from, to)
    })
    .await?;
    let mut overall = DwellHistogram::default();
    let buckets = series
        .fold(rows, |r| r.0, |acc: &mut DwellHistogram, r| acc.merge(&r.1))
        .into_iter()
        .map(|(start, h)| {
            overall.merge(&h);
            let (visits, median_s, p90_s) = policy::dwell_figures(&h, k);
            wire::DwellBucket {
                start: rfc3339(start),
                visits,
                median_s,
                p90_s,
            }
        })
        .collect::<Vec<_>>();
    let (visits, median_s, p90_s) = policy::dwell_figures(&overall, k);
    let served = Extension(RowsServed(buckets.len() as u64));
    Ok((
        served,
        Json(wire::Dwell {
            zone: key,
            from: rfc3339(from),
            to: rfc3339(to),
            bucket: series.bucket,
            buckets,
            visits,
            median_s,
            p90_s,
        }),
    ))
}

#[cfg(test)]
mod anomaly_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod governance_tests;
#[cfg(test)]
mod tests;
