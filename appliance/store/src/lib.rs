//! SQLite storage. One writer thread (`writer`) owns the service's only
//! writing connection and applies each batch in one transaction (few, large
//! writes spare flash); readers open their own read-only connections. WAL
//! with synchronous=FULL: a committed batch survives a crash or power loss.

use headcount_domain::analytics::{Deltas, DwellHistogram, EntranceCount, Scope};
use headcount_domain::clock::UnixMs;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};

pub mod anomaly;
mod audit;
mod coalesce;
pub mod fleet;
pub mod governance;
mod history;
mod keys;
pub mod publication;
mod token_store;
mod tokens;
mod writer;
pub use audit::{
    verify_audit, AuditAction, AuditEntry, AuditProblem, AuditRecord, AuditReport, AuditSweep,
};
pub use coalesce::READ_WINDOW_MS;
pub use keys::open_receipt_key;
pub use token_store::TokenStore;
pub use tokens::{console_user, pseudonym, TokenRow};
pub use writer::{
    Announce, Maintenance, MaintenanceReport, ReadOutcome, WriteError, Writer, WriterOptions,
};

const SCHEMA: &str = include_str!("schema.sql");
/// Step N brings a database from user_version N-1 to N. Append only.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_occupancy_minute.sql"),
    include_str!("migrations/0002_spaces_flow_dwell.sql"),
    include_str!("migrations/0003_entrance_counts.sql"),
    include_str!("migrations/0004_api_tokens.sql"),
    include_str!("migrations/0005_audit_log.sql"),
    include_str!("migrations/0006_governance.sql"),
    include_str!("migrations/0007_anomalies.sql"),
    include_str!("migrations/0008_disclosure.sql"),
    include_str!("migrations/0009_time_indexes.sql"),
    include_str!("migrations/0010_entrance_entries.sql"),
];

pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this headcount knows ({known}): it was written by a newer version; install that version again, or restore the backup taken before the upgrade (headcount restore); the database was not touched")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Key and token stores (in `headcount_domain::security`) report the
/// database's failures as their own.
impl From<StorageError> for headcount_domain::security::SecurityError {
    fn from(e: StorageError) -> Self {
        headcount_domain::security::SecurityError::Store(Box::new(e))
    }
}

impl StorageError {
    /// Whether the same write may succeed later: the disk is full,
    /// read-only, failing or busy, rather than the write being wrong.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StorageError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => matches!(
                e.code,
                DiskFull | ReadOnly | SystemIoFailure | DatabaseBusy | DatabaseLocked | CannotOpen
            ),
            _ => false,
        }
    }
}

/// Crossings of one line in one minute, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMinute {
    pub bucket_start: UnixMs,
    pub entries: u32,
    pub exits: u32,
}

/// One minute bucket as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteBucket {
    pub bucket_start: UnixMs,
    pub samples: u32,
    pub occupancy_sum: u64,
    pub occupancy_max: u32,
}

pub struct Database {
    conn: Connection,
    path: PathBuf,
}

