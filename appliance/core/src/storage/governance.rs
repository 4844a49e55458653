//! Rollups, publication, retention sweeps and privacy budgets.
//!
//! - Rollups: minute buckets become 15-minute ones, those hourly ones, those
//!   daily ones (UTC), once the coarser bucket has ended and a grace period
//!   for late writes has passed. `rollup_mark` records how far each width is.
//! - Publication: in the same transaction, each new bucket of each space is
//!   decided for external consumers (`crate::disclosure`): small counts and
//!   the cells that would reveal them are withheld. A decision is made once
//!   and never revised, so an API client, the MQTT fleet and Prometheus all
//!   see the same cells.
//! - Sweeps: each data class loses what is past its lifetime, in one
//!   transaction with a deletion receipt (class, range, rows, digest of the
//!   deleted rows) appended to the hash-chained audit log. A finer class is
//!   never swept past what has been rolled up from it.

use super::{AuditAction, AuditEntry, Database, MinuteBucket, StorageError};
use crate::analytics::Scope;
use crate::clock::UnixMs;
use crate::disclosure::{self, Budget, BudgetExhausted, DayGrid, Level, Member};
use crate::retention::{DataClass, RetentionPolicy, DAY_MS, HOUR_MS, MINUTE_MS};
use rusqlite::{params, OptionalExtension, Transaction};

pub const QUARTER_MS: i64 = 15 * MINUTE_MS;
/// Each coarser width and the finer one it is rolled up from.
const ROLLUPS: [(i64, i64); 3] = [
    (QUARTER_MS, MINUTE_MS),
    (HOUR_MS, QUARTER_MS),
    (DAY_MS, HOUR_MS),
];
/// At most this much of a width is rolled up per transaction.
const ROLLUP_CHUNK_MS: i64 = 31 * DAY_MS;

/// The aggregate tables: name stem, key columns, summed measures, max measures.
struct Family {
    stem: &'static str,
    keys: &'static str,
    sums: &'static [&'static str],
    maxes: &'static [&'static str],
}

const FAMILIES: [Family; 4] = [
    Family {
        stem: "occupancy",
        keys: "camera, zone",
        sums: &["samples", "occupancy_sum"],
        maxes: &["occupancy_max"],
    },
    Family {
        stem: "space",
        keys: "space",
        sums: &["samples", "occupancy_sum"],
        maxes: &["occupancy_max"],
    },
    Family {
        stem: "flow",
        keys: "camera, line",
        sums: &["entries", "exits"],
        maxes: &[],
    },
    Family {
        stem: "dwell",
        keys: "camera, zone, bin",
        sums: &["visits"],
        maxes: &[],
    },
];

/// Where a series is read from: (width, from, to) of a rollup, and the
/// minute ranges around it.
struct SeriesSources {
    rolled: Option<(i64, UnixMs, UnixMs)>,
    minutes: Vec<(UnixMs, UnixMs)>,
}

/// A space as published: its name and its entrance lines (camera, line).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSpace {
    pub name: String,
    pub entrances: Vec<(String, String)>,
}

impl PublishSpace {
    pub fn from_config(config: &crate::config::Config) -> Vec<PublishSpace> {
        config
            .spaces
            .iter()
            .map(|s| PublishSpace {
                name: s.name.clone(),
                entrances: s
                    .entrances
                    .iter()
                    .filter_map(|key| key.split_once('.'))
                    .map(|(c, l)| (c.to_string(), l.to_string()))
                    .collect(),
            })
            .collect()
    }
}

/// One published cell row: the whole space (`member` empty) or an entrance.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    pub bucket_start: UnixMs,
    pub member: String,
    pub entries: Option<u64>,
    pub exits: Option<u64>,
    pub occupancy_mean: Option<f64>,
    pub occupancy_peak: Option<u32>,
    /// Measures withheld in this row (`entries`, `exits`, `occupancy`).
    pub withheld: Vec<String>,
}

/// What a sweep deleted from one class.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepReceipt {
    pub class: DataClass,
    /// Oldest deleted row's time, and the cutoff: rows before it are gone.
    pub from: Option<UnixMs>,
    pub to: UnixMs,
    pub rows: u64,
    /// SHA-256 over the deleted rows in key order, hex.
    pub digest: String,
}

/// One class as the DPO sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassState {
    pub class: DataClass,
    pub rows: u64,
    pub oldest: Option<UnixMs>,
    pub last_sweep: Option<(UnixMs, UnixMs, u64)>,
}

/// A consumer's privacy budget after a charge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetState {
    pub daily: f64,
    pub spent: f64,
}

