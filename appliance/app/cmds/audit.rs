//! `headcount audit verify`: the data-protection officer's check that the
//! audit log is whole: every entry matches its hash and links to the one
//! before, no seq is missing, and every signed checkpoint verifies with the
//! device's audit key. Opens the database read-only; changes nothing.

use anyhow::Context;
use clap::Subcommand;
use headcount_domain::config::{Config, UnreadSecrets};
use headcount_domain::security::{audit_key, to_hex};
use headcount_store::{verify_audit, Database};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: AuditAction,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check the audit log's hash chain and signed checkpoints; exits 1 when
    /// it was altered, cut short or had entries removed.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The appliance's state directory [default: from --config, else /var/lib/headcount].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Its database, when appliance.database moves it out of the state directory.
    #[arg(long)]
    database: Option<PathBuf>,
    /// Take the state directory and database from this config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Verify checkpoints with this audit public key (hex) instead of the
    /// state directory's audit-signing.pub: a copy kept elsewhere cannot
    /// have been replaced along with the log.
    #[arg(long)]
    public_key: Option<String>,
}

pub fn run(Args { action }: Args) -> anyhow::Result<ExitCode> {
    match action {
        AuditAction::Verify(args) => verify(args),
    }
}

/// The state directory and database, as `run` and `tokens` find them.
fn locate(args: &VerifyArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (state_dir, database) = match &args.config {
        Some(path) => {
            let config = // Verification needs the config's paths, never a camera password.
            Config::load_with_state_dir(path, &UnreadSecrets, args.state_dir.as_deref())
                .map_err(|errors| {
                anyhow::anyhow!(
                    "{} has {} problem(s):\n{errors}",
                    path.display(),
                    errors.0.len()
                )
            })?;
            match &args.state_dir {
                Some(dir) => (dir.clone(), dir.join("headcount.db")),
                None => (config.state_dir, config.database),
            }
        }
        None => {
            let dir = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/lib/headcount"));
            let database = dir.join("headcount.db");
            (dir, database)
        }
    };
    Ok((state_dir, args.database.clone().unwrap_or(database)))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (state_dir, database) = locate(&args)?;
    // As root, read as the service user: nothing it planted is followed
    // with root's rights, and SQLite's side files keep their owner.
    if let Some(code) = super::run_as_owner(&state_dir)? {
        return Ok(code);
    }
    let (public_key, key_source) = match &args.public_key {
        Some(hex) => (
            audit_key::parse_audit_public_key(hex).context("--public-key")?,
            "given".to_string(),
        ),
        None => (
            audit_key::read_audit_public_key(&state_dir).with_context(|| {
                format!(
                    "no audit public key: give it with --public-key, or point --state-dir at \
                     the appliance's state directory (which holds {})",
                    audit_key::AUDIT_PUBLIC_KEY_FILE
                )
            })?,
            state_dir
                .join(audit_key::AUDIT_PUBLIC_KEY_FILE)
                .display()
                .to_string(),
        ),
    };
    if !database.is_file() {
        anyhow::bail!("there is no database at {}", database.display());
    }
    let db = Database::open_read_only(&database)?;
    let report = verify_audit(&db, &public_key)
        .with_context(|| format!("cannot read the audit log in {}", database.display()))?;

    println!("audit log: {}", database.display());
    println!("audit key: {} ({key_source})", to_hex(&public_key));
    let span = match (report.first_seq, report.last_seq) {
        (Some(first), Some(last)) => format!(" (seq {first}\u{2013}{last})"),
        _ => String::new(),
    };
    println!(
        "checked {} entries{span} and {} signed checkpoints",
        report.entries, report.checkpoints
    );
    if let Some(anchor) = report.anchor_seq {
        println!("retention has removed the entries up to {anchor}");
    }
    for problem in &report.problems {
        println!("PROBLEM: {problem}");
    }
    if report.is_intact() {
        println!("the audit log is intact");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "the audit log has {} problem(s): it was tampered with or damaged",
            report.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
