//! The API's connections under hostile clients, from outside: a deadline at
//! every phase (first byte, TLS handshake, request head, idle keep-alive,
//! body), the caps in total and per client with the admin's reserve, the
//! Host check, and the file descriptors the caps need. Deadlines are set
//! short in these configs so that each test takes seconds.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A config with one test-pattern camera and `api` lines in `[api]`
/// (`[api.connections]` and others may follow them).
fn test_config(dir: &Path, api_port: u16, api: &str) -> PathBuf {
    let text = format!(
        "[appliance]\nsite = \"test\"\nstate_dir = {:?}\nmodels_dir = {:?}\n\
         [api]\nbind = \"127.0.0.1:{api_port}\"\n{api}\n\
         [cameras.c]\nurl = \"testsrc:ball\"\nanalysis_fps = 1\n",
        dir.join("state"),
        repo().join("models"),
    );
    let path = dir.join("headcount.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A TCP connection to the appliance from the loopback address `source`
/// (127.0.0.0/8 is all loopback: each address is another client).
fn connect_from(source: &str, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Reads until the server closes the connection (or resets it): what it
/// sent, and how long that took. Panics if it is still open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

/// One request from `source` with a `Host` header (or none): the whole
/// answer.
fn request_from(
    source: &str,
    port: u16,
    host: Option<&str>,
    path: &str,
    token: Option<&str>,
) -> String {
    let mut stream = connect_from(source, port);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    String::from_utf8_lossy(&exchange(&mut stream, "GET", path, host, token)).into_owned()
}

/// True while the server holds `stream` open without answering it (a
/// refused connection gets its 503 and is closed).
fn is_held(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let held =
        matches!(stream.peek(&mut [0; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    held
}

/// Keeps `count` connections from `source` held: those the server closed
/// (a refusal while an answered connection from that address was still
/// closing, on a loaded machine) are dropped and opened again.
fn keep_held(held: &mut Vec<TcpStream>, count: usize, source: &str, port: u16) {
    held.retain(is_held);
    while held.len() < count {
        held.push(connect_from(source, port));
    }
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[test]
fn every_phase_of_a_connection_has_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = test_config(
        dir.path(),
        port,
        "[api.connections]\nfirst_byte_secs = 1\nheader_secs = 2\nbody_secs = 1",
    );
    let _appliance = start_appliance_with(&cfg, port, &[], Stdio::null());
    let within = |took: Duration, deadline: f64| {
        let secs = took.as_secs_f64();
        assert!(
            secs > deadline - 0.2 && secs < deadline + 4.0,
            "closed after {secs:.2} s, deadline {deadline} s"
        );
    };

    // Connected, and not a byte: closed after the first-byte deadline.
    let mut idle = connect_from("127.0.0.1", port);
    let (said, took) = read_until_closed(&mut idle, Duration::from_secs(20));
    assert_eq!(said, "");
    within(took, 1.0);

    // A head that never ends, and an idle kept-alive connection: closed
    // after the head deadline.
    let mut slow_head = connect_from("127.0.0.1", port);
    write!(slow_head, "GET /livez HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let (_, took) = read_until_closed(&mut slow_head, Duration::from_secs(20));
    within(took, 2.0);
    let mut kept = connect_from("127.0.0.1", port);
    write!(kept, "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = [0u8; 1024];
    let n = kept.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let (_, took) = read_until_closed(&mut kept, Duration::from_secs(20));
    within(took, 2.0);

    // A login body announced as 4000 bytes: one byte, or a byte every 200
    // ms, is cut off with 408 after the body deadline.
    for trickle in [false, true] {
        let mut slow_body = connect_from("127.0.0.1", port);
        write!(
            slow_body,
            "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 4000\r\n\r\n{{"
        )
        .unwrap();
        let started = Instant::now();
        if trickle {
            let mut writer = slow_body.try_clone().unwrap();
            std::thread::spawn(move || {
                while writer.write_all(b" ").is_ok() && started.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        let (said, _) = read_until_closed(&mut slow_body, Duration::from_secs(20));
        assert!(said.starts_with("HTTP/1.1 408"), "{said}");
        within(started.elapsed(), 1.0);
    }

    // A body larger than any route takes is refused before it is read.
    let mut large = connect_from("127.0.0.1", port);
    write!(
        large,
        "PUT /api/v1/cameras/c/geometry HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n"
    )
    .unwrap();
    let (said, _) = read_until_closed(&mut large, Duration::from_secs(5));
    assert!(said.starts_with("HTTP/1.1 413"), "{said}");

    // Everyone else is served all along.
    assert_eq!(
        status_line(&request_from(
            "127.0.0.1",
            port,
            Some("localhost"),
            "/livez",
            None
        )),
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn a_tls_connection_that_never_finishes_its_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = test_config(
        dir.path(),
        port,
        "tls = true\n[api.connections]\nfirst_byte_secs = 1\ntls_handshake_secs = 2",
    );
    let _appliance = Proc::spawn(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(Duration::from_secs(20), || TcpStream::connect(
        ("127.0.0.1", port)
    )
    .is_ok()));
    // Silent: closed after the first-byte deadline.
    let mut silent = connect_from("127.0.0.1", port);
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(20));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The start of a ClientHello, then nothing: closed after the handshake deadline.
    let mut stuck = connect_from("127.0.0.1", port);
    stuck
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let (said, took) = read_until_closed(&mut stuck, Duration::from_secs(20));
    assert!(
        took > Duration::from_millis(1800) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(!said.contains("HTTP"), "{said}");
}

#[test]
fn beyond_the_per_address_cap_connections_are_refused_while_another_address_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = test_config(
        dir.path(),
        port,
        "[api.connections]\nper_client = 3\nadmin_reserve = 0\nfirst_byte_secs = 30",
    );
    let _appliance = start_appliance_with(&cfg, port, &[], Stdio::null());
    // Once the server holds three, a fourth from that address is refused.
    // One it refused (the start's last /livez from the same address still
    // closing on a loaded machine) is opened again.
    let refused = |source: &str| {
        request_from(source, port, Some("localhost"), "/livez", None).starts_with("HTTP/1.1 503")
    };
    let mut held: Vec<TcpStream> = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        keep_held(&mut held, 3, "127.0.0.1", port);
        refused("127.0.0.1") && held.iter().all(is_held)
    }));
    // The fourth from the same address: a short 503 and closed, at once.
    let mut fourth = connect_from("127.0.0.1", port);
    let (said, took) = read_until_closed(&mut fourth, Duration::from_secs(5));
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Another address is served meanwhile.
    assert_eq!(
        status_line(&request_from(
            "127.0.0.2",
            port,
            Some("localhost"),
            "/livez",
            None
        )),
        "HTTP/1.1 200 OK"
    );
    // A closed connection gives its place back.
    drop(held.pop());
    assert!(wait_until(Duration::from_secs(5), || status_line(
        &request_from("127.0.0.1", port, Some("localhost"), "/livez", None)
    )
        == "HTTP/1.1 200 OK"));
}

#[test]
fn with_the_pool_full_of_idle_connections_the_admin_is_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = test_config(
        dir.path(),
        port,
        "[api.connections]\nmax = 6\nper_client = 3\nadmin_reserve = 2\n\
         admin_addresses = [\"127.0.0.9\"]\nfirst_byte_secs = 30",
    );
    let _appliance = start_appliance_with(&cfg, port, &[], Stdio::null());
    let admin = admin_token(port).unwrap();
    let refused = |source: &str| {
        request_from(source, port, Some("localhost"), "/livez", None).starts_with("HTTP/1.1 503")
    };
    // Once the server holds the six idle ones, the pool is full. One it
    // refused (the admin token's answered connection still closing on a
    // loaded machine) is opened again.
    let (mut idle_2, mut idle_3) = (Vec::new(), Vec::new());
    assert!(wait_until(Duration::from_secs(10), || {
        keep_held(&mut idle_2, 3, "127.0.0.2", port);
        keep_held(&mut idle_3, 3, "127.0.0.3", port);
        refused("127.0.0.4") && idle_2.iter().chain(&idle_3).all(is_held)
    }));
    // The pool is full: anyone else, loopback included, is refused.
    for source in ["127.0.0.4", "127.0.0.5"] {
        let answer = request_from(source, port, Some("localhost"), "/livez", None);
        assert!(answer.starts_with("HTTP/1.1 503"), "{source}: {answer}");
    }
    // The box itself and the configured admin address are answered.
    for source in ["127.0.0.1", "127.0.0.9"] {
        let answer = request_from(
            source,
            port,
            Some("localhost"),
            "/api/v1/occupancy",
            Some(&admin),
        );
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 200 OK",
            "{source}: {answer}"
        );
    }
    // The reserve is bounded too: two idle connections from the box fill
    // it. One the server refused, because an answered connection was still
    // closing on a loaded machine, is opened again.
    let mut reserve: Vec<TcpStream> = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        keep_held(&mut reserve, 2, "127.0.0.1", port);
        refused("127.0.0.1")
    }));
    let answer = request_from("127.0.0.1", port, Some("localhost"), "/livez", None);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

#[test]
fn a_request_for_another_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = test_config(dir.path(), port, "hosts = [\"counter.example.org\"]");
    let _appliance = start_appliance_with(&cfg, port, &[], Stdio::null());
    let admin = admin_token(port).unwrap();
    let get = |host: Option<&str>| {
        let answer = request_from("127.0.0.1", port, host, "/api/v1/occupancy", Some(&admin));
        status_line(&answer).to_string()
    };
    // A page whose own name was pointed at the appliance (DNS rebinding).
    assert_eq!(
        get(Some("attacker.example")),
        "HTTP/1.1 421 Misdirected Request"
    );
    assert_eq!(
        get(Some(&format!("attacker.example:{port}"))),
        "HTTP/1.1 421 Misdirected Request"
    );
    assert_eq!(get(None), "HTTP/1.1 400 Bad Request");
    for ours in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "counter.example.org".to_string(),
    ] {
        assert_eq!(get(Some(&ours)), "HTTP/1.1 200 OK", "{ours}");
    }
}

#[test]
fn the_descriptor_limit_is_raised_to_what_the_caps_need_or_the_start_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = test_config(
        dir.path(),
        port,
        "[api.connections]\nmax = 500\nadmin_reserve = 8",
    );
    let (code, out, _) = run(&["check-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    // (500 + 8) x 4 + 256 + one camera's 32.
    assert!(out.contains("up to 2320 open files"), "{out}");

    // A soft limit of 1024 (systemd's default) is raised.
    let appliance = Proc::spawn(
        Command::new("sh")
            .args(["-c", "ulimit -S -n 1024 && exec \"$0\" run --config \"$1\""])
            .arg(BIN)
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", appliance.0.id())).unwrap();
    let soft: u64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{limits}"));
    assert!(soft >= 2320, "{limits}");
    drop(appliance);

    // A hard limit that cannot hold the caps: no start, and why.
    let out = Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" run --config \"$1\""])
        .arg(BIN)
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("need 2320 file descriptors; the hard limit is 1024")
            && err.contains("LimitNOFILE="),
        "{err}"
    );
}