impl Database {
    /// Rolls up every width as far as `now - grace_ms` allows and publishes
    /// the new buckets of `spaces` with threshold `k`. Returns the buckets
    /// published, per width, as (width, from, to).
    pub fn roll_up(
        &mut self,
        now: UnixMs,
        grace_ms: i64,
        spaces: &[PublishSpace],
        k: u32,
    ) -> Result<Vec<(i64, UnixMs, UnixMs)>, StorageError> {
        let mut done = Vec::new();
        for (width, finer) in ROLLUPS {
            let mark = self.rollup_mark(width)?;
            let finer_mark = if finer == MINUTE_MS {
                None
            } else {
                match self.rollup_mark(finer)? {
                    Some(m) => Some(m),
                    None => continue,
                }
            };
            let start = match mark {
                Some(m) => m,
                None => match self.earliest(finer)? {
                    Some(first) => first.div_euclid(width) * width,
                    None => continue,
                },
            };
            let mut end = (now - grace_ms).div_euclid(width) * width;
            if let Some(f) = finer_mark {
                end = end.min(f.div_euclid(width) * width);
            }
            let mut from = start;
            while from < end {
                let to = end.min(from + ROLLUP_CHUNK_MS.max(width));
                self.write(|tx| {
                    roll_up_range(tx, width, finer, from, to)?;
                    publish_range(tx, width, from, to, spaces, k)?;
                    tx.execute(
                        "INSERT OR REPLACE INTO rollup_mark (width_ms, done_until) VALUES (?1, ?2)",
                        params![width, to],
                    )?;
                    Ok(())
                })?;
                done.push((width, from, to));
                from = to;
            }
        }
        Ok(done)
    }

