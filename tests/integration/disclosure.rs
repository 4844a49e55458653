//! The disclosure policy, black box: a database seeded with ordinary small
//! counts (0 to 3 people a minute), then everything a planner and the
//! off-site feeds can reach, read with every width and format (the API
//! routes a planner may call, `/metrics`, the MQTT aggregates and NGSI-LD
//! topics): not one count in (0, k) may come out. Facilities read the
//! small zone and the dwell of quiet buckets: no median of fewer than k
//! visits, no minute of a small zone. With differential privacy, the same
//! cell read 100 times by 3 tokens is one value, and the ledger holds one
//! charge per release. Prints the figures (`FIGURE`).

use crate::common::*;
use headcount_api::ROUTES;
use headcount_domain::analytics::{
    Deltas, DwellDelta, DwellHistogram, FlowDelta, OccupancyDelta, Scope,
};
use headcount_domain::security::Role;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const K: u64 = 5;
const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// A camera that never answers (no CPU spent on frames: the counts are
/// seeded), two entrance lines, an ordinary zone and a one-seat desk.
/// `[analytics] flush_secs` when unset, as in these configs.
const DEFAULT_FLUSH_SECS: u64 = 10;

fn config(dir: &Path, api_port: u16, mqtt_port: u16, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[appliance]\nsite = \"test\"\nstate_dir = {:?}\nmodels_dir = {:?}\n[api]\nbind = \"127.0.0.1:{api_port}\"\n\
         [cameras.lobby]\nurl = \"rtsp://127.0.0.1:{}/nobody\"\n\
         [cameras.lobby.zones.floor]\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\ncapacity = 30\n\
         [cameras.lobby.zones.desk]\npolygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]\ncapacity = 1\n\
         small_zone_justification = \"the hot desk's free or taken light\"\n\
         [cameras.lobby.lines.a]\npoints = [[0.2, 0.5], [0.8, 0.5]]\nin = \"left\"\n\
         [cameras.lobby.lines.b]\npoints = [[0.2, 0.7], [0.8, 0.7]]\nin = \"left\"\n\
         [spaces.hall]\nentrances = [\"lobby.a\", \"lobby.b\"]\n\
         [mqtt]\nbroker = \"mqtt://127.0.0.1:{mqtt_port}\"\nfiware = true\n{extra}",
        dir.join("state"),
        repo().join("models"),
        free_port()
    );
    let path = dir.join("headcount.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n) as u32
    }
}

/// Yesterday and today until a few minutes ago: by day 0 to 2 crossings
/// per line a minute and up to 7 people, by night a crossing now and then
/// and at most one person, so that many quarter-hours hold 1 to 4 people;
/// a visit now and then.
fn seed(db: &Path) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = (now / DAY - 1) * DAY;
    let end = (now - 5 * MINUTE) / MINUTE * MINUTE;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut database = headcount_store::Database::open(db).unwrap();
    let mut deltas = Deltas::default();
    let mut minute = start;
    while minute < end {
        let busy = (8..18).contains(&(minute % DAY / 3_600_000));
        let crossings = |rng: &mut XorShift| {
            if busy {
                rng.below(3)
            } else {
                u32::from(rng.below(20) == 0)
            }
        };
        for line in ["a", "b"] {
            deltas.flows.push(FlowDelta {
                camera: "lobby".into(),
                line: line.into(),
                bucket_start: minute,
                entries: crossings(&mut rng),
                exits: crossings(&mut rng),
            });
        }
        let zone = |name: &str, people: u32| OccupancyDelta {
            scope: Scope::Zone {
                camera: "lobby".into(),
                zone: name.into(),
            },
            bucket_start: minute,
            samples: 10,
            occupancy_sum: 10 * u64::from(people),
            occupancy_max: people,
        };
        let people = rng.below(if busy { 8 } else { 2 });
        deltas.occupancy.push(zone("floor", people));
        deltas.occupancy.push(zone("desk", rng.below(2)));
        deltas.occupancy.push(OccupancyDelta {
            scope: Scope::Space("hall".into()),
            ..zone("floor", people)
        });
        if rng.below(5) == 0 {
            for zone in ["floor", "desk"] {
                let mut histogram = DwellHistogram::default();
                histogram.add(f64::from(30 + rng.below(600)));
                deltas.dwell.push(DwellDelta {
                    camera: "lobby".into(),
                    zone: zone.into(),
                    bucket_start: minute,
                    histogram,
                });
            }
        }
        minute += MINUTE;
    }
    database.apply(&deltas).unwrap();
    start
}

