//! The dashboard's routes on the real router: login, the session cookie and
//! its CSRF token, logout, the live stream, the heatmap and the editor.

use super::tests::{drain, get_as, pseudonym_of, request_as, serve, state, NOW};
use std::io::{Read, Write};

/// A request with extra headers and a body (JSON unless a `Content-Type`
/// is among the headers); status, head and body.
fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        extra.push_str("Content-Type: application/json\r\n");
    }
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        head.to_string(),
        body.to_string(),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Logs in with a role's token: the cookie header to send, and the CSRF token.
fn login(s: &super::tests::Served, role: &str) -> (String, String) {
    let body = serde_json::json!({ "token": s.tokens[role] }).to_string();
    let (status, head, body) = send(s.addr, "POST", "/api/v1/login", &[], &body);
    assert_eq!(status, 200, "{head}\n{body}");
    let set_cookie = header(&head, "set-cookie").unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["role"], role);
    (cookie, body["csrf"].as_str().unwrap().to_string())
}

#[test]
fn a_login_gives_a_session_whose_changes_need_its_csrf_token_until_logout() {
    let s = serve(state);
    let (status, _, _) = send(
        s.addr,
        "POST",
        "/api/v1/login",
        &[],
        r#"{"token":"hc_wrong"}"#,
    );
    assert_eq!(status, 401);
    let (cookie, csrf) = login(&s, "facilities");
    let with_cookie = [("Cookie", cookie.as_str())];

    let (status, _, body) = send(s.addr, "GET", "/api/v1/occupancy", &with_cookie, "");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(s.addr, "GET", "/api/v1/session", &with_cookie, "");
    assert_eq!(status, 200);
    assert!(body.contains(&csrf), "{body}");
    // The cookie carries the role's rights, no more.
    let (status, _, _) = send(s.addr, "GET", "/api/v1/dpo/audit", &with_cookie, "");
    assert_eq!(status, 403);

    // A state change with the cookie alone is what a forged cross-site
    // request looks like: refused, even with a wrong token.
    for forged in [
        &with_cookie[..],
        &[with_cookie[0], ("X-CSRF-Token", "0000")],
    ] {
        let (status, _, body) = send(s.addr, "POST", "/api/v1/anomalies/1/ack", forged, "");
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    let with_csrf = [with_cookie[0], ("X-CSRF-Token", csrf.as_str())];
    // Past the CSRF check to the handler, which has no anomaly 1 here.
    let (status, _, body) = send(s.addr, "POST", "/api/v1/anomalies/1/ack", &with_csrf, "");
    assert_eq!(status, 404, "{body}");
    // A bearer token needs no CSRF token: no browser sends it on its own.
    let (status, _, _) = request_as(
        s.addr,
        "POST",
        "/api/v1/anomalies/1/ack",
        Some(&s.tokens["admin"]),
    );
    assert_eq!(status, 404);

    let (status, head, _) = send(s.addr, "POST", "/api/v1/logout", &with_csrf, "");
    assert_eq!(status, 204);
    assert!(header(&head, "set-cookie").unwrap().contains("Max-Age=0"));
    let (status, _, body) = send(s.addr, "GET", "/api/v1/occupancy", &with_cookie, "");
    assert_eq!(status, 401);
    assert!(body.contains("session has ended"), "{body}");
}

#[test]
fn a_login_from_another_site_is_refused_and_counts_towards_nothing() {
    let s = serve(state);
    let login = |headers: &[(&str, &str)], token: &str| {
        let body = serde_json::json!({ "token": token }).to_string();
        send(s.addr, "POST", "/api/v1/login", headers, &body)
    };
    // What a page of another site can make a browser send, right token or
    // wrong, as often as it likes: refused before the token is looked at.
    for _ in 0..20 {
        for headers in [
            &[("Origin", "https://evil.example")][..],
            &[("Origin", "null")],
            &[("Sec-Fetch-Site", "cross-site")],
            &[
                ("Sec-Fetch-Site", "same-site"),
                ("Origin", "http://localhost"),
            ],
        ] {
            let (status, _, body) = login(headers, "hc_wrong");
            assert_eq!(status, 403, "{headers:?}: {body}");
        }
    }
    let (status, _, _) = login(&[("Origin", "https://evil.example")], &s.tokens["admin"]);
    assert_eq!(status, 403);
    // A body a form or a no-cors fetch can send without a preflight.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, _, body) = login(&[("Content-Type", content_type)], "hc_wrong");
        assert_eq!(status, 415, "{content_type}: {body}");
    }
    let events = drain(&s.syslog);
    assert!(
        events.iter().any(|e| e.contains(" CROSS_SITE_REFUSED ")
            && e.contains("evidence=\"Origin: https://evil.example\"")),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e.contains(" LOGIN_FAILED ")
            || e.contains(" LOCKOUT ")
            || e.contains(" THROTTLED ")),
        "{events:#?}"
    );
    // The dashboard's own page (same origin), and a client that is no
    // browser, log in as ever.
    let page = [
        ("Origin", "http://localhost"),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let (status, _, body) = login(&page, &s.tokens["facilities"]);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = login(
        &[("Content-Type", "application/json; charset=utf-8")],
        &s.tokens["admin"],
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_lockout_never_ends_a_valid_session() {
    let s = serve(state);
    let (cookie, _) = login(&s, "admin");
    let admin = s.tokens["admin"].clone();
    let wrong = format!("{}{}", &admin[..admin.len() - 4], "0000");
    // Someone who knows the admin token's id locks it...
    for _ in 0..5 {
        assert_eq!(
            request_as(s.addr, "GET", "/api/v1/health", Some(&wrong)).0,
            401
        );
    }
    let body = serde_json::json!({ "token": admin }).to_string();
    assert_eq!(send(s.addr, "POST", "/api/v1/login", &[], &body).0, 429);
    // ...but the admin's open session is not a login: it carries on.
    let with_cookie = [("Cookie", cookie.as_str())];
    let (status, _, body) = send(s.addr, "GET", "/api/v1/health", &with_cookie, "");
    assert_eq!(status, 200, "{body}");
}

/// A live stream opened with `headers`: its status, and the connection
/// (read up to its first occupancy event when it opened).
fn open_live(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> (u16, std::net::TcpStream) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "GET /api/v1/live HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut seen = String::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
        let status: u16 = seen.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        if (status != 0 && status != 200 && seen.contains("\r\n\r\n"))
            || seen.contains("event: occupancy")
        {
            return (status, stream);
        }
    }
}

/// Whether the server ends the stream (its last chunk, or the connection)
/// within the read timeout.
fn ends(mut stream: std::net::TcpStream) -> bool {
    let mut rest = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(_) => return false,
        }
        // The last chunk of the body (an SSE event ends in "\n\n", never "\r\n").
        if rest.ends_with(b"0\r\n\r\n") {
            return true;
        }
    }
}

