//! The running appliance: stages on their own threads, joined by bounded
//! channels with named payloads.
//!
//! cameras (GStreamer threads) --Frame--> inference workers (tamper
//! statistics and detection on the raw frame, then redact, each camera's
//! frames in the order they were taken from the queue: nothing downstream
//! sees a raw frame; the redacted frame goes to the snapshot board when
//! snapshots are enabled) --Analysed--> analytics (tracks,
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

use crate::disk::DiskWatch;
use anyhow::Context;
use headcount_domain::analytics::{self, OccupancyBoard};
use headcount_domain::anomaly::monitor::{Change, Monitor};
use headcount_domain::anomaly::unusual::UnusualWatch;
use headcount_domain::anomaly::{Control, Notice};
use headcount_domain::clock::{Clock, UnixMs};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::Config;
use headcount_domain::detection::Detection;
use headcount_domain::health::HealthBoard;
use headcount_domain::health::StorageBoard;
use headcount_domain::pixels::frame::Detections;
use headcount_domain::pixels::frame::{CameraId, Frame};
use headcount_domain::pixels::redaction::{Redactor, RegionHold};
use headcount_domain::pixels::stats::FrameStats;
use headcount_domain::security::audit_key::AuditKey;
use headcount_domain::snapshot::SnapshotBoard;
use headcount_media::{CameraHandle, SupervisorTiming};
use headcount_store::publication::Publication;
use headcount_store::{Announce, Database, Maintenance, Writer, WriterOptions};
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Notices waiting for a slow webhook or broker before the oldest are lost.
pub const NOTICE_BACKLOG: usize = 256;

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
    /// The database's size and the disk's headroom.
    pub storage: StorageBoard,
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
        let brokers: Vec<String> = config.mqtt.iter().map(|m| m.broker_id()).collect();
        db.register_brokers(&brokers, clock.now_ms())?;
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
            publication: Arc::new(Publication::from_config(config)?),
            retention: Arc::new(config.retention.clone()),
            audit_key: Arc::new(AuditKey::load_or_create(&config.state_dir)?),
            receipt_key: Arc::new(headcount_store::open_receipt_key(&config.state_dir, &db)?),
        };
        let (notices, _) = broadcast::channel(NOTICE_BACKLOG);
        let announce = Announce {
            site: config.site.clone(),
            notices: notices.clone(),
        };
        let storage = StorageBoard::default();
        let disk = DiskWatch::new(
            storage.clone(),
            config.database.clone(),
            &config.site,
            config.min_free_bytes,
        );
        let (writer, writer_thread) = Writer::spawn_with(
            db,
            WriterOptions {
                maintenance: Some(maintenance),
                announce: Some(announce),
                storage: storage.clone(),
                ..WriterOptions::default()
            },
        )
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
        let intake = Arc::new(Mutex::new(Intake {
            frames: frame_rx,
            taken: HashMap::new(),
        }));
        let redactor = Redactor::new(config.privacy.policy());
        let snapshots = SnapshotBoard::new(config.privacy.snapshots);
        // One hold and one order per camera, shared by the workers: a
        // camera's frames may go to any worker.
        let redactions: Redactions = Arc::default();
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
                redactions: redactions.clone(),
                deadline,
                snapshots: snapshots.clone(),
                health: health.clone(),
                out: analysed_tx.clone(),
            };
            let intake = intake.clone();
            threads.push(spawn(&format!("inference-{i}"), move || {
                worker.run(intake)
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
            .limit_ms(headcount_domain::retention::DataClass::Snapshots);
        let maintainer = Maintainer {
            writer: writer.clone(),
            snapshots: snapshots.clone(),
            clock: clock.clone(),
            snapshot_limit,
            unusual: UnusualWatch::new(config).map(|w| (w, config.database.clone())),
            disk,
        };
        threads.push(spawn("maintenance", move || maintainer.run(stop_rx))?);
        Ok(Appliance {
            health,
            occupancy,
            snapshots,
            writer,
            notices,
            anomaly_control,
            storage,
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
    disk: DiskWatch,
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
            // The disk first: a nearly full one refuses new reads at once.
            if !self
                .writer
                .anomalies_blocking(self.disk.measure(now, sweep))
            {
                return;
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

/// The frame queue, shared by the workers. Each frame gets its number among
/// its camera's as it is taken, under the queue's lock, so that the numbers
/// follow the queue's order without gaps.
struct Intake {
    frames: Receiver<Frame>,
    /// Frames taken so far, per camera.
    taken: HashMap<CameraId, u64>,
}

impl Intake {
    /// The next frame and its number, or None once the cameras have stopped.
    fn take(&mut self) -> Option<(u64, Frame)> {
        let frame = self.frames.recv().ok()?;
        let taken = self.taken.entry(frame.camera().clone()).or_default();
        let number = *taken;
        *taken += 1;
        Some((number, frame))
    }
}

/// A frame a worker is done with, waiting for its turn to be redacted.
struct Finished {
    frame: Frame,
    /// None when detection failed or missed its deadline: the frame is
    /// obscured whole and not counted.
    detections: Option<Detections>,
    tamper: Option<FrameStats>,
}

/// One camera's frames back in the order they were taken, and its hold.
#[derive(Default)]
struct CameraRedaction {
    order: Sequencer<Finished>,
    hold: RegionHold,
}

type Redactions = Arc<Mutex<HashMap<CameraId, Arc<Mutex<CameraRedaction>>>>>;

/// Frames that may wait for a missing number before it is skipped: a worker
/// that died or stalled must not hold its camera up (at 2 fps, 2 s, the
/// default detection deadline).
const MAX_WAITING: usize = 4;

/// Puts numbered items back in order. An item whose number was skipped is
/// handed on as soon as it comes (a frame is then obscured whole by its
/// hold, which has redacted later frames, never run backwards).
struct Sequencer<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Sequencer {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> Sequencer<T> {
    /// Takes item `number` and returns those whose turn has come, in order.
    fn push(&mut self, number: u64, item: T) -> Vec<T> {
        if number < self.next {
            return vec![item];
        }
        self.waiting.insert(number, item);
        let mut ready = Vec::new();
        loop {
            if let Some(item) = self.waiting.remove(&self.next) {
                ready.push(item);
                self.next += 1;
            } else if self.waiting.len() > MAX_WAITING {
                // Skip the missing numbers up to the first that waits.
                if let Some((&first, _)) = self.waiting.first_key_value() {
                    self.next = first;
                }
            } else {
                return ready;
            }
        }
    }
}

struct Worker {
    /// Cameras with tamper detection: their frames' statistics are measured.
    tamper: Vec<CameraId>,
    detectors: Detectors,
    redactor: Redactor,
    redactions: Redactions,
    /// Detections that took longer than this obscure their frame whole.
    deadline: Duration,
    snapshots: SnapshotBoard,
    health: HealthBoard,
    out: SyncSender<Analysed>,
}

impl Worker {
    fn run(mut self, intake: Arc<Mutex<Intake>>) {
        loop {
            // The lock is held only while waiting for the next frame.
            let next = intake.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some((number, frame)) = next else { return };
            let camera = frame.camera().clone();
            // On the raw frame, in memory: only statistics go on.
            let tamper = self
                .tamper
                .contains(&camera)
                .then(|| FrameStats::measure(&frame));
            let started = Instant::now();
            let detections = match self.detectors.detect(&frame) {
                Ok((d, _)) if started.elapsed() <= self.deadline => Some(d),
                Ok(_) => {
                    tracing::warn!(camera = %camera, deadline_ms = self.deadline.as_millis() as u64, "detection fell behind its deadline; frame obscured whole");
                    None
                }
                Err(e) => {
                    tracing::error!(camera = %camera, error = %e, "person detection failed; frame obscured whole and not counted");
                    None
                }
            };
            let finished = Finished {
                frame,
                detections,
                tamper,
            };
            if !self.hand_on(&camera, number, finished) {
                return;
            }
        }
    }

    /// Puts the frame in its camera's order, then redacts, publishes and
    /// hands on every frame whose turn has come. False once analytics has
    /// stopped.
    fn hand_on(&self, camera: &CameraId, number: u64, finished: Finished) -> bool {
        let redaction = self
            .redactions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(camera.clone())
            .or_default()
            .clone();
        // Held to the end, so that this camera's frames also reach the
        // snapshot board and analytics in order.
        let mut redaction = redaction.lock().unwrap_or_else(|e| e.into_inner());
        let CameraRedaction { order, hold } = &mut *redaction;
        for Finished {
            frame,
            detections,
            tamper,
        } in order.push(number, finished)
        {
            let at = frame.timestamp_ms();
            let Some(detections) = detections else {
                // Not counted, but it still replaces the snapshot, so a
                // snapshot never shows a stale view as if it were live.
                self.health.update(camera, |h| h.frames_obscured += 1);
                self.snapshots.publish(self.redactor.obscure_whole(frame));
                continue;
            };
            // From here on only the redacted frame exists.
            let redacted =
                self.redactor
                    .redact(frame, &detections.faces, &detections.persons, hold);
            let obscured = redacted.stats().obscured_whole;
            self.health.update(camera, |h| {
                h.frames_analysed += 1;
                h.frames_obscured += u64::from(obscured);
            });
            self.snapshots.publish(redacted);
            let analysed = Analysed {
                camera: camera.clone(),
                at,
                persons: detections.persons,
                tamper,
            };
            if self.out.send(analysed).is_err() {
                return false;
            }
        }
        true
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
                    .map(|(camera, h)| (camera, h.last_frame_age_ms().map(|age| now - age)))
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

    /// Hands anomaly changes to the writer, which logs each (id and kind
    /// only) once it is stored.
    fn report(&self, changes: Vec<Change>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_the_order_they_were_numbered() {
        let mut order = Sequencer::default();
        assert!(order.push(1, 'b').is_empty());
        assert!(order.push(2, 'c').is_empty());
        assert_eq!(order.push(0, 'a'), ['a', 'b', 'c']);
        assert_eq!(order.push(3, 'd'), ['d']);
        assert!(order.push(5, 'f').is_empty());
        assert_eq!(order.push(4, 'e'), ['e', 'f']);
    }

    #[test]
    fn a_number_that_does_not_come_back_is_skipped_once_too_many_wait() {
        let mut order = Sequencer::default();
        assert_eq!(order.push(0, 0), [0]);
        // 1 is held by a worker that died; 2 to 5 wait for it.
        for n in 2..2 + MAX_WAITING as u64 {
            assert!(order.push(n, n).is_empty(), "{n}");
        }
        // One more is too many: 1 is skipped, the rest come out in order.
        let last = 2 + MAX_WAITING as u64;
        assert_eq!(order.push(last, last), (2..=last).collect::<Vec<_>>());
        // 1, late after all, is handed on at once (its hold obscures it);
        // the order goes on after the last.
        assert_eq!(order.push(1, 1), [1]);
        assert_eq!(order.push(last + 1, last + 1), [last + 1]);
    }

    #[test]
    fn several_missing_numbers_are_skipped_together() {
        let mut order = Sequencer::default();
        // 0 and 1 never come; 2 to 6 arrive out of order.
        for n in [3, 2, 5, 4] {
            assert!(order.push(n, n).is_empty(), "{n}");
        }
        assert_eq!(order.push(6, 6), [2, 3, 4, 5, 6]);
    }
}
