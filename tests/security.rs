//! Security of the running appliance, from outside: the first admin token,
//! tokens issued, rotated and revoked on the command line while it runs,
//! TLS with the device's own certificate, security events over syslog,
//! systemd's readiness and watchdog protocol, and the hardened unit.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A config with one test-pattern camera and `extra` TOML appended.
fn test_config(dir: &Path, api_port: u16, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[appliance]\nsite = \"test\"\nstate_dir = {:?}\nmodels_dir = {:?}\n[api]\nbind = \"127.0.0.1:{api_port}\"\n{extra}\n\
         [cameras.c]\nurl = \"testsrc:ball\"\nanalysis_fps = 1\n",
        dir.join("state"),
        repo().join("models"),
    );
    let path = dir.join("headcount.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn tokens(args: &[&str], state: &Path) -> (i32, String, String) {
    let mut all = vec!["tokens"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--state-dir", state.to_str().unwrap()]);
    run(&all, &[])
}

/// The appliance with its console piped, once it serves: and what it
/// printed on the console by then.
fn start_reading_console(cfg: &Path, api_port: u16, env: &[(&str, &str)]) -> (Proc, String) {
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(cfg)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut appliance = Proc(child);
    assert!(wait_until(Duration::from_secs(20), || status(
        api_port, "/livez", None
    ) == 200));
    let mut console = vec![0u8; 4096];
    let stdout = appliance.0.stdout.as_mut().unwrap();
    let n = stdout.read(&mut console).unwrap();
    (
        appliance,
        String::from_utf8_lossy(&console[..n]).into_owned(),
    )
}

/// The token in a `tokens create|rotate` output.
fn token_in(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("hc_"))
        .unwrap_or_else(|| panic!("no token in {stdout}"))
        .to_string()
}

fn status(port: u16, path: &str, token: Option<&str>) -> u16 {
    get_raw_as(port, path, token).map_or(0, |(s, _, _)| s)
}

#[test]
fn the_first_admin_token_and_tokens_managed_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let cfg = test_config(dir.path(), api_port, "");
    let state = dir.path().join("state");
    let (appliance, console) = start_reading_console(&cfg, api_port, &[]);

    // Shown once on the console and in a file only the service user reads.
    let file = state.join("initial-admin-token");
    let admin = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        console.contains(&admin) && console.contains("tokens rotate admin"),
        "{console}"
    );
    // Only a digest is stored.
    let secret_half = admin.rsplit('_').next().unwrap();
    for f in ["headcount.db", "headcount.db-wal"] {
        let bytes = std::fs::read(state.join(f)).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret_half.len())
                .any(|w| w == secret_half.as_bytes()),
            "{f}"
        );
    }

    // Nothing but the liveness probe without a token.
    assert_eq!(status(api_port, "/api/v1/health", None), 401);
    assert_eq!(status(api_port, "/api/v1/health", Some(&admin)), 200);

    // A facilities token, issued while the appliance runs.
    let (code, out, err) = tokens(
        &[
            "create",
            "--name",
            "desk",
            "--role",
            "facilities",
            "--expires",
            "30d",
        ],
        &state,
    );
    assert_eq!(code, 0, "{err}");
    let desk = token_in(&out);
    assert_eq!(status(api_port, "/api/v1/occupancy", Some(&desk)), 200);
    assert_eq!(
        status(api_port, "/api/v1/cameras/c/snapshot", Some(&desk)),
        403
    );

    // Listing shows no secret.
    let (code, out, _) = tokens(&["list"], &state);
    assert_eq!(code, 0);
    assert!(
        out.contains("desk") && out.contains("facilities") && out.contains("in force"),
        "{out}"
    );
    assert!(!out.contains("hc_"), "{out}");
    let (code, users, _) = run(
        &["users", "list", "--state-dir", state.to_str().unwrap()],
        &[],
    );
    assert_eq!(
        (code, users),
        (0, out),
        "`users` is `tokens` by another name"
    );

    // Rotation: the old secret stops at once, the new one works.
    let (code, out, _) = tokens(&["rotate", "desk"], &state);
    assert_eq!(code, 0);
    let rotated = token_in(&out);
    assert_eq!(status(api_port, "/api/v1/occupancy", Some(&desk)), 401);
    assert_eq!(status(api_port, "/api/v1/occupancy", Some(&rotated)), 200);

    // Revocation.
    assert_eq!(tokens(&["revoke", "desk"], &state).0, 0);
    assert_eq!(status(api_port, "/api/v1/occupancy", Some(&rotated)), 401);

    // Clear errors for bad requests.
    let (code, _, err) = tokens(&["create", "--name", "x", "--role", "root"], &state);
    assert_ne!(code, 0);
    assert!(err.contains("`root` is not a role"), "{err}");
    let (code, _, err) = tokens(&["revoke", "nobody"], &state);
    assert_ne!(code, 0);
    assert!(err.contains("holds no token in force"), "{err}");

    // A restart does not make a second admin token.
    drop(appliance);
    let _again = start_appliance(&cfg, api_port);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), admin);
    let (_, out, _) = tokens(&["list"], &state);
    assert_eq!(out.matches("admin ").count(), 2, "{out}"); // name and role of one token
}

