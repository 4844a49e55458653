//! The writer thread: owns the only writing connection of the service and
//! takes every write through one queue: minute buckets and anomaly changes
//! from analytics, audit entries, privacy-budget charges and anomaly
//! acknowledgements from the API, and periodic maintenance (rollups,
//! retention sweeps, signed audit checkpoints). Anomaly notices go out on
//! the `Announce` channel only once their change is stored.
//!
//! Whatever is queued together is written together: all pending audit
//! entries go into one transaction, so a busy API costs one disk sync per
//! batch, not per request. A caller that waits for its reply knows its write
//! is durable (WAL, synchronous = FULL) before it answers its own client.

use super::governance::{BudgetState, PublishSpace, SweepReceipt};
use super::{AuditEntry, Database, StorageError};
use crate::analytics::Deltas;
use crate::anomaly::monitor::Change;
use crate::anomaly::{Anomaly, Notice, Transition};
use crate::clock::UnixMs;
use crate::disclosure::BudgetExhausted;
use crate::retention::RetentionPolicy;
use crate::security::audit_key::AuditKey;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How many requests may wait for the writer.
const QUEUE: usize = 1024;

/// What the maintenance pass does and with which settings.
#[derive(Clone)]
pub struct Maintenance {
    /// Buckets are rolled up once they ended this long ago (late writes).
    pub grace_ms: i64,
    pub spaces: Arc<Vec<PublishSpace>>,
    pub k: u32,
    pub retention: Arc<RetentionPolicy>,
    pub audit_key: Arc<AuditKey>,
}

/// What one maintenance pass did.
#[derive(Debug, Default)]
pub struct MaintenanceReport {
    pub rolled_up: Vec<(i64, UnixMs, UnixMs)>,
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

enum Request {
    Buckets(Deltas),
    Audit {
        at: UnixMs,
        entries: Vec<AuditEntry>,
        done: Reply<u64>,
    },
    ChargeBudget {
        consumer: String,
        at: UnixMs,
        epsilon: f64,
        daily: f64,
        done: Reply<Result<BudgetState, BudgetExhausted>>,
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
        Writer::spawn_announcing(db, maintenance, None)
    }

    /// As `spawn`, announcing each stored anomaly change on `announce`.
    pub fn spawn_announcing(
        db: Database,
        maintenance: Option<Maintenance>,
        announce: Option<Announce>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        let (queue, requests) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || run(db, requests, maintenance, announce))?;
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

    /// Appends audit entries; returns once they are durable.
    pub async fn audit(&self, at: UnixMs, entries: Vec<AuditEntry>) -> Result<u64, WriteError> {
        self.ask(|done| Request::Audit { at, entries, done }).await
    }

    /// Charges a consumer's privacy budget for the day of `at`.
    pub async fn charge_budget(
        &self,
        consumer: String,
        at: UnixMs,
        epsilon: f64,
        daily: f64,
    ) -> Result<Result<BudgetState, BudgetExhausted>, WriteError> {
        self.ask(|done| Request::ChargeBudget {
            consumer,
            at,
            epsilon,
            daily,
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

fn run(
    mut db: Database,
    mut requests: mpsc::Receiver<Request>,
    maintenance: Option<Maintenance>,
    announce: Option<Announce>,
) {
    let announce = |done: Vec<(Transition, Anomaly)>| {
        let Some(a) = &announce else { return };
        for (transition, anomaly) in done {
            // No receiver (no webhook, no MQTT) is not an error.
            let _ = a.notices.send(Notice {
                site: a.site.clone(),
                transition,
                anomaly,
            });
        }
    };
    let mut backlog = Deltas::default();
    let mut stopping = false;
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < QUEUE {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut audits: Vec<(UnixMs, Vec<AuditEntry>, Reply<u64>)> = Vec::new();
        let mut later = Vec::new();
        for request in batch {
            match request {
                Request::Buckets(deltas) => backlog.extend(deltas),
                Request::Audit { at, entries, done } => audits.push((at, entries, done)),
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
        if !audits.is_empty() {
            write_audits(&mut db, audits);
        }
        for request in later {
            match request {
                Request::ChargeBudget {
                    consumer,
                    at,
                    epsilon,
                    daily,
                    done,
                } => {
                    let result = db
                        .charge_privacy_budget(&consumer, at, epsilon, daily)
                        .map_err(|e| e.to_string());
                    let _ = done.send(result);
                }
                Request::Maintain { at, sweep, done } => {
                    let result = match &maintenance {
                        Some(m) => maintain(&mut db, m, at, sweep).map_err(|e| e.to_string()),
                        None => Err("maintenance is not configured for this writer".into()),
                    };
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "maintenance failed; will retry");
                    }
                    if let Some(done) = done {
                        let _ = done.send(result);
                    }
                }
                Request::Anomalies(changes) => match db.record_anomalies(&changes) {
                    Ok(done) => announce(done),
                    Err(e) => tracing::error!(error = %e, "could not store anomalies"),
                },
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
                Request::Buckets(_) | Request::Audit { .. } | Request::Stop => {}
            }
        }
        if stopping {
            requests.close();
            if !backlog.is_empty() {
                let _ = db.apply(&backlog).map(|()| backlog = Deltas::default());
            }
            break;
        }
    }
    if !backlog.is_empty() {
        tracing::error!(
            pending = backlog.len(),
            "buckets left unwritten at shutdown"
        );
    }
}

/// All pending audit entries in one transaction, each caller told its fate.
fn write_audits(db: &mut Database, audits: Vec<(UnixMs, Vec<AuditEntry>, Reply<u64>)>) {
    let result = db
        .write(|tx| {
            let mut last = 0;
            for (at, entries, _) in &audits {
                last = Database::append_audit_tx(tx, *at, entries)?;
            }
            Ok(last)
        })
        .map_err(|e| e.to_string());
    for (_, _, done) in audits {
        let _ = done.send(result.clone());
    }
}

fn maintain(
    db: &mut Database,
    m: &Maintenance,
    at: UnixMs,
    sweep: bool,
) -> Result<MaintenanceReport, StorageError> {
    let rolled_up = db.roll_up(at, m.grace_ms, &m.spaces, m.k)?;
    let receipts = if sweep {
        db.sweep(at, &m.retention)?
    } else {
        Vec::new()
    };
    let checkpoint = db.checkpoint_audit(at, &m.audit_key)?;
    for r in &receipts {
        tracing::info!(
            class = r.class.key(),
            rows = r.rows,
            "retention sweep deleted rows past their lifetime"
        );
    }
    Ok(MaintenanceReport {
        rolled_up,
        receipts,
        checkpoint,
    })
}
