//! Scenario videos with exact ground truth (made by scripts/scenarios.py
//! during setup from real vtest footage): counted by `analyze --config`, and
//! served over RTSP to the running appliance, whose API must report the
//! true crossings, visits and final occupancy, and keep its entrance count
//! across a restart.

use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn scenario(name: &str) -> (PathBuf, PathBuf, Value) {
    let dir = std::env::var_os("HEADCOUNT_SCENARIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/headcount/scenarios".into());
    let (video, config) = (
        dir.join(format!("{name}.ts")),
        dir.join(format!("{name}.toml")),
    );
    let truth = dir.join(format!("{name}.truth.json"));
    assert!(
        video.is_file() && config.is_file() && truth.is_file(),
        "scenario {name} is missing in {}: run scripts/setup.sh (or scripts/test.sh)",
        dir.display()
    );
    let truth = serde_json::from_slice(&std::fs::read(truth).unwrap()).unwrap();
    (video, config, truth)
}

/// `analyze --config` on a scenario: its summary line.
fn analyze(name: &str) -> (Value, Value) {
    analyze_with(name, "", &[])
}

/// As `analyze`, with `extra` added to the scenario's config and `args`
/// to the command line.
fn analyze_with(name: &str, extra: &str, args: &[&str]) -> (Value, Value) {
    let _cores = Cores::exclusive();
    let (video, config, truth) = scenario(name);
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &edited,
        std::fs::read_to_string(&config).unwrap() + "\n" + extra,
    )
    .unwrap();
    let models = repo().join("models");
    let mut command = vec![
        "analyze",
        "--input",
        video.to_str().unwrap(),
        "--config",
        edited.to_str().unwrap(),
        "--models-dir",
        models.to_str().unwrap(),
    ];
    command.extend_from_slice(args);
    let (code, stdout, stderr) = run(&command, &[]);
    assert_eq!(code, 0, "{stderr}");
    let last = stdout.lines().last().unwrap();
    let summary: Value = serde_json::from_str(last).unwrap();
    (summary["summary"].clone(), truth)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[test]
fn analyze_counts_each_crossing_with_its_direction_and_each_visit() {
    let (summary, truth) = analyze("crossing_both_ways");
    assert_eq!(
        summary["lines"]["scene.door"]["in"],
        truth["crossings"]["scene.door"]["in"]
    );
    assert_eq!(
        summary["lines"]["scene.door"]["out"],
        truth["crossings"]["scene.door"]["out"]
    );
    let visits: Vec<f64> = serde_json::from_value(truth["dwell"]["scene.room"].clone()).unwrap();
    let room = &summary["zones"]["scene.room"];
    assert_eq!(
        room["visits"].as_u64(),
        Some(visits.len() as u64),
        "{summary}"
    );
    let measured = room["dwell_median_s"].as_f64().unwrap();
    let expected = median(&visits);
    assert!(
        (measured / expected - 1.0).abs() <= 0.1,
        "dwell median {measured} s, truth {expected} s"
    );
    assert_eq!(room["peak"], 1, "one person at a time: {summary}");
}

/// An exclusion zone (Frigate's object mask) over the spot where someone
/// stands for three minutes, as a mannequin or a poster would: what is
/// detected there is never counted, so the room holds no three-minute
/// visit, while the door still counts that person in and out on the way.
#[test]
fn an_exclusion_zone_keeps_a_standing_figure_out_of_the_count() {
    // The scenario's person waits with their feet at (0.81, 0.60), 0.11
    // of the width past the door. (An exclusion that begins right behind
    // a line can cost the crossings into it: a crossing is confirmed a few
    // steps past the line, and the person vanishes at the exclusion.)
    let (summary, truth) = analyze_with(
        "standing_still",
        "[cameras.scene.exclusions.mannequin]\n\
         polygon = [[0.79, 0.55], [0.84, 0.55], [0.84, 0.65], [0.79, 0.65]]\n",
        &["--fps", "2"],
    );
    let stay: Vec<f64> = serde_json::from_value(truth["dwell"]["scene.room"].clone()).unwrap();
    assert!(stay[0] > 170.0, "the truth changed: {stay:?}");
    let room = &summary["zones"]["scene.room"];
    // No visit at all, or only the steps between the door and the spot.
    let median = room["dwell_median_s"].as_f64().unwrap_or(0.0);
    assert!(
        median < 60.0,
        "visits of {median} s (median) were counted inside the exclusion: {summary}"
    );
    assert_eq!(
        summary["lines"]["scene.door"], truth["crossings"]["scene.door"],
        "{summary}"
    );
}

