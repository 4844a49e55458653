//! What leaves the live appliance, end to end. A real RTSP camera serves a
//! video with a large face; the appliance runs with snapshots enabled.
//! Everything that leaves the process (every API response, the SQLite
//! files, the log) is scanned for image data: only the snapshot endpoint
//! returns an image, and an independent face check finds no face in it.
//! With the face detector failing on purpose, or slower than the detection
//! deadline, every frame is obscured whole and health counts it.

use crate::common::*;
use headcount_domain::pixels::frame::Frame;
use headcount_domain::pixels::mask::MASK_FILL;
use headcount_domain::pixels::redaction::FILL;
use std::process::Stdio;
use std::time::Duration;

/// Signatures of image formats, raw and base64-encoded.
const IMAGE_SIGNATURES: [&[u8]; 8] = [
    b"\xff\xd8\xff",      // JPEG
    b"\x89PNG\r\n\x1a\n", // PNG
    b"GIF87a",
    b"GIF89a",
    b"WEBP",
    b"/9j/",        // base64 JPEG
    b"iVBORw0KGgo", // base64 PNG
    b"R0lGOD",      // base64 GIF
];

fn image_signature(bytes: &[u8]) -> Option<&'static [u8]> {
    IMAGE_SIGNATURES
        .into_iter()
        .find(|sig| bytes.windows(sig.len()).any(|w| w == *sig))
}

fn face_camera_config(dir: &std::path::Path, api_port: u16, rtsp_port: u16) -> std::path::PathBuf {
    let path = config(
        dir,
        api_port,
        &[(
            "desk",
            format!("rtsp://127.0.0.1:{rtsp_port}/faces"),
            "lines.door = { points = [[0.1, 0.5], [0.9, 0.5]], in = \"left\" }",
        )],
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text += "[privacy]\nsnapshots = true\n";
    std::fs::write(&path, text).unwrap();
    path
}

fn wait_for_frames(api_port: u16, field: &str, at_least: u64) -> serde_json::Value {
    let mut health = serde_json::Value::Null;
    let reached = wait_until(Duration::from_secs(40), || {
        health = get(api_port, "/api/v1/health")
            .map(|h| h.1)
            .unwrap_or_default();
        health["cameras"][0][field].as_u64() >= Some(at_least)
    });
    assert!(reached, "{field} did not reach {at_least}: {health}");
    health
}

#[test]
fn only_the_snapshot_is_an_image_and_it_shows_no_face() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let _camera = serve_file(rtsp_port, &media("faces/carphone.ts"), "/faces", &[], &[]);
    let cfg = face_camera_config(dir.path(), api_port, rtsp_port);
    let log = dir.path().join("appliance.log");
    let appliance = start_appliance_with(
        &cfg,
        api_port,
        &[("RUST_LOG", "debug,ort=warn")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    wait_for_frames(api_port, "frames_analysed", 10);

    // Every route the API has (its own table, so a new route is scanned
    // too), with the queries these need, and one route it has not.
    let mut routes: Vec<String> = headcount_api::ROUTES
        .iter()
        .map(|rule| match rule.path {
            "/api/v1/occupancy/history" | "/api/v1/dwell" => {
                format!("{}?zone=desk.path", rule.path)
            }
            "/api/v1/flow" => format!("{}?line=desk.door", rule.path),
            path => path.replace("{camera}", "nowhere"),
        })
        .collect();
    routes.push("/api/v1/nothing".into());
    for route in &routes {
        let (status, head, body) = get_raw(api_port, route).unwrap();
        assert!(!head.contains("image/"), "{route} ({status}) sent an image");
        assert_eq!(
            image_signature(&body),
            None,
            "{route} ({status}) holds image data"
        );
    }
    let (status, head, snapshot) = get_raw(api_port, "/api/v1/cameras/desk/snapshot").unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: image/jpeg"), "{head}");

    drop(appliance);
    for entry in std::fs::read_dir(dir.path().join("state")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            image_signature(&bytes),
            None,
            "{} holds image data",
            path.display()
        );
        // Minute aggregates only: far smaller than one frame of pixels.
        assert!(
            bytes.len() < 1 << 20,
            "{} is {} bytes",
            path.display(),
            bytes.len()
        );
    }
    let log_bytes = std::fs::read(&log).unwrap();
    assert!(!log_bytes.is_empty());
    assert_eq!(
        image_signature(&log_bytes),
        None,
        "the log holds image data"
    );

    // An independent check finds the face in the source video, and none in
    // the snapshot.
    let mut checker = face_checker();
    let mut faces = |frame: &Frame| {
        checker
            .detect(frame)
            .unwrap()
            .0
            .faces
            .expect("detect always searches for faces")
            .faces()
            .unwrap()
            .len()
    };
    let source =
        headcount_media::FileFrames::open(&media("faces/carphone_pristine.mp4"), None, Some(640))
            .unwrap()
            .take(30)
            .filter(|f| faces(f.as_ref().unwrap()) > 0)
            .count();
    assert!(
        source >= 27,
        "the checker found the face in only {source} of 30 source frames"
    );
    let image = image::load_from_memory(&snapshot).unwrap().to_rgb8();
    // A view of the scene (redacted), not a frame obscured whole.
    let scene = image
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c.abs_diff(FILL[0]) > 12))
        .count();
    assert!(
        scene * 5 > image.pixels().len(),
        "the snapshot shows almost nothing"
    );
    std::fs::write(dir.path().join("snapshot.jpg"), &snapshot).unwrap();
    let (w, h) = image.dimensions();
    let frame = Frame::new("snapshot".into(), w, h, image.into_raw(), 0).unwrap();
    assert_eq!(faces(&frame), 0, "a face is visible in the snapshot");
}

