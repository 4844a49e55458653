//! Publication: what every consumer outside the site may see (planners,
//! `/metrics`, the MQTT fleet feed), decided once per bucket and stored
//! (`published_aggregate`), never revised, so that every consumer, every
//! repeat and every broker read the same cells.
//!
//! - Per space only, in buckets of 15 minutes, 1 hour and 1 day, once the
//!   rollup of that width is complete (`publish_mark` follows `rollup_mark`).
//! - Entries and exits over the space's entrances (summed: no line is
//!   published on its own) are decided by `headcount_domain::disclosure::suppress` over
//!   the UTC day; the peak occupancy is withheld below k, zero included, and
//!   the mean goes with it; an hour's or a day's occupancy is also withheld
//!   when exactly one finer bucket's was.
//! - With differential privacy, each bucket with a published value is one
//!   release: it is charged to the day's ledger (`privacy_ledger`, at most
//!   `daily_epsilon`; beyond it the bucket is withheld) and its values get
//!   Laplace noise drawn here, once, and stored. A noisy value below k is
//!   withheld too (post-processing keeps the guarantee).
//! - Each published bucket is queued in the same transaction for every
//!   registered MQTT broker (`fleet_outbox`), until that broker acknowledges
//!   it.

use super::{Database, StorageError};
use headcount_domain::clock::UnixMs;
use headcount_domain::config::DpConfig;
use headcount_domain::disclosure::policy::band;
use headcount_domain::disclosure::{
    self, Budget, DayGrid, DisclosureError, LaplaceNoise, Level, Member, Suppression,
};
use headcount_domain::retention::{DAY_MS, HOUR_MS};
use rusqlite::{params, OptionalExtension, Transaction};

pub use super::governance::QUARTER_MS;

/// Published widths and their labels, finest first.
pub const WIDTHS: [(i64, &str); 3] = [(QUARTER_MS, "15m"), (HOUR_MS, "1h"), (DAY_MS, "1d")];

/// The L1 sensitivity of one bucket's release to one person's event: one
/// entry, one exit, and one more on the peak and on the mean occupancy.
/// (See docs/privacy.md for what this assumes and what a day adds up to.)
pub const SENSITIVITY: f64 = 4.0;

/// At most this many buckets of a width are published per step (one
/// transaction), so that the writer answers what waits between steps.
const STEP_BUCKETS: i64 = 96;

/// A space as published: its name and its entrance lines (camera, line).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSpace {
    pub name: String,
    pub entrances: Vec<(String, String)>,
}

/// How cells are decided: the spaces, k, and the noise when differential
/// privacy is on.
#[derive(Debug, Clone)]
pub struct Publication {
    pub spaces: Vec<PublishSpace>,
    pub k: u32,
    dp: Option<(DpConfig, LaplaceNoise)>,
}

impl Publication {
    pub fn new(
        spaces: Vec<PublishSpace>,
        k: u32,
        dp: Option<DpConfig>,
    ) -> Result<Publication, DisclosureError> {
        let dp = dp
            .map(|dp| LaplaceNoise::new(dp.epsilon, SENSITIVITY).map(|noise| (dp, noise)))
            .transpose()?;
        Ok(Publication { spaces, k, dp })
    }

    pub fn from_config(
        config: &headcount_domain::config::Config,
    ) -> Result<Publication, DisclosureError> {
        let spaces = config
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
            .collect();
        Publication::new(
            spaces,
            config.aggregates.k,
            config.aggregates.differential_privacy,
        )
    }
}

/// One published bucket of one space, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    pub bucket_start: UnixMs,
    pub entries: Option<u64>,
    pub exits: Option<u64>,
    pub occupancy_mean: Option<f64>,
    pub occupancy_peak: Option<u64>,
    /// Measures withheld in this bucket (`entries`, `exits`, `occupancy`).
    pub withheld: Vec<String>,
    /// The epsilon of the noise in these values; None: exact.
    pub epsilon: Option<f64>,
}

/// One day of the differential-privacy ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LedgerDay {
    pub day: UnixMs,
    pub releases: u64,
    pub spent: f64,
}

