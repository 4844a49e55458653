//! API benches on the real router, in process (no sockets, so the figures
//! are the server's own work). Print figures; assert nothing.
//!
//! - `auth`: what authentication adds to a request: the same trivial
//!   route answered with authentication (`/api/v1/whoami`: token lookup in
//!   SQLite, HMAC check in constant time, rate limit, role check, durable
//!   audit entry) and without (`/livez`), and the token check alone.
//! - `audit`: how fast one token polling one route grows the audit
//!   log, with identical reads written one by one and coalesced.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use headcount_api::{access::Guard, AppState};
use headcount_domain::analytics::OccupancyBoard;
use headcount_domain::clock::{Clock, SystemClock};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{Config, SystemSecrets};
use headcount_domain::health::HealthBoard;
use headcount_domain::security::events::SyslogTarget;
use headcount_domain::security::lockout::LockoutPolicy;
use headcount_domain::security::{Lockout, RateLimit, RatePolicy, Role, SecurityLog};
use headcount_domain::snapshot::SnapshotBoard;
use headcount_store::TokenStore;
use headcount_store::{Database, Writer, WriterOptions, READ_WINDOW_MS};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[derive(clap::Args)]
pub struct AuthArgs {
    /// Requests per route.
    #[arg(long, default_value_t = 20_000)]
    requests: u32,
    /// Tokens in the store besides the one used (a site's worth of users).
    #[arg(long, default_value_t = 200)]
    tokens: u32,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// How long one token reads in a loop, for each run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

/// No refusal in a bench that measures something else.
const UNLIMITED: RatePolicy = RatePolicy {
    burst: u32::MAX,
    per_sec: 1e9,
};

const CLIENT: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);

/// The real router over a scratch state directory, with its own writer.
struct InProcess {
    router: Router,
    /// A facilities token, to read with.
    token: String,
    tokens: Arc<TokenStore>,
    writer: Writer,
    writer_thread: std::thread::JoinHandle<()>,
    database: PathBuf,
    _scratch: tempfile::TempDir,
}

