//! The database's disk, watched once a minute by the maintenance thread:
//! its free space, the database's size (and, with each sweep, the audit
//! log's) go on the `StorageBoard` for `/api/v1/health` and `/metrics`; the
//! storage writer reads it too and, while the disk is nearly full, refuses
//! new audited reads so that the audit log cannot fill it. Counting goes on.
//! Going below `appliance.min_free_mb` opens a `disk_nearly_full` anomaly;
//! getting back above it closes it.

use headcount_domain::anomaly::monitor::Change;
use headcount_domain::anomaly::{Finding, Kind, Severity, Subject};
use headcount_domain::clock::UnixMs;
use headcount_domain::health::{StorageBoard, StorageHealth};
use headcount_store::Database;
use std::path::{Path, PathBuf};

pub struct DiskWatch {
    board: StorageBoard,
    database: PathBuf,
    site: String,
    min_free_bytes: u64,
    /// When the open `disk_nearly_full` anomaly started.
    open_since: Option<UnixMs>,
}

impl DiskWatch {
    pub fn new(board: StorageBoard, database: PathBuf, site: &str, min_free_bytes: u64) -> Self {
        board.set(StorageHealth {
            min_free_bytes,
            ..StorageHealth::default()
        });
        DiskWatch {
            board,
            database,
            site: site.to_string(),
            min_free_bytes,
            open_since: None,
        }
    }

    /// Measures and publishes; `audit` also counts the audit log (a scan of
    /// it: hourly). Returns the anomaly changes.
    pub fn measure(&mut self, now: UnixMs, audit: bool) -> Vec<Change> {
        let before = self.board.get();
        let (audit_entries, audit_bytes) = if audit {
            match Database::open_read_only(&self.database).and_then(|db| db.audit_log_size()) {
                Ok(size) => size,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot measure the audit log");
                    (before.audit_entries, before.audit_bytes)
                }
            }
        } else {
            (before.audit_entries, before.audit_bytes)
        };
        let free_bytes = match free_space(&self.database) {
            Ok(free) => Some(free),
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure the free disk space");
                before.free_bytes
            }
        };
        let health = StorageHealth {
            database_bytes: database_bytes(&self.database),
            audit_entries,
            audit_bytes,
            free_bytes,
            min_free_bytes: self.min_free_bytes,
        };
        self.board.set(health);
        let subject = Subject::Appliance(self.site.clone());
        match (health.nearly_full(), self.open_since) {
            (true, None) => {
                self.open_since = Some(now);
                let (free_mb, min_mb) = (
                    free_bytes.unwrap_or(0) / 1_000_000,
                    self.min_free_bytes / 1_000_000,
                );
                vec![Change::Open {
                    started: now,
                    finding: Finding {
                        kind: Kind::DiskNearlyFull,
                        subject,
                        severity: Severity::Critical,
                        value: free_mb as f64,
                        threshold: min_mb as f64,
                        explanation: format!(
                            "the database's disk has {free_mb} MB free, below the {min_mb} MB kept free: \
                             new reads are refused (an admin's excepted); counting goes on"
                        ),
                    },
                }]
            }
            (false, Some(started)) => {
                self.open_since = None;
                vec![Change::Close {
                    kind: Kind::DiskNearlyFull,
                    subject,
                    started,
                    ended: now,
                }]
            }
            _ => Vec::new(),
        }
    }
}

/// Space an unprivileged writer may still use on the database's file system.
fn free_space(database: &Path) -> std::io::Result<u64> {
    let folder = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stat = rustix::fs::statvfs(folder)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The database file and its write-ahead log.
fn database_bytes(database: &Path) -> u64 {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    [database.to_path_buf(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_floor_opens_one_anomaly_and_above_it_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("h.db");
        Database::open(&database).unwrap();
        let board = StorageBoard::default();
        // No disk has an exabyte free: nearly full at once.
        let mut watch = DiskWatch::new(board.clone(), database.clone(), "hq", u64::MAX / 2);
        let opened = watch.measure(1_000, true);
        assert!(matches!(&opened[..], [Change::Open { started: 1_000, .. }]));
        assert!(board.nearly_full());
        let health = board.get();
        assert!(health.free_bytes.is_some_and(|f| f > 0) && health.database_bytes > 0);
        assert!(
            watch.measure(61_000, false).is_empty(),
            "still open: no new change"
        );
        // The floor lowered (a config change): it closes.
        watch.min_free_bytes = 1;
        let closed = watch.measure(121_000, false);
        assert!(matches!(
            &closed[..],
            [Change::Close {
                started: 1_000,
                ended: 121_000,
                ..
            }]
        ));
        assert!(!board.nearly_full());
    }
}
