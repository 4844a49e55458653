//! `headcount bench-auth`: what authentication adds to a request. The real
//! router, in process (no sockets, so the figure is the server's own work):
//! the same trivial route answered with authentication (`/api/v1/whoami`,
//! token lookup in SQLite, HMAC check in constant time, role check) and
//! without (`/livez`), and the token check alone. Prints figures; asserts
//! nothing.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use headcount_core::analytics::OccupancyBoard;
use headcount_core::api::{self, access::Guard, AppState};
use headcount_core::clock::{Clock, SystemClock};
use headcount_core::config::live::LiveConfig;
use headcount_core::config::{Config, SystemSecrets};
use headcount_core::health::HealthBoard;
use headcount_core::security::events::SyslogTarget;
use headcount_core::security::lockout::LockoutPolicy;
use headcount_core::security::{Lockout, Role, SecurityLog, TokenStore};
use headcount_core::snapshot::SnapshotBoard;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[derive(clap::Args)]
pub struct BenchAuthArgs {
    /// Requests per route.
    #[arg(long, default_value_t = 20_000)]
    requests: u32,
    /// Tokens in the store besides the one used (a site's worth of users).
    #[arg(long, default_value_t = 200)]
    tokens: u32,
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

pub fn bench_auth(args: BenchAuthArgs) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().to_path_buf();
    let config = Config::parse(
        "[cameras.c]\nurl = \"testsrc:ball\"\n",
        &dir,
        &SystemSecrets,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let database = dir.join("bench.db");
    let tokens = Arc::new(TokenStore::open(&database, &dir)?);
    let now = clock.now_ms();
    for i in 0..args.tokens {
        tokens.create(&format!("user{i}"), Role::Facilities, None, now)?;
    }
    let token = tokens
        .create("bench", Role::Facilities, None, now)?
        .reveal()
        .to_string();
    let (writer, _writer_thread) = headcount_core::storage::Writer::spawn(
        headcount_core::storage::Database::open(&database)?,
        None,
    )?;
    let state = AppState {
        site: "bench".into(),
        occupancy: OccupancyBoard::new(&config),
        health: HealthBoard::new(config.cameras.iter().map(|c| &c.id)),
        database,
        clock: clock.clone(),
        snapshots: SnapshotBoard::new(false),
        guard: Arc::new(Guard {
            tokens: tokens.clone(),
            sessions: api::session::Sessions::new(false)?,
            lockout: Lockout::new(LockoutPolicy::default()),
            events: Arc::new(SecurityLog::new(SyslogTarget::None, clock.clone())),
        }),
        config: LiveConfig::new(config, None),
        writer,
        fleet: Default::default(),
        anomaly_control: Default::default(),
        live_streams: Default::default(),
    };
    let router = api::router(state);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let client: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let time_route = |path: &str, token: Option<&str>| -> anyhow::Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(args.requests as usize);
        for _ in 0..args.requests {
            let mut request = Request::get(path);
            if let Some(t) = token {
                request = request.header("authorization", format!("Bearer {t}"));
            }
            let mut request = request.body(Body::empty())?;
            request.extensions_mut().insert(ConnectInfo(client));
            let started = Instant::now();
            let response = runtime.block_on(router.clone().oneshot(request))?;
            times.push(started.elapsed());
            anyhow::ensure!(response.status() == 200, "{path}: {}", response.status());
        }
        Ok(times)
    };
    println!(
        "bench-auth: {} requests per route, {} tokens in the store, in process",
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
        time_route("/api/v1/whoami", Some(&token))?,
    );
    let mut checks = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        let started = Instant::now();
        let caller = tokens.authenticate(&token, now);
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
