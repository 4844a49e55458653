//! The governance routes on the real router and a real database: published
//! aggregates with suppression and noise stored once per cell, the audit
//! trail of every answer, OpenMetrics, the OpenAPI document, and the DPO's
//! views.

use super::tests::{app_state, get_as, pseudonym_of, request_as, serve, Served, CONFIG, NOW};
use super::*;
use headcount_domain::analytics::{Deltas, FlowDelta, OccupancyDelta};
use headcount_domain::clock::{Clock, ManualClock};
use headcount_domain::config::SystemSecrets;
use headcount_domain::health::HealthBoard;
use headcount_store::publication::Publication;

const MINUTE: i64 = 60_000;
/// 14:00 UTC on the test day (NOW is 16:00).
const HOUR_14: i64 = NOW - 2 * 3_600_000;

/// A database with one hour of the hall's entrance: 3 entries in the first
/// quarter (small), 8 in the second, nobody in the other two; occupancy
/// peaking at 2 in the first quarter and 9 in the second. Rolled up at NOW.
fn governed(dir: &std::path::Path, extra_config: &str) -> AppState {
    let config = Config::parse(&format!("{CONFIG}\n{extra_config}"), dir, &SystemSecrets).unwrap();
    let mut db = Database::open(&dir.join("h.db")).unwrap();
    let flow = |minute: i64, entries| FlowDelta {
        camera: "lobby".into(),
        line: "entrance".into(),
        bucket_start: HOUR_14 + minute * MINUTE,
        entries,
        exits: 0,
    };
    let hall = |minute: i64, max| OccupancyDelta {
        scope: Scope::Space("hall".into()),
        bucket_start: HOUR_14 + minute * MINUTE,
        samples: 10,
        occupancy_sum: 10 * u64::from(max),
        occupancy_max: max,
    };
    let mut deltas = Deltas::default();
    for minute in 0..60 {
        let entries = match minute {
            5 => 3,
            20 => 5,
            25 => 3,
            _ => 0,
        };
        deltas.flows.push(flow(minute, entries));
        deltas
            .occupancy
            .push(hall(minute, if minute < 15 { 2 } else { 9 }));
    }
    db.apply(&deltas).unwrap();
    db.roll_up(NOW, 120_000).unwrap();
    db.publish(NOW, &Publication::from_config(&config).unwrap())
        .unwrap();
    drop(db);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let health = HealthBoard::new(config.cameras.iter().map(|c| &c.id));
    let occupancy = headcount_domain::analytics::OccupancyBoard::new(&config);
    app_state(dir, config, occupancy, health, clock)
}

fn as_role(s: &Served, role: &str, path: &str) -> (u16, serde_json::Value) {
    get_as(s.addr, path, Some(&s.tokens[role]))
}

fn bucket_at<'a>(body: &'a serde_json::Value, start: &str) -> &'a serde_json::Value {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["start"] == start)
        .unwrap_or_else(|| panic!("no bucket at {start} in {body}"))
}