#[test]
fn a_revoked_token_ends_its_streams_without_a_failed_login() {
    let s = serve(state);
    let (cookie, _) = login(&s, "facilities");
    let bearer = format!("Bearer {}", s.tokens["facilities"]);
    let (status, by_session) = open_live(s.addr, &[("Cookie", &cookie)]);
    assert_eq!(status, 200);
    let (status, by_bearer) = open_live(s.addr, &[("Authorization", &bearer)]);
    assert_eq!(status, 200);
    drain(&s.syslog);
    s.guard.tokens.revoke("facilities", NOW).unwrap();
    assert!(ends(by_session) && ends(by_bearer));
    let events = drain(&s.syslog);
    let facilities = pseudonym_of(&s.tokens["facilities"]);
    for ended in ["session", "live stream"] {
        assert!(
            events.iter().any(|e| e.contains(&format!(
                " SESSION_ENDED [headcount@32473 token=\"{facilities}\" reason=\"revoked\" ended=\"{ended}\"]"
            ))),
            "{ended}: {events:#?}"
        );
    }
    // A check again is no login: nothing failed, nobody is locked out.
    assert!(
        !events.iter().any(|e| e.contains(" LOGIN_FAILED ")
            || e.contains(" LOCKOUT ")
            || e.contains(" THROTTLED ")),
        "{events:#?}"
    );
    assert_eq!(
        request_as(s.addr, "GET", "/api/v1/health", Some(&s.tokens["admin"])).0,
        200
    );
}

