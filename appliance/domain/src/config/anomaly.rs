//! The anomaly detectors' settings: `[anomalies]` (site-wide defaults and
//! the webhook), `[cameras.X.tamper]`, and the per-zone, per-line and
//! per-space keys (`loiter_minutes`, `one_way`, `capacity_clear`,
//! `[spaces.X.schedule]`, `[spaces.X.unusual]`).

use super::{Secret, Validator};
use crate::schedule::Schedule;
use serde::Deserialize;
use std::path::PathBuf;

/// How readily a camera's tamper conditions are raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sensitivity {
    /// Only gross tampering: nearly black, heavily blurred, clearly re-aimed.
    Low,
    #[default]
    Medium,
    /// Raises sooner, at smaller changes; for cameras in controlled light.
    High,
}

impl Sensitivity {
    /// `low`, `medium` or `high`, as written in the config.
    pub fn parse(text: &str) -> Option<Sensitivity> {
        match text {
            "low" => Some(Sensitivity::Low),
            "medium" => Some(Sensitivity::Medium),
            "high" => Some(Sensitivity::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Low => "low",
            Sensitivity::Medium => "medium",
            Sensitivity::High => "high",
        }
    }
}

/// A minute: long enough to see people come and go through the scene, so
/// that the reference is the scene rather than whoever stood in it.
pub const DEFAULT_LEARNING_MS: i64 = 60_000;
/// Twenty seconds of identical frames: a live sensor always has some noise
/// and some motion, a stuck pipeline has none.
pub const DEFAULT_FROZEN_MS: i64 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TamperSettings {
    pub sensitivity: Sensitivity,
    pub learning_ms: i64,
    pub frozen_ms: i64,
}

impl Default for TamperSettings {
    fn default() -> Self {
        TamperSettings {
            sensitivity: Sensitivity::Medium,
            learning_ms: DEFAULT_LEARNING_MS,
            frozen_ms: DEFAULT_FROZEN_MS,
        }
    }
}

/// When an hour of a space counts as unusual (`[spaces.X.unusual]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineSettings {
    /// Unusual from this robust z-score (absolute) on.
    pub threshold: f64,
    /// ...and only if the value is at least this far from the median.
    pub min_difference: f64,
    /// Samples of the hour-of-week needed before judging (warm-up).
    pub min_weeks: usize,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        BaselineSettings {
            threshold: 4.0,
            min_difference: 3.0,
            min_weeks: 3,
        }
    }
}

/// How wrong-way crossings leave the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongWayPush {
    /// One notice per crossing, as stored.
    Each,
    /// One count per line and bucket of this width, once the bucket ended.
    Count { bucket_ms: i64 },
}

/// Where anomalies are pushed: an HTTP POST of each `anomaly::Notice` as
/// JSON, retried with backoff; `https` beyond loopback.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The URL without its query (which may hold a receiver's token), for
    /// messages and logs.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
    pub tls: bool,
    /// Trust these CAs (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Signs each body: `X-Headcount-Signature: sha256=HEX` (HMAC-SHA256).
    pub secret: Option<Secret>,
    /// Attempts after the first.
    pub retries: u32,
    pub timeout_ms: u64,
}

/// Site-wide anomaly settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    /// Over capacity only once it has lasted this long.
    pub capacity_hold_ms: i64,
    /// Presence after hours only once it has lasted this long.
    pub after_hours_hold_ms: i64,
    pub webhook: Option<WebhookConfig>,
    /// How wrong-way crossings leave the box (webhook, MQTT).
    pub wrong_way_push: WrongWayPush,
}

/// A space's opening hours and what is checked against them.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceSchedule {
    pub schedule: Schedule,
    /// At least this many people outside opening hours is presence after hours.
    pub after_hours_min: u32,
    /// In minus out above this, some time after closing, is counter drift
    /// (spaces with entrances only): the floor of the tolerance, which
    /// grows with the day's entries (`anomaly::monitor::drift_tolerance`).
    pub drift_tolerance: u32,
    /// The share of crossings, each way, a working door may miss: what
    /// such doors leave counted after a busy day is not drift.
    pub drift_miss_rate: f64,
}

