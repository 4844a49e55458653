//! The running appliance: stages on their own threads, joined by bounded
//! channels with named payloads.
//!
//! cameras (GStreamer threads) --Frame--> inference workers (tamper
//! statistics and detection on the raw frame, then redact: nothing
//! downstream sees a raw frame; the redacted frame goes to the snapshot
//! board when snapshots are enabled) --Analysed--> analytics (tracks,
//! zones, lines, dwell, spaces, minute buckets; the anomaly monitor)
//! --Deltas, anomaly changes--> SQLite writer (which also takes the API's
//! audit entries, budget charges and acknowledgements, runs the
//! maintenance pass: rollups, retention sweeps, audit checkpoints, and
//! announces stored anomaly changes for the webhook and MQTT).
//!
//! Frames are dropped (and counted in health) before inference when the
//! workers are busy, never after. Shutdown runs front to back: stopping the
//! cameras closes the frame channel, which ends the workers, which ends
//! analytics (after a last flush); then the writer writes what is queued and
//! stops.

use anyhow::Context;
use headcount_core::analytics::{self, OccupancyBoard};
use headcount_core::anomaly::monitor::{Change, Monitor};
use headcount_core::anomaly::tamper::FrameStats;
use headcount_core::anomaly::unusual::UnusualWatch;
use headcount_core::anomaly::{Control, Notice};
use headcount_core::clock::{Clock, UnixMs};
use headcount_core::config::live::LiveConfig;
use headcount_core::config::Config;
use headcount_core::detection::Detection;
use headcount_core::frame::{CameraId, Frame};
use headcount_core::health::HealthBoard;
use headcount_core::redaction::{Redactor, RegionHold};
use headcount_core::security::audit_key::AuditKey;
use headcount_core::snapshot::SnapshotBoard;
use headcount_core::storage::governance::PublishSpace;
use headcount_core::storage::{Announce, Database, Maintenance, Writer};
use headcount_media::{CameraHandle, SupervisorTiming};
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime};
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Notices waiting for a slow webhook or broker before the oldest are lost.
const NOTICE_BACKLOG: usize = 256;

/// What inference hands to analytics: person boxes (down to the low
/// threshold, for the tracker) and the frame's tamper statistics, no pixels.
pub struct Analysed {
    pub camera: CameraId,
    pub at: UnixMs,
    pub persons: Vec<Detection>,
    /// None for a camera without tamper detection.
    pub tamper: Option<FrameStats>,
}

pub struct Appliance {
    pub health: HealthBoard,
    pub occupancy: OccupancyBoard,
    pub snapshots: SnapshotBoard,
    pub writer: Writer,
    /// Stored anomaly changes, for the webhook and MQTT.
    pub notices: broadcast::Sender<Notice>,
    /// Re-arm requests from the API to the anomaly monitor.
    pub anomaly_control: Control,
    cameras: Vec<CameraHandle>,
    threads: Vec<JoinHandle<()>>,
    writer_thread: JoinHandle<()>,
    stop_maintenance: SyncSender<()>,
}

/// How often rollups and audit checkpoints run, and retention sweeps.
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The detectors report persons down to the low threshold: the tracker uses
/// weak detections to keep tracks, and the redactor redacts their heads too.
pub fn detector_settings(config: &Config) -> DetectorSettings {
    DetectorSettings {
        person_threshold: config.detection.person_low_threshold,
        face_threshold: config.detection.face_threshold,
        person_tiling: config.detection.person_tiling,
        threads: config.detection.threads_per_worker,
    }
}

