//! The demo, end to end: a real RTSP server serving vtest -> the appliance
//! -> the API reports people in the path zone; the server dies and returns,
//! and the camera streams again within 10 s while the API keeps answering.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn occupancy_is_reported_and_the_camera_recovers_from_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let camera = start_camera(rtsp_port);
    let cfg = config(
        dir.path(),
        api_port,
        &[("campus", format!("rtsp://127.0.0.1:{rtsp_port}/vtest"))],
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
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        get(api_port, "/api/v1/occupancy").is_some(),
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
            ("good", format!("rtsp://127.0.0.1:{rtsp_port}/vtest")),
            ("dead", format!("rtsp://127.0.0.1:{dead_port}/nothing")),
        ],
    );
    let _appliance = start_appliance(&cfg, api_port);
    let settled = wait_until(Duration::from_secs(30), || {
        let good = camera_state(api_port, "good");
        let dead = camera_state(api_port, "dead");
        good.is_some_and(|(s, _)| s == "streaming") && dead.is_some_and(|(s, _)| s == "failing")
    });
    assert!(settled, "health: {:?}", get(api_port, "/api/v1/health"));
    let (_, reason) = camera_state(api_port, "dead").unwrap();
    assert_eq!(
        reason.as_deref(),
        Some("cannot connect to the camera (connection refused or unreachable)")
    );
    // The good camera keeps delivering analysed frames meanwhile.
    let analysed = |port| {
        get(port, "/api/v1/health").and_then(|(_, h)| {
            h["cameras"]
                .as_array()?
                .iter()
                .find(|c| c["camera"] == "good")?["frames_analysed"]
                .as_u64()
        })
    };
    let before = analysed(api_port).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        analysed(api_port).unwrap() > before,
        "the good camera stopped while the dead one was retried"
    );
    let (_, health) = get(api_port, "/api/v1/health").unwrap();
    assert_eq!(health["status"], "degraded");
}
