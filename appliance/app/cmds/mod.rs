//! The `headcount` binary's subcommands, one module each: its arguments
//! (`Args`) and what it does (`run`). `main` only parses and dispatches.

pub mod analyze;
pub mod audit;
pub mod backup;
pub mod camera;
pub mod check_config;
pub mod dpo;
pub mod models;
pub mod redact;
pub mod run;
pub mod secrets;
pub mod tokens;

pub use crate::config_file::{load_config, load_config_without_secrets};

use anyhow::Context;
use headcount_domain::clock::SystemClock;
use headcount_domain::security::events::SyslogTarget;
use headcount_domain::security::SecurityLog;
use headcount_store::TokenStore;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The first line on standard input without its line end (a secret or a
/// passphrase piped in, never on the command line); empty when there is none.
pub fn first_line_of_stdin(what: &str) -> anyhow::Result<String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Where the admin's commands work: an installed appliance's state
/// directory and its database.
#[derive(clap::Args)]
pub struct StateArgs {
    /// The appliance's state directory.
    #[arg(long, default_value = "/var/lib/headcount")]
    pub state_dir: PathBuf,
    /// Its database, when appliance.database moves it out of the state directory.
    #[arg(long)]
    pub database: Option<PathBuf>,
}

impl StateArgs {
    /// Run as root on a service's state directory (owned by its dynamic
    /// user), the command runs again as that owner: the files it makes stay
    /// readable to the service, and nothing the service user could plant in
    /// its directory (a symbolic link, say) is followed with root's rights.
    /// Some(exit code) when it did.
    pub fn run_as_owner(&self) -> anyhow::Result<Option<ExitCode>> {
        run_as_owner(&self.state_dir)
    }

    pub fn tokens(&self) -> anyhow::Result<TokenStore> {
        let database = self
            .database
            .clone()
            .unwrap_or_else(|| self.state_dir.join("headcount.db"));
        Ok(TokenStore::open(&database, &self.state_dir)?)
    }
}

/// `StateArgs::run_as_owner` for any command working on `state_dir`.
pub fn run_as_owner(state_dir: &Path) -> anyhow::Result<Option<ExitCode>> {
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

/// Security events from the command line go where the service's go by default.
pub fn security_log() -> SecurityLog {
    let dev_log = Path::new("/dev/log");
    let target = if dev_log.exists() {
        SyslogTarget::Unix(dev_log.into())
    } else {
        SyslogTarget::None
    };
    SecurityLog::new(target, Arc::new(SystemClock))
}
