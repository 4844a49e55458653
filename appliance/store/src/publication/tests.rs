use super::*;
use crate::governance::tests::{seeded, DAY0};

const K: u32 = 5;

fn hall() -> Vec<PublishSpace> {
    vec![PublishSpace {
        name: "hall".into(),
        entrances: vec![("cam".into(), "a".into()), ("cam".into(), "b".into())],
    }]
}

fn exact() -> Publication {
    Publication::new(hall(), K, None).unwrap()
}

fn noisy(epsilon: f64, daily_epsilon: f64) -> Publication {
    let dp = DpConfig {
        epsilon,
        daily_epsilon,
    };
    Publication::new(hall(), K, Some(dp)).unwrap()
}

/// Seeded, rolled up and published through the end of day two.
fn published(dir: &std::path::Path, publication: &Publication) -> Database {
    let mut db = seeded(dir);
    let now = DAY0 + 2 * DAY_MS;
    db.roll_up(now, 0).unwrap();
    db.publish(now, publication).unwrap();
    db
}

fn quarter(db: &Database, hh_mm: (i64, i64)) -> PublishedRow {
    let start = DAY0 + hh_mm.0 * HOUR_MS + hh_mm.1 * 60_000;
    let rows = db
        .published_aggregates(QUARTER_MS, "hall", start, start + QUARTER_MS)
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

fn count(db: &Database, sql: &str) -> i64 {
    db.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_space_is_published_as_one_total_with_counts_below_k_banded() {
    let dir = tempfile::tempdir().unwrap();
    let db = published(dir.path(), &exact());
    // 09:00-09:15: 15 on line a and 1 on line b: only their sum leaves.
    let busy = quarter(&db, (9, 0));
    assert_eq!((busy.entries, busy.occupancy_peak), (Some(16), Some(6)));
    assert_eq!(busy.occupancy_mean, Some(6.0));
    // Exits are all zero: withheld like any count below k.
    assert_eq!(busy.exits, None);
    assert_eq!(busy.withheld, ["exits"]);
    // A quiet quarter: nothing is published, and nothing says it was zero.
    let quiet = quarter(&db, (3, 0));
    assert_eq!(
        (
            quiet.entries,
            quiet.exits,
            quiet.occupancy_peak,
            quiet.occupancy_mean
        ),
        (None, None, None, None)
    );
    assert_eq!(quiet.withheld, ["entries", "exits", "occupancy"]);
    // Hours and the day: 60, 61 and 121 entries; the quiet hours' zeros
    // sum to zero, which reveals nothing beyond the band.
    let hours = db
        .published_aggregates(HOUR_MS, "hall", DAY0, DAY0 + DAY_MS)
        .unwrap();
    let entries: Vec<Option<u64>> = hours.iter().map(|h| h.entries).collect();
    assert_eq!(entries[8..10], [Some(60), Some(61)]);
    assert!(entries
        .iter()
        .enumerate()
        .all(|(h, e)| (8..10).contains(&h) || e.is_none()));
    let day = db
        .published_aggregates(DAY_MS, "hall", DAY0, DAY0 + DAY_MS)
        .unwrap();
    assert_eq!(
        (day[0].entries, day[0].occupancy_peak),
        (Some(121), Some(6))
    );
    assert_eq!(day[0].occupancy_mean, Some(0.5));
    // Nothing published is below k, and no row names a line.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM published_aggregate
             WHERE entries < 5 OR exits < 5 OR occupancy_peak < 5"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM published_aggregate"),
        2 * (96 + 24 + 1)
    );
}

#[test]
fn a_withheld_zero_looks_like_a_withheld_small_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = seeded(dir.path());
    // 3 entries at 03:05 on day one: small, not zero.
    let mut deltas = headcount_domain::analytics::Deltas::default();
    deltas.flows.push(headcount_domain::analytics::FlowDelta {
        camera: "cam".into(),
        line: "a".into(),
        bucket_start: DAY0 + 3 * HOUR_MS + 5 * 60_000,
        entries: 3,
        exits: 0,
    });
    db.apply(&deltas).unwrap();
    db.roll_up(DAY0 + 2 * DAY_MS, 0).unwrap();
    db.publish(DAY0 + 2 * DAY_MS, &exact()).unwrap();
    let (small, zero) = (quarter(&db, (3, 0)), quarter(&db, (4, 0)));
    assert_eq!(
        small,
        PublishedRow {
            bucket_start: small.bucket_start,
            ..zero
        }
    );
}

#[test]
fn cells_are_decided_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = published(dir.path(), &exact());
    let before = db
        .published_aggregates(QUARTER_MS, "hall", DAY0, DAY0 + 2 * DAY_MS)
        .unwrap();
    assert_eq!(before.len(), 2 * 96);
    // A second pass finds nothing to decide, whatever the settings now.
    assert!(db
        .publish(DAY0 + 3 * DAY_MS, &noisy(1.0, 1e6))
        .unwrap()
        .is_empty());
    let after = db
        .published_aggregates(QUARTER_MS, "hall", DAY0, DAY0 + 2 * DAY_MS)
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(db.publish_mark(DAY_MS).unwrap(), Some(DAY0 + 2 * DAY_MS));
}

