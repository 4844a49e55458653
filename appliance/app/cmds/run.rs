//! `headcount run`: the appliance itself (cameras, analysis, the local API),
//! wired in `crate::run`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Overrides appliance.state_dir (and so the default database path).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

pub fn run(Args { config, state_dir }: Args) -> anyhow::Result<ExitCode> {
    crate::run::run(config, state_dir)
}
