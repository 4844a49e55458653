//! The fleet feed's transport to an MQTT broker (`[mqtt]`): every published
//! bucket goes out once per broker, from the stored outbox
//! (`storage::publication`), so that a restart or a broker outage loses or
//! re-draws nothing:
//!
//! - `{prefix}/{site}/status`: `online`, retained, after each connection;
//!   the broker publishes the last will `offline` (retained) if the
//!   appliance vanishes, and the appliance publishes `offline` itself when
//!   it stops;
//! - `{prefix}/{site}/descriptor`: the site descriptor
//!   (`headcount_store::fleet::site_descriptor`: schema version, spaces and
//!   capacities, time zone, location, widths, k), retained, after each
//!   connection.
//! - `{prefix}/{site}/{space}/aggregates/{15m|1h|1d}`: each published bucket
//!   as JSON (`headcount_store::fleet::FleetBucket`, with its idempotency key
//!   `id` = site/space/width/start), oldest first, **not retained**: the
//!   stream a subscriber with a persistent session (or a bridge, which
//!   re-sends whatever is retained each time it subscribes) receives once;
//! - `.../aggregates/{width}/latest`: the newest of them, retained, for a
//!   subscriber that arrives later;
//! - with `mqtt.fiware`, also `{prefix}/{site}/{space}/ngsi-ld/{width}` (and
//!   `/latest`): the same bucket as an NGSI-LD `CrowdFlowObserved` entity;
//! - with `mqtt.anomalies`, `{prefix}/{site}/anomalies`: each anomaly as the
//!   disclosure policy lets it leave (`disclosure::push`), QoS 1, not
//!   retained (a retained notice would replay a stale alarm);
//! - with `mqtt.live`, `{prefix}/{site}/live/...` and, with
//!   `mqtt.home_assistant`, the discovery configs: what `disclosure::live`
//!   makes of the running counts, looked at every 250 ms, each topic sent
//!   retained when its payload changed and at most once a second; a topic
//!   that is no longer wanted (a zone removed in the editor) is cleared
//!   with an empty retained message. After each connection the broker is
//!   asked what it retains under this appliance's live and discovery
//!   topics (`disclosure::live::owned_filters`) and its buckets' streams,
//!   so that what went away while the appliance was stopped or
//!   disconnected, the live feed once it is turned off, and the buckets an
//!   earlier version retained are cleared too; then everything is sent
//!   again. A broker that drops the connection rather than grant those
//!   subscriptions is not asked again while the appliance runs.
//!
//! One task publishes, one message in flight at a time, only while
//! connected: it waits for the broker's PUBACK of each message before the
//! next, and a bucket leaves the outbox only once every message for it was
//! acknowledged. A connection lost before the PUBACK sends the same bucket
//! again after reconnecting (the session is clean, so nothing is left
//! queued inside the client to be sent twice); a subscriber that sees a
//! bucket twice drops it by its `id`.

use headcount_domain::analytics::OccupancyBoard;
use headcount_domain::clock::Clock;
use headcount_domain::config::MqttConfig;
use headcount_domain::disclosure::live::{owned_filters, LiveFeed};
use headcount_domain::disclosure::push::PushedNotice;
use headcount_domain::health::HealthBoard;
use headcount_store::fleet::FleetBucket;
use headcount_store::{Database, Writer};
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// New buckets appear at most once a minute (rollups); look this often.
const POLL_EVERY: Duration = Duration::from_secs(10);
/// How long a message may wait for its PUBACK before it counts as lost.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Buckets read from the outbox at a time.
const BATCH: usize = 64;
/// Anomaly notices held while the broker is away; older ones are dropped.
const HELD_NOTICES: usize = 256;
/// How often the live counts are looked at.
const LIVE_LOOK_EVERY: Duration = Duration::from_millis(250);
/// The least time between two messages on one live topic.
const LIVE_TOPIC_INTERVAL: Duration = Duration::from_secs(1);

/// Where the live feed reads the running counts and camera states.
pub struct LiveSource {
    pub feed: LiveFeed,
    pub board: OccupancyBoard,
    pub health: HealthBoard,
    pub clock: std::sync::Arc<dyn Clock>,
}

