//! The audit log kept minimal, on the real router and a real database:
//! tokens named by pseudonym only, identical reads coalesced, a rate limit
//! per token whose refusals are counted.

use super::access::Guard;
use super::session::Sessions;
use super::tests::{drain, get_as, pseudonym_of, request_as, serve, state, NOW};
use super::AppState;
use headcount_domain::clock::ManualClock;
use headcount_domain::security::lockout::LockoutPolicy;
use headcount_domain::security::{Lockout, RateLimit, RatePolicy, Role};
use std::sync::Arc;

/// Every stored column of every audit entry, as one text.
fn stored_log(database: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(database).unwrap();
    conn.query_row(
        "SELECT group_concat(seq || ' ' || at_ms || ' ' || actor || ' ' || role || ' ' || action
                 || ' ' || target || ' ' || rows || ' ' || detail, char(10)) FROM audit_log",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn the_audit_log_and_security_events_name_tokens_by_pseudonym_only() {
    let s = serve(state);
    let name = "alice.lindqvist@example.org";
    let issued = s
        .guard
        .tokens
        .create(name, Role::Facilities, None, NOW - 1)
        .unwrap();
    let alice = pseudonym_of(issued.reveal());
    assert_eq!(
        get_as(s.addr, "/api/v1/occupancy", Some(issued.reveal())).0,
        200
    );
    // A route her role may not use: a security event.
    assert_eq!(
        get_as(s.addr, "/api/v1/dpo/audit", Some(issued.reveal())).0,
        403
    );
    let rotated = s.guard.tokens.rotate(name, NOW).unwrap();
    assert_eq!(
        rotated.replaced.as_deref().map(headcount_store::pseudonym),
        Some(alice.clone())
    );
    let (status, whoami) = get_as(s.addr, "/api/v1/whoami", Some(rotated.reveal()));
    assert_eq!(status, 200);
    assert_eq!(whoami["pseudonym"], pseudonym_of(rotated.reveal()));
    s.guard.tokens.revoke(name, NOW).unwrap();

    let log = stored_log(&s.database);
    assert!(
        !log.contains("alice"),
        "a token name in the audit log:\n{log}"
    );
    assert!(log.contains(&format!(
        "{alice} facilities api_access GET /api/v1/occupancy"
    )));
    // Token changes name the tokens by pseudonym too.
    let rotated_id = pseudonym_of(rotated.reveal());
    assert!(
        log.contains(&format!("token_change {rotated_id} 2 ")),
        "{log}"
    );
    assert!(log.contains(&format!("\"revoked\":\"{alice}\"")), "{log}");

    let events = drain(&s.syslog);
    assert!(
        events
            .iter()
            .any(|e| e.contains(" ACCESS_DENIED ") && e.contains(&format!("token=\"{alice}\""))),
        "{events:#?}"
    );
    assert!(events.iter().all(|e| !e.contains("alice")), "{events:#?}");

    // The DPO's view puts the name beside the pseudonym, from the token table.
    let (status, page) = get_as(s.addr, "/api/v1/dpo/audit", Some(&s.tokens["dpo"]));
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    let read = entries
        .iter()
        .find(|e| e["actor"] == alice.as_str())
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(read["actor_name"], name);
    let change = entries
        .iter()
        .find(|e| e["target"] == rotated_id.as_str())
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(change["target_name"], name);
    assert!(entries
        .iter()
        .filter(|e| !e["actor"].as_str().unwrap().starts_with("token:"))
        .all(|e| e.get("actor_name").is_none()));
}