#[test]
fn small_counts_are_withheld_and_cannot_be_derived_from_coarser_buckets() {
    let s = serve(|dir| governed(dir, ""));
    let range = "from=2025-11-24T14:00:00Z&to=2025-11-24T15:00:00Z";
    let (status, quarters) = as_role(
        &s,
        "planner",
        &format!("/api/v1/aggregates?space=hall&bucket=15m&{range}"),
    );
    assert_eq!(status, 200, "{quarters}");
    assert_eq!(quarters["k"], 5);
    assert_eq!(quarters["buckets"].as_array().unwrap().len(), 4);
    let first = bucket_at(&quarters, "2025-11-24T14:00:00Z");
    assert_eq!(first["entries"], serde_json::Value::Null);
    assert_eq!(first["occupancy_peak"], serde_json::Value::Null);
    assert_eq!(
        first["withheld"],
        serde_json::json!(["entries", "exits", "occupancy"])
    );
    // Per space only: no entrance is published on its own.
    assert!(first.get("entrances").is_none(), "{first}");
    let second = bucket_at(&quarters, "2025-11-24T14:15:00Z");
    assert_eq!(second["entries"], 8);
    assert_eq!(second["occupancy_peak"], 9);
    // Nobody came in: a zero is withheld like the 3, and says as little.
    let quiet = bucket_at(&quarters, "2025-11-24T14:30:00Z");
    assert_eq!(quiet["entries"], serde_json::Value::Null);
    assert_eq!(quiet["withheld"], serde_json::json!(["entries", "exits"]));
    assert_eq!(quiet["occupancy_peak"], 9);

    // The hour (11 entries) would give away the withheld quarters as
    // 11 - 8 = 3: it is withheld too, and so is its occupancy.
    let (status, hours) = as_role(
        &s,
        "planner",
        &format!("/api/v1/aggregates?space=hall&bucket=1h&{range}"),
    );
    assert_eq!(status, 200, "{hours}");
    let hour = bucket_at(&hours, "2025-11-24T14:00:00Z");
    assert_eq!(hour["entries"], serde_json::Value::Null, "{hour}");
    assert_eq!(hour["exits"], serde_json::Value::Null);
    assert_eq!(hour["occupancy_mean"], serde_json::Value::Null);

    // The same cells as CSV, withheld ones empty and named.
    let (status, head, body) = request_as(
        s.addr,
        "GET",
        &format!("/api/v1/aggregates?space=hall&bucket=15m&format=csv&{range}"),
        Some(&s.tokens["planner"]),
    );
    assert_eq!(status, 200);
    assert!(head.contains("text/csv"), "{head}");
    let csv = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "space,start,end,entries,exits,occupancy_mean,occupancy_peak,withheld,epsilon"
    );
    assert!(
        lines.contains(
            &"hall,2025-11-24T14:00:00Z,2025-11-24T14:15:00Z,,,,,entries exits occupancy,"
        ),
        "{csv}"
    );
    assert!(
        lines.contains(&"hall,2025-11-24T14:15:00Z,2025-11-24T14:30:00Z,8,,9,9,exits,"),
        "{csv}"
    );
}