/// A published bucket waiting for a broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub width_ms: i64,
    pub space: String,
    pub row: PublishedRow,
}

const ROW_COLUMNS: &str =
    "bucket_start, entries, exits, occupancy_mean, occupancy_peak, withheld, epsilon";

fn published_row(r: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<PublishedRow> {
    let count = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(offset + i)?
            .map(|v| v.max(0) as u64))
    };
    let withheld: String = r.get(offset + 5)?;
    Ok(PublishedRow {
        bucket_start: r.get(offset)?,
        entries: count(1)?,
        exits: count(2)?,
        occupancy_mean: r.get(offset + 3)?,
        occupancy_peak: count(4)?,
        withheld: withheld
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        epsilon: r.get(offset + 6)?,
    })
}

impl Database {
    /// Decides and stores every bucket of every width that is rolled up
    /// but not yet published. Returns the ranges published, as (width,
    /// from, to).
    pub fn publish(
        &mut self,
        now: UnixMs,
        publication: &Publication,
    ) -> Result<Vec<(i64, UnixMs, UnixMs)>, StorageError> {
        let mut done = Vec::new();
        while let Some(range) = self.publish_step(now, publication)? {
            done.push(range);
        }
        Ok(done)
    }

    /// One step of `publish`: the next range of at most `STEP_BUCKETS`
    /// buckets of a width, in one transaction; None when everything rolled
    /// up is published.
    pub fn publish_step(
        &mut self,
        now: UnixMs,
        publication: &Publication,
    ) -> Result<Option<(i64, UnixMs, UnixMs)>, StorageError> {
        for (width, _) in WIDTHS {
            let Some(end) = self.rollup_mark(width)? else {
                continue;
            };
            let start = match self.publish_mark(width)? {
                Some(mark) => mark,
                None => match self.earliest(width)? {
                    Some(first) => first.div_euclid(width) * width,
                    None => continue,
                },
            };
            if start >= end {
                continue;
            }
            let (from, to) = (start, end.min(start + STEP_BUCKETS * width));
            self.write(|tx| {
                publish_range(tx, width, from, to, publication, now)?;
                tx.execute(
                    "INSERT OR REPLACE INTO publish_mark (width_ms, done_until) VALUES (?1, ?2)",
                    params![width, to],
                )?;
                Ok(())
            })?;
            return Ok(Some((width, from, to)));
        }
        Ok(None)
    }

    /// Every bucket of this width ending at or before the mark is published.
    pub fn publish_mark(&self, width: i64) -> Result<Option<UnixMs>, StorageError> {
        self.mark("publish_mark", width)
    }

