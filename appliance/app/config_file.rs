//! The config file as every command reads it: parsed and validated, with
//! every problem listed (used by `cmds` and by the daemon's `run`).

use headcount_domain::config::{Config, SystemSecrets};
use std::path::Path;

/// A config file, with every problem listed.
pub fn load_config(path: &Path, state_dir: Option<&Path>) -> anyhow::Result<Config> {
    Config::load_with_state_dir(path, &SystemSecrets, state_dir).map_err(|errors| {
        anyhow::anyhow!(
            "{} has {} problem(s):\n{errors}",
            path.display(),
            errors.0.len()
        )
    })
}
