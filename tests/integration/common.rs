//! Shared helpers for the integration tests: they drive the real
//! `headcount` binary, a real RTSP server (`headcount camera`) and the real
//! API, all on loopback. Media and the ONNX Runtime come from
//! scripts/setup.sh (HEADCOUNT_MEDIA, ORT_DYLIB_PATH).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
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

/// A loopback port for a test's server: never handed out twice in a run
/// (a counter, where asking the kernel for a free port could hand the same
/// one to two tests before either binds it), below Linux's ephemeral range
/// (so no outgoing connection takes it meanwhile), and free for TCP and UDP
/// when handed out.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Runs of the suite side by side start apart.
    let base = 20_000 + (std::process::id() % 100) as u16 * 100;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_768, "the test ports ran out");
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
}

/// A child process that is killed when the test ends, however it ends. It
/// holds a share of the machine's cores (`Cores`) while it runs.
pub struct Proc(pub Child, #[allow(dead_code)] Cores);

impl Proc {
    /// Claims a share of the cores, then starts `command`. The claim comes
    /// first: a test that waits for it behind an exclusive one must not
    /// leave its process running meanwhile, where a fault timed from the
    /// start would fire before the test looks.
    pub fn spawn(command: &mut Command) -> Proc {
        let cores = Cores::shared();
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {:?}: {e} (run scripts/setup.sh)",
                command.get_program()
            )
        });
        Proc(child, cores)
    }
}

/// Who may use the machine's two cores, declared here for the whole suite:
/// every process a test starts (an appliance, a camera, a broker) holds a
/// shared claim while it runs; a test that needs the cores to itself (an
/// appliance analysing a scenario in real time and judged on every frame,
/// `analyze` over a recording) holds the exclusive claim, and nothing
/// else starts a process meanwhile.
pub struct Cores(Claim);

enum Claim {
    /// One of this thread's shared claims: the first takes the read lock,
    /// the others count on it (`SHARED`), so that a thread holding one never
    /// waits for a second behind a test that asked for the exclusive claim
    /// (which waits for the first: both would wait for ever).
    Shared,
    Exclusive {
        _guard: RwLockWriteGuard<'static, ()>,
    },
    /// This thread holds the exclusive claim already.
    Within,
}

static CORES: RwLock<()> = RwLock::new(());

thread_local! {
    static EXCLUSIVE: Cell<bool> = const { Cell::new(false) };
    /// This thread's read lock and how many shared claims use it.
    static SHARED: RefCell<Option<(RwLockReadGuard<'static, ()>, usize)>> = const { RefCell::new(None) };
}

impl Cores {
    /// The cores to this test alone, until the claim is dropped.
    pub fn exclusive() -> Cores {
        let guard = CORES.write().unwrap_or_else(|e| e.into_inner());
        EXCLUSIVE.with(|e| e.set(true));
        Cores(Claim::Exclusive { _guard: guard })
    }

    fn shared() -> Cores {
        if EXCLUSIVE.with(Cell::get) {
            return Cores(Claim::Within);
        }
        SHARED.with(|held| {
            let mut held = held.borrow_mut();
            match held.as_mut() {
                Some((_, claims)) => *claims += 1,
                None => *held = Some((CORES.read().unwrap_or_else(|e| e.into_inner()), 1)),
            }
        });
        Cores(Claim::Shared)
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        match self.0 {
            Claim::Exclusive { .. } => EXCLUSIVE.with(|e| e.set(false)),
            Claim::Shared => SHARED.with(|held| {
                let mut held = held.borrow_mut();
                if let Some((_, claims)) = held.as_mut() {
                    *claims -= 1;
                    if *claims == 0 {
                        *held = None;
                    }
                }
            }),
            Claim::Within => {}
        }
    }
}

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
    let camera = Proc::spawn(
        Command::new(BIN)
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
            .stdout(Stdio::null()),
    );
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "the RTSP server did not listen on {port}"
    );
    camera
}

/// vtest's first frame, frozen for `seconds` (H.264 MPEG-TS, two frames a
/// second, one key frame: no re-encoded picture differs from the one
/// before), as `dir`/still.ts: its people, as far as the appliance can
/// tell, are a poster.
pub fn frozen_vtest(dir: &Path, seconds: u32) -> PathBuf {
    let still = dir.join("still.ts");
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args([
            "filesrc",
            &format!("location={}", media("vtest.avi").display()),
        ])
        .args([
            "!",
            "decodebin",
            "!",
            "videoconvert",
            "!",
            "video/x-raw,format=I420",
        ])
        .arg("!")
        .args(["imagefreeze", &format!("num-buffers={}", seconds * 2)])
        .args(["!", "video/x-raw,framerate=2/1"])
        .args([
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "key-int-max=100000",
        ])
        .args(["!", "h264parse", "!", "mpegtsmux", "!", "filesink"])
        .arg(format!("location={}", still.display()))
        .status()
        .unwrap();
    assert!(status.success(), "cannot make a frozen vtest");
    still
}