/// People counts found in (0, k) in a JSON document; a mean occupancy shown
/// without a peak of at least k counts too.
fn small_cells(value: &Value, found: &mut Vec<String>, seen: &mut u64) {
    const COUNTS: [&str; 7] = [
        "entries",
        "exits",
        "occupancy_peak",
        "max_occupancy",
        "peopleCount",
        "peopleCountTowards",
        "peopleCountAway",
    ];
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if COUNTS.contains(&key.as_str()) {
                    // NGSI-LD wraps values in a Property.
                    let n = v.as_f64().or_else(|| v["value"].as_f64());
                    if let Some(n) = n {
                        *seen += 1;
                        if n > 0.0 && n < K as f64 {
                            found.push(format!("{key} = {n} in {value}"));
                        }
                    }
                }
            }
            let mean = map.get("occupancy_mean").and_then(Value::as_f64);
            let peak = map.get("occupancy_peak").and_then(Value::as_f64);
            if mean.is_some() && peak.is_none_or(|p| p < K as f64) {
                found.push(format!("a mean without a peak of k in {value}"));
            }
            for v in map.values() {
                small_cells(v, found, seen);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| small_cells(v, found, seen)),
        _ => {}
    }
}

/// The same for CSV (header names the columns) and OpenMetrics text.
fn small_cells_in_text(text: &str, found: &mut Vec<String>, seen: &mut u64) {
    let mut lines = text.lines();
    if let Some(header) = lines.clone().next().filter(|h| h.contains(",entries,")) {
        let columns: Vec<&str> = header.split(',').collect();
        for line in lines.by_ref().skip(1) {
            for (column, cell) in columns.iter().zip(line.split(',')) {
                if ["entries", "exits", "occupancy_peak"].contains(column) && !cell.is_empty() {
                    *seen += 1;
                    let n: f64 = cell.parse().unwrap();
                    if n > 0.0 && n < K as f64 {
                        found.push(format!("{column} = {n} in CSV line {line}"));
                    }
                }
            }
        }
        return;
    }
    for line in text.lines().filter(|l| l.starts_with("headcount_space_")) {
        let counts = ["_entries{", "_exits{", "_occupancy_peak{"];
        if counts.iter().any(|c| line.contains(c)) {
            *seen += 1;
            let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            if n > 0.0 && n < K as f64 {
                found.push(format!("metric {line}"));
            }
        }
    }
}

