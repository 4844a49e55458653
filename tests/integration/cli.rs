//! The command line's promises: every config error at once, clear errors for
//! a missing ONNX Runtime and a tampered model (never a panic), and the
//! shape of `analyze` output on the real demo video.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
}

#[test]
fn check_config_lists_every_error_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[api]
bind = "127.0.0.1:http"
[cameras.lobby]
url = "rtsp://admin:pw@10.1.2.3/live"
[cameras.lobby.zones.entrance]
polygon = [[0.1, 0.1], [0.5, 0.5]]
[cameras.lobby.zones.bow_tie]
polygon = [[0.2, 0.2], [0.8, 0.8], [0.8, 0.2], [0.2, 0.8]]
[cameras.lobby.lines.door]
points = [[0.4, 0.9], [0.4, 0.9]]
in = "left"
[cameras.hall]
url = "testsrc:ball"
analysis_fps = 100
[cameras.hall.zones.stage]
polygon = [[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]]
[spaces.building]
zones = ["lobby.entrance", "hall.attic"]
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["check-config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "api.bind: `127.0.0.1:http` is not an address:port such as 127.0.0.1:8080",
            "cameras.hall.analysis_fps: 100 is outside (0, 30]",
            "cameras.hall.zones.stage.polygon[1]: [1.5, 0.1] is outside the frame; coordinates are fractions in [0, 1]",
            "cameras.lobby.zones.bow_tie.polygon: edges 0 and 2 cross; the points must go around the outline in order",
            "cameras.lobby.zones.entrance.polygon: needs at least 3 points, has 2",
            "cameras.lobby.lines.door.points: the two points are (almost) the same: a line needs a length of at least 0.01",
            "cameras.lobby.url: must not contain credentials; use credentials = { user = ..., password_ref = \"env:NAME\" }",
            "spaces.building.zones[0]: `lobby.entrance` is not a zone of any camera (write camera.zone)",
            "spaces.building.zones[1]: `hall.attic` is not a zone of any camera (write camera.zone)",
        ],
        "stderr: {stderr}"
    );
    assert!(!stdout.contains("pw@"), "the password was echoed");
    let (code, stdout, _) = run(
        &[
            "check-config",
            repo().join("config/demo.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}");
}

/// The disclosure settings' mistakes, each named by its key, all at once.
#[test]
fn check_config_names_every_disclosure_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[cameras.office]
url = "testsrc:ball"
[cameras.office.zones.desk]
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
capacity = 1
[cameras.office.zones.hall]
polygon = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]
capacity = 40
small_zone_justification = "it is a big hall"
[aggregates]
k = 1
differential_privacy = true
epsilon = 2.0
daily_epsilon = 0.5
[anomalies]
wrong_way_push = "daily"
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["check-config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "aggregates.k: 1 is outside [2, 100]",
            "aggregates.daily_epsilon: 0.5 is below one release (aggregates.epsilon = 2): nothing could be published; a day has up to 121 releases",
            "cameras.office.zones.desk.capacity: 1 is below aggregates.k (5): a count this small singles a person out; to count this zone anyway, say why in cameras.office.zones.desk.small_zone_justification (it is shown in the processing record)",
            "cameras.office.zones.hall.small_zone_justification: justifies nothing: the zone's capacity is not below aggregates.k (5)",
            "anomalies.wrong_way_push: `daily` is not each, 15m or 1h",
        ],
        "stderr: {stderr}"
    );
    // Justified, the desk is counted.
    std::fs::write(
        &path,
        "[cameras.office]\nurl = \"testsrc:ball\"\n[cameras.office.zones.desk]\n\
         polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]\ncapacity = 1\n\
         small_zone_justification = \"the desk's free or taken light\"\n",
    )
    .unwrap();
    let (code, stdout, _) = run(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_missing_or_broken_onnx_runtime_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let still = media("vtest.avi");
    let models = repo().join("models");
    let args = [
        "analyze",
        "--input",
        still.to_str().unwrap(),
        "--models-dir",
        models.to_str().unwrap(),
    ];
    let missing = dir.path().join("libonnxruntime.so.1.31.1");
    let (code, _, stderr) = run(&args, &[("ORT_DYLIB_PATH", missing.to_str().unwrap())]);
    assert_eq!(code, 1);
    assert_no_panic(&stderr);
    assert!(
        stderr.contains("ONNX Runtime library not found"),
        "{stderr}"
    );
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");

    std::fs::write(&missing, b"not a shared library").unwrap();
    let (code, _, stderr) = run(&args, &[("ORT_DYLIB_PATH", missing.to_str().unwrap())]);
    assert_eq!(code, 1);
    assert_no_panic(&stderr);
    assert!(stderr.contains("cannot load ONNX Runtime from"), "{stderr}");
}

