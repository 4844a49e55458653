//! The real router on a real socket (port 0), read with plain HTTP/1.1.

use super::*;
use headcount_domain::analytics::{Deltas, DwellDelta, FlowDelta, OccupancyDelta};
use headcount_domain::clock::Clock;
use headcount_domain::clock::ManualClock;
use headcount_domain::config::SystemSecrets;
use std::io::{Read, Write};

pub(super) const NOW: UnixMs = 1_764_000_000_000; // 2025-11-24T16:00:00Z

pub(super) const CONFIG: &str = r#"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.zones.door]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
capacity = 10
[cameras.lobby.lines.entrance]
points = [[0.2, 0.5], [0.8, 0.5]]
in = "left"

[cameras.yard]
url = "testsrc:ball"
[cameras.yard.zones.gate]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
capacity = 10

[spaces.site]
zones = ["lobby.door", "yard.gate"]
[spaces.hall]
entrances = ["lobby.entrance"]
capacity = 50
"#;

pub(super) struct Served {
    pub(super) addr: std::net::SocketAddr,
    /// An admin token, and one for each role by name.
    pub(super) tokens: BTreeMap<&'static str, String>,
    pub(super) guard: Arc<access::Guard>,
    /// Where the appliance's security events arrive.
    pub(super) syslog: std::os::unix::net::UnixDatagram,
    pub(super) database: std::path::PathBuf,
    _runtime: tokio::runtime::Runtime,
    pub(super) dir: tempfile::TempDir,
}

impl Served {
    /// As the admin.
    pub(super) fn get(&self, path: &str) -> (u16, serde_json::Value) {
        get_as(self.addr, path, Some(&self.tokens["admin"]))
    }
    pub(super) fn request(&self, path: &str) -> (u16, String, Vec<u8>) {
        request_as(self.addr, "GET", path, Some(&self.tokens["admin"]))
    }
}

/// The security log of a test: a real datagram socket in `dir`.
pub(super) fn guard(dir: &std::path::Path, clock: Arc<dyn Clock>) -> Arc<access::Guard> {
    use headcount_domain::security::events::SyslogTarget;
    use headcount_domain::security::lockout::LockoutPolicy;
    let socket = dir.join("syslog.sock");
    let tokens = headcount_store::TokenStore::open(&dir.join("h.db"), dir).unwrap();
    Arc::new(access::Guard {
        tokens: Arc::new(tokens),
        sessions: super::session::Sessions::new(false).unwrap(),
        lockout: headcount_domain::security::Lockout::new(LockoutPolicy {
            max_failures: 5,
            window_ms: 60_000,
            lock_ms: 120_000,
        }),
        rate: headcount_domain::security::RateLimit::new(
            headcount_domain::security::RatePolicy::default(),
        ),
        events: Arc::new(headcount_domain::security::SecurityLog::new(
            SyslogTarget::Unix(socket),
            clock,
        )),
    })
}

pub(super) fn serve(state_fn: impl FnOnce(&std::path::Path) -> AppState) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let state = state_fn(dir.path());
    let guard = state.guard.clone();
    let database = state.database.clone();
    let syslog = std::os::unix::net::UnixDatagram::bind(dir.path().join("syslog.sock")).unwrap();
    syslog.set_nonblocking(true).unwrap();
    let mut tokens = BTreeMap::new();
    for role in headcount_domain::security::Role::ALL {
        let issued = guard
            .tokens
            .create(role.as_str(), role, Some(NOW + 3_600_000), NOW - 1)
            .unwrap();
        tokens.insert(role.as_str(), issued.reveal().to_string());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    Served {
        addr,
        tokens,
        guard,
        syslog,
        database,
        _runtime: runtime,
        dir,
    }
}

/// How the audit log and the security events name the holder of `token`
/// (`hc_<id>_<secret>`).
pub(super) fn pseudonym_of(token: &str) -> String {
    headcount_store::pseudonym(&token[3..19])
}

