//! The daemon's wiring, in one place: the stages (`pipeline`) started under
//! the `supervisor`, the API served (`serve`), and what leaves the box on
//! its own (anomaly `pushes` to the `notify` webhook and the MQTT `fleet`).

pub mod bacnet;
pub mod disk;
pub mod fleet;
pub mod modbus;
pub mod notify;
pub mod pipeline;
pub mod pushes;
pub mod serve;
pub mod supervisor;

use crate::config_file::load_config;
use anyhow::Context;
use headcount_api::AppState;
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::Tls;
use headcount_domain::disclosure::live::{LiveFeed, LiveView};
use headcount_domain::disclosure::push::PushFeed;
use headcount_domain::models::Manifest;
use headcount_domain::security::{Lockout, RateLimit, SecurityEvent, SecurityLog};
use headcount_store::{AuditAction, AuditEntry, TokenStore};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use supervisor::Supervisor;
use tokio::sync::broadcast;

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

pub fn run(config_path: PathBuf, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    crate::process::keep_new_files_private();
    let mut config = load_config(&config_path, state_dir.as_deref())?;
    if let Some(dir) = state_dir {
        config.database = dir.join("headcount.db");
        config.state_dir = dir;
    }
    serve::reserve_descriptors(&config)?;
    make_state_dir(&config.state_dir)?;
    // Held until the process ends: no second appliance, and no restore,
    // on this state directory meanwhile.
    let _one_appliance = crate::state_lock::StateLock::take(&config.state_dir)?;
    let api_port = serve::claim_port(config.api.bind)?;
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
    let supervisor = Supervisor::from_environment()?;
    let appliance = pipeline::Appliance::start(&config, live.clone(), clock.clone(), &supervisor)?;
    supervisor.report_to(appliance.health.clone());
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
        validations: Default::default(),
        adjustments: appliance.adjustments.clone(),
        storage: appliance.storage.clone(),
    };
    // A worker per core: a slow request (an export, a blocking token read)
    // never holds up the others.
    let runtime = tokio::runtime::Builder::new_multi_thread()
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
            headcount_domain::security::write_private_file(
                &config.state_dir.join(CONFIG_DIGEST_FILE),
                digest.as_bytes(),
            )?;
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
                let live = m.live.then(|| fleet::LiveSource {
                    feed: LiveFeed::new(
                        &m.topic_prefix,
                        &config.site,
                        LiveView::from_config(&config),
                        m.home_assistant.as_deref(),
                        env!("CARGO_PKG_VERSION"),
                    ),
                    board: appliance.occupancy.clone(),
                    health: appliance.health.clone(),
                    clock: clock.clone(),
                });
                fleet::Fleet::start(
                    m,
                    &config.site,
                    config.database.clone(),
                    appliance.writer.clone(),
                    fleet_notices,
                    live,
                    headcount_store::fleet::site_descriptor(&config),
                )
            })
            .transpose()?;
        let modbus = match &config.modbus {
            Some(m) => Some(
                modbus::spawn(
                    m,
                    modbus::Registers {
                        view: LiveView::from_config(&config),
                        board: appliance.occupancy.clone(),
                        health: appliance.health.clone(),
                        clock: clock.clone(),
                    },
                )
                .await?,
            ),
            None => None,
        };
        let bacnet = match &config.bacnet {
            Some(b) => {
                bacnet::spawn(
                    b,
                    bacnet::Points {
                        view: LiveView::from_config(&config),
                        board: appliance.occupancy.clone(),
                        health: appliance.health.clone(),
                        clock: clock.clone(),
                        device_instance: b.device_instance,
                        device_name: format!("headcount {}", config.site),
                        latest: Default::default(),
                    },
                )
                .await?
            }
            None => Vec::new(),
        };
        let served =
            serve::serve(&config, api_port, headcount_api::router(state), supervisor).await;
        if let Some(fleet) = fleet {
            fleet.stop().await;
        }
        for task in [pushes, webhook, modbus]
            .into_iter()
            .flatten()
            .chain(bacnet)
        {
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
/// returns its digest; `CONFIG_DIGEST_FILE` takes it only once its audit
/// entry is durable, so a start that fails before then reports it again.
fn note_config_change(
    config_path: &Path,
    state_dir: &Path,
    events: &SecurityLog,
) -> anyhow::Result<Option<String>> {
    let digest = headcount_domain::models::sha256_file(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let previous = std::fs::read_to_string(state_dir.join(CONFIG_DIGEST_FILE)).unwrap_or_default();
    if previous.trim() != digest {
        events.emit(SecurityEvent::ConfigChanged {
            digest: digest.clone(),
        });
        return Ok(Some(digest));
    }
    Ok(None)
}

/// The digest of the config of the last start whose change was audited.
const CONFIG_DIGEST_FILE: &str = "config.sha256";

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
