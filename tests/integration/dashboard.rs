//! The dashboard in a real browser: the appliance watches the demo camera
//! (a real RTSP server on loopback) with snapshots on, a line and a space
//! of small capacity; tests/e2e/dashboard.mjs drives Debian's Chromium
//! through it (keyboard login as facilities, occupancy against the API, a
//! live "reconnecting" when the camera server is killed, CSRF, logout, an
//! admin drawing a zone). Afterwards this test checks that the drawn zone is
//! in the config file, served by the same running appliance with the old
//! zone and the line's counts kept, and recorded in the audit log.
//!
//! Needs Node.js, /usr/bin/chromium and tests/e2e/node_modules, all from
//! scripts/setup.sh. Screenshots go to target/e2e-artifacts.
//!   cargo test --release --test dashboard -- --nocapture

use crate::common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest the browser script may run (it has its own 280 s watchdog).
const NODE_LIMIT: Duration = Duration::from_secs(330);
/// What the script draws (tests/e2e/dashboard.mjs, NEW_ZONE*).
const NEW_ZONE: &str = "e2e_zone";
const NEW_ZONE_POINTS: [[f64; 2]; 4] = [[0.10, 0.70], [0.25, 0.70], [0.25, 0.90], [0.10, 0.90]];

/// Fails (never skips) when what scripts/setup.sh installs is missing.
fn require_browser_tools(e2e: &Path) {
    let hint = "run scripts/setup.sh (it installs chromium, Node.js and tests/e2e/node_modules)";
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: {hint}"
    );
    assert!(
        e2e.join("node_modules/playwright-core/package.json")
            .is_file(),
        "{} is missing: {hint}",
        e2e.join("node_modules/playwright-core").display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` does not run ({node:?}): {hint}"
    );
}

/// Entries and exits over a line in the last hour.
fn flow(port: u16, line: &str) -> Option<(u64, u64)> {
    let (status, body) = get(port, &format!("/api/v1/flow?line={line}"))?;
    (status == 200).then_some(())?;
    Some((body["entries"].as_u64()?, body["exits"].as_u64()?))
}

/// One zone's entry in GET /api/v1/occupancy.
fn zone_occupancy(port: u16, key: &str) -> Option<Value> {
    let (_, body) = get(port, "/api/v1/occupancy")?;
    body["zones"]
        .as_array()?
        .iter()
        .find(|z| z["zone"] == key)
        .cloned()
}

/// Every audit entry, page by page.
fn audit_entries(port: u16) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get(port, &format!("/api/v1/dpo/audit?limit=5000&after={after}"))
            .expect("GET /api/v1/dpo/audit did not answer");
        assert_eq!(status, 200, "GET /api/v1/dpo/audit: {page}");
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return entries,
        }
    }
}

/// Runs the browser script, echoing its output as it comes; its exit
/// status and everything it printed.
fn run_browser(script: &Path, env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(script.parent().unwrap())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node did not start: run scripts/setup.sh");
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                println!("  node| {line}");
                let mut all = output.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        })
    })
    .collect();
    let deadline = Instant::now() + NODE_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            output
                .lock()
                .unwrap()
                .push_str(&format!("(killed: ran over {NODE_LIMIT:?})\n"));
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for reader in readers {
        let _ = reader.join();
    }
    let all = output.lock().unwrap().clone();
    (status, all)
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let repo = repo();
    let e2e = repo.join("tests/e2e");
    require_browser_tools(&e2e);
    let artifacts = repo.join("target/e2e-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (api_port, rtsp_port) = (free_port(), free_port());
    let camera = start_camera(rtsp_port);
    let url = format!("rtsp://127.0.0.1:{rtsp_port}/vtest");
    let config = config(dir.path(), api_port, &[("lobby", url, "")]);
    // The path zone gets a capacity (its polygon is the last line written),
    // a line crosses the path, a space of capacity 2 over the zone (vtest
    // has 3-8 people there: over capacity), and redacted snapshots for the
    // editor.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "capacity = 20\n\
             [cameras.lobby.lines.crossing]\npoints = [[0.5, 0.15], [0.5, 0.95]]\nin = \"left\"\n\
             [spaces.hall]\nzones = [\"lobby.path\"]\ncapacity = 2\n\
             [spaces.doors]\nentrances = [\"lobby.crossing\"]\n\
             [privacy]\nsnapshots = true\n";
    std::fs::write(&config, &text).unwrap();

    let mut appliance = start_appliance(&config, api_port);
    let appliance_pid = appliance.0.id();
    let admin = admin_token(api_port).unwrap();
    let facilities = issue_token(&state_dir_of(&config), "frontdesk", "facilities");

    assert!(
        wait_until(Duration::from_secs(60), || camera_state(api_port, "lobby")
            .is_some_and(|(s, _)| s == "streaming")),
        "the camera is not streaming within 60 s: {:?}",
        get(api_port, "/api/v1/health")
    );
    assert!(
        wait_until(Duration::from_secs(60), || zone_occupancy(
            api_port,
            "lobby.path"
        )
        .is_some_and(|z| z["occupancy"].as_u64().is_some())),
        "no occupancy for lobby.path within 60 s: {:?}",
        get(api_port, "/api/v1/occupancy")
    );
    // Some crossings, so that "counts kept" means something.
    let crossed = wait_until(Duration::from_secs(45), || {
        flow(api_port, "lobby.crossing").is_some_and(|(i, o)| i + o > 0)
    });
    let flow_before = flow(api_port, "lobby.crossing").expect("GET /api/v1/flow failed");
    println!(
        "before the browser: lobby.crossing entries/exits {flow_before:?}{}",
        if crossed {
            ""
        } else {
            " (no crossing within 45 s; the counts-kept check is weak)"
        }
    );

    let script = e2e.join("dashboard.mjs");
    let env = [
        ("HEADCOUNT_URL", format!("http://127.0.0.1:{api_port}")),
        ("HEADCOUNT_ADMIN_TOKEN", admin.clone()),
        ("HEADCOUNT_FACILITIES_TOKEN", facilities),
        ("HEADCOUNT_RTSP_PID", camera.0.id().to_string()),
        ("HEADCOUNT_ARTIFACTS", artifacts.display().to_string()),
        ("HEADCOUNT_CONFIG", config.display().to_string()),
        ("HEADCOUNT_CHROMIUM", CHROMIUM.to_string()),
    ];
    let started = Instant::now();
    let (status, output) = run_browser(&script, &env);
    println!(
        "the browser script ran {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
    if status != Some(0) {
        let lines: Vec<&str> = output.lines().collect();
        let tail = lines[lines.len().saturating_sub(120)..].join("\n");
        panic!(
            "the browser test failed (node exit {status:?}); screenshots and, on a failure, \
             failure.png/failure.html in {}\n--- node output (last 120 lines; all of it above) ---\n{tail}\n--- end ---",
            artifacts.display()
        );
    }

    // The same appliance process, never restarted.
    assert!(
        appliance.0.try_wait().unwrap().is_none(),
        "the appliance exited during the browser test"
    );
    assert_eq!(appliance.0.id(), appliance_pid);
    assert_eq!(get_raw(api_port, "/livez").map(|r| r.0), Some(200));

    // The config file is never written (a packaged one is read-only); the
    // drawn zone is in the dashboard's overlay, and the config as loaded
    // (`check-config --merged`) has it, the rest kept.
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        text,
        "the editor wrote to the config file"
    );
    let (code, merged, stderr) = run(&["check-config", config.to_str().unwrap(), "--merged"], &[]);
    assert_eq!(code, 0, "{merged}{stderr}");
    assert!(
        stderr.contains("zones and lines of lobby from") && stderr.contains("config-overlay.toml"),
        "{stderr}"
    );
    let on_disk: toml::Table = merged
        .parse()
        .unwrap_or_else(|e| panic!("the merged config is not valid TOML: {e}\n{merged}"));
    let lobby = &on_disk["cameras"]["lobby"];
    let zone = lobby["zones"].get(NEW_ZONE).unwrap_or_else(|| {
        panic!(
            "zone {NEW_ZONE} is not in {}:\n{on_disk:#?}",
            config.display()
        )
    });
    let polygon: Vec<[f64; 2]> = zone["polygon"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = p.as_array().unwrap();
            let n = |v: &toml::Value| v.as_float().or(v.as_integer().map(|i| i as f64)).unwrap();
            [n(&p[0]), n(&p[1])]
        })
        .collect();
    println!(
        "in {}: zone {NEW_ZONE} polygon {polygon:?}",
        config.display()
    );
    assert_eq!(polygon.len(), NEW_ZONE_POINTS.len(), "{polygon:?}");
    for (got, want) in polygon.iter().zip(NEW_ZONE_POINTS) {
        assert!(
            (got[0] - want[0]).abs() <= 0.02 && (got[1] - want[1]).abs() <= 0.02,
            "{NEW_ZONE} saved as {polygon:?}, drawn at {NEW_ZONE_POINTS:?}"
        );
    }
    assert!(lobby["zones"].get("path").is_some(), "zone path was lost");
    assert_eq!(
        lobby["zones"]["path"]
            .get("capacity")
            .and_then(|c| c.as_integer()),
        Some(20),
        "zone path lost its capacity"
    );
    assert!(
        lobby["lines"].get("crossing").is_some(),
        "line crossing was lost"
    );
    assert!(
        lobby["zones"].get("e2e_bad").is_none(),
        "the refused zone was written"
    );
    assert_eq!(
        on_disk["spaces"]["hall"]["capacity"].as_integer(),
        Some(2),
        "space hall changed"
    );
    assert_eq!(
        on_disk["privacy"]["snapshots"].as_bool(),
        Some(true),
        "privacy.snapshots changed"
    );
    assert_eq!(
        on_disk["cameras"]["lobby"]["url"].as_str(),
        Some(format!("rtsp://127.0.0.1:{rtsp_port}/vtest").as_str())
    );

    // The running appliance serves it, with the old zone and the line's counts kept.
    let new_key = format!("lobby.{NEW_ZONE}");
    assert!(
        zone_occupancy(api_port, &new_key).is_some(),
        "GET /api/v1/occupancy does not list {new_key}: {:?}",
        get(api_port, "/api/v1/occupancy")
    );
    assert!(
        zone_occupancy(api_port, "lobby.path").is_some(),
        "lobby.path is gone from GET /api/v1/occupancy"
    );
    let flow_after = flow(api_port, "lobby.crossing").expect("GET /api/v1/flow failed");
    println!("after the browser: lobby.crossing entries/exits {flow_after:?}");
    assert!(
        flow_after.0 >= flow_before.0 && flow_after.1 >= flow_before.1,
        "the line's counts went down: {flow_before:?} -> {flow_after:?}"
    );

    // A config_change by admin in the audit log.
    let entries = audit_entries(api_port);
    let changes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "config_change")
        .collect();
    for change in &changes {
        println!("audit: {change}");
    }
    assert!(
        changes.iter().any(|e| e["role"] == "admin"),
        "no config_change entry by admin in the audit log ({} entries)",
        entries.len()
    );
    // The line check tapped in the browser, recorded with its taps.
    let validation = changes
        .iter()
        .find(|e| e["target"] == "validation of line lobby.crossing")
        .unwrap_or_else(|| panic!("the browser's line check is not in the audit log"));
    assert_eq!(validation["role"], "facilities", "{validation}");
    let detail = &validation["detail"];
    let taps = if detail.is_string() {
        serde_json::from_str(detail.as_str().unwrap()).unwrap()
    } else {
        detail.clone()
    };
    assert_eq!(taps["taps"], serde_json::json!([3, 2]), "{validation}");
    // The count corrected on the card, with its reason.
    let corrected = changes
        .iter()
        .find(|e| e["target"] == "count of space doors")
        .unwrap_or_else(|| panic!("the browser's correction is not in the audit log"));
    assert_eq!(corrected["role"], "facilities", "{corrected}");
    assert_eq!(corrected["detail"]["after"], 4, "{corrected}");
    assert_eq!(
        corrected["detail"]["reason"], "e2e: counted by eye",
        "{corrected}"
    );

    // The camera comes back: the new zone is analysed (a number, not null).
    let _camera = start_camera(rtsp_port);
    assert!(
        wait_until(Duration::from_secs(90), || {
            camera_state(api_port, "lobby").is_some_and(|(s, _)| s == "streaming")
                && zone_occupancy(api_port, &new_key).is_some_and(|z| z["occupancy"].is_u64())
        }),
        "after the camera's return, {new_key} gets no occupancy: {:?} {:?}",
        get(api_port, "/api/v1/health"),
        zone_occupancy(api_port, &new_key)
    );
    assert!(appliance.0.try_wait().unwrap().is_none());
    println!("{new_key}: {}", zone_occupancy(api_port, &new_key).unwrap());
    drop(camera);
}
