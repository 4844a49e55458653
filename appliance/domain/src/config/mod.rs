//! Configuration in two phases: `raw` mirrors the TOML file (unknown keys are
//! errors); `validate` turns it into the immutable, typed `Config`, collecting
//! *every* problem with its key path before failing.

pub mod anomaly;
mod connections;
mod governance;
pub mod live;
pub mod overlay;
mod raw;

pub use governance::{is_small_zone, ControllerConfig, DEFAULT_LEGAL_BASIS};
pub use governance::{
    AggregatesConfig, BacnetConfig, DpConfig, ModbusConfig, MqttConfig, DEFAULT_EPSILON,
    RELEASES_PER_SPACE_DAY,
};

use crate::geometry::{BBox, Point, Polygon};
use crate::pixels::frame::CameraId;
use crate::pixels::redaction::{RedactionMode, RedactionPolicy};
use raw::*;
use serde::de::DeserializeOwned;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The most corners a zone's outline may have.
pub const MAX_POLYGON_POINTS: usize = 64;
/// The largest capacity a zone or space may declare.
pub const MAX_CAPACITY: u32 = 100_000;
/// Free space kept on the database's disk by default.
const DEFAULT_MIN_FREE_MB: u64 = 256;

/// One problem in a config file, with the dotted key path it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the problems found, in file order as far as possible.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    Auto,
}

/// A camera password, resolved from its reference. `Debug` never shows it.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `url` never carries credentials (validation refuses them there).
    Rtsp {
        url: String,
        transport: Transport,
        credentials: Option<Credentials>,
    },
    /// A recording, played at its own pace and looped: for demos and replays.
    File { path: PathBuf },
    /// GStreamer's test pattern (`testsrc:ball`, `testsrc:smpte`, ...).
    TestPattern { pattern: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    pub name: String,
    pub polygon: Polygon,
    pub capacity: Option<u32>,
    /// Over capacity clears at or below this (default 90 % of capacity).
    pub capacity_clear: Option<u32>,
    /// A person in the zone longer than this is loitering.
    pub loiter_ms: Option<i64>,
    /// Why a zone whose capacity is below k (whose count can single a
    /// person out) is counted anyway; required for such a zone, shown in
    /// the processing record.
    pub small_zone_justification: Option<String>,
}

/// Which side of a line, as seen on screen standing at its first point and
/// facing the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// A counting line: crossings onto the `in_side` are entries, the others exits.
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    pub name: String,
    pub start: Point,
    pub end: Point,
    pub in_side: Side,
    /// The only direction allowed; a crossing the other way is a wrong-way anomaly.
    pub one_way: Option<Way>,
}

/// A direction of crossing a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    In,
    Out,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    pub id: CameraId,
    pub source: Source,
    pub purpose: Option<String>,
    /// GDPR Art. 6 basis, for the record and the sign; `DEFAULT_LEGAL_BASIS` unless set.
    pub legal_basis: String,
    pub analysis_fps: f64,
    /// Frames are scaled to this width (keeping their aspect) before analysis.
    pub analysis_width: u32,
    pub zones: Vec<ZoneConfig>,
    pub lines: Vec<LineConfig>,
    /// None: tamper detection off (`tamper.sensitivity = "off"`).
    pub tamper: Option<anomaly::TamperSettings>,
    /// No frame for this long is stream loss.
    pub stream_loss_ms: i64,
    /// The part of the view where people are small (normalised), looked at
    /// again in tiles at a finer scale.
    pub detail: Option<BBox>,
    /// Static privacy masks: blanked in the raw frame before the motion
    /// gate, the tamper statistics, the detectors and a snapshot see it.
    pub masks: Vec<Shape>,
    /// Persons whose foot point lies inside are not counted (a poster, a
    /// mannequin, a mirror).
    pub exclusions: Vec<Shape>,
}

/// A named outline of a camera's view (a mask, an exclusion).
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub name: String,
    pub polygon: Polygon,
}

impl CameraConfig {
    /// Where the person model looks in this camera's frames: around its
    /// zones and lines when `crop`, else the whole frame; and its detail.
    pub fn search_area(&self, crop: bool) -> crate::detection::SearchArea {
        let mut area = if crop {
            crate::detection::SearchArea::around(
                self.zones
                    .iter()
                    .flat_map(|z| z.polygon.points().iter().copied())
                    .chain(self.lines.iter().flat_map(|l| [l.start, l.end])),
            )
        } else {
            crate::detection::SearchArea::FULL
        };
        area.detail = self.detail;
        area
    }

    /// The camera's privacy masks, to apply to each of its frames.
    pub fn privacy_mask(&self) -> crate::pixels::mask::PrivacyMask {
        crate::pixels::mask::PrivacyMask::new(
            self.masks.iter().map(|m| m.polygon.clone()).collect(),
        )
    }
}

/// A room, floor or building: the sum of its zones' occupancy, or entries
/// minus exits over its entrance lines (corrected by the zones when it has both).
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceConfig {
    pub name: String,
    /// Zone keys, `camera.zone`.
    pub zones: Vec<String>,
    /// Line keys, `camera.line`.
    pub entrances: Vec<String>,
    pub capacity: Option<u32>,
    /// Over capacity clears at or below this (default 90 % of capacity).
    pub capacity_clear: Option<u32>,
    /// Local time (appliance.timezone) at which an entrance count is set to zero.
    pub reset_at: Option<jiff::civil::Time>,
    pub schedule: Option<anomaly::SpaceSchedule>,
    pub unusual: Option<anomaly::SpaceUnusual>,
}