impl Appliance {
    /// Verifies and loads the models, opens the database and starts every
    /// stage. Fails before any camera starts if a model or the database is
    /// unusable.
    /// `live` carries the geometry an admin saves while it runs.
    pub fn start(
        config: &Config,
        live: LiveConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Appliance> {
        let runtime = OnnxRuntime::load(config.onnxruntime_library.as_deref())?;
        let settings = detector_settings(config);
        let detectors = (0..config.detection.workers)
            .map(|_| Detectors::load(&runtime, &config.models_dir, settings))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot load the models")?;
        let mut db = Database::open(&config.database)?;
        let saved_counts = db.entrance_counts()?;
        let interrupted = db.close_interrupted_anomalies(clock.now_ms())?;
        if !interrupted.is_empty() {
            tracing::info!(
                anomalies = interrupted.len(),
                "anomalies left open by the previous run closed; those that persist are raised again"
            );
        }

        let ids: Vec<CameraId> = config.cameras.iter().map(|c| c.id.clone()).collect();
        let health = HealthBoard::new(&ids);
        let occupancy = OccupancyBoard::new(config);
        let mut threads = Vec::new();

        let maintenance = Maintenance {
            // Minute buckets can arrive up to two flushes late.
            grace_ms: 2 * config.analytics.flush_secs as i64 * 1000 + 60_000,
            spaces: Arc::new(PublishSpace::from_config(config)),
            k: config.aggregates.k,
            retention: Arc::new(config.retention.clone()),
            audit_key: Arc::new(AuditKey::load_or_create(&config.state_dir)?),
        };
        let (notices, _) = broadcast::channel(NOTICE_BACKLOG);
        let announce = Announce {
            site: config.site.clone(),
            notices: notices.clone(),
        };
        let (writer, writer_thread) =
            Writer::spawn_announcing(db, Some(maintenance), Some(announce))
                .context("cannot start the storage writer")?;
        let anomaly_control = Control::default();

        let (analysed_tx, analysed_rx) = sync_channel::<Analysed>(64);
        let mut engine = analytics::Analytics::new(config, occupancy.clone());
        engine.restore(&saved_counts, clock.now_ms());
        let analytics = AnalyticsStage {
            engine,
            monitor: Monitor::new(config, clock.now_ms()),
            tamper_at: HashMap::new(),
            control: anomaly_control.clone(),
            live,
            health: health.clone(),
            clock: clock.clone(),
            flush_every: Duration::from_secs(config.analytics.flush_secs),
            buckets: writer.clone(),
        };
        threads.push(spawn("analytics", move || analytics.run(analysed_rx))?);

        // Two frames per camera in flight at most; the rest are dropped.
        let (frame_tx, frame_rx) = sync_channel::<Frame>(2 * config.cameras.len().max(1));
        let frame_rx = Arc::new(Mutex::new(frame_rx));
        let redactor = Redactor::new(config.privacy.policy());
        let snapshots = SnapshotBoard::new(config.privacy.snapshots);
        // One hold per camera, shared by the workers: a camera's frames may
        // go to any worker.
        let holds: Arc<Mutex<HashMap<CameraId, RegionHold>>> = Arc::default();
        let deadline = Duration::from_millis(config.privacy.detection_deadline_ms);
        for (i, detectors) in detectors.into_iter().enumerate() {
            let worker = Worker {
                tamper: config
                    .cameras
                    .iter()
                    .filter(|c| c.tamper.is_some())
                    .map(|c| c.id.clone())
                    .collect(),
                detectors,
                redactor,
                holds: holds.clone(),
                deadline,
                snapshots: snapshots.clone(),
                health: health.clone(),
                out: analysed_tx.clone(),
            };
            let frames = frame_rx.clone();
            threads.push(spawn(&format!("inference-{i}"), move || {
                worker.run(frames)
            })?);
        }
        drop(analysed_tx);

        let cameras = config
            .cameras
            .iter()
            .map(|c| {
                headcount_media::spawn_camera(
                    c,
                    frame_tx.clone(),
                    health.clone(),
                    clock.clone(),
                    SupervisorTiming::default(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (stop_maintenance, stop_rx) = sync_channel(1);
        let snapshot_limit = config
            .retention
            .limit_ms(headcount_core::retention::DataClass::Snapshots);
        let maintainer = Maintainer {
            writer: writer.clone(),
            snapshots: snapshots.clone(),
            clock: clock.clone(),
            snapshot_limit,
            unusual: UnusualWatch::new(config).map(|w| (w, config.database.clone())),
        };
        threads.push(spawn("maintenance", move || maintainer.run(stop_rx))?);
        Ok(Appliance {
            health,
            occupancy,
            snapshots,
            writer,
            notices,
            anomaly_control,
            cameras,
            threads,
            writer_thread,
            stop_maintenance,
        })
    }

    /// Stops the cameras, then waits for every stage to drain and the
    /// writer to write what is queued.
    pub fn stop(self) {
        for camera in self.cameras {
            camera.stop();
        }
        let _ = self.stop_maintenance.try_send(());
        for thread in self.threads {
            let _ = thread.join();
        }
        self.writer.stop_blocking();
        let _ = self.writer_thread.join();
    }
}

struct Maintainer {
    writer: Writer,
    snapshots: SnapshotBoard,
    clock: Arc<dyn Clock>,
    snapshot_limit: i64,
    /// The unusual-pattern detector and the database it reads.
    unusual: Option<(UnusualWatch, std::path::PathBuf)>,
}

impl Maintainer {
    /// Rolls up and checkpoints at start and every minute, sweeps at start
    /// and every hour, drops snapshots past their lifetime, and judges each
    /// finished hour against its baseline, until told to stop.
    fn run(mut self, stop: Receiver<()>) {
        let mut last_sweep: Option<Instant> = None;
        loop {
            let now = self.clock.now_ms();
            let sweep = last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY);
            if sweep {
                last_sweep = Some(Instant::now());
            }
            if !self.writer.maintain_blocking(now, sweep) {
                return;
            }
            let dropped = self.snapshots.expire(now - self.snapshot_limit);
            if dropped > 0 {
                tracing::info!(dropped, "snapshots past their lifetime dropped");
            }
            if let Some((watch, database)) = &mut self.unusual {
                let judged =
                    Database::open_read_only(database).and_then(|db| watch.evaluate(&db, now));
                match judged {
                    Ok(changes) => {
                        if !self.writer.anomalies_blocking(changes) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not judge the last hour against its baseline")
                    }
                }
            }
            match stop.recv_timeout(MAINTAIN_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .with_context(|| format!("cannot start thread {name}"))
}

struct Worker {
    /// Cameras with tamper detection: their frames' statistics are measured.
    tamper: Vec<CameraId>,
    detectors: Detectors,
    redactor: Redactor,
    holds: Arc<Mutex<HashMap<CameraId, RegionHold>>>,
    /// Detections that took longer than this obscure their frame whole.
    deadline: Duration,
    snapshots: SnapshotBoard,
    health: HealthBoard,
    out: SyncSender<Analysed>,
}

impl Worker {
    fn run(mut self, frames: Arc<Mutex<Receiver<Frame>>>) {
        loop {
            // The lock is held only while waiting for the next frame.
            let frame = match frames.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(f) => f,
                Err(_) => return,
            };
            let (camera, at) = (frame.camera().clone(), frame.timestamp_ms());
            // On the raw frame, in memory: only statistics go on.
            let tamper = self
                .tamper
                .contains(&camera)
                .then(|| FrameStats::measure(&frame));
            let started = Instant::now();
            let detections = match self.detectors.detect(&frame) {
                Ok((d, _)) if started.elapsed() <= self.deadline => d,
                Ok(_) => {
                    tracing::warn!(camera = %camera, deadline_ms = self.deadline.as_millis() as u64, "detection fell behind its deadline; frame obscured whole");
                    self.obscured(self.redactor.obscure_whole(frame));
                    continue;
                }
                Err(e) => {
                    tracing::error!(camera = %camera, error = %e, "person detection failed; frame obscured whole and not counted");
                    self.obscured(self.redactor.obscure_whole(frame));
                    continue;
                }
            };
            // From here on only the redacted frame exists.
            let redacted = {
                let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
                let hold = holds.entry(camera.clone()).or_default();
                self.redactor.redact(frame, &detections, hold)
            };
            let obscured = redacted.stats().obscured_whole;
            self.health.update(&camera, |h| {
                h.frames_analysed += 1;
                h.frames_obscured += u64::from(obscured);
            });
            self.snapshots.publish(redacted);
            if self
                .out
                .send(Analysed {
                    camera,
                    at,
                    persons: detections.persons,
                    tamper,
                })
                .is_err()
            {
                return;
            }
        }
    }

    /// A frame obscured whole without being counted: it still replaces the
    /// snapshot, so a snapshot never shows a stale view as if it were live.
    fn obscured(&self, frame: headcount_core::redaction::RedactedFrame) {
        self.health
            .update(frame.camera(), |h| h.frames_obscured += 1);
        self.snapshots.publish(frame);
    }
}

struct AnalyticsStage {
    engine: analytics::Analytics,
    monitor: Monitor,
    /// The latest frame time each camera's tamper statistics were judged at.
    tamper_at: HashMap<CameraId, UnixMs>,
    control: Control,
    /// New zones and lines saved from the dashboard.
    live: LiveConfig,
    health: HealthBoard,
    clock: Arc<dyn Clock>,
    flush_every: Duration,
    buckets: Writer,
}

/// How often time-driven anomaly rules (stream loss, schedules) run.
const TICK_EVERY: Duration = Duration::from_secs(1);

impl AnalyticsStage {
    fn run(mut self, input: Receiver<Analysed>) {
        let mut last_flush = Instant::now();
        let mut last_tick = Instant::now();
        loop {
            let mut changes = Vec::new();
            match input.recv_timeout(Duration::from_millis(500)) {
                Ok(a) => {
                    self.engine.observe(&a.camera, a.at, &a.persons);
                    // Workers can finish a camera's frames out of order; the
                    // tamper holds run forward in time only.
                    let latest = self.tamper_at.entry(a.camera.clone()).or_insert(i64::MIN);
                    if let Some(stats) = a.tamper.as_ref().filter(|_| a.at > *latest) {
                        *latest = a.at;
                        changes.extend(self.monitor.observe_frame(&a.camera, a.at, stats));
                    }
                    changes.extend(self.monitor.observe_counts(a.at, &self.engine.signals()));
                }
                Err(RecvTimeoutError::Timeout) => self.engine.tick(self.clock.now_ms()),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = self.clock.now_ms();
            if let Some(config) = self.live.take_geometry() {
                // Tracks, line totals and entrance counts carry over.
                self.engine.reconfigure(&config, now);
                changes.extend(self.monitor.reconfigure(&config, now));
                tracing::info!("counting with the zones and lines just saved");
            }
            for camera in self.control.take_rearms() {
                let (rearmed, closed) = self.monitor.rearm(&camera, now);
                if rearmed {
                    tracing::info!(camera = %camera, "tamper reference re-armed; learning the view afresh");
                }
                changes.extend(closed);
            }
            if last_tick.elapsed() >= TICK_EVERY {
                last_tick = Instant::now();
                let last_frames: Vec<_> = self
                    .health
                    .snapshot()
                    .into_iter()
                    .map(|(camera, h)| (camera, h.last_frame_at))
                    .collect();
                changes.extend(self.monitor.tick(now, &last_frames, &self.engine.signals()));
            }
            self.report(changes);
            if last_flush.elapsed() >= self.flush_every {
                self.flush();
                last_flush = Instant::now();
            }
        }
        self.flush();
    }

    fn report(&self, changes: Vec<Change>) {
        for change in &changes {
            if let Change::Open { finding, .. } | Change::Instant { finding, .. } = change {
                tracing::warn!(
                    kind = finding.kind.as_str(),
                    subject = finding.subject.name(),
                    "{}",
                    finding.explanation
                );
            }
        }
        if !self.buckets.anomalies_blocking(changes) {
            tracing::error!("the storage writer has stopped; anomalies lost");
        }
    }

    fn flush(&mut self) {
        let deltas = self.engine.drain();
        if !deltas.is_empty() && !self.buckets.buckets_blocking(deltas) {
            tracing::error!("the storage writer has stopped; buckets lost");
        }
    }
}
