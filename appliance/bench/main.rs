//! `headcount-bench`: the benchmarks, a binary of their own so that the
//! appliance's hardened binary ships none of them. Each prints figures with
//! a reference measured in the same run and asserts nothing.

mod analytics;
mod api;
mod generate;
mod governance;
mod patterns;
mod streams;
mod tamper;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "headcount-bench", version, about = "headcount's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Per-stage cost and how many live 1080p streams this machine sustains.
    Streams(streams::Args),
    /// The cost of tracking and zone/line counting per frame (no models needed).
    Analytics(analytics::Args),
    /// The cost of camera tamper detection per frame on a recording.
    Tamper(tamper::Args),
    /// Figures of data governance: suppression and noise on a generated
    /// month, rollup and sweep time on a generated year.
    Governance(governance::Args),
    /// Unusual patterns and counter drift on a generated multi-week site
    /// with planted deviations: how many are found, false alarms per week.
    Patterns(patterns::Args),
    /// The latency authentication adds to an API request.
    Auth(api::AuthArgs),
    /// How fast one token polling one route grows the audit log, with
    /// identical reads written one by one and coalesced.
    Audit(api::AuditArgs),
}

fn main() -> ExitCode {
    if let Err(e) = headcount::process::set_up() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match Cli::parse().command {
        Command::Streams(args) => streams::run(args),
        Command::Analytics(args) => analytics::run(args),
        Command::Tamper(args) => tamper::run(args),
        Command::Governance(args) => governance::run(args),
        Command::Patterns(args) => patterns::run(args),
        Command::Auth(args) => api::auth(args),
        Command::Audit(args) => api::audit(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
