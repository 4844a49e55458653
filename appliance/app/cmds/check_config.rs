//! `headcount check-config`: validates a config file and lists every
//! problem with its key path.

use headcount_domain::config::{Config, SystemSecrets};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
}

pub fn run(Args { file }: Args) -> anyhow::Result<ExitCode> {
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
