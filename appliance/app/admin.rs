//! The admin's commands: API tokens, sealed camera secrets, and signing the
//! models manifest. Each works on the state directory of an installed
//! appliance (`--state-dir`, default /var/lib/headcount) and reports what it
//! changed to the security log.

use anyhow::Context;
use clap::Subcommand;
use headcount_domain::clock::{Clock, SystemClock, UnixMs};
use headcount_domain::security::events::SyslogTarget;
use headcount_domain::security::{Role, SecretsFile, SecurityEvent, SecurityLog};
use headcount_store::pseudonym;
use headcount_store::TokenStore;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct StateArgs {
    /// The appliance's state directory.
    #[arg(long, default_value = "/var/lib/headcount")]
    state_dir: PathBuf,
    /// Its database, when appliance.database moves it out of the state directory.
    #[arg(long)]
    database: Option<PathBuf>,
}

impl StateArgs {
    /// Run as root on a service's state directory (owned by its dynamic
    /// user), the command runs again as that owner: the files it makes stay
    /// readable to the service, and nothing the service user could plant in
    /// its directory (a symbolic link, say) is followed with root's rights.
    /// Some(exit code) when it did.
    fn run_as_owner(&self) -> anyhow::Result<Option<ExitCode>> {
        run_as_owner(&self.state_dir)
    }

    fn tokens(&self) -> anyhow::Result<TokenStore> {
        let database = self
            .database
            .clone()
            .unwrap_or_else(|| self.state_dir.join("headcount.db"));
        Ok(TokenStore::open(&database, &self.state_dir)?)
    }
}

/// `StateArgs::run_as_owner` for any command working on `state_dir`.
pub(crate) fn run_as_owner(state_dir: &Path) -> anyhow::Result<Option<ExitCode>> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let Ok(dir) = std::fs::metadata(state_dir) else {
        return Ok(None);
    };
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if me != 0 || dir.uid() == 0 {
        return Ok(None);
    }
    let exe = std::env::current_exe()
        .context("cannot find this program to run it as the service user")?;
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .uid(dir.uid())
        .gid(dir.gid())
        .status()
        .context("cannot run as the owner of the state directory")?;
    Ok(Some(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }))
}