#[test]
fn no_planner_or_off_site_feed_reads_a_count_below_k() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mqtt_port) = start_broker(dir.path());
    let api_port = free_port();
    let config = config(dir.path(), api_port, mqtt_port, "");
    let start = seed(&dir.path().join("state/headcount.db"));
    // A subscriber from before the first publication: it sees every bucket
    // the outbox delivers, not only the retained newest ones.
    let fleet = Subscriber::start(mqtt_port, "headcount/#", 100_000, 25);
    let _appliance = start_appliance(&config, api_port);
    let state = dir.path().join("state");
    let planner = issue_token(&state, "city", "planner");
    let facilities = issue_token(&state, "duty-manager", "facilities");
    let range = format!(
        "from={}&to={}",
        headcount_api::rfc3339(start),
        headcount_api::rfc3339(start + 2 * DAY)
    );
    assert!(
        wait_until(yesterday_published_within(DEFAULT_FLUSH_SECS), || {
            let path = format!("/api/v1/aggregates?space=hall&bucket=1d&{range}");
            get_raw_as(api_port, &path, Some(&planner)).is_some_and(|(status, _, body)| {
                status == 200 && String::from_utf8_lossy(&body).contains("\"start\"")
            })
        }),
        "nothing was published"
    );

    // Every GET route a planner may call, every width and format.
    let (mut paths, mut planner_routes, mut refused) = (Vec::new(), 0, 0);
    for rule in ROUTES
        .iter()
        .filter(|r| r.method == axum::http::Method::GET)
    {
        let planner_may = match rule.access {
            headcount_api::access::Access::Roles(roles) => roles.contains(&Role::Planner),
            headcount_api::access::Access::Public => false,
        };
        planner_routes += usize::from(planner_may);
        match rule.path {
            "/api/v1/aggregates" => {
                for bucket in ["15m", "1h", "1d"] {
                    for format in ["json", "csv"] {
                        for query in ["", range.as_str()] {
                            paths.push(format!(
                                "{}?space=hall&bucket={bucket}&format={format}&{query}",
                                rule.path
                            ));
                        }
                    }
                }
            }
            // Counts as counted: a planner is refused, whatever the width.
            "/api/v1/occupancy/history" | "/api/v1/flow" | "/api/v1/dwell" => {
                assert!(!planner_may, "{} admits planners", rule.path);
                for bucket in ["1m", "15m", "1h", "1d"] {
                    for subject in ["space=hall", "zone=lobby.floor", "line=lobby.a"] {
                        let path = format!("{}?{subject}&bucket={bucket}&{range}", rule.path);
                        let (status, _, _) = get_raw_as(api_port, &path, Some(&planner)).unwrap();
                        assert_eq!(status, 403, "{path}");
                        refused += 1;
                    }
                }
            }
            path if planner_may && !path.contains('{') => paths.push(path.to_string()),
            _ => {}
        }
    }
    let (mut found, mut seen) = (Vec::new(), 0u64);
    for path in &paths {
        let (status, _, body) = get_raw_as(api_port, path, Some(&planner)).unwrap();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        match serde_json::from_slice::<Value>(&body) {
            Ok(json) => small_cells(&json, &mut found, &mut seen),
            Err(_) => small_cells_in_text(&String::from_utf8_lossy(&body), &mut found, &mut seen),
        }
    }
    let api_cells = seen;

    // The MQTT fleet feed: every bucket from the outbox, as JSON and NGSI-LD.
    let database = dir.path().join("state/headcount.db");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let conn = rusqlite::Connection::open(&database).unwrap();
            conn.query_row("SELECT count(*) FROM fleet_outbox", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
                == 0
        }),
        "the outbox was not delivered"
    );
    let messages = fleet.messages();
    let buckets = messages
        .iter()
        .filter(|(t, _)| t.contains("/aggregates/"))
        .count();
    // Yesterday whole (96 + 24 + 1), and today so far.
    assert!(buckets > 96 + 24 + 1, "{buckets} buckets over MQTT");
    for (topic, payload) in &messages {
        if let Ok(json) = serde_json::from_str::<Value>(payload) {
            small_cells(&json, &mut found, &mut seen);
        }
        assert!(
            !topic.ends_with("/anomalies"),
            "anomalies went to MQTT unasked: {topic}"
        );
    }
    assert!(
        found.is_empty(),
        "{} cells below k:\n{}",
        found.len(),
        found.join("\n")
    );
    assert!(
        api_cells > 200,
        "too few cells were read to mean anything: {api_cells}"
    );

    // On site: the desk (capacity 1) only in quarter-hours or more, and no
    // dwell median of fewer than k visits, for any width.
    for path in [
        "/api/v1/occupancy/history?zone=lobby.desk&bucket=1m",
        "/api/v1/occupancy/history?zone=lobby.desk&bucket=5m",
        "/api/v1/dwell?zone=lobby.desk&bucket=1m",
    ] {
        let (status, _, _) = get_raw_as(api_port, path, Some(&facilities)).unwrap();
        assert_eq!(status, 403, "{path}");
    }
    let (mut quiet, mut quiet_medians, mut busy_medians) = (0, 0, 0);
    for zone in ["floor", "desk"] {
        for bucket in ["1m", "15m", "1h", "1d"] {
            if zone == "desk" && bucket == "1m" {
                continue;
            }
            let path = format!("/api/v1/dwell?zone=lobby.{zone}&bucket={bucket}&{range}");
            let (status, _, body) = get_raw_as(api_port, &path, Some(&facilities)).unwrap();
            assert_eq!(status, 200, "{path}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            for b in body["buckets"].as_array().unwrap() {
                let few = b["visits"].as_u64().unwrap() < K;
                quiet += u64::from(few);
                let median = !b["median_s"].is_null() || !b["p90_s"].is_null();
                if few && median {
                    quiet_medians += 1;
                }
                busy_medians += u64::from(!few && median);
            }
        }
    }
    assert_eq!(quiet_medians, 0);
    assert!(
        quiet > 100 && busy_medians > 0,
        "{quiet} quiet, {busy_medians} medians"
    );
    println!(
        "FIGURE disclosure: {} planner requests over the {planner_routes} GET routes a planner may call \
         (every width and format) and {} MQTT messages ({buckets} buckets, JSON and NGSI-LD) read; \
         {seen} published counts seen ({api_cells} through the API), cells in (0, {K}): {}; \
         {refused} planner requests for counts as counted refused",
        paths.len(),
        messages.len(),
        found.len()
    );
    println!(
        "FIGURE disclosure: facilities read {quiet} dwell buckets with fewer than {K} visits: medians shown {quiet_medians}; \
         the one-seat desk by the minute: refused"
    );
}