impl SpaceConfig {
    /// Counted at its entrances and no zones: entries minus exits alone,
    /// which no zone corrects, so its count after closing is the doors'
    /// leftover.
    pub fn entrances_only(&self) -> bool {
        !self.entrances.is_empty() && self.zones.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectionConfig {
    /// Detections at or above this score start tracks and are counted.
    pub person_threshold: f32,
    /// Detections between this and `person_threshold` only continue tracks
    /// (ByteTrack's second association), e.g. a person half hidden.
    pub person_low_threshold: f32,
    pub face_threshold: f32,
    /// Also run the person model on 2x2 tiles: finds smaller people, costs 5x.
    pub person_tiling: bool,
    /// Run the person model only when the view moved (or the refresh is
    /// due); in between, the last findings stand.
    pub motion_gate: bool,
    /// With the motion gate, the person model still runs at least this often.
    pub refresh_ms: i64,
    /// With the motion gate, a person-like box unchanged this long is a
    /// fixture and stops counting; None: never.
    pub fixture_after_ms: Option<i64>,
    /// Run the person model over the camera's zones and lines (and a
    /// person's reach around them) rather than the whole frame.
    pub crop_to_zones: bool,
    /// Learn where in each view people are small and look there again in
    /// finer tiles (a camera's `detail` overrides it).
    pub auto_detail: bool,
    pub workers: usize,
    pub threads_per_worker: usize,
}

impl DetectionConfig {
    /// How each camera's person search is planned.
    pub fn plan_rules(&self) -> crate::frame_step::PlanRules {
        crate::frame_step::PlanRules {
            gate: self.motion_gate.then_some(crate::frame_step::GateRules {
                refresh_ms: self.refresh_ms,
                ..crate::frame_step::GateRules::default()
            }),
            learn_detail: self.auto_detail,
            person_threshold: self.person_threshold,
            fixture_after_ms: self.fixture_after_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyConfig {
    pub redaction: RedactionMode,
    pub mask_scale: f32,
    /// Milliseconds a redacted region stays redacted after its last detection.
    pub hold_ms: u32,
    /// Serve redacted calibration snapshots (`/api/v1/cameras/{id}/snapshot`).
    /// When on, live frames are redacted whole-person, not only faces.
    pub snapshots: bool,
    /// A frame whose detection took longer than this is obscured whole:
    /// detections that late no longer describe a live stream.
    pub detection_deadline_ms: u64,
}

impl PrivacyConfig {
    /// How the live pipeline redacts.
    pub fn policy(&self) -> RedactionPolicy {
        RedactionPolicy {
            mode: self.redaction,
            mask_scale: self.mask_scale,
            full_body: self.snapshots,
            hold_ms: self.hold_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    /// Occupancy is the median of the per-frame counts over this window.
    pub smoothing_secs: f64,
    /// How often open minute buckets are written to the database.
    pub flush_secs: u64,
    /// Half-width of the band around a line (fraction of the frame) that a
    /// foot point must leave before a side change counts: dithering on the
    /// line counts once.
    pub line_band: f32,
    /// A visit survives its person being unseen (or outside) this long.
    pub dwell_gap_secs: f64,
    /// A space with zones and entrances takes its zones' count when the two
    /// have disagreed, with the zones steady, this long.
    pub correction_secs: f64,
}

/// How the API is served beyond plain loopback HTTP.
#[derive(Debug, Clone, PartialEq)]
pub enum Tls {
    /// Plain HTTP: only ever on a loopback address.
    Off,
    /// The per-device key and self-signed certificate in `state_dir/tls`,
    /// made at first start.
    SelfSigned,
    /// A certificate chain and key the admin supplies (PEM).
    Supplied { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    pub tls: Tls,
    pub lockout: crate::security::lockout::LockoutPolicy,
    /// Each token's rate limit.
    pub rate: crate::security::RatePolicy,
    /// Names the API answers to besides its own (`security::hosts`).
    pub hosts: Vec<String>,
    /// Caps on connections and the deadline of each phase.
    pub connections: crate::security::admission::ConnectionPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub site: String,
    pub state_dir: PathBuf,
    pub database: PathBuf,
    pub models_dir: PathBuf,
    pub onnxruntime_library: Option<PathBuf>,
    /// Below this much free space on the database's disk, new audited
    /// reads are refused and an anomaly is raised; counting goes on.
    pub min_free_bytes: u64,
    /// For daily resets (and, later, schedules).
    pub timezone: jiff::tz::TimeZone,
    /// (latitude, longitude) in degrees, WGS 84: where the site is, for
    /// the fleet's site descriptor.
    pub location: Option<(f64, f64)>,
    pub api: ApiConfig,
    /// Where security events go besides the service log.
    pub syslog: crate::security::events::SyslogTarget,
    pub cameras: Vec<CameraConfig>,
    pub spaces: Vec<SpaceConfig>,
    pub detection: DetectionConfig,
    pub privacy: PrivacyConfig,
    pub analytics: AnalyticsConfig,
    pub retention: crate::retention::RetentionPolicy,
    pub aggregates: AggregatesConfig,
    /// Where the fleet's aggregates are published; None: no MQTT.
    pub mqtt: Option<MqttConfig>,
    /// The read-only Modbus TCP server, off unless configured.
    pub modbus: Option<ModbusConfig>,
    /// The read-only BACnet/IP server, off unless configured.
    pub bacnet: Option<BacnetConfig>,
    /// None: not configured (the record says so; no sign can be made).
    pub controller: Option<ControllerConfig>,
    pub anomalies: anomaly::AnomalyConfig,
}

/// Where secrets referenced by the config are looked up; injected for tests.
pub trait SecretSource {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &Path) -> Option<String>;
    /// A secret sealed in the state directory's secrets file.
    fn sealed(&self, state_dir: &Path, name: &str) -> Result<String, String> {
        let _ = (state_dir, name);
        Err("sealed secrets are not available here".into())
    }
}

/// The process environment and the file system (systemd credentials included).
pub struct SystemSecrets;

impl SecretSource for SystemSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
    }
    fn sealed(&self, state_dir: &Path, name: &str) -> Result<String, String> {
        crate::security::SecretsFile::in_state_dir(state_dir)
            .get(name)
            .map_err(|e| e.to_string())
    }
}

/// For commands that need a config but none of its secrets (the DPO's
/// documents, made on the DPO's own machine; audit verification): every
/// reference's form is checked, none is read, and each secret is blank.
pub struct UnreadSecrets;

impl SecretSource for UnreadSecrets {
    fn env(&self, _: &str) -> Option<String> {
        Some(String::new())
    }
    fn file(&self, _: &Path) -> Option<String> {
        Some(String::new())
    }
    fn sealed(&self, _: &Path, _: &str) -> Result<String, String> {
        Ok(String::new())
    }
}

const DEFAULT_STATE_DIR: &str = "/var/lib/headcount";
const DEFAULT_ANALYSIS_FPS: f64 = 2.0;
const DEFAULT_ANALYSIS_WIDTH: u32 = 640;
const SECTIONS: &[&str] = &[
    "appliance",
    "api",
    "defaults",
    "cameras",
    "spaces",
    "detection",
    "privacy",
    "analytics",
    "security",
    "retention",
    "aggregates",
    "mqtt",
    "modbus",
    "bacnet",
    "controller",
    "anomalies",
];

impl Config {
    /// Reads and validates a config file; relative paths in it are relative
    /// to the file's folder.
    pub fn load(path: &Path, secrets: &dyn SecretSource) -> Result<Config, ConfigErrors> {
        Config::load_with_state_dir(path, secrets, None)
    }

    /// As `load`, with `appliance.state_dir` replaced (`run --state-dir`).
    pub fn load_with_state_dir(
        path: &Path,
        secrets: &dyn SecretSource,
        state_dir: Option<&Path>,
    ) -> Result<Config, ConfigErrors> {
        let merged = Config::merged_file(path, state_dir)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_with_state_dir(&merged.text, base, secrets, state_dir)
    }

    /// A config file's text with the dashboard's edits (`overlay`, in the
    /// state directory: `state_dir`, or else the file's own) laid over it.
    pub fn merged_file(
        path: &Path,
        state_dir: Option<&Path>,
    ) -> Result<overlay::Merged, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let state_dir = match state_dir {
            Some(dir) => dir.to_path_buf(),
            None => configured_state_dir(&text, base),
        };
        match overlay::read(&state_dir)? {
            Some((file, edits)) => overlay::merge(&text, &edits, &file),
            None => Ok(overlay::Merged {
                text,
                overlaid: Vec::new(),
                unused: Vec::new(),
            }),
        }
    }

    pub fn parse(
        text: &str,
        base: &Path,
        secrets: &dyn SecretSource,
    ) -> Result<Config, ConfigErrors> {
        Config::parse_with_state_dir(text, base, secrets, None)
    }

    /// As `parse`, with `appliance.state_dir` replaced when given.
    pub fn parse_with_state_dir(
        text: &str,
        base: &Path,
        secrets: &dyn SecretSource,
        state_dir: Option<&Path>,
    ) -> Result<Config, ConfigErrors> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("not valid TOML: {e}"),
            }])
        })?;
        let mut v = Validator {
            errors: Vec::new(),
            base,
            secrets,
            state_dir: state_dir.map(Path::to_path_buf).unwrap_or_default(),
        };
        let config = v.config(table);
        if v.errors.is_empty() {
            // `config` is only None when an error was recorded.
            config.ok_or_else(|| ConfigErrors(vec![]))
        } else {
            Err(ConfigErrors(v.errors))
        }
    }
}

