//! `headcount dpo`: the data-protection officer's documents, made from the
//! config: the GDPR Art. 30 record of processing and the Art. 13 sign text;
//! and the disclosure policy's table (who receives what, how finely), as
//! docs/privacy.md holds it.

use clap::{Subcommand, ValueEnum};
use headcount_domain::clock::{Clock, SystemClock};
use headcount_domain::dpo::{notice, ProcessingRecord};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: DpoAction,
}

#[derive(Subcommand)]
pub enum DpoAction {
    /// Print the record of processing activities (GDPR Art. 30).
    Record {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Md)]
        format: Format,
    },
    /// Print the first-layer notice (GDPR Art. 13) for the sign at one camera.
    Notice {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        camera: String,
    },
    /// Print the disclosure policy: every exit against every data class,
    /// with the finest granularity it may receive (Markdown).
    Disclosure,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Markdown: headings and tables, for people.
    Md,
    /// JSON, as the API serves it.
    Json,
}

pub fn run(Args { action }: Args) -> anyhow::Result<ExitCode> {
    match action {
        DpoAction::Record { config, format } => {
            let config = super::load_config_without_secrets(&config)?;
            let record = ProcessingRecord::from_config(&config, SystemClock.now_ms());
            match format {
                Format::Md => emit(&record.to_markdown())?,
                Format::Json => emit(&format!("{}\n", serde_json::to_string_pretty(&record)?))?,
            }
        }
        DpoAction::Notice { config, camera } => {
            let config = super::load_config_without_secrets(&config)?;
            emit(&notice(&config, &camera)?)?;
        }
        DpoAction::Disclosure => emit(&headcount_domain::disclosure::policy::markdown())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// To stdout; a reader that stops early (`| head`) is not an error, where
/// `print!` would panic.
fn emit(text: &str) -> std::io::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