/// Status, head (status line and headers) and body bytes.
pub(super) fn request_as(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    // A live stream never ends: its head is enough.
    loop {
        let n = stream.read(&mut chunk).unwrap();
        response.extend_from_slice(&chunk[..n]);
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n");
        let streaming = head_end.is_some_and(|end| {
            String::from_utf8_lossy(&response[..end])
                .to_ascii_lowercase()
                .contains("content-type: text/event-stream")
        });
        if n == 0 || streaming {
            break;
        }
    }
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

pub(super) fn get_as(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, _, body) = request_as(addr, "GET", path, token);
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body))),
    )
}

pub(super) fn state(dir: &std::path::Path) -> AppState {
    state_with(dir, "")
}

/// `state` with more config after `CONFIG`.
pub(super) fn state_with(dir: &std::path::Path, extra: &str) -> AppState {
    let config = Config::parse(&format!("{CONFIG}\n{extra}"), dir, &SystemSecrets).unwrap();
    let health = HealthBoard::new(config.cameras.iter().map(|c| &c.id));
    health.update(&"lobby".into(), |h| {
        h.state = CameraState::Streaming;
        h.last_frame = Some(std::time::Instant::now() - std::time::Duration::from_millis(250));
        h.frames_analysed = 7;
    });
    health.update(&"yard".into(), |h| {
        h.state = CameraState::Failing {
            reason: "connection refused".into(),
        }
    });
    let occupancy = OccupancyBoard::new(&config);
    occupancy.record_zone("lobby.door", 3, NOW - 500);
    occupancy.record_space("hall", 4, NOW - 500);
    let database = dir.join("h.db");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let mut db = Database::open(&database).unwrap();
    let zone = |start, samples, sum, max| OccupancyDelta {
        scope: Scope::Zone {
            camera: "lobby".into(),
            zone: "door".into(),
        },
        bucket_start: start,
        samples,
        occupancy_sum: sum,
        occupancy_max: max,
    };
    let flow = |start, entries, exits| FlowDelta {
        camera: "lobby".into(),
        line: "entrance".into(),
        bucket_start: start,
        entries,
        exits,
    };
    let dwell = |start, seconds: &[f64]| {
        let mut histogram = DwellHistogram::default();
        for &s in seconds {
            histogram.add(s);
        }
        DwellDelta {
            camera: "lobby".into(),
            zone: "door".into(),
            bucket_start: start,
            histogram,
        }
    };
    db.apply(&Deltas {
        occupancy: vec![
            zone(NOW - 120_000, 4, 10, 4),
            zone(NOW - 60_000, 3, 2, 1),
            OccupancyDelta {
                scope: Scope::Space("hall".into()),
                ..zone(NOW - 60_000, 2, 8, 4)
            },
        ],
        flows: vec![
            flow(NOW - 1_800_000, 0, 0),
            flow(NOW - 120_000, 2, 1),
            flow(NOW - 60_000, 1, 0),
        ],
        dwell: vec![
            dwell(NOW - 120_000, &[20.0, 40.0]),
            dwell(NOW - 60_000, &[60.0]),
        ],
        entrance_counts: vec![],
    })
    .unwrap();
    drop(db);
    app_state(dir, config, occupancy, health, clock)
}

/// The state around a test database that already holds its rows: with the
/// real writer (maintenance included) on it.
pub(super) fn app_state(
    dir: &std::path::Path,
    config: Config,
    occupancy: OccupancyBoard,
    health: HealthBoard,
    clock: Arc<dyn Clock>,
) -> AppState {
    let database = dir.join("h.db");
    let maintenance = headcount_store::Maintenance {
        grace_ms: 120_000,
        publication: Arc::new(
            headcount_store::publication::Publication::from_config(&config).unwrap(),
        ),
        retention: Arc::new(config.retention.clone()),
        audit_key: Arc::new(
            headcount_domain::security::audit_key::AuditKey::load_or_create(dir).unwrap(),
        ),
        receipt_key: Arc::new(headcount_domain::security::ReceiptKey::generate().unwrap()),
    };
    // One board for the writer and the API, as in the appliance.
    let storage = headcount_domain::health::StorageBoard::default();
    let options = headcount_store::WriterOptions {
        maintenance: Some(maintenance),
        storage: storage.clone(),
        ..Default::default()
    };
    let (writer, _thread) =
        headcount_store::Writer::spawn_with(Database::open(&database).unwrap(), options).unwrap();
    AppState {
        site: "test".into(),
        occupancy,
        health,
        database,
        clock: clock.clone(),
        snapshots: SnapshotBoard::new(false),
        guard: guard(dir, clock),
        config: headcount_domain::config::live::LiveConfig::new(config, None),
        writer,
        anomaly_control: Default::default(),
        live_streams: Default::default(),
        validations: Default::default(),
        adjustments: Default::default(),
        storage,
    }
}

