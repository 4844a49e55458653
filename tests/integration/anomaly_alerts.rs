//! Anomalies end to end on the running appliance: a camera whose RTSP
//! server is killed raises stream loss, served at /api/v1/anomalies, pushed
//! to a webhook (signed, on loopback) and to a real Mosquitto broker (opted
//! in), as the disclosure policy lets them leave (times to the minute, no
//! explanation, no acknowledger), and closed when the stream comes back; a
//! facilities manager acknowledges it; an admin re-arms a tamper reference.
//! Over the normal footage before the kill, nothing else is raised. The
//! journal names the anomaly by id and kind only.

use crate::common::*;
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "webhook-test-secret";

/// A webhook receiver on loopback: every request's headers and JSON body.
struct Hook {
    port: u16,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    _runtime: tokio::runtime::Runtime,
}

fn start_hook() -> Hook {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    Hook {
        port,
        received,
        _runtime: runtime,
    }
}

impl Hook {
    /// The notices received so far, each checked against its signature.
    fn notices(&self) -> Vec<Value> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, body)| {
                let signature = headers["x-headcount-signature"].to_str().unwrap();
                let hex = signature.strip_prefix("sha256=").unwrap();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                ring::hmac::verify(&key, body, &bytes).expect("a valid signature");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    fn wait_for(&self, transition: &str, kind: &str) -> Value {
        let mut found = None;
        wait_until(Duration::from_secs(30), || {
            found = self
                .notices()
                .into_iter()
                .find(|n| n["transition"] == transition && n["anomaly"]["type"] == kind);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {transition} {kind} notice; got {:?}", self.notices()))
    }
}

/// The log without its terminal colour codes (ESC [ ... m).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn anomalies(port: u16, token: &str, query: &str) -> Vec<Value> {
    let (status, _, body) =
        get_raw_as(port, &format!("/api/v1/anomalies?{query}"), Some(token)).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    body["anomalies"].as_array().unwrap().clone()
}

#[test]
fn stream_loss_is_served_pushed_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mqtt_port) = start_broker(dir.path());
    let hook = start_hook();
    let (api_port, rtsp_port) = (free_port(), free_port());
    let url = format!("rtsp://127.0.0.1:{rtsp_port}/vtest");
    let tamper = "[cameras.door.tamper]\nlearning_secs = 10\nstream_loss_secs = 4";
    let config = config(dir.path(), api_port, &[("door", url, tamper)]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "[anomalies.webhook]\nurl = \"http://127.0.0.1:{}/hook\"\nsecret_ref = \"env:HOOK_SECRET\"\nretries = 2\n\
         [mqtt]\nbroker = \"mqtt://127.0.0.1:{mqtt_port}\"\nanomalies = true\n",
        hook.port
    );
    std::fs::write(&config, text).unwrap();

    let camera = start_camera(rtsp_port);
    let log = dir.path().join("appliance.log");
    let _appliance = start_appliance_with(
        &config,
        api_port,
        &[("HOOK_SECRET", SECRET)],
        std::fs::File::create(&log).unwrap().into(),
    );
    let admin = admin_token(api_port).unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        camera_state(api_port, "door").is_some_and(|(s, _)| s == "streaming")
    }));
    // Past the tamper learning period (10 s of frames at 2 fps, and 5 s
    // more), on normal footage: nothing raised.
    assert!(
        wait_until(Duration::from_secs(60), || {
            frames_analysed(api_port, "door").is_some_and(|n| n >= 30)
        }),
        "fewer than 30 frames analysed: tamper learning cannot have ended"
    );
    assert_eq!(
        anomalies(api_port, &admin, "state=all"),
        Vec::<Value>::new()
    );

    let mqtt = Subscriber::start(mqtt_port, "headcount/test/anomalies", 1, 60);
    let killed = Instant::now();
    drop(camera);
    let mut open = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            open = anomalies(api_port, &admin, "state=open&type=stream_loss");
            !open.is_empty()
        }),
        "no stream loss within 30 s of killing the RTSP server"
    );
    let raised_after = killed.elapsed();
    let loss = &open[0];
    assert_eq!(
        (loss["subject_type"].as_str(), loss["subject"].as_str()),
        (Some("camera"), Some("door"))
    );
    assert_eq!(loss["severity"], "critical");
    assert_eq!(loss["threshold"], 4.0);
    assert!(loss["value"].as_f64().unwrap() > 4.0, "{loss}");
    assert!(
        loss["explanation"].as_str().unwrap().contains("door"),
        "{loss}"
    );
    assert!(
        loss["started_at"].as_str().unwrap().ends_with('Z'),
        "{loss}"
    );
    // The 4 s limit counts from the last frame, which came shortly before
    // the kill: never raised well before it.
    assert!(raised_after >= Duration::from_secs(3), "{raised_after:?}");
    println!("stream loss raised {raised_after:?} after the RTSP server was killed");

    let opened = hook.wait_for("opened", "stream_loss");
    assert_eq!(opened["site"], "test");
    assert_eq!(opened["anomaly"]["id"], loss["id"]);
    // What leaves the box: the minute it started, no explanation.
    let started = loss["started_at"].as_str().unwrap();
    assert_eq!(
        opened["anomaly"]["started"].as_str().unwrap(),
        format!("{}:00Z", &started[..16]),
        "{opened}"
    );
    assert!(opened["anomaly"].get("explanation").is_none(), "{opened}");
    assert_eq!(opened["anomaly"]["summary"], "stream loss in camera door");
    let published = mqtt.messages();
    assert_eq!(published.len(), 1, "{published:?}");
    let (topic, payload) = &published[0];
    assert_eq!(topic, "headcount/test/anomalies");
    check_schemas(&[("anomaly-notice.schema.json", topic, payload)]);
    let payload: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(payload["transition"], "opened");
    assert_eq!(payload["anomaly"]["type"], "stream_loss");

    // The stream comes back: the anomaly closes.
    let _camera = start_camera(rtsp_port);
    assert!(
        wait_until(Duration::from_secs(30), || anomalies(
            api_port,
            &admin,
            "state=open"
        )
        .is_empty()),
        "stream loss did not close when the stream came back"
    );
    let closed = hook.wait_for("closed", "stream_loss");
    assert!(
        closed["anomaly"]["ended"]
            .as_str()
            .unwrap()
            .ends_with(":00Z"),
        "{closed}"
    );

    // Facilities acknowledges; planners may not even list them.
    let state = dir.path().join("state");
    let facilities = issue_token(&state, "duty-manager", "facilities");
    let planner = issue_token(&state, "city", "planner");
    let id = loss["id"].as_i64().unwrap();
    let (status, _, _) = request_raw(api_port, "GET", "/api/v1/anomalies", Some(&planner)).unwrap();
    assert_eq!(status, 403);
    let (status, _) = post_as(api_port, &format!("/api/v1/anomalies/{id}/ack"), &planner).unwrap();
    assert_eq!(status, 403);
    let (status, acked) = post_as(
        api_port,
        &format!("/api/v1/anomalies/{id}/ack"),
        &facilities,
    )
    .unwrap();
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "duty-manager");
    // On site the acknowledger is shown; off the box, never.
    let notice = hook.wait_for("acknowledged", "stream_loss");
    assert!(
        notice["anomaly"].get("acknowledged_by").is_none(),
        "{notice}"
    );
    for n in hook.notices() {
        assert!(!n.to_string().contains("duty-manager"), "{n}");
    }

    // An admin re-arms the camera's tamper reference.
    let (status, body) = post_as(api_port, "/api/v1/cameras/door/tamper/rearm", &admin).unwrap();
    assert_eq!((status, body["learning_secs"].as_f64()), (202, Some(10.0)));
    let (status, _) = post_as(api_port, "/api/v1/cameras/door/tamper/rearm", &facilities).unwrap();
    assert_eq!(status, 403);

    // Only the stream loss was ever raised.
    let all = anomalies(api_port, &admin, "state=all");
    let kinds: Vec<&str> = all.iter().filter_map(|a| a["type"].as_str()).collect();
    assert_eq!(kinds, ["stream_loss"], "{all:?}");

    // The journal: the anomaly by id and kind, never its explanation.
    let log = without_colours(&std::fs::read_to_string(&log).unwrap());
    let explanation = loss["explanation"].as_str().unwrap();
    assert!(
        !log.contains(explanation),
        "the explanation reached the log"
    );
    assert!(
        log.lines().any(|l| l.contains("anomaly opened")
            && l.contains(&format!("id={}", loss["id"]))
            && l.contains("kind=\"stream_loss\"")),
        "{log}"
    );
}
