//! SQLite storage. One writer thread owns the only writing connection and
//! applies each batch in one transaction (few, large writes spare flash);
//! readers open their own read-only connections. WAL with synchronous=FULL:
//! a committed batch survives a crash or power loss.

use crate::analytics::BucketDelta;
use crate::clock::UnixMs;
use rusqlite::{params, Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

const SCHEMA: &str = include_str!("schema.sql");
/// Step N brings a database from user_version N-1 to N. Append only.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_occupancy_minute.sql")];

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
    #[error("database {path} has schema version {found}, newer than this headcount knows ({known}); refusing to touch it")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
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
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        migrate(&mut conn, path)?;
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

    fn wrap(&self, source: rusqlite::Error) -> StorageError {
        StorageError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds a batch of bucket deltas in one transaction.
    pub fn apply(&mut self, deltas: &[BucketDelta]) -> Result<(), StorageError> {
        let tx = self.conn.transaction().map_err(|e| StorageError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO occupancy_minute (camera, zone, bucket_start, samples, occupancy_sum, occupancy_max)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (camera, zone, bucket_start) DO UPDATE SET
                       samples = samples + excluded.samples,
                       occupancy_sum = occupancy_sum + excluded.occupancy_sum,
                       occupancy_max = max(occupancy_max, excluded.occupancy_max)",
                )
                .map_err(|e| StorageError::Sqlite { path: self.path.clone(), source: e })?;
            for d in deltas {
                stmt.execute(params![
                    &*d.camera,
                    d.zone,
                    d.bucket_start,
                    d.samples,
                    d.occupancy_sum as i64,
                    d.occupancy_max
                ])
                .map_err(|e| StorageError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
            }
        }
        tx.commit().map_err(|e| self.wrap(e))
    }

    /// Minute buckets of one zone with `from <= bucket_start < to`, oldest first.
    pub fn occupancy_minutes(
        &self,
        camera: &str,
        zone: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<MinuteBucket>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT bucket_start, samples, occupancy_sum, occupancy_max FROM occupancy_minute
                 WHERE camera = ?1 AND zone = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
                 ORDER BY bucket_start",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map(params![camera, zone, from, to], |r| {
                Ok(MinuteBucket {
                    bucket_start: r.get(0)?,
                    samples: r.get(1)?,
                    occupancy_sum: r.get::<_, i64>(2)? as u64,
                    occupancy_max: r.get(3)?,
                })
            })
            .map_err(|e| self.wrap(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.wrap(e))
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let wrap = |source| StorageError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(wrap)?;
    let known = schema_version();
    if version > known {
        return Err(StorageError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
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

/// The writer loop: applies batches until every sender is gone. A batch that
/// fails is logged and retried with the next one, so a full disk loses no
/// more than it must.
pub fn run_writer(mut db: Database, batches: Receiver<Vec<BucketDelta>>) {
    let mut backlog: Vec<BucketDelta> = Vec::new();
    for batch in batches {
        backlog.extend(batch);
        match db.apply(&backlog) {
            Ok(()) => backlog.clear(),
            Err(e) => {
                tracing::error!(error = %e, pending = backlog.len(), "could not write buckets; will retry")
            }
        }
    }
    if !backlog.is_empty() {
        tracing::error!(
            pending = backlog.len(),
            "buckets left unwritten at shutdown"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let strip = |s: Vec<(String, String)>| -> Vec<(String, String)> {
            s.into_iter()
                .map(|(n, sql)| (n, sql.split_whitespace().collect::<Vec<_>>().join(" ")))
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
        let delta = |start: i64, samples: u32, sum: u64, max: u32| BucketDelta {
            camera: "cam".into(),
            zone: "door".into(),
            bucket_start: start,
            samples,
            occupancy_sum: sum,
            occupancy_max: max,
        };
        Database::open(&path)
            .unwrap()
            .apply(&[delta(60_000, 2, 6, 4), delta(120_000, 1, 1, 1)])
            .unwrap();
        // A restart within the same minute adds to what was saved.
        Database::open(&path)
            .unwrap()
            .apply(&[delta(60_000, 3, 3, 2)])
            .unwrap();
        let reader = Database::open_read_only(&path).unwrap();
        let got = reader.occupancy_minutes("cam", "door", 0, 180_000).unwrap();
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
            .occupancy_minutes("cam", "door", 0, 60_000)
            .unwrap()
            .is_empty());
        assert!(reader
            .occupancy_minutes("cam", "other", 0, 180_000)
            .unwrap()
            .is_empty());
    }
}
