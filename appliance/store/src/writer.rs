//! The writer thread: owns the only writing connection of the service and
//! takes every write through one queue: minute buckets and anomaly changes
//! from analytics, audit entries and anomaly acknowledgements from the API,
//! fleet deliveries, and periodic maintenance (rollups, publication,
//! retention sweeps, signed audit checkpoints). Anomaly notices go out on
//! the `Announce` channel only once their change is stored; the log names
//! only their id and kind.
//!
//! Whatever is queued together is written together: all pending audit
//! entries go into one transaction, so a busy API costs one disk sync per
//! batch, not per request. A caller that waits for its reply knows its write
//! is durable (WAL, synchronous = FULL) before it answers its own client.
//!
//! API reads go through a `Coalescer` (see `coalesce`): the first of a kind
//! in its window is written like any entry before its reply; its repeats
//! are replied to once their batch is durable, counted, and written as one
//! entry when the window has closed (on the first request after, at the
//! minute's maintenance pass, or when the writer stops).

use super::coalesce::{refusal, Admission, Coalescer, READ_WINDOW_MS};
use super::governance::{SweepProgress, SweepReceipt};
use super::publication::Publication;
use super::{AuditEntry, Database, StorageError};
use headcount_domain::analytics::Deltas;
use headcount_domain::anomaly::monitor::Change;
use headcount_domain::anomaly::{Anomaly, Notice, Transition};
use headcount_domain::clock::UnixMs;
use headcount_domain::health::StorageBoard;
use headcount_domain::retention::RetentionPolicy;
use headcount_domain::security::audit_key::AuditKey;
use headcount_domain::security::ReceiptKey;

/// The role whose reads are recorded even on a nearly full disk: the admin
/// must be able to see what is wrong.
const ADMIN_ROLE: &str = "admin";
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How many requests may wait for the writer.
const QUEUE: usize = 1024;

/// What the maintenance pass does and with which settings.
#[derive(Clone)]
pub struct Maintenance {
    /// Buckets are rolled up once they ended this long ago (late writes).
    pub grace_ms: i64,
    /// How each new bucket is decided for consumers outside the site.
    pub publication: Arc<Publication>,
    pub retention: Arc<RetentionPolicy>,
    pub audit_key: Arc<AuditKey>,
    /// Keys the deletion receipts of the sweeps.
    pub receipt_key: Arc<ReceiptKey>,
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone)]
pub struct MaintenanceReport {
    pub rolled_up: Vec<(i64, UnixMs, UnixMs)>,
    pub published: Vec<(i64, UnixMs, UnixMs)>,
    pub receipts: Vec<SweepReceipt>,
    pub checkpoint: Option<u64>,
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// Where stored anomaly changes are announced (webhook, MQTT).
#[derive(Clone)]
pub struct Announce {
    pub site: String,
    pub notices: broadcast::Sender<Notice>,
}

/// What the writer thread does besides writing.
pub struct WriterOptions {
    pub maintenance: Option<Maintenance>,
    pub announce: Option<Announce>,
    /// Identical API reads within this window (aligned to UTC) are one
    /// entry and a count; 0 writes every read on its own.
    pub read_window_ms: i64,
    /// The disk's headroom: while it is nearly full, reads that would add
    /// an entry are refused (an admin's excepted), repeats still counted.
    pub storage: StorageBoard,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            maintenance: None,
            announce: None,
            read_window_ms: READ_WINDOW_MS,
            storage: StorageBoard::default(),
        }
    }
}

/// What became of an API read's audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Durable, or counted as a repeat of a durable one: answer.
    Recorded,
    /// Not written: the disk is nearly full and it would have added an
    /// entry. Answer 503; counting goes on.
    RefusedForSpace,
}

