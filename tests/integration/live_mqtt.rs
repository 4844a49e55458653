//! The live MQTT feed (`mqtt.live`) and Home Assistant discovery on a real
//! Mosquitto: the demo camera and a dead one, a door-counted space and a
//! zone-counted one, a small zone. A real subscriber sees every payload,
//! checked against the JSON Schemas in `docs/schemas/` (Home Assistant's
//! documented sensor options for the discovery configs); the small zone and
//! a failing camera's reason never appear; each topic is retained and sent
//! at most once a second; what the broker retained from before under the
//! appliance's topics (a zone removed while it was stopped) is cleared; a
//! count corrected by hand reaches the broker (printed: the delay, and the
//! messages per minute at steady state).

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long the subscriber listens.
const LISTEN_SECS: u32 = 45;

#[test]
fn live_counts_reach_the_broker_retained_minimised_and_discoverable_by_home_assistant() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mqtt_port) = start_broker(dir.path());
    let (rtsp_port, dead_port, api_port) = (free_port(), free_port(), free_port());
    let _camera = start_camera(rtsp_port);
    let config = config(
        dir.path(),
        api_port,
        &[
            (
                "campus",
                format!("rtsp://127.0.0.1:{rtsp_port}/vtest"),
                "lines.door = { points = [[0.1, 0.5], [0.9, 0.5]], in = \"left\" }\n\
                 [cameras.campus.zones.bench]\npolygon = [[0.0, 0.9], [0.1, 0.9], [0.1, 1.0]]\n\
                 capacity = 2\nsmall_zone_justification = \"the test's small zone\"",
            ),
            ("dead", format!("rtsp://127.0.0.1:{dead_port}/nothing"), ""),
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "[spaces.hall]\nentrances = [\"campus.door\"]\n[spaces.floor]\nzones = [\"campus.path\"]\n\
             [mqtt]\nbroker = \"mqtt://127.0.0.1:{mqtt_port}\"\nlive = true\nhome_assistant = true\n"
        );
    std::fs::write(&config, text).unwrap();

    // Left retained by an earlier run that counted a zone since removed,
    // and a bucket an earlier version retained on its stream.
    let stale = [
        (
            "headcount/test/live/zone/campus.gone",
            r#"{"occupancy":3,"capacity":null}"#,
        ),
        (
            "homeassistant/sensor/headcount_test/zone_campus__gone_occupancy/config",
            r#"{"name":"campus.gone occupancy"}"#,
        ),
        ("headcount/test/hall/aggregates/1h", r#"{"id":"old"}"#),
    ];
    for (topic, payload) in stale {
        publish_retained(mqtt_port, topic, payload);
        assert_eq!(subscribe(mqtt_port, topic, 1, 5).len(), 1, "{topic}");
    }

    let subscriber = Subscriber::start(mqtt_port, "#", 100_000, LISTEN_SECS);
    let listening = Instant::now();
    let appliance = start_appliance(&config, api_port);
    let facilities = issue_token(&state_dir_of(&config), "frontdesk", "facilities");

    // Counting: the floor space has a value once the camera is analysed.
    assert!(
        wait_until(Duration::from_secs(30), || get(
            api_port,
            "/api/v1/occupancy"
        )
        .is_some_and(|(_, b)| b["spaces"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["space"] == "floor" && s["occupancy"].is_u64())))),
        "the floor space was never counted"
    );
    // Let the feed settle, then correct the hall's count by hand.
    std::thread::sleep(Duration::from_secs(12));
    let steady_from = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let steady_to = Instant::now();
    let corrected = Instant::now();
    let (status, answer) = adjust(api_port, &facilities, "hall", 12);
    assert_eq!(status, 200, "{answer}");
    let remaining = Duration::from_secs(LISTEN_SECS.into()).saturating_sub(listening.elapsed());
    std::thread::sleep(remaining.saturating_sub(Duration::from_secs(6)));
    drop(appliance);
    let messages = subscriber.timed_messages();
    assert!(!messages.is_empty(), "the broker relayed nothing");

    let base = "headcount/test/live";
    let latest: BTreeMap<&str, &str> = messages
        .iter()
        .map(|(_, t, p)| (t.as_str(), p.as_str()))
        .collect();
    let topics: Vec<&&str> = latest.keys().collect();

    // Every payload against its schema, by a validator nobody here wrote.
    let schema_of = |topic: &str| -> Option<&'static str> {
        let live = topic.strip_prefix(base)?;
        Some(
            if live.starts_with("/space/") || live.starts_with("/zone/") {
                "live-occupancy.schema.json"
            } else if live.starts_with("/line/") {
                "live-line.schema.json"
            } else {
                "live-camera.schema.json"
            },
        )
    };
    let checks: Vec<(&str, &str, &str)> = messages
        .iter()
        .filter(|(_, topic, _)| !stale.iter().any(|(t, _)| t == topic))
        .filter_map(|(_, topic, payload)| {
            let schema = if topic.starts_with("homeassistant/sensor/") {
                Some("homeassistant-sensor-discovery.schema.json")
            } else {
                schema_of(topic)
            };
            schema.map(|s| (s, topic.as_str(), payload.as_str()))
        })
        .collect();
    eprintln!("{}", check_schemas(&checks));

    // What is published, and what never is.
    for topic in [
        format!("{base}/space/hall"),
        format!("{base}/space/floor"),
        format!("{base}/zone/campus.path"),
        format!("{base}/line/campus.door"),
        format!("{base}/camera/campus"),
        format!("{base}/camera/dead"),
    ] {
        assert!(
            latest.contains_key(topic.as_str()),
            "no {topic} in {topics:?}"
        );
    }
    assert!(
        !topics.iter().any(|t| t.contains("bench")),
        "a small zone left the box: {topics:?}"
    );
    let dead: Value = serde_json::from_str(latest[format!("{base}/camera/dead").as_str()]).unwrap();
    assert!(
        dead == json!({"state": "failing"}) || dead == json!({"state": "connecting"}),
        "{dead}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(latest[format!("{base}/camera/campus").as_str()]).unwrap(),
        json!({"state": "streaming"})
    );
    // One discovery config per sensor: 2 spaces, 1 zone, a line's entries
    // and exits, 2 cameras; each names a live topic that was published.
    let configs: Vec<Value> = latest
        .iter()
        .filter(|(t, p)| t.starts_with("homeassistant/sensor/headcount_test/") && !p.is_empty())
        .map(|(_, p)| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(configs.len(), 7, "{topics:?}");
    for config in &configs {
        let state = config["state_topic"].as_str().unwrap();
        assert!(
            latest.contains_key(state),
            "{state} was announced, never published"
        );
        assert_eq!(config["availability_topic"], "headcount/test/status");
    }
    // The stale topics were cleared: nothing retained there any more.
    for (topic, _) in stale {
        assert_eq!(latest.get(topic), Some(&""), "{topic} was not cleared");
        assert!(
            subscribe(mqtt_port, topic, 1, 2).is_empty(),
            "{topic} is still retained"
        );
    }
    // The appliance said offline when it stopped, as the sensors' availability.
    assert_eq!(latest.get("headcount/test/status"), Some(&"offline"));

    // Retained: a client that connects now still reads the latest state
    // (people may have crossed the door since the correction).
    let hall = format!("{base}/space/hall");
    let retained = subscribe(mqtt_port, &hall, 1, 5);
    assert_eq!(
        retained.first().map(|(_, p)| p.as_str()),
        latest.get(hall.as_str()).copied()
    );

    // At most once a second per topic (a little slack for delivery).
    let mut last: HashMap<&str, Instant> = HashMap::new();
    // (The stale topics' retained copies came from the broker.)
    for (at, topic, _) in &messages {
        if topic.starts_with(base) && !stale.iter().any(|(t, _)| t == topic) {
            if let Some(before) = last.insert(topic, *at) {
                let gap = at.duration_since(before);
                assert!(
                    gap >= Duration::from_millis(800),
                    "{topic} sent twice within {gap:?}"
                );
            }
        }
    }

    // Figures: delay from the correction to the retained message, and
    // messages per minute while the demo plays. A topic is sent at most
    // once a second, so a person crossing the door in that second moves
    // the first value sent by one or two.
    let near_the_correction =
        |occupancy: &Value| occupancy.as_u64().is_some_and(|n| n.abs_diff(12) <= 2);
    let arrived = messages
        .iter()
        .find(|(at, topic, payload)| {
            *at >= corrected
                && topic == &format!("{base}/space/hall")
                && serde_json::from_str::<Value>(payload)
                    .is_ok_and(|p| near_the_correction(&p["occupancy"]))
        })
        .map(|(at, _, _)| at.duration_since(corrected))
        .expect("the corrected count never reached the broker");
    let steady = messages
        .iter()
        .filter(|(at, topic, _)| *at >= steady_from && *at < steady_to && topic.starts_with(base))
        .count();
    let per_minute = steady as f64 * 60.0 / steady_to.duration_since(steady_from).as_secs_f64();
    eprintln!(
        "live MQTT: a corrected count reached the broker after {} ms; {per_minute:.0} messages a minute at steady state (vtest, 1 space of people, 2 cameras)",
        arrived.as_millis()
    );
}

/// `POST /api/v1/spaces/{space}/adjust` setting `count`.
fn adjust(port: u16, token: &str, space: &str, count: u32) -> (u16, Value) {
    post_json(
        port,
        &format!("/api/v1/spaces/{space}/adjust"),
        token,
        &json!({"set": count, "reason": "the test's correction"}),
    )
}