#[test]
fn one_token_cannot_hold_every_live_stream() {
    use super::live::{MAX_STREAMS, STREAMS_PER_TOKEN};
    let s = serve(state);
    let facilities = |name: &str| {
        s.guard
            .tokens
            .create(
                name,
                headcount_domain::security::Role::Facilities,
                None,
                NOW,
            )
            .unwrap()
            .reveal()
            .to_string()
    };
    let mut open = Vec::new();
    let mut tokens = vec![s.tokens["facilities"].clone()];
    tokens.extend((1..MAX_STREAMS / STREAMS_PER_TOKEN).map(|i| facilities(&format!("desk{i}"))));
    for (i, token) in tokens.iter().enumerate() {
        let bearer = format!("Bearer {token}");
        for _ in 0..STREAMS_PER_TOKEN {
            let (status, stream) = open_live(s.addr, &[("Authorization", &bearer)]);
            assert_eq!(status, 200, "token {i}");
            open.push(stream);
        }
        // One more of the same token is refused; the others keep theirs.
        let (status, _) = open_live(s.addr, &[("Authorization", &bearer)]);
        assert_eq!(status, 503, "token {i}");
    }
    // Every place is taken: another token is refused, an admin is not, and
    // takes the place of the oldest stream, which ends.
    let late = format!("Bearer {}", facilities("late"));
    assert_eq!(open_live(s.addr, &[("Authorization", &late)]).0, 503);
    let admin = format!("Bearer {}", s.tokens["admin"]);
    let (status, _admins) = open_live(s.addr, &[("Authorization", &admin)]);
    assert_eq!(status, 200);
    assert!(ends(open.remove(0)));
}

#[test]
fn revoking_the_token_ends_its_sessions() {
    let s = serve(state);
    let (cookie, _) = login(&s, "facilities");
    let with_cookie = [("Cookie", cookie.as_str())];
    assert_eq!(
        send(s.addr, "GET", "/api/v1/health", &with_cookie, "").0,
        200
    );
    s.guard.tokens.revoke("facilities", NOW).unwrap();
    assert_eq!(
        send(s.addr, "GET", "/api/v1/health", &with_cookie, "").0,
        401
    );
}

#[test]
fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let s = serve(state);
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let (status, head, body) = request_as(s.addr, "GET", path, None);
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&head, "content-type").unwrap().starts_with(kind),
            "{head}"
        );
        assert!(!body.is_empty());
        let policy = header(&head, "content-security-policy").unwrap();
        assert!(
            policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"),
            "{policy}"
        );
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    }
    // Nothing on the page comes from elsewhere.
    let (_, _, page) = request_as(s.addr, "GET", "/", None);
    let page = String::from_utf8(page).unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "external reference in the page"
    );
    // API answers carry the policy too.
    let (_, head, _) = request_as(s.addr, "GET", "/api/v1/health", Some(&s.tokens["admin"]));
    assert!(header(&head, "content-security-policy").is_some());
}

#[test]
fn the_live_stream_sends_occupancy_health_and_open_anomalies_at_once() {
    let s = serve(state);
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        stream,
        "GET /api/v1/live HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        s.tokens["facilities"]
    )
    .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut seen = String::new();
    let mut chunk = [0u8; 8192];
    while !(seen.contains("event: occupancy")
        && seen.contains("event: health")
        && seen.contains("event: anomalies"))
    {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    let occupancy = seen
        .lines()
        .skip_while(|l| *l != "event: occupancy")
        .nth(1)
        .and_then(|l| l.strip_prefix("data: "))
        .unwrap();
    let occupancy: serde_json::Value = serde_json::from_str(occupancy).unwrap();
    let (_, api) = get_as(s.addr, "/api/v1/occupancy", Some(&s.tokens["admin"]));
    assert_eq!(occupancy["zones"], api["zones"]);
    // Planners read aggregates, not the live view.
    assert_eq!(
        request_as(s.addr, "GET", "/api/v1/live", Some(&s.tokens["planner"])).0,
        403
    );
}