/// How long a fresh start may take to publish yesterday's last buckets:
/// just after midnight UTC they wait for the rollup's grace (two flushes
/// and a minute, as `run::pipeline` sets it), then the next minute's
/// maintenance, with half a minute to spare.
pub fn yesterday_published_within(flush_secs: u64) -> Duration {
    Duration::from_secs(2 * flush_secs + 60 + 60 + 30)
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
    let proc = Proc::spawn(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr),
    );
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
    parse_response(&exchange(
        &mut stream,
        method,
        path,
        Some("localhost"),
        token,
    ))
}

/// The tests' one HTTP client: writes a request on `stream` (plain, TLS,
/// or bound to a source address) and reads the answer until the server
/// closes (or resets) the connection, at most 5 s without a byte; of a
/// live event stream, which never ends, 3 s. A refused connection may be
/// closed before the request is written: what it said is still read.
pub fn exchange(
    stream: &mut (impl Read + Write),
    method: &str,
    path: &str,
    host: Option<&str>,
    token: Option<&str>,
) -> Vec<u8> {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let _ = write!(
        stream,
        "{method} {path} HTTP/1.1\r\n{host}{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let started = Instant::now();
    let mut response = Vec::new();
    let mut chunk = [0u8; 16384];
    while let Ok(n) = stream.read(&mut chunk) {
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
    response
}

/// Status, head (status line and headers) and body of an HTTP answer.
pub fn parse_response(response: &[u8]) -> Option<(u16, String, Vec<u8>)> {
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

/// The frames of one camera analysed so far, from /api/v1/health.
pub fn frames_analysed(port: u16, camera: &str) -> Option<u64> {
    let (_, health) = get(port, "/api/v1/health")?;
    health["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["camera"] == camera)?["frames_analysed"]
        .as_u64()
}

/// Checks `holds` every 200 ms for `period`: true if it held every time.
pub fn holds_for(period: Duration, mut holds: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + period;
    while Instant::now() < end {
        if !holds() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
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

/// `headcount ARGS` with `stdin` as its standard input: exit code, stdout, stderr.
pub fn run_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = output_with_stdin(Command::new(BIN).args(args).stderr(Stdio::piped()), stdin);
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

/// Runs `command` with `stdin` as its standard input and its standard
/// output captured (standard error as the caller set it): its output.
pub fn output_with_stdin(command: &mut Command, stdin: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `BIN secrets set NAME` with the value on standard input.
pub fn secrets_set(bin: &Path, state_dir: &Path, name: &str, value: &str) -> std::process::Output {
    output_with_stdin(
        Command::new(bin)
            .args(["secrets", "set", name, "--state-dir"])
            .arg(state_dir)
            .stderr(Stdio::piped()),
        &format!("{value}\n"),
    )
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
    let broker = Proc::spawn(
        Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    broker
}

/// mosquitto_sub's arguments for `topic` on `host:port`, lines as "topic
/// payload", ending after `count` messages or `wait` seconds.
pub fn mosquitto_sub_args(
    host: &str,
    port: u16,
    topic: &str,
    count: usize,
    wait: u32,
) -> Vec<String> {
    let (port, count, wait) = (port.to_string(), count.to_string(), wait.to_string());
    [
        "-h", host, "-p", &port, "-t", topic, "-v", "-C", &count, "-W", &wait,
    ]
    .map(str::to_string)
    .to_vec()
}

/// Messages (topic, payload) that a real client receives within `wait`.
pub fn subscribe(port: u16, topic: &str, count: usize, wait: u32) -> Vec<(String, String)> {
    let out = Command::new("mosquitto_sub")
        .args(mosquitto_sub_args("127.0.0.1", port, topic, count, wait))
        .output()
        .expect("mosquitto_sub is missing: run scripts/setup.sh");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(topic_and_payload)
        .collect()
}

/// A `mosquitto_sub -v` line as topic and payload. An empty payload (a
/// retained message cleared) is printed as `(null)` by Debian 12's
/// Mosquitto, or not at all by others: both read as "".
fn topic_and_payload(line: &str) -> (String, String) {
    match line.split_once(' ') {
        Some((topic, "(null)")) | Some((topic, "")) => (topic.to_string(), String::new()),
        Some((topic, payload)) => (topic.to_string(), payload.to_string()),
        None => (line.to_string(), String::new()),
    }
}

/// Publishes `payload` retained on `topic` with a real client
/// (mosquitto_pub, QoS 1).
pub fn publish_retained(port: u16, topic: &str, payload: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-r"])
        .args(["-t", topic, "-m", payload])
        .status()
        .expect("mosquitto_pub is missing: run scripts/setup.sh");
    assert!(status.success(), "mosquitto_pub {topic}: {status}");
}

/// A real MQTT client (mosquitto_sub) subscribed to a topic: `start`
/// returns once the broker has acknowledged the subscription, so nothing
/// published afterwards is missed.
pub struct Subscriber {
    child: Proc,
    reader: std::thread::JoinHandle<Vec<(Instant, String, String)>>,
}

impl Subscriber {
    /// Subscribes to `topic` until `count` messages came or `wait` seconds
    /// passed.
    pub fn start(port: u16, topic: &str, count: usize, wait: u32) -> Subscriber {
        use std::io::BufRead;
        // Line-buffered: piped, mosquitto_sub's stdout would hold its lines
        // (the SUBACK among them) until a buffer fills.
        let mut child = Proc::spawn(
            Command::new("stdbuf")
                .args(["-oL", "mosquitto_sub", "-d"])
                .args(mosquitto_sub_args("127.0.0.1", port, topic, count, wait))
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut messages = Vec::new();
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                // Debug lines name the client (or report the subscription);
                // `-v` lines are "topic payload".
                if line.starts_with("Client ") || line.starts_with("Subscribed (mid") {
                    if line.contains("received SUBACK") {
                        let _ = subscribed_tx.send(());
                    }
                } else {
                    let (topic, payload) = topic_and_payload(&line);
                    messages.push((Instant::now(), topic, payload));
                }
            }
            messages
        });
        assert!(
            subscribed.recv_timeout(Duration::from_secs(10)).is_ok(),
            "the broker on {port} did not acknowledge the subscription to {topic}"
        );
        Subscriber { child, reader }
    }

    /// The messages (topic, payload), once the subscriber has ended.
    pub fn messages(self) -> Vec<(String, String)> {
        self.timed_messages()
            .into_iter()
            .map(|(_, topic, payload)| (topic, payload))
            .collect()
    }

    /// The messages with the moment each line was read, once the
    /// subscriber has ended.
    pub fn timed_messages(self) -> Vec<(Instant, String, String)> {
        let Subscriber { mut child, reader } = self;
        let _ = child.0.wait();
        reader.join().unwrap()
    }
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

/// A POST with a JSON body: status and JSON answer.
pub fn post_json(
    port: u16,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let (status, _, body) = parse_response(&response).expect("an HTTP answer");
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Debian's interpreter, for which scripts/setup.sh installs the Python
/// packages the tests drive (pymodbus, jsonschema); another `python3`
/// first on the PATH (a pyenv) would not have them.
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Validates payloads (schema file under docs/schemas, topic, payload)
/// with tests/e2e/check_json.py (Debian's python3-jsonschema); its report
/// on success, a failed assertion naming each error otherwise.
pub fn check_schemas(items: &[(&str, &str, &str)]) -> String {
    let mut lines = String::new();
    for (schema, topic, payload) in items {
        let item = serde_json::json!({
            "schema": format!("docs/schemas/{schema}"),
            "topic": topic,
            "payload": payload,
        });
        lines += &format!("{item}\n");
    }
    let mut checker = Command::new(DEBIAN_PYTHON)
        .arg(repo().join("tests/e2e/check_json.py"))
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is missing: run scripts/setup.sh");
    checker
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let checked = checker.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&checked.stdout).trim().to_string();
    assert!(checked.status.success(), "schema check failed:\n{report}");
    report
}

/// A space's occupancy as `/api/v1/occupancy` serves it now.
pub fn space_count(port: u16, space: &str) -> Option<u64> {
    let (_, occupancy) = get(port, "/api/v1/occupancy")?;
    occupancy["spaces"]
        .as_array()?
        .iter()
        .find(|s| s["space"] == space)?["occupancy"]
        .as_u64()
}

/// Where Debian installs Mosquitto.
pub fn mosquitto_binary() -> &'static str {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto is missing: run scripts/setup.sh")
}