/// `appliance.state_dir` as the file gives it (relative to the file's
/// folder), or the default; a file that does not parse gets the default
/// here and its error from the validation.
fn configured_state_dir(text: &str, base: &Path) -> PathBuf {
    let configured = text.parse::<toml::Table>().ok().and_then(|t| {
        t.get("appliance")?
            .get("state_dir")?
            .as_str()
            .map(PathBuf::from)
    });
    let dir = configured.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    if dir.is_absolute() {
        dir
    } else {
        base.join(dir)
    }
}

struct Validator<'a> {
    errors: Vec<ConfigError>,
    base: &'a Path,
    secrets: &'a dyn SecretSource,
    /// Where sealed secrets are; set from `appliance.state_dir` unless overridden.
    state_dir: PathBuf,
}

impl Validator<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Deserialises one table, recording a failure under its full key path.
    fn table<T: DeserializeOwned>(&mut self, path: &str, value: toml::Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = e.path().to_string();
                let full = if inner == "." || inner.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}.{inner}")
                };
                // toml appends its own "in `key`" line; the path above says it better.
                let message = e.into_inner().to_string();
                self.error(full, message.lines().next().unwrap_or_default().to_string());
                None
            }
        }
    }

    /// A top-level section; when absent or broken, its defaults stand in so
    /// that the other sections are still checked.
    fn section<T: DeserializeOwned + Default>(
        &mut self,
        path: &str,
        value: Option<toml::Value>,
    ) -> T {
        value.and_then(|v| self.table(path, v)).unwrap_or_default()
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn config(&mut self, mut table: toml::Table) -> Option<Config> {
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                self.errors.push(ConfigError {
                    path: key.clone(),
                    message: format!("unknown section, expected one of: {}", SECTIONS.join(", ")),
                });
            }
        }
        let appliance: RawAppliance = self.section("appliance", table.remove("appliance"));
        let api: RawApi = self.section("api", table.remove("api"));
        let defaults: RawCameraDefaults = self.section("defaults", table.remove("defaults"));
        let detection: RawDetection = self.section("detection", table.remove("detection"));
        let privacy: RawPrivacy = self.section("privacy", table.remove("privacy"));
        let analytics: RawAnalytics = self.section("analytics", table.remove("analytics"));
        let security: RawSecurity = self.section("security", table.remove("security"));
        let retention: governance::RawRetention =
            self.section("retention", table.remove("retention"));
        let aggregates: governance::RawAggregates =
            self.section("aggregates", table.remove("aggregates"));
        let anomalies: anomaly::RawAnomalies = self.section("anomalies", table.remove("anomalies"));

        let site = appliance.site.unwrap_or_else(|| "headcount".into());
        if site.trim().is_empty() {
            self.error("appliance.site", "must not be empty");
        }
        let state_dir = if self.state_dir.as_os_str().is_empty() {
            let dir = self.path(
                &appliance
                    .state_dir
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            );
            self.state_dir = dir.clone();
            dir
        } else {
            self.state_dir.clone()
        };
        let database = appliance
            .database
            .map(|d| self.path(&d))
            .unwrap_or_else(|| state_dir.join("headcount.db"));
        let models_dir = self.path(
            &appliance
                .models_dir
                .unwrap_or_else(|| "/usr/share/headcount/models".into()),
        );
        let onnxruntime_library = appliance.onnxruntime_library.map(|p| self.path(&p));

        let timezone = self.timezone(appliance.timezone.as_deref().unwrap_or("UTC"));
        let location = match appliance.location.as_deref() {
            None => None,
            Some(&[latitude, longitude])
                if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) =>
            {
                Some((latitude, longitude))
            }
            Some(other) => {
                self.error(
                    "appliance.location",
                    format!("{other:?} is not [latitude, longitude] in degrees (WGS 84), such as [52.52, 13.40]"),
                );
                None
            }
        };
        let min_free_mb = appliance.min_free_mb.unwrap_or(DEFAULT_MIN_FREE_MB);
        if !(1..=100_000_000).contains(&min_free_mb) {
            self.error(
                "appliance.min_free_mb",
                format!("{min_free_mb} is outside [1, 100000000] MB"),
            );
        }
        let api = self.api(api);
        let syslog = self.syslog(security.syslog.as_deref().unwrap_or("unix:/dev/log"));
        let cameras = self.cameras(table.remove("cameras"), &defaults);
        let spaces = self.spaces(table.remove("spaces"), &cameras, &timezone);
        let detection = self.detection(detection);
        let privacy = self.privacy(privacy);
        let analytics = self.analytics(analytics);
        let retention = self.retention(retention);
        let aggregates = self.aggregates(aggregates, spaces.len());
        self.small_zones(&cameras, aggregates.k);
        let mqtt = self.mqtt(table.remove("mqtt"), &site);
        let modbus = self.modbus(table.remove("modbus"));
        let bacnet = self.bacnet(table.remove("bacnet"));
        let controller = self.controller(table.remove("controller"));
        let anomalies = self.anomalies(anomalies);

        Some(Config {
            site,
            state_dir,
            database,
            models_dir,
            onnxruntime_library,
            min_free_bytes: min_free_mb.saturating_mul(1_000_000),
            timezone,
            location,
            api: api?,
            syslog,
            cameras,
            spaces,
            detection,
            privacy,
            analytics,
            retention,
            aggregates,
            mqtt,
            modbus,
            bacnet,
            controller,
            anomalies,
        })
    }

    fn timezone(&mut self, name: &str) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(name).unwrap_or_else(|_| {
            self.error(
                "appliance.timezone",
                format!(
                    "`{name}` is not a time zone of the tz database, such as Europe/Berlin or UTC"
                ),
            );
            jiff::tz::TimeZone::UTC
        })
    }

    fn api(&mut self, raw: RawApi) -> Option<ApiConfig> {
        let bind_text = raw.bind.as_deref().unwrap_or("127.0.0.1:8080");
        let bind = bind_text.parse::<SocketAddr>().ok();
        if bind.is_none() {
            self.error(
                "api.bind",
                format!("`{bind_text}` is not an address:port such as 127.0.0.1:8080"),
            );
        }
        let loopback = bind.is_some_and(|b| b.ip().is_loopback());
        let supplied = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some((self.path(&cert), self.path(&key))),
            (None, None) => None,
            (Some(_), None) => {
                self.error("api.tls_key", "is needed with api.tls_cert");
                None
            }
            (None, Some(_)) => {
                self.error("api.tls_cert", "is needed with api.tls_key");
                None
            }
        };
        let tls = match (raw.tls, supplied) {
            (Some(false), Some(_)) => {
                self.error(
                    "api.tls",
                    "is false, yet api.tls_cert and api.tls_key are set",
                );
                Tls::Off
            }
            (Some(false), None) if bind.is_some() && !loopback => {
                self.error(
                    "api.tls",
                    format!("cannot be false: `{bind_text}` is beyond loopback, where the API is only served over TLS"),
                );
                Tls::Off
            }
            (Some(false), None) => Tls::Off,
            (_, Some((cert, key))) => Tls::Supplied { cert, key },
            (Some(true), None) => Tls::SelfSigned,
            (None, None) if loopback => Tls::Off,
            (None, None) => Tls::SelfSigned,
        };
        let defaults = crate::security::lockout::LockoutPolicy::default();
        let lockout = crate::security::lockout::LockoutPolicy {
            max_failures: match raw.lockout_failures {
                Some(0) => {
                    self.error("api.lockout_failures", "must be at least 1");
                    defaults.max_failures
                }
                Some(n) => n,
                None => defaults.max_failures,
            },
            lock_ms: match raw.lockout_secs {
                Some(s) if !(1..=86_400).contains(&s) => {
                    self.error("api.lockout_secs", "must be between 1 and 86400");
                    defaults.lock_ms
                }
                Some(s) => s as i64 * 1000,
                None => defaults.lock_ms,
            },
            window_ms: defaults.window_ms,
        };
        let default_rate = crate::security::RatePolicy::default();
        let rate = crate::security::RatePolicy {
            burst: match raw.token_burst {
                Some(n) if !(1..=1_000_000).contains(&n) => {
                    self.error("api.token_burst", "must be between 1 and 1000000");
                    default_rate.burst
                }
                Some(n) => n,
                None => default_rate.burst,
            },
            per_sec: match raw.token_rate {
                Some(r) if !(r > 0.0 && r <= 100_000.0) => {
                    self.error(
                        "api.token_rate",
                        format!("{r} is outside (0, 100000] requests a second"),
                    );
                    default_rate.per_sec
                }
                Some(r) => r,
                None => default_rate.per_sec,
            },
        };
        let hosts = self.hosts(raw.hosts);
        let connections = self.connections(raw.connections.unwrap_or_default());
        Some(ApiConfig {
            bind: bind?,
            tls,
            lockout,
            rate,
            hosts,
            connections,
        })
    }

    fn syslog(&mut self, target: &str) -> crate::security::events::SyslogTarget {
        use crate::security::events::SyslogTarget;
        if target == "none" {
            return SyslogTarget::None;
        }
        if let Some(path) = target.strip_prefix("unix:").filter(|p| p.starts_with('/')) {
            return SyslogTarget::Unix(path.into());
        }
        if let Some(addr) = target.strip_prefix("udp:").and_then(|a| a.parse().ok()) {
            return SyslogTarget::Udp(addr);
        }
        self.error(
            "security.syslog",
            format!("`{target}` is not unix:/ABSOLUTE/PATH, udp:ADDRESS:PORT or none"),
        );
        SyslogTarget::None
    }

    fn cameras(
        &mut self,
        value: Option<toml::Value>,
        defaults: &RawCameraDefaults,
    ) -> Vec<CameraConfig> {
        let table = match value {
            None => {
                self.error("cameras", "at least one camera is needed");
                return vec![];
            }
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                self.error(
                    "cameras",
                    "must be a table of cameras, e.g. [cameras.lobby]",
                );
                return vec![];
            }
        };
        if table.is_empty() {
            self.error("cameras", "at least one camera is needed");
        }
        let mut cameras = Vec::new();
        for (name, value) in table {
            let path = format!("cameras.{name}");
            check_name(self, &path, &name);
            let Some(raw) = self.table::<RawCamera>(&path, value) else {
                continue;
            };
            if let Some(camera) = self.camera(&path, &name, raw, defaults) {
                cameras.push(camera);
            }
        }
        cameras
    }

    fn camera(
        &mut self,
        path: &str,
        name: &str,
        raw: RawCamera,
        defaults: &RawCameraDefaults,
    ) -> Option<CameraConfig> {
        let analysis_fps = raw
            .overrides
            .analysis_fps
            .or(defaults.analysis_fps)
            .unwrap_or(DEFAULT_ANALYSIS_FPS);
        if !(analysis_fps > 0.0 && analysis_fps <= 30.0) {
            self.error(
                format!("{path}.analysis_fps"),
                format!("{analysis_fps} is outside (0, 30]"),
            );
        }
        let analysis_width = raw
            .overrides
            .analysis_width
            .or(defaults.analysis_width)
            .unwrap_or(DEFAULT_ANALYSIS_WIDTH);
        if !(160..=1920).contains(&analysis_width) {
            self.error(
                format!("{path}.analysis_width"),
                format!("{analysis_width} is outside [160, 1920]"),
            );
        }
        let transport = match raw
            .overrides
            .transport
            .as_deref()
            .or(defaults.transport.as_deref())
            .unwrap_or("tcp")
        {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            "auto" => Transport::Auto,
            other => {
                self.error(
                    format!("{path}.transport"),
                    format!("`{other}` is not one of tcp, udp, auto"),
                );
                Transport::Tcp
            }
        };
        let credentials = raw
            .credentials
            .and_then(|c| self.credentials(&format!("{path}.credentials"), c));
        let zones = raw
            .zones
            .into_iter()
            .filter_map(|(zone_name, zone)| {
                self.zone(&format!("{path}.zones.{zone_name}"), zone_name, zone)
            })
            .collect();
        let lines = raw
            .lines
            .into_iter()
            .filter_map(|(line_name, line)| {
                self.line(&format!("{path}.lines.{line_name}"), line_name, line)
            })
            .collect();
        let (tamper, stream_loss_ms) = self.tamper(path, raw.tamper);
        let detail = raw
            .detail
            .and_then(|d| self.unit_box(&format!("{path}.detail"), &d));
        let masks = self.shapes(&format!("{path}.masks"), raw.masks);
        let exclusions = self.shapes(&format!("{path}.exclusions"), raw.exclusions);
        let legal_basis = self
            .text(&format!("{path}.legal_basis"), raw.legal_basis, false)
            .unwrap_or_else(|| DEFAULT_LEGAL_BASIS.to_string());
        let source = match raw.url {
            None => {
                self.error(
                    format!("{path}.url"),
                    "is required (rtsp://host/path, file:/path or testsrc:PATTERN)",
                );
                None
            }
            Some(url) => self.source(&format!("{path}.url"), &url, transport, credentials),
        };
        Some(CameraConfig {
            id: name.into(),
            source: source?,
            purpose: raw.purpose,
            legal_basis,
            analysis_fps,
            analysis_width,
            zones,
            lines,
            tamper,
            stream_loss_ms,
            detail,
            masks,
            exclusions,
        })
    }

    /// Named outlines (masks, exclusions), each checked as a zone's.
    fn shapes(
        &mut self,
        path: &str,
        raw: std::collections::BTreeMap<String, RawShape>,
    ) -> Vec<Shape> {
        raw.into_iter()
            .filter_map(|(name, shape)| {
                let at = format!("{path}.{name}");
                check_name(self, &at, &name);
                let polygon = self.polygon(&at, &shape.polygon)?;
                Some(Shape { name, polygon })
            })
            .collect()
    }

    /// A normalised box `[x1, y1, x2, y2]`, corners inside [0, 1], with
    /// x1 < x2 and y1 < y2.
    fn unit_box(&mut self, path: &str, values: &[f64]) -> Option<BBox> {
        let valid = <[f64; 4]>::try_from(values)
            .ok()
            .filter(|v| v.iter().all(|c| (0.0..=1.0).contains(c)) && v[0] < v[2] && v[1] < v[3]);
        let Some([x1, y1, x2, y2]) = valid else {
            self.error(
                path,
                "is not [x1, y1, x2, y2] with corners in [0, 1], x1 < x2 and y1 < y2",
            );
            return None;
        };
        Some(BBox {
            x1: x1 as f32,
            y1: y1 as f32,
            x2: x2 as f32,
            y2: y2 as f32,
        })
    }

    fn source(
        &mut self,
        path: &str,
        url: &str,
        transport: Transport,
        credentials: Option<Credentials>,
    ) -> Option<Source> {
        if let Some(rest) = url
            .strip_prefix("rtsp://")
            .or_else(|| url.strip_prefix("rtsps://"))
        {
            let authority = rest.split('/').next().unwrap_or("");
            if authority.contains('@') {
                // Do not echo the URL: it holds a secret.
                self.error(path, "must not contain credentials; use credentials = { user = ..., password_ref = \"env:NAME\" }");
                return None;
            }
            if authority.is_empty() {
                self.error(path, format!("`{url}` has no host"));
                return None;
            }
            return Some(Source::Rtsp {
                url: url.to_string(),
                transport,
                credentials,
            });
        }
        if credentials.is_some() {
            self.error(path, "credentials only apply to rtsp:// cameras");
        }
        if let Some(file) = url.strip_prefix("file:") {
            let file = self.path(Path::new(file.trim_start_matches("//")));
            return Some(Source::File { path: file });
        }
        if let Some(pattern) = url.strip_prefix("testsrc:") {
            if pattern.is_empty()
                || !pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                self.error(
                    path,
                    format!("`{pattern}` is not a test pattern name such as ball or smpte"),
                );
                return None;
            }
            return Some(Source::TestPattern {
                pattern: pattern.to_string(),
            });
        }
        self.error(
            path,
            format!("`{url}` is not an rtsp://, rtsps://, file: or testsrc: URL"),
        );
        None
    }

    fn credentials(&mut self, path: &str, raw: RawCredentials) -> Option<Credentials> {
        let password = self.secret(&format!("{path}.password_ref"), &raw.password_ref)?;
        Some(Credentials {
            user: raw.user,
            password,
        })
    }

    /// Resolves a secret reference (`env:`, `file:`, `credential:`,
    /// `secret:`); an error names `path`, never the secret.
    fn secret(&mut self, path: &str, reference: &str) -> Option<Secret> {
        let resolved = if let Some(var) = reference.strip_prefix("env:") {
            self.secrets
                .env(var)
                .ok_or_else(|| format!("environment variable {var} is not set"))
        } else if let Some(file) = reference.strip_prefix("file:") {
            let file = self.path(Path::new(file));
            self.secrets
                .file(&file)
                .ok_or_else(|| format!("cannot read {}", file.display()))
        } else if let Some(name) = reference.strip_prefix("credential:") {
            // systemd's LoadCredential= places credentials here.
            match self.secrets.env("CREDENTIALS_DIRECTORY") {
                Some(dir) => {
                    let file = Path::new(&dir).join(name);
                    self.secrets
                        .file(&file)
                        .ok_or_else(|| format!("systemd credential {name} is missing"))
                }
                None => Err(
                    "no systemd credentials are available (CREDENTIALS_DIRECTORY is not set)"
                        .into(),
                ),
            }
        } else if let Some(name) = reference.strip_prefix("secret:") {
            let state_dir = self.state_dir.clone();
            self.secrets.sealed(&state_dir, name)
        } else {
            Err("must start with env:, file:, credential: or secret:".into())
        };
        match resolved {
            Ok(secret) => Some(Secret(secret)),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    fn zone(&mut self, path: &str, name: String, raw: RawZone) -> Option<ZoneConfig> {
        check_name(self, path, &name);
        let errors_before = self.errors.len();
        let polygon = self.polygon(path, &raw.polygon);
        self.capacity(path, raw.capacity);
        let capacity_clear = self.capacity_clear(path, raw.capacity, raw.capacity_clear);
        let loiter_ms = raw.loiter_minutes.and_then(|minutes| {
            if minutes > 0.0 && minutes <= 1440.0 {
                Some((minutes * 60_000.0).round() as i64)
            } else {
                self.error(
                    format!("{path}.loiter_minutes"),
                    format!("{minutes} is outside (0, 1440] minutes"),
                );
                None
            }
        });
        let small_zone_justification = raw
            .small_zone_justification
            .map(|j| j.trim().to_string())
            .filter(|j| !j.is_empty());
        let polygon = polygon?;
        (self.errors.len() == errors_before).then_some(ZoneConfig {
            name,
            polygon,
            capacity: raw.capacity,
            capacity_clear,
            loiter_ms,
            small_zone_justification,
        })
    }

    /// A zone's or space's capacity, if any: at least 1, at most
    /// `MAX_CAPACITY` (a larger number is a typo, not a venue).
    fn capacity(&mut self, path: &str, capacity: Option<u32>) {
        match capacity {
            Some(0) => self.error(
                format!("{path}.capacity"),
                "must be at least 1 (leave it out for no capacity)",
            ),
            Some(c) if c > MAX_CAPACITY => self.error(
                format!("{path}.capacity"),
                format!("{c} is more than {MAX_CAPACITY}"),
            ),
            _ => {}
        }
    }

    /// Normalised points, each checked to be [x, y] inside the frame.
    /// The outline at `{path}.polygon`: 3 to `MAX_POLYGON_POINTS` points
    /// inside the frame, going around it in order (no edges crossing).
    fn polygon(&mut self, path: &str, raw: &[Vec<f64>]) -> Option<Polygon> {
        let errors_before = self.errors.len();
        if raw.len() < 3 {
            self.error(
                format!("{path}.polygon"),
                format!("needs at least 3 points, has {}", raw.len()),
            );
        }
        // The crossing check is quadratic: a bounded outline keeps a save
        // (and ExecStartPre's check) quick.
        if raw.len() > MAX_POLYGON_POINTS {
            self.error(
                format!("{path}.polygon"),
                format!(
                    "has {} points; at most {MAX_POLYGON_POINTS} describe any outline",
                    raw.len()
                ),
            );
            return None;
        }
        let polygon = Polygon::new(self.points(&format!("{path}.polygon"), raw));
        if self.errors.len() == errors_before {
            if let Some((i, j)) = polygon.self_intersection() {
                self.error(
                    format!("{path}.polygon"),
                    format!(
                        "edges {i} and {j} cross; the points must go around the outline in order"
                    ),
                );
            }
        }
        (self.errors.len() == errors_before).then_some(polygon)
    }

    fn points(&mut self, path: &str, raw: &[Vec<f64>]) -> Vec<Point> {
        let mut points = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            match p.as_slice() {
                [x, y] if (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y) => {
                    points.push(Point {
                        x: *x as f32,
                        y: *y as f32,
                    })
                }
                [x, y] => self.error(
                    format!("{path}[{i}]"),
                    format!("[{x}, {y}] is outside the frame; coordinates are fractions in [0, 1]"),
                ),
                _ => self.error(
                    format!("{path}[{i}]"),
                    format!("needs 2 coordinates [x, y], has {}", p.len()),
                ),
            }
        }
        points
    }

    fn line(&mut self, path: &str, name: String, raw: RawLine) -> Option<LineConfig> {
        check_name(self, path, &name);
        let errors_before = self.errors.len();
        let points = self.points(&format!("{path}.points"), &raw.points);
        if raw.points.len() != 2 {
            self.error(
                format!("{path}.points"),
                format!(
                    "a line has 2 points [[x1, y1], [x2, y2]], has {}",
                    raw.points.len()
                ),
            );
        } else if let [start, end] = points[..] {
            // Shorter than 1 % of the frame cannot tell sides apart.
            if (end.x - start.x).hypot(end.y - start.y) < 0.01 {
                self.error(
                    format!("{path}.points"),
                    "the two points are (almost) the same: a line needs a length of at least 0.01",
                );
            }
        }
        let in_side = match raw.in_side.as_str() {
            "left" => Some(Side::Left),
            "right" => Some(Side::Right),
            other => {
                self.error(
                    format!("{path}.in"),
                    format!("`{other}` is not left or right (the side entries cross onto, seen from the first point facing the second)"),
                );
                None
            }
        };
        let one_way = match raw.one_way.as_deref() {
            None => None,
            Some("in") => Some(Way::In),
            Some("out") => Some(Way::Out),
            Some(other) => {
                self.error(
                    format!("{path}.one_way"),
                    format!("`{other}` is not in or out (the only direction allowed)"),
                );
                None
            }
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(LineConfig {
            name,
            start: points[0],
            end: points[1],
            in_side: in_side?,
            one_way,
        })
    }

    fn spaces(
        &mut self,
        value: Option<toml::Value>,
        cameras: &[CameraConfig],
        timezone: &jiff::tz::TimeZone,
    ) -> Vec<SpaceConfig> {
        let table = match value {
            None => return vec![],
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                self.error("spaces", "must be a table of spaces, e.g. [spaces.lobby]");
                return vec![];
            }
        };
        let zone_keys: Vec<String> = cameras
            .iter()
            .flat_map(|c| c.zones.iter().map(|z| zone_key(&c.id, &z.name)))
            .collect();
        let line_keys: Vec<String> = cameras
            .iter()
            .flat_map(|c| c.lines.iter().map(|l| zone_key(&c.id, &l.name)))
            .collect();
        let mut spaces = Vec::new();
        for (name, value) in table {
            let path = format!("spaces.{name}");
            check_name(self, &path, &name);
            let Some(raw) = self.table::<RawSpace>(&path, value) else {
                continue;
            };
            let errors_before = self.errors.len();
            if raw.zones.is_empty() && raw.entrances.is_empty() {
                self.error(
                    &path,
                    "needs zones = [\"camera.zone\", ...], entrances = [\"camera.line\", ...] or both",
                );
            }
            for (key, list, known, what) in [
                ("zones", &raw.zones, &zone_keys, "zone"),
                ("entrances", &raw.entrances, &line_keys, "line"),
            ] {
                for (i, item) in list.iter().enumerate() {
                    if !known.contains(item) {
                        self.error(
                            format!("{path}.{key}[{i}]"),
                            format!("`{item}` is not a {what} of any camera (write camera.{what})"),
                        );
                    } else if list[..i].contains(item) {
                        self.error(
                            format!("{path}.{key}[{i}]"),
                            format!("`{item}` is listed twice"),
                        );
                    }
                }
            }
            self.capacity(&path, raw.capacity);
            let reset_at = raw.reset_at.as_deref().and_then(|t| {
                let parsed = t.parse::<jiff::civil::Time>().ok();
                if parsed.is_none() {
                    self.error(
                        format!("{path}.reset_at"),
                        format!("`{t}` is not a time of day such as \"03:00\""),
                    );
                } else if raw.entrances.is_empty() {
                    self.error(
                        format!("{path}.reset_at"),
                        "only applies to a space with entrances (a zone count needs no reset)",
                    );
                }
                parsed
            });
            let capacity_clear = self.capacity_clear(&path, raw.capacity, raw.capacity_clear);
            let schedule = self.space_schedule(&path, raw.schedule, timezone);
            let unusual = self.space_unusual(&path, raw.unusual);
            if self.errors.len() == errors_before {
                spaces.push(SpaceConfig {
                    name,
                    zones: raw.zones,
                    entrances: raw.entrances,
                    capacity: raw.capacity,
                    capacity_clear,
                    reset_at,
                    schedule,
                    unusual,
                });
            }
        }
        spaces
    }

    fn detection(&mut self, raw: RawDetection) -> DetectionConfig {
        let person_threshold = raw.person_threshold.unwrap_or(0.5);
        let person_low_threshold = raw
            .person_low_threshold
            .unwrap_or((person_threshold * 0.6).min(0.3));
        let face_threshold = raw.face_threshold.unwrap_or(0.6);
        if person_low_threshold > person_threshold {
            self.error(
                "detection.person_low_threshold",
                format!("{person_low_threshold} is above person_threshold ({person_threshold})"),
            );
        }
        for (key, value) in [
            ("person_threshold", person_threshold),
            ("person_low_threshold", person_low_threshold),
            ("face_threshold", face_threshold),
        ] {
            if !(value > 0.0 && value < 1.0) {
                self.error(
                    format!("detection.{key}"),
                    format!("{value} is outside (0, 1)"),
                );
            }
        }
        // One single-threaded worker per core (up to 4) keeps every core busy
        // without ONNX Runtime's intra-op synchronisation.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = raw.workers.unwrap_or(cores.min(4));
        let threads_per_worker = raw.threads_per_worker.unwrap_or(1);
        for (key, value) in [
            ("workers", workers),
            ("threads_per_worker", threads_per_worker),
        ] {
            if !(1..=64).contains(&value) {
                self.error(
                    format!("detection.{key}"),
                    format!("{value} is outside [1, 64]"),
                );
            }
        }
        let refresh_secs = raw.refresh_secs.unwrap_or(2.0);
        if !(refresh_secs > 0.0 && refresh_secs <= 60.0) {
            self.error(
                "detection.refresh_secs",
                format!("{refresh_secs} is outside (0, 60]"),
            );
        }
        let fixture_after_secs = raw.fixture_after_secs.unwrap_or(600);
        if fixture_after_secs != 0 && !(30..=86_400).contains(&fixture_after_secs) {
            self.error(
                "detection.fixture_after_secs",
                format!("{fixture_after_secs} is outside [30, 86400] (0 turns fixtures off)"),
            );
        }
        DetectionConfig {
            person_threshold,
            person_low_threshold,
            face_threshold,
            person_tiling: raw.person_tiling.unwrap_or(false),
            motion_gate: raw.motion_gate.unwrap_or(true),
            refresh_ms: (refresh_secs * 1000.0) as i64,
            fixture_after_ms: (fixture_after_secs > 0).then(|| fixture_after_secs as i64 * 1000),
            crop_to_zones: raw.crop_to_zones.unwrap_or(true),
            auto_detail: raw.auto_detail.unwrap_or(true),
            workers,
            threads_per_worker,
        }
    }

    fn privacy(&mut self, raw: RawPrivacy) -> PrivacyConfig {
        let mask_scale = raw.mask_scale.unwrap_or(1.3);
        if !(1.0..=3.0).contains(&mask_scale) {
            self.error(
                "privacy.mask_scale",
                format!("{mask_scale} is outside [1, 3]"),
            );
        }
        if raw.hold_frames.is_some() {
            self.error(
                "privacy.hold_frames",
                "is replaced by privacy.hold_ms, the hold in milliseconds (5 frames at 2 fps = 2500)",
            );
        }
        // 5 frames at the default 2 fps.
        let hold_ms = raw.hold_ms.unwrap_or(2500);
        if hold_ms > 30_000 {
            self.error("privacy.hold_ms", format!("{hold_ms} is more than 30000"));
        }
        let detection_deadline_ms = raw.detection_deadline_ms.unwrap_or(2000);
        if !(100..=60_000).contains(&detection_deadline_ms) {
            self.error(
                "privacy.detection_deadline_ms",
                format!("{detection_deadline_ms} is outside [100, 60000]"),
            );
        }
        PrivacyConfig {
            redaction: raw.redaction.unwrap_or_default(),
            mask_scale,
            hold_ms,
            snapshots: raw.snapshots.unwrap_or(false),
            detection_deadline_ms,
        }
    }

    fn analytics(&mut self, raw: RawAnalytics) -> AnalyticsConfig {
        let smoothing_secs = raw.smoothing_secs.unwrap_or(3.0);
        if !(0.0..=60.0).contains(&smoothing_secs) {
            self.error(
                "analytics.smoothing_secs",
                format!("{smoothing_secs} is outside [0, 60]"),
            );
        }
        let flush_secs = raw.flush_secs.unwrap_or(10);
        if !(1..=60).contains(&flush_secs) {
            self.error(
                "analytics.flush_secs",
                format!("{flush_secs} is outside [1, 60]"),
            );
        }
        let line_band = raw.line_band.unwrap_or(0.02);
        if !(0.0..=0.2).contains(&line_band) {
            self.error(
                "analytics.line_band",
                format!("{line_band} is outside [0, 0.2]"),
            );
        }
        let dwell_gap_secs = raw.dwell_gap_secs.unwrap_or(5.0);
        if !(0.0..=600.0).contains(&dwell_gap_secs) {
            self.error(
                "analytics.dwell_gap_secs",
                format!("{dwell_gap_secs} is outside [0, 600]"),
            );
        }
        let correction_secs = raw.correction_secs.unwrap_or(60.0);
        if !(1.0..=86_400.0).contains(&correction_secs) {
            self.error(
                "analytics.correction_secs",
                format!("{correction_secs} is outside [1, 86400]"),
            );
        }
        AnalyticsConfig {
            smoothing_secs,
            flush_secs,
            line_band: line_band as f32,
            dwell_gap_secs,
            correction_secs,
        }
    }
}

/// Names become API keys (`camera.zone`): keep them to a safe alphabet.
fn check_name(v: &mut Validator<'_>, path: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        v.error(
            path,
            format!("name `{name}` must be 1-64 characters of a-z, 0-9, _ and -"),
        );
    }
}

/// Zones and lines by their API key, `camera.zone` / `camera.line`.
/// `localhost` or a loopback address: where plain text may travel.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub fn zone_key(camera: &str, zone: &str) -> String {
    format!("{camera}.{zone}")
}

#[cfg(test)]
mod tests;
