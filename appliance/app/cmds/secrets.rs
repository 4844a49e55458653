//! `headcount secrets`: camera passwords sealed in the state directory
//! (password_ref = "secret:NAME"), read from standard input, never from an
//! argument.

use super::{security_log, StateArgs};
use clap::Subcommand;
use headcount_domain::security::{SecretsFile, SecurityEvent, SecurityLog};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: SecretsAction,
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

pub fn run(Args { action }: Args) -> anyhow::Result<ExitCode> {
    crate::process::keep_new_files_private();
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
            let value = super::first_line_of_stdin("secret")?;
            if value.is_empty() {
                anyhow::bail!("no secret on standard input (e.g. `systemd-ask-password | headcount secrets set {name}`)");
            }
            SecretsFile::in_state_dir(&state.state_dir).set(name, &value)?;
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
