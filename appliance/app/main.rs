//! `headcount`: counts heads, never faces. One binary, one subcommand per job.

mod admin;
mod analyze;
mod audit;
mod bench;
mod bench_analytics;
mod bench_api;
mod bench_governance;
mod bench_tamper;
mod disk;
mod dpo;
mod dumps;
mod fleet;
mod memory;
mod notify;
mod pipeline;
mod pushes;
mod redact;
mod serve;

use anyhow::Context;
use clap::{Parser, Subcommand};
use headcount_api::AppState;
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{Config, SystemSecrets, Tls};
use headcount_domain::disclosure::push::PushFeed;
use headcount_domain::models::Manifest;
use headcount_domain::security::{Lockout, RateLimit, SecurityEvent, SecurityLog};
use headcount_store::TokenStore;
use headcount_store::{AuditAction, AuditEntry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::broadcast;

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
    /// Model supply chain: verify, and sign a manifest with a release key.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// API tokens with roles (admin, facilities, planner, dpo) and expiry;
    /// each names the person or system that holds it (alias: users).
    #[command(visible_alias = "users")]
    Tokens {
        #[command(subcommand)]
        action: admin::TokensAction,
    },
    /// Camera passwords sealed in the state directory (password_ref = "secret:NAME").
    Secrets {
        #[command(subcommand)]
        action: admin::SecretsAction,
    },
    /// The DPO's documents from the config: record of processing (Art. 30), sign text (Art. 13).
    Dpo {
        #[command(subcommand)]
        action: dpo::DpoAction,
    },
    /// The tamper-evident audit log: verify its hash chain and signed checkpoints.
    Audit {
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Serve a video file in a loop over RTSP: the demo camera.
    Camera(CameraArgs),
    /// Measure per-stage cost and how many live 1080p streams this machine sustains.
    Bench(bench::BenchArgs),
    /// Measure the cost of tracking and zone/line counting per frame (no models needed).
    BenchAnalytics(bench_analytics::BenchAnalyticsArgs),
    /// Measure the cost of camera tamper detection per frame on a recording.
    BenchTamper(bench_tamper::BenchTamperArgs),
    /// Figures of data governance: suppression and noise on a generated
    /// month, rollup and sweep time on a generated year.
    BenchGovernance(bench_governance::BenchGovernanceArgs),
    /// Measure the latency authentication adds to an API request.
    BenchAuth(bench_api::BenchAuthArgs),
    /// Measure how fast one token polling one route grows the audit log,
    /// with identical reads written one by one and coalesced.
    BenchAudit(bench_api::BenchAuditArgs),
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
    /// Check the manifest's signature, then every model against it (size, sha256, input shape).
    Verify {
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
        /// Trust this public key (hex) instead of the release key built in.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Sign models/manifest.toml with a release key (writes manifest.toml.sig).
    Sign {
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
        /// The PKCS#8 Ed25519 private key from `models keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Make a new release signing key.
    Keygen {
        /// Where to write the private key (0600); keep it offline.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    if let Err(e) = dumps::forbid() {
        eprintln!("error: cannot forbid core dumps, which could write raw frames to disk: {e}");
        return ExitCode::FAILURE;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ort=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    memory::keep_large_buffers_mapped();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, state_dir } => run(config, state_dir),
        Command::CheckConfig { file } => check_config(file),
        Command::Analyze(args) => analyze::analyze(args),
        Command::Redact(args) => redact::redact(args),
        Command::Models { action } => match action {
            ModelsAction::Verify {
                models_dir,
                public_key,
            } => verify_models(models_dir, public_key),
            ModelsAction::Sign { models_dir, key } => admin::sign(&models_dir, &key),
            ModelsAction::Keygen { out } => admin::keygen(&out),
        },
        Command::Tokens { action } => admin::tokens(action),
        Command::Secrets { action } => admin::secrets(action),
        Command::Audit { action } => audit::audit(action),
        Command::Dpo { action } => dpo::dpo(action),
        Command::Camera(args) => camera(args),
        Command::Bench(args) => bench::bench(args),
        Command::BenchAnalytics(args) => bench_analytics::bench_analytics(args),
        Command::BenchTamper(args) => bench_tamper::bench_tamper(args),
        Command::BenchGovernance(args) => bench_governance::bench_governance(args),
        Command::BenchAuth(args) => bench_api::bench_auth(args),
        Command::BenchAudit(args) => bench_api::bench_audit(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path, state_dir: Option<&Path>) -> anyhow::Result<Config> {
    Config::load_with_state_dir(path, &SystemSecrets, state_dir).map_err(|errors| {
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
                "{}: ok ({} cameras, {zones} zones, {lines} lines, {} spaces; up to {} open files)",
                file.display(),
                c.cameras.len(),
                c.spaces.len(),
                c.api.connections.descriptors_needed(c.cameras.len())
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

fn verify_models(models_dir: PathBuf, public_key: Option<String>) -> anyhow::Result<ExitCode> {
    let keys = match public_key {
        Some(key) => vec![key],
        None => headcount_domain::models::release_keys(),
    };
    let manifest = Manifest::load_trusting(&models_dir, &keys)?;
    println!(
        "manifest signature: ok (key {})",
        &keys[0][..16.min(keys[0].len())]
    );
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

/// New files and folders only for their owner (0600, 0700), as systemd's
/// `UMask=0077` makes them: the state directory, its database and keys
/// stay private however the service is started.
pub(crate) fn keep_new_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// The state directory, made 0700 if it is new; one open to others is
/// reported (systemd's `StateDirectory=` is 0700).
fn make_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make the state directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "the state directory {} is open to other users (mode {:o}): `chmod 700` it",
            dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

fn run(config_path: PathBuf, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    keep_new_files_private();
    let mut config = load_config(&config_path, state_dir.as_deref())?;
    if let Some(dir) = state_dir {
        config.database = dir.join("headcount.db");
        config.state_dir = dir;
    }
    serve::reserve_descriptors(&config)?;
    make_state_dir(&config.state_dir)?;
    let clock = headcount_domain::clock::from_environment().map_err(anyhow::Error::msg)?;
    let events = Arc::new(SecurityLog::new(config.syslog.clone(), clock.clone()));
    let config_change = note_config_change(&config_path, &config.state_dir, &events)?;
    if let Err(e) = check_models(&config.models_dir) {
        events.emit(SecurityEvent::ModelVerificationFailed {
            detail: e.to_string(),
        });
        return Err(e.into());
    }
    let tokens = Arc::new(TokenStore::open(&config.database, &config.state_dir)?);
    let announce = |admin: &headcount_domain::security::IssuedToken| {
        announce_first_admin(&config.state_dir, admin.reveal())
    };
    if let Some(admin) = tokens.bootstrap_admin(clock.now_ms(), announce)? {
        events.emit(SecurityEvent::TokenCreated {
            token: headcount_store::pseudonym(&admin.info.id),
            role: admin.info.role.as_str(),
        });
    }
    let live = LiveConfig::new(config.clone(), Some(config_path.clone()));
    let appliance = pipeline::Appliance::start(&config, live.clone(), clock.clone())?;
    // Subscribed before anything can be raised, so that no notice is missed;
    // what leaves the box is what the disclosure policy makes of it.
    let mqtt_anomalies = config.mqtt.as_ref().is_some_and(|m| m.anomalies);
    let pushing = config.anomalies.webhook.is_some() || mqtt_anomalies;
    let stored_notices = pushing.then(|| appliance.notices.subscribe());
    let (pushed, _) = broadcast::channel(pipeline::NOTICE_BACKLOG);
    let webhook_notices = config
        .anomalies
        .webhook
        .as_ref()
        .map(|_| pushed.subscribe());
    let fleet_notices = mqtt_anomalies.then(|| pushed.subscribe());
    let push_feed = PushFeed::new(
        &config.site,
        config.aggregates.k,
        config.anomalies.wrong_way_push,
    );
    let config = Arc::new(config);
    let state = AppState {
        site: config.site.clone(),
        occupancy: appliance.occupancy.clone(),
        health: appliance.health.clone(),
        database: config.database.clone(),
        clock: clock.clone(),
        snapshots: appliance.snapshots.clone(),
        guard: Arc::new(headcount_api::access::Guard {
            tokens,
            // Secure cookies whenever the API is served over TLS.
            sessions: headcount_api::session::Sessions::new(!matches!(config.api.tls, Tls::Off))?,
            lockout: Lockout::new(config.api.lockout),
            rate: RateLimit::new(config.api.rate),
            events: events.clone(),
        }),
        config: live,
        writer: appliance.writer.clone(),
        anomaly_control: appliance.anomaly_control.clone(),
        live_streams: Default::default(),
        storage: appliance.storage.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    events.emit(SecurityEvent::ServiceStarted {
        version: env!("CARGO_PKG_VERSION"),
    });
    let served = runtime.block_on(async {
        if let Some(digest) = config_change {
            let entry = AuditEntry {
                actor: "headcount".into(),
                role: "system".into(),
                action: AuditAction::ConfigChange,
                target: config_path.display().to_string(),
                rows: 0,
                detail: serde_json::json!({ "sha256": digest }),
            };
            appliance.writer.audit(clock.now_ms(), vec![entry]).await?;
        }
        // Roll up and publish what a previous run left before the feed's first look.
        if let Err(e) = appliance.writer.maintain(clock.now_ms(), false).await {
            tracing::error!(error = %e, "the first rollup failed; the next pass retries");
        }
        let pushes = stored_notices
            .map(|notices| pushes::spawn(push_feed, notices, pushed.clone(), clock.clone()));
        let webhook = match (&config.anomalies.webhook, webhook_notices) {
            (Some(w), Some(notices)) => Some(notify::spawn_webhook(w.clone(), notices)?),
            _ => None,
        };
        let fleet = config
            .mqtt
            .as_ref()
            .map(|m| {
                fleet::Fleet::start(
                    m,
                    &config.site,
                    config.database.clone(),
                    appliance.writer.clone(),
                    fleet_notices,
                )
            })
            .transpose()?;
        let served = serve::serve(&config, headcount_api::router(state)).await;
        if let Some(fleet) = fleet {
            fleet.stop().await;
        }
        for task in [pushes, webhook].into_iter().flatten() {
            task.abort();
        }
        served
    });
    tracing::info!("stopping");
    appliance.stop();
    served.map(|_| ExitCode::SUCCESS)
}

/// Every model's bytes against the signed manifest, before anything loads.
fn check_models(models_dir: &Path) -> Result<(), headcount_domain::models::ModelError> {
    let manifest = Manifest::load(models_dir)?;
    for model in &manifest.models {
        model.verify(models_dir)?;
    }
    Ok(())
}

/// Reports a config that differs from the one of the last start, and
/// returns its digest.
fn note_config_change(
    config_path: &Path,
    state_dir: &Path,
    events: &SecurityLog,
) -> anyhow::Result<Option<String>> {
    let digest = headcount_domain::models::sha256_file(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let record = state_dir.join("config.sha256");
    let previous = std::fs::read_to_string(&record).unwrap_or_default();
    if previous.trim() != digest {
        events.emit(SecurityEvent::ConfigChanged {
            digest: digest.clone(),
        });
        headcount_domain::security::write_private_file(&record, digest.as_bytes())?;
        return Ok(Some(digest));
    }
    Ok(None)
}

/// Shows the first admin token once: in a file only the service user can
/// read and, on a terminal, on the console with how to replace it. Anywhere
/// else (systemd's journal, a file the output is redirected to, a pipe)
/// others may read what is printed: there only the file is named.
fn announce_first_admin(
    state_dir: &Path,
    token: &str,
) -> Result<(), headcount_domain::security::SecurityError> {
    use std::io::IsTerminal;
    let file = headcount_domain::security::tokens::initial_admin_file(state_dir);
    headcount_domain::security::write_private_file(&file, format!("{token}\n").as_bytes())?;
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let shown = if under_systemd || !std::io::stdout().is_terminal() {
        " is".to_string()
    } else {
        format!(" is\n\n  {token}\n\nIt is also")
    };
    println!(
        "First start: this appliance's admin token{shown} in {} (readable by the service user only). \
         Keep it safe, then rotate it and delete that file:\n  headcount tokens rotate admin --state-dir {}\n\
         Issue tokens for people and systems with `headcount tokens create --name NAME --role facilities|planner|dpo|admin`.",
        file.display(),
        state_dir.display()
    );
    Ok(())
}