/// Unusual occupancy and flow against the hour-of-week baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceUnusual {
    pub settings: BaselineSettings,
}

pub const DEFAULT_CAPACITY_HOLD_SECS: f64 = 30.0;
pub const DEFAULT_AFTER_HOURS_HOLD_SECS: f64 = 60.0;
pub const DEFAULT_STREAM_LOSS_SECS: f64 = 30.0;
pub const DEFAULT_DRIFT_TOLERANCE: u32 = 2;
/// A line counts at least 99 % of the crossings each way (the scenarios
/// measure 0 % error; a busy door in a crowd misses some).
pub const DEFAULT_DRIFT_MISS_RATE: f64 = 0.01;
/// A count of wrong-way crossings per line and quarter-hour, not one push each.
pub const DEFAULT_WRONG_WAY_PUSH: WrongWayPush = WrongWayPush::Count {
    bucket_ms: 15 * 60_000,
};

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            capacity_hold_ms: (DEFAULT_CAPACITY_HOLD_SECS * 1000.0) as i64,
            after_hours_hold_ms: (DEFAULT_AFTER_HOURS_HOLD_SECS * 1000.0) as i64,
            webhook: None,
            wrong_way_push: DEFAULT_WRONG_WAY_PUSH,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnomalies {
    capacity_hold_secs: Option<f64>,
    after_hours_hold_secs: Option<f64>,
    webhook: Option<RawWebhook>,
    wrong_way_push: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret_ref: Option<String>,
    ca_file: Option<PathBuf>,
    retries: Option<u32>,
    timeout_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTamper {
    sensitivity: Option<String>,
    learning_secs: Option<f64>,
    frozen_secs: Option<f64>,
    stream_loss_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnusual {
    enabled: Option<bool>,
    threshold: Option<f64>,
    min_difference: Option<f64>,
    min_weeks: Option<usize>,
}

/// Seconds within `range`, or an error naming the key; the default when unset.
fn seconds(
    v: &mut Validator<'_>,
    path: &str,
    value: Option<f64>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> i64 {
    let secs = value.unwrap_or(default);
    if !range.contains(&secs) {
        v.error(
            path,
            format!(
                "{secs} is outside [{}, {}] seconds",
                range.start(),
                range.end()
            ),
        );
        return (default * 1000.0) as i64;
    }
    (secs * 1000.0).round() as i64
}

impl Validator<'_> {
    pub(super) fn anomalies(&mut self, raw: RawAnomalies) -> AnomalyConfig {
        let capacity_hold_ms = seconds(
            self,
            "anomalies.capacity_hold_secs",
            raw.capacity_hold_secs,
            DEFAULT_CAPACITY_HOLD_SECS,
            0.0..=3600.0,
        );
        let after_hours_hold_ms = seconds(
            self,
            "anomalies.after_hours_hold_secs",
            raw.after_hours_hold_secs,
            DEFAULT_AFTER_HOURS_HOLD_SECS,
            0.0..=3600.0,
        );
        let webhook = raw.webhook.and_then(|w| self.webhook(w));
        let wrong_way_push = match raw.wrong_way_push.as_deref() {
            None => DEFAULT_WRONG_WAY_PUSH,
            Some("each") => WrongWayPush::Each,
            Some("15m") => WrongWayPush::Count {
                bucket_ms: 15 * 60_000,
            },
            Some("1h") => WrongWayPush::Count {
                bucket_ms: 3_600_000,
            },
            Some(other) => {
                self.error(
                    "anomalies.wrong_way_push",
                    format!("`{other}` is not each, 15m or 1h"),
                );
                DEFAULT_WRONG_WAY_PUSH
            }
        };
        AnomalyConfig {
            capacity_hold_ms,
            after_hours_hold_ms,
            webhook,
            wrong_way_push,
        }
    }

    fn webhook(&mut self, raw: RawWebhook) -> Option<WebhookConfig> {
        let path = "anomalies.webhook.url";
        let shape = || format!("`{}` is not an http(s)://HOST[:PORT]/PATH URL", raw.url);
        let Ok(uri) = raw.url.parse::<http::Uri>() else {
            self.error(path, shape());
            return None;
        };
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                self.error(path, shape());
                return None;
            }
        };
        let Some(host) = uri.host().map(|h| h.trim_matches(['[', ']']).to_string()) else {
            self.error(path, shape());
            return None;
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // Do not echo the URL: it holds a secret.
            self.error(
                path,
                "must not contain credentials; sign the requests with anomalies.webhook.secret_ref",
            );
            return None;
        }
        if !tls && !super::is_loopback_host(&host) {
            self.error(
                path,
                format!(
                    "`{host}` is beyond loopback: use https:// so that anomalies travel encrypted"
                ),
            );
        }
        if !tls && raw.ca_file.is_some() {
            self.error("anomalies.webhook.ca_file", "is only used with https://");
        }
        let retries = raw.retries.unwrap_or(5);
        if retries > 20 {
            self.error(
                "anomalies.webhook.retries",
                format!("{retries} is more than 20"),
            );
        }
        let timeout_ms = seconds(
            self,
            "anomalies.webhook.timeout_secs",
            raw.timeout_secs,
            10.0,
            0.1..=120.0,
        ) as u64;
        let secret = raw
            .secret_ref
            .and_then(|r| self.secret("anomalies.webhook.secret_ref", &r));
        Some(WebhookConfig {
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            url: format!(
                "{}://{}{}",
                if tls { "https" } else { "http" },
                uri.authority().map_or("", |a| a.as_str()),
                uri.path()
            ),
            host,
            tls,
            ca_file: raw.ca_file.map(|f| self.path(&f)),
            secret,
            retries,
            timeout_ms,
        })
    }

    /// Where over capacity clears: `capacity_clear` (below the capacity),
    /// else 90 % of the capacity.
    pub(super) fn capacity_clear(
        &mut self,
        path: &str,
        capacity: Option<u32>,
        clear: Option<u32>,
    ) -> Option<u32> {
        match (capacity, clear) {
            (None, None) => None,
            (None, Some(_)) => {
                self.error(
                    format!("{path}.capacity_clear"),
                    "needs a capacity to clear below",
                );
                None
            }
            // 90 %, in u64: a capacity near u32::MAX (refused elsewhere) must not overflow here.
            (Some(capacity), None) => u32::try_from(u64::from(capacity) * 9 / 10).ok(),
            (Some(capacity), Some(clear)) if clear < capacity => Some(clear),
            (Some(capacity), Some(clear)) => {
                self.error(
                    format!("{path}.capacity_clear"),
                    format!("{clear} must be below the capacity ({capacity}): over capacity clears at or below it"),
                );
                None
            }
        }
    }

    /// A camera's tamper settings; `None` with `sensitivity = "off"`.
    pub(super) fn tamper(
        &mut self,
        path: &str,
        raw: Option<RawTamper>,
    ) -> (Option<TamperSettings>, i64) {
        let raw = raw.unwrap_or_default();
        let path = format!("{path}.tamper");
        let stream_loss_ms = seconds(
            self,
            &format!("{path}.stream_loss_secs"),
            raw.stream_loss_secs,
            DEFAULT_STREAM_LOSS_SECS,
            2.0..=3600.0,
        );
        let sensitivity = match raw.sensitivity.as_deref().unwrap_or("medium") {
            "low" => Some(Sensitivity::Low),
            "medium" => Some(Sensitivity::Medium),
            "high" => Some(Sensitivity::High),
            "off" => None,
            other => {
                self.error(
                    format!("{path}.sensitivity"),
                    format!("`{other}` is not one of low, medium, high, off"),
                );
                None
            }
        };
        let learning_ms = seconds(
            self,
            &format!("{path}.learning_secs"),
            raw.learning_secs,
            60.0,
            5.0..=3600.0,
        );
        let frozen_ms = seconds(
            self,
            &format!("{path}.frozen_secs"),
            raw.frozen_secs,
            20.0,
            2.0..=3600.0,
        );
        let settings = sensitivity.map(|sensitivity| TamperSettings {
            sensitivity,
            learning_ms,
            frozen_ms,
        });
        (settings, stream_loss_ms)
    }

    /// `[spaces.X.schedule]`: the opening hours, with `after_hours_min`,
    /// `drift_tolerance` and `drift_miss_rate` beside them.
    pub(super) fn space_schedule(
        &mut self,
        path: &str,
        table: Option<toml::Table>,
        timezone: &jiff::tz::TimeZone,
    ) -> Option<SpaceSchedule> {
        let mut table = table?;
        let path = format!("{path}.schedule");
        let mut count = |v: &mut Self, key: &str, default: u32, min: u32| match table.remove(key) {
            None => default,
            Some(toml::Value::Integer(n)) if n >= i64::from(min) && n <= 10_000 => n as u32,
            Some(other) => {
                v.error(
                    format!("{path}.{key}"),
                    format!("{other} is not a whole number in [{min}, 10000]"),
                );
                default
            }
        };
        let after_hours_min = count(self, "after_hours_min", 1, 1);
        let drift_tolerance = count(self, "drift_tolerance", DEFAULT_DRIFT_TOLERANCE, 0);
        let drift_miss_rate = match table.remove("drift_miss_rate") {
            None => DEFAULT_DRIFT_MISS_RATE,
            Some(toml::Value::Float(rate)) if (0.0..=0.1).contains(&rate) => rate,
            Some(toml::Value::Integer(0)) => 0.0,
            Some(other) => {
                self.error(
                    format!("{path}.drift_miss_rate"),
                    format!("{other} is not a share in [0, 0.1] (0.01: a door misses 1 % of crossings each way)"),
                );
                DEFAULT_DRIFT_MISS_RATE
            }
        };
        let raw: crate::schedule::RawSchedule = self.table(&path, toml::Value::Table(table))?;
        match Schedule::parse(&raw, timezone) {
            Ok(schedule) => Some(SpaceSchedule {
                schedule,
                after_hours_min,
                drift_tolerance,
                drift_miss_rate,
            }),
            Err(errors) => {
                for (key, message) in errors {
                    self.error(format!("{path}.{key}"), message);
                }
                None
            }
        }
    }

    /// `[spaces.X.unusual]`: on by default (it warms up on its own).
    pub(super) fn space_unusual(
        &mut self,
        path: &str,
        raw: Option<RawUnusual>,
    ) -> Option<SpaceUnusual> {
        let raw = raw.unwrap_or_default();
        let path = format!("{path}.unusual");
        let defaults = BaselineSettings::default();
        let threshold = raw.threshold.unwrap_or(defaults.threshold);
        if !(1.0..=50.0).contains(&threshold) {
            self.error(
                format!("{path}.threshold"),
                format!("{threshold} is outside [1, 50] (robust z-score)"),
            );
        }
        let min_difference = raw.min_difference.unwrap_or(defaults.min_difference);
        if !(0.0..=100_000.0).contains(&min_difference) {
            self.error(
                format!("{path}.min_difference"),
                format!("{min_difference} is outside [0, 100000]"),
            );
        }
        let min_weeks = raw.min_weeks.unwrap_or(defaults.min_weeks);
        if !(1..=8).contains(&min_weeks) {
            self.error(
                format!("{path}.min_weeks"),
                format!("{min_weeks} is outside [1, 8] (weeks of history per hour of the week)"),
            );
        }
        raw.enabled.unwrap_or(true).then_some(SpaceUnusual {
            settings: BaselineSettings {
                threshold,
                min_difference,
                min_weeks,
            },
        })
    }
}