pub struct Fleet {
    stop: watch::Sender<bool>,
    publisher: JoinHandle<()>,
    connection: JoinHandle<()>,
}

/// What the connection task tells the publisher.
#[derive(Debug, Clone, PartialEq)]
enum Link {
    Connected,
    Disconnected,
    /// A QoS 1 publish left with this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
    /// The broker acknowledged a subscription.
    Subscribed,
    /// The broker holds a retained message on this topic.
    Retained(String),
}

/// How long the broker's retained messages are awaited after a
/// subscription is acknowledged (Mosquitto sends them at once), and in all.
const RETAINED_QUIET: Duration = Duration::from_millis(300);
const RETAINED_AT_MOST: Duration = Duration::from_secs(3);

impl Fleet {
    /// Connects and starts delivering the outbox of this broker (registered
    /// by `Appliance::start`) and, with `notices`, the anomaly pushes.
    pub fn start(
        config: &MqttConfig,
        site: &str,
        database: PathBuf,
        writer: Writer,
        notices: Option<broadcast::Receiver<PushedNotice>>,
        live: Option<LiveSource>,
        descriptor: serde_json::Value,
    ) -> anyhow::Result<Fleet> {
        let (stop, stopped) = watch::channel(false);
        let status = format!("{}/{site}/status", config.topic_prefix);
        let (client, connection) = connect(config, &status)?;
        let (links, link_rx) = mpsc::channel(64);
        let connection = tokio::spawn(drive(
            connection,
            links,
            format!("{}:{}", config.host, config.port),
        ));
        let publisher = Publisher {
            client,
            links: link_rx,
            connected: false,
            broker: config.broker_id(),
            site: site.to_string(),
            prefix: format!("{}/{site}", config.topic_prefix),
            status,
            descriptor: descriptor.to_string(),
            fiware: config.fiware,
            database,
            writer,
            held: VecDeque::new(),
            outbox_due: Instant::now(),
            live,
            owned_filters: owned_filters(
                &config.topic_prefix,
                site,
                config.home_assistant.as_deref(),
            )
            .into_iter()
            .chain(
                // The buckets' streams (not their `latest`), which earlier
                // versions retained.
                ["aggregates", "ngsi-ld"]
                    .map(|kind| format!("{}/{site}/+/{kind}/+", config.topic_prefix)),
            )
            .collect(),
            learn: true,
            published: BTreeMap::new(),
            sent_at: HashMap::new(),
        };
        let publisher = tokio::spawn(publisher.run(notices, stopped));
        Ok(Fleet {
            stop,
            publisher,
            connection,
        })
    }

    /// Says `offline`, disconnects and stops.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.publisher.await;
        let _ = tokio::time::timeout(Duration::from_secs(3), self.connection).await;
    }
}