#[test]
fn noise_is_drawn_once_per_cell_and_the_ledger_counts_releases() {
    let dir = tempfile::tempdir().unwrap();
    let db = published(dir.path(), &noisy(1.0, 1e6));
    let read = || {
        db.published_aggregates(QUARTER_MS, "hall", DAY0, DAY0 + 2 * DAY_MS)
            .unwrap()
    };
    let first = read();
    for _ in 0..20 {
        assert_eq!(read(), first, "every read returns the stored draw");
    }
    let released = first.iter().filter(|r| r.epsilon.is_some()).count();
    // Every released bucket had a published value before noise.
    assert!(released >= 8, "{released}");
    for row in first.iter().filter(|r| r.epsilon.is_some()) {
        for value in [row.entries, row.exits, row.occupancy_peak]
            .into_iter()
            .flatten()
        {
            assert!(value >= u64::from(K), "{row:?}");
        }
    }
    let ledger = db.privacy_ledger(DAY0, DAY0 + 2 * DAY_MS).unwrap();
    let all = count(
        &db,
        "SELECT count(*) FROM published_aggregate WHERE epsilon IS NOT NULL",
    );
    assert_eq!(ledger.iter().map(|d| d.releases).sum::<u64>() as i64, all);
    for day in &ledger {
        assert!(
            (day.spent - day.releases as f64 * 1.0).abs() < 1e-9,
            "{day:?}"
        );
    }
}

#[test]
fn past_the_day_budget_buckets_are_withheld_not_shown_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = published(dir.path(), &noisy(1.0, 3.0));
    let ledger = db.privacy_ledger(DAY0, DAY0 + DAY_MS).unwrap();
    assert_eq!((ledger[0].releases, ledger[0].spent), (3, 3.0));
    let day = db
        .published_aggregates(QUARTER_MS, "hall", DAY0, DAY0 + DAY_MS)
        .unwrap();
    let exact_values = day
        .iter()
        .filter(|r| r.epsilon.is_none())
        .filter(|r| r.entries.is_some() || r.occupancy_peak.is_some())
        .count();
    assert_eq!(exact_values, 0);
    assert_eq!(day.iter().filter(|r| r.epsilon.is_some()).count(), 3);
}

#[test]
fn old_days_without_quarters_are_decided_on_their_hourly_sums() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = seeded(dir.path());
    db.roll_up(DAY0 + 2 * DAY_MS, 0).unwrap();
    // The quarters of day one were swept before this day was published.
    db.conn
        .execute(
            &format!(
                "DELETE FROM flow_rollup WHERE width_ms = {QUARTER_MS} AND bucket_start < {}",
                DAY0 + DAY_MS
            ),
            [],
        )
        .unwrap();
    db.publish(DAY0 + 2 * DAY_MS, &exact()).unwrap();
    let hours = db
        .published_aggregates(HOUR_MS, "hall", DAY0, DAY0 + DAY_MS)
        .unwrap();
    let entries: Vec<Option<u64>> = hours.iter().map(|h| h.entries).collect();
    assert_eq!(entries[8..10], [Some(60), Some(61)]);
    let day = db
        .published_aggregates(DAY_MS, "hall", DAY0, DAY0 + DAY_MS)
        .unwrap();
    assert_eq!(day[0].entries, Some(121));
}

#[test]
fn the_outbox_holds_each_bucket_per_broker_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = seeded(dir.path());
    let broker = "mqtt://127.0.0.1:1883/city".to_string();
    db.register_brokers(std::slice::from_ref(&broker), DAY0)
        .unwrap();
    db.roll_up(DAY0 + 2 * DAY_MS, 0).unwrap();
    db.publish(DAY0 + 2 * DAY_MS, &exact()).unwrap();
    assert_eq!(db.outbox_len(&broker).unwrap(), 2 * (96 + 24 + 1));
    let first = db.outbox(&broker, 3).unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(
        (first[0].width_ms, first[0].row.bucket_start),
        (QUARTER_MS, DAY0)
    );
    for p in &first {
        db.delivered(&broker, p.width_ms, &p.space, p.row.bucket_start)
            .unwrap();
    }
    assert_eq!(db.outbox_len(&broker).unwrap(), 2 * (96 + 24 + 1) - 3);
    assert_ne!(db.outbox(&broker, 1).unwrap()[0], first[0]);
    // A second broker starts from the newest bucket of each width; the
    // first, no longer configured, loses its queue.
    let other = "mqtts://broker.example:8883/fleet".to_string();
    db.register_brokers(std::slice::from_ref(&other), DAY0 + 3 * DAY_MS)
        .unwrap();
    assert_eq!(db.outbox_len(&broker).unwrap(), 0);
    let newest = db.outbox(&other, 10).unwrap();
    assert_eq!(newest.len(), 3, "{newest:?}");
    assert!(newest
        .iter()
        .all(|p| p.row.bucket_start + p.width_ms == DAY0 + 2 * DAY_MS));
}
