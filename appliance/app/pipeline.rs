//! The running appliance: stages on their own threads, joined by bounded
//! channels with named payloads.
//!
//! cameras (GStreamer threads) --Frame--> inference workers (detect, then
//! redact: nothing downstream sees a raw frame; the redacted frame goes to
//! the snapshot board when snapshots are enabled) --Analysed--> analytics
//! (tracks, zones, lines, dwell, spaces, minute buckets) --Deltas--> SQLite
//! writer (which also takes the API's audit entries and budget charges, and
//! runs the maintenance pass: rollups, retention sweeps, audit checkpoints).
//!
//! Frames are dropped (and counted in health) before inference when the
//! workers are busy, never after. Shutdown runs front to back: stopping the
//! cameras closes the frame channel, which ends the workers, which ends
//! analytics (after a last flush); then the writer writes what is queued and
//! stops.

use anyhow::Context;
use headcount_core::analytics::{self, OccupancyBoard};
use headcount_core::clock::{Clock, UnixMs};
use headcount_core::config::Config;
use headcount_core::detection::Detection;
use headcount_core::frame::{CameraId, Frame};
use headcount_core::health::HealthBoard;
use headcount_core::redaction::{Redactor, RegionHold};
use headcount_core::security::audit_key::AuditKey;
use headcount_core::snapshot::SnapshotBoard;
use headcount_core::storage::governance::PublishSpace;
use headcount_core::storage::{Database, Maintenance, Writer};
use headcount_media::{CameraHandle, SupervisorTiming};
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime};
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What inference hands to analytics: person boxes (down to the low
/// threshold, for the tracker), no pixels.
pub struct Analysed {
    pub camera: CameraId,
    pub at: UnixMs,
    pub persons: Vec<Detection>,
}

pub struct Appliance {
    pub health: HealthBoard,
    pub occupancy: OccupancyBoard,
    pub snapshots: SnapshotBoard,
    pub writer: Writer,
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
    pub fn start(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Appliance> {
        let runtime = OnnxRuntime::load(config.onnxruntime_library.as_deref())?;
        let settings = detector_settings(config);
        let detectors = (0..config.detection.workers)
            .map(|_| Detectors::load(&runtime, &config.models_dir, settings))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot load the models")?;
        let db = Database::open(&config.database)?;
        let saved_counts = db.entrance_counts()?;

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
        let (writer, writer_thread) =
            Writer::spawn(db, Some(maintenance)).context("cannot start the storage writer")?;

        let (analysed_tx, analysed_rx) = sync_channel::<Analysed>(64);
        let mut engine = analytics::Analytics::new(config, occupancy.clone());
        engine.restore(&saved_counts, clock.now_ms());
        let analytics = AnalyticsStage {
            engine,
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
        let maintainer = (writer.clone(), snapshots.clone(), clock.clone());
        threads.push(spawn("maintenance", move || {
            let (writer, snapshots, clock) = maintainer;
            maintain(&writer, &snapshots, clock.as_ref(), snapshot_limit, stop_rx)
        })?);
        Ok(Appliance {
            health,
            occupancy,
            snapshots,
            writer,
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

/// Rolls up and checkpoints at start and every minute, sweeps at start and
/// every hour, and drops snapshots past their lifetime, until told to stop.
fn maintain(
    writer: &Writer,
    snapshots: &SnapshotBoard,
    clock: &dyn Clock,
    snapshot_limit: i64,
    stop: Receiver<()>,
) {
    let mut last_sweep: Option<Instant> = None;
    loop {
        let now = clock.now_ms();
        let sweep = last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY);
        if sweep {
            last_sweep = Some(Instant::now());
        }
        if !writer.maintain_blocking(now, sweep) {
            return;
        }
        let dropped = snapshots.expire(now - snapshot_limit);
        if dropped > 0 {
            tracing::info!(dropped, "snapshots past their lifetime dropped");
        }
        match stop.recv_timeout(MAINTAIN_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
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
    clock: Arc<dyn Clock>,
    flush_every: Duration,
    buckets: Writer,
}

impl AnalyticsStage {
    fn run(mut self, input: Receiver<Analysed>) {
        let mut last_flush = Instant::now();
        loop {
            match input.recv_timeout(Duration::from_millis(500)) {
                Ok(a) => self.engine.observe(&a.camera, a.at, &a.persons),
                Err(RecvTimeoutError::Timeout) => self.engine.tick(self.clock.now_ms()),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_flush.elapsed() >= self.flush_every {
                self.flush();
                last_flush = Instant::now();
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        let deltas = self.engine.drain();
        if !deltas.is_empty() && !self.buckets.buckets_blocking(deltas) {
            tracing::error!("the storage writer has stopped; buckets lost");
        }
    }
}