impl InProcess {
    fn start(extra_tokens: u32, read_window_ms: i64, rate: RatePolicy) -> anyhow::Result<Self> {
        let scratch = tempfile::tempdir()?;
        let dir = scratch.path().to_path_buf();
        let config = Config::parse(
            "[cameras.c]\nurl = \"testsrc:ball\"\n[cameras.c.zones.desk]\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]\n",
            &dir,
            &SystemSecrets,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let database = dir.join("bench.db");
        let tokens = Arc::new(TokenStore::open(&database, &dir)?);
        let now = clock.now_ms();
        for i in 0..extra_tokens {
            tokens.create(&format!("user{i}"), Role::Facilities, None, now)?;
        }
        let token = tokens
            .create("bench", Role::Facilities, None, now)?
            .reveal()
            .to_string();
        let options = WriterOptions {
            read_window_ms,
            ..WriterOptions::default()
        };
        let (writer, writer_thread) = Writer::spawn_with(Database::open(&database)?, options)?;
        let state = AppState {
            site: "bench".into(),
            occupancy: OccupancyBoard::new(&config),
            health: HealthBoard::new(config.cameras.iter().map(|c| &c.id)),
            database: database.clone(),
            clock: clock.clone(),
            snapshots: SnapshotBoard::new(false),
            guard: Arc::new(Guard {
                tokens: tokens.clone(),
                sessions: headcount_api::session::Sessions::new(false)?,
                lockout: Lockout::new(LockoutPolicy::default()),
                rate: RateLimit::new(rate),
                events: Arc::new(SecurityLog::new(SyslogTarget::None, clock.clone())),
            }),
            config: LiveConfig::new(config, None),
            writer: writer.clone(),
            anomaly_control: Default::default(),
            live_streams: Default::default(),
            validations: Default::default(),
            adjustments: Default::default(),
            storage: Default::default(),
        };
        Ok(InProcess {
            router: headcount_api::router(state),
            token,
            tokens,
            writer,
            writer_thread,
            database,
            _scratch: scratch,
        })
    }

    /// One GET; its status.
    fn get(
        &self,
        runtime: &tokio::runtime::Runtime,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<u16> {
        let mut request = Request::get(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let mut request = request.body(Body::empty())?;
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(CLIENT)));
        let response = runtime.block_on(self.router.clone().oneshot(request))?;
        Ok(response.status().as_u16())
    }

    /// Stops the writer (which writes the counts it holds) and returns the
    /// database's path, with the scratch directory that holds it.
    fn stop(self) -> (PathBuf, tempfile::TempDir) {
        drop(self.router);
        self.writer.stop_blocking();
        let _ = self.writer_thread.join();
        (self.database, self._scratch)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn summary(label: &str, mut times: Vec<Duration>) -> f64 {
    times.sort();
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
    println!(
        "{label:<34} mean {mean:7.1} us   p50 {:7.1} us   p99 {:7.1} us",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    mean
}

pub fn auth(args: AuthArgs) -> anyhow::Result<ExitCode> {
    // Every read written on its own, as the figure has always measured.
    let bench = InProcess::start(args.tokens, 0, UNLIMITED)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let time_route = |path: &str, token: Option<&str>| -> anyhow::Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(args.requests as usize);
        for _ in 0..args.requests {
            let started = Instant::now();
            let status = bench.get(&runtime, path, token)?;
            times.push(started.elapsed());
            anyhow::ensure!(status == 200, "{path}: {status}");
        }
        Ok(times)
    };
    println!(
        "headcount-bench auth: {} requests per route, {} tokens in the store, in process",
        args.requests,
        args.tokens + 1
    );
    // Warm up caches and the statement cache.
    time_route("/livez", None)?;
    let public = summary(
        "GET /livez (no authentication)",
        time_route("/livez", None)?,
    );
    let authed = summary(
        "GET /api/v1/whoami (token, role, audit entry)",
        time_route("/api/v1/whoami", Some(&bench.token))?,
    );
    let now = SystemClock.now_ms();
    let mut checks = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        let started = Instant::now();
        let caller = bench.tokens.authenticate(&bench.token, now);
        checks.push(started.elapsed());
        anyhow::ensure!(caller.is_ok(), "the bench token was refused");
    }
    summary("TokenStore::authenticate alone", checks);
    println!(
        "authentication adds {:.1} us per request (mean)",
        authed - public
    );
    Ok(ExitCode::SUCCESS)
}

/// Three significant digits, however small.
fn significant(x: f64) -> String {
    let decimals = if x > 0.0 {
        (2.0 - x.log10().floor()).max(0.0) as usize
    } else {
        0
    };
    format!("{x:.decimals$}")
}

/// One run of the read loop; prints its line.
fn audit_run(
    label: &str,
    seconds: u64,
    read_window_ms: i64,
    rate: RatePolicy,
) -> anyhow::Result<()> {
    let bench = InProcess::start(0, read_window_ms, rate)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let before = Database::open_read_only(&bench.database)?.audit_log_size()?;
    let (mut answered, mut refused) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        match bench.get(&runtime, "/api/v1/occupancy", Some(&bench.token))? {
            200 => answered += 1,
            429 => refused += 1,
            other => anyhow::bail!("GET /api/v1/occupancy: {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (database, _scratch) = bench.stop();
    let after = Database::open_read_only(&database)?.audit_log_size()?;
    let requests = answered + refused;
    let entries = after.0.saturating_sub(before.0);
    let bytes = after.1.saturating_sub(before.1);
    println!(
        "{label:<44} {requests:>8} requests ({:>6.0}/s; {refused} refused), {entries:>6} entries, \
         {bytes:>9} bytes: {} bytes per request",
        requests as f64 / elapsed,
        significant(bytes as f64 / requests.max(1) as f64),
    );
    Ok(())
}

pub fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    println!(
        "headcount-bench audit: one token reads GET /api/v1/occupancy in a loop for {} s per run, \
         real router in process; audit bytes = the stored columns of the new entries",
        args.seconds
    );
    audit_run(
        "identical reads written one by one",
        args.seconds,
        0,
        UNLIMITED,
    )?;
    audit_run(
        "coalesced (one entry + one count a minute)",
        args.seconds,
        READ_WINDOW_MS,
        UNLIMITED,
    )?;
    let rate = RatePolicy::default();
    audit_run(
        &format!("coalesced, rate limit {} + {}/s", rate.burst, rate.per_sec),
        args.seconds,
        READ_WINDOW_MS,
        rate,
    )?;
    Ok(ExitCode::SUCCESS)
}
