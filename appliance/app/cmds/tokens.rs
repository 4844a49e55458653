//! `headcount tokens` (alias `users`): API tokens with roles and expiry,
//! each naming the person or system that holds it. Works on the state
//! directory of an installed appliance and reports what it changed to the
//! security log.

use super::{security_log, StateArgs};
use clap::Subcommand;
use headcount_domain::clock::{Clock, SystemClock, UnixMs};
use headcount_domain::security::{Role, SecurityEvent, SecurityLog};
use headcount_store::pseudonym;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: TokensAction,
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

pub fn run(Args { action }: Args) -> anyhow::Result<ExitCode> {
    crate::process::keep_new_files_private();
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
