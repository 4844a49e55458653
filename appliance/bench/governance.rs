//! `headcount-bench governance`: the figures of data governance on generated
//! data, through the appliance's own storage code (real SQLite files):
//!
//! 1. a month of minute buckets for a few spaces with several entrances,
//!    rolled up and published twice, exact and with differential privacy:
//!    how many cells are withheld (below k, zero included, and those that
//!    would reveal them), the error the noise stored at publication adds at
//!    the configured epsilon, and the privacy ledger's spend per day;
//! 2. a year of minute buckets for many zones: how long the rollups and the
//!    retention sweep (with its receipt digest) take.
//!
//! `--seed FILE` only writes the month into a database, for the API load
//! test, and `--year-db FILE` only the year, for the backup and upgrade
//! figures (scripts/bench-governance.sh). Prints figures; asserts nothing.

use crate::generate::XorShift;
use headcount_domain::analytics::{Deltas, FlowDelta, OccupancyDelta, Scope};
use headcount_domain::config::{DpConfig, RELEASES_PER_SPACE_DAY};
use headcount_domain::retention::{DataClass, RetentionLimit, RetentionPolicy, DAY_MS};
use headcount_store::publication::{Publication, PublishSpace, SENSITIVITY, WIDTHS};
use headcount_store::{
    AuditAction, AuditEntry, Database, Maintenance, MaintenanceReport, WriteError, Writer,
    WriterOptions,
};
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Spaces in the generated month.
    #[arg(long, default_value_t = 4)]
    spaces: usize,
    /// Entrances of each space.
    #[arg(long, default_value_t = 3)]
    entrances: usize,
    /// Zones in the generated year of minute buckets.
    #[arg(long, default_value_t = 50)]
    zones: usize,
    /// Days in that year.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// k for suppression.
    #[arg(long, default_value_t = 5)]
    k: u32,
    /// Epsilon per release (one published bucket) for the noise figure.
    #[arg(long, default_value_t = headcount_domain::config::DEFAULT_EPSILON)]
    epsilon: f64,
    /// Only write the generated month into this database, then stop.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Only write the generated year of minute buckets into this database,
    /// then stop (the backup and upgrade figures, scripts/bench-governance.sh).
    #[arg(long)]
    year_db: Option<PathBuf>,
}

/// Entries per minute at an entrance: closed at night, a morning and an
/// evening peak on weekdays, quieter at weekends.
fn footfall(minute_of_week: i64, entrance: usize) -> f64 {
    let day = minute_of_week / 1440;
    let hour = (minute_of_week % 1440) as f64 / 60.0;
    let weekend = day >= 5;
    let open = (7.0..20.0).contains(&hour);
    if !open {
        return 0.002;
    }
    let peak = (-((hour - 8.5) / 1.0).powi(2)).exp() + 0.8 * (-((hour - 17.5) / 1.2).powi(2)).exp();
    let base = 0.15 + 1.2 * peak;
    base * if weekend { 0.3 } else { 1.0 } / (1.0 + entrance as f64)
}

/// Today's start minus 31 days: the generated month.
fn month_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (now / DAY_MS - 31) * DAY_MS
}