    /// The published buckets of one space at one width with `from <= start < to`.
    pub fn published_aggregates(
        &self,
        width: i64,
        space: &str,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<PublishedRow>, StorageError> {
        self.query(
            &format!(
                "SELECT {ROW_COLUMNS} FROM published_aggregate
                 WHERE width_ms = ?1 AND space = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
                 ORDER BY bucket_start"
            ),
            params![width, space, from, to],
            |r| published_row(r, 0),
        )
    }

    /// The newest published bucket of a space at a width.
    pub fn latest_published(
        &self,
        width: i64,
        space: &str,
    ) -> Result<Option<PublishedRow>, StorageError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM published_aggregate WHERE width_ms = ?1 AND space = ?2
                     ORDER BY bucket_start DESC LIMIT 1"
                ),
                params![width, space],
                |r| published_row(r, 0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// The ledger's days with `from <= day < to`, oldest first.
    pub fn privacy_ledger(&self, from: UnixMs, to: UnixMs) -> Result<Vec<LedgerDay>, StorageError> {
        self.query(
            "SELECT day, releases, spent FROM privacy_ledger WHERE day >= ?1 AND day < ?2 ORDER BY day",
            params![from, to],
            |r| {
                Ok(LedgerDay {
                    day: r.get(0)?,
                    releases: r.get::<_, i64>(1)?.max(0) as u64,
                    spent: r.get(2)?,
                })
            },
        )
    }

    /// Makes `brokers` the ones the fleet feed delivers to. A broker seen for
    /// the first time gets the newest published bucket of each space and
    /// width (not the whole history); a broker no longer configured loses
    /// its queue.
    pub fn register_brokers(
        &mut self,
        brokers: &[String],
        now: UnixMs,
    ) -> Result<(), StorageError> {
        self.write(|tx| {
            let known: Vec<String> = {
                let mut stmt = tx.prepare("SELECT broker FROM fleet_broker")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for gone in known.iter().filter(|b| !brokers.contains(b)) {
                tx.execute("DELETE FROM fleet_outbox WHERE broker = ?1", [gone])?;
                tx.execute("DELETE FROM fleet_broker WHERE broker = ?1", [gone])?;
            }
            for broker in brokers.iter().filter(|b| !known.contains(b)) {
                tx.execute(
                    "INSERT INTO fleet_broker (broker, since_ms) VALUES (?1, ?2)",
                    params![broker, now],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO fleet_outbox (broker, width_ms, space, bucket_start)
                     SELECT ?1, width_ms, space, max(bucket_start) FROM published_aggregate
                     GROUP BY width_ms, space",
                    [broker],
                )?;
            }
            Ok(())
        })
    }

    /// Up to `limit` buckets waiting for `broker`, oldest first.
    pub fn outbox(&self, broker: &str, limit: usize) -> Result<Vec<Pending>, StorageError> {
        let columns: Vec<String> = ROW_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect();
        self.query(
            &format!(
                "SELECT o.width_ms, o.space, {} FROM fleet_outbox o
                 JOIN published_aggregate p
                   ON p.width_ms = o.width_ms AND p.space = o.space AND p.bucket_start = o.bucket_start
                 WHERE o.broker = ?1
                 ORDER BY o.bucket_start, o.width_ms, o.space LIMIT ?2",
                columns.join(", ")
            ),
            params![broker, limit as i64],
            |r| {
                Ok(Pending {
                    width_ms: r.get(0)?,
                    space: r.get(1)?,
                    row: published_row(r, 2)?,
                })
            },
        )
    }

    /// How many buckets wait for `broker`.
    pub fn outbox_len(&self, broker: &str) -> Result<u64, StorageError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM fleet_outbox WHERE broker = ?1",
                [broker],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.wrap(e))
    }

    /// `broker` acknowledged this bucket: it leaves the outbox.
    pub fn delivered(
        &mut self,
        broker: &str,
        width_ms: i64,
        space: &str,
        bucket_start: UnixMs,
    ) -> Result<(), StorageError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM fleet_outbox
                 WHERE broker = ?1 AND width_ms = ?2 AND space = ?3 AND bucket_start = ?4",
                params![broker, width_ms, space, bucket_start],
            )?;
            Ok(())
        })
    }
}

fn level_of(width: i64) -> Level {
    match width {
        QUARTER_MS => Level::QuarterHour,
        HOUR_MS => Level::Hour,
        _ => Level::Day,
    }
}

/// Decides, noises, stores and queues each bucket of `width` in `[from, to)`.
fn publish_range(
    tx: &Transaction,
    width: i64,
    from: UnixMs,
    to: UnixMs,
    publication: &Publication,
    now: UnixMs,
) -> rusqlite::Result<()> {
    let level = level_of(width);
    let k = publication.k;
    let brokers: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT broker FROM fleet_broker")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for space in &publication.spaces {
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
                    let mut cells = match &flows {
                        Some(f) => f.cells(level, index),
                        None => Cells::default(),
                    };
                    if let Some((_, samples, sum, max)) = occupied {
                        let reveals = width != QUARTER_MS
                            && finer_occupancy_withheld(tx, width, &space.name, bucket)? == 1;
                        match band(u64::from(max), k).filter(|_| !reveals) {
                            Some(peak) => {
                                let mean = sum as f64 / samples.max(1) as f64;
                                cells.occupancy = Some(((mean * 100.0).round() / 100.0, peak));
                            }
                            None => cells.withheld.push("occupancy"),
                        }
                    }
                    if let Some((dp, noise)) = &publication.dp {
                        cells.release(tx, day, dp, noise, k)?;
                    }
                    cells.insert(tx, width, &space.name, bucket, now)?;
                    for broker in &brokers {
                        tx.execute(
                            "INSERT OR IGNORE INTO fleet_outbox (broker, width_ms, space, bucket_start)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![broker, width, space.name, bucket],
                        )?;
                    }
                }
                bucket += width;
            }
            day = day_end;
        }
    }
    Ok(())
}