#[test]
fn planners_cannot_ask_for_fine_or_unknown_buckets() {
    let s = serve(|dir| governed(dir, ""));
    for (path, want) in [
        ("/api/v1/aggregates?space=hall&bucket=1m", 400),
        ("/api/v1/aggregates?space=hall&bucket=5m", 400),
        ("/api/v1/aggregates?space=nowhere", 404),
        ("/api/v1/aggregates", 400),
        ("/api/v1/aggregates?space=hall&format=xml", 400),
        ("/api/v1/aggregates?space=hall&zone=lobby.door", 400),
        ("/api/v1/aggregates?space=hall&from=2025-11-24T14:00:00Z&to=2025-11-24T14:10:00Z&bucket=15m", 400),
    ] {
        let (status, body) = as_role(&s, "planner", path);
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

#[test]
fn noise_is_stored_once_per_cell_so_repeats_and_other_callers_read_one_value() {
    let extra = "[aggregates]\ndifferential_privacy = true\nepsilon = 0.5\n";
    let s = serve(|dir| governed(dir, extra));
    let path = "/api/v1/aggregates?space=hall&bucket=15m&from=2025-11-24T14:00:00Z&to=2025-11-24T15:00:00Z";
    let (status, first) = as_role(&s, "planner", path);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["differential_privacy"]["mechanism"], "laplace");
    assert_eq!(first["differential_privacy"]["epsilon"], 0.5);
    assert_eq!(first["differential_privacy"]["scale"], 8.0);
    // Withheld cells stay withheld: noise is only ever added to published ones.
    assert_eq!(
        bucket_at(&first, "2025-11-24T14:00:00Z")["entries"],
        serde_json::Value::Null
    );
    assert_eq!(bucket_at(&first, "2025-11-24T14:15:00Z")["epsilon"], 0.5);
    // Repeats and other roles read the very same draw, never a fresh one.
    for role in ["planner", "facilities", "admin"] {
        for _ in 0..5 {
            let (status, again) = as_role(&s, role, path);
            assert_eq!(status, 200);
            assert_eq!(again["buckets"], first["buckets"], "{role}");
        }
    }
    // Reading spends nothing: the ledger holds one charge per release.
    let db = Database::open_read_only(&s.dir.path().join("h.db")).unwrap();
    let ledger = db.privacy_ledger(0, i64::MAX).unwrap();
    let released = db
        .published_aggregates(900_000, "hall", 0, i64::MAX)
        .unwrap()
        .iter()
        .chain(
            &db.published_aggregates(3_600_000, "hall", 0, i64::MAX)
                .unwrap(),
        )
        .filter(|r| r.epsilon.is_some())
        .count() as u64;
    assert!(released >= 1);
    assert_eq!(ledger.iter().map(|d| d.releases).sum::<u64>(), released);
    assert_eq!(
        ledger.iter().map(|d| d.spent).sum::<f64>(),
        released as f64 * 0.5
    );
}

#[test]
fn every_answer_is_in_the_audit_log_before_it_leaves() {
    let s = serve(|dir| governed(dir, ""));
    let (status, body) = as_role(&s, "planner", "/api/v1/aggregates?space=hall&bucket=15m&from=2025-11-24T14:00:00Z&to=2025-11-24T15:00:00Z");
    assert_eq!(status, 200, "{body}");
    assert_eq!(as_role(&s, "planner", "/api/v1/health").0, 403);
    let (status, page) = as_role(&s, "dpo", "/api/v1/dpo/audit");
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let find = |target: &str, status: u64| {
        entries
            .iter()
            .find(|e| e["target"] == target && e["detail"]["status"] == status)
            .unwrap_or_else(|| panic!("no {target} {status} in {page}"))
    };
    let read = find("GET /api/v1/aggregates", 200);
    // Under the token's pseudonym; the DPO's view adds the name from the
    // token table.
    assert_eq!(read["actor"], pseudonym_of(&s.tokens["planner"]));
    assert_eq!(read["actor_name"], "planner");
    assert_eq!(read["role"], "planner");
    assert_eq!(read["action"], "api_access");
    assert_eq!(read["rows"], 4);
    assert!(read["detail"]["query"]
        .as_str()
        .unwrap()
        .contains("space=hall"));
    let denied = find("GET /api/v1/health", 403);
    // Issuing the test's tokens was recorded, in the same chain.
    assert!(
        entries.iter().any(|e| e["action"] == "token_change"
            && e["target"] == pseudonym_of(&s.tokens["planner"])
            && e["target_name"] == "planner"
            && e["detail"]["change"] == "created"
            && e["detail"]["role"] == "planner"),
        "{page}"
    );
    // A CSV download is recorded as an export.
    let (status, _, _) = request_as(
        s.addr,
        "GET",
        "/api/v1/aggregates?space=hall&format=csv",
        Some(&s.tokens["planner"]),
    );
    assert_eq!(status, 200);
    let (_, all) = as_role(&s, "dpo", "/api/v1/dpo/audit");
    assert!(
        all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "export" && e["actor_name"] == "planner"),
        "{all}"
    );
    assert_eq!(denied["rows"], 0);
    // The DPO's own read is logged too: the next page shows it.
    let after = entries.last().unwrap()["seq"].as_u64().unwrap();
    let (_, next) = as_role(&s, "dpo", &format!("/api/v1/dpo/audit?after={after}"));
    assert_eq!(next["entries"][0]["target"], "GET /api/v1/dpo/audit");
    assert_eq!(next["entries"][0]["rows"], entries.len() as u64);
}

#[test]
fn openapi_describes_exactly_the_routes_with_their_roles() {
    let s = serve(|dir| governed(dir, ""));
    let (status, doc) = as_role(&s, "planner", "/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{m} {path}"))
        })
        .collect();
    assert_eq!(documented.len(), ROUTES.len(), "{documented:?}");
    for rule in ROUTES {
        let method = rule.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][rule.path][method.as_str()];
        assert!(op.is_object(), "{} is not documented", rule.path);
        let roles: Vec<&str> = match rule.access {
            access::Access::Public => vec![],
            access::Access::Roles(roles) => roles.iter().map(|r| r.as_str()).collect(),
        };
        let listed: Vec<&str> = op["x-roles"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(listed, roles, "{}", rule.path);
    }
}

