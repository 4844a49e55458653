//! The anomaly routes on the real router and a real database: the list and
//! its filters, acknowledgement (audited, first one stands) and an admin's
//! re-arm of a camera's tamper reference.

use super::tests::{
    app_state, get_as, pseudonym_of, request_as, serve, state, Served, CONFIG, NOW,
};
use super::*;
use headcount_domain::anomaly::monitor::Change;
use headcount_domain::anomaly::{Control, Finding, Kind, Severity, Subject};
use headcount_domain::clock::{Clock, ManualClock};
use headcount_domain::config::SystemSecrets;
use headcount_domain::health::HealthBoard;

const HOUR: i64 = 3_600_000;

fn finding(kind: Kind, subject: Subject, value: f64) -> Finding {
    Finding {
        kind,
        subject,
        severity: Severity::Warning,
        value,
        threshold: 5.0,
        explanation: format!("{value} against 5"),
    }
}

/// 1: over capacity in lobby.door, open since NOW-1min; 2: loitering in
/// lobby.door NOW-3h..NOW-2h; 3: over capacity in hall NOW-30h..NOW-26h;
/// 4: a wrong-way crossing of lobby.entrance at NOW-1h.
fn seed(database: &std::path::Path) {
    let door = Subject::Zone("lobby.door".into());
    let hall = Subject::Space("hall".into());
    let done = Database::open(database)
        .unwrap()
        .record_anomalies(&[
            Change::Open {
                started: NOW - 60_000,
                finding: finding(Kind::OverCapacity, door.clone(), 12.0),
            },
            Change::Open {
                started: NOW - 3 * HOUR,
                finding: finding(Kind::Loitering, door.clone(), 6.5),
            },
            Change::Close {
                kind: Kind::Loitering,
                subject: door,
                started: NOW - 3 * HOUR,
                ended: NOW - 2 * HOUR,
            },
            Change::Open {
                started: NOW - 30 * HOUR,
                finding: finding(Kind::OverCapacity, hall.clone(), 60.0),
            },
            Change::Close {
                kind: Kind::OverCapacity,
                subject: hall,
                started: NOW - 30 * HOUR,
                ended: NOW - 26 * HOUR,
            },
            Change::Instant {
                at: NOW - HOUR,
                finding: finding(Kind::WrongWay, Subject::Line("lobby.entrance".into()), 1.0),
            },
        ])
        .unwrap();
    assert_eq!(done.last().unwrap().1.id, 4);
}

fn seeded(dir: &std::path::Path) -> AppState {
    let state = state(dir);
    seed(&state.database);
    state
}

fn as_role(s: &Served, role: &str, path: &str) -> (u16, serde_json::Value) {
    get_as(s.addr, path, Some(&s.tokens[role]))
}

fn post_as(s: &Served, role: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = request_as(s.addr, "POST", path, Some(&s.tokens[role]));
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body))),
    )
}

