//! The running appliance: stages on their own threads, joined by bounded
//! channels with named payloads.
//!
//! cameras (GStreamer threads) --Frame--> the fair frame queue (one slot
//! per camera) --> inference workers (tamper statistics, the motion gate and
//! the person model over the camera's search area on the raw frame; the
//! face model and redaction only on a frame taken for a snapshot, which
//! goes to the snapshot board; every other frame's pixels are dropped
//! there; each camera's frames in the order they were taken from the
//! queue) --Analysed--> analytics (tracks,
//! zones, lines, dwell, spaces, minute buckets; the anomaly monitor)
//! --Deltas, anomaly changes--> SQLite writer (which also takes the API's
//! audit entries, budget charges and acknowledgements, runs the
//! maintenance pass: rollups, retention sweeps, audit checkpoints, and
//! announces stored anomaly changes for the webhook and MQTT).
//!
//! Frames are dropped (and counted in health) before inference when the
//! workers are busy, never after: a camera's new frame replaces its frame
//! still waiting, and the workers serve the camera served longest ago, so
//! an overloaded box slows every camera evenly (health says how far).
//! Shutdown runs front to back: stopping the cameras closes the frame
//! queue, which ends the workers, which ends
//! analytics (after a last flush); then the writer writes what is queued and
//! stops.

use super::disk::DiskWatch;
use super::supervisor::{Heartbeat, Supervisor};
use anyhow::Context;
use headcount_domain::analytics::adjust::{self, Adjustments};
use headcount_domain::analytics::{self, OccupancyBoard};
use headcount_domain::anomaly::monitor::{Change, Monitor};
use headcount_domain::anomaly::unusual::UnusualWatch;
use headcount_domain::anomaly::{Control, Notice};
use headcount_domain::clock::{Clock, UnixMs};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{zone_key, Config};
use headcount_domain::detection::Detection;
use headcount_domain::detection::SearchArea;
use headcount_domain::frame_queue::{FrameQueue, TakeError};
use headcount_domain::frame_step::{
    self, CameraPlan, CameraSteps, Examined, Look, PlanRules, StepRules,
};
use headcount_domain::health::HealthBoard;
use headcount_domain::health::StorageBoard;
use headcount_domain::pixels::frame::CameraId;
use headcount_domain::pixels::mask::PrivacyMask;
use headcount_domain::pixels::redaction::Redactor;
use headcount_domain::pixels::stats::FrameStats;
use headcount_domain::security::audit_key::AuditKey;
use headcount_domain::snapshot::SnapshotBoard;
use headcount_media::{CameraHandle, SupervisorTiming};
use headcount_store::publication::Publication;
use headcount_store::{
    Announce, AuditAction, AuditEntry, Database, Maintenance, Writer, WriterOptions,
};
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime};
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
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
    /// Manual corrections of entrance counts from the API to analytics.
    pub adjustments: Adjustments,
    /// The database's size and the disk's headroom.
    pub storage: StorageBoard,
    cameras: Vec<CameraHandle>,
    frames: FrameQueue,
    threads: Vec<JoinHandle<()>>,
    supervisor: Supervisor,
    stop_maintenance: SyncSender<()>,
}

/// How often rollups and audit checkpoints run, and retention sweeps.
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How long each stage may go without a heartbeat before the appliance is
/// not live. Analytics wakes at least every half second; a worker at least
/// every second while idle, and once per frame (a slow frame on a loaded
/// box takes seconds); maintenance once a pass, and a retention sweep over
/// a year of minutes takes minutes on a slow disk.
const ANALYTICS_SILENCE: Duration = Duration::from_secs(60);
const WORKER_SILENCE: Duration = Duration::from_secs(60);
const MAINTENANCE_SILENCE: Duration = Duration::from_secs(15 * 60);