/// `state` with snapshots enabled and one redacted frame of `lobby` in them.
pub(super) fn state_with_snapshot(dir: &std::path::Path) -> AppState {
    use headcount_domain::detection::Detection;
    use headcount_domain::geometry::BBox;
    use headcount_domain::pixels::redaction::{
        RedactionMode, RedactionPolicy, Redactor, RegionHold,
    };
    use headcount_domain::pixels::testing::GivenFaces;
    let snapshots = SnapshotBoard::new(true);
    let frame = headcount_domain::pixels::frame::Frame::new(
        "lobby".into(),
        64,
        48,
        vec![200; 64 * 48 * 3],
        NOW,
    )
    .unwrap();
    let person = Detection {
        bbox: BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 0.5,
            y2: 1.0,
        },
        score: 0.9,
    };
    let faces = frame.scan_faces(&mut GivenFaces::none());
    let redactor = Redactor::new(RedactionPolicy {
        mode: RedactionMode::Fill,
        full_body: true,
        ..RedactionPolicy::default()
    });
    snapshots.publish(redactor.redact(frame, &faces, &[person], &mut RegionHold::default()));
    let state = AppState {
        snapshots,
        ..state(dir)
    };
    seed_anomaly(&state.database);
    state
}

/// Stores anomaly 1: a zone over capacity, still open.
pub(super) fn seed_anomaly(database: &std::path::Path) {
    use headcount_domain::anomaly::{monitor::Change, Finding, Kind, Severity, Subject};
    let finding = Finding {
        kind: Kind::OverCapacity,
        subject: Subject::Zone("lobby.door".into()),
        severity: Severity::Warning,
        value: 7.0,
        threshold: 5.0,
        explanation: "7 people in zone lobby.door, above its capacity of 5".into(),
    };
    let stored = Database::open(database)
        .unwrap()
        .record_anomalies(&[Change::Open {
            started: NOW - 60_000,
            finding,
        }])
        .unwrap();
    assert_eq!(stored[0].1.id, 1);
}

#[test]
fn snapshots_are_refused_unless_enabled() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/cameras/lobby/snapshot");
    assert_eq!(status, 403);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("privacy.snapshots"));
}

#[test]
fn a_snapshot_is_the_latest_redacted_frame_as_jpeg() {
    let s = serve(state_with_snapshot);
    let (status, head, body) = s.request("/api/v1/cameras/lobby/snapshot");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: image/jpeg"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let image = image::load_from_memory(&body).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (64, 48));
    // The person (left half) is filled grey, the rest keeps its value (JPEG-near).
    let near = |p: &image::Rgb<u8>, v: u8| p.0.iter().all(|&c| c.abs_diff(v) <= 6);
    assert!(near(image.get_pixel(10, 24), 128));
    assert!(near(image.get_pixel(60, 24), 200));
    let (status, body) = s.get("/api/v1/cameras/yard/snapshot");
    assert_eq!(status, 503, "{body}");
    let (status, body) = s.get("/api/v1/cameras/attic/snapshot");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn health_reports_each_camera_with_reason_and_frame_age() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/health");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["cameras"][0]["camera"], "lobby");
    assert_eq!(body["cameras"][0]["state"], "streaming");
    // Measured on the monotonic clock since the frame, so at least 250 ms.
    let age = body["cameras"][0]["last_frame_age_ms"].as_i64().unwrap();
    assert!((250..10_000).contains(&age), "{age}");
    assert_eq!(body["cameras"][1]["state"], "failing");
    assert_eq!(body["cameras"][1]["reason"], "connection refused");
}

