//! The real API router, in process, with arbitrary request targets.
//!
//! Input: the first byte picks the method (bits 0-1) and the token sent
//! (the rest, mod 6: none, admin, facilities, planner, dpo, garbage); the
//! remaining bytes, as UTF-8, are the request target (path and query).
//! Invariants: never a 5xx; without a valid token every route but the
//! public ones (`/livez`, the dashboard's files, the login) answers 401 (or
//! 414 for an over-long target); a 4xx body is JSON with an `error` string;
//! a 405 says which methods are allowed. A live event stream never ends:
//! its body is not read.

#![no_main]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode, Uri};
use axum::Router;
use headcount_api::{access, router, AppState, ROUTES};
use headcount_domain::analytics::{
    Deltas, DwellDelta, DwellHistogram, FlowDelta, OccupancyBoard, OccupancyDelta, Scope,
};
use headcount_domain::clock::{Clock, ManualClock, UnixMs};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{Config, SecretSource};
use headcount_domain::health::{CameraState, HealthBoard};
use headcount_domain::security::events::SyslogTarget;
use headcount_domain::security::lockout::LockoutPolicy;
use headcount_domain::security::{Lockout, RateLimit, RatePolicy, Role, SecurityLog};
use headcount_domain::snapshot::SnapshotBoard;
use headcount_store::publication::Publication;
use headcount_store::{Database, TokenStore, Writer};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const NOW: UnixMs = 1_764_000_000_000; // 2025-11-24T16:00:00Z

/// Two cameras with zones and a line, and a space of each kind (as the
/// API's own tests use).
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

/// Not a token the store issued, but shaped like one.
const GARBAGE_TOKEN: &str =
    "hc_0123456789abcdef_00000000000000000000000000000000000000000000000000000000deadbeef";

struct NoSecrets;

impl SecretSource for NoSecrets {
    fn env(&self, _: &str) -> Option<String> {
        None
    }
    fn file(&self, _: &Path) -> Option<String> {
        None
    }
}

/// Built once per process: the runtime, the router and its tokens.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// Indexed by the token choice: none, admin, facilities, planner, dpo, garbage.
    tokens: [Option<String>; 6],
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Every answered request is audited with a disk sync: on tmpfs
        // where there is one, so that the fuzzer is not bound by the disk.
        let dir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm"),
            false => tempfile::tempdir(),
        }
        .expect("temp dir");
        let state = state(dir.path());
        let mut tokens: [Option<String>; 6] = Default::default();
        for (i, role) in Role::ALL.into_iter().enumerate() {
            let issued = state
                .guard
                .tokens
                .create(role.as_str(), role, Some(NOW + 3_600_000), NOW - 1)
                .expect("token");
            tokens[i + 1] = Some(issued.reveal().to_string());
        }
        tokens[5] = Some(GARBAGE_TOKEN.to_string());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture {
            runtime,
            router: router(state),
            tokens,
            _dir: dir,
        }
    })
}

/// Live boards and a database with a few minutes of occupancy, flow and dwell.
fn state(dir: &Path) -> AppState {
    let config = Config::parse(CONFIG, dir, &NoSecrets).expect("fixture config");
    let health = HealthBoard::new(config.cameras.iter().map(|c| &c.id));
    health.update(&"lobby".into(), |h| {
        h.state = CameraState::Streaming;
        h.last_frame = Some(std::time::Instant::now());
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
    let mut db = Database::open(&database).expect("database");
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
    let mut histogram = DwellHistogram::default();
    for s in [20.0, 40.0, 60.0] {
        histogram.add(s);
    }
    db.apply(&Deltas {
        occupancy: vec![
            zone(NOW - 120_000, 4, 10, 4),
            zone(NOW - 60_000, 3, 2, 1),
            OccupancyDelta {
                scope: Scope::Space("hall".into()),
                ..zone(NOW - 60_000, 2, 8, 4)
            },
        ],
        flows: vec![FlowDelta {
            camera: "lobby".into(),
            line: "entrance".into(),
            bucket_start: NOW - 120_000,
            entries: 2,
            exits: 1,
        }],
        dwell: vec![DwellDelta {
            camera: "lobby".into(),
            zone: "door".into(),
            bucket_start: NOW - 120_000,
            histogram,
        }],
        entrance_counts: vec![],
    })
    .expect("fixture data");
    // Roll up and publish what is there, for /api/v1/aggregates and /metrics.
    db.roll_up(NOW, 0).expect("fixture rollup");
    let publication = Publication::from_config(&config).expect("fixture publication");
    db.publish(NOW, &publication).expect("fixture publication");
    drop(db);
    let (writer, _) =
        Writer::spawn(Database::open(&database).expect("database"), None).expect("storage writer");

    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let tokens = TokenStore::open(&database, dir).expect("token store");
    let guard = Arc::new(access::Guard {
        tokens: Arc::new(tokens),
        // The fuzzer fails to authenticate millions of times: never lock it out.
        sessions: headcount_api::session::Sessions::new(false).expect("random"),
        lockout: Lockout::new(LockoutPolicy {
            max_failures: u32::MAX,
            window_ms: 1,
            lock_ms: 1,
        }),
        // Nor rate-limit it: every input should reach its handler.
        rate: RateLimit::new(RatePolicy {
            burst: u32::MAX,
            per_sec: 1e9,
        }),
        events: Arc::new(SecurityLog::new(SyslogTarget::None, clock.clone())),
    });
    AppState {
        site: "fuzz".into(),
        occupancy,
        health,
        database,
        clock,
        snapshots: SnapshotBoard::new(false),
        guard,
        config: LiveConfig::new(config, None),
        writer,
        anomaly_control: Default::default(),
        live_streams: Default::default(),
        validations: Default::default(),
        adjustments: Default::default(),
        storage: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, target)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return;
    };
    let method =
        [Method::GET, Method::POST, Method::DELETE, Method::HEAD][usize::from(choice & 3)].clone();
    let token_choice = usize::from(choice >> 2) % 6;
    let fx = fixture();

    let public = ROUTES
        .iter()
        .any(|r| r.path == uri.path() && r.access == access::Access::Public);
    let authenticated = (1..=4).contains(&token_choice);
    let mut request = Request::builder().method(method.clone()).uri(uri.clone());
    if let Some(token) = &fx.tokens[token_choice] {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request.body(Body::empty()).expect("request");
    // The auth middleware reads the peer address, as `axum::serve` records it.
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50_000))));

    let (status, allow, body) = fx.runtime.block_on(async {
        let response = fx
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let allow = response.headers().contains_key(header::ALLOW);
        let live = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
        let body = if live {
            Default::default()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body")
        };
        (status, allow, body)
    });

    let what = format!("{method} {uri} (token {token_choice}) -> {status}");
    assert!(
        !status.is_server_error(),
        "{what}: {}",
        String::from_utf8_lossy(&body)
    );
    if !public && !authenticated {
        assert!(
            status.as_u16() == 401 || status.as_u16() == 414,
            "{what}: a non-public route without a valid token"
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        assert!(allow, "{what}: 405 without `Allow`");
    }
    if status.is_client_error() && method != Method::HEAD {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{what}: the body is not JSON: {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            json["error"].is_string(),
            "{what}: no `error` string in {json}"
        );
    }
});