    /// Every bucket of this width ending at or before the mark is rolled up.
    pub fn rollup_mark(&self, width: i64) -> Result<Option<UnixMs>, StorageError> {
        self.conn
            .query_row(
                "SELECT done_until FROM rollup_mark WHERE width_ms = ?1",
                [width],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// The earliest bucket of any family at this width.
    fn earliest(&self, width: i64) -> Result<Option<UnixMs>, StorageError> {
        let mut first: Option<UnixMs> = None;
        for family in &FAMILIES {
            let (table, filter) = source(family, width);
            let found: Option<UnixMs> = self
                .conn
                .query_row(
                    &format!("SELECT min(bucket_start) FROM {table} WHERE {filter} 1"),
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.wrap(e))?;
            first = match (first, found) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(first)
    }

    /// The published rows of one space at one width with `from <= start < to`.
    pub fn published_aggregates(
        &self,
        width: i64,
        space: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<PublishedRow>, StorageError> {
        self.query(
            "SELECT bucket_start, member, entries, exits, occupancy_mean, occupancy_peak, withheld
             FROM published_aggregate
             WHERE width_ms = ?1 AND space = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
             ORDER BY bucket_start, member",
            params![width, space, from, to],
            |r| {
                let withheld: String = r.get(6)?;
                Ok(PublishedRow {
                    bucket_start: r.get(0)?,
                    member: r.get(1)?,
                    entries: r.get::<_, Option<i64>>(2)?.map(|v| v.max(0) as u64),
                    exits: r.get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
                    occupancy_mean: r.get(4)?,
                    occupancy_peak: r.get(5)?,
                    withheld: withheld
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            },
        )
    }

    /// Where a series of `bucket_ms` buckets over `[from, to)` is read from:
    /// the coarsest rollup that divides the bucket, up to that rollup's mark
    /// (whole rollup buckets only), and the minutes for the rest, so that a
    /// long history outlives the minutes' retention and the newest hour is
    /// still served from minutes.
    fn series_sources(
        &self,
        bucket_ms: i64,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<SeriesSources, StorageError> {
        let width = [DAY_MS, HOUR_MS, QUARTER_MS]
            .into_iter()
            .find(|w| bucket_ms >= *w && bucket_ms % w == 0);
        let rolled = match width {
            Some(w) => self.rollup_mark(w)?.map(|mark| {
                let start = from.div_euclid(w) * w + if from % w == 0 { 0 } else { w };
                (w, start, mark.min(to).div_euclid(w) * w)
            }),
            None => None,
        };
        Ok(match rolled {
            Some((w, a, b)) if a < b => SeriesSources {
                rolled: Some((w, a, b)),
                minutes: vec![(from, a), (b, to)],
            },
            _ => SeriesSources {
                rolled: None,
                minutes: vec![(from, to)],
            },
        })
    }

    /// Occupancy buckets of a zone or space over `[from, to)`, as fine as
    /// needed for buckets of `bucket_ms`, oldest first.
    pub fn occupancy_series(
        &self,
        scope: &Scope,
        bucket_ms: i64,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<MinuteBucket>, StorageError> {
        let SeriesSources { rolled, minutes } = self.series_sources(bucket_ms, from, to)?;
        let mut rows = Vec::new();
        if let Some((w, a, b)) = rolled {
            let columns = "bucket_start, samples, occupancy_sum, occupancy_max";
            rows.extend(match scope {
                Scope::Zone { camera, zone } => self.query(
                    &format!("SELECT {columns} FROM occupancy_rollup WHERE width_ms = ?1 AND camera = ?2 AND zone = ?3 AND bucket_start >= ?4 AND bucket_start < ?5"),
                    params![w, &**camera, zone, a, b],
                    super::minute_bucket,
                )?,
                Scope::Space(space) => self.query(
                    &format!("SELECT {columns} FROM space_rollup WHERE width_ms = ?1 AND space = ?2 AND bucket_start >= ?3 AND bucket_start < ?4"),
                    params![w, space, a, b],
                    super::minute_bucket,
                )?,
            });
        }
        for (a, b) in minutes.into_iter().filter(|(a, b)| a < b) {
            rows.extend(self.occupancy_minutes(scope, a, b)?);
        }
        rows.sort_by_key(|r| r.bucket_start);
        Ok(rows)
    }

    /// As `occupancy_series`, for the crossings of one line.
    pub fn flow_series(
        &self,
        camera: &str,
        line: &str,
        bucket_ms: i64,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<super::FlowMinute>, StorageError> {
        let SeriesSources { rolled, minutes } = self.series_sources(bucket_ms, from, to)?;
        let mut rows = Vec::new();
        if let Some((w, a, b)) = rolled {
            rows.extend(self.query(
                "SELECT bucket_start, entries, exits FROM flow_rollup
                 WHERE width_ms = ?1 AND camera = ?2 AND line = ?3 AND bucket_start >= ?4 AND bucket_start < ?5",
                params![w, camera, line, a, b],
                |r| {
                    Ok(super::FlowMinute {
                        bucket_start: r.get(0)?,
                        entries: r.get(1)?,
                        exits: r.get(2)?,
                    })
                },
            )?);
        }
        for (a, b) in minutes.into_iter().filter(|(a, b)| a < b) {
            rows.extend(self.flow_minutes(camera, line, a, b)?);
        }
        rows.sort_by_key(|r| r.bucket_start);
        Ok(rows)
    }

    /// As `occupancy_series`, for the dwell histograms of one zone.
    pub fn dwell_series(
        &self,
        camera: &str,
        zone: &str,
        bucket_ms: i64,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, crate::analytics::DwellHistogram)>, StorageError> {
        let SeriesSources { rolled, minutes } = self.series_sources(bucket_ms, from, to)?;
        let mut rows = Vec::new();
        if let Some((w, a, b)) = rolled {
            let bins = self.query(
                "SELECT bucket_start, bin, visits FROM dwell_rollup
                 WHERE width_ms = ?1 AND camera = ?2 AND zone = ?3 AND bucket_start >= ?4 AND bucket_start < ?5
                 ORDER BY bucket_start",
                params![w, camera, zone, a, b],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u16>(1)?, r.get::<_, u32>(2)?)),
            )?;
            rows.extend(super::histograms(bins));
        }
        for (a, b) in minutes.into_iter().filter(|(a, b)| a < b) {
            rows.extend(self.dwell_minutes(camera, zone, a, b)?);
        }
        rows.sort_by_key(|r| r.0);
        Ok(rows)
    }

    /// The start of the newest published bucket of a space at a width.
    pub fn latest_published(
        &self,
        width: i64,
        space: &str,
    ) -> Result<Option<UnixMs>, StorageError> {
        self.conn
            .query_row(
                "SELECT max(bucket_start) FROM published_aggregate WHERE width_ms = ?1 AND space = ?2",
                params![width, space],
                |r| r.get(0),
            )
            .map_err(|e| self.wrap(e))
    }

    /// Deletes what each class holds past its lifetime, one class per
    /// transaction, each with a receipt in the audit log.
    pub fn sweep(
        &mut self,
        now: UnixMs,
        policy: &RetentionPolicy,
    ) -> Result<Vec<SweepReceipt>, StorageError> {
        let mut receipts = Vec::new();
        for class in DataClass::ALL {
            let mut cutoff = policy.cutoff(class, now);
            let tables: Vec<(String, String)> = match class {
                DataClass::Aggregates1m
                | DataClass::Aggregates15m
                | DataClass::Aggregates1h
                | DataClass::Aggregates1d => {
                    let Some(width) = class.bucket_ms() else {
                        continue;
                    };
                    // Never past what the next coarser width has rolled up.
                    if let Some(&(coarser, _)) = ROLLUPS.iter().find(|(_, f)| *f == width) {
                        cutoff = cutoff.min(self.rollup_mark(coarser)?.unwrap_or(i64::MIN));
                    }
                    let mut tables: Vec<(String, String)> = FAMILIES
                        .iter()
                        .map(|f| {
                            let (table, filter) = source(f, width);
                            (table, filter)
                        })
                        .collect();
                    if width != MINUTE_MS {
                        tables.push((
                            "published_aggregate".into(),
                            format!("width_ms = {width} AND"),
                        ));
                    }
                    tables
                }
                DataClass::PrivacyBudget => vec![("privacy_budget".into(), String::new())],
                DataClass::Events => vec![("anomaly_event".into(), String::new())],
                DataClass::AuditLog => {
                    if let Some(receipt) = self.sweep_audit_class(now, cutoff)? {
                        receipts.push(receipt);
                    }
                    continue;
                }
                // Snapshots live in memory only (`SnapshotBoard::expire`).
                DataClass::Snapshots => continue,
            };
            if let Some(receipt) = self.sweep_tables(class, now, cutoff, &tables)? {
                receipts.push(receipt);
            }
        }
        Ok(receipts)
    }

    fn sweep_tables(
        &mut self,
        class: DataClass,
        now: UnixMs,
        cutoff: UnixMs,
        tables: &[(String, String)],
    ) -> Result<Option<SweepReceipt>, StorageError> {
        self.write(|tx| {
            let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
            let mut rows = 0u64;
            let mut oldest: Option<UnixMs> = None;
            for (table, filter) in tables {
                // An anomaly counts from its end: open ones are kept.
                let time = match table.as_str() {
                    "privacy_budget" => "day",
                    "anomaly_event" => "ended_ms",
                    _ => "bucket_start",
                };
                let condition = format!("{filter} {time} < ?1");
                let first: Option<UnixMs> = tx.query_row(
                    &format!("SELECT min({time}) FROM {table} WHERE {condition}"),
                    [cutoff],
                    |r| r.get(0),
                )?;
                let Some(first) = first else { continue };
                oldest = Some(oldest.map_or(first, |o| o.min(first)));
                digest.update(table.as_bytes());
                digest.update(b"\n");
                // Rows in primary-key order (WITHOUT ROWID tables are stored so).
                let mut stmt = tx.prepare(&format!("SELECT * FROM {table} WHERE {condition}"))?;
                let columns = stmt.column_count();
                let mut cursor = stmt.query([cutoff])?;
                while let Some(row) = cursor.next()? {
                    for i in 0..columns {
                        let cell = row.get_ref(i)?;
                        let text = match cell {
                            rusqlite::types::ValueRef::Null => "NULL".to_string(),
                            rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                            rusqlite::types::ValueRef::Real(v) => v.to_string(),
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Blob(b) => crate::security::to_hex(b),
                        };
                        digest.update(text.as_bytes());
                        digest.update(if i + 1 == columns { b"\n" } else { b"\t" });
                    }
                }
                drop(cursor);
                drop(stmt);
                let deleted =
                    tx.execute(&format!("DELETE FROM {table} WHERE {condition}"), [cutoff])?;
                rows += deleted as u64;
            }
            record_sweep(tx, class, now, cutoff, rows)?;
            let receipt = (rows > 0).then(|| SweepReceipt {
                class,
                from: oldest,
                to: cutoff,
                rows,
                digest: crate::security::to_hex(digest.finish().as_ref()),
            });
            if let Some(r) = &receipt {
                Database::append_audit_tx(tx, now, &[receipt_entry(r)])?;
            }
            Ok(receipt)
        })
    }

    fn sweep_audit_class(
        &mut self,
        now: UnixMs,
        cutoff: UnixMs,
    ) -> Result<Option<SweepReceipt>, StorageError> {
        self.write(|tx| {
            // The audit log's own receipt also names the chain's new anchor.
            let swept = Database::sweep_audit_with_receipt_tx(tx, cutoff, now)?;
            let rows = swept.as_ref().map_or(0, |s| s.rows);
            record_sweep(tx, DataClass::AuditLog, now, cutoff, rows)?;
            Ok(swept.map(|swept| SweepReceipt {
                class: DataClass::AuditLog,
                from: None,
                to: cutoff,
                rows: swept.rows,
                digest: crate::security::to_hex(&swept.digest),
            }))
        })
    }

    /// Rows, oldest row and last sweep of every class.
    pub fn retention_overview(&self) -> Result<Vec<ClassState>, StorageError> {
        let mut out = Vec::new();
        for class in DataClass::ALL {
            let tables: Vec<(String, String, &str)> = match class {
                DataClass::Aggregates1m
                | DataClass::Aggregates15m
                | DataClass::Aggregates1h
                | DataClass::Aggregates1d => {
                    let width = class.bucket_ms().unwrap_or(MINUTE_MS);
                    FAMILIES
                        .iter()
                        .map(|f| {
                            let (t, filter) = source(f, width);
                            (t, filter, "bucket_start")
                        })
                        .collect()
                }
                DataClass::PrivacyBudget => {
                    vec![("privacy_budget".into(), String::new(), "day")]
                }
                DataClass::AuditLog => vec![("audit_log".into(), String::new(), "at_ms")],
                // Aged from their end, as the sweep does (open ones: from their start).
                DataClass::Events => vec![(
                    "anomaly_event".into(),
                    String::new(),
                    "coalesce(ended_ms, started_ms)",
                )],
                DataClass::Snapshots => vec![],
            };
            let mut rows = 0u64;
            let mut oldest: Option<UnixMs> = None;
            for (table, filter, time) in tables {
                let (n, first): (i64, Option<UnixMs>) = self
                    .conn
                    .query_row(
                        &format!("SELECT count(*), min({time}) FROM {table} WHERE {filter} 1"),
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(|e| self.wrap(e))?;
                rows += n as u64;
                oldest = match (oldest, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let last_sweep = self
                .conn
                .query_row(
                    "SELECT swept_at, cutoff, rows FROM retention_sweep WHERE class = ?1",
                    [class.key()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
                )
                .optional()
                .map_err(|e| self.wrap(e))?;
            out.push(ClassState {
                class,
                rows,
                oldest,
                last_sweep,
            });
        }
        Ok(out)
    }

    /// Charges `epsilon` to a consumer's budget for the UTC day of `now`,
    /// unless that would exceed `daily`.
    pub fn charge_privacy_budget(
        &mut self,
        consumer: &str,
        now: UnixMs,
        epsilon: f64,
        daily: f64,
    ) -> Result<Result<BudgetState, BudgetExhausted>, StorageError> {
        let day = now.div_euclid(DAY_MS) * DAY_MS;
        self.write(|tx| {
        let spent: f64 = tx
            .query_row(
                "SELECT spent FROM privacy_budget WHERE consumer = ?1 AND day = ?2",
                params![consumer, day],
                |r| r.get(0),
            )
            .optional()
            ?
            .unwrap_or(0.0);
        let budget = Budget { daily, spent };
        let result = match budget.charge(epsilon) {
            Ok(spent) => {
                tx.execute(
                    "INSERT OR REPLACE INTO privacy_budget (consumer, day, spent) VALUES (?1, ?2, ?3)",
                    params![consumer, day, spent],
                )?;
                Ok(BudgetState { daily, spent })
            }
            Err(exhausted) => Err(exhausted),
        };
        Ok(result)
        })
    }
}

/// The table holding a family's buckets of `width`, and the filter (ending
/// in AND) that selects that width.
fn source(family: &Family, width: i64) -> (String, String) {
    if width == MINUTE_MS {
        (format!("{}_minute", family.stem), String::new())
    } else {
        (
            format!("{}_rollup", family.stem),
            format!("width_ms = {width} AND"),
        )
    }
}

fn roll_up_range(
    tx: &Transaction,
    width: i64,
    finer: i64,
    from: UnixMs,
    to: UnixMs,
) -> rusqlite::Result<()> {
    for family in &FAMILIES {
        let (table, filter) = source(family, finer);
        let measures: Vec<&str> = family.sums.iter().chain(family.maxes).copied().collect();
        let aggregates: Vec<String> = family
            .sums
            .iter()
            .map(|m| format!("sum({m})"))
            .chain(family.maxes.iter().map(|m| format!("max({m})")))
            .collect();
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO {stem}_rollup (width_ms, {keys}, bucket_start, {measures})
                 SELECT ?1, {keys}, (bucket_start / ?1) * ?1 AS b, {aggregates}
                 FROM {table} WHERE {filter} bucket_start >= ?2 AND bucket_start < ?3
                 GROUP BY {keys}, b",
                stem = family.stem,
                keys = family.keys,
                measures = measures.join(", "),
                aggregates = aggregates.join(", "),
            ),
            params![width, from, to],
        )?;
    }
    Ok(())
}

fn level_of(width: i64) -> Level {
    match width {
        QUARTER_MS => Level::QuarterHour,
        HOUR_MS => Level::Hour,
        _ => Level::Day,
    }
}

/// Decides and stores what consumers may see of each bucket of `width` in
/// `[from, to)`.
fn publish_range(
    tx: &Transaction,
    width: i64,
    from: UnixMs,
    to: UnixMs,
    spaces: &[PublishSpace],
    k: u32,
) -> rusqlite::Result<()> {
    let level = level_of(width);
    for space in spaces {
        let occupancy = space_occupancy(tx, width, &space.name, from, to)?;
        let mut day = from.div_euclid(DAY_MS) * DAY_MS;
        while day < to {
            let day_end = day + DAY_MS;
            // Quarters of this day that have ended by `to`.
            let ended = ((to.min(day_end) - day) / QUARTER_MS) as usize;
            let flows = (!space.entrances.is_empty())
                .then(|| DayFlows::load(tx, space, day, k, ended))
                .transpose()?;
            let mut bucket = from.max(day);
            while bucket < to.min(day_end) {
                let index = ((bucket - day) / width) as usize;
                let occupied = occupancy.iter().find(|o| o.0 == bucket).copied();
                let watched =
                    occupied.is_some() || flows.as_ref().is_some_and(|f| f.watched(level, index));
                if watched {
                    let mut rows = match &flows {
                        Some(f) => f.rows(level, index),
                        None => vec![PublishedCells::default()],
                    };
                    if let (Some((_, samples, sum, max)), Some(total)) =
                        (occupied, rows.first_mut())
                    {
                        let small = max > 0 && u64::from(max) < u64::from(k);
                        let reveals = width != QUARTER_MS
                            && finer_occupancy_withheld(tx, width, &space.name, bucket)? == 1;
                        if small || reveals {
                            total.withheld.push("occupancy");
                        } else {
                            let mean = sum as f64 / samples.max(1) as f64;
                            total.occupancy = Some(((mean * 100.0).round() / 100.0, max));
                        }
                    }
                    for cells in rows {
                        cells.insert(tx, width, &space.name, bucket)?;
                    }
                }
                bucket += width;
            }
            day = day_end;
        }
    }
    Ok(())
}

/// One row of `published_aggregate` before it is written.
#[derive(Debug, Default)]
struct PublishedCells {
    /// Empty for the whole space, else the entrance (camera.line).
    member: String,
    entries: Option<u64>,
    exits: Option<u64>,
    /// Mean and peak; the whole space only.
    occupancy: Option<(f64, u32)>,
    withheld: Vec<&'static str>,
}

impl PublishedCells {
    fn insert(
        self,
        tx: &Transaction,
        width: i64,
        space: &str,
        bucket: UnixMs,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO published_aggregate
             (width_ms, space, bucket_start, member, entries, exits, occupancy_mean, occupancy_peak, withheld)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                width,
                space,
                bucket,
                self.member,
                self.entries.map(|v| v as i64),
                self.exits.map(|v| v as i64),
                self.occupancy.map(|o| o.0),
                self.occupancy.map(|o| o.1),
                self.withheld.join(",")
            ],
        )?;
        Ok(())
    }
}

/// (bucket_start, samples, occupancy_sum, occupancy_max) of a space.
fn space_occupancy(
    tx: &Transaction,
    width: i64,
    space: &str,
    from: UnixMs,
    to: UnixMs,
) -> rusqlite::Result<Vec<(UnixMs, u64, u64, u32)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT bucket_start, samples, occupancy_sum, occupancy_max FROM space_rollup
         WHERE width_ms = ?1 AND space = ?2 AND bucket_start >= ?3 AND bucket_start < ?4",
    )?;
    let rows = stmt.query_map(params![width, space, from, to], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
            r.get(3)?,
        ))
    })?;
    rows.collect()
}

/// How many finer published buckets inside this one withheld occupancy:
/// exactly one would be revealed by publishing this bucket's mean.
fn finer_occupancy_withheld(
    tx: &Transaction,
    width: i64,
    space: &str,
    bucket: UnixMs,
) -> rusqlite::Result<i64> {
    let finer = ROLLUPS
        .iter()
        .find(|(w, _)| *w == width)
        .map_or(QUARTER_MS, |(_, f)| *f);
    tx.query_row(
        "SELECT count(*) FROM published_aggregate
         WHERE width_ms = ?1 AND space = ?2 AND member = '' AND bucket_start >= ?3 AND bucket_start < ?4
           AND (',' || withheld || ',') LIKE '%,occupancy,%'",
        params![finer, space, bucket, bucket + width],
        |r| r.get(0),
    )
}

/// One space's entrance counts over one UTC day, with what may be published.
struct DayFlows {
    keys: Vec<String>,
    /// Entries then exits: the true counts and their publication decisions
    /// (None when the grid could not be decided: everything is withheld).
    measures: [(DayGrid, Option<disclosure::Suppression>); 2],
    /// Quarters with at least one stored row (the lines were watched).
    watched: Vec<bool>,
}

impl DayFlows {
    fn load(
        tx: &Transaction,
        space: &PublishSpace,
        day: UnixMs,
        k: u32,
        ended: usize,
    ) -> rusqlite::Result<DayFlows> {
        let lines = space.entrances.len();
        let mut counts = [
            vec![vec![0u64; lines]; disclosure::QUARTERS],
            vec![vec![0u64; lines]; disclosure::QUARTERS],
        ];
        let mut watched = vec![false; disclosure::QUARTERS];
        let mut stmt = tx.prepare_cached(
            "SELECT bucket_start, entries, exits FROM flow_rollup
             WHERE width_ms = ?1 AND camera = ?2 AND line = ?3 AND bucket_start >= ?4 AND bucket_start < ?5",
        )?;
        for (i, (camera, line)) in space.entrances.iter().enumerate() {
            let rows =
                stmt.query_map(params![QUARTER_MS, camera, line, day, day + DAY_MS], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
            for row in rows {
                let (start, entries, exits) = row?;
                let q = ((start - day) / QUARTER_MS) as usize;
                if q < disclosure::QUARTERS {
                    counts[0][q][i] = entries.max(0) as u64;
                    counts[1][q][i] = exits.max(0) as u64;
                    watched[q] = true;
                }
            }
        }
        let measure =
            |parts: &[Vec<u64>]| -> rusqlite::Result<(DayGrid, Option<disclosure::Suppression>)> {
                let grid = DayGrid::from_quarters(lines, parts)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                let decided = disclosure::suppress(&grid, k, ended).ok();
                Ok((grid, decided))
            };
        Ok(DayFlows {
            keys: space
                .entrances
                .iter()
                .map(|(c, l)| format!("{c}.{l}"))
                .collect(),
            measures: [measure(&counts[0])?, measure(&counts[1])?],
            watched,
        })
    }

    fn watched(&self, level: Level, index: usize) -> bool {
        let per = disclosure::QUARTERS / level.buckets();
        self.watched.iter().skip(index * per).take(per).any(|w| *w)
    }

    /// The whole space's cells, then each entrance's, for one bucket.
    fn rows(&self, level: Level, index: usize) -> Vec<PublishedCells> {
        let entries = self.published(0, level, index);
        let exits = self.published(1, level, index);
        std::iter::once(String::new())
            .chain(self.keys.iter().cloned())
            .enumerate()
            .map(|(slot, member)| {
                let entries = entries.get(slot).copied().flatten();
                let exits = exits.get(slot).copied().flatten();
                let mut withheld = Vec::new();
                if entries.is_none() {
                    withheld.push("entries");
                }
                if exits.is_none() {
                    withheld.push("exits");
                }
                PublishedCells {
                    member,
                    entries,
                    exits,
                    occupancy: None,
                    withheld,
                }
            })
            .collect()
    }

    /// Published values of the total and of each line (None: withheld), for
    /// entries (measure 0) or exits (1).
    fn published(&self, measure: usize, level: Level, index: usize) -> Vec<Option<u64>> {
        let (grid, decisions) = &self.measures[measure];
        std::iter::once(Member::Total)
            .chain((0..self.keys.len()).map(Member::Line))
            .map(|m| {
                decisions
                    .as_ref()
                    .filter(|d| d.published(level, index, m))
                    .and_then(|_| grid.value(level, index, m))
            })
            .collect()
    }
}

fn record_sweep(
    tx: &Transaction,
    class: DataClass,
    now: UnixMs,
    cutoff: UnixMs,
    rows: u64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO retention_sweep (class, swept_at, cutoff, rows) VALUES (?1, ?2, ?3, ?4)",
        params![class.key(), now, cutoff, rows as i64],
    )?;
    Ok(())
}

/// A deletion receipt as an audit entry.
fn receipt_entry(r: &SweepReceipt) -> AuditEntry {
    AuditEntry {
        actor: super::audit::RETENTION_ACTOR.into(),
        role: super::audit::SYSTEM_ROLE.into(),
        action: AuditAction::Deletion,
        target: r.class.key().into(),
        rows: r.rows,
        detail: serde_json::json!({
            "from": r.from,
            "to": r.to,
            "sha256": r.digest,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{Deltas, FlowDelta, OccupancyDelta, Scope};
    use crate::retention::RetentionLimit;
    use crate::security::audit_key::AuditKey;

    const DAY0: i64 = 20_000 * DAY_MS;

    fn space() -> Vec<PublishSpace> {
        vec![PublishSpace {
            name: "hall".into(),
            entrances: vec![("cam".into(), "a".into()), ("cam".into(), "b".into())],
        }]
    }

    /// Two days of minutes: line a 1 entry every minute from 08:00 to
    /// 10:00, line b 1 entry at 09:07 only.
    fn seeded(dir: &std::path::Path) -> Database {
        let mut db = Database::open(&dir.join("g.db")).unwrap();
        let mut deltas = Deltas::default();
        for minute in 0..2 * 1440 {
            let at = DAY0 + minute * MINUTE_MS;
            let of_day = minute % 1440;
            let busy = (8 * 60..10 * 60).contains(&of_day);
            for (line, entries) in [
                ("a", u32::from(busy)),
                ("b", u32::from(of_day == 9 * 60 + 7)),
            ] {
                deltas.flows.push(FlowDelta {
                    camera: "cam".into(),
                    line: line.into(),
                    bucket_start: at,
                    entries,
                    exits: 0,
                });
            }
            deltas.occupancy.push(OccupancyDelta {
                scope: Scope::Space("hall".into()),
                bucket_start: at,
                samples: 2,
                occupancy_sum: if busy { 12 } else { 0 },
                occupancy_max: if busy { 6 } else { 0 },
            });
        }
        db.apply(&deltas).unwrap();
        db
    }

    fn sum(db: &Database, sql: &str) -> i64 {
        db.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn rollups_keep_every_count_and_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(dir.path());
        let now = DAY0 + 2 * DAY_MS;
        let done = db.roll_up(now, 0, &space(), 5).unwrap();
        assert_eq!(done.len(), 3, "{done:?}");
        for width in [QUARTER_MS, HOUR_MS, DAY_MS] {
            assert_eq!(
                sum(
                    &db,
                    &format!("SELECT sum(entries) FROM flow_rollup WHERE width_ms = {width}")
                ),
                2 * (120 + 1),
                "width {width}"
            );
            assert_eq!(db.rollup_mark(width).unwrap(), Some(DAY0 + 2 * DAY_MS));
        }
        assert_eq!(
            sum(
                &db,
                &format!("SELECT max(occupancy_max) FROM space_rollup WHERE width_ms = {DAY_MS}")
            ),
            6
        );
        // A second pass finds nothing new.
        assert!(db.roll_up(now, 0, &space(), 5).unwrap().is_empty());
    }

    #[test]
    fn a_lone_small_entrance_is_withheld_with_another_cell() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(dir.path());
        db.roll_up(DAY0 + DAY_MS + HOUR_MS, 0, &space(), 5).unwrap();
        let rows = db
            .published_aggregates(
                QUARTER_MS,
                "hall",
                DAY0 + 9 * HOUR_MS,
                DAY0 + 9 * HOUR_MS + QUARTER_MS,
            )
            .unwrap();
        // 09:00-09:15: a = 15, b = 1 (small), total 16. b alone withheld
        // would be 16 - 15: the smallest other cell goes too.
        let cell = |member: &str| rows.iter().find(|r| r.member == member).unwrap().entries;
        assert_eq!(cell("cam.b"), None);
        assert_eq!(
            [cell(""), cell("cam.a")]
                .iter()
                .filter(|c| c.is_none())
                .count(),
            1,
            "{rows:?}"
        );
        assert_eq!(rows[0].occupancy_peak, Some(6));
    }

    #[test]
    fn sweeps_stop_at_what_is_rolled_up_and_leave_a_verifiable_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(dir.path());
        let key = AuditKey::generate().unwrap();
        let policy = RetentionPolicy::new(vec![RetentionLimit {
            class: DataClass::Aggregates1m,
            limit_ms: HOUR_MS,
            justification: None,
        }]);
        let now = DAY0 + 2 * DAY_MS;
        // Nothing rolled up yet: the minutes are kept whatever their age.
        let receipts = db.sweep(now, &policy).unwrap();
        assert!(receipts.is_empty(), "{receipts:?}");
        assert_eq!(sum(&db, "SELECT count(*) FROM flow_minute"), 2 * 2 * 1440);
        // Rolled up to the end of day one: only day one's minutes go.
        db.roll_up(DAY0 + DAY_MS, 0, &space(), 5).unwrap();
        let receipts = db.sweep(now, &policy).unwrap();
        assert_eq!(receipts.len(), 1);
        let r = &receipts[0];
        assert_eq!(
            (r.class, r.from, r.to, r.rows),
            (DataClass::Aggregates1m, Some(DAY0), DAY0 + DAY_MS, 3 * 1440)
        );
        assert_eq!(
            sum(&db, "SELECT min(bucket_start) FROM flow_minute"),
            DAY0 + DAY_MS
        );
        // The receipt is in the chain, which verifies.
        db.checkpoint_audit(now, &key).unwrap();
        let receipts = db.deletion_receipts(10).unwrap();
        assert_eq!(receipts[0].target, "aggregates_1m");
        assert_eq!(receipts[0].detail["sha256"], r.digest);
        let report = super::super::verify_audit(&db, &key.public_key()).unwrap();
        assert!(report.is_intact(), "{report:?}");
        // The same rows give the same digest (a DPO can recompute it).
        let dir2 = tempfile::tempdir().unwrap();
        let mut again = seeded(dir2.path());
        again.roll_up(DAY0 + DAY_MS, 0, &space(), 5).unwrap();
        assert_eq!(again.sweep(now, &policy).unwrap()[0].digest, r.digest);
    }

    #[test]
    fn budgets_are_per_consumer_and_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("b.db")).unwrap();
        let charge = |db: &mut Database, who: &str, at: i64| {
            db.charge_privacy_budget(who, at, 1.0, 2.0).unwrap()
        };
        assert_eq!(charge(&mut db, "p", DAY0).unwrap().spent, 1.0);
        assert_eq!(charge(&mut db, "p", DAY0 + 10).unwrap().spent, 2.0);
        let refused = charge(&mut db, "p", DAY0 + 20).unwrap_err();
        assert_eq!(refused.spent, 2.0);
        assert_eq!(charge(&mut db, "q", DAY0).unwrap().spent, 1.0);
        assert_eq!(charge(&mut db, "p", DAY0 + DAY_MS).unwrap().spent, 1.0);
    }
}
