//! `headcount dpo`: the data-protection officer's documents, made from the
//! config: the GDPR Art. 30 record of processing, the Art. 13 sign text (in
//! English or German) and a draft Art. 35 impact assessment;
//! and the disclosure policy's table (who receives what, how finely), as
//! docs/privacy.md holds it.

use clap::{Subcommand, ValueEnum};
use headcount_domain::clock::{Clock, SystemClock};
use headcount_domain::dpo::{notice, Lang, ProcessingRecord};
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
        /// The sign's language: en or de (the config's own texts, such as
        /// the purpose, are printed as written).
        #[arg(long, default_value = "en", value_parser = parse_lang)]
        lang: Lang,
    },
    /// Print a draft data protection impact assessment (GDPR Art. 35,
    /// Markdown) made from the config, for the controller to complete and sign.
    Dpia {
        #[arg(long)]
        config: PathBuf,
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
        DpoAction::Notice {
            config,
            camera,
            lang,
        } => {
            let config = super::load_config_without_secrets(&config)?;
            emit(&notice(&config, &camera, lang)?)?;
        }
        DpoAction::Dpia { config } => {
            let config = super::load_config_without_secrets(&config)?;
            emit(&headcount_domain::dpo::dpia(&config, SystemClock.now_ms()))?;
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

fn parse_lang(text: &str) -> Result<Lang, String> {
    text.parse()
}
