//! Rollups, time series and retention sweeps.
//!
//! - Rollups: minute buckets become 15-minute ones, those hourly ones, those
//!   daily ones (UTC), once the coarser bucket has ended and a grace period
//!   for late writes has passed. `rollup_mark` records how far each width is;
//!   publication (`super::publication`) follows it.
//! - Sweeps: each data class loses what is past its lifetime, in one
//!   transaction with a deletion receipt (class, range, rows, HMAC-SHA256
//!   of the deleted rows under the device's receipt key) appended to the
//!   hash-chained audit log. A finer class is never swept past what has been
//!   rolled up from it. With the audit log go the rows of the tokens that
//!   ended (revoked or expired) before its cutoff: their names explained
//!   pseudonyms no kept entry holds.

use super::{AuditAction, AuditEntry, Database, MinuteBucket, StorageError};
use headcount_domain::analytics::Scope;
use headcount_domain::clock::UnixMs;
use headcount_domain::retention::{DataClass, RetentionPolicy, DAY_MS, HOUR_MS, MINUTE_MS};
use headcount_domain::security::ReceiptKey;
use rusqlite::{params, OptionalExtension, Transaction};

pub const QUARTER_MS: i64 = 15 * MINUTE_MS;
/// Each coarser width and the finer one it is rolled up from.
const ROLLUPS: [(i64, i64); 3] = [
    (QUARTER_MS, MINUTE_MS),
    (HOUR_MS, QUARTER_MS),
    (DAY_MS, HOUR_MS),
];
/// One step of maintenance (a transaction) covers at most this many
/// buckets of the finer width per key (6 hours of minutes, 90 of quarter
/// hours, 15 days of hours), so that the writer answers what waits (an
/// audited read) between steps within milliseconds, also while it catches
/// up on a year.
pub const STEP_BUCKETS: i64 = 360;

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

/// The target of the receipt for ended tokens, purged with the audit log.
pub const TOKENS_TARGET: &str = "api_token";

/// How far a sweep in steps has come: the data class it is at.
#[derive(Debug, Default, Clone, Copy)]
pub struct SweepProgress {
    class: usize,
}

impl SweepProgress {
    pub fn done(&self) -> bool {
        self.class >= DataClass::ALL.len()
    }
}

/// What a sweep (step) deleted from one class.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepReceipt {
    pub class: DataClass,
    /// What the receipt names: the class, or `TOKENS_TARGET`.
    pub target: &'static str,
    /// Oldest deleted row's time, and the cutoff: rows before it are gone.
    pub from: Option<UnixMs>,
    pub to: UnixMs,
    pub rows: u64,
    /// HMAC-SHA256 under the receipt key over the deleted rows in key
    /// order, hex: the same rows and key give the same digest, but without
    /// the key a guess of the rows cannot be confirmed.
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

impl Database {
    /// Rolls up every width as far as `now - grace_ms` allows. Returns the
    /// ranges rolled up, per width, as (width, from, to).
    pub fn roll_up(
        &mut self,
        now: UnixMs,
        grace_ms: i64,
    ) -> Result<Vec<(i64, UnixMs, UnixMs)>, StorageError> {
        let mut done = Vec::new();
        while let Some(range) = self.roll_up_step(now, grace_ms)? {
            done.push(range);
        }
        Ok(done)
    }