fn ids(body: &serde_json::Value) -> Vec<i64> {
    body["anomalies"]
        .as_array()
        .unwrap_or_else(|| panic!("no anomalies in {body}"))
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn the_list_shows_open_and_recent_anomalies_by_default() {
    let s = serve(seeded);
    let (status, body) = as_role(&s, "facilities", "/api/v1/anomalies");
    assert_eq!(status, 200, "{body}");
    // Open, and ended within 24 h; not the one ended 26 h ago.
    assert_eq!(ids(&body), [1, 4, 2]);
    assert_eq!(body["open"], 1);
    let first = &body["anomalies"][0];
    assert_eq!(first["type"], "over_capacity");
    assert_eq!(first["subject_type"], "zone");
    assert_eq!(first["subject"], "lobby.door");
    assert_eq!(first["severity"], "warning");
    assert_eq!(first["value"], 12.0);
    assert_eq!(first["threshold"], 5.0);
    assert_eq!(first["explanation"], "12 against 5");
    assert_eq!(first["started_at"], "2025-11-24T15:59:00Z");
    assert_eq!(first["started_ms"], NOW - 60_000);
    assert_eq!(first["ended_at"], serde_json::Value::Null);
    assert_eq!(first["acknowledged_by"], serde_json::Value::Null);
    let instant = &body["anomalies"][1];
    assert_eq!(instant["type"], "wrong_way");
    assert_eq!(instant["subject_type"], "line");
    assert_eq!(instant["started_at"], "2025-11-24T15:00:00Z");
    assert_eq!(instant["ended_at"], "2025-11-24T15:00:00Z");
    assert_eq!(body["anomalies"][2]["ended_at"], "2025-11-24T14:00:00Z");
    // The admin sees the same.
    assert_eq!(ids(&as_role(&s, "admin", "/api/v1/anomalies").1), [1, 4, 2]);
}

#[test]
fn the_list_filters_by_state_type_since_and_limit() {
    let s = serve(seeded);
    let list = |query: &str| {
        let (status, body) = as_role(&s, "facilities", &format!("/api/v1/anomalies?{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        body
    };
    let open = list("state=open");
    assert_eq!(ids(&open), [1]);
    assert_eq!(open["open"], 1);
    let all = list("state=all");
    assert_eq!(ids(&all), [1, 4, 2, 3]);
    assert_eq!(all["open"], 1);
    assert_eq!(ids(&list("state=recent")), [1, 4, 2]);
    assert_eq!(ids(&list("type=wrong_way")), [4]);
    assert_eq!(ids(&list("type=over_capacity")), [1]);
    assert_eq!(ids(&list("type=over_capacity&state=all")), [1, 3]);
    assert!(ids(&list("type=stream_loss&state=all")).is_empty());
    assert_eq!(ids(&list("state=all&limit=2")), [1, 4]);
    // Since: open, or ended at or after it.
    assert_eq!(ids(&list("since=2025-11-24T14:30:00Z")), [1, 4]);
    assert_eq!(
        ids(&list("state=all&since=2025-11-23T00:00:00Z")),
        [1, 4, 2, 3]
    );
}

#[test]
fn bad_list_parameters_are_named_in_a_400() {
    let s = serve(seeded);
    for (query, parameter) in [
        ("state=closed", "state"),
        ("type=fire", "type"),
        ("type=OverCapacity", "type"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
    ] {
        let (status, body) = as_role(&s, "facilities", &format!("/api/v1/anomalies?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(parameter), "{query}: {message}");
    }
    let (_, body) = as_role(&s, "facilities", "/api/v1/anomalies?state=closed");
    assert_eq!(
        body["error"],
        "`state` must be open, recent or all, not `closed`"
    );
    let (_, body) = as_role(&s, "facilities", "/api/v1/anomalies?type=fire");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("`type` must be one of over_capacity, loitering,")
            && message.ends_with("not `fire`"),
        "{message}"
    );
    // An unknown parameter is refused too.
    let (status, _) = as_role(&s, "facilities", "/api/v1/anomalies?kind=loitering");
    assert_eq!(status, 400);
}

#[test]
fn planners_and_the_dpo_may_not_see_anomalies() {
    let s = serve(seeded);
    for role in ["planner", "dpo"] {
        let (status, body) = as_role(&s, role, "/api/v1/anomalies");
        assert_eq!(status, 403, "{role}: {body}");
        let (status, _) = post_as(&s, role, "/api/v1/anomalies/1/ack");
        assert_eq!(status, 403, "{role}");
    }
    // Nothing was acknowledged by the refused requests.
    let (_, body) = as_role(&s, "admin", "/api/v1/anomalies?state=all");
    assert!(body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["acknowledged_by"].is_null()));
}

#[test]
fn facilities_acknowledge_in_their_name_and_the_first_stands() {
    let s = serve(seeded);
    let (status, body) = post_as(&s, "facilities", "/api/v1/anomalies/2/ack");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 2);
    assert_eq!(body["type"], "loitering");
    assert_eq!(body["acknowledged_by"], "facilities");
    assert_eq!(body["acknowledged_ms"], NOW);
    assert_eq!(body["started_at"], "2025-11-24T13:00:00Z");
    // The admin's later acknowledgement keeps the first.
    let (status, body) = post_as(&s, "admin", "/api/v1/anomalies/2/ack");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged_by"], "facilities");
    // The list shows it.
    let (_, list) = as_role(&s, "admin", "/api/v1/anomalies");
    let two = list["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == 2)
        .unwrap();
    assert_eq!(two["acknowledged_by"], "facilities");
    // An open one can be acknowledged; it stays open.
    let (status, body) = post_as(&s, "admin", "/api/v1/anomalies/1/ack");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged_by"], "admin");
    assert_eq!(body["ended_at"], serde_json::Value::Null);

    // The request is in the audit log, under the caller's pseudonym.
    let (status, page) = as_role(&s, "dpo", "/api/v1/dpo/audit");
    assert_eq!(status, 200, "{page}");
    let acks: Vec<_> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "POST /api/v1/anomalies/{id}/ack")
        .collect();
    assert_eq!(acks.len(), 3, "{page}");
    assert_eq!(acks[0]["actor"], pseudonym_of(&s.tokens["facilities"]));
    assert_eq!(acks[0]["actor_name"], "facilities");
    assert_eq!(acks[0]["role"], "facilities");
    assert_eq!(acks[0]["action"], "api_access");
    assert_eq!(acks[0]["detail"]["status"], 200);
    assert_eq!(acks[1]["actor_name"], "admin");
}

#[test]
fn acknowledging_an_unknown_or_malformed_id_fails() {
    let s = serve(seeded);
    let (status, body) = post_as(&s, "facilities", "/api/v1/anomalies/99/ack");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no anomaly 99");
    let (status, body) = post_as(&s, "facilities", "/api/v1/anomalies/two/ack");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "`two` is not an anomaly id (a number)");
    // GET is not how one acknowledges.
    let (status, _) = as_role(&s, "facilities", "/api/v1/anomalies/1/ack");
    assert_eq!(status, 405);
}

/// `state` with yard's tamper detection off, re-arms seen through `control`.
fn rearmable(dir: &std::path::Path, control: Control) -> AppState {
    let tamper = "[cameras.yard.tamper]\nsensitivity = \"off\"\n\
                  [cameras.lobby.tamper]\nlearning_secs = 45\n";
    let text = format!("{CONFIG}\n{tamper}");
    let config = Config::parse(&text, dir, &SystemSecrets).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let health = HealthBoard::new(config.cameras.iter().map(|c| &c.id));
    let occupancy = headcount_domain::analytics::OccupancyBoard::new(&config);
    AppState {
        anomaly_control: control,
        ..app_state(dir, config, occupancy, health, clock)
    }
}

#[test]
fn an_admin_rearms_a_camera_with_tamper_detection() {
    let control = Control::default();
    let s = serve({
        let control = control.clone();
        move |dir| rearmable(dir, control)
    });
    let path = "/api/v1/cameras/lobby/tamper/rearm";
    // Facilities may not.
    let (status, _) = post_as(&s, "facilities", path);
    assert_eq!(status, 403);
    assert!(control.take_rearms().is_empty());
    let (status, body) = post_as(&s, "admin", path);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["camera"], "lobby");
    assert_eq!(body["learning_secs"], 45.0);
    let rearms = control.take_rearms();
    assert_eq!(rearms.len(), 1);
    assert_eq!(&*rearms[0], "lobby");
    assert!(control.take_rearms().is_empty());

    let (status, body) = post_as(&s, "admin", "/api/v1/cameras/attic/tamper/rearm");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no camera `attic`");
    let (status, body) = post_as(&s, "admin", "/api/v1/cameras/yard/tamper/rearm");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cameras.yard.tamper.sensitivity = \"off\""),
        "{body}"
    );
    assert!(control.take_rearms().is_empty());
}

#[test]
fn the_default_learning_time_is_reported() {
    let control = Control::default();
    let s = serve({
        let control = control.clone();
        move |dir| AppState {
            anomaly_control: control,
            ..state(dir)
        }
    });
    let (status, body) = post_as(&s, "admin", "/api/v1/cameras/yard/tamper/rearm");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["learning_secs"], 60.0);
    assert_eq!(control.take_rearms().len(), 1);
}
