//! The data-governance sections: `[retention]` (lifetimes per data class),
//! `[aggregates]` (what external consumers may see), `[mqtt]` (where a
//! fleet's aggregates go) and `[controller]` (who is responsible, for the
//! Art. 30 record and the Art. 13 signs; see `crate::dpo`).

use super::{Credentials, RawCredentials, Validator};
use crate::retention::{
    format_lifetime, parse_lifetime, DataClass, RetentionLimit, RetentionPolicy,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Unknown keys land in `limits` and are refused there by name (serde's
/// `deny_unknown_fields` does not work with `flatten`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawRetention {
    #[serde(default)]
    justification: BTreeMap<String, String>,
    #[serde(flatten)]
    limits: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAggregates {
    k: Option<u32>,
    differential_privacy: Option<bool>,
    epsilon: Option<f64>,
    daily_epsilon: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    broker: Option<String>,
    topic_prefix: Option<String>,
    client_id: Option<String>,
    credentials: Option<RawCredentials>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    fiware: Option<bool>,
    anomalies: Option<bool>,
    live: Option<bool>,
    home_assistant: Option<bool>,
    discovery_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModbus {
    bind: Option<String>,
    max_connections: Option<i64>,
    idle_secs: Option<i64>,
}

/// The read-only Modbus TCP server (`[modbus]`): the live counts as input
/// registers for a building management system.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusConfig {
    pub bind: std::net::SocketAddr,
    /// Clients served at once; one more is closed at once.
    pub max_connections: usize,
    /// A client silent this long is disconnected.
    pub idle_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBacnet {
    bind: Option<String>,
    device_instance: Option<i64>,
    max_subscriptions: Option<i64>,
}

/// The read-only BACnet/IP server (`[bacnet]`): one Device and the live
/// counts as Analog and Binary Values, with change-of-value subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct BacnetConfig {
    /// The address and UDP port (47808 when left out). Linux delivers no
    /// broadcast to a socket bound to one interface's unicast address, so
    /// such a server answers only directed Who-Is; 0.0.0.0 also hears the
    /// broadcast ones, on every interface.
    pub bind: std::net::SocketAddr,
    /// The Device object's instance, unique on the BACnet network.
    pub device_instance: u32,
    /// COV subscriptions held at once, all clients together; each client
    /// (an address) may hold at most a quarter of them.
    pub max_subscriptions: usize,
}

/// What planners, the MQTT fleet and Prometheus may see.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatesConfig {
    /// Counts in (0, k) are withheld.
    pub k: u32,
    pub differential_privacy: Option<DpConfig>,
}

impl Default for AggregatesConfig {
    fn default() -> Self {
        AggregatesConfig {
            k: DEFAULT_K,
            differential_privacy: None,
        }
    }
}

/// Laplace noise on every published bucket, drawn once at publication, and
/// the day's ledger of releases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpConfig {
    /// Spent by each release: one published bucket of one space.
    pub epsilon: f64,
    /// What the releases of one UTC day of data may spend together; beyond
    /// it a day's later buckets are withheld.
    pub daily_epsilon: f64,
}

const DEFAULT_K: u32 = 5;
pub const DEFAULT_EPSILON: f64 = 1.0;
/// Releases per space and day: 96 quarter-hours, 24 hours and the day.
pub const RELEASES_PER_SPACE_DAY: u32 = 96 + 24 + 1;

#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS, trusting the certificates in `ca_file`.
    pub tls_ca_file: Option<PathBuf>,
    /// `mqtts://` with a per-device client certificate and its key (PEM),
    /// for a broker that requires one.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    pub topic_prefix: String,
    pub client_id: String,
    pub credentials: Option<Credentials>,
    /// Also publish each bucket as an NGSI-LD `CrowdFlowObserved` entity.
    pub fiware: bool,
    /// Also publish anomaly notices (minimised, `disclosure::push`); off
    /// unless asked for: anomalies are person-related events.
    pub anomalies: bool,
    /// Also publish the live counts (`disclosure::live`), retained, on
    /// change: facilities-level data, for the site's own broker.
    pub live: bool,
    /// Home Assistant MQTT discovery under this prefix (needs `live`).
    pub home_assistant: Option<String>,
}

impl MqttConfig {
    /// The broker as the fleet outbox names it: scheme, address and topic
    /// prefix, never credentials. A new name starts a new outbox.
    pub fn broker_id(&self) -> String {
        let scheme = if self.tls_ca_file.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.topic_prefix)
    }
}

