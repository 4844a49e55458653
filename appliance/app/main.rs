//! `headcount`: counts heads, never faces. One binary, one subcommand per job.

mod analyze;
mod bench;
mod bench_analytics;
mod pipeline;
mod redact;

use anyhow::Context;
use clap::{Parser, Subcommand};
use headcount_core::api::{self, AppState};
use headcount_core::clock::{Clock, SystemClock};
use headcount_core::config::{Config, SystemSecrets};
use headcount_core::models::Manifest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "headcount",
    version,
    about = "Privacy-preserving people counting for RTSP cameras"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: cameras, analysis and the local API.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Overrides appliance.state_dir (and so the default database path).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Validate a config file and list every problem with its key path.
    CheckConfig { file: PathBuf },
    /// Count persons and faces in a recording or a still, one JSON line per analysed frame.
    Analyze(analyze::AnalyzeArgs),
    /// Write a copy of a video or a still with every face redacted.
    Redact(redact::RedactArgs),
    /// Model supply chain.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Serve a video file in a loop over RTSP: the demo camera.
    Camera(CameraArgs),
    /// Measure per-stage cost and how many live 1080p streams this machine sustains.
    Bench(bench::BenchArgs),
    /// Measure the cost of tracking and zone/line counting per frame (no models needed).
    BenchAnalytics(bench_analytics::BenchAnalyticsArgs),
}

#[derive(clap::Args)]
struct CameraArgs {
    /// An H.264 MPEG-TS file (scripts/setup.sh makes one from vtest.avi).
    #[arg(long)]
    file: PathBuf,
    #[arg(long, default_value_t = 8554)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    #[arg(long, default_value = "/vtest")]
    mount: String,
    /// Require Basic auth with this user (password from --password-env).
    #[arg(long, requires = "password_env")]
    user: Option<String>,
    /// Environment variable holding the password for --user.
    #[arg(long, requires = "user")]
    password_env: Option<String>,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Check every model against models/manifest.toml (size, sha256, input shape).
    Verify {
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ort=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, state_dir } => run(config, state_dir),
        Command::CheckConfig { file } => check_config(file),
        Command::Analyze(args) => analyze::analyze(args),
        Command::Redact(args) => redact::redact(args),
        Command::Models {
            action: ModelsAction::Verify { models_dir },
        } => verify_models(models_dir),
        Command::Camera(args) => camera(args),
        Command::Bench(args) => bench::bench(args),
        Command::BenchAnalytics(args) => bench_analytics::bench_analytics(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path, &SystemSecrets).map_err(|errors| {
        anyhow::anyhow!(
            "{} has {} problem(s):\n{errors}",
            path.display(),
            errors.0.len()
        )
    })
}

fn check_config(file: PathBuf) -> anyhow::Result<ExitCode> {
    match Config::load(&file, &SystemSecrets) {
        Ok(c) => {
            let zones: usize = c.cameras.iter().map(|c| c.zones.len()).sum();
            let lines: usize = c.cameras.iter().map(|c| c.lines.len()).sum();
            println!(
                "{}: ok ({} cameras, {zones} zones, {lines} lines, {} spaces)",
                file.display(),
                c.cameras.len(),
                c.spaces.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            eprintln!("{}: {} problem(s)", file.display(), errors.0.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verify_models(models_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::load(&models_dir)?;
    let runtime = headcount_vision::OnnxRuntime::load(None)?;
    let mut failures = 0;
    for m in &manifest.models {
        let s = &m.source;
        let outcome = runtime.session(&models_dir, m, 1).map(|_| ());
        let verdict = match &outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                failures += 1;
                format!("FAILED: {e}")
            }
        };
        println!(
            "{:<7} {:<16} {} ({} bytes, sha256 {}) licence {}; from {} {}=={} {}; input {} {:?}: {verdict}",
            format!("{:?}", m.role).to_lowercase(),
            m.name,
            m.file,
            m.size_bytes,
            &m.sha256[..16],
            m.licence,
            s.registry,
            s.package,
            s.version,
            s.path,
            m.input.name,
            m.input.shape,
        );
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn camera(args: CameraArgs) -> anyhow::Result<ExitCode> {
    let password = match &args.password_env {
        Some(var) => Some(
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?,
        ),
        None => None,
    };
    let credentials = args
        .user
        .as_deref()
        .zip(password.as_deref())
        .map(|(user, password)| headcount_media::ServerCredentials { user, password });
    let server =
        headcount_media::serve_file(&args.file, &args.bind, args.port, &args.mount, credentials)?;
    println!("serving {} at {}", args.file.display(), server.url);
    server.wait();
    Ok(ExitCode::SUCCESS)
}

fn run(config_path: PathBuf, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&config_path)?;
    if let Some(dir) = state_dir {
        config.database = dir.join("headcount.db");
        config.state_dir = dir;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let appliance = pipeline::Appliance::start(&config, clock.clone())?;
    let state = AppState {
        site: config.site.clone(),
        occupancy: appliance.occupancy.clone(),
        layout: Arc::new(api::Layout::new(&config)),
        health: appliance.health.clone(),
        database: config.database.clone(),
        clock,
        snapshots: appliance.snapshots.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.api_bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.api_bind))?;
        tracing::info!(address = %config.api_bind, cameras = config.cameras.len(), "headcount is running");
        axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown_signal()).await.context("API server failed")
    });
    tracing::info!("stopping");
    appliance.stop();
    served.map(|_| ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