#[test]
fn metrics_are_openmetrics_with_published_values_only() {
    let s = serve(|dir| {
        let state = governed(dir, "");
        state.health.update(&"lobby".into(), |h| {
            h.state = headcount_domain::health::CameraState::Streaming;
            h.frames_analysed = 42;
        });
        state
    });
    let (status, head, body) = request_as(s.addr, "GET", "/metrics", Some(&s.tokens["planner"]));
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("headcount_camera_up{site=\"test\",camera=\"lobby\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("headcount_frames_analysed_total{site=\"test\",camera=\"lobby\"} 42"),
        "{text}"
    );
    // The newest hour (14:00) is withheld: no value, three withheld measures.
    assert!(
        text.contains("headcount_space_withheld{site=\"test\",space=\"hall\",bucket=\"1h\"} 3"),
        "{text}"
    );
    assert!(
        !text.contains("headcount_space_entries{site=\"test\",space=\"hall\",bucket=\"1h\"}"),
        "{text}"
    );
    // The newest quarter (14:45) was watched and nobody came: withheld, as
    // a small count would be; its occupancy (9) is published.
    assert!(
        !text.contains("headcount_space_entries{site=\"test\",space=\"hall\",bucket=\"15m\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "headcount_space_occupancy_peak{site=\"test\",space=\"hall\",bucket=\"15m\"} 9"
        ),
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(name.starts_with("headcount_"), "{line}");
        assert!(!line.contains("track"), "{line}");
    }
}

#[test]
fn the_dpo_sees_every_class_its_limits_and_the_deletion_receipts() {
    let extra = "[retention]\naggregates_1m = \"1h\"\naudit_log = \"5y\"\n[retention.justification]\naudit_log = \"accounting law keeps access records 5 years\"\n";
    let s = serve(|dir| {
        let state = governed(dir, extra);
        // Sweep: minutes older than an hour go, once rolled up.
        let mut db = Database::open(&state.database).unwrap();
        let receipts = db
            .sweep(
                NOW,
                &state.config.get().retention,
                &headcount_domain::security::ReceiptKey::from_bytes(&[5; 32]),
            )
            .unwrap();
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        state
    });
    let (status, body) = as_role(&s, "dpo", "/api/v1/dpo/retention");
    assert_eq!(status, 200, "{body}");
    let classes = body["classes"].as_array().unwrap();
    assert_eq!(
        classes.len(),
        headcount_domain::retention::DataClass::ALL.len()
    );
    let class = |key: &str| classes.iter().find(|c| c["class"] == key).unwrap();
    let minutes = class("aggregates_1m");
    assert_eq!(minutes["limit"], "1h");
    assert_eq!(minutes["maximum"], "31d");
    // 60 minutes of flows and 60 of occupancy, all before 15:00 (NOW - 1 h).
    assert_eq!(minutes["last_sweep"]["rows"], 120);
    assert_eq!(minutes["rows"], 0);
    assert_eq!(
        class("audit_log")["justification"],
        "accounting law keeps access records 5 years"
    );
    assert_eq!(class("snapshots")["stored_in"], "memory");
    assert_eq!(class("events")["limit"], "72h");
    let receipt = &body["receipts"][0];
    assert_eq!(receipt["action"], "deletion");
    assert_eq!(receipt["target"], "aggregates_1m");
    assert_eq!(receipt["rows"], 120);
    assert_eq!(receipt["detail"]["hmac_sha256"].as_str().unwrap().len(), 64);

    // The minutes are gone, yet history in coarser buckets is still served,
    // from the rollups (facilities see exact counts; they are not external).
    let range = "from=2025-11-24T14:00:00Z&to=2025-11-24T16:00:00Z";
    let (status, flow) = as_role(
        &s,
        "facilities",
        &format!("/api/v1/flow?line=lobby.entrance&bucket=1h&{range}"),
    );
    assert_eq!(status, 200, "{flow}");
    assert_eq!(flow["entries"], 11, "{flow}");
    let (_, quarters) = as_role(
        &s,
        "facilities",
        &format!("/api/v1/occupancy/history?space=hall&bucket=15m&{range}"),
    );
    assert_eq!(quarters["buckets"][1]["max_occupancy"], 9, "{quarters}");
    let (_, minutes) = as_role(
        &s,
        "facilities",
        &format!("/api/v1/flow?line=lobby.entrance&bucket=1m&{range}"),
    );
    assert_eq!(minutes["entries"], 0, "{minutes}");

    let (status, record) = as_role(&s, "dpo", "/api/v1/dpo/processing-record");
    assert_eq!(status, 200, "{record}");
    assert!(record
        .to_string()
        .contains("accounting law keeps access records 5 years"));
    assert_eq!(as_role(&s, "planner", "/api/v1/dpo/retention").0, 403);
}

#[test]
fn the_dpo_reads_the_sign_text_in_each_language_and_the_draft_impact_assessment() {
    let s = serve(|dir| {
        super::tests::state_with(
            dir,
            "[controller]\nname = \"ACME GmbH\"\ncontact = \"privacy@acme.example\"\n\
             [cameras.desk]\nurl = \"testsrc:ball\"\npurpose = \"desk occupancy\"\n",
        )
    });
    let text = |role: &str, path: &str| {
        let (status, _, body) = request_as(s.addr, "GET", path, Some(&s.tokens[role]));
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let (status, english) = text("dpo", "/api/v1/dpo/notice?camera=desk");
    assert_eq!(status, 200, "{english}");
    assert!(
        english.starts_with("VIDEO ANALYSIS: PEOPLE COUNTING"),
        "{english}"
    );
    let (status, german) = text("dpo", "/api/v1/dpo/notice?camera=desk&lang=de");
    assert_eq!(status, 200, "{german}");
    assert!(
        german.starts_with("VIDEOANALYSE: PERSONENZÄHLUNG"),
        "{german}"
    );
    assert_eq!(text("dpo", "/api/v1/dpo/notice?camera=desk&lang=fr").0, 400);
    assert_eq!(text("dpo", "/api/v1/dpo/notice?camera=attic").0, 404);
    // The lobby states no purpose: no sign, and the answer says what is missing.
    let (status, missing) = text("dpo", "/api/v1/dpo/notice?camera=lobby");
    assert_eq!(status, 409);
    assert!(missing.contains("cameras.lobby.purpose"), "{missing}");
    let (status, dpia) = text("dpo", "/api/v1/dpo/dpia");
    assert_eq!(status, 200);
    assert!(
        dpia.contains("Controller: ACME GmbH (privacy@acme.example)"),
        "{dpia}"
    );
    assert_eq!(text("planner", "/api/v1/dpo/dpia").0, 403);
    assert_eq!(text("facilities", "/api/v1/dpo/notice?camera=desk").0, 403);
}

#[test]
fn snapshots_past_their_lifetime_are_dropped_and_counted_for_the_dpo() {
    let s = serve(|dir| {
        let state = super::tests::state_with_snapshot(dir);
        // Taken at NOW: kept while younger than the limit, dropped after.
        assert_eq!(state.snapshots.expire(NOW - 72 * 3_600_000), 0);
        assert_eq!(state.snapshots.held(), 1);
        state
    });
    let (_, body) = as_role(&s, "dpo", "/api/v1/dpo/retention");
    let snapshots = body["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "snapshots")
        .unwrap()
        .clone();
    assert_eq!(snapshots["rows"], 1, "{snapshots}");
    assert_eq!(snapshots["limit"], "72h");
    let dir = tempfile::tempdir().unwrap();
    let state = super::tests::state_with_snapshot(dir.path());
    assert_eq!(state.snapshots.expire(NOW + 1), 1);
    assert_eq!(state.snapshots.held(), 0);
    assert!(state.snapshots.latest("lobby").is_none());
}