impl Database {
    /// Opens (creating if needed) and migrates the database for writing.
    pub fn open(path: &Path) -> Result<Database, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let wrap = |source| StorageError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(wrap)?;
        prepare(&conn, path)?;
        migrate(&mut conn, path)?;
        Ok(Database {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// An existing database as it is, for writing without migrating it:
    /// a backup may be taken by a newer binary than the appliance running
    /// on the database, which must not see its schema change underneath it.
    pub fn open_as_is(path: &Path) -> Result<Database, StorageError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(
            |source| StorageError::Sqlite {
                path: path.to_path_buf(),
                source,
            },
        )?;
        prepare(&conn, path)?;
        Ok(Database {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A read-only connection for queries (the API).
    pub fn open_read_only(path: &Path) -> Result<Database, StorageError> {
        let wrap = |source| StorageError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        Ok(Database {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A consistent copy of the whole database at `dest` (which must not
    /// exist), while others keep writing: SQLite's `VACUUM INTO` reads one
    /// snapshot and writes a compact file.
    pub fn copy_into(&self, dest: &Path) -> Result<(), StorageError> {
        let dest_text = dest.to_str().ok_or_else(|| StorageError::Sqlite {
            path: dest.to_path_buf(),
            source: rusqlite::Error::InvalidPath(dest.to_path_buf()),
        })?;
        self.conn
            .execute("VACUUM INTO ?1", [dest_text])
            .map(|_| ())
            .map_err(|source| StorageError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// The schema version of this database's file.
    pub fn file_schema_version(&self) -> Result<i64, StorageError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StorageError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// Runs `work` in one write transaction and commits it, or rolls it all
    /// back on the first error. The transaction takes the write lock at once,
    /// so that the service and a console command (a token change) never both
    /// read the audit chain's tail and collide; a busy database is waited for
    /// (busy_timeout) rather than failed.
    fn write<T>(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        let conn = &mut self.conn;
        let done = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        done.map_err(|source| self.wrap(source))
    }

    fn wrap(&self, source: rusqlite::Error) -> StorageError {
        StorageError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds a batch of deltas in one transaction.
    pub fn apply(&mut self, deltas: &Deltas) -> Result<(), StorageError> {
        self.write(|tx| {
        {
            let mut zone = tx
                .prepare_cached(
                    "INSERT INTO occupancy_minute (camera, zone, bucket_start, samples, occupancy_sum, occupancy_max)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (camera, zone, bucket_start) DO UPDATE SET
                       samples = samples + excluded.samples,
                       occupancy_sum = occupancy_sum + excluded.occupancy_sum,
                       occupancy_max = max(occupancy_max, excluded.occupancy_max)",
                )?;
            let mut space = tx
                .prepare_cached(
                    "INSERT INTO space_minute (space, bucket_start, samples, occupancy_sum, occupancy_max)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (space, bucket_start) DO UPDATE SET
                       samples = samples + excluded.samples,
                       occupancy_sum = occupancy_sum + excluded.occupancy_sum,
                       occupancy_max = max(occupancy_max, excluded.occupancy_max)",
                )?;
            for d in &deltas.occupancy {
                let sum = d.occupancy_sum as i64;
                match &d.scope {
                    Scope::Zone { camera, zone: name } => zone.execute(params![
                        &**camera,
                        name,
                        d.bucket_start,
                        d.samples,
                        sum,
                        d.occupancy_max
                    ]),
                    Scope::Space(name) => space.execute(params![
                        name,
                        d.bucket_start,
                        d.samples,
                        sum,
                        d.occupancy_max
                    ]),
                }?;
            }
            let mut flow = tx
                .prepare_cached(
                    "INSERT INTO flow_minute (camera, line, bucket_start, entries, exits)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (camera, line, bucket_start) DO UPDATE SET
                       entries = entries + excluded.entries,
                       exits = exits + excluded.exits",
                )?;
            for f in &deltas.flows {
                flow.execute(params![
                    &*f.camera,
                    f.line,
                    f.bucket_start,
                    f.entries,
                    f.exits
                ])?;
            }
            let mut dwell = tx
                .prepare_cached(
                    "INSERT INTO dwell_minute (camera, zone, bucket_start, bin, visits)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (camera, zone, bucket_start, bin) DO UPDATE SET
                       visits = visits + excluded.visits",
                )?;
            for d in &deltas.dwell {
                for (bin, visits) in d.histogram.bins() {
                    dwell
                        .execute(params![&*d.camera, d.zone, d.bucket_start, bin, visits])?;
                }
            }
            // A count replaces the saved one unless that one is newer (a
            // backlog retried after a failure).
            let mut count = tx
                .prepare_cached(
                    "INSERT INTO entrance_count (space, count, entries, saved_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (space) DO UPDATE SET count = excluded.count,
                         entries = excluded.entries, saved_at = excluded.saved_at
                     WHERE excluded.saved_at >= saved_at",
                )?;
            for c in &deltas.entrance_counts {
                count
                    .execute(params![c.space, c.count, i64::try_from(c.entries).unwrap_or(i64::MAX), c.at])?;
            }
        }
        // Minutes behind a rollup mark (the wall clock stepped back, or a
        // backlog outlasted the grace period) are rolled up again: the
        // marks go back to the bucket that holds the earliest of them.
        // Rollups recompute whole buckets, so nothing counts twice.
        let earliest = deltas
            .occupancy
            .iter()
            .map(|d| d.bucket_start)
            .chain(deltas.flows.iter().map(|f| f.bucket_start))
            .chain(deltas.dwell.iter().map(|d| d.bucket_start))
            .min();
        if let Some(earliest) = earliest {
            tx.execute(
                "UPDATE rollup_mark SET done_until = (?1 / width_ms) * width_ms
                 WHERE done_until > (?1 / width_ms) * width_ms",
                params![earliest],
            )?;
        }
        Ok(())
        })
    }

    /// Minute buckets of one zone or space with `from <= bucket_start < to`,
    /// oldest first.
    pub fn occupancy_minutes(
        &self,
        scope: &Scope,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<MinuteBucket>, StorageError> {
        const COLUMNS: &str = "bucket_start, samples, occupancy_sum, occupancy_max";
        match scope {
            Scope::Zone { camera, zone } => self.query(
                &format!("SELECT {COLUMNS} FROM occupancy_minute WHERE camera = ?1 AND zone = ?2 AND bucket_start >= ?3 AND bucket_start < ?4 ORDER BY bucket_start"),
                params![&**camera, zone, from, to],
                minute_bucket,
            ),
            Scope::Space(space) => self.query(
                &format!("SELECT {COLUMNS} FROM space_minute WHERE space = ?1 AND bucket_start >= ?2 AND bucket_start < ?3 ORDER BY bucket_start"),
                params![space, from, to],
                minute_bucket,
            ),
        }
    }

    /// Every row of a query, each mapped by `row`.
    fn query<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StorageError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.wrap(e))?;
        let rows = stmt.query_map(params, row).map_err(|e| self.wrap(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.wrap(e))
    }

    /// The saved entrance count of every space.
    pub fn entrance_counts(&self) -> Result<Vec<EntranceCount>, StorageError> {
        self.query(
            "SELECT space, count, entries, saved_at FROM entrance_count ORDER BY space",
            [],
            |r| {
                Ok(EntranceCount {
                    space: r.get(0)?,
                    count: r.get(1)?,
                    entries: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    at: r.get(3)?,
                })
            },
        )
    }

    /// Crossings of one line per minute with `from <= bucket_start < to`.
    pub fn flow_minutes(
        &self,
        camera: &str,
        line: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<FlowMinute>, StorageError> {
        self.query(
            "SELECT bucket_start, entries, exits FROM flow_minute
             WHERE camera = ?1 AND line = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
             ORDER BY bucket_start",
            params![camera, line, from, to],
            |r| {
                Ok(FlowMinute {
                    bucket_start: r.get(0)?,
                    entries: r.get(1)?,
                    exits: r.get(2)?,
                })
            },
        )
    }

    /// Dwell histograms of one zone per minute with `from <= bucket_start < to`.
    pub fn dwell_minutes(
        &self,
        camera: &str,
        zone: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, DwellHistogram)>, StorageError> {
        let rows = self.query(
            "SELECT bucket_start, bin, visits FROM dwell_minute
             WHERE camera = ?1 AND zone = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
             ORDER BY bucket_start",
            params![camera, zone, from, to],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            },
        )?;
        Ok(histograms(rows))
    }
}

/// (bucket_start, bin, visits) rows, ordered by bucket, as one histogram per bucket.
fn histograms(rows: Vec<(UnixMs, u16, u32)>) -> Vec<(UnixMs, DwellHistogram)> {
    let mut out: Vec<(UnixMs, DwellHistogram)> = Vec::new();
    for (start, bin, visits) in rows {
        if out.last().is_none_or(|(s, _)| *s != start) {
            out.push((start, DwellHistogram::default()));
        }
        if let Some((_, h)) = out.last_mut() {
            h.add_bin(bin, visits);
        }
    }
    out
}

fn minute_bucket(r: &rusqlite::Row<'_>) -> rusqlite::Result<MinuteBucket> {
    Ok(MinuteBucket {
        bucket_start: r.get(0)?,
        samples: r.get(1)?,
        occupancy_sum: r.get::<_, i64>(2)? as u64,
        occupancy_max: r.get(3)?,
    })
}

/// Refuses a newer database before anything is written to it (even the
/// journal mode in the header), then sets the connection's pragmas.
fn prepare(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let wrap = |source| StorageError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    refuse_newer(conn, path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(wrap)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(wrap)
}

/// A database written by a newer headcount is left as it is: its data
/// would not survive this version's idea of the schema.
fn refuse_newer(conn: &Connection, path: &Path) -> Result<i64, StorageError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| StorageError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
    let known = schema_version();
    if version > known {
        return Err(StorageError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    Ok(version)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let wrap = |source| StorageError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let version = refuse_newer(conn, path)?;
    let known = schema_version();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(wrap)?;
    if version == 0 && tables == 0 {
        let tx = conn.transaction().map_err(wrap)?;
        tx.execute_batch(SCHEMA).map_err(wrap)?;
        tx.pragma_update(None, "user_version", known)
            .map_err(wrap)?;
        return tx.commit().map_err(wrap);
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(wrap)?;
        tx.execute_batch(sql).map_err(wrap)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)
            .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        tracing::info!(step = step + 1, "database upgraded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_domain::analytics::{DwellDelta, FlowDelta, OccupancyDelta};

    fn schema_of(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn migrating_from_the_oldest_schema_matches_a_fresh_database() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = Database::open(&dir.path().join("fresh.db")).unwrap();
        // The oldest database: version 0 with an unrelated table, so that
        // the step-by-step path runs rather than the fresh-schema path.
        let old_path = dir.path().join("old.db");
        Connection::open(&old_path)
            .unwrap()
            .execute_batch("CREATE TABLE keep_me (x INTEGER);")
            .unwrap();
        let upgraded = Database::open(&old_path).unwrap();
        let mut upgraded_schema = schema_of(&upgraded.conn);
        upgraded_schema.retain(|(name, _)| name != "keep_me");
        // Comments are not schema: a fresh database may have newer ones.
        let strip = |s: Vec<(String, String)>| -> Vec<(String, String)> {
            s.into_iter()
                .map(|(n, sql)| {
                    let code = sql.lines().map(|l| l.split("--").next().unwrap_or(""));
                    let words = code.flat_map(str::split_whitespace);
                    (n, words.collect::<Vec<_>>().join(" "))
                })
                .collect()
        };
        assert_eq!(strip(schema_of(&fresh.conn)), strip(upgraded_schema));
        let version = |db: &Database| {
            db.conn
                .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(version(&fresh), schema_version());
        assert_eq!(version(&upgraded), schema_version());
    }

    #[test]
    fn flows_and_dwell_histograms_add_up_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let batch = |entries: u32, seconds: &[f64]| {
            let mut histogram = DwellHistogram::default();
            for &s in seconds {
                histogram.add(s);
            }
            Deltas {
                flows: vec![FlowDelta {
                    camera: "cam".into(),
                    line: "door".into(),
                    bucket_start: 60_000,
                    entries,
                    exits: 1,
                }],
                dwell: vec![DwellDelta {
                    camera: "cam".into(),
                    zone: "room".into(),
                    bucket_start: 60_000,
                    histogram,
                }],
                ..Deltas::default()
            }
        };
        let mut db = Database::open(&path).unwrap();
        db.apply(&batch(2, &[10.0, 30.0])).unwrap();
        db.apply(&batch(1, &[10.0])).unwrap();
        let reader = Database::open_read_only(&path).unwrap();
        assert_eq!(
            reader.flow_minutes("cam", "door", 0, 120_000).unwrap(),
            [FlowMinute {
                bucket_start: 60_000,
                entries: 3,
                exits: 2
            }]
        );
        let dwell = reader.dwell_minutes("cam", "room", 0, 120_000).unwrap();
        assert_eq!(dwell.len(), 1);
        assert_eq!(dwell[0].1.visits(), 3);
        let median = dwell[0].1.quantile(0.5).unwrap();
        assert!((median / 10.0 - 1.0).abs() < 0.05, "{median}");
        assert!(reader
            .flow_minutes("cam", "door", 60_001, 120_000)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_newest_entrance_count_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("h.db")).unwrap();
        let counts = |list: &[(&str, u32, i64)]| Deltas {
            entrance_counts: list
                .iter()
                .map(|&(space, count, at)| EntranceCount {
                    space: space.into(),
                    count,
                    entries: u64::from(count) * 10,
                    at,
                })
                .collect(),
            ..Deltas::default()
        };
        db.apply(&counts(&[("hall", 3, 1_000), ("shop", 1, 1_000)]))
            .unwrap();
        db.apply(&counts(&[("hall", 5, 2_000)])).unwrap();
        // An older count (a retried backlog) does not overwrite a newer one.
        db.apply(&counts(&[("hall", 4, 1_500)])).unwrap();
        let saved = db.entrance_counts().unwrap();
        let got: Vec<_> = saved
            .iter()
            .map(|c| (c.space.as_str(), c.count, c.entries, c.at))
            .collect();
        assert_eq!(got, [("hall", 5, 50, 2_000), ("shop", 1, 10, 1_000)]);
    }

    #[test]
    fn a_database_from_the_future_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            Database::open(&path),
            Err(StorageError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn deltas_merge_additively_across_flushes_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let zone = Scope::Zone {
            camera: "cam".into(),
            zone: "door".into(),
        };
        let delta = |start: i64, samples: u32, sum: u64, max: u32| Deltas {
            occupancy: vec![OccupancyDelta {
                scope: zone.clone(),
                bucket_start: start,
                samples,
                occupancy_sum: sum,
                occupancy_max: max,
            }],
            ..Deltas::default()
        };
        let both = |a: Deltas, b: Deltas| {
            let mut d = a;
            d.extend(b);
            d
        };
        Database::open(&path)
            .unwrap()
            .apply(&both(delta(60_000, 2, 6, 4), delta(120_000, 1, 1, 1)))
            .unwrap();
        // A restart within the same minute adds to what was saved.
        Database::open(&path)
            .unwrap()
            .apply(&delta(60_000, 3, 3, 2))
            .unwrap();
        let reader = Database::open_read_only(&path).unwrap();
        let got = reader.occupancy_minutes(&zone, 0, 180_000).unwrap();
        assert_eq!(
            got,
            [
                MinuteBucket {
                    bucket_start: 60_000,
                    samples: 5,
                    occupancy_sum: 9,
                    occupancy_max: 4
                },
                MinuteBucket {
                    bucket_start: 120_000,
                    samples: 1,
                    occupancy_sum: 1,
                    occupancy_max: 1
                },
            ]
        );
        assert!(reader
            .occupancy_minutes(&zone, 0, 60_000)
            .unwrap()
            .is_empty());
        assert!(reader
            .occupancy_minutes(&Scope::Space("door".into()), 0, 180_000)
            .unwrap()
            .is_empty());
    }
}
