//! Routes for external consumers and the data-protection officer: the
//! published aggregates (planners), OpenMetrics (Prometheus), the OpenAPI
//! document, and the DPO's views of retention, the audit log and the
//! processing record.

use super::{parse_time, parsed, read, rfc3339, ApiError, AppState, RowsServed, MAX_NAME_BYTES};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use headcount_domain::retention::format_lifetime;
use headcount_store::fleet::{published_bucket, FleetBucket, PublishedBucket};
use headcount_store::publication::{SENSITIVITY, WIDTHS};
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
    /// Counts below k, zero included, are withheld (null), with the cells
    /// that would reveal them: a withheld value says only "fewer than k, or
    /// hidden so that such a count cannot be derived".
    k: u32,
    /// How the values were noised when they were published, if they were.
    differential_privacy: Option<Noise>,
    buckets: Vec<PublishedBucket>,
}

#[derive(Debug, Serialize)]
struct Noise {
    mechanism: &'static str,
    /// Spent once per published bucket, never per request.
    epsilon: f64,
    /// The Laplace scale b: the mean absolute error of each value.
    scale: f64,
}

/// Counts per bucket and space for planners and every other consumer: the
/// cells stored at publication, the same for every caller and every repeat.
pub(super) async fn aggregates(
    State(state): State<AppState>,
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
    let name = space.clone();
    let rows = read(&state, move |db| {
        db.published_aggregates(width, &name, from, to)
    })
    .await?;
    let buckets: Vec<PublishedBucket> = rows
        .into_iter()
        .map(|row| published_bucket(row, width))
        .collect();
    let served = buckets.len() as u64;
    let config = state.config.get();
    let body = Aggregates {
        site: state.site.clone(),
        space,
        bucket,
        from: rfc3339(from),
        to: rfc3339(to),
        k: config.aggregates.k,
        differential_privacy: config.aggregates.differential_privacy.map(|dp| Noise {
            mechanism: "laplace",
            epsilon: dp.epsilon,
            scale: SENSITIVITY / dp.epsilon,
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
    response.extensions_mut().insert(RowsServed(served));
    Ok(response)
}

fn to_csv(a: &Aggregates) -> String {
    let cell = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::from(
        "space,start,end,entries,exits,occupancy_mean,occupancy_peak,withheld,epsilon\n",
    );
    for b in &a.buckets {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            a.space,
            b.start,
            b.end,
            cell(b.entries),
            cell(b.exits),
            b.occupancy_mean.map(|m| m.to_string()).unwrap_or_default(),
            cell(b.occupancy_peak),
            b.withheld.join(" "),
            b.epsilon.map(|e| e.to_string()).unwrap_or_default()
        );
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
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let site = state.site.clone();
    let spaces: Vec<String> = state
        .config
        .get()
        .spaces
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let latest = read(&state, move |db| {
        headcount_store::fleet::latest(db, &site, &spaces)
    })
    .await?;
    let mut out = String::new();
    let storage = state.storage.get();
    let gauges: [(&str, &str, Option<u64>); 5] = [
        (
            "storage_database_bytes",
            "The database and its write-ahead log.",
            Some(storage.database_bytes),
        ),
        (
            "storage_free_bytes",
            "Free space on the database's disk.",
            storage.free_bytes,
        ),
        (
            "storage_min_free_bytes",
            "Below this free space new reads are refused.",
            Some(storage.min_free_bytes),
        ),
        (
            "audit_log_entries",
            "Entries in the audit log (measured hourly).",
            Some(storage.audit_entries),
        ),
        (
            "audit_log_bytes",
            "The audit log's stored fields (measured hourly).",
            Some(storage.audit_bytes),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# TYPE headcount_{name} gauge\n# HELP headcount_{name} {help}"
        );
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "headcount_{name}{{site=\"{}\"}} {value}",
                label(&state.site)
            );
        }
    }
    let health = state.health.snapshot();
    let _ = writeln!(
        out,
        "# TYPE headcount_camera_up gauge\n# HELP headcount_camera_up 1 while the camera streams."
    );
    for (camera, h) in &health {
        let up = matches!(h.state, headcount_domain::health::CameraState::Streaming) as u8;
        let _ = writeln!(
            out,
            "headcount_camera_up{{site=\"{}\",camera=\"{}\"}} {up}",
            label(&state.site),
            label(camera)
        );
    }
    type Counter = fn(&headcount_domain::health::CameraHealth) -> u64;
    let counters: [(&str, &str, Counter); 5] = [
        ("frames_analysed", "Frames analysed.", |h| h.frames_analysed),
        (
            "frames_dropped",
            "Frames dropped before analysis under load.",
            |h| h.frames_dropped,
        ),
        (
            "frames_obscured",
            "Frames not counted, or snapshots obscured whole, because detection failed or was late.",
            |h| h.frames_obscured,
        ),
        (
            "frames_coasted",
            "Frames counted without the person model because the view had not moved.",
            |h| h.frames_coasted,
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
                "headcount_{name}_total{{site=\"{}\",camera=\"{}\"}} {}",
                label(&state.site),
                label(camera),
                value(h)
            );
        }
    }
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
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// A label value with the characters OpenMetrics escapes escaped.
/// A label value as OpenMetrics writes it: backslash, double quote and
/// line feed escaped. Every label value of `/metrics` passes here.
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
    receipts: Vec<headcount_store::AuditRecord>,
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
            let in_memory = matches!(c.class, headcount_domain::retention::DataClass::Snapshots);
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

/// An entry as the DPO sees it: as stored, and the names of the tokens it
/// names by pseudonym, looked up now (the log itself holds no name; a
/// token's name is gone once its row is purged).
#[derive(Debug, Serialize)]
struct AuditView {
    #[serde(flatten)]
    record: headcount_store::AuditRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_name: Option<String>,
}

#[derive(Debug, Serialize)]
struct AuditPage {
    entries: Vec<AuditView>,
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
    let (entries, tokens) = read(&state, move |db| {
        Ok((
            db.audit_entries(from, to, limit as usize, after)?,
            db.tokens()?,
        ))
    })
    .await?;
    let next_after = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let names: std::collections::HashMap<String, String> = tokens
        .into_iter()
        .map(|t| (headcount_store::pseudonym(&t.id), t.name))
        .collect();
    let name_of = |field: &str| names.get(field).cloned();
    let entries: Vec<AuditView> = entries
        .into_iter()
        .map(|record| AuditView {
            actor_name: name_of(&record.actor),
            target_name: name_of(&record.target),
            record,
        })
        .collect();
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
    let record = headcount_domain::dpo::ProcessingRecord::from_config(
        &state.config.get(),
        state.clock.now_ms(),
    );
    Json(record).into_response()
}

#[derive(Deserialize)]
pub(super) struct NoticeQuery {
    camera: Option<String>,
    lang: Option<String>,
}

/// The GDPR Art. 13 sign text for one camera (`?camera=NAME&lang=en|de`),
/// as `headcount dpo notice` prints it.
pub(super) async fn dpo_notice(
    State(state): State<AppState>,
    query: Result<Query<NoticeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use headcount_domain::dpo::{notice, Lang, NoticeError};
    let q = parsed(query)?;
    let camera = q
        .camera
        .ok_or_else(|| ApiError::BadRequest("`camera` is required".into()))?;
    let lang = match q.lang.as_deref() {
        None => Lang::default(),
        Some(code) => code.parse::<Lang>().map_err(ApiError::BadRequest)?,
    };
    let text = notice(&state.config.get(), &camera, lang).map_err(|e| match e {
        NoticeError::UnknownCamera { .. } => ApiError::NotFound(e.to_string()),
        NoticeError::Incomplete { .. } => ApiError::Conflict(e.to_string()),
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The draft GDPR Art. 35 impact assessment (Markdown), as `headcount dpo
/// dpia` prints it.
pub(super) async fn dpo_dpia(State(state): State<AppState>) -> Response {
    let text = headcount_domain::dpo::dpia(&state.config.get(), state.clock.now_ms());
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_escape_what_would_end_or_split_a_sample() {
        assert_eq!(super::label("lobby"), "lobby");
        assert_eq!(super::label("a \"b\" \\ c\nd"), "a \\\"b\\\" \\\\ c\\nd");
    }
}
