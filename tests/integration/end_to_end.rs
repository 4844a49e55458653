//! The demo, end to end: a real RTSP server serving vtest -> the appliance
//! -> the API reports people in the path zone; the server dies and returns,
//! and the camera streams again within 10 s while the API keeps answering.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[test]
fn occupancy_is_reported_and_the_camera_recovers_from_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let camera = start_camera(rtsp_port);
    let cfg = config(
        dir.path(),
        api_port,
        &[("campus", format!("rtsp://127.0.0.1:{rtsp_port}/vtest"), "")],
    );
    let _appliance = start_appliance(&cfg, api_port);

    // vtest has 3-8 people on the path in every frame.
    let mut occupancy = 0;
    let counted = wait_until(Duration::from_secs(30), || {
        occupancy = get(api_port, "/api/v1/occupancy")
            .and_then(|(_, body)| body["zones"][0]["occupancy"].as_u64())
            .unwrap_or(0);
        occupancy > 0
    });
    assert!(counted, "no occupancy within 30 s");
    assert_eq!(camera_state(api_port, "campus").unwrap().0, "streaming");

    // Kill the server: the camera must leave `streaming`, the API must answer.
    drop(camera);
    let mut answered = 0;
    let failed = wait_until(Duration::from_secs(15), || {
        let state = camera_state(api_port, "campus");
        answered += state.is_some() as u32;
        state.is_some_and(|(s, _)| s != "streaming")
    });
    assert!(
        failed,
        "the camera still claims to stream after its server died"
    );
    assert!(
        holds_for(Duration::from_secs(4), || get(
            api_port,
            "/api/v1/occupancy"
        )
        .is_some()),
        "the API stopped answering during the outage"
    );

    let _camera = start_camera(rtsp_port);
    let back = Instant::now();
    let recovered = wait_until(Duration::from_secs(10), || {
        camera_state(api_port, "campus").is_some_and(|(s, _)| s == "streaming")
    });
    assert!(
        recovered,
        "not streaming within 10 s of the server's return (health: {:?})",
        get(api_port, "/api/v1/health")
    );
    eprintln!("recovered {:.1} s after the server returned; API answered {answered} polls during the outage", back.elapsed().as_secs_f64());

    // Minute buckets reach SQLite (flush every second) and the history API.
    let stored = wait_until(Duration::from_secs(10), || {
        get(api_port, "/api/v1/occupancy/history?zone=campus.path").is_some_and(|(_, b)| {
            b["buckets"]
                .as_array()
                .is_some_and(|v| v.iter().any(|b| b["max_occupancy"].as_u64() > Some(0)))
        })
    });
    assert!(
        stored,
        "no stored minute bucket with people: {:?}",
        get(api_port, "/api/v1/occupancy/history?zone=campus.path")
    );
}

#[test]
fn a_dead_camera_never_takes_the_good_one_down() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, dead_port, api_port) = (free_port(), free_port(), free_port());
    let _camera = start_camera(rtsp_port);
    let cfg = config(
        dir.path(),
        api_port,
        &[
            ("good", format!("rtsp://127.0.0.1:{rtsp_port}/vtest"), ""),
            // The same server over RTP/UDP: transport is configurable.
            (
                "good-udp",
                format!("rtsp://127.0.0.1:{rtsp_port}/vtest"),
                "transport = \"udp\"",
            ),
            ("dead", format!("rtsp://127.0.0.1:{dead_port}/nothing"), ""),
            (
                "wrong-path",
                format!("rtsp://127.0.0.1:{rtsp_port}/no-such-stream"),
                "",
            ),
        ],
    );
    let _appliance = start_appliance(&cfg, api_port);
    let state = |camera| camera_state(api_port, camera).map(|(s, _)| s);
    let settled = wait_until(Duration::from_secs(30), || {
        state("good").as_deref() == Some("streaming")
            && state("good-udp").as_deref() == Some("streaming")
            && state("dead").as_deref() == Some("failing")
            && state("wrong-path").as_deref() == Some("failing")
    });
    assert!(settled, "health: {:?}", get(api_port, "/api/v1/health"));
    let reason = |camera| camera_state(api_port, camera).unwrap().1;
    assert_eq!(
        reason("dead").as_deref(),
        Some("cannot connect to the camera (connection refused or unreachable)")
    );
    // A wrong path is a configuration error, named as such.
    assert_eq!(
        reason("wrong-path").as_deref(),
        Some("the camera has no such stream (404); check the URL path")
    );
    // The good camera keeps delivering analysed frames meanwhile.
    let before = frames_analysed(api_port, "good").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            frames_analysed(api_port, "good").is_some_and(|n| n > before)
        }),
        "the good camera stopped while the dead one was retried"
    );
    let (_, health) = get(api_port, "/api/v1/health").unwrap();
    assert_eq!(health["status"], "degraded");
}

