//! Configuration in two phases: `raw` mirrors the TOML file (unknown keys are
//! errors); `validate` turns it into the immutable, typed `Config`, collecting
//! *every* problem with its key path before failing.

mod raw;

use crate::frame::CameraId;
use crate::geometry::{Point, Polygon};
use crate::redaction::{RedactionMode, RedactionPolicy};
use raw::*;
use serde::de::DeserializeOwned;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    pub id: CameraId,
    pub source: Source,
    pub purpose: Option<String>,
    pub analysis_fps: f64,
    /// Frames are scaled to this width (keeping their aspect) before analysis.
    pub analysis_width: u32,
    pub zones: Vec<ZoneConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectionConfig {
    pub person_threshold: f32,
    pub face_threshold: f32,
    /// Also run the person model on 2x2 tiles: finds smaller people, costs 5x.
    pub person_tiling: bool,
    pub workers: usize,
    pub threads_per_worker: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyConfig {
    pub redaction: RedactionMode,
    pub mask_scale: f32,
    /// Frames a redacted region stays redacted after its last detection.
    pub hold_frames: u32,
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
            hold_frames: self.hold_frames,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    /// Occupancy is the median of the per-frame counts over this window.
    pub smoothing_secs: f64,
    /// How often open minute buckets are written to the database.
    pub flush_secs: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub site: String,
    pub state_dir: PathBuf,
    pub database: PathBuf,
    pub models_dir: PathBuf,
    pub onnxruntime_library: Option<PathBuf>,
    pub api_bind: SocketAddr,
    pub cameras: Vec<CameraConfig>,
    pub detection: DetectionConfig,
    pub privacy: PrivacyConfig,
    pub analytics: AnalyticsConfig,
}

/// Where secrets referenced by the config are looked up; injected for tests.
pub trait SecretSource {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &Path) -> Option<String>;
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
}

const DEFAULT_ANALYSIS_FPS: f64 = 2.0;
const DEFAULT_ANALYSIS_WIDTH: u32 = 640;
const SECTIONS: &[&str] = &[
    "appliance",
    "api",
    "defaults",
    "cameras",
    "detection",
    "privacy",
    "analytics",
];

impl Config {
    /// Reads and validates a config file; relative paths in it are relative
    /// to the file's folder.
    pub fn load(path: &Path, secrets: &dyn SecretSource) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, secrets)
    }

    pub fn parse(
        text: &str,
        base: &Path,
        secrets: &dyn SecretSource,
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

struct Validator<'a> {
    errors: Vec<ConfigError>,
    base: &'a Path,
    secrets: &'a dyn SecretSource,
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

        let site = appliance.site.unwrap_or_else(|| "headcount".into());
        if site.trim().is_empty() {
            self.error("appliance.site", "must not be empty");
        }
        let state_dir = self.path(
            &appliance
                .state_dir
                .unwrap_or_else(|| "/var/lib/headcount".into()),
        );
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

        let api_bind = self.api_bind(api.bind.as_deref().unwrap_or("127.0.0.1:8080"));
        let cameras = self.cameras(table.remove("cameras"), &defaults);
        let detection = self.detection(detection);
        let privacy = self.privacy(privacy);
        let analytics = self.analytics(analytics);

        Some(Config {
            site,
            state_dir,
            database,
            models_dir,
            onnxruntime_library,
            api_bind: api_bind?,
            cameras,
            detection,
            privacy,
            analytics,
        })
    }

    fn api_bind(&mut self, bind: &str) -> Option<SocketAddr> {
        match bind.parse::<SocketAddr>() {
            Err(_) => {
                self.error(
                    "api.bind",
                    format!("`{bind}` is not an address:port such as 127.0.0.1:8080"),
                );
                None
            }
            Ok(addr) if !addr.ip().is_loopback() => {
                self.error(
                    "api.bind",
                    format!("`{bind}` is beyond loopback, which requires TLS; this version serves loopback only"),
                );
                None
            }
            Ok(addr) => Some(addr),
        }
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
            analysis_fps,
            analysis_width,
            zones,
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
        let reference = raw.password_ref.as_str();
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
        } else {
            Err("must start with env:, file: or credential:".into())
        };
        match resolved {
            Ok(password) => Some(Credentials {
                user: raw.user,
                password: Secret(password),
            }),
            Err(message) => {
                self.error(format!("{path}.password_ref"), message);
                None
            }
        }
    }

    fn zone(&mut self, path: &str, name: String, raw: RawZone) -> Option<ZoneConfig> {
        check_name(self, path, &name);
        let errors_before = self.errors.len();
        if raw.polygon.len() < 3 {
            self.error(
                format!("{path}.polygon"),
                format!("needs at least 3 points, has {}", raw.polygon.len()),
            );
        }
        let mut points = Vec::with_capacity(raw.polygon.len());
        for (i, p) in raw.polygon.iter().enumerate() {
            match p.as_slice() {
                [x, y] if (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y) => {
                    points.push(Point {
                        x: *x as f32,
                        y: *y as f32,
                    })
                }
                [x, y] => self.error(
                    format!("{path}.polygon[{i}]"),
                    format!("[{x}, {y}] is outside the frame; coordinates are fractions in [0, 1]"),
                ),
                _ => self.error(
                    format!("{path}.polygon[{i}]"),
                    format!("needs 2 coordinates [x, y], has {}", p.len()),
                ),
            }
        }
        if raw.capacity == Some(0) {
            self.error(
                format!("{path}.capacity"),
                "must be at least 1 (leave it out for no capacity)",
            );
        }
        (self.errors.len() == errors_before).then(|| ZoneConfig {
            name,
            polygon: Polygon::new(points),
            capacity: raw.capacity,
        })
    }

    fn detection(&mut self, raw: RawDetection) -> DetectionConfig {
        let person_threshold = raw.person_threshold.unwrap_or(0.5);
        let face_threshold = raw.face_threshold.unwrap_or(0.6);
        for (key, value) in [
            ("person_threshold", person_threshold),
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
        DetectionConfig {
            person_threshold,
            face_threshold,
            person_tiling: raw.person_tiling.unwrap_or(false),
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
        let hold_frames = raw.hold_frames.unwrap_or(5);
        if hold_frames > 50 {
            self.error(
                "privacy.hold_frames",
                format!("{hold_frames} is more than 50"),
            );
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
            hold_frames,
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
        AnalyticsConfig {
            smoothing_secs,
            flush_secs,
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

/// Zones by their API key, `camera.zone`.
pub fn zone_key(camera: &str, zone: &str) -> String {
    format!("{camera}.{zone}")
}

#[cfg(test)]
mod tests;