#[test]
fn the_heatmap_folds_stored_buckets_into_local_hours_of_the_week() {
    let s = serve(state);
    let (status, body) = s.get("/api/v1/occupancy/heatmap?zone=lobby.door&weeks=1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["weeks"], 1);
    let cells = body["cells"].as_array().unwrap();
    // The test rows lie in the hour before NOW, a Monday 16:00 UTC.
    assert!(!cells.is_empty(), "{body}");
    assert!(
        cells.iter().all(|c| c["day"] == 0 && c["hour"] == 15),
        "{body}"
    );
    assert_eq!(
        s.get("/api/v1/occupancy/heatmap?zone=lobby.door&weeks=9").0,
        400
    );
    assert_eq!(s.get("/api/v1/occupancy/heatmap?space=nowhere").0, 404);
    assert_eq!(s.get("/api/v1/occupancy/heatmap").0, 400);
}

#[test]
fn a_camera_that_lost_its_stream_a_moment_ago_is_reconnecting() {
    let s = serve(|dir| {
        let state = state(dir);
        state.health.update(&"lobby".into(), |h| {
            h.state = headcount_domain::health::CameraState::Failing {
                reason: "connection refused".into(),
            };
            h.last_frame =
                Some(std::time::Instant::now() - std::time::Duration::from_millis(5_000));
        });
        state.health.update(&"yard".into(), |h| {
            h.state = headcount_domain::health::CameraState::Failing {
                reason: "not found".into(),
            };
        });
        state
    });
    let (_, body) = s.get("/api/v1/health");
    assert_eq!(body["cameras"][0]["state"], "reconnecting", "{body}");
    assert_eq!(body["cameras"][0]["reason"], "connection refused");
    assert_eq!(body["cameras"][1]["state"], "failing", "never streamed");
}

#[test]
fn the_editor_saves_valid_geometry_to_the_file_and_the_running_config_only() {
    let s = serve(|dir| {
        let mut state = state(dir);
        let path = dir.join("headcount.toml");
        std::fs::write(&path, super::tests::CONFIG).unwrap();
        let mut running = (*state.config.get()).clone();
        running.state_dir = dir.to_path_buf();
        state.config = headcount_domain::config::live::LiveConfig::new(running, Some(path));
        state
    });
    let (cookie, csrf) = login(&s, "admin");
    let headers = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let (status, _, body) = send(
        s.addr,
        "GET",
        "/api/v1/cameras/lobby/geometry",
        &headers,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let mut geometry: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(geometry["zones"][0]["name"], "door");

    // Every problem at once, each under its key; nothing written.
    let broken = serde_json::json!({
        "zones": [{"name": "Bad Name", "polygon": [[0.1, 0.1], [0.2, 0.2]]}],
        "lines": [{"name": "entrance", "points": [[0.2, 0.5], [0.8, 0.5]], "in": "up"}],
    });
    let (status, _, body) = send(
        s.addr,
        "PUT",
        "/api/v1/cameras/lobby/geometry",
        &headers,
        &broken.to_string(),
    );
    assert_eq!(status, 422, "{body}");
    let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("cameras.lobby.zones.Bad Name")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("cameras.lobby.lines.entrance")),
        "{keys:?}"
    );
    // The space's zone `lobby.door` is gone in this edit too.
    assert!(
        keys.iter().any(|k| k.starts_with("spaces.site")),
        "{keys:?}"
    );

    geometry["zones"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "desk", "polygon": [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]], "capacity": 3
        }));
    // A zone for fewer than k people would single its occupant out: refused
    // with the key that opts it in.
    let body = serde_json::json!({ "zones": geometry["zones"], "lines": geometry["lines"] });
    let (status, _, refused) = send(
        s.addr,
        "PUT",
        "/api/v1/cameras/lobby/geometry",
        &headers,
        &body.to_string(),
    );
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.contains("cameras.lobby.zones.desk.capacity")
            && refused.contains("small_zone_justification"),
        "{refused}"
    );
    let zones = geometry["zones"].as_array_mut().unwrap();
    zones.last_mut().unwrap()["capacity"] = serde_json::json!(6);
    let body = serde_json::json!({ "zones": geometry["zones"], "lines": geometry["lines"] });
    // Without the CSRF token the save is refused.
    let (status, _, _) = send(
        s.addr,
        "PUT",
        "/api/v1/cameras/lobby/geometry",
        &headers[..1],
        &body.to_string(),
    );
    assert_eq!(status, 403);
    let (status, _, saved) = send(
        s.addr,
        "PUT",
        "/api/v1/cameras/lobby/geometry",
        &headers,
        &body.to_string(),
    );
    assert_eq!(status, 200, "{saved}");
    // Saved beside the state, the config file untouched.
    let overlay = std::fs::read_to_string(s.dir.path().join("config-overlay.toml")).unwrap();
    assert!(overlay.contains("[cameras.lobby.zones.desk]"), "{overlay}");
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("headcount.toml")).unwrap(),
        super::tests::CONFIG
    );
    let (_, dashboard) = s.get("/api/v1/dashboard");
    assert!(dashboard.to_string().contains("lobby.entrance"));
    let (status, flow) = s.get("/api/v1/dwell?zone=lobby.desk");
    assert_eq!(status, 200, "the new zone is known to the API: {flow}");
    // The change is in the audit log with who made it.
    let (_, audit) = s.get("/api/v1/dpo/audit?limit=1000");
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "config_change")
        .unwrap_or_else(|| panic!("no config change audited: {audit}"));
    assert_eq!(entry["actor"], pseudonym_of(&s.tokens["admin"]), "{audit}");
    assert_eq!(entry["actor_name"], "admin", "{audit}");
    assert!(
        entry["detail"]["after"]["zones"]
            .to_string()
            .contains("desk"),
        "{audit}"
    );
    // Planners and facilities cannot edit.
    let (fcookie, fcsrf) = login(&s, "facilities");
    let (status, _, _) = send(
        s.addr,
        "PUT",
        "/api/v1/cameras/lobby/geometry",
        &[
            ("Cookie", fcookie.as_str()),
            ("X-CSRF-Token", fcsrf.as_str()),
        ],
        &body.to_string(),
    );
    assert_eq!(status, 403);
}