#[test]
fn camera_credentials_work_and_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let secret = "s3cret-Pa55word";
    let _camera = start_camera_with(
        rtsp_port,
        &["--user", "viewer", "--password-env", "CAMERA_PASSWORD"],
        &[("CAMERA_PASSWORD", secret)],
    );
    let url = format!("rtsp://127.0.0.1:{rtsp_port}/vtest");
    let cfg = config(
        dir.path(),
        api_port,
        &[
            // Sealed in the state directory's secrets file.
            (
                "right",
                url.clone(),
                "credentials = { user = \"viewer\", password_ref = \"secret:right\" }",
            ),
            (
                "wrong",
                url.clone(),
                "credentials = { user = \"viewer\", password_ref = \"env:WRONG_PW\" }",
            ),
            ("anonymous", url, ""),
        ],
    );
    let sealed = seal_secret(&state_dir_of(&cfg), "right", secret);
    assert!(sealed.contains("sealed secret right"), "{sealed}");
    let log_path = dir.path().join("appliance.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [("WRONG_PW", "not-the-password"), ("RUST_LOG", "debug")];
    let _appliance = start_appliance_with(&cfg, api_port, &env, log.into());
    let state = |camera| camera_state(api_port, camera).map(|(s, _)| s);
    let settled = wait_until(Duration::from_secs(30), || {
        state("right").as_deref() == Some("streaming")
            && state("wrong").as_deref() == Some("failing")
            && state("anonymous").as_deref() == Some("failing")
    });
    assert!(settled, "health: {:?}", get(api_port, "/api/v1/health"));
    let refused =
        "the camera refused the credentials (401); check the configured user and password";
    for camera in ["wrong", "anonymous"] {
        assert_eq!(
            camera_state(api_port, camera).unwrap().1.as_deref(),
            Some(refused),
            "{camera}"
        );
    }
    // Neither password shows in any API answer or in the log, even at debug level.
    let (_, health) = get(api_port, "/api/v1/health").unwrap();
    let (_, occupancy) = get(api_port, "/api/v1/occupancy").unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    // Nor in the secrets file, which holds it sealed.
    let state = state_dir_of(&cfg);
    let sealed_file = std::fs::read_to_string(state.join("secrets.json")).unwrap();
    assert_eq!(
        std::fs::metadata(state.join("secrets.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    for text in [health.to_string(), occupancy.to_string(), log, sealed_file] {
        assert!(
            !text.contains(secret) && !text.contains("not-the-password"),
            "a password leaked: {text}"
        );
    }
}

/// The appliance's wall clock stepped 3 h forward, then 3 h back (fault
/// injection: the appliance's clock, never the machine's). The camera
/// neither stalls nor reconnects, no stream loss is raised, and counting
/// goes on in the minutes the clock shows, none elsewhere.
#[test]
fn clock_steps_neither_stall_a_camera_nor_misplace_its_minutes() {
    const HOURS_3: i64 = 3 * 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let _camera = start_camera(rtsp_port);
    let cfg = config(
        dir.path(),
        api_port,
        &[("campus", format!("rtsp://127.0.0.1:{rtsp_port}/vtest"), "")],
    );
    let offset = dir.path().join("clock-offset");
    std::fs::write(&offset, "0").unwrap();
    let _appliance = start_appliance_with(
        &cfg,
        api_port,
        &[(
            "HEADCOUNT_FAULT_CLOCK_OFFSET_FILE",
            offset.to_str().unwrap(),
        )],
        std::process::Stdio::inherit(),
    );
    let camera = || {
        get(api_port, "/api/v1/health").and_then(|(_, h)| {
            let c = h["cameras"].as_array()?.first()?.clone();
            Some((
                c["state"].as_str()?.to_string(),
                c["frames_analysed"].as_u64()?,
                c["reconnects"].as_u64()?,
            ))
        })
    };
    assert!(wait_until(Duration::from_secs(30), || camera()
        .is_some_and(|(s, n, _)| s == "streaming" && n > 0)));
    let real_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let started = real_now();
    let db = state_dir_of(&cfg).join("headcount.db");
    let samples_between = |from: i64, to: i64| -> i64 {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        conn.query_row(
            "SELECT COALESCE(SUM(samples), 0) FROM occupancy_minute WHERE bucket_start >= ?1 AND bucket_start < ?2",
            [from, to],
            |r| r.get(0),
        )
        .unwrap()
    };
    let around_now = || samples_between(started - 300_000, started + 300_000);
    let mut before_back = 0;
    for (step, label) in [(HOURS_3, "forward"), (0, "back")] {
        if step == 0 {
            before_back = around_now();
        }
        std::fs::write(&offset, step.to_string()).unwrap();
        let before = camera().unwrap().1;
        assert!(
            wait_until(Duration::from_secs(20), || camera()
                .is_some_and(|(_, after, _)| after > before + 2)),
            "analysis stopped after the step {label}"
        );
        let (state, _, reconnects) = camera().unwrap();
        assert_eq!(
            (state.as_str(), reconnects),
            ("streaming", 0),
            "after the step {label}"
        );
    }
    // Forward: counted 3 h ahead. Back: counted now again (each frame is a
    // sample; the flush runs every second). Nothing anywhere else.
    let ahead = || samples_between(started + HOURS_3 - 60_000, started + HOURS_3 + 300_000);
    assert!(
        wait_until(Duration::from_secs(10), || ahead() > 0
            && around_now() > before_back),
        "ahead {}, back {}",
        ahead(),
        around_now() - before_back
    );
    let ahead = ahead();
    let now_minutes = around_now();
    let back = now_minutes - before_back;
    let all = samples_between(i64::MIN, i64::MAX);
    assert!(ahead > 0 && back > 0, "ahead {ahead}, back {back}");
    assert_eq!(
        all,
        ahead + now_minutes,
        "samples in minutes the clock never showed"
    );
    let (_, anomalies) = get(api_port, "/api/v1/anomalies").unwrap();
    assert!(
        !anomalies.to_string().contains("stream_loss"),
        "a clock step raised stream loss: {anomalies}"
    );
}

/// Fixtures through the running appliance: a frozen view served over RTSP
/// is counted, then, `detection.fixture_after_secs` later, health names its
/// fixtures and the zone is empty.
#[test]
fn a_frozen_view_is_counted_until_health_names_its_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let still = frozen_vtest(dir.path(), 120);
    let (rtsp_port, api_port) = (free_port(), free_port());
    let _camera = serve_file(rtsp_port, &still, "/still", &[], &[]);
    let cfg = config(
        dir.path(),
        api_port,
        &[(
            "still",
            format!("rtsp://127.0.0.1:{rtsp_port}/still"),
            "analysis_fps = 1",
        )],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += "[detection]\nfixture_after_secs = 30\nauto_detail = false\n";
    std::fs::write(&cfg, text).unwrap();
    // Before the start, so before the first look: fixtures must not come
    // sooner than 30 s after this, whatever the first count's delay.
    let started = Instant::now();
    let _appliance = start_appliance(&cfg, api_port);
    let occupancy = || {
        get(api_port, "/api/v1/occupancy")
            .and_then(|(_, body)| body["zones"][0]["occupancy"].as_u64())
    };
    let fixtures =
        || get(api_port, "/api/v1/health").and_then(|(_, h)| h["cameras"][0]["fixtures"].as_u64());
    assert!(
        wait_until(Duration::from_secs(30), || occupancy()
            .is_some_and(|n| n > 0)),
        "the frozen people were not counted within 30 s"
    );
    assert_eq!(fixtures(), Some(0), "fixtures before their time");
    assert!(
        wait_until(Duration::from_secs(60), || fixtures()
            .is_some_and(|n| n > 0)
            && occupancy() == Some(0)),
        "after 60 s: fixtures {:?}, occupancy {:?}",
        fixtures(),
        occupancy()
    );
    // Not before the fixture time, 30 s from the first look.
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
