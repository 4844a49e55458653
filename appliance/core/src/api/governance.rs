//! Routes for external consumers and the data-protection officer: the
//! published aggregates (planners), OpenMetrics (Prometheus), the OpenAPI
//! document, and the DPO's views of retention, the audit log and the
//! processing record.

use super::{parse_time, parsed, read, rfc3339, ApiError, AppState, RowsServed, MAX_NAME_BYTES};
use crate::config::DpConfig;
use crate::disclosure::LaplaceNoise;
use crate::fleet::{published_buckets, FleetBucket, PublishedBucket, SENSITIVITY, WIDTHS};
use crate::retention::format_lifetime;
use crate::security::Caller;
use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The most buckets one aggregates request may span.
const MAX_AGGREGATE_BUCKETS: i64 = 31 * 96;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AggregatesQuery {
    space: Option<String>,
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Serialize)]
struct Aggregates {
    site: String,
    space: String,
    bucket: &'static str,
    from: String,
    to: String,
    /// Counts in (0, k) are withheld, with the cells that would reveal them.
    k: u32,
    differential_privacy: Option<Noise>,
    buckets: Vec<PublishedBucket>,
}

#[derive(Debug, Serialize)]
struct Noise {
    mechanism: &'static str,
    epsilon: f64,
    /// The Laplace scale b: the mean absolute error of each value.
    scale: f64,
}

/// Counts per bucket for planners: only published cells, optionally noised
/// against the caller's daily privacy budget.
pub(super) async fn aggregates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AggregatesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = parsed(query)?;
    for (key, value) in [("space", &q.space), ("from", &q.from), ("to", &q.to)] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_NAME_BYTES) {
            return Err(ApiError::BadRequest(format!(
                "`{key}` is longer than {MAX_NAME_BYTES} bytes"
            )));
        }
    }
    let space = q
        .space
        .clone()
        .ok_or_else(|| ApiError::BadRequest("`space` is required".into()))?;
    if !state.config.get().spaces.iter().any(|s| s.name == space) {
        return Err(ApiError::NotFound(format!(
            "no space `{space}`; GET /api/v1/occupancy lists them"
        )));
    }
    let label = q.bucket.as_deref().unwrap_or("1h");
    let &(width, bucket) = WIDTHS
        .iter()
        .find(|(_, l)| *l == label)
        .ok_or_else(|| ApiError::BadRequest("`bucket` must be one of 15m, 1h, 1d".into()))?;
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::BadRequest("`format` must be json or csv".into())),
    };
    let now = state.clock.now_ms();
    let to = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => now,
    }
    .div_euclid(width)
        * width;
    let from = match &q.from {
        Some(f) => parse_time("from", f)?,
        // The 24 buckets before `to`.
        None => to - 24 * width,
    }
    .div_euclid(width)
        * width;
    if from >= to {
        return Err(ApiError::BadRequest(format!(
            "the range holds no whole {bucket} bucket: `from` must be at least one bucket before `to`"
        )));
    }
    if (to - from) / width > MAX_AGGREGATE_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_AGGREGATE_BUCKETS} buckets per request; ask for a coarser bucket or a shorter range"
        )));
    }
    let dp = state.config.get().aggregates.differential_privacy;
    let mut headers = HeaderMap::new();
    let noise = match dp {
        Some(dp) => {
            let charged = state
                .writer
                .charge_budget(caller.name.clone(), now, dp.epsilon, dp.daily_epsilon)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            match charged {
                Ok(budget) => {
                    budget_headers(&mut headers, dp, budget.spent);
                    Some(
                        LaplaceNoise::new(dp.epsilon, SENSITIVITY)
                            .map_err(|e| ApiError::Internal(e.to_string()))?,
                    )
                }
                Err(exhausted) => {
                    let mut response =
                        ApiError::TooManyRequests(exhausted.to_string()).into_response();
                    budget_headers(response.headers_mut(), dp, exhausted.spent);
                    let tomorrow = (now.div_euclid(86_400_000) + 1) * 86_400_000;
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(((tomorrow - now) / 1000).max(1)),
                    );
                    return Ok(response);
                }
            }
        }
        None => None,
    };
    let name = space.clone();
    let rows = read(&state, move |db| {
        db.published_aggregates(width, &name, from, to)
    })
    .await?;
    let buckets = published_buckets(rows, width, noise.as_ref());
    let served = buckets.len() as u64;
    let body = Aggregates {
        site: state.site.clone(),
        space,
        bucket,
        from: rfc3339(from),
        to: rfc3339(to),
        k: state.config.get().aggregates.k,
        differential_privacy: noise.as_ref().zip(dp).map(|(n, dp)| Noise {
            mechanism: "laplace",
            epsilon: dp.epsilon,
            scale: n.scale(),
        }),
        buckets,
    };
    let mut response = if csv {
        let mut download = (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&body),
        )
            .into_response();
        download.extensions_mut().insert(super::Exported);
        download
    } else {
        Json(body).into_response()
    };
    response.headers_mut().extend(headers);
    response.extensions_mut().insert(RowsServed(served));
    Ok(response)
}