#[test]
fn noise_is_one_value_per_cell_for_every_reader_and_the_ledger_counts_releases() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mqtt_port) = start_broker(dir.path());
    let api_port = free_port();
    let epsilon = 0.5;
    let config = config(
        dir.path(),
        api_port,
        mqtt_port,
        &format!("[aggregates]\ndifferential_privacy = true\nepsilon = {epsilon}\n"),
    );
    let start = seed(&dir.path().join("state/headcount.db"));
    let _appliance = start_appliance(&config, api_port);
    let state = dir.path().join("state");
    let tokens: Vec<String> = (0..3)
        .map(|i| issue_token(&state, &format!("city-{i}"), "planner"))
        .collect();
    let path = format!(
        "/api/v1/aggregates?space=hall&bucket=15m&from={}&to={}",
        headcount_api::rfc3339(start),
        headcount_api::rfc3339(start + DAY)
    );
    let read = |token: &str| {
        let (status, _, body) = get_raw_as(api_port, &path, Some(token)).unwrap();
        assert_eq!(status, 200);
        serde_json::from_slice::<Value>(&body).unwrap()["buckets"].clone()
    };
    assert!(wait_until(
        yesterday_published_within(DEFAULT_FLUSH_SECS),
        || read(&tokens[0]).as_array().is_some_and(|b| b.len() == 96)
    ));
    let first = read(&tokens[0]);
    let mut reads = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for token in &tokens {
        for _ in 0..100 {
            distinct.insert(read(token).to_string());
            reads += 1;
        }
    }
    assert_eq!(distinct.len(), 1, "a repeat saw other values");
    assert!(distinct.contains(&first.to_string()));
    let database = rusqlite::Connection::open(dir.path().join("state/headcount.db")).unwrap();
    let (releases, spent): (i64, f64) = database
        .query_row(
            "SELECT coalesce(sum(releases), 0), coalesce(sum(spent), 0.0) FROM privacy_ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let noised: i64 = database
        .query_row(
            "SELECT count(*) FROM published_aggregate WHERE epsilon IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(releases, noised);
    assert!((spent - releases as f64 * epsilon).abs() < 1e-6, "{spent}");
    println!(
        "FIGURE dp: one quarter-hour series read {reads} times by {} tokens: {} distinct answer; \
         ledger: {releases} releases x epsilon {epsilon} = {spent} spent (reads spend nothing)",
        tokens.len(),
        distinct.len()
    );
}