#[derive(Subcommand)]
pub enum TokensAction {
    /// Issue a token; it is shown once, only its digest is kept.
    Create {
        #[arg(long)]
        name: String,
        /// admin, facilities, planner or dpo.
        #[arg(long)]
        role: Role,
        /// A lifetime such as 90d, 12h or 30m, or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List tokens: id (the audit log's `token:<id>`), name, role, dates
    /// and state; never a secret.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// A new secret for a token (same role and expiry); the old one stops working.
    Rotate {
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Revoke a token at once.
    Revoke {
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Subcommand)]
pub enum SecretsAction {
    /// Seal a camera password read from standard input (never an argument,
    /// which other users could see); refer to it as password_ref = "secret:NAME".
    Set {
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The names of the sealed secrets.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    Remove {
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// Security events from the command line go where the service's go by default.
fn security_log() -> SecurityLog {
    let dev_log = Path::new("/dev/log");
    let target = if dev_log.exists() {
        SyslogTarget::Unix(dev_log.into())
    } else {
        SyslogTarget::None
    };
    SecurityLog::new(target, Arc::new(SystemClock))
}

fn time(ms: Option<UnixMs>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `90d`, `12h`, `30m` from now, or an RFC 3339 time.
fn parse_expiry(text: &str, now: UnixMs) -> anyhow::Result<UnixMs> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let split = text.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = text.split_at(split);
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if n > 0 && unit_ms > 0 && n <= 3650 * 86_400_000 / unit_ms => Ok(now + n * unit_ms),
        _ => anyhow::bail!(
            "--expires `{text}` is not a lifetime such as 90d, 12h or 30m (at most 10 years), nor an RFC 3339 time"
        ),
    }
}

fn show_issued(token: &headcount_domain::security::IssuedToken) {
    println!(
        "token for {} ({}, role {}, expires {}):\n\n  {}\n\nIt is shown only now; headcount keeps only a digest of it. Send it as `Authorization: Bearer <token>`.",
        token.info.name,
        pseudonym(&token.info.id),
        token.info.role,
        time(token.info.expires_ms),
        token.reveal()
    );
}

pub fn tokens(action: TokensAction) -> anyhow::Result<ExitCode> {
    crate::keep_new_files_private();
    let now = SystemClock.now_ms();
    let log = security_log();
    let state = match &action {
        TokensAction::Create { state, .. }
        | TokensAction::List { state }
        | TokensAction::Rotate { state, .. }
        | TokensAction::Revoke { state, .. } => state,
    };
    if let Some(code) = state.run_as_owner()? {
        return Ok(code);
    }
    tokens_in(&action, now, &log)
}

fn tokens_in(action: &TokensAction, now: UnixMs, log: &SecurityLog) -> anyhow::Result<ExitCode> {
    match action {
        TokensAction::Create {
            name,
            role,
            expires,
            state,
        } => {
            let expires = expires
                .as_deref()
                .map(|e| parse_expiry(e, now))
                .transpose()?;
            let token = state.tokens()?.create(name, *role, expires, now)?;
            log.emit(SecurityEvent::TokenCreated {
                token: pseudonym(&token.info.id),
                role: role.as_str(),
            });
            show_issued(&token);
        }
        TokensAction::List { state } => {
            // Named as the audit log and the security events name them.
            println!(
                "{:<22} {:<24} {:<10} {:<20} {:<20} state",
                "pseudonym", "name", "role", "created", "expires"
            );
            for t in state.tokens()?.list()? {
                let status = match (t.revoked_ms, t.expires_ms) {
                    (Some(at), _) => format!("revoked {}", time(Some(at))),
                    (None, Some(e)) if e <= now => "expired".into(),
                    _ => "in force".into(),
                };
                println!(
                    "{:<22} {:<24} {:<10} {:<20} {:<20} {status}",
                    pseudonym(&t.id),
                    t.name,
                    t.role,
                    time(Some(t.created_ms)),
                    time(t.expires_ms)
                );
            }
        }
        TokensAction::Rotate { name, state } => {
            let token = state.tokens()?.rotate(name, now)?;
            log.emit(SecurityEvent::TokenRotated {
                token: pseudonym(&token.info.id),
                replaced: token.replaced.as_deref().map(pseudonym).unwrap_or_default(),
            });
            show_issued(&token);
        }
        TokensAction::Revoke { name, state } => {
            let id = state.tokens()?.revoke(name, now)?;
            log.emit(SecurityEvent::TokenRevoked {
                token: pseudonym(&id),
            });
            println!("revoked the token of {name} ({})", pseudonym(&id));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn secrets(action: SecretsAction) -> anyhow::Result<ExitCode> {
    crate::keep_new_files_private();
    let log = security_log();
    let state = match &action {
        SecretsAction::Set { state, .. }
        | SecretsAction::List { state }
        | SecretsAction::Remove { state, .. } => state,
    };
    if let Some(code) = state.run_as_owner()? {
        return Ok(code);
    }
    secrets_in(&action, &log)
}

fn secrets_in(action: &SecretsAction, log: &SecurityLog) -> anyhow::Result<ExitCode> {
    match action {
        SecretsAction::Set { name, state } => {
            let mut value = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut value)
                .context("cannot read the secret from standard input")?;
            let value = value.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                anyhow::bail!("no secret on standard input (e.g. `systemd-ask-password | headcount secrets set {name}`)");
            }
            SecretsFile::in_state_dir(&state.state_dir).set(name, value)?;
            log.emit(SecurityEvent::SecretChanged {
                secret: name.clone(),
                action: "set",
            });
            println!("sealed secret {name}; use password_ref = \"secret:{name}\"");
        }
        SecretsAction::List { state } => {
            for name in SecretsFile::in_state_dir(&state.state_dir).names()? {
                println!("{name}");
            }
        }
        SecretsAction::Remove { name, state } => {
            if !SecretsFile::in_state_dir(&state.state_dir).remove(name)? {
                anyhow::bail!("there is no secret {name}");
            }
            log.emit(SecurityEvent::SecretChanged {
                secret: name.clone(),
                action: "removed",
            });
            println!("removed secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A new release signing key: the private half to `out` (0600), the public
/// half printed for models/release-key.pub.
pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        anyhow::bail!(
            "{} exists; refusing to overwrite a signing key",
            out.display()
        );
    }
    let (pkcs8, public) = headcount_domain::models::generate_signing_key()?;
    headcount_domain::security::write_private_file(out, &pkcs8)?;
    println!("{public}");
    eprintln!(
        "private key written to {} (keep it offline); the line above is its public key",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sign(models_dir: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let pkcs8 = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    let public = headcount_domain::models::sign_manifest(models_dir, &pkcs8)?;
    println!(
        "signed {} with key {public}",
        models_dir
            .join(headcount_domain::models::MANIFEST_FILE)
            .display()
    );
    if !headcount_domain::models::release_keys().contains(&public) {
        eprintln!(
            "note: this build does not trust that key; the appliance will refuse these models"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_lifetimes_or_times() {
        assert_eq!(parse_expiry("90d", 0).unwrap(), 90 * 86_400_000);
        assert_eq!(parse_expiry("12h", 1).unwrap(), 1 + 12 * 3_600_000);
        assert_eq!(parse_expiry("30m", 0).unwrap(), 1_800_000);
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00Z", 0).unwrap(),
            1_798_761_600_000
        );
        for bad in ["", "d", "0d", "-1h", "5y", "99999d", "tomorrow", "1é"] {
            assert!(parse_expiry(bad, 0).is_err(), "{bad}");
        }
    }
}