/// GET over TLS, trusting only `ca` (PEM); the status line, or the TLS error.
fn https_get(port: u16, path: &str, token: &str, ca: &Path) -> Result<String, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[test]
fn tls_with_the_devices_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let cfg = test_config(dir.path(), api_port, "tls = true");
    let state = dir.path().join("state");
    let _appliance = Proc(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cert = state.join("tls/cert.pem");
    let key = state.join("tls/key.pem");
    assert!(wait_until(Duration::from_secs(20), || cert.exists()
        && std::net::TcpStream::connect(("127.0.0.1", api_port))
            .is_ok()));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let admin = std::fs::read_to_string(state.join("initial-admin-token")).unwrap();
    let admin = admin.trim();

    let line = https_get(api_port, "/api/v1/health", admin, &cert).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let line = https_get(api_port, "/api/v1/health", "hc_wrong", &cert).unwrap();
    assert!(line.starts_with("HTTP/1.1 401"), "{line}");

    // A client that does not trust this device's certificate gets nowhere.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let refused = https_get(api_port, "/api/v1/health", admin, &other_ca).unwrap_err();
    assert!(refused.contains("invalid peer certificate"), "{refused}");

    // Plain HTTP gets no answer from the TLS port.
    let plain = get_raw_as(api_port, "/livez", None);
    assert!(
        plain.as_ref().is_none_or(|(s, _, _)| *s != 200),
        "{plain:?}"
    );
}

fn drain(socket: &UnixDatagram, wait: Duration) -> Vec<String> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[test]
fn security_events_reach_syslog_as_rfc5424() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let socket_path = dir.path().join("syslog.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let cfg = test_config(
        dir.path(),
        api_port,
        &format!(
            "lockout_failures = 3\n[security]\nsyslog = \"unix:{}\"",
            socket_path.display()
        ),
    );
    let _appliance = start_appliance_with(&cfg, api_port, &[], Stdio::null());
    for _ in 0..3 {
        assert_eq!(status(api_port, "/api/v1/health", Some("hc_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000")), 401);
    }
    assert_eq!(
        status(api_port, "/api/v1/health", admin_token(api_port).as_deref()),
        429
    );
    let events = drain(&socket, Duration::from_millis(500));
    let has = |msgid: &str| {
        events.iter().any(|e| {
            e.contains(&format!(
                " headcount {} {msgid} [headcount@32473",
                _appliance.0.id()
            ))
        })
    };
    for msgid in [
        "CONFIG_CHANGED",
        "TOKEN_CREATED",
        "STARTED",
        "LOGIN_FAILED",
        "LOCKOUT",
    ] {
        assert!(has(msgid), "no {msgid} in {events:#?}");
    }
    // RFC 5424: <PRI>VERSION TIMESTAMP HOSTNAME APP PROCID MSGID SD MSG; authpriv.
    for e in &events {
        let fields: Vec<&str> = e.splitn(7, ' ').collect();
        assert!(
            fields[0].starts_with("<8") && fields[0].ends_with(">1"),
            "{e}"
        );
        assert!(fields[1].parse::<jiff::Timestamp>().is_ok(), "{e}");
        assert_eq!(fields[3], "headcount");
    }
    let admin = admin_token(api_port).unwrap();
    assert!(
        events.iter().all(|e| !e.contains(&admin[20..])),
        "a token reached the log"
    );

    // A changed config is reported at the next start; an unchanged one is not.
    drop(_appliance);
    let _again = start_appliance_with(&cfg, api_port, &[], Stdio::null());
    let events = drain(&socket, Duration::from_millis(500));
    assert!(
        !events.iter().any(|e| e.contains(" CONFIG_CHANGED ")),
        "{events:#?}"
    );
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let cfg = test_config(dir.path(), api_port, "");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1500000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut appliance = Proc(child);
    let first = drain_until(&notify, "READY=1", Duration::from_secs(30));
    assert!(first.iter().any(|m| m.contains("READY=1")), "{first:?}");
    // Ready means serving.
    assert_eq!(status(api_port, "/livez", None), 200);
    let pings = drain_until(&notify, "WATCHDOG=1", Duration::from_secs(5));
    assert!(pings.iter().any(|m| m.contains("WATCHDOG=1")), "{pings:?}");

    let pid = appliance.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let last = drain_until(&notify, "STOPPING=1", Duration::from_secs(10));
    assert!(last.iter().any(|m| m.contains("STOPPING=1")), "{last:?}");
    let code = appliance.0.wait().unwrap();
    assert!(code.success(), "{code:?}");
}

