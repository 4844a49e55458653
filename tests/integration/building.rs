//! Building automation over Modbus TCP (`[modbus]`): a real client nobody
//! here wrote (pymodbus, from Debian) reads the register map of the running
//! appliance on the demo camera; a write, an address outside the map and
//! an over-long read are refused with their exceptions and change nothing;
//! a malformed frame ends only its own connection; a host's client beyond
//! half of `max_connections` is closed at once, and an idle one (or one
//! that dribbles bytes without completing a request) after `idle_secs`.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn read_with_pymodbus(port: u16) -> Value {
    let out = Command::new(DEBIAN_PYTHON)
        .arg(repo().join("tests/e2e/modbus_client.py"))
        .arg(port.to_string())
        .output()
        .expect("python3 is missing: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "pymodbus failed (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether the server closed `stream` (read gives 0 or an error) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_real_modbus_client_reads_the_live_counts_and_cannot_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let (rtsp_port, api_port, modbus_port) = (free_port(), free_port(), free_port());
    let _camera = start_camera(rtsp_port);
    let config = config(
        dir.path(),
        api_port,
        &[(
            "campus",
            format!("rtsp://127.0.0.1:{rtsp_port}/vtest"),
            "lines.door = { points = [[0.1, 0.5], [0.9, 0.5]], in = \"left\" }\n\
             [cameras.campus.zones.bench]\npolygon = [[0.0, 0.9], [0.1, 0.9], [0.1, 1.0]]\n\
             capacity = 2\nsmall_zone_justification = \"the test's small zone\"",
        )],
    );
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "[spaces.hall]\nentrances = [\"campus.door\"]\ncapacity = 10\n\
             [spaces.floor]\nzones = [\"campus.path\"]\n\
             [modbus]\nbind = \"127.0.0.1:{modbus_port}\"\nmax_connections = 4\nidle_secs = 5\n"
        );
    std::fs::write(&config, text).unwrap();
    let _appliance = start_appliance(&config, api_port);
    let facilities = issue_token(&state_dir_of(&config), "frontdesk", "facilities");
    assert!(
        wait_until(Duration::from_secs(30), || {
            camera_state(api_port, "campus").is_some_and(|(s, _)| s == "streaming")
                && get(api_port, "/api/v1/occupancy").is_some_and(|(_, b)| {
                    b["spaces"]
                        .as_array()
                        .is_some_and(|s| s.iter().all(|s| s["occupancy"].is_u64()))
                })
        }),
        "not counting"
    );
    let (status, answer) = post_json(
        api_port,
        "/api/v1/spaces/hall/adjust",
        &facilities,
        &json!({"set": 12, "reason": "the test's correction"}),
    );
    assert_eq!(status, 200, "{answer}");

    // The map as documented: version 1; 2 spaces, 1 zone (the small one is
    // not there), 1 line, 1 camera; spaces in name order (floor, hall).
    let mut read = read_with_pymodbus(modbus_port);
    // People may cross the door between the correction and the read: the
    // hall's register must agree with the API's count at one moment.
    let agreed = wait_until(Duration::from_secs(10), || {
        let api = space_count(api_port, "hall");
        let agrees = read["spaces"][1][0].as_u64() == api;
        if !agrees {
            read = read_with_pymodbus(modbus_port);
        }
        agrees
    });
    assert!(agreed, "the hall's register disagrees with the API: {read}");
    eprintln!("pymodbus read: {read}");
    assert_eq!(
        read["header"],
        json!([1, 2, 1, 1, 1, 0, 0, 0, 0, 0]),
        "{read}"
    );
    let hall = &read["spaces"][1];
    assert_eq!(hall[1], 10, "capacity: {read}");
    let over = u64::from(hall[0].as_u64().unwrap() > 10);
    assert_eq!(hall[2].as_u64(), Some(over), "over capacity: {read}");
    let floor = &read["spaces"][0];
    assert!(
        floor[0].as_u64().unwrap() < 65535,
        "floor never counted: {read}"
    );
    assert_eq!(read["cameras"][0][0], 1, "streaming: {read}");
    assert_eq!(read["lines"][0].as_array().unwrap().len(), 10);
    // The same map as holding registers: the hall's capacity.
    assert_eq!(read["holding"][1], 10, "{read}");

    // Refused, with the exception Modbus defines for each; nothing changed.
    assert_eq!(read["write"], json!({"exception": 1}), "{read}");
    assert_eq!(read["outside"], json!({"exception": 2}), "{read}");
    assert_eq!(read["too_many"], json!({"exception": 3}), "{read}");
    assert_eq!(read["after"][1], 10, "a write went through: {read}");

    // A malformed frame (a protocol id that is not Modbus's) ends that
    // connection only; the server goes on answering.
    let mut garbage = TcpStream::connect(("127.0.0.1", modbus_port)).unwrap();
    garbage
        .write_all(&[0, 1, 0xde, 0xad, 0, 6, 1, 4, 0, 0, 0, 1])
        .unwrap();
    assert!(
        closed_within(&mut garbage, Duration::from_secs(3)),
        "a malformed frame was not refused"
    );
    assert_eq!(read_with_pymodbus(modbus_port)["header"][0], 1);

    // Four places, at most two per host: a third client from this host is
    // closed at once; an idle one after 5 s.
    // The second one sends a valid request a byte a second: bytes that do
    // not make a request in time keep no place either.
    let started = Instant::now();
    let mut first = TcpStream::connect(("127.0.0.1", modbus_port)).unwrap();
    let second = TcpStream::connect(("127.0.0.1", modbus_port)).unwrap();
    let dribbler = std::thread::spawn(move || {
        let mut second = second;
        let request = [0, 1, 0, 0, 0, 6, 1, 4, 0, 0, 0, 1];
        for byte in request {
            if second.write_all(&[byte]).is_err() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        closed_within(&mut second, Duration::from_secs(1)).then(|| started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut third = TcpStream::connect(("127.0.0.1", modbus_port)).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(2)),
        "a host's third client was served"
    );
    assert!(
        closed_within(&mut first, Duration::from_secs(10)),
        "an idle client was never disconnected"
    );
    let idle_for = started.elapsed();
    assert!(
        idle_for >= Duration::from_secs(4),
        "closed after {idle_for:?}, before idle_secs"
    );
    // Closed by the server, its next byte fails (or the request, complete
    // after 12 s, goes unanswered).
    let dribbled_for = dribbler.join().unwrap();
    assert!(
        dribbled_for.is_some_and(|t| t < Duration::from_secs(10)),
        "a client sending a byte a second kept its place: {dribbled_for:?}"
    );
    // The places are free again.
    assert_eq!(read_with_pymodbus(modbus_port)["header"][0], 1);
    eprintln!(
        "Modbus: header and every block (6 reads) in {} ms on loopback",
        read["read_all_ms"]
    );
}

/// The BACnet/IP server (`[bacnet]`) against bacpypes3 (from PyPI, fetched
/// and verified by scripts/setup.sh): discovery, a ReadPropertyMultiple of
/// every space's and line's objects, refusals (a write, an unknown object),
/// and a change-of-value notification when a count changes. Prints the
/// figures: Who-Is to I-Am, the ReadPropertyMultiple, and the delay from a
/// count's change to its COV notification.
#[test]
fn a_real_bacnet_client_discovers_reads_and_is_notified_of_a_change() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (api_port, bacnet_port, client_port) = (free_port(), free_port(), free_port());
    let config = config(
        dir.path(),
        api_port,
        &[(
            "desk",
            "testsrc:ball".into(),
            "lines.door = { points = [[0.2, 0.5], [0.8, 0.5]], in = \"left\" }\n\
             [cameras.desk.zones.seat]\npolygon = [[0.0, 0.9], [0.1, 0.9], [0.1, 1.0]]\n\
             capacity = 2\nsmall_zone_justification = \"the test's small zone\"",
        )],
    );
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "[spaces.hall]\nentrances = [\"desk.door\"]\ncapacity = 10\n\
             [spaces.floor]\nzones = [\"desk.path\"]\n\
             [bacnet]\nbind = \"127.0.0.1:{bacnet_port}\"\ndevice_instance = 4711\n"
        );
    std::fs::write(&config, text).unwrap();
    let _appliance = start_appliance(&config, api_port);
    let facilities = issue_token(&state_dir_of(&config), "frontdesk", "facilities");

    let cache = std::env::var("HEADCOUNT_CACHE").unwrap_or_else(|_| "/var/cache/headcount".into());
    let mut client = Command::new(DEBIAN_PYTHON)
        .arg(repo().join("tests/e2e/bacnet_client.py"))
        .args([bacnet_port, client_port, 4711, 2, 1, 10].map(|n| n.to_string()))
        .env("PYTHONPATH", format!("{cache}/python"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is missing: run scripts/setup.sh");
    let stdout = client.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let next = |wait: u64| -> Value {
        let line = lines
            .recv_timeout(Duration::from_secs(wait))
            .expect("the BACnet client said nothing (is bacpypes3 in $HEADCOUNT_CACHE/python? run scripts/setup.sh)");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    assert_eq!(next(30), json!({"ready": true}));
    // The subscription's first notification tells the current value.
    let first = next(5);
    assert!(first["cov"].is_number(), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    let changed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (status, answer) = post_json(
        api_port,
        "/api/v1/spaces/hall/adjust",
        &facilities,
        &json!({"set": 7, "reason": "the test's correction"}),
    );
    assert_eq!(status, 200, "{answer}");
    let notified = loop {
        let message = next(10);
        assert!(
            message.get("cov").is_some(),
            "no notification of 7: {message}"
        );
        if message["cov"] == 7.0 {
            break message;
        }
    };
    let delay_ms = (notified["at"].as_f64().unwrap() - changed_at) * 1000.0;
    let report = next(15);
    assert!(client.wait().unwrap().success());

    assert_eq!(report["i_am"], json!(["device,4711"]), "{report}");
    assert_eq!(report["device_name"], "headcount test");
    // The device, 3 objects per space, 1 zone (the small one is not
    // served), 2 per line.
    assert_eq!(report["object_count"], 1 + 2 * 3 + 1 + 2, "{report}");
    // The whole list in one read, as a BMS reads it first.
    let list = report["object_list"].as_array().unwrap();
    assert_eq!(list.len(), 1 + 2 * 3 + 1 + 2, "{report}");
    assert_eq!(list[0], "device,4711");
    assert!(list.contains(&json!("analog-value,1001")), "{report}");
    let rpm = report["rpm"].as_array().unwrap();
    let value = |object: &str, property: &str| {
        rpm.iter()
            .find(|r| r[0] == object && r[1] == property)
            .map(|r| r[2].clone())
            .unwrap_or_else(|| panic!("no {object} {property} in {report}"))
    };
    assert_eq!(value("analog-value,1001", "object-name"), "hall occupancy");
    assert_eq!(value("analog-value,2001", "present-value"), 10.0);
    assert_eq!(
        value("analog-value,4000", "object-name"),
        "desk.door entries today"
    );
    assert_eq!(value("binary-value,1001", "present-value"), 0);
    // A Forwarded-NPDU names its origin in the frame: forged, it is dropped,
    // while the same Who-Is sent by that origin itself is answered.
    assert_eq!(
        report["forged"],
        json!({"original_answered": true, "forwarded_answered": false}),
        "{report}"
    );
    assert!(
        report["write"]
            .as_str()
            .unwrap()
            .contains("write-access-denied"),
        "{report}"
    );
    assert!(
        report["unknown_object"]
            .as_str()
            .unwrap()
            .contains("unknown-object"),
        "{report}"
    );
    eprintln!(
        "BACnet: Who-Is to I-Am {} ms; ReadPropertyMultiple of {} values {} ms; a count's change to its COV notification {delay_ms:.0} ms (goal < 1 s)",
        report["who_is_ms"],
        rpm.len(),
        report["rpm_ms"]
    );
    // After the correction, the hall reads 7 through the API too.
    assert_eq!(space_count(api_port, "hall"), Some(7));
}