#[test]
fn occupancy_lists_every_zone_and_only_counts() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/occupancy");
    assert_eq!(status, 200);
    let zones = body["zones"].as_array().unwrap();
    assert_eq!(zones.len(), 2);
    assert_eq!(zones[0]["zone"], "lobby.door");
    assert_eq!(zones[0]["occupancy"], 3);
    assert_eq!(zones[0]["capacity"], 10);
    assert_eq!(zones[1]["zone"], "yard.gate");
    assert!(zones[1]["occupancy"].is_null());
    let keys: Vec<_> = zones[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["camera", "capacity", "occupancy", "updated_at", "zone"]
    );
    let spaces = body["spaces"].as_array().unwrap();
    assert_eq!(spaces.len(), 2);
    assert_eq!(spaces[0]["space"], "hall");
    assert_eq!(spaces[0]["method"], "entrances");
    assert_eq!(spaces[0]["occupancy"], 4);
    assert_eq!(spaces[1]["space"], "site");
    assert_eq!(spaces[1]["method"], "zones");
    assert!(spaces[1]["occupancy"].is_null());
}

#[test]
fn flow_sums_minutes_into_the_asked_buckets() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/flow?line=lobby.entrance&bucket=1h");
    assert_eq!(status, 200, "{body}");
    // 15:30 (a watched minute with no crossing) and 15:58-15:59 share the hour.
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "{body}");
    assert_eq!(buckets[0]["start"], "2025-11-24T15:00:00Z");
    assert_eq!(
        (body["entries"].as_u64(), body["exits"].as_u64()),
        (Some(3), Some(1))
    );
    let (_, minutes) = s.get("/api/v1/flow?line=lobby.entrance&bucket=1m");
    let per_minute: Vec<_> = minutes["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["entries"].as_u64().unwrap(), b["exits"].as_u64().unwrap()))
        .collect();
    assert_eq!(per_minute, [(0, 0), (2, 1), (1, 0)]);
    let (_, space) = s.get("/api/v1/flow?space=hall&bucket=15m");
    assert_eq!(
        (space["entries"].as_u64(), space["exits"].as_u64()),
        (Some(3), Some(1))
    );
}

#[test]
fn dwell_reports_median_and_p90_only_for_k_visits_or_more() {
    // k = 3: the first minute (2 visits) and the second (1) are too few for
    // a median, which would be one person's stay; all three together are not.
    let s = serve(|dir| state_with(dir, "[aggregates]\nk = 3\n"));
    let (status, body) = s.get("/api/v1/dwell?zone=lobby.door&bucket=1m");
    assert_eq!(status, 200, "{body}");
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["visits"], 2);
    for bucket in buckets {
        assert_eq!(bucket["median_s"], serde_json::Value::Null, "{bucket}");
        assert_eq!(bucket["p90_s"], serde_json::Value::Null, "{bucket}");
    }
    assert_eq!(body["visits"], 3);
    let median = body["median_s"].as_f64().unwrap();
    assert!((median / 40.0 - 1.0).abs() < 0.05, "{median}");
    let p90 = body["p90_s"].as_f64().unwrap();
    assert!(p90 > 50.0 && p90 < 66.0, "{p90}");
    // Nothing per person: only these keys.
    let keys: Vec<_> = buckets[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["median_s", "p90_s", "start", "visits"]);
    // At the default k (5) even the three together are withheld.
    let s = serve(state);
    let (_, body) = s.get("/api/v1/dwell?zone=lobby.door&bucket=1m");
    assert_eq!(
        (body["visits"].as_u64(), &body["median_s"]),
        (Some(3), &serde_json::Value::Null)
    );
}

#[test]
fn a_small_zone_is_read_in_quarter_hours_or_more() {
    let desk = "[cameras.lobby.zones.desk]\npolygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]\ncapacity = 1\nsmall_zone_justification = \"the hot desk's free/taken light\"\n";
    let s = serve(|dir| state_with(dir, desk));
    for path in [
        "/api/v1/occupancy/history?zone=lobby.desk&bucket=1m",
        "/api/v1/occupancy/history?zone=lobby.desk",
        "/api/v1/occupancy/history?zone=lobby.desk&bucket=5m",
        "/api/v1/dwell?zone=lobby.desk&bucket=5m",
    ] {
        let (status, body) = s.get(path);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("15m or more"),
            "{body}"
        );
    }
    for path in [
        "/api/v1/occupancy/history?zone=lobby.desk&bucket=15m",
        "/api/v1/dwell?zone=lobby.desk",
    ] {
        assert_eq!(s.get(path).0, 200, "{path}");
    }
    // A zone of ordinary capacity keeps its minutes.
    assert_eq!(
        s.get("/api/v1/occupancy/history?zone=lobby.door&bucket=1m")
            .0,
        200
    );
}