/// A config for one test-pattern camera that loads its models from `models`.
fn config_with_models(dir: &Path, models: &Path) -> std::path::PathBuf {
    let cfg = dir.join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[appliance]\nstate_dir = {:?}\nmodels_dir = {:?}\n[api]\nbind = \"127.0.0.1:{}\"\n[security]\nsyslog = \"none\"\n[cameras.c]\nurl = \"testsrc:ball\"\n",
            dir.join("state"),
            models,
            free_port()
        ),
    )
    .unwrap();
    cfg
}

fn copy_models(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(repo().join("models")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn a_tampered_model_is_refused_by_verify_and_by_the_appliance() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    copy_models(&models);
    let (code, stdout, _) = run(
        &["models", "verify", "--models-dir", models.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout.matches("]: ok").count(), 2, "{stdout}");

    // Flip one byte in the middle of the face model.
    let face = models.join("face_detection_yunet_2023mar.onnx");
    let mut bytes = std::fs::read(&face).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&face, bytes).unwrap();

    let (code, stdout, stderr) = run(
        &["models", "verify", "--models-dir", models.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1);
    assert_no_panic(&stderr);
    assert!(
        stdout.contains("face_detection_yunet_2023mar.onnx has sha256"),
        "{stdout}"
    );
    assert!(stdout.contains("refusing to load it"), "{stdout}");

    // The appliance refuses to start with it, before touching any camera.
    let cfg = config_with_models(dir.path(), &models);
    let (code, _, stderr) = run(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert_no_panic(&stderr);
    assert!(stderr.contains("altered or corrupted"), "{stderr}");
}

#[test]
fn only_a_manifest_signed_by_the_release_key_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    copy_models(&models);
    let models_arg = models.to_str().unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["models", "verify", "--models-dir", models_arg];
        args.extend_from_slice(extra);
        run(&args, &[])
    };
    let (code, stdout, _) = verify(&[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("manifest signature: ok"), "{stdout}");

    // One byte of the manifest changed (the licence of a model, say).
    let manifest = models.join("manifest.toml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        original.replacen("licence = \"MIT\"", "licence = \"MIU\"", 1),
    )
    .unwrap();
    let (code, _, stderr) = verify(&[]);
    assert_eq!(code, 1);
    assert_no_panic(&stderr);
    assert!(stderr.contains("does not match its signature"), "{stderr}");

    // A manifest re-signed with some other key is not trusted either...
    let key = dir.path().join("other.pk8");
    let (code, public, stderr) = run(&["models", "keygen", "--out", key.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, _, stderr) = run(
        &[
            "models",
            "sign",
            "--models-dir",
            models_arg,
            "--key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("does not trust that key"), "{stderr}");
    let (code, _, stderr) = verify(&[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("which this build does not trust"),
        "{stderr}"
    );
    // ...though it verifies against that key when asked explicitly.
    let (code, stdout, stderr) = verify(&["--public-key", public.trim()]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Without a signature nothing loads, and the appliance does not start.
    std::fs::remove_file(models.join("manifest.toml.sig")).unwrap();
    let (code, _, stderr) = verify(&[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not signed"), "{stderr}");
    let cfg = config_with_models(dir.path(), &models);
    let (code, _, stderr) = run(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert_no_panic(&stderr);
    assert!(
        stderr.contains("MODEL_REJECTED") && stderr.contains("is not signed"),
        "{stderr}"
    );
}

/// `analyze --config` of vtest at 0.25 fps with camera `cam` (a zone over
/// the whole view) and `extra` config lines: its frames and summary.
fn analyze_vtest_with(extra: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let models = repo().join("models");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[appliance]\nstate_dir = {:?}\nmodels_dir = {:?}\n[cameras.cam]\nurl = \"testsrc:ball\"\n\
             [cameras.cam.zones.all]\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n{extra}",
            dir.path().join("state"),
            models
        ),
    )
    .unwrap();
    let video = media("vtest.avi");
    let (code, stdout, stderr) = run(
        &[
            "analyze",
            "--input",
            video.to_str().unwrap(),
            "--fps",
            "0.25",
            "--boxes",
            "--config",
            config.to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().unwrap();
    (lines, summary)
}

/// Centres of the confident person boxes of every frame.
fn person_centres(frames: &[serde_json::Value]) -> Vec<(f64, f64)> {
    frames
        .iter()
        .flat_map(|f| f["boxes"]["persons"].as_array().unwrap().clone())
        .filter(|b| b[4].as_f64().unwrap() >= 0.5)
        .map(|b| {
            let v = |i: usize| b[i].as_f64().unwrap();
            ((v(0) + v(2)) / 2.0, (v(1) + v(3)) / 2.0)
        })
        .collect()
}

#[test]
fn a_privacy_mask_hides_its_people_from_the_detector_and_an_exclusion_from_the_count() {
    // vtest has people walking on both halves of its path.
    let (frames, summary) = analyze_vtest_with("");
    let left = |c: &&(f64, f64)| c.0 < 0.4;
    let centres = person_centres(&frames);
    assert!(
        centres.iter().filter(left).count() >= 10,
        "too few people on the left to tell: {centres:?}"
    );
    assert!(
        summary["summary"]["zones"]["cam.all"]["peak"].as_u64() >= Some(3),
        "{summary}"
    );

    // The left half masked: the person model's input there is flat grey.
    let (frames, _) = analyze_vtest_with(
        "[cameras.cam.masks.left]\npolygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]\n",
    );
    let centres = person_centres(&frames);
    let hidden: Vec<_> = centres.iter().filter(left).collect();
    assert!(
        hidden.is_empty(),
        "persons found under the mask: {hidden:?}"
    );
    assert!(
        centres.len() >= 10,
        "the unmasked half lost its people too: {centres:?}"
    );

    // Excluded everywhere: people are still detected, and never counted.
    let (frames, summary) = analyze_vtest_with(
        "[cameras.cam.exclusions.everything]\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n",
    );
    assert!(person_centres(&frames).len() >= 10);
    assert_eq!(
        summary["summary"]["zones"]["cam.all"]["peak"], 0,
        "{summary}"
    );
}

/// `headcount analyze ... | head -1`: the tool ends by SIGPIPE when its
/// reader goes away, without a panic or a backtrace.
#[test]
fn a_tool_whose_reader_goes_away_ends_quietly() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let (video, models) = (media("vtest.avi"), repo().join("models"));
    let mut child = Command::new(BIN)
        .args(["analyze", "--input", video.to_str().unwrap(), "--fps", "5"])
        .args(["--models-dir", models.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone; vtest has 400 frames more to print at 5 fps.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
    assert_no_panic(&stderr);
}

/// Fixtures: what the person model finds in a view where nothing changes
/// stops counting after `detection.fixture_after_secs` (vtest's first
/// frame, frozen: a poster of people, as far as the appliance can tell);
/// with fixtures off it is counted to the end.
#[test]
fn a_view_that_never_changes_stops_counting_after_the_fixture_time() {
    let dir = tempfile::tempdir().unwrap();
    let still = frozen_vtest(dir.path(), 90);
    let counts = |fixture_after_secs: u32| -> Vec<(i64, u64)> {
        let config = dir
            .path()
            .join(format!("fixtures-{fixture_after_secs}.toml"));
        std::fs::write(
            &config,
            format!(
                "[appliance]\nsite = \"test\"\nmodels_dir = \"{}\"\nstate_dir = \"{}\"\n\
                 [cameras.still]\nurl = \"file:still.ts\"\nanalysis_fps = 0.5\n\
                 [detection]\nfixture_after_secs = {fixture_after_secs}\n\
                 # The whole view once a look: a quarter of the default's cost.\n\
                 auto_detail = false\n",
                repo().join("models").display(),
                dir.path().join("state").display(),
            ),
        )
        .unwrap();
        let (code, stdout, stderr) = run(
            &[
                "analyze",
                "--input",
                still.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter_map(|f| Some((f.get("timestamp_ms")?.as_i64()?, f["tracked"].as_u64()?)))
            .collect()
    };
    let learned = counts(60);
    assert!(learned.len() >= 40, "{learned:?}");
    assert!(
        learned.iter().all(|&(at, n)| at >= 55_000 || n >= 1),
        "the people were not counted before a minute: {learned:?}"
    );
    assert!(
        learned.iter().all(|&(at, n)| at < 65_000 || n == 0),
        "still counted after a minute: {learned:?}"
    );
    let off = counts(0);
    assert!(
        off.iter().all(|&(_, n)| n >= 1),
        "with fixtures off the people stopped counting: {off:?}"
    );
}

#[test]
fn analyze_prints_one_json_line_per_analysed_frame() {
    let video = media("vtest.avi");
    let models = repo().join("models");
    // vtest is 79.5 s at 10 fps; at 0.5 fps that is 40 analysed frames.
    let (code, stdout, stderr) = run(
        &[
            "analyze",
            "--input",
            video.to_str().unwrap(),
            "--fps",
            "0.5",
            "--boxes",
            "--models-dir",
            models.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().unwrap();
    assert_eq!(
        summary["summary"]["frames"].as_u64(),
        Some(lines.len() as u64)
    );
    let frames = lines;
    assert!((39..=41).contains(&frames.len()), "{} frames", frames.len());
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["frame"], i as u64);
        assert_eq!(f["timestamp_ms"], i as u64 * 2000, "{f}");
        let persons = f["boxes"]["persons"].as_array().unwrap();
        // Boxes go down to the low threshold (for the tracker); the count
        // is of those at or above the person threshold.
        let confident = persons.iter().filter(|b| b[4].as_f64().unwrap() >= 0.5);
        assert_eq!(f["persons"].as_u64().unwrap() as usize, confident.count());
        for b in persons {
            let v: Vec<f64> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert!(
                v[..4].iter().all(|c| (0.0..=1.0).contains(c)) && v[0] < v[2] && v[1] < v[3],
                "{b}"
            );
            assert!(v[4] >= 0.3, "{b}");
        }
        // The tracker's boxes are the people `tracked` counts.
        let tracked = f["boxes"]["tracked"].as_array().unwrap();
        assert_eq!(
            f["tracked"].as_u64().unwrap() as usize,
            tracked.len(),
            "{f}"
        );
        assert!(
            tracked.iter().all(|b| b.as_array().unwrap().len() == 4),
            "{f}"
        );
    }
    // 3-8 people walk in every frame: the mean count must be in that range.
    let mean = frames
        .iter()
        .map(|f| f["persons"].as_f64().unwrap())
        .sum::<f64>()
        / frames.len() as f64;
    assert!((3.0..=8.0).contains(&mean), "mean persons per frame {mean}");
}

#[test]
fn dpo_record_and_notice_are_made_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let purpose = "occupancy of the lobby for fire-safety capacity";
    let path = config(
        dir.path(),
        free_port(),
        &[(
            "lobby",
            "testsrc:ball".into(),
            &format!("purpose = \"{purpose}\""),
        )],
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text += "[controller]\nname = \"ACME Facilities GmbH\"\ncontact = \"privacy@acme.example\"\n";
    // Cameras whose passwords the DPO's machine does not have: an unset
    // variable and a secret sealed on the appliance only.
    text += "[cameras.door]\nurl = \"rtsp://127.0.0.1:9/door\"\n\
             credentials = { user = \"viewer\", password_ref = \"env:HEADCOUNT_NEVER_SET_PW\" }\n\
             [cameras.yard]\nurl = \"rtsp://127.0.0.1:9/yard\"\n\
             credentials = { user = \"viewer\", password_ref = \"secret:yard\" }\n";
    std::fs::write(&path, text).unwrap();
    let config = path.to_str().unwrap();

    // The appliance itself still needs them...
    let (code, out, _) = run(&["check-config", config], &[]);
    assert_ne!(code, 0);
    assert!(
        out.contains("cameras.door.credentials.password_ref: environment variable HEADCOUNT_NEVER_SET_PW is not set"),
        "{out}"
    );
    // ...the DPO's documents do not.

    let (code, md, stderr) = run(&["dpo", "record", "--config", config], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        md.starts_with("# Record of processing activities (GDPR Art. 30)"),
        "{md}"
    );
    assert!(md.contains(purpose), "{md}");

    let (code, json, stderr) = run(
        &["dpo", "record", "--config", config, "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let record: serde_json::Value = serde_json::from_str(&json).unwrap();
    let lobby = record["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["camera"] == "lobby")
        .unwrap();
    assert_eq!(lobby["purpose"], purpose);
    assert_eq!(record["controller"]["name"], "ACME Facilities GmbH");
    let retention = record["retention"].as_array().unwrap();
    for class in ["events", "aggregates_1m", "aggregates_1d", "audit_log"] {
        assert!(
            retention
                .iter()
                .any(|r| r["class"] == class && r["limit"].is_string()),
            "{class} missing in {json}"
        );
    }

    let (code, sign, stderr) = run(
        &["dpo", "notice", "--config", config, "--camera", "lobby"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let words = sign.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("Purpose: {purpose}")), "{sign}");
    assert!(
        words.contains("No images are recorded or stored."),
        "{sign}"
    );

    let (code, _, stderr) = run(
        &["dpo", "notice", "--config", config, "--camera", "attic"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("unknown camera `attic`; known cameras: door, lobby, yard"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

#[test]
fn audit_verify_names_an_altered_and_a_removed_entry() {
    use headcount_domain::security::AuditKey;
    use headcount_store::{AuditAction, AuditEntry, Database};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let db_path = state.join("headcount.db");
    {
        let mut db = Database::open(&db_path).unwrap();
        let key = AuditKey::load_or_create(&state).unwrap();
        for i in 1..=30u64 {
            let entry = AuditEntry {
                actor: "dpo-desk".into(),
                role: "dpo".into(),
                action: AuditAction::ApiAccess,
                target: "/api/v1/occupancy/history".into(),
                rows: i,
                detail: serde_json::json!({ "status": 200 }),
            };
            db.append_audit(i as i64 * 1000, &[entry]).unwrap();
            if i % 10 == 0 {
                db.checkpoint_audit(i as i64 * 1000, &key).unwrap();
            }
        }
    }
    let state_arg = state.to_str().unwrap();
    let (code, stdout, stderr) = run(&["audit", "verify", "--state-dir", state_arg], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("checked 30 entries"), "{stdout}");
    assert!(stdout.contains("the audit log is intact"), "{stdout}");

    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute_batch(
        "UPDATE audit_log SET rows = 999 WHERE seq = 7; DELETE FROM audit_log WHERE seq = 12;",
    )
    .unwrap();
    drop(conn);
    let (code, stdout, stderr) = run(&["audit", "verify", "--state-dir", state_arg], &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_no_panic(&stderr);
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("PROBLEM: "))
        .collect();
    assert_eq!(
        problems,
        [
            "PROBLEM: entry 7 was altered: its contents no longer match its hash",
            "PROBLEM: entry 12 was removed (between 11 and 13)",
        ],
        "{stdout}"
    );

    // Against a key other than the device's, no checkpoint verifies.
    let other = headcount_domain::security::to_hex(&AuditKey::generate().unwrap().public_key());
    let (code, stdout, _) = run(
        &[
            "audit",
            "verify",
            "--state-dir",
            state_arg,
            "--public-key",
            &other,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("checkpoint at entry 30 has a signature that does not verify"),
        "{stdout}"
    );
}