impl Validator<'_> {
    pub(super) fn retention(&mut self, raw: RawRetention) -> RetentionPolicy {
        let mut limits = Vec::new();
        for (key, text) in &raw.limits {
            let path = format!("retention.{key}");
            let Some(class) = DataClass::from_key(key) else {
                let known: Vec<_> = DataClass::ALL.iter().map(|c| c.key()).collect();
                self.error(
                    path,
                    format!("unknown data class, expected one of: {}", known.join(", ")),
                );
                continue;
            };
            let Some(limit_ms) = parse_lifetime(text) else {
                self.error(
                    path,
                    format!("`{text}` is not a lifetime such as 72h, 90d or 2y"),
                );
                continue;
            };
            if limit_ms < class.minimum_ms() {
                self.error(
                    path,
                    format!(
                        "{text} is shorter than the {} this class needs",
                        format_lifetime(class.minimum_ms())
                    ),
                );
                continue;
            }
            let justification = raw
                .justification
                .get(key)
                .map(|j| j.trim().to_string())
                .filter(|j| !j.is_empty());
            if limit_ms > class.maximum_ms() && justification.is_none() {
                self.error(
                    path,
                    format!(
                        "{text} exceeds the maximum of {} for {key}; keeping it longer needs retention.justification.{key} (it is shown in the processing record)",
                        format_lifetime(class.maximum_ms())
                    ),
                );
                continue;
            }
            limits.push(RetentionLimit {
                class,
                limit_ms,
                justification,
            });
        }
        for key in raw.justification.keys() {
            if !raw.limits.contains_key(key) {
                self.error(
                    format!("retention.justification.{key}"),
                    format!("justifies no lifetime: retention.{key} is not set"),
                );
            }
        }
        RetentionPolicy::new(limits)
    }

    /// `spaces`: how many spaces publish, which sets the default daily
    /// budget (every release of a day fits).
    pub(super) fn aggregates(&mut self, raw: RawAggregates, spaces: usize) -> AggregatesConfig {
        let mut k = raw.k.unwrap_or(DEFAULT_K);
        if !(2..=100).contains(&k) {
            self.error("aggregates.k", format!("{k} is outside [2, 100]"));
            // The other checks go on with the default, so all are named at once.
            k = DEFAULT_K;
        }
        let epsilon = raw.epsilon.unwrap_or(DEFAULT_EPSILON);
        let releases = f64::from(RELEASES_PER_SPACE_DAY) * spaces.max(1) as f64;
        let daily_epsilon = raw.daily_epsilon.unwrap_or(releases * epsilon);
        let dp = raw.differential_privacy.unwrap_or(false);
        if !(epsilon > 0.0 && epsilon <= 10.0) {
            self.error(
                "aggregates.epsilon",
                format!("{epsilon} is outside (0, 10]"),
            );
        }
        if !(daily_epsilon.is_finite() && daily_epsilon >= epsilon) {
            self.error(
                "aggregates.daily_epsilon",
                format!(
                    "{daily_epsilon} is below one release (aggregates.epsilon = {epsilon}): nothing could be published; a day has up to {releases} releases"
                ),
            );
        }
        if !dp && (raw.epsilon.is_some() || raw.daily_epsilon.is_some()) {
            self.error(
                "aggregates.differential_privacy",
                "is off, yet epsilon or daily_epsilon is set; set differential_privacy = true to use them",
            );
        }
        AggregatesConfig {
            k,
            differential_privacy: dp.then_some(DpConfig {
                epsilon,
                daily_epsilon,
            }),
        }
    }

    pub(super) fn mqtt(&mut self, value: Option<toml::Value>, site: &str) -> Option<MqttConfig> {
        let raw: RawMqtt = self.table("mqtt", value?)?;
        let broker = raw.broker.unwrap_or_default();
        let (tls, rest) = if let Some(rest) = broker.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = broker.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            self.error(
                "mqtt.broker",
                format!("`{broker}` is not mqtt://HOST:PORT or mqtts://HOST:PORT"),
            );
            return None;
        };
        let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
            Some((h, p)) => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().ok(),
            ),
            None => (
                rest.trim_end_matches('/').to_string(),
                Some(if tls { 8883 } else { 1883 }),
            ),
        };
        let Some(port) = port.filter(|_| !host.is_empty() && !host.contains(['/', '@'])) else {
            self.error(
                "mqtt.broker",
                format!("`{broker}` is not mqtt://HOST:PORT or mqtts://HOST:PORT"),
            );
            return None;
        };
        if !tls && !super::is_loopback_host(&host) {
            self.error(
                "mqtt.broker",
                format!("`{host}` is beyond loopback: use mqtts:// (with mqtt.ca_file) so that aggregates and credentials travel encrypted"),
            );
        }
        let tls_ca_file = match (tls, raw.ca_file) {
            (true, Some(file)) => Some(self.path(&file)),
            (true, None) => {
                self.error(
                    "mqtt.ca_file",
                    "is needed with mqtts:// (the PEM certificates that sign the broker's)",
                );
                None
            }
            (false, Some(_)) => {
                self.error("mqtt.ca_file", "is only used with mqtts://");
                None
            }
            (false, None) => None,
        };
        let client_auth = match (raw.client_cert, raw.client_key) {
            (Some(cert), Some(key)) if tls => Some((self.path(&cert), self.path(&key))),
            (None, None) => None,
            (Some(_), Some(_)) => {
                self.error("mqtt.client_cert", "is only used with mqtts://");
                None
            }
            (Some(_), None) => {
                self.error(
                    "mqtt.client_key",
                    "is needed with mqtt.client_cert (the PEM private key of the appliance's certificate)",
                );
                None
            }
            (None, Some(_)) => {
                self.error(
                    "mqtt.client_cert",
                    "is needed with mqtt.client_key (the PEM certificate the broker knows the appliance by)",
                );
                None
            }
        };
        let topic_prefix = raw.topic_prefix.unwrap_or_else(|| "headcount".into());
        if topic_prefix.is_empty()
            || topic_prefix.contains(['+', '#', '\0'])
            || topic_prefix.ends_with('/')
        {
            self.error(
                "mqtt.topic_prefix",
                "must be non-empty, without +, # or a trailing /",
            );
        }
        let live = raw.live.unwrap_or(false);
        let home_assistant = match (raw.home_assistant.unwrap_or(false), raw.discovery_prefix) {
            (true, prefix) => {
                let prefix = prefix.unwrap_or_else(|| "homeassistant".into());
                if prefix.is_empty() || prefix.contains(['+', '#', '\0']) || prefix.ends_with('/') {
                    self.error(
                        "mqtt.discovery_prefix",
                        "must be non-empty, without +, # or a trailing /",
                    );
                }
                if !live {
                    self.error(
                        "mqtt.home_assistant",
                        "needs mqtt.live = true: the sensors it announces read the live topics",
                    );
                }
                Some(prefix)
            }
            (false, Some(_)) => {
                self.error(
                    "mqtt.discovery_prefix",
                    "is only used with mqtt.home_assistant = true",
                );
                None
            }
            (false, None) => None,
        };
        let client_id = raw.client_id.unwrap_or_else(|| format!("headcount-{site}"));
        let credentials = raw
            .credentials
            .and_then(|c| self.credentials("mqtt.credentials", c));
        Some(MqttConfig {
            host,
            port,
            tls_ca_file,
            client_auth,
            topic_prefix,
            client_id,
            credentials,
            fiware: raw.fiware.unwrap_or(false),
            anomalies: raw.anomalies.unwrap_or(false),
            live,
            home_assistant,
        })
    }

    pub(super) fn bacnet(&mut self, value: Option<toml::Value>) -> Option<BacnetConfig> {
        let raw: RawBacnet = self.table("bacnet", value?)?;
        let text = raw.bind.unwrap_or_default();
        let bind = text.parse::<std::net::SocketAddr>().ok().or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| std::net::SocketAddr::new(ip, 47808))
        });
        if bind.is_none() {
            self.error(
                "bacnet.bind",
                format!("`{text}` is not an address (and port), such as 192.168.10.20 or 192.168.10.20:47808"),
            );
        }
        // 4194303 is the wildcard instance.
        let device_instance = raw.device_instance.unwrap_or(0);
        if !(0..4_194_303).contains(&device_instance) || raw.device_instance.is_none() {
            self.error(
                "bacnet.device_instance",
                "is needed: a number in [0, 4194302], unique on the BACnet network",
            );
        }
        let max_subscriptions = raw.max_subscriptions.unwrap_or(64);
        if !(4..=1024).contains(&max_subscriptions) {
            self.error(
                "bacnet.max_subscriptions",
                format!("{max_subscriptions} is outside [4, 1024]"),
            );
        }
        Some(BacnetConfig {
            bind: bind?,
            device_instance: device_instance.clamp(0, 4_194_302) as u32,
            max_subscriptions: max_subscriptions.clamp(4, 1024) as usize,
        })
    }

    pub(super) fn modbus(&mut self, value: Option<toml::Value>) -> Option<ModbusConfig> {
        let raw: RawModbus = self.table("modbus", value?)?;
        let bind = match raw.bind.as_deref().map(str::parse::<std::net::SocketAddr>) {
            Some(Ok(bind)) => Some(bind),
            Some(Err(_)) | None => {
                self.error(
                    "modbus.bind",
                    format!(
                        "`{}` is not an address:port such as 192.168.1.20:502",
                        raw.bind.unwrap_or_default()
                    ),
                );
                None
            }
        };
        let max_connections = raw.max_connections.unwrap_or(8);
        if !(1..=64).contains(&max_connections) {
            self.error(
                "modbus.max_connections",
                format!("{max_connections} is outside [1, 64]"),
            );
        }
        let idle_secs = raw.idle_secs.unwrap_or(60);
        if !(5..=3600).contains(&idle_secs) {
            self.error(
                "modbus.idle_secs",
                format!("{idle_secs} is outside [5, 3600] s"),
            );
        }
        Some(ModbusConfig {
            bind: bind?,
            max_connections: max_connections.clamp(1, 64) as usize,
            idle_secs: idle_secs.clamp(5, 3600) as u64,
        })
    }

    /// A zone whose capacity is below k can single a person out: counting
    /// it needs a justification, which the processing record shows.
    pub(super) fn small_zones(&mut self, cameras: &[super::CameraConfig], k: u32) {
        for camera in cameras {
            for zone in &camera.zones {
                let path = format!("cameras.{}.zones.{}", camera.id, zone.name);
                let small = is_small_zone(zone.capacity, k);
                match (small, &zone.small_zone_justification) {
                    (true, None) => self.error(
                        format!("{path}.capacity"),
                        format!(
                            "{} is below aggregates.k ({k}): a count this small singles a person out; to count this zone anyway, say why in {path}.small_zone_justification (it is shown in the processing record)",
                            zone.capacity.unwrap_or_default()
                        ),
                    ),
                    (false, Some(_)) => self.error(
                        format!("{path}.small_zone_justification"),
                        format!("justifies nothing: the zone's capacity is not below aggregates.k ({k})"),
                    ),
                    _ => {}
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
    name: Option<String>,
    contact: Option<String>,
    dpo_contact: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
    information: Option<String>,
}

/// The controller of the processing (GDPR Art. 4(7)): named in the record of
/// processing and on every camera's sign.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    pub name: String,
    /// Postal address or e-mail; may span lines.
    pub contact: String,
    pub dpo_contact: Option<String>,
    /// Who receives data besides the controller (and the API consumers and
    /// MQTT broker, which the record names itself).
    pub recipients: Vec<String>,
    /// Where the full information (the notice's second layer) is: a URL or a place.
    pub information: Option<String>,
}

/// Used when a camera states no `legal_basis`.
pub const DEFAULT_LEGAL_BASIS: &str = "legitimate interest, GDPR Art. 6(1)(f)";

impl Validator<'_> {
    /// Optional, so that configs without it stay valid; the record then
    /// says "not configured" and no sign can be printed.
    pub(super) fn controller(&mut self, value: Option<toml::Value>) -> Option<ControllerConfig> {
        let raw: RawController = self.table("controller", value?)?;
        let name = self.text("controller.name", raw.name, true);
        if name.as_deref().is_some_and(|n| n.contains('\n')) {
            self.error("controller.name", "must be one line");
        }
        let contact = self.text("controller.contact", raw.contact, true);
        let dpo_contact = self.text("controller.dpo_contact", raw.dpo_contact, false);
        let information = self.text("controller.information", raw.information, false);
        let mut recipients: Vec<String> = Vec::new();
        for (i, r) in raw.recipients.into_iter().enumerate() {
            let path = format!("controller.recipients[{i}]");
            let Some(r) = self.text(&path, Some(r), true) else {
                continue;
            };
            if recipients.contains(&r) {
                self.error(path, format!("`{r}` is listed twice"));
            } else {
                recipients.push(r);
            }
        }
        Some(ControllerConfig {
            name: name?,
            contact: contact?,
            dpo_contact,
            recipients,
            information,
        })
    }

    /// A trimmed, non-empty text without control characters other than line breaks.
    pub(super) fn text(
        &mut self,
        path: &str,
        value: Option<String>,
        required: bool,
    ) -> Option<String> {
        let Some(value) = value else {
            if required {
                self.error(path, "is required");
            }
            return None;
        };
        let value = value.trim();
        if value.is_empty() {
            let hint = if required {
                ""
            } else {
                " (leave it out instead)"
            };
            self.error(path, format!("must not be empty{hint}"));
            return None;
        }
        // It is printed on signs and in documents: no terminal escapes.
        if value.chars().any(|c| c.is_control() && c != '\n') {
            self.error(path, "must not contain control characters");
            return None;
        }
        Some(value.to_string())
    }
}

/// A zone whose capacity is below k: its count can single out a person, so
/// it needs an opt-in with a justification (`check-config`).
pub fn is_small_zone(capacity: Option<u32>, k: u32) -> bool {
    capacity.is_some_and(|c| c < k)
}