enum Request {
    Buckets(Deltas),
    Audit {
        at: UnixMs,
        entries: Vec<AuditEntry>,
        done: Reply<u64>,
    },
    /// An API read, coalesced with its identical repeats.
    Read {
        at: UnixMs,
        entry: AuditEntry,
        done: Reply<ReadOutcome>,
    },
    /// A request the rate limit refused: counted, never written alone.
    Refused {
        at: UnixMs,
        actor: String,
        role: String,
    },
    /// A broker acknowledged a published bucket.
    Delivered {
        broker: String,
        width_ms: i64,
        space: String,
        bucket_start: UnixMs,
        done: Reply<()>,
    },
    Maintain {
        at: UnixMs,
        sweep: bool,
        done: Option<Reply<MaintenanceReport>>,
    },
    Anomalies(Vec<Change>),
    Acknowledge {
        id: i64,
        by: String,
        at: UnixMs,
        done: Reply<Option<Anomaly>>,
    },
    /// Write what is queued, then stop.
    Stop,
}

/// A handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Request>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the storage writer has stopped")]
    Stopped,
    #[error("{0}")]
    Failed(String),
}

impl Writer {
    /// Starts the writer thread on `db`; it stops when every handle is gone.
    pub fn spawn(
        db: Database,
        maintenance: Option<Maintenance>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        Writer::spawn_with(
            db,
            WriterOptions {
                maintenance,
                ..WriterOptions::default()
            },
        )
    }

    /// As `spawn`, announcing each stored anomaly change on `announce`.
    pub fn spawn_announcing(
        db: Database,
        maintenance: Option<Maintenance>,
        announce: Option<Announce>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        Writer::spawn_with(
            db,
            WriterOptions {
                maintenance,
                announce,
                ..WriterOptions::default()
            },
        )
    }

    /// As `spawn`, with every option.
    pub fn spawn_with(
        db: Database,
        options: WriterOptions,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        let (queue, requests) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || run(db, requests, options))?;
        Ok((Writer { queue }, thread))
    }

    /// Queues anomaly changes (from a non-async thread). False when the
    /// writer has stopped.
    pub fn anomalies_blocking(&self, changes: Vec<Change>) -> bool {
        changes.is_empty()
            || self
                .queue
                .blocking_send(Request::Anomalies(changes))
                .is_ok()
    }

    /// Records who acknowledged anomaly `id` (the first acknowledgement
    /// stands); `None` when there is no such anomaly.
    pub async fn acknowledge(
        &self,
        id: i64,
        by: String,
        at: UnixMs,
    ) -> Result<Option<Anomaly>, WriteError> {
        self.ask(|done| Request::Acknowledge { id, by, at, done })
            .await
    }

    /// Queues minute buckets, waiting while the queue is full (from a
    /// non-async thread). False when the writer has stopped.
    pub fn buckets_blocking(&self, deltas: Deltas) -> bool {
        self.queue.blocking_send(Request::Buckets(deltas)).is_ok()
    }

    /// As `audit`, from a non-async thread: returns once the entries are
    /// durable.
    pub fn audit_blocking(&self, at: UnixMs, entries: Vec<AuditEntry>) -> Result<u64, WriteError> {
        let (done, reply) = oneshot::channel();
        self.queue
            .blocking_send(Request::Audit { at, entries, done })
            .map_err(|_| WriteError::Stopped)?;
        reply
            .blocking_recv()
            .map_err(|_| WriteError::Stopped)?
            .map_err(WriteError::Failed)
    }

    /// Appends audit entries; returns once they are durable.
    pub async fn audit(&self, at: UnixMs, entries: Vec<AuditEntry>) -> Result<u64, WriteError> {
        self.ask(|done| Request::Audit { at, entries, done }).await
    }

    /// Records an API read; returns once it is durable, or once it is
    /// counted as a repeat of an identical read whose entry is, or refused
    /// because the disk is nearly full.
    pub async fn audit_read(
        &self,
        at: UnixMs,
        entry: AuditEntry,
    ) -> Result<ReadOutcome, WriteError> {
        self.ask(|done| Request::Read { at, entry, done }).await
    }

    /// Counts a request the rate limit refused to `actor`; waits for room
    /// in the queue only.
    pub async fn count_refused(&self, at: UnixMs, actor: String, role: String) {
        // A stopped writer has nothing left to count into.
        let _ = self.queue.send(Request::Refused { at, actor, role }).await;
    }

    /// Takes a published bucket out of `broker`'s outbox once it is
    /// acknowledged.
    pub async fn delivered(
        &self,
        broker: String,
        width_ms: i64,
        space: String,
        bucket_start: UnixMs,
    ) -> Result<(), WriteError> {
        self.ask(|done| Request::Delivered {
            broker,
            width_ms,
            space,
            bucket_start,
            done,
        })
        .await
    }

    /// Runs a maintenance pass (rollups, checkpoint, and sweeps when
    /// `sweep`) and waits for its report.
    pub async fn maintain(&self, at: UnixMs, sweep: bool) -> Result<MaintenanceReport, WriteError> {
        self.ask(|done| Request::Maintain {
            at,
            sweep,
            done: Some(done),
        })
        .await
    }

    /// As `maintain`, from a non-async thread, without waiting.
    pub fn maintain_blocking(&self, at: UnixMs, sweep: bool) -> bool {
        self.queue
            .blocking_send(Request::Maintain {
                at,
                sweep,
                done: None,
            })
            .is_ok()
    }

    /// Asks the writer to stop once everything queued before is written
    /// (from a non-async thread); later requests fail with `Stopped`.
    pub fn stop_blocking(&self) {
        let _ = self.queue.blocking_send(Request::Stop);
    }

    async fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, WriteError> {
        let (done, reply) = oneshot::channel();
        self.queue
            .send(request(done))
            .await
            .map_err(|_| WriteError::Stopped)?;
        reply
            .await
            .map_err(|_| WriteError::Stopped)?
            .map_err(WriteError::Failed)
    }
}

