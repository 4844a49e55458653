//! The dashboard's live feed: one Server-Sent Events stream per page with
//! occupancy, camera health and open anomalies. Each is sent at connect and
//! then only when it changed, checked every second, so a page never polls.
//! The stream checks its caller again each second (`access::recheck`: the
//! session or the bearer token's grant, never a login, so never the
//! lockout) and ends when the session or token does.
//!
//! Streams are capped per token (`STREAMS_PER_TOKEN`; more are refused) and
//! in total (`MAX_STREAMS`: more non-admin streams are refused, an admin's
//! takes the place of the least recently opened non-admin stream, which
//! ends); see `quota`.

use super::access::{off_the_runtime, recheck, Credential};
use super::quota::{self, Held, Room};
use super::{anomalies, health_now, occupancy_now, ApiError, AppState};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use headcount_domain::security::{Caller, Role};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Open anomalies come from the database: read them less often.
const ANOMALIES_EVERY: u32 = 2;
/// Streams open at once (each holds a task and reads).
pub const MAX_STREAMS: usize = 32;
/// Streams one token may hold at once: a few pages open.
pub const STREAMS_PER_TOKEN: usize = 4;

/// One open stream, as the caps see it.
struct Open {
    token: String,
    admin: bool,
    /// Set when an admin's stream took this one's place: it ends.
    ended: Arc<AtomicBool>,
}

#[derive(Default)]
struct Streams {
    next: u64,
    open: HashMap<u64, Open>,
}

/// The open streams; a stream gives its place back when dropped.
#[derive(Clone, Default)]
pub struct StreamSlots(Arc<Mutex<Streams>>);

struct Slot {
    streams: Arc<Mutex<Streams>>,
    number: u64,
    ended: Arc<AtomicBool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.streams).open.remove(&self.number);
    }
}

fn lock(streams: &Mutex<Streams>) -> std::sync::MutexGuard<'_, Streams> {
    streams.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamSlots {
    /// A place for a new stream of `caller`, or why not.
    fn take(&self, caller: &Caller) -> Result<Slot, ApiError> {
        let admin = caller.role == Role::Admin;
        let mut streams = lock(&self.0);
        let held: Vec<Held<'_, u64>> = streams
            .open
            .iter()
            .map(|(number, open)| Held {
                key: *number,
                token: &open.token,
                admin: open.admin,
                // Numbered in the order opened.
                recency: i64::try_from(*number).unwrap_or(i64::MAX),
            })
            .collect();
        match quota::room(&held, &caller.id, admin, STREAMS_PER_TOKEN, MAX_STREAMS) {
            Room::Free => {}
            Room::Evict(number) => {
                if let Some(open) = streams.open.remove(&number) {
                    open.ended.store(true, Ordering::SeqCst);
                }
            }
            Room::TokenFull(_) => {
                return Err(ApiError::Unavailable(format!(
                    "this token has {STREAMS_PER_TOKEN} live streams open already; close a dashboard and retry"
                )))
            }
            Room::Full => {
                return Err(ApiError::Unavailable(format!(
                    "{MAX_STREAMS} live streams are open already; close a dashboard and retry"
                )))
            }
        }
        let number = streams.next;
        streams.next += 1;
        let ended = Arc::new(AtomicBool::new(false));
        streams.open.insert(
            number,
            Open {
                token: caller.id.clone(),
                admin,
                ended: ended.clone(),
            },
        );
        Ok(Slot {
            streams: self.0.clone(),
            number,
            ended,
        })
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
    credential: Credential,
    sent: Sent,
    ticks: u32,
    slot: Slot,
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

    /// Whether the stream keeps its place, and the session or token that
    /// opened it still stands.
    fn still_allowed(&self) -> bool {
        !self.slot.ended.load(Ordering::SeqCst)
            && off_the_runtime(|| {
                recheck(
                    &self.state.guard,
                    &self.credential,
                    self.state.clock.now_ms(),
                )
            })
            .is_ok()
    }
}

/// Drops the reading time so that only a changed figure counts as a change.
fn strip_at(json: &str) -> &str {
    json.split_once(",\"zones\"").map_or(json, |(_, rest)| rest)
}

pub(super) async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(credential): Extension<Credential>,
) -> Result<Response, ApiError> {
    let slot = state.live_streams.take(&caller)?;
    let feed = Feed {
        credential,
        state,
        sent: Sent::default(),
        ticks: 0,
        slot,
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