#[test]
fn space_history_has_its_own_buckets() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/occupancy/history?space=hall&bucket=15m");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["space"], "hall");
    assert_eq!(body["buckets"][0]["mean_occupancy"], 4.0);
    assert_eq!(body["buckets"][0]["max_occupancy"], 4);
}

#[test]
fn history_returns_minute_buckets_in_range() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/occupancy/history?zone=lobby.door");
    assert_eq!(status, 200, "{body}");
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["mean_occupancy"], 2.5);
    assert_eq!(buckets[0]["max_occupancy"], 4);
    assert_eq!(buckets[1]["samples"], 3);
    assert_eq!(buckets[0]["start"], "2025-11-24T15:58:00Z");
    let (_, narrow) =
        s.get("/api/v1/occupancy/history?zone=lobby.door&from=2025-11-24T15:59:00Z&to=2025-11-24T16:00:00Z");
    assert_eq!(narrow["buckets"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_requests_get_clear_errors() {
    let s = serve(state);
    let check = |path: &str, status: u16, needle: &str| {
        let (got, body) = s.get(path);
        assert_eq!(got, status, "{path}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
    };
    check(
        "/api/v1/occupancy/history",
        400,
        "`zone` (camera.zone) or `space`",
    );
    check("/api/v1/flow?line=lobby.exit", 404, "no line `lobby.exit`");
    check("/api/v1/flow?space=site", 400, "has no entrances");
    check(
        "/api/v1/flow?line=lobby.entrance&bucket=2m",
        400,
        "one of 1m, 5m, 15m, 1h, 1d",
    );
    check("/api/v1/dwell", 400, "`zone` is required");
    check(
        "/api/v1/dwell?zone=yard.nowhere",
        404,
        "no zone `yard.nowhere`",
    );
    check(
        "/api/v1/occupancy/history?zone=lobby.nowhere",
        404,
        "no zone `lobby.nowhere`",
    );
    check(
        "/api/v1/occupancy/history?zone=lobby.door&from=yesterday",
        400,
        "RFC 3339",
    );
    check(
        "/api/v1/occupancy/history?zone=lobby.door&from=2025-01-01T00:00:00Z",
        400,
        "at most 31 days",
    );
    check(
        "/api/v1/occupancy/history?zone=lobby.door&from=2025-11-24T17:00:00Z",
        400,
        "before `to`",
    );
    check("/api/v2/nothing", 404, "no such route");
    check(
        "/api/v1/flow?line=lobby.entrance&colour=red",
        400,
        "unknown field `colour`",
    );
    check(
        &format!("/api/v1/dwell?zone={}", "z".repeat(200)),
        400,
        "`zone` is longer than 128 bytes",
    );
    check(
        &format!("/api/v1/cameras/{}/snapshot", "c".repeat(200)),
        400,
        "at most 128 bytes",
    );
    check(
        &format!("/api/v1/health?{}", "x".repeat(3000)),
        414,
        "longer than 2048 bytes",
    );
    check("/api/v1/flow?line=lobby.entrance&to=%FF", 400, "");
}

/// Every route, and what each role may do with it. Adding a route to
/// `ROUTES` without adding it here fails this test, so no route ships
/// without a reviewed access rule.
const EXPECTED_ACCESS: &[(&str, &[&str])] = &[
    ("/livez", &["anyone"]),
    ("/", &["anyone"]),
    ("/ui/app.js", &["anyone"]),
    ("/ui/app.css", &["anyone"]),
    ("/api/v1/login", &["anyone"]),
    (
        "/api/v1/session",
        &["admin", "facilities", "planner", "dpo"],
    ),
    ("/api/v1/logout", &["admin", "facilities", "planner", "dpo"]),
    ("/api/v1/dashboard", &["admin", "facilities"]),
    ("/api/v1/live", &["admin", "facilities"]),
    ("/api/v1/occupancy/heatmap", &["admin", "facilities"]),
    ("/api/v1/cameras/{camera}/geometry", &["admin"]),
    ("/api/v1/cameras/{camera}/geometry", &["admin"]),
    ("/api/v1/whoami", &["admin", "facilities", "planner", "dpo"]),
    ("/api/v1/health", &["admin", "facilities"]),
    ("/api/v1/occupancy", &["admin", "facilities"]),
    ("/api/v1/occupancy/history", &["admin", "facilities"]),
    ("/api/v1/flow", &["admin", "facilities"]),
    ("/api/v1/dwell", &["admin", "facilities"]),
    ("/api/v1/cameras/{camera}/snapshot", &["admin"]),
    ("/api/v1/aggregates", &["admin", "facilities", "planner"]),
    (
        "/api/v1/openapi.json",
        &["admin", "facilities", "planner", "dpo"],
    ),
    ("/metrics", &["admin", "facilities", "planner"]),
    ("/api/v1/dpo/retention", &["admin", "dpo"]),
    ("/api/v1/dpo/audit", &["admin", "dpo"]),
    ("/api/v1/dpo/processing-record", &["admin", "dpo"]),
    ("/api/v1/dpo/notice", &["admin", "dpo"]),
    ("/api/v1/dpo/dpia", &["admin", "dpo"]),
    ("/api/v1/anomalies", &["admin", "facilities"]),
    ("/api/v1/anomalies/{id}/ack", &["admin", "facilities"]),
    ("/api/v1/validations", &["admin", "facilities"]),
    ("/api/v1/validations/{id}", &["admin", "facilities"]),
    ("/api/v1/validations/{id}/taps", &["admin", "facilities"]),
    ("/api/v1/validations/{id}/finish", &["admin", "facilities"]),
    ("/api/v1/spaces/{space}/adjust", &["admin", "facilities"]),
    ("/api/v1/cameras/{camera}/tamper/rearm", &["admin"]),
];

/// A request on `route` that succeeds for a role it admits.
fn example(route: &str) -> String {
    match route {
        "/api/v1/occupancy/history" => format!("{route}?zone=lobby.door&bucket=1h"),
        "/api/v1/flow" => format!("{route}?line=lobby.entrance&bucket=1h"),
        "/api/v1/dwell" => format!("{route}?zone=lobby.door&bucket=1h"),
        "/api/v1/aggregates" => format!("{route}?space=hall"),
        "/api/v1/occupancy/heatmap" => format!("{route}?space=hall"),
        "/api/v1/dpo/notice" => format!("{route}?camera=lobby&lang=de"),
        _ => route
            .replace("{camera}", "lobby")
            .replace("{id}", "1")
            .replace("{space}", "hall"),
    }
}

#[test]
fn auth_matrix_every_route_against_every_kind_of_caller() {
    let s = serve(state_with_snapshot);
    let listed: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    let expected: Vec<&str> = EXPECTED_ACCESS.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        listed, expected,
        "a route was added or removed: review its access rule here"
    );

    let issue = |name: &str, role, expires| {
        s.guard
            .tokens
            .create(name, role, expires, NOW - 10)
            .unwrap()
            .reveal()
            .to_string()
    };
    let expired = issue("expired", Role::Admin, Some(NOW - 1));
    let revoked = issue("revoked", Role::Admin, None);
    s.guard.tokens.revoke("revoked", NOW - 5).unwrap();
    let admin = s.tokens["admin"].clone();
    let wrong = format!("{}{}", &admin[..admin.len() - 4], "0000");

    let mut checked = 0;
    for rule in ROUTES {
        let allowed = EXPECTED_ACCESS
            .iter()
            .find(|(p, _)| *p == rule.path)
            .unwrap()
            .1;
        let path = example(rule.path);
        let method = rule.method.as_str();
        let public = allowed == ["anyone"];
        // A re-arm is accepted; it takes effect on the analytics thread. A
        // login, a validation or a geometry without its JSON body gets past
        // the access rule and then fails on the body (a login first on its
        // missing type).
        let success = if rule.path.ends_with("/rearm") {
            202
        } else if rule.path == "/api/v1/logout" {
            204
        } else if rule.path == "/api/v1/login" {
            415
        } else if rule.path == "/api/v1/validations"
            || rule.path.ends_with("/taps")
            || rule.path.ends_with("/adjust")
        {
            400
        } else if rule.path == "/api/v1/dpo/notice" {
            // The test config names no controller: no sign can be made.
            409
        } else if rule.path.starts_with("/api/v1/validations/") {
            // No session 1 is open.
            404
        } else if rule.method == Method::PUT {
            400
        } else {
            200
        };
        for (label, token) in [
            ("no token", None),
            ("wrong token", Some(wrong.as_str())),
            ("expired token", Some(expired.as_str())),
            ("revoked token", Some(revoked.as_str())),
            ("garbage", Some("hc_not-a-token")),
        ] {
            let (status, head, _) = request_as(s.addr, method, &path, token);
            if public {
                assert_eq!(status, success, "{label} on {path}");
            } else {
                assert_eq!(status, 401, "{label} on {path}");
                assert!(head.contains("www-authenticate: Bearer"), "{head}");
            }
            // Keep the lockout out of this test (tested on its own below).
            s.guard.lockout.forget();
            checked += 1;
        }
        for role in Role::ALL {
            let (status, head, _) =
                request_as(s.addr, method, &path, Some(&s.tokens[role.as_str()]));
            let admitted = public || allowed.contains(&role.as_str());
            let want = if admitted { success } else { 403 };
            assert_eq!(status, want, "{role} on {path}: {head}");
            checked += 1;
        }
        // Other methods are refused too, and never without a token.
        let other = if rule.method == Method::GET {
            "POST"
        } else {
            "GET"
        };
        let (status, _, _) = request_as(s.addr, other, &path, None);
        assert_eq!(status, if public { 405 } else { 401 }, "{other} {path}");
        let (status, _, _) = request_as(s.addr, "DELETE", &path, Some(&admin));
        assert_eq!(status, 405, "DELETE {path}");
        checked += 2;
    }
    // Unknown routes do not reveal themselves to strangers.
    assert_eq!(request_as(s.addr, "GET", "/api/v1/config", None).0, 401);
    assert_eq!(
        request_as(s.addr, "GET", "/api/v1/config", Some(&admin)).0,
        404
    );
    assert_eq!(checked, ROUTES.len() * (5 + Role::ALL.len() + 2));
}

#[test]
fn planners_read_published_cells_only() {
    let s = serve(state);
    let planner = s.tokens["planner"].clone();
    // Counts as counted (per zone, per line, by the minute) stay on site.
    for path in [
        "/api/v1/flow?line=lobby.entrance&bucket=1h",
        "/api/v1/flow?space=hall&bucket=1d",
        "/api/v1/dwell?zone=lobby.door&bucket=1d",
        "/api/v1/occupancy/history?space=hall&bucket=1h",
        "/api/v1/occupancy/history?zone=lobby.door&bucket=15m",
    ] {
        let (status, body) = get_as(s.addr, path, Some(&planner));
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = get_as(s.addr, "/api/v1/aggregates?space=hall", Some(&planner));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bucket"], "1h");
}

#[test]
fn every_route_serves_only_what_the_policy_grants_each_role_it_admits() {
    use headcount_domain::disclosure::policy::{granted, Exit};
    for rule in ROUTES {
        let access::Access::Roles(roles) = rule.access else {
            assert!(
                rule.serves.is_empty(),
                "public {} serves {:?}",
                rule.path,
                rule.serves
            );
            continue;
        };
        for role in roles {
            for class in rule.serves {
                assert!(
                    granted(Exit::Role(*role), *class).is_some(),
                    "{} {} serves {class:?} to {role}, which docs/privacy.md does not grant",
                    rule.method,
                    rule.path
                );
            }
        }
    }
    // And the table in docs/privacy.md is the policy's own.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/privacy.md"
    ))
    .expect("docs/privacy.md");
    assert!(
        doc.contains(&headcount_domain::disclosure::policy::markdown()),
        "docs/privacy.md's table differs from disclosure::policy::TABLE; paste `headcount dpo disclosure` into it"
    );
}

#[test]
fn whoami_names_the_token_never_its_secret() {
    let s = serve(state);
    let (status, body) = get_as(s.addr, "/api/v1/whoami", Some(&s.tokens["dpo"]));
    assert_eq!(status, 200);
    assert_eq!(body["name"], "dpo");
    assert_eq!(body["role"], "dpo");
    assert_eq!(body["expires_at"], "2025-11-24T17:00:00Z");
    assert!(!body.to_string().contains(&s.tokens["dpo"][20..]));
}

pub(super) fn drain(socket: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[test]
fn failures_lock_the_token_they_name_and_only_slow_the_address() {
    let s = serve(state);
    let admin = s.tokens["admin"].clone();
    let facilities = s.tokens["facilities"].clone();
    let wrong = format!("{}{}", &admin[..admin.len() - 4], "0000");
    let health = |token: &str| request_as(s.addr, "GET", "/api/v1/health", Some(token));
    for _ in 0..4 {
        assert_eq!(health(&wrong).0, 401);
    }
    // A valid request between guesses clears nothing.
    assert_eq!(health(&facilities).0, 200);
    assert_eq!(health(&wrong).0, 401);

    // The fifth failure naming the admin's token locked it: even its right
    // secret is turned away for now...
    let (status, head, body) = health(&admin);
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("retry-after: 120"), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("with this token"),
        "{body:?}"
    );
    // ...while the address that failed is only slowed: a valid token from it
    // is served at once, a wrong one answered late and with 429.
    assert_eq!(health(&facilities).0, 200);
    let started = std::time::Instant::now();
    let guess = format!("hc_{}_{}", "0".repeat(16), "0".repeat(64));
    let (status, head, _) = health(&guess);
    assert_eq!(status, 429, "{head}");
    assert!(started.elapsed() >= access::SLOWED_ANSWER_DELAY);
    // The liveness probe stays up for the service manager.
    assert_eq!(request_as(s.addr, "GET", "/livez", None).0, 200);

    let events = drain(&s.syslog);
    let admin_pseudonym = pseudonym_of(&admin);
    let failed: Vec<&String> = events
        .iter()
        .filter(|e| e.contains(" LOGIN_FAILED "))
        .collect();
    // The slowed address's late guess is not reported on its own.
    assert_eq!(failed.len(), 5, "{events:#?}");
    assert!(
        failed
            .iter()
            .all(|e| e.contains(&format!("token=\"{admin_pseudonym}\""))),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("<81>1 ")
            && e.contains(&format!(
                " LOCKOUT [headcount@32473 token=\"{admin_pseudonym}\" client=\"127.0.0.1\""
            ))),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains(" THROTTLED [headcount@32473 client=\"127.0.0.1\"")),
        "{events:#?}"
    );
    assert!(
        events.iter().all(|e| !e.contains(&admin[20..])),
        "a token leaked into the log"
    );

    // A forbidden route is reported with the token's pseudonym, not its
    // holder's name or its secret.
    assert_eq!(
        get_as(s.addr, "/api/v1/occupancy", Some(&s.tokens["planner"])).0,
        403
    );
    let events = drain(&s.syslog);
    assert!(
        events.iter().any(|e| e.contains(" ACCESS_DENIED ")
            && e.contains(&format!("token=\"{}\"", pseudonym_of(&s.tokens["planner"])))
            && e.contains("route=\"/api/v1/occupancy\"")),
        "{events:#?}"
    );
}

#[test]
fn livez_answers_503_naming_a_silent_stage_and_200_once_it_beats_again() {
    let mut board = None;
    let s = serve(|dir| {
        let state = state(dir);
        board = Some(state.health.clone());
        state
    });
    let board = board.unwrap();
    assert_eq!(request_as(s.addr, "GET", "/livez", None).0, 200);
    board.set_silent_stages(vec!["analytics".into()]);
    let (status, _, body) = request_as(s.addr, "GET", "/livez", None);
    assert_eq!(status, 503);
    assert_eq!(String::from_utf8_lossy(&body), "silent: analytics");
    board.set_silent_stages(Vec::new());
    assert_eq!(request_as(s.addr, "GET", "/livez", None).0, 200);
}