fn run(mut db: Database, mut requests: mpsc::Receiver<Request>, options: WriterOptions) {
    let WriterOptions {
        maintenance,
        announce,
        read_window_ms,
        storage,
    } = options;
    let announce = |done: Vec<(Transition, Anomaly)>| {
        for (transition, anomaly) in done {
            // The journal lies outside every retention sweep: it gets the
            // anomaly's id and kind, never its explanation or subject.
            let (id, kind) = (anomaly.id, anomaly.kind.as_str());
            match transition {
                Transition::Opened => tracing::warn!(id, kind, "anomaly opened"),
                Transition::Closed => tracing::info!(id, kind, "anomaly closed"),
                Transition::Acknowledged => tracing::info!(id, kind, "anomaly acknowledged"),
            }
            // No receiver (no webhook, no MQTT) is not an error.
            if let Some(a) = &announce {
                let _ = a.notices.send(Notice {
                    site: a.site.clone(),
                    transition,
                    anomaly,
                });
            }
        }
    };
    let mut coalescer = Coalescer::new(read_window_ms);
    // The latest time a request carried: the writer has no clock of its own.
    let mut latest: Option<UnixMs> = None;
    let mut backlog = Deltas::default();
    // Anomaly changes not yet stored (a full or read-only disk), in order.
    let mut anomaly_backlog: Vec<Change> = Vec::new();
    let mut stopping = false;
    // A maintenance pass under way: run a step at a time, with whatever
    // waits (an audited read) answered between steps.
    let mut pass: Option<Pass> = None;
    loop {
        let first = if pass.is_some() {
            match requests.try_recv() {
                Ok(request) => Some(request),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match requests.blocking_recv() {
                Some(request) => Some(request),
                None => break,
            }
        };
        let Some(first) = first else {
            if let (Some(mut running), Some(m)) = (pass.take(), &maintenance) {
                match running.step(&mut db, m) {
                    Ok(false) => pass = Some(running),
                    Ok(true) => running.finish(Ok(())),
                    Err(e) => {
                        tracing::error!(error = %e, "maintenance failed; will retry");
                        running.finish(Err(e.to_string()));
                    }
                }
            }
            continue;
        };
        let mut batch = vec![first];
        while batch.len() < QUEUE {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut audits: Vec<(UnixMs, Vec<AuditEntry>, Reply<u64>)> = Vec::new();
        let mut reads: Vec<(UnixMs, AuditEntry, Reply<ReadOutcome>)> = Vec::new();
        let mut later = Vec::new();
        for request in batch {
            match request {
                Request::Buckets(deltas) => backlog.extend(deltas),
                Request::Audit { at, entries, done } => {
                    latest = latest.max(Some(at));
                    audits.push((at, entries, done));
                }
                Request::Read { at, entry, done } => {
                    latest = latest.max(Some(at));
                    reads.push((at, entry, done));
                }
                Request::Refused { at, actor, role } => {
                    latest = latest.max(Some(at));
                    coalescer.refused(at, refusal(actor, role));
                }
                Request::Stop => stopping = true,
                other => later.push(other),
            }
        }
        if !backlog.is_empty() {
            match db.apply(&backlog) {
                Ok(()) => backlog = Deltas::default(),
                Err(e) => {
                    tracing::error!(error = %e, pending = backlog.len(), "could not write buckets; will retry")
                }
            }
        }
        // Windows closed since: their counts are due, before anything newer.
        if let Some(now) = latest {
            write_coalesced(&mut db, &mut coalescer, now, now);
        }
        if !audits.is_empty() || !reads.is_empty() {
            write_audits(&mut db, &mut coalescer, audits, reads, &storage);
        }
        for request in later {
            match request {
                Request::Delivered {
                    broker,
                    width_ms,
                    space,
                    bucket_start,
                    done,
                } => {
                    let result = db
                        .delivered(&broker, width_ms, &space, bucket_start)
                        .map_err(|e| e.to_string());
                    let _ = done.send(result);
                }
                Request::Maintain { at, sweep, done } => {
                    latest = latest.max(Some(at));
                    write_coalesced(&mut db, &mut coalescer, at, at);
                    if maintenance.is_none() {
                        if let Some(done) = done {
                            let _ = done
                                .send(Err("maintenance is not configured for this writer".into()));
                        }
                        continue;
                    }
                    // A pass under way takes the new one's time and sweep:
                    // it goes on from where it is, over what is due now.
                    let running = pass.get_or_insert_with(|| Pass::new(at, sweep));
                    running.widen(at, sweep);
                    running.waiting.extend(done);
                }
                Request::Anomalies(changes) => {
                    anomaly_backlog.extend(changes);
                    store_anomalies(&mut db, &mut anomaly_backlog, &announce);
                }
                Request::Acknowledge { id, by, at, done } => {
                    let result = db.acknowledge_anomaly(id, &by, at);
                    let reply = match result {
                        Ok(Some((fresh, anomaly))) => {
                            if fresh {
                                announce(vec![(Transition::Acknowledged, anomaly.clone())]);
                            }
                            Ok(Some(anomaly))
                        }
                        Ok(None) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = done.send(reply);
                }
                Request::Buckets(_)
                | Request::Audit { .. }
                | Request::Read { .. }
                | Request::Refused { .. }
                | Request::Stop => {}
            }
        }
        // Retried with every batch, as the buckets are.
        if !anomaly_backlog.is_empty() {
            store_anomalies(&mut db, &mut anomaly_backlog, &announce);
        }
        if stopping {
            requests.close();
            // What a pass under way has left is done at the next start.
            if let Some(running) = pass.take() {
                running.finish(Err("the writer stopped".into()));
            }
            if !backlog.is_empty() {
                let _ = db.apply(&backlog).map(|()| backlog = Deltas::default());
            }
            break;
        }
    }
    // Stopping (or every handle gone): the counts of the open windows too.
    if let Some(now) = latest {
        write_coalesced(&mut db, &mut coalescer, UnixMs::MAX, now);
    }
    if !coalescer.is_empty() {
        tracing::error!("repeated reads left uncounted in the audit log at shutdown");
    }
    if !backlog.is_empty() {
        tracing::error!(
            pending = backlog.len(),
            "buckets left unwritten at shutdown"
        );
    }
    if !anomaly_backlog.is_empty() {
        tracing::error!(
            pending = anomaly_backlog.len(),
            "anomaly changes left unstored at shutdown"
        );
    }
}

/// At most this many anomaly changes wait for the disk; beyond, the
/// oldest go (anomalies are rare: thousands mean the disk is gone).
const ANOMALY_BACKLOG: usize = 10_000;

/// Stores the waiting anomaly changes in one transaction and announces
/// them; when the disk refuses them they wait for the next try.
fn store_anomalies(
    db: &mut Database,
    backlog: &mut Vec<Change>,
    announce: &impl Fn(Vec<(Transition, Anomaly)>),
) {
    match db.record_anomalies(backlog) {
        Ok(done) => {
            backlog.clear();
            announce(done);
        }
        Err(e) if !e.is_transient() => {
            tracing::error!(error = %e, dropped = backlog.len(), "could not store anomalies");
            backlog.clear();
        }
        Err(e) => {
            if backlog.len() > ANOMALY_BACKLOG {
                let dropped = backlog.len() - ANOMALY_BACKLOG;
                backlog.drain(..dropped);
                tracing::error!(
                    dropped,
                    "anomaly changes dropped: the disk has refused them too long"
                );
            }
            tracing::error!(error = %e, pending = backlog.len(), "could not store anomalies; will retry");
        }
    }
}

/// All pending audit entries and the reads that are the first of their
/// kind in one transaction; every caller told its fate, and the reads taken
/// into the coalescer only once the transaction is durable.
fn write_audits(
    db: &mut Database,
    coalescer: &mut Coalescer,
    audits: Vec<(UnixMs, Vec<AuditEntry>, Reply<u64>)>,
    reads: Vec<(UnixMs, AuditEntry, Reply<ReadOutcome>)>,
    storage: &StorageBoard,
) {
    let nearly_full = storage.nearly_full();
    let mut batch = HashSet::new();
    // None: refused for space, neither written nor counted.
    let admissions: Vec<Option<Admission>> = reads
        .iter()
        .map(
            |(at, entry, _)| match coalescer.admit(*at, entry, &mut batch) {
                Admission::Write(kind) if nearly_full && entry.role != ADMIN_ROLE => {
                    if let Some(kind) = kind {
                        batch.remove(&kind);
                    }
                    None
                }
                admission => Some(admission),
            },
        )
        .collect();
    let result = db
        .write(|tx| {
            let mut last = 0;
            for (at, entries, _) in &audits {
                last = Database::append_audit_tx(tx, *at, entries)?;
            }
            for ((at, entry, _), admission) in reads.iter().zip(&admissions) {
                if let Some(Admission::Write(_)) = admission {
                    last = Database::append_audit_tx(tx, *at, std::slice::from_ref(entry))?;
                }
            }
            Ok(last)
        })
        .map_err(|e| e.to_string());
    for (_, _, done) in audits {
        let _ = done.send(result.clone());
    }
    for ((_, entry, done), admission) in reads.into_iter().zip(admissions) {
        let Some(admission) = admission else {
            let _ = done.send(Ok(ReadOutcome::RefusedForSpace));
            continue;
        };
        if result.is_ok() {
            coalescer.confirm(admission, &entry);
        }
        let _ = done.send(result.clone().map(|_| ReadOutcome::Recorded));
    }
}

/// Writes the counts of the windows closed by `closed_by`, at `at`; on
/// failure they stay in memory for the next try.
fn write_coalesced(db: &mut Database, coalescer: &mut Coalescer, closed_by: UnixMs, at: UnixMs) {
    let entries = coalescer.closed(closed_by);
    if entries.is_empty() {
        coalescer.forget_closed(closed_by);
        return;
    }
    match db.append_audit(at, &entries) {
        Ok(_) => coalescer.forget_closed(closed_by),
        Err(e) => {
            tracing::error!(error = %e, "could not write the counts of repeated reads; will retry")
        }
    }
}

/// A maintenance pass in steps, each one transaction: rollups, then
/// publication, then (when asked) the retention sweep, then the audit
/// checkpoint. The marks in the database say how far rollups and
/// publication are, so a pass cut short by a stop goes on at the next.
struct Pass {
    at: UnixMs,
    sweep: bool,
    phase: Phase,
    sweep_progress: SweepProgress,
    report: MaintenanceReport,
    waiting: Vec<Reply<MaintenanceReport>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    RollUp,
    Publish,
    Sweep,
    Checkpoint,
}

impl Pass {
    fn new(at: UnixMs, sweep: bool) -> Pass {
        Pass {
            at,
            sweep,
            phase: Phase::RollUp,
            sweep_progress: SweepProgress::default(),
            report: MaintenanceReport::default(),
            waiting: Vec::new(),
        }
    }

    fn widen(&mut self, at: UnixMs, sweep: bool) {
        self.at = self.at.max(at);
        self.sweep |= sweep;
    }

    /// Runs one step; true once the pass is over.
    fn step(&mut self, db: &mut Database, m: &Maintenance) -> Result<bool, StorageError> {
        match self.phase {
            Phase::RollUp => match db.roll_up_step(self.at, m.grace_ms)? {
                Some(range) => self.report.rolled_up.push(range),
                None => self.phase = Phase::Publish,
            },
            Phase::Publish => match db.publish_step(self.at, &m.publication)? {
                Some(range) => self.report.published.push(range),
                None => self.phase = Phase::Sweep,
            },
            Phase::Sweep if self.sweep && !self.sweep_progress.done() => {
                let receipts = db.sweep_step(
                    self.at,
                    &m.retention,
                    &m.receipt_key,
                    &mut self.sweep_progress,
                )?;
                for r in &receipts {
                    tracing::info!(
                        class = r.target,
                        rows = r.rows,
                        "retention sweep deleted rows past their lifetime"
                    );
                }
                self.report.receipts.extend(receipts);
            }
            Phase::Sweep => self.phase = Phase::Checkpoint,
            Phase::Checkpoint => {
                self.report.checkpoint = db.checkpoint_audit(self.at, &m.audit_key)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Hands the report (or the failure) to whoever waits for the pass.
    fn finish(self, result: Result<(), String>) {
        for done in self.waiting {
            let reply = match &result {
                Ok(()) => Ok(self.report.clone()),
                Err(e) => Err(e.clone()),
            };
            let _ = done.send(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::QUARTER_MS as QUARTER;
    use crate::AuditAction;
    use headcount_domain::retention::RetentionPolicy;
    use headcount_domain::security::{AuditKey, ReceiptKey};
    use std::time::Duration;

    const T: UnixMs = 1_764_000_000_000;

    /// Three identical reads through a writer with `window_ms`, then a stop:
    /// the details of the entries written.
    fn three_reads_then_stop(window_ms: i64) -> Vec<serde_json::Value> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let options = WriterOptions {
            read_window_ms: window_ms,
            ..WriterOptions::default()
        };
        let (writer, thread) = Writer::spawn_with(Database::open(&path).unwrap(), options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let read = AuditEntry {
            actor: "token:0123456789abcdef".into(),
            role: "facilities".into(),
            action: AuditAction::ApiAccess,
            target: "GET /api/v1/occupancy".into(),
            rows: 2,
            detail: serde_json::json!({ "status": 200, "query": "" }),
        };
        for i in 0..3 {
            runtime
                .block_on(writer.audit_read(T + i, read.clone()))
                .unwrap();
        }
        writer.stop_blocking();
        thread.join().unwrap();
        let db = Database::open_read_only(&path).unwrap();
        db.audit_entries(0, i64::MAX, 100, 0)
            .unwrap()
            .into_iter()
            .map(|r| r.detail)
            .collect()
    }

    #[test]
    fn anomalies_the_disk_refuses_are_stored_once_it_takes_writes_again() {
        use headcount_domain::anomaly::{Finding, Kind, Severity, Subject};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let (writer, thread) =
            Writer::spawn_with(Database::open(&path).unwrap(), WriterOptions::default()).unwrap();
        // Another connection holds the write lock past the busy timeout:
        // the writer cannot store (as on a full or read-only disk).
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let opened = Change::Open {
            started: T,
            finding: Finding {
                kind: Kind::DiskNearlyFull,
                subject: Subject::Appliance("disk".into()),
                severity: Severity::Warning,
                value: 1.0,
                threshold: 8.0,
                explanation: "1 MB free".into(),
            },
        };
        assert!(writer.anomalies_blocking(vec![opened]));
        let stored = || {
            let query = crate::anomaly::AnomalyQuery {
                open_only: false,
                since: None,
                kind: None,
                limit: 10,
            };
            Database::open_read_only(&path)
                .unwrap()
                .anomalies(&query)
                .unwrap()
                .len()
        };
        // Past the writer's 5 s busy timeout: it has tried and failed.
        std::thread::sleep(std::time::Duration::from_secs(6));
        assert_eq!(stored(), 0, "stored while the lock was held");
        blocker.execute_batch("COMMIT").unwrap();
        drop(blocker);
        // Any later request retries the waiting change, in order.
        assert!(writer.anomalies_blocking(Vec::new()));
        writer.stop_blocking();
        thread.join().unwrap();
        assert_eq!(stored(), 1);
    }

    #[test]
    fn a_nearly_full_disk_refuses_new_reads_but_counts_repeats_and_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let storage = StorageBoard::default();
        let options = WriterOptions {
            storage: storage.clone(),
            ..WriterOptions::default()
        };
        let (writer, thread) = Writer::spawn_with(Database::open(&path).unwrap(), options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let read = |role: &str, target: &str| AuditEntry {
            actor: format!("token:{role}"),
            role: role.into(),
            action: AuditAction::ApiAccess,
            target: target.into(),
            rows: 1,
            detail: serde_json::json!({ "status": 200, "query": "" }),
        };
        let record =
            |entry: AuditEntry, at| runtime.block_on(writer.audit_read(at, entry)).unwrap();
        // Room to spare: the dashboard's first read is written.
        assert_eq!(
            record(read("facilities", "GET /api/v1/occupancy"), T),
            ReadOutcome::Recorded
        );
        storage.set(headcount_domain::health::StorageHealth {
            free_bytes: Some(10),
            min_free_bytes: 1_000,
            ..Default::default()
        });
        // Nearly full: its repeat is still answered (a count, no new entry) ...
        assert_eq!(
            record(read("facilities", "GET /api/v1/occupancy"), T + 1),
            ReadOutcome::Recorded
        );
        // ... a new read is refused, even twice in a row ...
        for at in [T + 2, T + 3] {
            assert_eq!(
                record(read("facilities", "GET /api/v1/flow"), at),
                ReadOutcome::RefusedForSpace
            );
        }
        // ... and the admin still sees what is wrong.
        assert_eq!(
            record(read("admin", "GET /api/v1/health"), T + 4),
            ReadOutcome::Recorded
        );
        // Counting goes on.
        let mut deltas = headcount_domain::analytics::Deltas::default();
        deltas.flows.push(headcount_domain::analytics::FlowDelta {
            camera: "c".into(),
            line: "l".into(),
            bucket_start: T,
            entries: 3,
            exits: 1,
        });
        assert!(writer.buckets_blocking(deltas));
        writer.stop_blocking();
        thread.join().unwrap();
        let db = Database::open_read_only(&path).unwrap();
        let targets: Vec<String> = db
            .audit_entries(0, i64::MAX, 100, 0)
            .unwrap()
            .into_iter()
            .map(|r| r.target)
            .collect();
        assert_eq!(
            targets,
            [
                "GET /api/v1/occupancy",
                "GET /api/v1/health",
                "GET /api/v1/occupancy"
            ],
            "the first read, the admin's, and the count of the repeat"
        );
        assert_eq!(
            db.flow_series("c", "l", 60_000, T, T + 60_000).unwrap()[0].entries,
            3
        );
    }

    #[test]
    fn the_counts_of_open_windows_are_written_when_the_writer_stops() {
        let details = three_reads_then_stop(READ_WINDOW_MS);
        assert_eq!(details.len(), 2, "{details:#?}");
        assert_eq!(details[1]["count"], 2);
        // With the window off, every read is an entry of its own.
        let details = three_reads_then_stop(0);
        assert_eq!(details.len(), 3, "{details:#?}");
        assert!(details.iter().all(|d| d.get("count").is_none()));
    }

    /// A day of minute buckets for `zones` zones, `days` days from T.
    fn minutes(days: i64, zones: usize) -> Deltas {
        let mut deltas = Deltas::default();
        for minute in 0..days * 1440 {
            for zone in 0..zones {
                deltas
                    .occupancy
                    .push(headcount_domain::analytics::OccupancyDelta {
                        scope: headcount_domain::analytics::Scope::Zone {
                            camera: "cam".into(),
                            zone: format!("z{zone}"),
                        },
                        bucket_start: T + minute * 60_000,
                        samples: 10,
                        occupancy_sum: 20,
                        occupancy_max: 3,
                    });
            }
        }
        deltas
    }

    #[test]
    fn an_audit_entry_is_answered_between_the_steps_of_a_long_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open(&path).unwrap();
        db.apply(&minutes(30, 4)).unwrap();
        let maintenance = Maintenance {
            grace_ms: 0,
            publication: Arc::new(Publication::new(Vec::new(), 5, None).unwrap()),
            retention: Arc::new(RetentionPolicy::new(Vec::new())),
            audit_key: Arc::new(AuditKey::generate().unwrap()),
            receipt_key: Arc::new(ReceiptKey::generate().unwrap()),
        };
        let options = WriterOptions {
            maintenance: Some(maintenance),
            ..WriterOptions::default()
        };
        let (writer, thread) = Writer::spawn_with(db, options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let at = T + 31 * 86_400_000;
        let entry = AuditEntry {
            actor: "token:0123456789abcdef".into(),
            role: "dpo".into(),
            action: AuditAction::ApiAccess,
            target: "/api/v1/audit".into(),
            rows: 1,
            detail: serde_json::json!({}),
        };
        let (audited, maintained) = runtime.block_on(async {
            let pass = {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer.maintain(at, true).await.unwrap();
                    std::time::Instant::now()
                })
            };
            // Once the pass has begun (its first rollup step is stored)...
            let reader = Database::open_read_only(&path).unwrap();
            while reader.rollup_mark(QUARTER).unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // ...an audit entry is answered before the pass ends.
            writer.audit(at, vec![entry]).await.unwrap();
            let audited = std::time::Instant::now();
            (audited, pass.await.unwrap())
        });
        assert!(
            audited < maintained,
            "the audit entry waited for the whole pass"
        );
        let db = Database::open_read_only(&path).unwrap();
        assert_eq!(
            db.rollup_mark(86_400_000).unwrap(),
            Some(T - T.rem_euclid(86_400_000) + 31 * 86_400_000),
            "the pass rolled everything up in the end"
        );
        writer.stop_blocking();
        thread.join().unwrap();
    }
}
