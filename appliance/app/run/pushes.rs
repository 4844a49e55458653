//! The one place where stored anomaly changes become what may leave the
//! box: each goes through `disclosure::push::PushFeed` (times to the minute,
//! no acknowledger, no explanation, counts below k banded, wrong-way
//! crossings held back as counts per bucket), and only its output reaches
//! the webhook and MQTT.

use headcount_domain::anomaly::Notice;
use headcount_domain::clock::Clock;
use headcount_domain::disclosure::push::{PushFeed, PushedNotice};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

/// How often counts of buckets that ended are sent.
const TICK: Duration = Duration::from_secs(10);

/// Runs until the notice channel closes.
pub fn spawn(
    mut feed: PushFeed,
    mut notices: broadcast::Receiver<Notice>,
    out: broadcast::Sender<PushedNotice>,
    clock: Arc<dyn Clock>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let pushed = tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(notice) => feed.accept(&notice).into_iter().collect(),
                    Err(RecvError::Lagged(lost)) => {
                        tracing::warn!(lost, "anomaly pushes fell behind; {lost} notices were not sent");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => feed.due(clock.now_ms()),
            };
            for push in pushed {
                // No receiver left is not an error: they may have stopped.
                let _ = out.send(push);
            }
        }
    })
}
