//! The config file as every command reads it: parsed and validated, with
//! every problem listed (used by `cmds` and by the daemon's `run`).

use headcount_domain::config::{Config, ConfigErrors, SystemSecrets, UnreadSecrets};
use std::path::Path;

/// A config file, with every problem listed.
pub fn load_config(path: &Path, state_dir: Option<&Path>) -> anyhow::Result<Config> {
    Config::load_with_state_dir(path, &SystemSecrets, state_dir).map_err(|e| problems(path, e))
}

/// A config file as documents about it need it (the DPO's): validated
/// whole, but without its secrets, which a DPO's machine neither has nor
/// needs (a camera's password variable, a secret sealed in the state
/// directory).
pub fn load_config_without_secrets(path: &Path) -> anyhow::Result<Config> {
    Config::load(path, &UnreadSecrets).map_err(|e| problems(path, e))
}

fn problems(path: &Path, errors: ConfigErrors) -> anyhow::Error {
    anyhow::anyhow!(
        "{} has {} problem(s):\n{errors}",
        path.display(),
        errors.0.len()
    )
}