fn write_month(db: &mut Database, spaces: &[PublishSpace], start: i64) -> anyhow::Result<u64> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut rows = 0u64;
    for day in 0..31 {
        let mut deltas = Deltas::default();
        for minute in 0..1440 {
            let at = start + day * DAY_MS + minute * 60_000;
            let minute_of_week = ((day + 3) % 7) * 1440 + minute;
            for space in spaces {
                let mut inside = 0u32;
                for (i, (camera, line)) in space.entrances.iter().enumerate() {
                    let entries = rng.count(footfall(minute_of_week, i));
                    let exits = rng.count(footfall(minute_of_week, i));
                    inside += entries * 6;
                    deltas.flows.push(FlowDelta {
                        camera: camera.as_str().into(),
                        line: line.clone(),
                        bucket_start: at,
                        entries,
                        exits,
                    });
                }
                deltas.occupancy.push(OccupancyDelta {
                    scope: Scope::Space(space.name.clone()),
                    bucket_start: at,
                    samples: 60,
                    occupancy_sum: u64::from(inside) * 60,
                    occupancy_max: inside,
                });
                rows += 1 + space.entrances.len() as u64;
            }
        }
        db.apply(&deltas)?;
    }
    Ok(rows)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spaces: Vec<PublishSpace> = (0..args.spaces)
        .map(|s| PublishSpace {
            name: format!("space{s}"),
            entrances: (0..args.entrances)
                .map(|e| (format!("cam{s}"), format!("door{e}")))
                .collect(),
        })
        .collect();
    let start = month_start();
    if let Some(path) = &args.year_db {
        write_year(&mut Database::open(path)?, &args)?;
        // A whole state directory, as a first start leaves it: its audit key.
        if let Some(state_dir) = path.parent() {
            headcount_domain::security::AuditKey::load_or_create(state_dir)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.seed {
        let mut db = Database::open(path)?;
        let rows = write_month(&mut db, &spaces, start)?;
        println!(
            "seeded {} with {rows} minute rows from {}",
            path.display(),
            headcount_api::rfc3339(start)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let scratch = tempfile::tempdir()?;

    // 1. Suppression and noise on a month, published exact and noisy.
    let exact_path = scratch.path().join("month.db");
    let mut db = Database::open(&exact_path)?;
    let rows = write_month(&mut db, &spaces, start)?;
    drop(db);
    let noisy_path = scratch.path().join("month-dp.db");
    std::fs::copy(&exact_path, &noisy_path)?;
    let end = start + 31 * DAY_MS;
    let dp = DpConfig {
        epsilon: args.epsilon,
        daily_epsilon: f64::from(RELEASES_PER_SPACE_DAY) * spaces.len() as f64 * args.epsilon,
    };
    let mut published = Vec::new();
    for (path, dp) in [(&exact_path, None), (&noisy_path, Some(dp))] {
        let mut db = Database::open(path)?;
        let publication = Publication::new(spaces.clone(), args.k, dp)?;
        let began = Instant::now();
        db.roll_up(end + 3_600_000, 0)?;
        db.publish(end + 3_600_000, &publication)?;
        published.push((db, began.elapsed().as_secs_f64()));
    }
    let (exact, exact_secs) = &published[0];
    let (noisy, noisy_secs) = &published[1];
    println!(
        "month: {} spaces x {} entrances, {rows} minute rows, rolled up and published in {exact_secs:.2} s exact, {noisy_secs:.2} s with noise (k = {})",
        args.spaces, args.entrances, args.k
    );
    println!(
        "{:<6} {:>7} {:>9} {:>7} {:>11} {:>10} {:>13} {:>15}",
        "bucket",
        "cells",
        "withheld",
        "share",
        "mean count",
        "noise MAE",
        "relative MAE",
        "noisy below k"
    );
    for (width, label) in WIDTHS {
        let (mut cells, mut withheld, mut sum, mut published) = (0u64, 0u64, 0u64, 0u64);
        let (mut abs_error, mut compared, mut lost) = (0f64, 0u64, 0u64);
        for space in &spaces {
            let truth = exact.published_aggregates(width, &space.name, start, end)?;
            let released = noisy.published_aggregates(width, &space.name, start, end)?;
            for (t, n) in truth.iter().zip(&released) {
                let measures = [
                    (t.entries, n.entries),
                    (t.exits, n.exits),
                    (t.occupancy_peak, n.occupancy_peak),
                ];
                for (value, noised) in measures {
                    cells += 1;
                    let Some(v) = value else {
                        withheld += 1;
                        continue;
                    };
                    published += 1;
                    sum += v;
                    match noised {
                        Some(n) => {
                            abs_error += (n as f64 - v as f64).abs();
                            compared += 1;
                        }
                        None => lost += 1,
                    }
                }
            }
        }
        let mean = sum as f64 / published.max(1) as f64;
        let mae = abs_error / compared.max(1) as f64;
        println!(
            "{label:<6} {cells:>7} {withheld:>9} {:>6.1}% {mean:>11.1} {mae:>10.2} {:>12.1}% {:>14.1}%",
            100.0 * withheld as f64 / cells.max(1) as f64,
            100.0 * mae / mean.max(f64::MIN_POSITIVE),
            100.0 * lost as f64 / published.max(1) as f64
        );
    }
    let ledger = noisy.privacy_ledger(start, end)?;
    let releases: u64 = ledger.iter().map(|d| d.releases).sum();
    let spent: f64 = ledger.iter().map(|d| d.spent).sum();
    println!(
        "noise: Laplace drawn once per published bucket and stored, epsilon {} per release, sensitivity {SENSITIVITY}, scale {:.1} (expected MAE); ledger: {releases} releases over {} days, spent {spent:.1} = releases x epsilon, at most {:.1} per day (budget {})",
        args.epsilon,
        SENSITIVITY / args.epsilon,
        ledger.len(),
        ledger.iter().map(|d| d.spent).fold(0.0, f64::max),
        dp.daily_epsilon
    );
    drop(published);

    // 2. A year of minute buckets for many zones: rollups and the sweep.
    let path = scratch.path().join("year.db");
    let mut db = Database::open(&path)?;
    write_year(&mut db, &args)?;
    let year_start = month_start() + 31 * DAY_MS - args.days * DAY_MS;
    let now = year_start + args.days * DAY_MS + 3_600_000;
    let policy = RetentionPolicy::new(vec![RetentionLimit {
        class: DataClass::Aggregates1m,
        limit_ms: 7 * DAY_MS,
        justification: None,
    }]);
    // Through the appliance's writer, in its steps, while a client has an
    // entry written to the audit log every 20 ms (as an audited API answer
    // does, durably, before it leaves): how long each waited.
    let maintenance = Maintenance {
        grace_ms: 0,
        publication: Arc::new(Publication::new(Vec::new(), args.k, None)?),
        retention: Arc::new(policy),
        audit_key: Arc::new(headcount_domain::security::audit_key::AuditKey::generate()?),
        receipt_key: Arc::new(headcount_domain::security::ReceiptKey::generate()?),
    };
    let options = WriterOptions {
        maintenance: Some(maintenance),
        ..WriterOptions::default()
    };
    let (writer, thread) = Writer::spawn_with(db, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let idle = runtime.block_on(audited_while(&writer, now, async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(MaintenanceReport::default())
    }))?;
    print_latencies("audit entry, writer otherwise idle (5 s)", &idle.1);
    for (sweep, label) in [
        (false, "rollups 1m -> 15m -> 1h -> 1d of the year"),
        (true, "retention sweep"),
    ] {
        let began = Instant::now();
        let (report, waits) =
            runtime.block_on(audited_while(&writer, now, writer.maintain(now, sweep)))?;
        let seconds = began.elapsed().as_secs_f64();
        if sweep {
            let deleted: u64 = report.receipts.iter().map(|r| r.rows).sum();
            println!(
                "{label}: {deleted} rows deleted in {seconds:.1} s ({:.0} rows/s), in {} steps each with its receipt",
                deleted as f64 / seconds,
                report.receipts.len()
            );
        } else {
            println!(
                "{label}: {seconds:.1} s in {} steps",
                report.rolled_up.len()
            );
        }
        print_latencies(&format!("audit entry during the {label} (before the steps, one waited up to the whole {seconds:.1} s)"), &waits);
    }
    writer.stop_blocking();
    let _ = thread.join();
    let file_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "database after the sweep: {file_mb:.0} MB (space is reused, not returned, until VACUUM)"
    );
    Ok(ExitCode::SUCCESS)
}

/// `args.days` of minute buckets for `args.zones` zones, ending with the
/// generated month.
fn write_year(db: &mut Database, args: &Args) -> anyhow::Result<()> {
    let year_start = month_start() + 31 * DAY_MS - args.days * DAY_MS;
    let began = Instant::now();
    let mut rng = XorShift(7);
    for day in 0..args.days {
        let mut deltas = Deltas::default();
        for minute in 0..1440 {
            for zone in 0..args.zones {
                let occupancy = rng.count(2.0);
                deltas.occupancy.push(OccupancyDelta {
                    scope: Scope::Zone {
                        camera: format!("cam{}", zone / 5).as_str().into(),
                        zone: format!("zone{zone}"),
                    },
                    bucket_start: year_start + day * DAY_MS + minute * 60_000,
                    samples: 120,
                    occupancy_sum: u64::from(occupancy) * 120,
                    occupancy_max: occupancy,
                });
            }
        }
        db.apply(&deltas)?;
    }
    let minute_rows = args.days * 1440 * args.zones as i64;
    println!(
        "year: {minute_rows} minute rows ({} days x {} zones) written in {:.1} s",
        args.days,
        args.zones,
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `work` while an audit entry is written every 20 ms; what `work`
/// returned and how long each entry waited for its durable write.
async fn audited_while(
    writer: &Writer,
    at: i64,
    work: impl Future<Output = Result<MaintenanceReport, WriteError>>,
) -> anyhow::Result<(MaintenanceReport, Vec<Duration>)> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let prober = {
        let writer = writer.clone();
        tokio::spawn(async move {
            let mut waits = Vec::new();
            while !*stopped.borrow() {
                let entry = AuditEntry {
                    actor: "token:0123456789abcdef".into(),
                    role: "facilities".into(),
                    action: AuditAction::ApiAccess,
                    target: "GET /api/v1/occupancy".into(),
                    rows: 1,
                    detail: serde_json::json!({ "probe": waits.len() }),
                };
                let began = Instant::now();
                writer.audit(at, vec![entry]).await?;
                waits.push(began.elapsed());
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stopped.changed() => {}
                }
            }
            Ok::<_, WriteError>(waits)
        })
    };
    let report = work.await?;
    let _ = stop.send(true);
    let waits = prober.await??;
    Ok((report, waits))
}

fn print_latencies(label: &str, waits: &[Duration]) {
    let mut ms: Vec<f64> = waits.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "  {label}: {} entries, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}