    /// One step of `roll_up`: the next range of at most `STEP_BUCKETS`
    /// finer buckets, in one transaction; None when everything due is
    /// rolled up.
    pub fn roll_up_step(
        &mut self,
        now: UnixMs,
        grace_ms: i64,
    ) -> Result<Option<(i64, UnixMs, UnixMs)>, StorageError> {
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
            if start >= end {
                continue;
            }
            let (from, to) = (start, end.min(start + (STEP_BUCKETS * finer).max(width)));
            self.write(|tx| {
                roll_up_range(tx, width, finer, from, to)?;
                tx.execute(
                    "INSERT OR REPLACE INTO rollup_mark (width_ms, done_until) VALUES (?1, ?2)",
                    params![width, to],
                )?;
                Ok(())
            })?;
            return Ok(Some((width, from, to)));
        }
        Ok(None)
    }

    /// Every bucket of this width ending at or before the mark is rolled up.
    pub fn rollup_mark(&self, width: i64) -> Result<Option<UnixMs>, StorageError> {
        self.mark("rollup_mark", width)
    }

    /// How far a width is done in a mark table (`rollup_mark`, `publish_mark`).
    pub(super) fn mark(
        &self,
        table: &'static str,
        width: i64,
    ) -> Result<Option<UnixMs>, StorageError> {
        self.conn
            .query_row(
                &format!("SELECT done_until FROM {table} WHERE width_ms = ?1"),
                [width],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// The earliest bucket of any family at this width.
    pub(super) fn earliest(&self, width: i64) -> Result<Option<UnixMs>, StorageError> {
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

    /// Entries and exits of one line since `from` (a multiple of 15
    /// minutes, such as a local midnight): from the 15-minute rollups as
    /// far as they reach and the minutes after, so that the total holds
    /// whatever `retention.aggregates_1m` keeps (at least an hour, and
    /// rollups run every minute).
    pub fn line_crossings_since(
        &self,
        camera: &str,
        line: &str,
        from: UnixMs,
    ) -> Result<(u64, u64), StorageError> {
        let rows = self.flow_series(camera, line, QUARTER_MS, from, UnixMs::MAX)?;
        Ok(rows.iter().fold((0, 0), |(entries, exits), row| {
            (
                entries + u64::from(row.entries),
                exits + u64::from(row.exits),
            )
        }))
    }

    /// As `occupancy_series`, for the dwell histograms of one zone.
    pub fn dwell_series(
        &self,
        camera: &str,
        zone: &str,
        bucket_ms: i64,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<(UnixMs, headcount_domain::analytics::DwellHistogram)>, StorageError> {
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

    /// Deletes what each class holds past its lifetime, each step in one
    /// transaction with a receipt (keyed with `key`) in the audit log.
    pub fn sweep(
        &mut self,
        now: UnixMs,
        policy: &RetentionPolicy,
        key: &ReceiptKey,
    ) -> Result<Vec<SweepReceipt>, StorageError> {
        let mut receipts = Vec::new();
        let mut progress = SweepProgress::default();
        while !progress.done() {
            receipts.extend(self.sweep_step(now, policy, key, &mut progress)?);
        }
        Ok(receipts)
    }

    /// One step of `sweep`: the next class with rows past its lifetime
    /// loses at most `STEP_BUCKETS` of its buckets per key (the audit log,
    /// the budget ledger and the events at once), in one transaction with
    /// its receipt; classes with nothing to delete are recorded as swept
    /// on the way.
    pub fn sweep_step(
        &mut self,
        now: UnixMs,
        policy: &RetentionPolicy,
        key: &ReceiptKey,
        progress: &mut SweepProgress,
    ) -> Result<Vec<SweepReceipt>, StorageError> {
        while let Some(&class) = DataClass::ALL.get(progress.class) {
            let mut cutoff = policy.cutoff(class, now);
            let mut span = None;
            let tables: Vec<(String, String)> = match class {
                DataClass::Aggregates1m
                | DataClass::Aggregates15m
                | DataClass::Aggregates1h
                | DataClass::Aggregates1d => {
                    let Some(width) = class.bucket_ms() else {
                        progress.class += 1;
                        continue;
                    };
                    span = Some(STEP_BUCKETS * width);
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
                        for table in ["published_aggregate", "fleet_outbox"] {
                            tables.push((table.into(), format!("width_ms = {width} AND")));
                        }
                    }
                    tables
                }
                DataClass::PrivacyBudget => vec![("privacy_ledger".into(), String::new())],
                DataClass::Events => vec![("anomaly_event".into(), String::new())],
                DataClass::AuditLog => {
                    progress.class += 1;
                    let receipts: Vec<SweepReceipt> = [
                        self.sweep_audit_class(now, cutoff, key)?,
                        self.purge_ended_tokens(now, cutoff, key)?,
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    if receipts.is_empty() {
                        continue;
                    }
                    return Ok(receipts);
                }
                // Snapshots live in memory only (`SnapshotBoard::expire`).
                DataClass::Snapshots => {
                    progress.class += 1;
                    continue;
                }
            };
            let (receipt, more) = self.sweep_tables(class, now, cutoff, span, &tables, key)?;
            if !more {
                progress.class += 1;
            }
            if let Some(receipt) = receipt {
                return Ok(vec![receipt]);
            }
        }
        Ok(Vec::new())
    }

    /// Deletes the rows of `tables` before `cutoff`, or, with a `span`,
    /// only those before the oldest such row's time plus `span`; true with
    /// the receipt when rows before `cutoff` remain.
    fn sweep_tables(
        &mut self,
        class: DataClass,
        now: UnixMs,
        cutoff: UnixMs,
        span: Option<i64>,
        tables: &[(String, String)],
        key: &ReceiptKey,
    ) -> Result<(Option<SweepReceipt>, bool), StorageError> {
        self.write(|tx| {
            let mut digest = key.start();
            let mut rows = 0u64;
            // An anomaly counts from its end: open ones are kept.
            let time_of = |table: &str| match table {
                "privacy_ledger" => "day",
                "anomaly_event" => "ended_ms",
                _ => "bucket_start",
            };
            // Each table's oldest row before the cutoff.
            let mut firsts = Vec::with_capacity(tables.len());
            for (table, filter) in tables {
                let time = time_of(table);
                let first: Option<UnixMs> = tx.query_row(
                    &format!("SELECT min({time}) FROM {table} WHERE {filter} {time} < ?1"),
                    [cutoff],
                    |r| r.get(0),
                )?;
                firsts.push(first);
            }
            let oldest = firsts.iter().flatten().min().copied();
            let step_cutoff = match (oldest, span) {
                (Some(first), Some(span)) => cutoff.min(first.saturating_add(span)),
                _ => cutoff,
            };
            for ((table, filter), first) in tables.iter().zip(firsts) {
                if first.is_some_and(|first| first < step_cutoff) {
                    let condition = format!("{filter} {} < ?1", time_of(table));
                    rows += delete_into_digest(tx, &mut digest, table, &condition, step_cutoff)?;
                }
            }
            let more = step_cutoff < cutoff;
            let cutoff = step_cutoff;
            record_sweep(tx, class, now, cutoff, rows)?;
            let receipt = (rows > 0).then(|| SweepReceipt {
                class,
                target: class.key(),
                from: oldest,
                to: cutoff,
                rows,
                digest: headcount_domain::security::to_hex(digest.sign().as_ref()),
            });
            if let Some(r) = &receipt {
                Database::append_audit_tx(tx, now, &[receipt_entry(r)])?;
            }
            Ok((receipt, more))
        })
    }

    fn sweep_audit_class(
        &mut self,
        now: UnixMs,
        cutoff: UnixMs,
        key: &ReceiptKey,
    ) -> Result<Option<SweepReceipt>, StorageError> {
        self.write(|tx| {
            // The audit log's own receipt also names the chain's new anchor.
            let swept = Database::sweep_audit_with_receipt_tx(tx, cutoff, now, key)?;
            let rows = swept.as_ref().map_or(0, |s| s.rows);
            record_sweep(tx, DataClass::AuditLog, now, cutoff, rows)?;
            Ok(swept.map(|swept| SweepReceipt {
                class: DataClass::AuditLog,
                target: DataClass::AuditLog.key(),
                from: None,
                to: cutoff,
                rows: swept.rows,
                digest: headcount_domain::security::to_hex(&swept.digest),
            }))
        })
    }

    /// Deletes the tokens that ended (revoked, or expired, whichever came
    /// first) before `cutoff`, the audit log's: the entries their
    /// pseudonyms appear in are gone, so their holders' names are no longer
    /// needed. Tokens in force are kept however old.
    fn purge_ended_tokens(
        &mut self,
        now: UnixMs,
        cutoff: UnixMs,
        key: &ReceiptKey,
    ) -> Result<Option<SweepReceipt>, StorageError> {
        self.write(|tx| {
            let ended = "min(coalesce(revoked_ms, expires_ms), coalesce(expires_ms, revoked_ms))";
            let condition = format!("{ended} < ?1");
            let first: Option<UnixMs> = tx.query_row(
                &format!("SELECT min({ended}) FROM {TOKENS_TARGET} WHERE {condition}"),
                [cutoff],
                |r| r.get(0),
            )?;
            if first.is_none() {
                return Ok(None);
            }
            let mut digest = key.start();
            let rows = delete_into_digest(tx, &mut digest, TOKENS_TARGET, &condition, cutoff)?;
            let receipt = SweepReceipt {
                class: DataClass::AuditLog,
                target: TOKENS_TARGET,
                from: first,
                to: cutoff,
                rows,
                digest: headcount_domain::security::to_hex(digest.sign().as_ref()),
            };
            Database::append_audit_tx(tx, now, &[receipt_entry(&receipt)])?;
            Ok(Some(receipt))
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
                    vec![("privacy_ledger".into(), String::new(), "day")]
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

/// Feeds the rows of `table` matching `condition` (with `?1` = `cutoff`)
/// to `digest`, in primary-key order, then deletes them; returns how many.
fn delete_into_digest(
    tx: &Transaction,
    digest: &mut ring::hmac::Context,
    table: &str,
    condition: &str,
    cutoff: UnixMs,
) -> rusqlite::Result<u64> {
    digest.update(table.as_bytes());
    digest.update(b"\n");
    // Rows in primary-key order. The `+` keeps SQLite from walking the
    // whole table in key order to spare a sort: the time index finds the
    // step's rows, which are then sorted.
    let key: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?
        .query_map([table], |r| {
            r.get::<_, String>(0).map(|name| format!("+{name}"))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = tx.prepare(&format!(
        "SELECT * FROM {table} WHERE {condition} ORDER BY {}",
        key.join(", ")
    ))?;
    let columns = stmt.column_count();
    let mut cursor = stmt.query([cutoff])?;
    while let Some(row) = cursor.next()? {
        for i in 0..columns {
            let text = match row.get_ref(i)? {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(b) => headcount_domain::security::to_hex(b),
            };
            digest.update(text.as_bytes());
            digest.update(if i + 1 == columns { b"\n" } else { b"\t" });
        }
    }
    drop(cursor);
    drop(stmt);
    let deleted = tx.execute(&format!("DELETE FROM {table} WHERE {condition}"), [cutoff])?;
    Ok(deleted as u64)
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
        target: r.target.into(),
        rows: r.rows,
        detail: serde_json::json!({
            "from": r.from,
            "to": r.to,
            super::audit::RECEIPT_DIGEST: r.digest,
        }),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use headcount_domain::analytics::{Deltas, FlowDelta, OccupancyDelta, Scope};
    use headcount_domain::retention::RetentionLimit;
    use headcount_domain::security::audit_key::AuditKey;

    pub(crate) const DAY0: i64 = 20_000 * DAY_MS;

    /// Two days of minutes: line a 1 entry every minute from 08:00 to
    /// 10:00, line b 1 entry at 09:07 only.
    pub(crate) fn seeded(dir: &std::path::Path) -> Database {
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
        let done = db.roll_up(now, 0).unwrap();
        // In steps of at most STEP_BUCKETS finer buckets, end to end: the
        // two days of minutes in 6-hour steps, the coarser widths at once.
        for width in [QUARTER_MS, HOUR_MS, DAY_MS] {
            let steps: Vec<_> = done.iter().filter(|(w, _, _)| *w == width).collect();
            assert_eq!(steps.first().unwrap().1, DAY0, "{done:?}");
            assert_eq!(steps.last().unwrap().2, DAY0 + 2 * DAY_MS, "{done:?}");
            assert!(steps.windows(2).all(|p| p[0].2 == p[1].1), "{done:?}");
        }
        assert_eq!(done.len(), 8 + 1 + 1, "{done:?}");
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
        assert!(db.roll_up(now, 0).unwrap().is_empty());
    }

    #[test]
    fn minutes_written_behind_the_rollups_are_rolled_up_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(dir.path());
        let now = DAY0 + 2 * DAY_MS;
        db.roll_up(now, 0).unwrap();
        // The clock stepped back to 09:30 of the first day: 5 more entries.
        let late = DAY0 + 9 * HOUR_MS + 30 * MINUTE_MS;
        let mut deltas = Deltas::default();
        deltas.flows.push(FlowDelta {
            camera: "cam".into(),
            line: "a".into(),
            bucket_start: late,
            entries: 5,
            exits: 0,
        });
        db.apply(&deltas).unwrap();
        assert_eq!(db.rollup_mark(QUARTER_MS).unwrap(), Some(late));
        assert_eq!(db.rollup_mark(HOUR_MS).unwrap(), Some(DAY0 + 9 * HOUR_MS));
        assert_eq!(db.rollup_mark(DAY_MS).unwrap(), Some(DAY0));
        db.roll_up(now, 0).unwrap();
        for width in [QUARTER_MS, HOUR_MS, DAY_MS] {
            assert_eq!(
                sum(
                    &db,
                    &format!("SELECT sum(entries) FROM flow_rollup WHERE width_ms = {width}")
                ),
                2 * (120 + 1) + 5,
                "width {width}"
            );
            assert_eq!(db.rollup_mark(width).unwrap(), Some(now));
        }
    }

    #[test]
    fn a_days_crossings_outlive_the_minutes_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(dir.path());
        let policy = RetentionPolicy::new(vec![RetentionLimit {
            class: DataClass::Aggregates1m,
            limit_ms: HOUR_MS,
            justification: None,
        }]);
        // 10:20 on day two: rolled up as the appliance does, minutes kept
        // for an hour only.
        let now = DAY0 + DAY_MS + 10 * HOUR_MS + 20 * MINUTE_MS;
        db.roll_up(now, 0).unwrap();
        db.sweep(now, &policy, &ReceiptKey::from_bytes(&[3; 32]))
            .unwrap();
        let day_two = DAY0 + DAY_MS;
        let minutes_left: u64 = db
            .flow_minutes("cam", "a", day_two, UnixMs::MAX)
            .unwrap()
            .iter()
            .map(|m| u64::from(m.entries))
            .sum();
        assert!(
            minutes_left < 120,
            "the sweep left {minutes_left} entries in minutes"
        );
        assert_eq!(
            db.line_crossings_since("cam", "a", day_two).unwrap(),
            (120, 0)
        );
        assert_eq!(
            db.line_crossings_since("cam", "b", day_two).unwrap(),
            (1, 0)
        );
        // Nothing rolled up yet: the minutes alone.
        let dir = tempfile::tempdir().unwrap();
        let db = seeded(dir.path());
        assert_eq!(
            db.line_crossings_since("cam", "a", day_two).unwrap(),
            (120, 0)
        );
    }

    #[test]
    fn the_longest_local_day_outlives_the_shortest_lifetimes_a_config_may_set() {
        // Berlin's clocks go back on 2026-10-25: that local day lasts 25 hours.
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let local_midnight = |day| {
            jiff::civil::date(2026, 10, day)
                .to_zoned(berlin.clone())
                .unwrap()
                .timestamp()
                .as_millisecond()
        };
        let midnight = local_midnight(25);
        let day_ms = local_midnight(26) - midnight;
        assert_eq!(day_ms, 25 * HOUR_MS);
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("g.db")).unwrap();
        let mut deltas = Deltas::default();
        let quarters = day_ms / QUARTER_MS;
        for quarter in 0..quarters {
            deltas.flows.push(FlowDelta {
                camera: "cam".into(),
                line: "door".into(),
                bucket_start: midnight + quarter * QUARTER_MS,
                entries: 1,
                exits: 0,
            });
        }
        db.apply(&deltas).unwrap();
        // Ten minutes before the day ends, rolled up and swept as the
        // appliance does, minutes and quarter-hours at their minimum.
        let policy = RetentionPolicy::new(
            [DataClass::Aggregates1m, DataClass::Aggregates15m]
                .map(|class| RetentionLimit {
                    class,
                    limit_ms: class.minimum_ms(),
                    justification: None,
                })
                .into(),
        );
        let now = midnight + day_ms - 10 * MINUTE_MS;
        db.roll_up(now, 0).unwrap();
        db.sweep(now, &policy, &ReceiptKey::from_bytes(&[3; 32]))
            .unwrap();
        // What a restart seeds today's line counts from.
        assert_eq!(
            db.line_crossings_since("cam", "door", midnight).unwrap(),
            (quarters as u64, 0)
        );
    }

    #[test]
    fn sweeps_stop_at_what_is_rolled_up_and_leave_a_verifiable_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(dir.path());
        let key = AuditKey::generate().unwrap();
        let receipt_key = ReceiptKey::from_bytes(&[3; 32]);
        let policy = RetentionPolicy::new(vec![RetentionLimit {
            class: DataClass::Aggregates1m,
            limit_ms: HOUR_MS,
            justification: None,
        }]);
        let now = DAY0 + 2 * DAY_MS;
        // Nothing rolled up yet: the minutes are kept whatever their age.
        let receipts = db.sweep(now, &policy, &receipt_key).unwrap();
        assert!(receipts.is_empty(), "{receipts:?}");
        assert_eq!(sum(&db, "SELECT count(*) FROM flow_minute"), 2 * 2 * 1440);
        // Rolled up to the end of day one: only day one's minutes go.
        db.roll_up(DAY0 + DAY_MS, 0).unwrap();
        let receipts = db.sweep(now, &policy, &receipt_key).unwrap();
        // In four steps of six hours, each with its receipt.
        let ranges: Vec<_> = receipts.iter().map(|r| (r.from, r.to, r.rows)).collect();
        let quarter_day = DAY_MS / 4;
        let expected: Vec<_> = (0..4)
            .map(|i| {
                (
                    Some(DAY0 + i * quarter_day),
                    DAY0 + (i + 1) * quarter_day,
                    3 * 360,
                )
            })
            .collect();
        assert_eq!(ranges, expected);
        assert!(receipts.iter().all(|r| r.class == DataClass::Aggregates1m));
        let r = &receipts[0];
        assert_eq!(
            sum(&db, "SELECT min(bucket_start) FROM flow_minute"),
            DAY0 + DAY_MS
        );
        // The receipt is in the chain, which verifies.
        db.checkpoint_audit(now, &key).unwrap();
        let stored = db.deletion_receipts(10).unwrap();
        assert_eq!(stored.len(), 4);
        assert!(stored.iter().all(|e| e.target == "aggregates_1m"));
        assert!(stored.iter().any(|e| e.detail["hmac_sha256"] == r.digest));
        let report = super::super::verify_audit(&db, &key.public_key()).unwrap();
        assert!(report.is_intact(), "{report:?}");
        // The same rows and key give the same digest (a DPO with the key can
        // recompute it from a backup); another key, or none, another one:
        // without the key a guess of the deleted counts cannot be confirmed.
        let sweep_copy = |key: &ReceiptKey| {
            let dir = tempfile::tempdir().unwrap();
            let mut again = seeded(dir.path());
            again.roll_up(DAY0 + DAY_MS, 0).unwrap();
            again.sweep(now, &policy, key).unwrap().remove(0).digest
        };
        assert_eq!(sweep_copy(&receipt_key), r.digest);
        assert_ne!(sweep_copy(&ReceiptKey::from_bytes(&[4; 32])), r.digest);
        // Recomputed independently from a copy of the rows: HMAC under the
        // key matches, the bare SHA-256 of the same bytes does not.
        let dir3 = tempfile::tempdir().unwrap();
        let copy = seeded(dir3.path());
        let mut encoded = Vec::new();
        for (table, key) in [
            ("occupancy_minute", "camera, zone, bucket_start"),
            ("space_minute", "space, bucket_start"),
            ("flow_minute", "camera, line, bucket_start"),
            ("dwell_minute", "camera, zone, bucket_start, bin"),
        ] {
            let mut stmt = copy
                .conn
                .prepare(&format!(
                    "SELECT * FROM {table} WHERE bucket_start < ?1 ORDER BY {key}"
                ))
                .unwrap();
            let columns = stmt.column_count();
            let rows: Vec<Vec<String>> = stmt
                .query_map([DAY0 + DAY_MS / 4], |row| {
                    (0..columns)
                        .map(|i| {
                            row.get::<_, i64>(i)
                                .map(|v| v.to_string())
                                .or_else(|_| row.get::<_, String>(i))
                        })
                        .collect()
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            if rows.is_empty() {
                continue;
            }
            encoded.extend_from_slice(format!("{table}\n").as_bytes());
            for row in rows {
                encoded.extend_from_slice(format!("{}\n", row.join("\t")).as_bytes());
            }
        }
        let mut mac = receipt_key.start();
        mac.update(&encoded);
        assert_eq!(
            headcount_domain::security::to_hex(mac.sign().as_ref()),
            r.digest
        );
        let bare = ring::digest::digest(&ring::digest::SHA256, &encoded);
        assert_ne!(headcount_domain::security::to_hex(bare.as_ref()), r.digest);
    }

    #[test]
    fn tokens_ended_before_the_audit_logs_lifetime_are_purged_with_a_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("t.db")).unwrap();
        let key = AuditKey::generate().unwrap();
        let receipt_key = ReceiptKey::from_bytes(&[6; 32]);
        let year = 365 * DAY_MS;
        let now = DAY0 + 2 * year;
        let token = |id: &str, name: &str, expires_ms: Option<UnixMs>| super::super::TokenRow {
            id: id.into(),
            name: name.into(),
            role: "facilities".into(),
            digest: vec![1; 32],
            created_ms: DAY0,
            expires_ms,
            revoked_ms: None,
        };
        let issue = |db: &mut Database, row: &super::super::TokenRow| {
            db.replace_token(&row.name, Some(row), DAY0, "created")
                .unwrap();
        };
        // Revoked 13 months ago: past the audit log's year, purged.
        issue(&mut db, &token("aa00000000000001", "gone-revoked", None));
        db.replace_token("gone-revoked", None, now - year - 30 * DAY_MS, "revoked")
            .unwrap();
        // Expired 13 months ago, never revoked: purged too.
        issue(
            &mut db,
            &token(
                "aa00000000000002",
                "gone-expired",
                Some(now - year - 30 * DAY_MS),
            ),
        );
        // Expired long ago but revoked later: ended at its expiry, purged.
        issue(
            &mut db,
            &token("aa00000000000003", "late-revoke", Some(now - year - DAY_MS)),
        );
        db.replace_token("late-revoke", None, now - DAY_MS, "revoked")
            .unwrap();
        // Revoked 11 months ago: its entries may still be in the log, kept.
        issue(&mut db, &token("aa00000000000004", "recent", None));
        db.replace_token("recent", None, now - year + 30 * DAY_MS, "revoked")
            .unwrap();
        // In force since long ago, with or without an expiry to come: kept.
        issue(&mut db, &token("aa00000000000005", "in-force", None));
        issue(
            &mut db,
            &token("aa00000000000006", "expiring", Some(now + DAY_MS)),
        );

        let receipts = db
            .sweep(now, &RetentionPolicy::default(), &receipt_key)
            .unwrap();
        let purge = receipts
            .iter()
            .find(|r| r.target == TOKENS_TARGET)
            .unwrap_or_else(|| panic!("{receipts:?}"));
        assert_eq!(purge.class, DataClass::AuditLog);
        assert_eq!(purge.rows, 3);
        assert_eq!(purge.from, Some(now - year - 30 * DAY_MS));
        assert_eq!(purge.to, now - year);
        let kept: Vec<String> = db.tokens().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(kept, ["expiring", "in-force", "recent"]);
        let logged = db.deletion_receipts(10).unwrap();
        let logged = logged
            .iter()
            .find(|r| r.target == TOKENS_TARGET)
            .unwrap_or_else(|| panic!("{logged:?}"));
        assert_eq!(logged.rows, 3);
        assert_eq!(logged.detail["hmac_sha256"], purge.digest);
        // A second sweep finds nothing more; the chain verifies.
        let again = db
            .sweep(now, &RetentionPolicy::default(), &receipt_key)
            .unwrap();
        assert!(again.iter().all(|r| r.target != TOKENS_TARGET), "{again:?}");
        db.checkpoint_audit(now, &key).unwrap();
        let report = super::super::verify_audit(&db, &key.public_key()).unwrap();
        assert!(report.is_intact(), "{report:?}");
    }
}
