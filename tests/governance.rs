//! Data governance end to end, on the real binary: crash safety under
//! SIGKILL, the fleet feed on a real Mosquitto broker, and the audit trail
//! of a running appliance.

mod common;

use common::*;
use headcount_core::analytics::{Deltas, FlowDelta, OccupancyDelta, Scope};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A test-pattern camera (no RTSP server needed: the writes are what
/// matters here) with a line, in a space, on `api_port`.
fn config_with(dir: &Path, api_port: u16, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[appliance]\nsite = \"test\"\nstate_dir = {:?}\nmodels_dir = {:?}\n[api]\nbind = \"127.0.0.1:{api_port}\"\n\
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
        // Clients whose every 200 means "its audit entry is durable".
        let answered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let (answered, stop, token) = (answered.clone(), stop.clone(), token.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some((200, _, _)) =
                            get_raw_as(api_port, "/api/v1/occupancy", Some(&token))
                        {
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
        // Let buckets flush (every second) and requests flow, then read what
        // is committed and kill at once, mid-write.
        std::thread::sleep(Duration::from_millis(1000 + 250 * u64::from(cycle % 4)));
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
        let changes = count(&conn, "SELECT count(*) FROM audit_log WHERE action = 'token_change' AND target LIKE 'planner%'");
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
    let mut database = headcount_core::storage::Database::open(db).unwrap();
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
    use std::io::Write;
    let cache = std::env::var("HEADCOUNT_CACHE").unwrap_or_else(|_| "/var/cache/headcount".into());
    let database = Path::new(&cache).join("fiware/smartdatamodels.json.gz");
    assert!(
        database.is_file(),
        "{} is missing: run scripts/setup.sh",
        database.display()
    );
    let mut child = Command::new("/usr/bin/python3")
        .arg(repo().join("scripts/validate_ngsi.py"))
        .arg(&database)
        .arg("CrowdFlowObserved")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(entities.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_fleet_gets_suppressed_aggregates_and_availability_over_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mqtt_port) = start_broker(dir.path());
    let api_port = free_port();
    let config = config_with(
        dir.path(),
        api_port,
        &format!("[mqtt]\nbroker = \"mqtt://127.0.0.1:{mqtt_port}\"\ntopic_prefix = \"city/district-7\"\nfiware = true\n"),
    );
    let day = seed_yesterday(&dir.path().join("state/headcount.db"));
    let appliance = start_appliance(&config, api_port);

    // Retained: a subscriber arriving now still gets the state and the
    // newest bucket of each width.
    let mut got = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            got = subscribe(mqtt_port, "city/district-7/#", 7, 2);
            got.len() == 7
        }),
        "{got:?}"
    );
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    for want in [
        "city/district-7/test/status",
        "city/district-7/test/hall/aggregates/15m",
        "city/district-7/test/hall/aggregates/1h",
        "city/district-7/test/hall/aggregates/1d",
        "city/district-7/test/hall/ngsi-ld/15m",
        "city/district-7/test/hall/ngsi-ld/1h",
        "city/district-7/test/hall/ngsi-ld/1d",
    ] {
        assert!(topics.contains(&want), "{want} missing from {topics:?}");
    }
    let payload = |topic: &str| -> serde_json::Value {
        let (_, p) = got.iter().find(|(t, _)| t.ends_with(topic)).unwrap();
        serde_json::from_str(p).unwrap()
    };
    assert_eq!(
        got.iter().find(|(t, _)| t.ends_with("/status")).unwrap().1,
        "online"
    );
    let daily = payload("/aggregates/1d");
    assert_eq!(daily["space"], "hall");
    assert_eq!(daily["start"], headcount_core::api::rfc3339(day));
    // 10 busy hours x 4 minutes x 2 entries, plus 3 at 03:00 and 3 at 05:00,
    // withheld in their hours; the day reveals only their sum, 6 >= k.
    assert_eq!(daily["entries"], 86, "{daily}");
    assert_eq!(daily["exits"], 40, "{daily}");
    let hourly = payload("/aggregates/1h");
    assert_eq!(
        hourly["entries"], 0,
        "the newest hour (23:00) was quiet: {hourly}"
    );
    // The same day as a FIWARE CrowdFlowObserved entity, which conforms to
    // the Smart Data Models attribute database; a broken one does not.
    let entity = payload("/ngsi-ld/1d");
    assert_eq!(entity["peopleCountTowards"]["value"], 86, "{entity}");
    assert_eq!(entity["peopleCount"]["value"], 126, "{entity}");
    let entities: Vec<String> = got
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
    let mut broken = entity.clone();
    broken["peopleCount"]["value"] = serde_json::json!("126");
    broken["crowdSize"] = serde_json::json!({"type": "Property", "value": 1});
    let (ok, report) = validate_ngsi(&broken.to_string());
    assert!(!ok, "{report}");
    assert!(
        report.contains("peopleCount") && report.contains("crowdSize: not an attribute"),
        "{report}"
    );
    // Nothing but aggregates: no track ids, no per-person fields.
    for (_, p) in &got {
        assert!(!p.contains("track"), "{p}");
    }
    // And its API says the same.
    let (status, body) = get(
        api_port,
        &format!(
            "/api/v1/aggregates?space=hall&bucket=1h&from={}&to={}",
            headcount_core::api::rfc3339(day),
            headcount_core::api::rfc3339(day + 86_400_000)
        ),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let three = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["start"].as_str().unwrap().contains("T03:00"))
        .unwrap();
    assert_eq!(three["entries"], serde_json::Value::Null, "{three}");
    assert_eq!(three["withheld"][0], "entries");

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
}