/// A camera's privacy mask is blank in its snapshot: what the live
/// pipeline publishes went through the mask before anything else (the
/// frame step's unit test proves the same for the detectors' input).
#[test]
fn a_privacy_mask_is_blank_in_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let _camera = serve_file(rtsp_port, &media("faces/carphone.ts"), "/faces", &[], &[]);
    let cfg = face_camera_config(dir.path(), api_port, rtsp_port);
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "[cameras.desk.masks.window]\npolygon = [[0.0, 0.0], [0.4, 0.0], [0.4, 1.0], [0.0, 1.0]]\n";
    std::fs::write(&cfg, text).unwrap();
    let _appliance = start_appliance_with(&cfg, api_port, &[], Stdio::null());
    wait_for_frames(api_port, "frames_analysed", 3);
    let (status, _, snapshot) = get_raw(api_port, "/api/v1/cameras/desk/snapshot").unwrap();
    assert_eq!(status, 200);
    let image = image::load_from_memory(&snapshot).unwrap().to_rgb8();
    let (w, h) = image.dimensions();
    // Inside the mask, away from its edge (JPEG blocks, a redaction's blur
    // reaching in from outside): flat grey.
    let inner = (0.4 * w as f64) as u32 - 16;
    let (mut inside, mut grey) = (0u64, 0u64);
    for (_, _, p) in image.enumerate_pixels().filter(|(x, _, _)| *x < inner) {
        inside += 1;
        grey += u64::from(p.0.iter().all(|&c| c.abs_diff(MASK_FILL) <= 6));
    }
    assert_eq!(
        grey,
        inside,
        "{} of {inside} masked pixels are not grey",
        inside - grey
    );
    // The rest is the scene.
    let scene = image
        .enumerate_pixels()
        .filter(|(x, _, p)| {
            *x > (0.4 * w as f64) as u32 + 16 && p.0.iter().any(|&c| c.abs_diff(MASK_FILL) > 12)
        })
        .count();
    assert!(
        scene as u32 * 4 > w * h / 2,
        "the unmasked part shows almost nothing"
    );
}

/// The appliance with `fault` injected and `privacy` lines added to its
/// config: its health once 2 frames were obscured and 3 counted, and a
/// snapshot.
fn faulty_appliance(fault: &str, privacy: &str) -> (serde_json::Value, image::RgbImage) {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port) = (free_port(), free_port());
    let _camera = serve_file(rtsp_port, &media("faces/carphone.ts"), "/faces", &[], &[]);
    let cfg = face_camera_config(dir.path(), api_port, rtsp_port);
    let text = std::fs::read_to_string(&cfg).unwrap() + privacy;
    std::fs::write(&cfg, text).unwrap();
    let _appliance = start_appliance_with(
        &cfg,
        api_port,
        &[("HEADCOUNT_FAULT_INJECTION", fault)],
        Stdio::null(),
    );
    wait_for_frames(api_port, "frames_obscured", 2);
    // Counting goes on meanwhile: frames not published need no face model.
    let health = wait_for_frames(api_port, "frames_analysed", 3);
    let (status, _, snapshot) = get_raw(api_port, "/api/v1/cameras/desk/snapshot").unwrap();
    assert_eq!(status, 200);
    (
        health,
        image::load_from_memory(&snapshot).unwrap().to_rgb8(),
    )
}

fn is_grey_all_over(image: &image::RgbImage) -> bool {
    image
        .pixels()
        .all(|p| p.0.iter().all(|&c| c.abs_diff(FILL[0]) <= 4))
}

#[test]
fn a_failing_face_detector_obscures_every_snapshot_and_health_counts_it() {
    // The face model runs only on the frames taken for a snapshot, and
    // fails on each: every snapshot is obscured whole, counting goes on.
    let (health, snapshot) = faulty_appliance("face-fails-every=1", "");
    let camera = &health["cameras"][0];
    assert!(
        camera["frames_obscured"].as_u64().unwrap() >= 2,
        "every snapshot is obscured: {health}"
    );
    assert!(
        is_grey_all_over(&snapshot),
        "the snapshot of a frame whose face detection failed is not grey all over"
    );
}

#[test]
fn a_detector_slower_than_its_deadline_obscures_its_snapshots() {
    // Face detection takes at least 300 ms; the deadline is 100 ms: every
    // snapshot frame is late, obscured whole and not counted.
    let (health, snapshot) = faulty_appliance("face-delay-ms=300", "detection_deadline_ms = 100\n");
    assert!(
        health["cameras"][0]["frames_obscured"].as_u64().unwrap() >= 2,
        "{health}"
    );
    assert!(
        is_grey_all_over(&snapshot),
        "the snapshot of a frame detected too late is not grey all over"
    );
}