fn budget_headers(headers: &mut HeaderMap, dp: DpConfig, spent: f64) {
    let mut put = |name: &'static str, value: f64| {
        if let Ok(v) = HeaderValue::from_str(&format!("{}", (value * 1000.0).round() / 1000.0)) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-privacy-epsilon", dp.epsilon);
    put("x-privacy-budget-daily", dp.daily_epsilon);
    put("x-privacy-budget-spent", spent);
    put(
        "x-privacy-budget-remaining",
        (dp.daily_epsilon - spent).max(0.0),
    );
}

fn to_csv(a: &Aggregates) -> String {
    let cell = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::from(
        "space,start,end,member,entries,exits,occupancy_mean,occupancy_peak,withheld\n",
    );
    for b in &a.buckets {
        let _ = writeln!(
            out,
            "{},{},{},,{},{},{},{},{}",
            a.space,
            b.start,
            b.end,
            cell(b.entries),
            cell(b.exits),
            b.occupancy_mean.map(|m| m.to_string()).unwrap_or_default(),
            cell(b.occupancy_peak),
            b.withheld.join(" ")
        );
        for e in &b.entrances {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},,,{}",
                a.space,
                b.start,
                b.end,
                e.line,
                cell(e.entries),
                cell(e.exits),
                e.withheld.join(" ")
            );
        }
    }
    out
}

/// The OpenAPI 3.1 description of every route (a test keeps it in step
/// with `ROUTES`).
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// OpenMetrics for Prometheus: camera health figures and the latest
/// published aggregates (withheld cells are left out, and counted).
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let health = state.health.snapshot();
    let _ = writeln!(
        out,
        "# TYPE headcount_camera_up gauge\n# HELP headcount_camera_up 1 while the camera streams."
    );
    for (camera, h) in &health {
        let up = matches!(h.state, crate::health::CameraState::Streaming) as u8;
        let _ = writeln!(
            out,
            "headcount_camera_up{{site=\"{}\",camera=\"{camera}\"}} {up}",
            label(&state.site)
        );
    }
    type Counter = fn(&crate::health::CameraHealth) -> u64;
    let counters: [(&str, &str, Counter); 4] = [
        ("frames_analysed", "Frames analysed.", |h| h.frames_analysed),
        (
            "frames_dropped",
            "Frames dropped before analysis under load.",
            |h| h.frames_dropped,
        ),
        (
            "frames_obscured",
            "Frames obscured whole because redaction could not vouch for them.",
            |h| h.frames_obscured,
        ),
        ("reconnects", "Reconnections to the camera.", |h| {
            h.reconnects
        }),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# TYPE headcount_{name} counter\n# HELP headcount_{name} {help}"
        );
        for (camera, h) in &health {
            let _ = writeln!(
                out,
                "headcount_{name}_total{{site=\"{}\",camera=\"{camera}\"}} {}",
                label(&state.site),
                value(h)
            );
        }
    }
    let latest = state.fleet.latest();
    type Measure = fn(&FleetBucket) -> Option<f64>;
    let measures: [(&str, &str, Measure); 4] = [
        ("entries", "Entries in the latest published bucket.", |b| {
            b.cells.entries.map(|v| v as f64)
        }),
        ("exits", "Exits in the latest published bucket.", |b| {
            b.cells.exits.map(|v| v as f64)
        }),
        (
            "occupancy_mean",
            "Mean occupancy in the latest published bucket.",
            |b| b.cells.occupancy_mean,
        ),
        (
            "occupancy_peak",
            "Peak occupancy in the latest published bucket.",
            |b| b.cells.occupancy_peak.map(|v| v as f64),
        ),
    ];
    for (name, help, value) in measures {
        let _ = writeln!(out, "# TYPE headcount_space_{name} gauge\n# HELP headcount_space_{name} {help} Withheld values are absent.");
        for b in &latest {
            if let Some(v) = value(b) {
                let _ = writeln!(
                    out,
                    "headcount_space_{name}{{site=\"{}\",space=\"{}\",bucket=\"{}\"}} {v}",
                    label(&b.site),
                    label(&b.space),
                    b.bucket
                );
            }
        }
    }
    let _ = writeln!(out, "# TYPE headcount_space_withheld gauge\n# HELP headcount_space_withheld Measures withheld in the latest published bucket (small counts).");
    let _ = writeln!(out, "# TYPE headcount_space_bucket_start_seconds gauge\n# HELP headcount_space_bucket_start_seconds Start of the latest published bucket.");
    for b in &latest {
        let labels = format!(
            "site=\"{}\",space=\"{}\",bucket=\"{}\"",
            label(&b.site),
            label(&b.space),
            b.bucket
        );
        let _ = writeln!(
            out,
            "headcount_space_withheld{{{labels}}} {}",
            b.cells.withheld.len()
        );
        let _ = writeln!(
            out,
            "headcount_space_bucket_start_seconds{{{labels}}} {}",
            b.cells.start_ms / 1000
        );
    }
    out.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// A label value with the characters OpenMetrics escapes escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Debug, Serialize)]