/// Messages on `socket` until one contains `wanted` or `timeout` passes.
fn drain_until(socket: &UnixDatagram, wanted: &str, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while std::time::Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message.contains(wanted);
            out.push(message);
            if done {
                break;
            }
        }
    }
    out
}

#[test]
fn the_systemd_unit_is_hardened_and_valid() {
    let (code, stdout, stderr) = {
        let out = Command::new("bash")
            .arg(repo().join("scripts/check-unit.sh"))
            .arg(BIN)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let exposure: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("exposure: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in {stdout}"));
    assert!(exposure <= 1.5, "exposure {exposure}: {stdout}");
    let unit = std::fs::read_to_string(repo().join("systemd/headcount.service")).unwrap();
    for setting in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(setting), "the unit lacks {setting:?}");
    }
}

#[test]
fn admin_commands_run_as_root_act_as_the_service_user() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !root {
        eprintln!(
            "not root: the switch to the service user only happens when root runs the commands"
        );
        return;
    }
    // The service's dynamic user owns its state directory; the binary is
    // copied where that user may run it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("headcount");
    std::fs::copy(BIN, &bin).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let service = 61_234;
    std::os::unix::fs::chown(&state, Some(service), Some(service)).unwrap();
    // A link the service user planted, aimed at a file of root's.
    let roots_file = dir.path().join("roots-file");
    std::fs::write(&roots_file, "root's").unwrap();
    std::os::unix::fs::symlink(&roots_file, state.join("secrets.json")).unwrap();

    let out = secrets_set(&bin, &state, "cam", "pw");
    // Run as the service user, the command cannot write root's file.
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read_to_string(&roots_file).unwrap(), "root's");
    assert_eq!(std::fs::metadata(&roots_file).unwrap().uid(), 0);
    std::fs::remove_file(state.join("secrets.json")).unwrap();

    let out = Command::new(&bin)
        .args([
            "tokens",
            "create",
            "--name",
            "ops",
            "--role",
            "facilities",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hc_"));
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        seen.push(entry.file_name().to_string_lossy().into_owned());
        assert_eq!(
            (meta.uid(), meta.gid()),
            (service, service),
            "{:?}",
            entry.path()
        );
    }
    for file in ["token.key", "headcount.db"] {
        assert!(seen.iter().any(|s| s == file), "{file} missing: {seen:?}");
    }
}

#[test]
fn under_systemd_the_first_token_is_not_printed_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let cfg = test_config(dir.path(), api_port, "");
    let systemd = [("INVOCATION_ID", "0123456789abcdef0123456789abcdef")];
    let (_appliance, console) = start_reading_console(&cfg, api_port, &systemd);
    let token = std::fs::read_to_string(dir.path().join("state/initial-admin-token")).unwrap();
    assert!(console.contains("initial-admin-token"), "{console}");
    assert!(
        !console.contains(token.trim()),
        "the token reached the journal: {console}"
    );
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let cfg = test_config(dir.path(), api_port, "");
    let _appliance = start_appliance_with(&cfg, api_port, &[], Stdio::null());
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", api_port)).unwrap();
    // The head, but never the blank line that ends it.
    write!(slow, "GET /livez HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let outcome = slow.read_to_end(&mut rest);
    assert!(
        outcome.is_ok()
            || outcome
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server held the connection open: {outcome:?} after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    // Meanwhile, and after, everyone else is served.
    assert_eq!(status(api_port, "/livez", None), 200);
}