#[test]
fn a_person_stopping_on_the_line_counts_once() {
    let (summary, truth) = analyze("stop_on_line");
    let door = &summary["lines"]["scene.door"];
    let total = door["in"].as_u64().unwrap() + door["out"].as_u64().unwrap();
    assert_eq!(total, 1, "{summary}");
    assert_eq!(door["in"], truth["crossings"]["scene.door"]["in"]);
}

#[test]
fn the_appliance_reports_a_scenario_served_over_rtsp() {
    let _cores = Cores::exclusive();
    let (video, config, truth) = scenario("crossing_both_ways");
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let _camera = serve_file(rtsp_port, &video, "/scene", &[], &[]);
    // The scenario's config, pointed at the RTSP camera and this test's state.
    let mut table: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let set = |table: &mut toml::Table, section: &str, key: &str, value: toml::Value| {
        table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap()
            .insert(key.into(), value);
    };
    set(
        &mut table,
        "appliance",
        "state_dir",
        dir.path().join("state").display().to_string().into(),
    );
    set(
        &mut table,
        "appliance",
        "models_dir",
        repo().join("models").display().to_string().into(),
    );
    set(
        &mut table,
        "api",
        "bind",
        format!("127.0.0.1:{api_port}").into(),
    );
    set(&mut table, "analytics", "flush_secs", 1.into());
    table["cameras"]["scene"].as_table_mut().unwrap().insert(
        "url".into(),
        format!("rtsp://127.0.0.1:{rtsp_port}/scene").into(),
    );
    let cfg = dir.path().join("scenario.toml");
    std::fs::write(&cfg, toml::to_string(&table).unwrap()).unwrap();
    let appliance = start_appliance(&cfg, api_port);

    // The server plays the file from its start to each new client, in a
    // loop; the scenario ends with seconds of empty scene, so one second
    // into the second loop every figure of the first is final.
    let frames_seen = || {
        get(api_port, "/api/v1/health")
            .and_then(|(_, h)| h["cameras"][0]["frames_analysed"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || frames_seen() > 0),
        "no analysed frame within 30 s"
    );
    let first_frame = Instant::now();
    let length = Duration::from_secs_f64(truth["duration_s"].as_f64().unwrap());
    std::thread::sleep((length + Duration::from_secs(1)).saturating_sub(first_frame.elapsed()));

    let (status, flow) = get(api_port, "/api/v1/flow?line=scene.door&bucket=1h").unwrap();
    assert_eq!(status, 200, "{flow}");
    assert_eq!(
        flow["entries"], truth["crossings"]["scene.door"]["in"],
        "{flow}"
    );
    assert_eq!(
        flow["exits"], truth["crossings"]["scene.door"]["out"],
        "{flow}"
    );
    let (_, dwell) = get(api_port, "/api/v1/dwell?zone=scene.room&bucket=1h").unwrap();
    let visits = truth["dwell"]["scene.room"].as_array().unwrap().len() as u64;
    assert_eq!(dwell["visits"].as_u64(), Some(visits), "{dwell}");
    let (_, occupancy) = get(api_port, "/api/v1/occupancy").unwrap();
    assert_eq!(occupancy["zones"][0]["zone"], "scene.room");
    assert_eq!(
        occupancy["zones"][0]["occupancy"], 0,
        "the scene ends empty: {occupancy}"
    );
    let (_, history) = get(
        api_port,
        "/api/v1/occupancy/history?zone=scene.room&bucket=1h",
    )
    .unwrap();
    // The hour can turn during the run, so the peak is over every bucket.
    let peak = history["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|bucket| bucket["max_occupancy"].as_u64())
        .max();
    assert_eq!(peak, Some(1), "{history}");
    // Entries minus exits: people left the view on the room's side.
    let door = &truth["crossings"]["scene.door"];
    let inside = door["in"].as_u64().unwrap() - door["out"].as_u64().unwrap();
    let space = |occupancy: &Value| occupancy["spaces"][0]["occupancy"].as_u64();
    assert_eq!(space(&occupancy), Some(inside), "{occupancy}");

    // Killed and restarted (before anyone crosses again): the count is kept.
    drop(appliance);
    let _appliance = start_appliance(&cfg, api_port);
    let (_, occupancy) = get(api_port, "/api/v1/occupancy").unwrap();
    assert_eq!(
        space(&occupancy),
        Some(inside),
        "after a restart: {occupancy}"
    );
}
