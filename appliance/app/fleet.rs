//! The fleet feed's transport: polls newly published buckets (for
//! `/metrics`) and, where `[mqtt]` is configured, publishes each to the
//! broker, retained, one topic per site, space and bucket width:
//!
//! - `{prefix}/{site}/status`: `online`, retained; the broker publishes the
//!   last will `offline` (retained) if the appliance vanishes, and the
//!   appliance publishes `offline` itself when it stops.
//! - `{prefix}/{site}/{space}/aggregates/{15m|1h|1d}`: the latest bucket as
//!   JSON (`headcount_core::fleet::FleetBucket`), withheld values null;
//! - with `mqtt.fiware`, also `{prefix}/{site}/{space}/ngsi-ld/{width}`: the
//!   same bucket as an NGSI-LD `CrowdFlowObserved` entity;
//! - `{prefix}/{site}/anomalies`: each stored anomaly change as JSON
//!   (`headcount_core::anomaly::Notice`, the same body as the webhook's),
//!   QoS 1 and not retained: a notice is an event, and a retained one
//!   would replay a stale alarm to every new subscriber (the current
//!   anomalies are served by the API).
//!
//! Nothing else is ever published: no live counts, no pixels, nothing that
//! identifies a person counted. Anomaly notices describe aggregates only (a
//! kind, a zone, line, space or camera, a value against a threshold).

use headcount_core::anomaly::Notice;
use headcount_core::config::MqttConfig;
use headcount_core::fleet::{FleetBucket, FleetFeed};
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// New buckets appear at most once a minute (rollups); poll twice as often.
const POLL_EVERY: Duration = Duration::from_secs(30);

pub struct Fleet {
    stop: watch::Sender<bool>,
    feed: JoinHandle<()>,
    mqtt: Option<(AsyncClient, String, JoinHandle<()>)>,
    /// Publishes anomaly notices; only with MQTT and a notice channel.
    anomalies: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Starts polling, and the MQTT connection when configured; with MQTT,
    /// `notices` (anomaly changes, once stored) are published too. Without
    /// MQTT the receiver is dropped, so that it holds nothing back.
    pub fn start(
        mut feed: FleetFeed,
        mqtt_config: Option<&MqttConfig>,
        site: &str,
        notices: Option<broadcast::Receiver<Notice>>,
    ) -> anyhow::Result<Fleet> {
        let (stop, mut stopped) = watch::channel(false);
        let mqtt = mqtt_config.map(|m| connect(m, site)).transpose()?;
        let anomalies = match (&mqtt, mqtt_config, notices) {
            (Some((client, _, _)), Some(m), Some(notices)) => Some(tokio::spawn(publish_notices(
                client.clone(),
                format!("{}/{site}/anomalies", m.topic_prefix),
                notices,
                stop.subscribe(),
            ))),
            _ => None,
        };
        let publisher = mqtt.as_ref().map(|(client, _, _)| client.clone());
        let prefix = mqtt_config.map(|m| format!("{}/{site}", m.topic_prefix));
        let fiware = mqtt_config.is_some_and(|m| m.fiware);
        let feed = tokio::spawn(async move {
            loop {
                let (returned, polled) = match tokio::task::spawn_blocking(move || {
                    let polled = feed.poll();
                    (feed, polled)
                })
                .await
                {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::error!(error = %e, "the fleet feed stopped");
                        return;
                    }
                };
                feed = returned;
                match polled {
                    Ok(buckets) => {
                        if let (Some(client), Some(prefix)) = (&publisher, &prefix) {
                            for bucket in &buckets {
                                publish(client, prefix, fiware, bucket).await;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read published aggregates; will retry")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Ok(Fleet {
            stop,
            feed,
            mqtt,
            anomalies,
        })
    }

    /// Stops polling and, with MQTT, says `offline` and disconnects.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.feed.await;
        if let Some(anomalies) = self.anomalies {
            let _ = anomalies.await;
        }
        if let Some((client, status, connection)) = self.mqtt {
            let _ = client
                .publish(status, QoS::AtLeastOnce, true, "offline")
                .await;
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(3), connection).await;
        }
    }
}

/// One bucket, retained, under its topic (and as NGSI-LD with `fiware`).
async fn publish(client: &AsyncClient, prefix: &str, fiware: bool, bucket: &FleetBucket) {
    let base = format!("{prefix}/{}", bucket.space);
    let mut messages = vec![(
        format!("{base}/aggregates/{}", bucket.bucket),
        serde_json::to_vec(bucket),
    )];
    if fiware {
        messages.push((
            format!("{base}/ngsi-ld/{}", bucket.bucket),
            serde_json::to_vec(&bucket.ngsi_ld()),
        ));
    }
    for (topic, payload) in messages {
        match payload {
            Ok(payload) => {
                if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, payload).await {
                    tracing::warn!(error = %e, "cannot queue an MQTT message");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a fleet bucket"),
        }
    }
}

/// Each notice, in order, as JSON on `topic` (QoS 1, not retained), until
/// the channel closes or the fleet stops.
async fn publish_notices(
    client: AsyncClient,
    topic: String,
    mut notices: broadcast::Receiver<Notice>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let notice = tokio::select! {
            received = notices.recv() => received,
            _ = stopped.changed() => return,
        };
        let payload = match notice {
            Ok(notice) => match serde_json::to_vec(&notice) {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode an anomaly notice");
                    continue;
                }
            },
            Err(RecvError::Lagged(lost)) => {
                tracing::warn!(
                    lost,
                    "MQTT fell behind; {lost} anomaly notices were not published"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // Queuing waits while the client's queue is full (broker away); the
        // stop must not wait for the broker.
        tokio::select! {
            queued = client.publish(&topic, QoS::AtLeastOnce, false, payload) => {
                if let Err(e) = queued {
                    tracing::warn!(error = %e, "cannot queue an anomaly notice for MQTT");
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// The client, its status topic and the task driving its connection.
fn connect(
    config: &MqttConfig,
    site: &str,
) -> anyhow::Result<(AsyncClient, String, JoinHandle<()>)> {
    let status = format!("{}/{site}/status", config.topic_prefix);
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_last_will(LastWill::new(&status, "offline", QoS::AtLeastOnce, true));
    if let Some(c) = &config.credentials {
        options.set_credentials(&c.user, c.password.expose());
    }
    if let Some(ca_file) = &config.tls_ca_file {
        let ca = std::fs::read(ca_file)
            .map_err(|e| anyhow::anyhow!("mqtt.ca_file {}: {e}", ca_file.display()))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: None,
        }));
    }
    let (client, mut connection) = AsyncClient::new(options, 256);
    let announcer = client.clone();
    let online_topic = status.clone();
    let broker = format!("{}:{}", config.host, config.port);
    let task = tokio::spawn(async move {
        loop {
            match connection.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(%broker, "connected to the MQTT broker");
                    // Retained, so that a dashboard learns the state at once.
                    if let Err(e) =
                        announcer.try_publish(&online_topic, QoS::AtLeastOnce, true, "online")
                    {
                        tracing::warn!(error = %e, "cannot announce online");
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%broker, error = %e, "MQTT connection failed; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    });
    Ok((client, status, task))
}