/// One bucket's cells before they are written.
#[derive(Debug, Default)]
struct Cells {
    entries: Option<u64>,
    exits: Option<u64>,
    /// Mean and peak.
    occupancy: Option<(f64, u64)>,
    withheld: Vec<&'static str>,
    epsilon: Option<f64>,
}

impl Cells {
    /// Differential privacy: a bucket with any published value is one
    /// release, charged to the day's ledger and noised once; past the day's
    /// budget, or when a draw fails, values are withheld rather than shown
    /// exact.
    fn release(
        &mut self,
        tx: &Transaction,
        day: UnixMs,
        dp: &DpConfig,
        noise: &LaplaceNoise,
        k: u32,
    ) -> rusqlite::Result<()> {
        if self.entries.is_none() && self.exits.is_none() && self.occupancy.is_none() {
            return Ok(());
        }
        let (releases, spent): (i64, f64) = tx
            .query_row(
                "SELECT releases, spent FROM privacy_ledger WHERE day = ?1",
                [day],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, 0.0));
        let budget = Budget {
            daily: dp.daily_epsilon,
            spent,
        };
        let Ok(spent) = budget.charge(dp.epsilon) else {
            self.withhold_all();
            return Ok(());
        };
        tx.execute(
            "INSERT OR REPLACE INTO privacy_ledger (day, releases, spent) VALUES (?1, ?2, ?3)",
            params![day, releases + 1, spent],
        )?;
        self.epsilon = Some(dp.epsilon);
        let noisy = |v: u64| noise.noisy_count(v).ok().and_then(|n| band(n, k));
        let entries = self.entries.map(noisy);
        let exits = self.exits.map(noisy);
        if let Some(value) = entries {
            self.entries = value;
            self.note_withheld(value.is_none(), "entries");
        }
        if let Some(value) = exits {
            self.exits = value;
            self.note_withheld(value.is_none(), "exits");
        }
        if let Some((mean, peak)) = self.occupancy {
            // The mean is noised as a whole number of people.
            let mean = noise.noisy_count(mean.round() as u64).ok();
            self.occupancy = noisy(peak).zip(mean).map(|(p, m)| (m as f64, p));
            self.note_withheld(self.occupancy.is_none(), "occupancy");
        }
        Ok(())
    }

    fn note_withheld(&mut self, withheld: bool, measure: &'static str) {
        if withheld && !self.withheld.contains(&measure) {
            self.withheld.push(measure);
        }
    }

    fn withhold_all(&mut self) {
        let present = [
            (self.entries.take().is_some(), "entries"),
            (self.exits.take().is_some(), "exits"),
            (self.occupancy.take().is_some(), "occupancy"),
        ];
        for (was, measure) in present {
            self.note_withheld(was, measure);
        }
    }

    fn insert(
        &self,
        tx: &Transaction,
        width: i64,
        space: &str,
        bucket: UnixMs,
        now: UnixMs,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO published_aggregate
             (width_ms, space, bucket_start, entries, exits, occupancy_mean, occupancy_peak, withheld, epsilon, published_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                width,
                space,
                bucket,
                self.entries.map(|v| v as i64),
                self.exits.map(|v| v as i64),
                self.occupancy.map(|o| o.0),
                self.occupancy.map(|o| o.1 as i64),
                self.withheld.join(","),
                self.epsilon,
                now
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
    let finer = if width == DAY_MS { HOUR_MS } else { QUARTER_MS };
    tx.query_row(
        "SELECT count(*) FROM published_aggregate
         WHERE width_ms = ?1 AND space = ?2 AND bucket_start >= ?3 AND bucket_start < ?4
           AND (',' || withheld || ',') LIKE '%,occupancy,%'",
        params![finer, space, bucket, bucket + width],
        |r| r.get(0),
    )
}

/// One space's crossings over one UTC day, summed over its entrances, with
/// what may be published.
struct DayFlows {
    /// Entries then exits: the true counts and their decisions (None when
    /// the grid could not be decided: everything is withheld).
    measures: [(DayGrid, Option<Suppression>); 2],
    /// Quarters with at least one stored row (the lines were watched).
    watched: Vec<bool>,
}

impl DayFlows {
    /// Reads the day's quarter-hours; where an hour's (or the day's) rollup
    /// disagrees with the sum of its quarters (the finer rows were swept
    /// first), the coarser count stands, placed in its first quarter, so
    /// that republishing old days decides hours and days on their true sums.
    fn load(
        tx: &Transaction,
        space: &PublishSpace,
        day: UnixMs,
        k: u32,
        ended: usize,
    ) -> rusqlite::Result<DayFlows> {
        let quarters = disclosure::QUARTERS;
        let read = |width: i64, slots: usize| -> rusqlite::Result<Vec<Option<(u64, u64)>>> {
            let mut out = vec![None; slots];
            let mut stmt = tx.prepare_cached(
                "SELECT bucket_start, entries, exits FROM flow_rollup
                 WHERE width_ms = ?1 AND camera = ?2 AND line = ?3 AND bucket_start >= ?4 AND bucket_start < ?5",
            )?;
            for (camera, line) in &space.entrances {
                let rows =
                    stmt.query_map(params![width, camera, line, day, day + DAY_MS], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })?;
                for row in rows {
                    let (start, entries, exits) = row?;
                    let slot = ((start - day) / width) as usize;
                    if let Some(cell) = out.get_mut(slot) {
                        let (e, x) = cell.unwrap_or((0, 0));
                        *cell = Some((e + entries.max(0) as u64, x + exits.max(0) as u64));
                    }
                }
            }
            Ok(out)
        };
        let mut counts = read(QUARTER_MS, quarters)?;
        let sum = |cells: &[Option<(u64, u64)>]| {
            cells
                .iter()
                .flatten()
                .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1))
        };
        for (hour, value) in read(HOUR_MS, 24)?.into_iter().enumerate() {
            let own = &mut counts[hour * 4..hour * 4 + 4];
            if let Some(value) = value.filter(|v| *v != sum(own)) {
                own.fill(None);
                own[0] = Some(value);
            }
        }
        if let Some(value) = read(DAY_MS, 1)?[0].filter(|v| *v != sum(&counts)) {
            counts.fill(None);
            counts[0] = Some(value);
        }
        let watched = counts.iter().map(Option::is_some).collect();
        let measure = |pick: fn((u64, u64)) -> u64| {
            let parts: Vec<Vec<u64>> = counts.iter().map(|c| vec![c.map_or(0, pick)]).collect();
            let grid = DayGrid::from_quarters(1, &parts)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let decided = disclosure::suppress(&grid, k, ended).ok();
            Ok::<_, rusqlite::Error>((grid, decided))
        };
        Ok(DayFlows {
            measures: [measure(|c| c.0)?, measure(|c| c.1)?],
            watched,
        })
    }

    fn watched(&self, level: Level, index: usize) -> bool {
        let per = disclosure::QUARTERS / level.buckets();
        self.watched.iter().skip(index * per).take(per).any(|w| *w)
    }

    /// The space's entries and exits in one bucket, as they may be published.
    fn cells(&self, level: Level, index: usize) -> Cells {
        let [entries, exits] = [0, 1].map(|m| {
            let (grid, decisions) = &self.measures[m];
            decisions
                .as_ref()
                .filter(|d| d.published(level, index, Member::Total))
                .and_then(|_| grid.value(level, index, Member::Total))
        });
        let mut withheld = Vec::new();
        if entries.is_none() {
            withheld.push("entries");
        }
        if exits.is_none() {
            withheld.push("exits");
        }
        Cells {
            entries,
            exits,
            withheld,
            ..Cells::default()
        }
    }
}

#[cfg(test)]
mod tests;
