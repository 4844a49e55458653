//! Shared helpers for the integration tests: they drive the real
//! `headcount` binary, a real RTSP server (`headcount camera`) and the real
//! API, all on loopback. Media and the ONNX Runtime come from
//! scripts/setup.sh (HEADCOUNT_MEDIA, ORT_DYLIB_PATH).
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_headcount");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file fetched by scripts/setup.sh; a missing one fails the test loudly.
pub fn media(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEADCOUNT_MEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/headcount/media".into());
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (or scripts/test.sh)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The demo camera serving vtest on `port`.
pub fn start_camera(port: u16) -> Proc {
    start_camera_with(port, &[], &[])
}

/// The demo camera with extra arguments and environment.
pub fn start_camera_with(port: u16, args: &[&str], env: &[(&str, &str)]) -> Proc {
    serve_file(port, &media("vtest.ts"), "/vtest", args, env)
}

/// An RTSP camera serving `file` (H.264 MPEG-TS) at `mount` on `port`.
pub fn serve_file(
    port: u16,
    file: &Path,
    mount: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let child = Command::new(BIN)
        .args([
            "camera",
            "--port",
            &port.to_string(),
            "--mount",
            mount,
            "--file",
        ])
        .arg(file)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "the RTSP server did not listen on {port}"
    );
    Proc(child)
}

/// A camera in a test config: name, URL and extra TOML lines for its table.
pub type TestCamera<'a> = (&'a str, String, &'a str);

/// A config for the demo video on the given ports, with a zone over the path.
/// The tests poll several routes five times a second with the admin token,
/// far above a person's use: the rate limit, tested on its own, is raised.
pub fn config(dir: &Path, api_port: u16, cameras: &[TestCamera<'_>]) -> PathBuf {
    let mut text = format!(
        "[appliance]\nsite = \"test\"\nstate_dir = {:?}\nmodels_dir = {:?}\n[api]\nbind = \"127.0.0.1:{api_port}\"\n\
         token_burst = 100000\ntoken_rate = 1000.0\n\
         [analytics]\nflush_secs = 1\n",
        dir.join("state"),
        repo().join("models")
    );
    for (name, url, extra) in cameras {
        text += &format!(
            "[cameras.{name}]\nurl = \"{url}\"\n{extra}\n[cameras.{name}.zones.path]\n\
             polygon = [[0.0, 0.33], [0.45, 0.30], [0.75, 0.17], [1.0, 0.17], [1.0, 0.86], [0.55, 0.62], [0.30, 0.50], [0.0, 0.45]]\n"
        );
    }
    let path = dir.join("headcount.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn start_appliance(config: &Path, api_port: u16) -> Proc {
    start_appliance_with(config, api_port, &[], Stdio::inherit())
}

/// The appliance with extra environment, its log going to `stderr`.
pub fn start_appliance_with(
    config: &Path,
    api_port: u16,
    env: &[(&str, &str)],
    stderr: Stdio,
) -> Proc {
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let proc = Proc(child);
    assert!(
        wait_until(Duration::from_secs(20), || get_raw_as(
            api_port, "/livez", None
        )
        .is_some_and(|(status, _, _)| status == 200)),
        "the appliance did not answer on {api_port}"
    );
    remember_admin_token(config, api_port);
    proc
}

/// The admin token of the appliance on each port, from its first start.
static ADMIN_TOKENS: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());

/// The state directory a config names.
pub fn state_dir_of(config: &Path) -> PathBuf {
    let table: toml::Table = std::fs::read_to_string(config).unwrap().parse().unwrap();
    PathBuf::from(table["appliance"]["state_dir"].as_str().unwrap())
}

/// Reads the first admin token the appliance wrote at its first start.
fn remember_admin_token(config: &Path, api_port: u16) {
    let file = state_dir_of(config).join("initial-admin-token");
    let token = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_string();
    let mut tokens = ADMIN_TOKENS.lock().unwrap();
    tokens.retain(|(port, _)| *port != api_port);
    tokens.push((api_port, token));
}

/// The admin token of the appliance on `port`.
pub fn admin_token(port: u16) -> Option<String> {
    let tokens = ADMIN_TOKENS.lock().unwrap();
    tokens
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, t)| t.clone())
}