impl Appliance {
    /// Verifies and loads the models, opens the database and starts every
    /// stage. Fails before any camera starts if a model or the database is
    /// unusable.
    /// `live` carries the geometry an admin saves while it runs.
    /// Every stage runs under `supervisor`.
    pub fn start(
        config: &Config,
        live: LiveConfig,
        clock: Arc<dyn Clock>,
        supervisor: &Supervisor,
    ) -> anyhow::Result<Appliance> {
        let runtime = OnnxRuntime::load(config.onnxruntime_library.as_deref())?;
        let settings = DetectorSettings::from_config(&config.detection);
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
        for camera in &config.cameras {
            health.update(&camera.id, |h| h.target_fps = camera.analysis_fps);
        }
        let views = CameraViews::new(config);
        let occupancy = OccupancyBoard::new(config);
        seed_lines_today(&db, config, &occupancy, clock.now_ms())?;
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
        supervisor.watch("writer", writer_thread);
        let anomaly_control = Control::default();
        let adjustments = Adjustments::default();

        let (analysed_tx, analysed_rx) = sync_channel::<Analysed>(64);
        let mut engine = analytics::Analytics::new(config, occupancy.clone());
        engine.restore(&saved_counts, clock.now_ms());
        let analytics = AnalyticsStage {
            engine,
            monitor: Monitor::new(config, clock.now_ms()),
            tamper_at: HashMap::new(),
            control: anomaly_control.clone(),
            adjustments: adjustments.clone(),
            live,
            views: views.clone(),
            health: health.clone(),
            clock: clock.clone(),
            flush_every: Duration::from_secs(config.analytics.flush_secs),
            buckets: writer.clone(),
        };
        threads.push(
            supervisor.spawn("analytics", ANALYTICS_SILENCE, move |heartbeat| {
                analytics.run(analysed_rx, heartbeat)
            })?,
        );

        // One frame per camera waits at most; many workers take from the
        // one queue, each frame with its number among its camera's.
        let frames = FrameQueue::new();
        let redactor = Redactor::new(config.privacy.policy());
        let snapshots = SnapshotBoard::new(config.privacy.snapshots);
        let steps: Steps = Arc::default();
        let plan = config.detection.plan_rules();
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
                steps: steps.clone(),
                views: views.clone(),
                plan,
                deadline,
                snapshots: snapshots.clone(),
                health: health.clone(),
                clock: clock.clone(),
                out: analysed_tx.clone(),
            };
            let frames = frames.clone();
            threads.push(supervisor.spawn(
                &format!("inference-{i}"),
                WORKER_SILENCE,
                move |heartbeat| worker.run(frames, heartbeat),
            )?);
        }
        drop(analysed_tx);

        let cameras = config
            .cameras
            .iter()
            .map(|c| {
                headcount_media::spawn_camera(
                    c,
                    frames.clone(),
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
        threads.push(
            supervisor.spawn("maintenance", MAINTENANCE_SILENCE, move |heartbeat| {
                maintainer.run(stop_rx, heartbeat)
            })?,
        );
        Ok(Appliance {
            health,
            occupancy,
            snapshots,
            writer,
            notices,
            anomaly_control,
            adjustments,
            storage,
            cameras,
            frames,
            threads,
            supervisor: supervisor.clone(),
            stop_maintenance,
        })
    }

    /// Stops the cameras, then waits for every stage to drain and the
    /// writer to write what is queued.
    pub fn stop(self) {
        let watched = self.supervisor.stop();
        for camera in self.cameras {
            camera.stop();
        }
        self.frames.close();
        let _ = self.stop_maintenance.try_send(());
        for thread in self.threads {
            let _ = thread.join();
        }
        self.writer.stop_blocking();
        for thread in watched {
            let _ = thread.join();
        }
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
    fn run(mut self, stop: Receiver<()>, heartbeat: Heartbeat) {
        let mut last_sweep: Option<Instant> = None;
        loop {
            heartbeat.beat();
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

/// An idle worker's heartbeat: at least this often while no frame comes.
const IDLE_BEAT: Duration = Duration::from_secs(1);

/// Each camera's frame steps (order and hold) and motion gate, shared by
/// the workers: a camera's frames may go to any worker.
type Steps = Arc<Mutex<HashMap<CameraId, Arc<CameraWork>>>>;

#[derive(Default)]
/// Lock order: `steps`, then `plan` (`hand_on` asks the plan what counts
/// while it holds the camera's order); never `plan`, then `steps`.
struct CameraWork {
    steps: Mutex<CameraSteps>,
    plan: Mutex<CameraPlan>,
}

/// Per camera, what its privacy masks blank and where the person model
/// looks (around its zones and lines), updated when the config changes
/// (an admin saving new zones and lines, a reload).
#[derive(Clone)]
struct CameraViews {
    crop: bool,
    views: Arc<RwLock<HashMap<CameraId, CameraView>>>,
}

#[derive(Clone)]
struct CameraView {
    mask: Arc<PrivacyMask>,
    area: SearchArea,
}

impl CameraViews {
    fn new(config: &Config) -> CameraViews {
        let views = CameraViews {
            crop: config.detection.crop_to_zones,
            views: Arc::default(),
        };
        views.update(config);
        views
    }

    fn update(&self, config: &Config) {
        let fresh = config
            .cameras
            .iter()
            .map(|c| {
                let view = CameraView {
                    mask: Arc::new(c.privacy_mask()),
                    area: c.search_area(self.crop),
                };
                (c.id.clone(), view)
            })
            .collect();
        *self.views.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    /// A camera no longer configured (the last of its frames in flight
    /// after a reload) is masked whole: its masks are unknown here.
    fn of(&self, camera: &CameraId) -> CameraView {
        self.views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(camera)
            .cloned()
            .unwrap_or_else(|| CameraView {
                mask: Arc::new(PrivacyMask::whole_frame()),
                area: SearchArea::FULL,
            })
    }
}

struct Worker {
    /// Cameras with tamper detection: their frames' statistics are measured.
    tamper: Vec<CameraId>,
    detectors: Detectors,
    redactor: Redactor,
    steps: Steps,
    views: CameraViews,
    plan: PlanRules,
    /// Detections that took longer than this leave their frame uncounted.
    deadline: Duration,
    snapshots: SnapshotBoard,
    health: HealthBoard,
    /// Frames carry the wall-clock time they were captured at.
    clock: Arc<dyn Clock>,
    out: SyncSender<Analysed>,
}

impl Worker {
    fn run(mut self, frames: FrameQueue, heartbeat: Heartbeat) {
        loop {
            heartbeat.beat();
            let (number, frame) = match frames.take(IDLE_BEAT) {
                Ok(taken) => taken,
                Err(TakeError::Timeout) => continue,
                // The cameras have stopped.
                Err(TakeError::Closed) => return,
            };
            let camera = frame.camera().clone();
            let work = self.work_of(&camera);
            // A snapshot is the one way a live frame's pixels leave the
            // process: only its frame gets the face model, and the person
            // model over the whole frame (every head is redacted).
            let publish = self.snapshots.due(&camera, frame.timestamp_ms());
            // The masks first: nothing below sees their pixels.
            let view = self.views.of(&camera);
            let frame = view.mask.apply(frame);
            let persons = lock(&work.plan).plan(&frame, view.area, publish, self.plan);
            let rules = StepRules {
                deadline: Some(self.deadline),
                tamper: self.tamper.contains(&camera),
                publish,
            };
            let at = frame.frame().timestamp_ms();
            let look = Look {
                persons,
                faces: publish,
            };
            let examined = frame_step::examine(frame, &mut self.detectors, look, rules);
            lock(&work.plan).learn(at, &examined, self.plan);
            if !self.hand_on(&camera, &work, number, examined) {
                return;
            }
        }
    }

    fn work_of(&self, camera: &CameraId) -> Arc<CameraWork> {
        lock(&self.steps).entry(camera.clone()).or_default().clone()
    }

    /// Puts the frame in its camera's order, then publishes and hands on
    /// every frame whose turn has come. False once analytics has stopped.
    fn hand_on(
        &self,
        camera: &CameraId,
        work: &CameraWork,
        number: u64,
        examined: Examined,
    ) -> bool {
        // Held to the end, so that this camera's frames also reach the
        // snapshot board and analytics in order.
        let mut steps = lock(&work.steps);
        for stepped in steps.finish(number, examined, &self.redactor) {
            let obscured = stepped
                .redacted
                .as_ref()
                .is_some_and(|r| r.stats().obscured_whole);
            if let Some(redacted) = stepped.redacted {
                // An uncounted frame (obscured whole) still replaces the
                // snapshot, so a snapshot never shows a stale view as if
                // it were live.
                self.snapshots.publish(redacted);
            }
            let Ok(found) = stepped.detections else {
                self.health.update(camera, |h| h.frames_obscured += 1);
                continue;
            };
            let (persons, fixtures) = {
                let plan = lock(&work.plan);
                (
                    plan.counted(stepped.at, found.persons),
                    plan.fixtures(stepped.at),
                )
            };
            let latency = self.clock.now_ms() - stepped.at;
            self.health.update(camera, |h| {
                h.note_analysed(Instant::now(), latency);
                h.frames_obscured += u64::from(obscured);
                h.frames_coasted += u64::from(!stepped.looked);
                h.fixtures = fixtures;
            });
            let analysed = Analysed {
                camera: camera.clone(),
                at: stepped.at,
                persons,
                tamper: stepped.tamper,
            };
            if self.out.send(analysed).is_err() {
                return false;
            }
        }
        true
    }
}

/// A lock whose data stays usable when a holder panicked (the process
/// aborts on panic anyway).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct AnalyticsStage {
    engine: analytics::Analytics,
    monitor: Monitor,
    /// The latest frame time each camera's tamper statistics were judged at.
    tamper_at: HashMap<CameraId, UnixMs>,
    control: Control,
    adjustments: Adjustments,
    /// New zones and lines saved from the dashboard.
    live: LiveConfig,
    /// The workers' search areas, which follow the zones and lines.
    views: CameraViews,
    health: HealthBoard,
    clock: Arc<dyn Clock>,
    flush_every: Duration,
    buckets: Writer,
}

/// How often time-driven anomaly rules (stream loss, schedules) run.
const TICK_EVERY: Duration = Duration::from_secs(1);

impl AnalyticsStage {
    fn run(mut self, input: Receiver<Analysed>, heartbeat: Heartbeat) {
        let mut last_flush = Instant::now();
        let mut last_tick = Instant::now();
        loop {
            heartbeat.beat();
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
                self.views.update(&config);
                changes.extend(self.monitor.reconfigure(&config, now));
                tracing::info!("counting with the zones and lines just saved");
            }
            for request in self.adjustments.take() {
                // Recorded before it takes effect: a correction the audit
                // log does not hold is never made.
                let buckets = &self.buckets;
                let result =
                    self.engine
                        .adjust_space(&request.space, request.adjustment, now, |planned| {
                            record_adjustment(buckets, &request, planned, now)
                        });
                if result.is_ok() {
                    // The journal carries no counts (docs/privacy.md).
                    tracing::info!(space = %request.space, "entrance count corrected by hand");
                }
                request.answer(result);
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

/// The audit entry of a correction about to be made (who, why, the count
/// before and after), durable before this returns.
fn record_adjustment(
    buckets: &Writer,
    request: &adjust::Request,
    planned: adjust::Adjusted,
    now: UnixMs,
) -> Result<(), adjust::AdjustError> {
    let entry = AuditEntry {
        actor: request.by.actor.clone(),
        role: request.by.role.clone(),
        action: AuditAction::ConfigChange,
        target: format!("count of space {}", request.space),
        rows: 0,
        detail: serde_json::json!({
            "before": planned.before,
            "after": planned.after,
            "reason": request.by.reason,
        }),
    };
    buckets
        .audit_blocking(now, vec![entry])
        .map(|_| ())
        .map_err(|e| adjust::AdjustError::NotRecorded(e.to_string()))
}

/// The day's crossings counted before this start, per line, so that the
/// live feed's "today" survives a restart (from the 15-minute rollups and
/// the minutes after them: a minutes' retention shorter than the day
/// loses nothing). Read before the analytics stage starts, so nothing is
/// counted twice.
fn seed_lines_today(
    db: &Database,
    config: &Config,
    occupancy: &OccupancyBoard,
    now: UnixMs,
) -> anyhow::Result<()> {
    let Some(day) = analytics::local_day(now, &config.timezone) else {
        return Ok(());
    };
    let midnight = day
        .to_zoned(config.timezone.clone())
        .map(|z| z.timestamp().as_millisecond())
        .context("the local day has no start")?;
    for camera in &config.cameras {
        for line in &camera.lines {
            let (entries, exits) = db.line_crossings_since(&camera.id, &line.name, midnight)?;
            occupancy.seed_line_today(&zone_key(&camera.id, &line.name), day, entries, exits);
        }
    }
    Ok(())
}