/// The entries of one target, as stored: (seq, rows, detail).
fn entries_for(database: &std::path::Path, target: &str) -> Vec<(i64, i64, serde_json::Value)> {
    let conn = rusqlite::Connection::open(database).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, rows, detail FROM audit_log WHERE target = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([target], |r| {
        let detail: String = r.get(2)?;
        Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&detail).unwrap()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn identical_reads_in_a_minute_are_one_entry_then_one_count() {
    let clock = ManualClock::new(NOW); // NOW starts a UTC minute
    let app_clock = clock.clone();
    let s = serve(move |dir| AppState {
        clock: Arc::new(app_clock),
        ..state(dir)
    });
    let token = s.tokens["facilities"].clone();
    let flow = "/api/v1/flow?line=lobby.entrance";
    let target = "GET /api/v1/flow";
    // The first read's entry is durable before its answer arrives.
    assert_eq!(get_as(s.addr, flow, Some(&token)).0, 200);
    let first = entries_for(&s.database, target);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].2["query"], "line=lobby.entrance");
    assert!(first[0].2.get("count").is_none());
    let rows = first[0].1;
    // Nine more within the minute: counted, not written.
    for second in 1..10 {
        clock.set(NOW + second * 1_000);
        assert_eq!(get_as(s.addr, flow, Some(&token)).0, 200);
    }
    // Another query, another status, another token: their own entries.
    assert_eq!(
        get_as(s.addr, &format!("{flow}&bucket=1h"), Some(&token)).0,
        200
    );
    assert_eq!(
        get_as(s.addr, "/api/v1/flow?line=nope", Some(&token)).0,
        404
    );
    assert_eq!(get_as(s.addr, flow, Some(&s.tokens["admin"])).0, 200);
    let written = entries_for(&s.database, target);
    assert_eq!(written.len(), 4, "{written:#?}");
    assert!(written.iter().all(|(_, _, d)| d.get("count").is_none()));

    // The minute closes: the next request brings the count in, as one entry.
    clock.set(NOW + 60_000);
    assert_eq!(get_as(s.addr, "/api/v1/health", Some(&token)).0, 200);
    let written = entries_for(&s.database, target);
    assert_eq!(written.len(), 5, "{written:#?}");
    let (_, counted_rows, detail) = &written[4];
    assert_eq!(detail["count"], 9);
    assert_eq!(detail["query"], "line=lobby.entrance");
    assert_eq!(detail["status"], 200);
    assert_eq!(
        (detail["from_ms"].as_i64(), detail["to_ms"].as_i64()),
        (Some(NOW), Some(NOW + 60_000))
    );
    assert_eq!(*counted_rows, 9 * rows);

    // The chain still verifies.
    let dir = s.database.parent().unwrap();
    let key = headcount_domain::security::AuditKey::load_or_create(dir).unwrap();
    let db = headcount_store::Database::open_read_only(&s.database).unwrap();
    let report = headcount_store::verify_audit(&db, &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
}

#[test]
fn a_token_past_its_rate_limit_gets_429_and_its_refusals_are_counted_not_logged() {
    let clock = ManualClock::new(NOW);
    let app_clock = clock.clone();
    let s = serve(move |dir| {
        let state = state(dir);
        let (tokens, events) = (state.guard.tokens.clone(), state.guard.events.clone());
        AppState {
            clock: Arc::new(app_clock),
            guard: Arc::new(Guard {
                tokens,
                sessions: Sessions::new(false).unwrap(),
                lockout: Lockout::new(LockoutPolicy::default()),
                rate: RateLimit::new(RatePolicy {
                    burst: 3,
                    per_sec: 0.5,
                }),
                events,
            }),
            ..state
        }
    });
    let planner = s.tokens["planner"].clone();
    let whoami = |token: &str, n: u32| {
        request_as(s.addr, "GET", &format!("/api/v1/whoami?n={n}"), Some(token))
    };
    for n in 0..3 {
        assert_eq!(whoami(&planner, n).0, 200);
    }
    for n in 3..6 {
        let (status, head, _) = whoami(&planner, n);
        assert_eq!(status, 429, "{head}");
        assert!(head.contains("retry-after: 2"), "{head}");
    }
    // Another token's allowance is its own.
    assert_eq!(whoami(&s.tokens["facilities"], 0).0, 200);
    // One security event for the token, however many refusals.
    let limited: Vec<String> = drain(&s.syslog)
        .into_iter()
        .filter(|e| e.contains(" RATE_LIMITED "))
        .collect();
    assert_eq!(limited.len(), 1, "{limited:#?}");
    assert!(limited[0].contains(&format!("token=\"{}\"", pseudonym_of(&planner))));
    // The refused requests left no entry of their own.
    let log = stored_log(&s.database);
    assert!(!log.contains("\"status\":429"), "{log}");
    // Two seconds give one request back.
    clock.set(NOW + 2_000);
    assert_eq!(whoami(&planner, 6).0, 200);

    // Once the minute has closed, one entry counts them.
    clock.set(NOW + 60_000);
    assert_eq!(whoami(&s.tokens["facilities"], 1).0, 200);
    let counted = entries_for(&s.database, "rate limit");
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(counted[0].2["count"], 3);
    assert_eq!(counted[0].2["status"], 429);
    let conn = rusqlite::Connection::open(&s.database).unwrap();
    let actor: String = conn
        .query_row(
            "SELECT actor FROM audit_log WHERE target = 'rate limit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(actor, pseudonym_of(&planner));
}

#[test]
fn a_refused_request_leaves_only_its_status_and_an_accepted_one_its_query() {
    let s = serve(state);
    let facilities = s.tokens["facilities"].clone();
    let long = "x".repeat(600);
    // Refused by the handler: whatever the query said stays out of the log.
    let refused = format!("/api/v1/flow?line={long}");
    assert_eq!(get_as(s.addr, &refused, Some(&facilities)).0, 400);
    let (status, _) = get_as(
        s.addr,
        "/api/v1/flow?line=lobby.entrance&bucket=1h",
        Some(&facilities),
    );
    assert_eq!(status, 200);
    let log = stored_log(&s.database);
    assert!(!log.contains("xxxx"), "{log}");
    assert!(log.contains(r#"{"status":400}"#), "{log}");
    assert!(log.contains("line=lobby.entrance&bucket=1h"), "{log}");
}

#[test]
fn a_nearly_full_disk_refuses_new_reads_with_a_clear_503_but_not_the_admins() {
    let s = serve(|dir| {
        let state = state(dir);
        state.storage.set(headcount_domain::health::StorageHealth {
            free_bytes: Some(5_000_000),
            min_free_bytes: 256_000_000,
            ..Default::default()
        });
        state
    });
    let (status, body) = get_as(s.addr, "/api/v1/occupancy", Some(&s.tokens["facilities"]));
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("nearly full") && error.contains("5 MB free"),
        "{error}"
    );
    let (status, health) = get_as(s.addr, "/api/v1/health", Some(&s.tokens["admin"]));
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["storage"]["nearly_full"], true);
    assert_eq!(health["storage"]["free_bytes"], 5_000_000);
    assert_eq!(health["status"], "degraded");
    let (_, _, metrics) = request_as(s.addr, "GET", "/metrics", Some(&s.tokens["admin"]));
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("headcount_storage_free_bytes{site=\"test\"} 5000000"),
        "{metrics}"
    );
}