#[test]
fn an_installer_validates_a_line_by_tapping_and_the_result_is_audited() {
    let (board_tx, board_rx) = std::sync::mpsc::channel();
    let s = serve(move |dir| {
        let state = state(dir);
        board_tx.send(state.occupancy.clone()).unwrap();
        state
    });
    let board = board_rx.recv().unwrap();
    board.record_line("lobby.entrance", (10, 4));
    let token = s.tokens["facilities"].clone();
    let auth = format!("Bearer {token}");
    let post = |path: &str, body: &str| {
        let (status, _, text) = send(s.addr, "POST", path, &[("Authorization", &auth)], body);
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let (status, body) = post("/api/v1/validations", r#"{"line": "lobby.nowhere"}"#);
    assert_eq!(status, 404, "{body}");
    let (status, body) = post("/api/v1/validations", r#"{"line": "lobby.entrance"}"#);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_u64().unwrap();
    let taps = format!("/api/v1/validations/{id}/taps");
    for direction in ["in", "in", "out", "in"] {
        let (status, body) = post(&taps, &format!(r#"{{"direction": "{direction}"}}"#));
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = post(&taps, r#"{"direction": "sideways"}"#);
    assert_eq!(status, 400, "{body}");
    // The appliance counted two of the three in, and the one out.
    board.record_line("lobby.entrance", (12, 5));
    let (status, body) = get_as(s.addr, &format!("/api/v1/validations/{id}"), Some(&token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["taps_in"].as_u64(), body["taps_out"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (body["counted_in"].as_u64(), body["counted_out"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(body["error"], -0.25);
    let (status, body) = post(&format!("/api/v1/validations/{id}/finish"), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["finished"], true);
    let (status, _) = get_as(s.addr, &format!("/api/v1/validations/{id}"), Some(&token));
    assert_eq!(status, 404, "a finished session is gone");
    // The result is in the audit log, under the installer's pseudonym.
    let conn = rusqlite::Connection::open(&s.database).unwrap();
    let (actor, detail): (String, String) = conn
        .query_row(
            "SELECT actor, detail FROM audit_log WHERE target = 'validation of line lobby.entrance'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(actor, pseudonym_of(&token));
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["taps"], serde_json::json!([3, 1]));
    assert_eq!(detail["counted"], serde_json::json!([2, 1]));
}

#[test]
fn validation_sessions_are_capped_and_the_oldest_gives_way() {
    let s = serve(state);
    let auth = format!("Bearer {}", s.tokens["admin"]);
    let start = || {
        let (status, _, text) = send(
            s.addr,
            "POST",
            "/api/v1/validations",
            &[("Authorization", &auth)],
            r#"{"line": "lobby.entrance"}"#,
        );
        assert_eq!(status, 201, "{text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let ids: Vec<u64> = (0..5).map(|_| start()).collect();
    let admin = s.tokens["admin"].clone();
    let open = |id: u64| get_as(s.addr, &format!("/api/v1/validations/{id}"), Some(&admin)).0;
    assert_eq!(open(ids[0]), 404, "the fifth session ended the first");
    assert!(ids[1..].iter().all(|&id| open(id) == 200));
}