struct Retention {
    at: String,
    classes: Vec<RetentionClass>,
    receipts: Vec<crate::storage::AuditRecord>,
}

#[derive(Debug, Serialize)]
struct RetentionClass {
    class: &'static str,
    description: &'static str,
    limit: String,
    maximum: String,
    justification: Option<String>,
    /// Where it lives: `database` or `memory`.
    stored_in: &'static str,
    rows: u64,
    oldest: Option<String>,
    last_sweep: Option<Sweep>,
}

#[derive(Debug, Serialize)]
struct Sweep {
    at: String,
    cutoff: String,
    rows: u64,
}

/// Every data class: its limit, its oldest row, the last sweep, and the
/// latest deletion receipts.
pub(super) async fn dpo_retention(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (overview, receipts) = read(&state, |db| {
        Ok((db.retention_overview()?, db.deletion_receipts(100)?))
    })
    .await?;
    let config = state.config.get();
    let policy = &config.retention;
    let classes: Vec<RetentionClass> = overview
        .into_iter()
        .map(|c| {
            let limit = policy.get(c.class);
            let in_memory = matches!(c.class, crate::retention::DataClass::Snapshots);
            RetentionClass {
                class: c.class.key(),
                description: c.class.description(),
                limit: format_lifetime(limit.limit_ms),
                maximum: format_lifetime(c.class.maximum_ms()),
                justification: limit.justification.clone(),
                stored_in: if in_memory { "memory" } else { "database" },
                rows: if in_memory {
                    state.snapshots.held() as u64
                } else {
                    c.rows
                },
                oldest: c.oldest.map(rfc3339),
                last_sweep: c.last_sweep.map(|(at, cutoff, rows)| Sweep {
                    at: rfc3339(at),
                    cutoff: rfc3339(cutoff),
                    rows,
                }),
            }
        })
        .collect();
    let served = classes.len() as u64 + receipts.len() as u64;
    let mut response = Json(Retention {
        at: rfc3339(state.clock.now_ms()),
        classes,
        receipts,
    })
    .into_response();
    response.extensions_mut().insert(RowsServed(served));
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct AuditPage {
    entries: Vec<crate::storage::AuditRecord>,
    /// Pass as `after` for the next page; None when this is the last.
    next_after: Option<u64>,
}

/// The access and change log, oldest first, a page at a time.
pub(super) async fn dpo_audit(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = parsed(query)?;
    let from = q
        .from
        .as_deref()
        .map(|f| parse_time("from", f))
        .transpose()?
        .unwrap_or(i64::MIN);
    let to =
        q.to.as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?
            .unwrap_or(i64::MAX);
    let limit = q.limit.unwrap_or(500);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit` must be between 1 and 5000".into(),
        ));
    }
    let after = q.after.unwrap_or(0);
    let entries = read(&state, move |db| {
        db.audit_entries(from, to, limit as usize, after)
    })
    .await?;
    let next_after = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let served = entries.len() as u64;
    let mut response = Json(AuditPage {
        entries,
        next_after,
    })
    .into_response();
    response.extensions_mut().insert(RowsServed(served));
    Ok(response)
}

/// The GDPR Art. 30 record of processing, generated from the config.
pub(super) async fn dpo_processing_record(State(state): State<AppState>) -> Response {
    let record =
        crate::dpo::ProcessingRecord::from_config(&state.config.get(), state.clock.now_ms());
    Json(record).into_response()
}
