//! Data governance end to end, on the real binary: crash safety under
//! SIGKILL, the fleet feed on a real Mosquitto broker, and the audit trail
//! of a running appliance.

use crate::common::*;
use headcount_domain::analytics::{Deltas, FlowDelta, OccupancyDelta, Scope};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test-pattern camera (no RTSP server needed: the writes are what
/// matters here) with a line, in a space, on `api_port`; the rate limit
/// raised for the crash test's clients, which read as fast as they can.
fn config_with(dir: &Path, api_port: u16, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[appliance]\nsite = \"test\"\nstate_dir = {:?}\nmodels_dir = {:?}\n[api]\nbind = \"127.0.0.1:{api_port}\"\n\
         token_burst = 1000000\ntoken_rate = 100000.0\n\
         [analytics]\nflush_secs = 1\n[cameras.desk]\nurl = \"testsrc:ball\"\nanalysis_fps = 4\n\
         [cameras.desk.zones.room]\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n\
         [cameras.desk.lines.door]\npoints = [[0.2, 0.5], [0.8, 0.5]]\nin = \"left\"\n\
         [spaces.hall]\nentrances = [\"desk.door\"]\n{extra}",
        dir.join("state"),
        repo().join("models")
    );
    let path = dir.join("headcount.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn open(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// SIGKILL in the middle of bucket and audit writes (with a console token
/// change each time), many times: after
/// each restart, every committed bucket sample and every audit entry of an
/// answered request is still there, the chain verifies, and SQLite's
/// integrity check passes. HEADCOUNT_CRASH_CYCLES sets the number of cycles.
#[test]
fn sigkill_during_writes_loses_nothing_acknowledged() {
    let cycles: u32 = std::env::var("HEADCOUNT_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let config = config_with(dir.path(), api_port, "");
    let db_path = dir.path().join("state/headcount.db");
    let mut answered_total = 0u64;
    let mut samples_seen = 0i64;
    for cycle in 0..cycles {
        let appliance = start_appliance(&config, api_port);
        let token = admin_token(api_port).unwrap();
        // Clients whose every 200 means "its audit entry is durable": each
        // request is a read of its own (a query of its own), so none is a
        // repeat that coalescing would only count in memory.
        let answered = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let (answered, sent, stop, token) =
                    (answered.clone(), sent.clone(), stop.clone(), token.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = sent.fetch_add(1, Ordering::Relaxed);
                        let path = format!("/api/v1/occupancy?cycle={cycle}&n={n}");
                        if let Some((200, _, _)) = get_raw_as(api_port, &path, Some(&token)) {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // A token change from the console while the service appends to the
        // same audit chain: both get through, one after the other.
        let state = dir.path().join("state");
        let name = format!("planner{cycle}");
        let (code, out, err) = run(
            &[
                "tokens",
                "create",
                "--name",
                &name,
                "--role",
                "planner",
                "--state-dir",
                state.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "cycle {cycle}: {out}{err}");
        // Wait until this run's buckets are flushing (every second; the
        // first analysed frame may take a while on a slow box), let requests
        // flow a little longer, then read what is committed and kill at
        // once, mid-write.
        let flushing_by = Instant::now() + Duration::from_secs(60);
        while count(
            &open(&db_path),
            "SELECT coalesce(sum(samples), 0) FROM occupancy_minute",
        ) <= samples_seen
        {
            assert!(
                Instant::now() < flushing_by,
                "cycle {cycle}: no bucket flushed within 60 s of the start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(250 * u64::from(cycle % 4)));
        let committed = count(
            &open(&db_path),
            "SELECT coalesce(sum(samples), 0) FROM occupancy_minute",
        );
        let acknowledged = answered.load(Ordering::Relaxed);
        drop(appliance); // SIGKILL
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
        answered_total += acknowledged;
        assert!(committed >= samples_seen, "cycle {cycle}: buckets shrank");
        samples_seen = committed;

        let conn = open(&db_path);
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "cycle {cycle}");
        let after = count(
            &conn,
            "SELECT coalesce(sum(samples), 0) FROM occupancy_minute",
        );
        assert!(
            after >= committed,
            "cycle {cycle}: {after} samples after the kill, {committed} committed before"
        );
        let logged = count(&conn, "SELECT count(*) FROM audit_log WHERE action = 'api_access' AND target = 'GET /api/v1/occupancy'");
        let changes = count(&conn, "SELECT count(*) FROM audit_log WHERE action = 'token_change' AND detail LIKE '%\"change\":\"created\"%'");
        assert_eq!(
            changes,
            i64::from(cycle) + 1,
            "cycle {cycle}: token changes in the audit log"
        );
        assert!(
            logged as u64 >= answered_total,
            "cycle {cycle}: {answered_total} requests answered, {logged} in the audit log"
        );
        drop(conn);
        let (code, out, err) = run(
            &[
                "audit",
                "verify",
                "--state-dir",
                dir.path().join("state").to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "cycle {cycle}: {out}{err}");
    }
    assert!(
        answered_total > 0 && samples_seen > 0,
        "nothing was written"
    );
    println!("crash cycles: {cycles}, requests answered and audited: {answered_total}, bucket samples kept: {samples_seen}");
}

/// Yesterday's entrance counts for the hall, written as the appliance would.
fn seed_yesterday(db: &Path) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = (now / 86_400_000 - 1) * 86_400_000;
    let mut database = headcount_store::Database::open(db).unwrap();
    let mut deltas = Deltas::default();
    for minute in 0..1440i64 {
        let start = day + minute * 60_000;
        // Busy from 08:00 to 18:00 (4 an hour at each minute 0..4), else quiet.
        let busy = (8 * 60..18 * 60).contains(&minute) && minute % 60 < 4;
        deltas.flows.push(FlowDelta {
            camera: "desk".into(),
            line: "door".into(),
            bucket_start: start,
            // Two quiet hours with 3 entries each: small on their own.
            entries: if busy {
                2
            } else if minute == 3 * 60 || minute == 5 * 60 {
                3
            } else {
                0
            },
            exits: u32::from(busy),
        });
        deltas.occupancy.push(OccupancyDelta {
            scope: Scope::Space("hall".into()),
            bucket_start: start,
            samples: 60,
            occupancy_sum: if busy { 600 } else { 0 },
            occupancy_max: if busy { 10 } else { 0 },
        });
    }
    database.apply(&deltas).unwrap();
    day
}

/// scripts/validate_ngsi.py on NGSI-LD entities (one per line): passed?, report.
fn validate_ngsi(entities: &str) -> (bool, String) {
    let cache = std::env::var("HEADCOUNT_CACHE").unwrap_or_else(|_| "/var/cache/headcount".into());
    let database = Path::new(&cache).join("fiware/smartdatamodels.json.gz");
    assert!(
        database.is_file(),
        "{} is missing: run scripts/setup.sh",
        database.display()
    );
    let out = output_with_stdin(
        Command::new("/usr/bin/python3")
            .arg(repo().join("scripts/validate_ngsi.py"))
            .arg(&database)
            .arg("CrowdFlowObserved"),
        entities,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Mosquitto on `port` that keeps sessions across its own restarts, so a
/// subscriber's queue outlives a broker outage.
fn persistent_broker(dir: &Path, port: u16) -> Proc {
    let extra = format!(
        "persistence true\npersistence_location {}/\nmax_queued_messages 100000\n\
         # Started as root, stay root: the session file is in the test's own folder.\nuser root\n",
        dir.display()
    );
    broker_on(dir, port, &extra)
}

/// How much longer a broker stays down (HEADCOUNT_OUTAGE_SECS, default 0).
fn extra_outage_secs() -> u64 {
    std::env::var("HEADCOUNT_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// SIGTERM, so that Mosquitto writes its sessions to disk.
fn stop_gracefully(mut broker: Proc) {
    let pid = broker.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    broker.0.wait().unwrap();
}

/// mosquitto_sub as the persistent client `fleet-test` (QoS 1, no clean
/// session): with `register`, only subscribes and leaves; else collects
/// what the broker kept for it, for `wait` seconds.
fn fleet_subscriber(port: u16, register: bool, wait: u32) -> Vec<(String, String)> {
    let port = port.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "city/district-7/#",
        "-q",
        "1",
        "-c",
        "-i",
        "fleet-test",
        "-v",
    ];
    let wait = wait.to_string();
    if register {
        args.push("-E");
    } else {
        // -R: not the retained copies its new SUBSCRIBE brings, only what
        // was queued for the session.
        args.extend(["-R", "-C", "100000", "-W", &wait]);
    }
    let out = Command::new("mosquitto_sub").args(&args).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect()
}

/// The broker is down while the appliance publishes yesterday, is killed
/// and started again twice (and, with HEADCOUNT_OUTAGE_SECS, stays down
/// that much longer); once the broker is back, every bucket arrives
/// exactly once, with the values the API serves (the noise stored at
/// publication, never drawn again), and the retained topics, the status
/// and the last will are right.
#[test]
fn the_fleet_outbox_delivers_every_bucket_once_across_restarts_and_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let (api_port, mqtt_port) = (free_port(), free_port());
    let config = config_with(
        dir.path(),
        api_port,
        &format!(
            "[aggregates]\ndifferential_privacy = true\n\
             [mqtt]\nbroker = \"mqtt://127.0.0.1:{mqtt_port}\"\ntopic_prefix = \"city/district-7\"\nfiware = true\n"
        ),
    );
    let database = dir.path().join("state/headcount.db");
    let day = seed_yesterday(&database);
    // The subscriber's session exists before the outage; the broker keeps
    // what arrives for it while it is away.
    let broker = persistent_broker(&broker_dir, mqtt_port);
    fleet_subscriber(mqtt_port, true, 0);
    stop_gracefully(broker);

    let range = format!(
        "from={}&to={}",
        headcount_api::rfc3339(day),
        headcount_api::rfc3339(day + 86_400_000)
    );
    let quarters = |port| {
        get(
            port,
            &format!("/api/v1/aggregates?space=hall&bucket=15m&{range}"),
        )
        .map(|(_, body)| body["buckets"].as_array().map_or(0, |b| b.len()))
        .unwrap_or(0)
    };
    let mut appliance = None;
    for start in 0..3 {
        drop(appliance.take());
        let running = start_appliance(&config, api_port);
        assert!(
            wait_until(yesterday_published_within(1), || quarters(api_port) == 96),
            "yesterday was not published (start {start})"
        );
        appliance = Some(running);
    }
    let outage = extra_outage_secs();
    std::thread::sleep(Duration::from_secs(outage));
    let waiting = || count(&open(&database), "SELECT count(*) FROM fleet_outbox");
    let queued = waiting();
    assert!(
        queued >= 121,
        "{queued} buckets queued while the broker was down"
    );

    let broker = persistent_broker(&broker_dir, mqtt_port);
    assert!(
        wait_until(Duration::from_secs(60), || waiting() == 0),
        "the outbox was not delivered: {} left",
        waiting()
    );
    let got = fleet_subscriber(mqtt_port, false, 5);
    let mut deliveries: std::collections::BTreeMap<String, (usize, serde_json::Value)> =
        Default::default();
    // The stream, not the retained `latest` copies.
    let stream = |t: &&(String, String)| t.0.contains("/aggregates/") && !t.0.ends_with("/latest");
    for (topic, payload) in got.iter().filter(stream) {
        let bucket: serde_json::Value = serde_json::from_str(payload).unwrap();
        let id = bucket["id"].as_str().unwrap().to_string();
        assert_eq!(
            topic,
            &format!(
                "city/district-7/test/hall/aggregates/{}",
                bucket["bucket"].as_str().unwrap()
            )
        );
        deliveries.entry(id).or_insert((0, bucket)).0 += 1;
    }
    let most = deliveries.values().map(|(n, _)| *n).max().unwrap_or(0);
    assert_eq!(most, 1, "a bucket was delivered more than once");
    // The stream is not retained (a bridge would send it again): only
    // `latest` is.
    let retained_stream = subscribe(mqtt_port, "city/district-7/test/hall/aggregates/+", 1, 2);
    assert!(retained_stream.is_empty(), "{retained_stream:?}");
    // Every bucket of yesterday, with the values the API serves for it: the
    // noise was drawn once and stored. Nothing delivered that was not published.
    let mut renoised = 0;
    let mut served_ids = std::collections::BTreeSet::new();
    for label in ["15m", "1h", "1d"] {
        let (status, body) = get(
            api_port,
            &format!(
                "/api/v1/aggregates?space=hall&bucket={label}&from={}&to={}",
                headcount_api::rfc3339(day),
                headcount_api::rfc3339(day + 2 * 86_400_000)
            ),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        for served in body["buckets"].as_array().unwrap() {
            let start = served["start"].as_str().unwrap();
            let id = format!("test/hall/{label}/{start}");
            served_ids.insert(id.clone());
            let yesterday = start < headcount_api::rfc3339(day + 86_400_000).as_str();
            let Some((_, delivered)) = deliveries.get(&id) else {
                assert!(!yesterday, "{id} was published but never delivered");
                continue;
            };
            for key in [
                "entries",
                "exits",
                "occupancy_mean",
                "occupancy_peak",
                "withheld",
                "epsilon",
            ] {
                if delivered[key] != served[key] {
                    renoised += 1;
                }
            }
            // A bucket with a published value was one release, noised once
            // (a release whose noisy values fell below k shows none).
            let shown = ["entries", "exits", "occupancy_peak"]
                .iter()
                .any(|k| !delivered[*k].is_null());
            let epsilon = delivered["epsilon"].as_f64();
            assert!(epsilon.is_none() || epsilon == Some(1.0), "{delivered}");
            assert!(!shown || epsilon == Some(1.0), "{delivered}");
        }
    }
    assert_eq!(renoised, 0);
    for id in deliveries.keys() {
        assert!(
            served_ids.contains(id),
            "{id} was delivered but is not published"
        );
    }
    println!(
        "FIGURE outbox: {} buckets published while the broker was down across 2 restarts (+{outage} s); \
         {} delivered, each exactly once (at most {most} per key), {renoised} values differing from the API's stored cells",
        queued,
        deliveries.len()
    );

    // Retained: a subscriber arriving now gets the state and the newest
    // bucket of each width, also as NGSI-LD entities that conform to the
    // Smart Data Models attribute database.
    let mut retained = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            retained = subscribe(mqtt_port, "city/district-7/#", 8, 2);
            retained.len() == 8
        }),
        "{retained:?}"
    );
    // Every bucket delivered and the site descriptor, against their schemas.
    let mut checks: Vec<(&str, &str, &str)> = got
        .iter()
        .filter(|(t, _)| t.contains("/aggregates/"))
        .map(|(t, p)| ("fleet-bucket.schema.json", t.as_str(), p.as_str()))
        .collect();
    let descriptor = retained
        .iter()
        .find(|(t, _)| t == "city/district-7/test/descriptor")
        .unwrap_or_else(|| panic!("no site descriptor in {retained:?}"));
    checks.push(("site-descriptor.schema.json", &descriptor.0, &descriptor.1));
    println!("{}", check_schemas(&checks));
    let descriptor: serde_json::Value = serde_json::from_str(&descriptor.1).unwrap();
    assert_eq!(descriptor["spaces"][0]["name"], "hall", "{descriptor}");
    assert_eq!(descriptor["k"], 5, "{descriptor}");
    assert_eq!(
        retained
            .iter()
            .find(|(t, _)| t.ends_with("/status"))
            .unwrap()
            .1,
        "online"
    );
    let entities: Vec<String> = retained
        .iter()
        .filter(|(t, _)| t.contains("/ngsi-ld/"))
        .map(|(_, p)| p.clone())
        .collect();
    let (ok, report) = validate_ngsi(&entities.join("\n"));
    assert!(ok, "{report}");
    assert!(
        report.contains("3 CrowdFlowObserved entities checked"),
        "{report}"
    );
    let daily: serde_json::Value = serde_json::from_str(
        &retained
            .iter()
            .find(|(t, _)| t.ends_with("/aggregates/1d/latest"))
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(daily["start"], headcount_api::rfc3339(day));
    let mut broken: serde_json::Value = serde_json::from_str(&entities[0]).unwrap();
    broken["crowdSize"] = serde_json::json!({"type": "Property", "value": 1});
    let (ok, report) = validate_ngsi(&broken.to_string());
    assert!(
        !ok && report.contains("crowdSize: not an attribute"),
        "{report}"
    );
    // Nothing but aggregates: no track ids, no per-person fields, no count
    // below k (a noisy value below k is withheld too).
    for (_, p) in &got {
        assert!(!p.contains("track"), "{p}");
        if let Ok(bucket) = serde_json::from_str::<serde_json::Value>(p) {
            for key in ["entries", "exits", "occupancy_peak"] {
                if let Some(v) = bucket[key].as_u64() {
                    assert!(v >= 5, "{key} {v} in {p}");
                }
            }
        }
    }

    // Killed without a goodbye: the broker sends the last will.
    drop(appliance);
    let mut status = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = subscribe(mqtt_port, "city/district-7/test/status", 1, 2);
            status.first().is_some_and(|(_, p)| p == "offline")
        }),
        "{status:?}"
    );
    drop(broker);
}

/// The fleet feed through a city's existing broker: the appliance publishes
/// to the site's Mosquitto, which bridges its topics to a central one. The
/// central broker is down while the appliance publishes yesterday and is
/// restarted (and, with HEADCOUNT_OUTAGE_SECS, stays down that much
/// longer); once it is back, the central subscriber has every bucket once.
#[test]
fn the_fleet_feed_crosses_a_bridge_to_a_central_broker_across_its_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (local_dir, central_dir) = (dir.path().join("site"), dir.path().join("city"));
    std::fs::create_dir_all(&local_dir).unwrap();
    std::fs::create_dir_all(&central_dir).unwrap();
    let (api_port, local_port, central_port) = (free_port(), free_port(), free_port());
    let config = config_with(
        dir.path(),
        api_port,
        &format!(
            "[mqtt]\nbroker = \"mqtt://127.0.0.1:{local_port}\"\ntopic_prefix = \"city/district-7\"\n"
        ),
    );
    let database = dir.path().join("state/headcount.db");
    seed_yesterday(&database);
    // The city's subscriber has its session before the outage.
    let central = persistent_broker(&central_dir, central_port);
    fleet_subscriber(central_port, true, 0);
    stop_gracefully(central);
    // The site's broker bridges the feed out, QoS 1, keeping what the
    // central broker has not acknowledged (local persistent session).
    let bridge = format!(
        "persistence true\npersistence_location {}/\nmax_queued_messages 100000\nuser root\n\
         connection city\naddress 127.0.0.1:{central_port}\ntopic city/district-7/# out 1\n\
         cleansession false\nlocal_clientid site-bridge\nremote_clientid site-bridge\n\
         restart_timeout 1\ntry_private false\n",
        local_dir.display()
    );
    let _local = broker_on(&local_dir, local_port, &bridge);

    let waiting = || count(&open(&database), "SELECT count(*) FROM fleet_outbox");
    let published = || count(&open(&database), "SELECT count(*) FROM published_aggregate");
    let mut appliance = None;
    for start in 0..2 {
        drop(appliance.take());
        let running = start_appliance(&config, api_port);
        assert!(
            wait_until(yesterday_published_within(1), || published() >= 121
                && waiting() == 0),
            "the site's broker did not take the outbox (start {start}): {} left",
            waiting()
        );
        appliance = Some(running);
    }
    let outage = extra_outage_secs();
    std::thread::sleep(Duration::from_secs(outage));
    let _central = persistent_broker(&central_dir, central_port);
    // The bridge reconnects within restart_timeout and forwards its queue.
    // It also re-sends the site broker's retained messages each time it
    // subscribes anew: the buckets' stream is not retained, so only the
    // `latest` copies (left out here) come again.
    let mut deliveries: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let got = fleet_subscriber(central_port, false, 15);
    for (_, payload) in got
        .iter()
        .filter(|(t, _)| t.contains("/aggregates/") && !t.ends_with("/latest"))
    {
        let bucket: serde_json::Value = serde_json::from_str(payload).unwrap();
        deliveries
            .entry(bucket["id"].as_str().unwrap().to_string())
            .or_default()
            .push(payload.clone());
    }
    let total = count(
        &open(&database),
        "SELECT count(*) FROM published_aggregate WHERE space = 'hall'",
    );
    let repeats: usize = deliveries.values().map(|d| d.len() - 1).sum();
    let differing = deliveries
        .values()
        .filter(|d| d.iter().any(|p| p != &d[0]))
        .count();
    let lost = (total as usize).saturating_sub(deliveries.len());
    println!(
        "FIGURE bridge: {total} buckets published while the central broker was down (+{outage} s) across a restart; \
         {} reached the central subscriber, {lost} lost, {repeats} repeated, {differing} differing",
        deliveries.len()
    );
    assert_eq!((lost, repeats, differing), (0, 0, 0), "{deliveries:?}");
    assert_eq!(deliveries.len() as i64, total);
}
