//! The dashboard's live feed: one Server-Sent Events stream per page with
//! occupancy, camera health and open anomalies. Each is sent at connect and
//! then only when it changed, checked every second, so a page never polls.
//! The stream re-checks its caller's credentials each second and ends when
//! the session or token does.

use super::{anomalies, health_now, occupancy_now, ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Open anomalies come from the database: read them less often.
const ANOMALIES_EVERY: u32 = 2;
/// Streams open at once; more get 503 (each holds a task and reads).
pub const MAX_STREAMS: usize = 32;

/// Counts open streams; a stream gives its place back when dropped.
#[derive(Clone, Default)]
pub struct StreamSlots(Arc<AtomicUsize>);

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StreamSlots {
    fn take(&self) -> Option<Slot> {
        let taken = self.0.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.0.clone());
        (taken < MAX_STREAMS).then_some(slot)
    }
}

/// What one stream last sent, to send only changes.
#[derive(Default)]
struct Sent {
    occupancy: String,
    health: String,
    anomalies: String,
}

struct Feed {
    state: AppState,
    headers: HeaderMap,
    sent: Sent,
    ticks: u32,
    _slot: Slot,
}

impl Feed {
    /// The events due now, or None once the caller may no longer read.
    async fn next(&mut self) -> Option<Vec<Event>> {
        if self.ticks > 0 {
            tokio::time::sleep(CHECK_EVERY).await;
        }
        if !self.still_allowed() {
            return None;
        }
        let mut events = Vec::new();
        let occupancy = serde_json::to_string(&occupancy_now(&self.state)).ok()?;
        // The time of the reading alone is no change.
        if strip_at(&occupancy) != strip_at(&self.sent.occupancy) {
            events.push(Event::default().event("occupancy").data(&occupancy));
            self.sent.occupancy = occupancy;
        }
        let health = serde_json::to_string(&health_now(&self.state)).ok()?;
        if health != self.sent.health {
            events.push(Event::default().event("health").data(&health));
            self.sent.health = health;
        }
        if self.ticks % ANOMALIES_EVERY == 0 {
            match anomalies::open_now(&self.state).await {
                Ok(open) => {
                    let open = serde_json::to_string(&open).ok()?;
                    if open != self.sent.anomalies {
                        events.push(Event::default().event("anomalies").data(&open));
                        self.sent.anomalies = open;
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "live feed: cannot read open anomalies"),
            }
        }
        self.ticks = self.ticks.wrapping_add(1);
        Some(events)
    }

    /// Whether the session or token that opened the stream still stands.
    fn still_allowed(&self) -> bool {
        let mut probe = Request::new(axum::body::Body::empty());
        *probe.headers_mut() = self.headers.clone();
        super::access::authenticate(&self.state.guard, &probe, self.state.clock.now_ms()).is_ok()
    }
}

/// Drops the reading time so that only a changed figure counts as a change.
fn strip_at(json: &str) -> &str {
    json.split_once(",\"zones\"").map_or(json, |(_, rest)| rest)
}

pub(super) async fn live(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let slot = state.live_streams.take().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "{MAX_STREAMS} live streams are open already; close a dashboard and retry"
        ))
    })?;
    let feed = Feed {
        headers: request.headers().clone(),
        state,
        sent: Sent::default(),
        ticks: 0,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let events = feed.next().await?;
        Some((
            futures_util::stream::iter(events.into_iter().map(Ok::<_, std::convert::Infallible>)),
            feed,
        ))
    });
    let stream = futures_util::StreamExt::flatten(stream);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
