//! `headcount check-config`: validates a config file, with the dashboard's
//! saved edits laid over it as the appliance loads it, and lists every
//! problem with its key path; `--merged` prints the result, each table the
//! edits replaced marked with the file it came from.

use headcount_domain::config::{Config, SystemSecrets};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    /// The state directory whose saved edits apply (as `run --state-dir`);
    /// default: the config's `appliance.state_dir`.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Print the config as the appliance runs it: the file with the
    /// dashboard's edits laid over it, each overlaid table marked.
    #[arg(long)]
    merged: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        file,
        state_dir,
        merged,
    } = args;
    let loaded = Config::merged_file(&file, state_dir.as_deref()).and_then(|m| {
        let base = file.parent().unwrap_or(Path::new("."));
        Config::parse_with_state_dir(&m.text, base, &SystemSecrets, state_dir.as_deref())
            .map(|c| (m, c))
    });
    match loaded {
        Ok((m, c)) => {
            if merged {
                print!("{}", m.text);
            }
            // With the merged text on stdout, the summary goes to stderr.
            let say = |line: String| {
                if merged {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            };
            let zones: usize = c.cameras.iter().map(|c| c.zones.len()).sum();
            let lines: usize = c.cameras.iter().map(|c| c.lines.len()).sum();
            say(format!(
                "{}: ok ({} cameras, {zones} zones, {lines} lines, {} spaces; up to {} open files)",
                file.display(),
                c.cameras.len(),
                c.spaces.len(),
                c.api.connections.descriptors_needed(c.cameras.len())
            ));
            let overlay = headcount_domain::config::overlay::overlay_path(&c.state_dir);
            if !m.overlaid.is_empty() {
                say(format!(
                    "zones and lines of {} from {} (saved from the dashboard); everything else from {}",
                    m.overlaid.join(", "),
                    overlay.display(),
                    file.display()
                ));
            }
            if !m.unused.is_empty() {
                say(format!(
                    "{} keeps edits of {} that {} no longer has; unused",
                    overlay.display(),
                    m.unused.join(", "),
                    file.display()
                ));
            }
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