/// The client and its event loop: clean session, last will `offline`.
fn connect(config: &MqttConfig, status: &str) -> anyhow::Result<(AsyncClient, rumqttc::EventLoop)> {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_last_will(LastWill::new(status, "offline", QoS::AtLeastOnce, true));
    if let Some(c) = &config.credentials {
        options.set_credentials(&c.user, c.password.expose());
    }
    if let Some(ca_file) = &config.tls_ca_file {
        let ca = std::fs::read(ca_file)
            .map_err(|e| anyhow::anyhow!("mqtt.ca_file {}: {e}", ca_file.display()))?;
        let client_auth = match &config.client_auth {
            Some((cert, key)) => {
                let read = |path: &PathBuf, key: &str| {
                    std::fs::read(path)
                        .map_err(|e| anyhow::anyhow!("mqtt.{key} {}: {e}", path.display()))
                };
                Some((read(cert, "client_cert")?, read(key, "client_key")?))
            }
            None => None,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(AsyncClient::new(options, 16))
}

/// Polls the event loop, reconnecting after 5 s, and reports what the
/// publisher needs; ends at the clean disconnect or when the publisher is gone.
async fn drive(mut connection: rumqttc::EventLoop, links: mpsc::Sender<Link>, broker: String) {
    loop {
        let link = match connection.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%broker, "connected to the MQTT broker");
                Link::Connected
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => Link::Acked(ack.pkid),
            Ok(Event::Incoming(Packet::SubAck(_))) => Link::Subscribed,
            // An empty retained message clears; it is not retained.
            Ok(Event::Incoming(Packet::Publish(p))) if p.retain && !p.payload.is_empty() => {
                Link::Retained(p.topic)
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Link::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(%broker, error = %e, "MQTT connection failed; retrying in 5 s");
                if links.send(Link::Disconnected).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if links.send(link).await.is_err() {
            return;
        }
    }
}

/// Why a message did not get its PUBACK.
#[derive(Debug)]
enum Lost {
    Disconnected,
    /// Connected again meanwhile: the clean session dropped the message.
    Reconnected,
    Timeout,
    Stopped,
}

struct Publisher {
    client: AsyncClient,
    links: mpsc::Receiver<Link>,
    connected: bool,
    broker: String,
    site: String,
    prefix: String,
    status: String,
    /// The site descriptor, as JSON.
    descriptor: String,
    fiware: bool,
    database: PathBuf,
    writer: Writer,
    held: VecDeque<PushedNotice>,
    /// When the outbox is to be read next.
    outbox_due: Instant,
    live: Option<LiveSource>,
    /// Where only this appliance retains (or retained) messages that may
    /// go stale: its live and discovery topics, its buckets' streams.
    owned_filters: Vec<String>,
    /// Whether to ask the broker for them after connecting (not after one
    /// dropped the connection instead of granting the subscriptions).
    learn: bool,
    /// The live topics as the broker retains them since this connection
    /// (an empty payload: retained before, not sent since).
    published: BTreeMap<String, String>,
    /// When each live topic was last sent.
    sent_at: HashMap<String, Instant>,
}

impl Publisher {
    async fn run(
        mut self,
        mut notices: Option<broadcast::Receiver<PushedNotice>>,
        mut stopped: watch::Receiver<bool>,
    ) {
        loop {
            if *stopped.borrow() {
                break;
            }
            if self.connected {
                match self.deliver().await {
                    Ok(()) => {}
                    Err(Lost::Stopped) => break,
                    Err(Lost::Reconnected) => {
                        self.note(Link::Connected).await;
                        continue;
                    }
                    Err(Lost::Disconnected | Lost::Timeout) => continue,
                }
            }
            // Wait for something to do: a link change, a notice, the next
            // look at the outbox or the live counts.
            let look = match self.live {
                Some(_) => LIVE_LOOK_EVERY,
                None => POLL_EVERY,
            };
            // While disconnected only a link change or a notice matters.
            let now = Instant::now();
            let outbox = if self.connected {
                self.outbox_due.max(now)
            } else {
                now + look
            };
            let next_look = tokio::time::Instant::from_std((now + look).min(outbox));
            tokio::select! {
                link = self.links.recv() => match link {
                    Some(link) => self.note(link).await,
                    None => break,
                },
                notice = recv(&mut notices) => self.hold(notice),
                _ = tokio::time::sleep_until(next_look) => {}
                _ = stopped.changed() => break,
            }
        }
        if self.connected {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.client
                    .publish(&self.status, QoS::AtLeastOnce, true, "offline"),
            )
            .await;
        }
        let _ = self.client.disconnect().await;
    }

    /// A link change seen while idle.
    async fn note(&mut self, link: Link) {
        match link {
            Link::Connected => {
                self.connected = true;
                // A new connection: read the outbox and resend the live state.
                self.outbox_due = Instant::now();
                self.published.clear();
                self.sent_at.clear();
                // Retained, so that a dashboard learns the state at once.
                if let Err(e) = self
                    .send(self.status.clone(), b"online".to_vec(), true)
                    .await
                {
                    tracing::warn!(error = ?e, "cannot announce online");
                }
                let descriptor = format!("{}/descriptor", self.prefix);
                let payload = self.descriptor.clone().into_bytes();
                if let Err(e) = self.send(descriptor, payload, true).await {
                    tracing::warn!(error = ?e, "cannot publish the site descriptor");
                }
                self.learn_retained().await;
            }
            Link::Disconnected => self.connected = false,
            Link::Sent(_) | Link::Acked(_) | Link::Subscribed | Link::Retained(_) => {}
        }
    }

    /// What the broker retains under this appliance's own topics, as
    /// `published` with unknown (empty) payloads: `publish_live` then
    /// clears what is no longer wanted and sends the rest again. A broker
    /// that refuses the subscription (its ACL) or says nothing leaves
    /// `published` empty, as before; one that drops the connection instead
    /// is not asked again, so that the feed is still delivered.
    async fn learn_retained(&mut self) {
        if !self.learn {
            return;
        }
        for filter in &self.owned_filters {
            if self
                .client
                .subscribe(filter, QoS::AtMostOnce)
                .await
                .is_err()
            {
                return;
            }
        }
        let mut acknowledged = 0;
        let started = tokio::time::Instant::now();
        let mut quiet_from: Option<tokio::time::Instant> = None;
        loop {
            let deadline = match quiet_from {
                Some(from) => (from + RETAINED_QUIET).min(started + RETAINED_AT_MOST),
                None => started + RETAINED_AT_MOST,
            };
            match tokio::time::timeout_at(deadline, self.links.recv()).await {
                Err(_) => break,
                Ok(None) => return,
                Ok(Some(Link::Disconnected)) => {
                    self.connected = false;
                    self.learn = false;
                    tracing::warn!(
                        "the MQTT broker dropped the connection while asked what it retains; \
                         stale retained topics will not be cleared while this appliance runs"
                    );
                    return;
                }
                Ok(Some(Link::Subscribed)) => {
                    acknowledged += 1;
                    if acknowledged == self.owned_filters.len() {
                        quiet_from = Some(tokio::time::Instant::now());
                    }
                }
                Ok(Some(Link::Retained(topic))) => {
                    self.published.entry(topic).or_default();
                    if quiet_from.is_some() {
                        quiet_from = Some(tokio::time::Instant::now());
                    }
                }
                Ok(Some(_)) => {}
            }
        }
        for filter in &self.owned_filters {
            let _ = self.client.unsubscribe(filter).await;
        }
        if !self.published.is_empty() {
            tracing::info!(
                topics = self.published.len(),
                "the broker retains topics of this appliance from before; stale ones will be cleared"
            );
        }
    }

    fn hold(&mut self, notice: Option<PushedNotice>) {
        if let Some(notice) = notice {
            if self.held.len() == HELD_NOTICES {
                self.held.pop_front();
                tracing::warn!("the MQTT broker is away; an anomaly notice was dropped");
            }
            self.held.push_back(notice);
        }
    }

    /// Held notices, the live state, then (when due) the outbox until it
    /// is empty.
    async fn deliver(&mut self) -> Result<(), Lost> {
        while let Some(notice) = self.held.front() {
            let topic = format!("{}/anomalies", self.prefix);
            match serde_json::to_vec(notice) {
                Ok(payload) => self.send(topic, payload, false).await?,
                Err(e) => tracing::error!(error = %e, "cannot encode an anomaly notice"),
            }
            self.held.pop_front();
        }
        self.publish_live().await?;
        if Instant::now() < self.outbox_due {
            return Ok(());
        }
        self.outbox_due = Instant::now() + POLL_EVERY;
        {
            let database = self.database.clone();
            let broker = self.broker.clone();
            let pending = tokio::task::spawn_blocking(move || {
                Database::open_read_only(&database).and_then(|db| db.outbox(&broker, BATCH))
            })
            .await;
            let pending = match pending {
                Ok(Ok(pending)) => pending,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the fleet outbox; will retry");
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "the fleet outbox reader failed");
                    return Ok(());
                }
            };
            // A full batch: more may wait, read again at once (the live
            // topics and the notices go first, so a backlog after an
            // outage never holds them up).
            if pending.len() == BATCH {
                self.outbox_due = Instant::now();
            }
            // The newest bucket of each space and width in this batch is
            // also retained as its `latest`.
            let newest: Vec<bool> = (0..pending.len())
                .map(|i| {
                    !pending[i + 1..]
                        .iter()
                        .any(|q| q.width_ms == pending[i].width_ms && q.space == pending[i].space)
                })
                .collect();
            for (p, newest) in pending.into_iter().zip(newest) {
                let key = (p.width_ms, p.space.clone(), p.row.bucket_start);
                let bucket = FleetBucket::new(&self.site, &p.space, p.width_ms, p.row);
                self.publish_bucket(&bucket, newest).await?;
                let (width_ms, space, start) = key;
                if let Err(e) = self
                    .writer
                    .delivered(self.broker.clone(), width_ms, space, start)
                    .await
                {
                    tracing::error!(error = %e, "cannot record a fleet delivery");
                    return Err(Lost::Stopped);
                }
            }
        }
        Ok(())
    }

    /// The live topics whose payload changed (each at most once a
    /// second), and an empty retained message for each that went away.
    async fn publish_live(&mut self) -> Result<(), Lost> {
        let wanted = match &self.live {
            Some(live) => live.feed.messages(
                &live.board.snapshot(),
                &live.health.snapshot(),
                live.clock.now_ms(),
            ),
            // The live feed is off: only what it retained before is cleared.
            None if self.published.is_empty() => return Ok(()),
            None => Vec::new(),
        };
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|topic| !wanted.iter().any(|(t, _)| t == *topic))
            .cloned()
            .collect();
        for topic in gone {
            self.send(topic.clone(), Vec::new(), true).await?;
            self.published.remove(&topic);
            self.sent_at.remove(&topic);
        }
        for (topic, payload) in wanted {
            if self.published.get(&topic) == Some(&payload)
                || self
                    .sent_at
                    .get(&topic)
                    .is_some_and(|at| at.elapsed() < LIVE_TOPIC_INTERVAL)
            {
                continue;
            }
            self.send(topic.clone(), payload.clone().into_bytes(), true)
                .await?;
            self.sent_at.insert(topic.clone(), Instant::now());
            self.published.insert(topic, payload);
        }
        Ok(())
    }

    /// One bucket under its topic (and as NGSI-LD with `fiware`), not
    /// retained; and, when it is the newest so far, retained under
    /// `/latest` as well.
    async fn publish_bucket(&mut self, bucket: &FleetBucket, newest: bool) -> Result<(), Lost> {
        let base = format!("{}/{}", self.prefix, bucket.space);
        let mut messages = vec![(
            format!("{base}/aggregates/{}", bucket.bucket),
            serde_json::to_vec(bucket),
        )];
        if self.fiware {
            messages.push((
                format!("{base}/ngsi-ld/{}", bucket.bucket),
                serde_json::to_vec(&bucket.ngsi_ld()),
            ));
        }
        for (topic, payload) in messages {
            match payload {
                Ok(payload) => {
                    if newest {
                        self.send(format!("{topic}/latest"), payload.clone(), true)
                            .await?;
                    }
                    self.send(topic, payload, false).await?;
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a fleet bucket"),
            }
        }
        Ok(())
    }

    /// Publishes one message at QoS 1 and waits for its PUBACK.
    async fn send(&mut self, topic: String, payload: Vec<u8>, retain: bool) -> Result<(), Lost> {
        if !self.connected {
            return Err(Lost::Disconnected);
        }
        if self
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .is_err()
        {
            return Err(Lost::Stopped);
        }
        let mut ours = None;
        loop {
            let link = tokio::time::timeout(ACK_TIMEOUT, self.links.recv()).await;
            match link {
                Err(_) => return Err(Lost::Timeout),
                Ok(None) => return Err(Lost::Stopped),
                Ok(Some(Link::Disconnected)) => {
                    self.connected = false;
                    return Err(Lost::Disconnected);
                }
                Ok(Some(Link::Connected)) => return Err(Lost::Reconnected),
                Ok(Some(Link::Sent(pkid))) if ours.is_none() => ours = Some(pkid),
                Ok(Some(Link::Acked(pkid))) if Some(pkid) == ours => return Ok(()),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// The next notice, or never when there is no notice channel.
async fn recv(notices: &mut Option<broadcast::Receiver<PushedNotice>>) -> Option<PushedNotice> {
    let Some(receiver) = notices else {
        return std::future::pending().await;
    };
    loop {
        match receiver.recv().await {
            Ok(notice) => return Some(notice),
            Err(RecvError::Lagged(lost)) => {
                tracing::warn!(
                    lost,
                    "MQTT fell behind; {lost} anomaly notices were not published"
                );
            }
            Err(RecvError::Closed) => {
                *notices = None;
                return std::future::pending().await;
            }
        }
    }
}