/// GET over plain HTTP/1.1 as the appliance's admin: status, head (status
/// line and headers) and body bytes; None if nothing answers.
pub fn get_raw(port: u16, path: &str) -> Option<(u16, String, Vec<u8>)> {
    get_raw_as(port, path, admin_token(port).as_deref())
}

/// GET with the given token, or none.
pub fn get_raw_as(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String, Vec<u8>)> {
    request_raw(port, "GET", path, token)
}

/// POST (no body) with the given token: status and JSON body.
pub fn post_as(port: u16, path: &str, token: &str) -> Option<(u16, serde_json::Value)> {
    let (status, _, body) = request_raw(port, "POST", path, Some(token))?;
    Some((status, serde_json::from_slice(&body).ok()?))
}

/// One request over plain HTTP/1.1: status, head and body bytes; None if
/// nothing answers.
pub fn request_raw(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // Whole answers; a live event stream (which never ends) for 3 s.
    let started = Instant::now();
    let mut response = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if response.is_empty() => return Err(e).ok(),
            Err(_) => break,
        };
        response.extend_from_slice(&chunk[..n]);
        let live = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .is_some_and(|end| {
                String::from_utf8_lossy(&response[..end])
                    .to_ascii_lowercase()
                    .contains("content-type: text/event-stream")
            });
        if n == 0 || (live && started.elapsed() > Duration::from_secs(3)) {
            break;
        }
    }
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, head, response[split + 4..].to_vec()))
}

/// GET a JSON body; None if nothing answers or the body is not JSON.
pub fn get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let (status, _, body) = get_raw(port, path)?;
    Some((status, serde_json::from_slice(&body).ok()?))
}

/// The state of one camera in /api/v1/health.
pub fn camera_state(port: u16, camera: &str) -> Option<(String, Option<String>)> {
    let (_, health) = get(port, "/api/v1/health")?;
    let cam = health["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["camera"] == camera)?
        .clone();
    Some((
        cam["state"].as_str()?.to_string(),
        cam["reason"].as_str().map(str::to_string),
    ))
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A face check independent of the appliance's and `redact`'s settings: the
/// same YuNet at a score threshold of 0.3, so it reports faces the
/// redactor would not act on (appliance 0.6) and others besides.
pub fn face_checker() -> headcount_vision::Detectors {
    let runtime = headcount_vision::OnnxRuntime::load(None).unwrap();
    let settings = headcount_vision::DetectorSettings {
        person_threshold: 0.5,
        face_threshold: 0.3,
        person_tiling: false,
        threads: 2,
    };
    headcount_vision::Detectors::load(&runtime, &repo().join("models"), settings).unwrap()
}

/// `BIN secrets set NAME` with the value on standard input.
pub fn secrets_set(bin: &Path, state_dir: &Path, name: &str, value: &str) -> std::process::Output {
    let mut child = Command::new(bin)
        .args(["secrets", "set", name, "--state-dir"])
        .arg(state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{value}").unwrap();
    child.wait_with_output().unwrap()
}

/// `headcount secrets set NAME`, which must succeed; its output.
pub fn seal_secret(state_dir: &Path, name: &str, value: &str) -> String {
    let out = secrets_set(Path::new(BIN), state_dir, name, value);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Mosquitto on a loopback port, anonymous (the test's own broker).
pub fn start_broker(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    (broker_on(dir, port, "persistence false\n"), port)
}

/// Mosquitto on `port` with its config file in `dir`, `extra` appended.
pub fn broker_on(dir: &Path, port: u16, extra: &str) -> Proc {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}"),
    )
    .unwrap();
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto is missing: run scripts/setup.sh");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Proc(child);
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    broker
}

/// Messages (topic, payload) that a real client receives within `wait`.
pub fn subscribe(port: u16, topic: &str, count: usize, wait: u32) -> Vec<(String, String)> {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-v",
            "-C",
            &count.to_string(),
            "-W",
            &wait.to_string(),
        ])
        .output()
        .expect("mosquitto_sub is missing: run scripts/setup.sh");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect()
}

/// A token for a role, issued with `headcount tokens create` (the appliance
/// may be running).
pub fn issue_token(state: &Path, name: &str, role: &str) -> String {
    let (code, out, err) = run(
        &[
            "tokens",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "headcount tokens create failed: {out}{err}");
    out.split_whitespace()
        .find(|w| w.starts_with("hc_"))
        .unwrap_or_else(|| panic!("no token in: {out}"))
        .to_string()
}
