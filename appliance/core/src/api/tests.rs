//! The real router on a real socket (port 0), read with plain HTTP/1.1.

use super::*;
use crate::analytics::{Deltas, DwellDelta, FlowDelta, OccupancyDelta};
use crate::clock::ManualClock;
use crate::config::SystemSecrets;
use std::io::{Read, Write};

const NOW: UnixMs = 1_764_000_000_000; // 2025-11-24T16:00:00Z

const CONFIG: &str = r#"
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

struct Served {
    addr: std::net::SocketAddr,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn serve(state_fn: impl FnOnce(&std::path::Path) -> AppState) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let state = state_fn(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, router(state)).await });
    Served {
        addr,
        _runtime: runtime,
        _dir: dir,
    }
}

/// Status, head (status line and headers) and body bytes.
fn request(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = request(addr, path);
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body))),
    )
}

fn state(dir: &std::path::Path) -> AppState {
    let config = Config::parse(CONFIG, dir, &SystemSecrets).unwrap();
    let health = HealthBoard::new(config.cameras.iter().map(|c| &c.id));
    health.update(&"lobby".into(), |h| {
        h.state = CameraState::Streaming;
        h.last_frame_at = Some(NOW - 250);
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
    AppState {
        site: "test".into(),
        occupancy,
        layout: Arc::new(Layout::new(&config)),
        health,
        database,
        clock: Arc::new(ManualClock::new(NOW)),
        snapshots: SnapshotBoard::new(false),
    }
}

/// `state` with snapshots enabled and one redacted frame of `lobby` in them.
fn state_with_snapshot(dir: &std::path::Path) -> AppState {
    use crate::detection::{Detection, Detections};
    use crate::geometry::BBox;
    use crate::redaction::{RedactionMode, RedactionPolicy, Redactor, RegionHold};
    let snapshots = SnapshotBoard::new(true);
    let frame =
        crate::frame::Frame::new("lobby".into(), 64, 48, vec![200; 64 * 48 * 3], NOW).unwrap();
    let person = Detection {
        bbox: BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 0.5,
            y2: 1.0,
        },
        score: 0.9,
    };
    let detections = Detections {
        persons: vec![person],
        faces: Ok(vec![]),
    };
    let redactor = Redactor::new(RedactionPolicy {
        mode: RedactionMode::Fill,
        full_body: true,
        ..RedactionPolicy::default()
    });
    snapshots.publish(redactor.redact(frame, &detections, &mut RegionHold::default()));
    AppState {
        snapshots,
        ..state(dir)
    }
}

#[test]
fn snapshots_are_refused_unless_enabled() {
    let s = serve(state);
    let (status, body) = get(s.addr, "/api/v1/cameras/lobby/snapshot");
    assert_eq!(status, 403);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("privacy.snapshots"));
}

#[test]
fn a_snapshot_is_the_latest_redacted_frame_as_jpeg() {
    let s = serve(state_with_snapshot);
    let (status, head, body) = request(s.addr, "/api/v1/cameras/lobby/snapshot");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: image/jpeg"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let image = image::load_from_memory(&body).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (64, 48));
    // The person (left half) is filled grey, the rest keeps its value (JPEG-near).
    let near = |p: &image::Rgb<u8>, v: u8| p.0.iter().all(|&c| c.abs_diff(v) <= 6);
    assert!(near(image.get_pixel(10, 24), 128));
    assert!(near(image.get_pixel(60, 24), 200));
    let (status, body) = get(s.addr, "/api/v1/cameras/yard/snapshot");
    assert_eq!(status, 503, "{body}");
    let (status, body) = get(s.addr, "/api/v1/cameras/attic/snapshot");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn health_reports_each_camera_with_reason_and_frame_age() {
    let s = serve(state);
    let (status, body) = get(s.addr, "/api/v1/health");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["cameras"][0]["camera"], "lobby");
    assert_eq!(body["cameras"][0]["state"], "streaming");
    assert_eq!(body["cameras"][0]["last_frame_age_ms"], 250);
    assert_eq!(body["cameras"][1]["state"], "failing");
    assert_eq!(body["cameras"][1]["reason"], "connection refused");
}

#[test]
fn occupancy_lists_every_zone_and_only_counts() {
    let s = serve(state);
    let (status, body) = get(s.addr, "/api/v1/occupancy");
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
    let (status, body) = get(s.addr, "/api/v1/flow?line=lobby.entrance&bucket=1h");
    assert_eq!(status, 200, "{body}");
    // 15:30 (a watched minute with no crossing) and 15:58-15:59 share the hour.
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "{body}");
    assert_eq!(buckets[0]["start"], "2025-11-24T15:00:00Z");
    assert_eq!(
        (body["entries"].as_u64(), body["exits"].as_u64()),
        (Some(3), Some(1))
    );
    let (_, minutes) = get(s.addr, "/api/v1/flow?line=lobby.entrance&bucket=1m");
    let per_minute: Vec<_> = minutes["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["entries"].as_u64().unwrap(), b["exits"].as_u64().unwrap()))
        .collect();
    assert_eq!(per_minute, [(0, 0), (2, 1), (1, 0)]);
    let (_, space) = get(s.addr, "/api/v1/flow?space=hall&bucket=15m");
    assert_eq!(
        (space["entries"].as_u64(), space["exits"].as_u64()),
        (Some(3), Some(1))
    );
}

#[test]
fn dwell_reports_median_and_p90_per_bucket_and_overall() {
    let s = serve(state);
    let (status, body) = get(s.addr, "/api/v1/dwell?zone=lobby.door&bucket=1m");
    assert_eq!(status, 200, "{body}");
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["visits"], 2);
    assert_eq!(body["visits"], 3);
    let median = body["median_s"].as_f64().unwrap();
    assert!((median / 40.0 - 1.0).abs() < 0.05, "{median}");
    let p90 = body["p90_s"].as_f64().unwrap();
    assert!(p90 > 50.0 && p90 < 66.0, "{p90}");
    // Nothing per person: only these keys.
    let keys: Vec<_> = buckets[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["median_s", "p90_s", "start", "visits"]);
}

#[test]
fn space_history_has_its_own_buckets() {
    let s = serve(state);
    let (status, body) = get(s.addr, "/api/v1/occupancy/history?space=hall&bucket=15m");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["space"], "hall");
    assert_eq!(body["buckets"][0]["mean_occupancy"], 4.0);
    assert_eq!(body["buckets"][0]["max_occupancy"], 4);
}

#[test]
fn history_returns_minute_buckets_in_range() {
    let s = serve(state);
    let (status, body) = get(s.addr, "/api/v1/occupancy/history?zone=lobby.door");
    assert_eq!(status, 200, "{body}");
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0]["mean_occupancy"], 2.5);
    assert_eq!(buckets[0]["max_occupancy"], 4);
    assert_eq!(buckets[1]["samples"], 3);
    assert_eq!(buckets[0]["start"], "2025-11-24T15:58:00Z");
    let (_, narrow) =
        get(s.addr, "/api/v1/occupancy/history?zone=lobby.door&from=2025-11-24T15:59:00Z&to=2025-11-24T16:00:00Z");
    assert_eq!(narrow["buckets"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_requests_get_clear_errors() {
    let s = serve(state);
    let check = |path: &str, status: u16, needle: &str| {
        let (got, body) = get(s.addr, path);
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
}
