//! The `headcount` binary: parses the command line and hands it to its
//! subcommand (`headcount::cmds`). Benchmarks are a binary of their own
//! (`headcount-bench`), not part of the appliance.

use clap::{Parser, Subcommand};
use headcount::cmds;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "headcount",
    version,
    about = "Privacy-preserving people counting for RTSP cameras"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: cameras, analysis and the local API.
    Run(cmds::run::Args),
    /// Validate a config file and list every problem with its key path.
    CheckConfig(cmds::check_config::Args),
    /// Count persons and faces in a recording or a still, one JSON line per analysed frame.
    Analyze(cmds::analyze::Args),
    /// Write a copy of a video or a still with every face redacted.
    Redact(cmds::redact::Args),
    /// Model supply chain: verify, and sign a manifest with a release key.
    Models(cmds::models::Args),
    /// API tokens with roles (admin, facilities, planner, dpo) and expiry;
    /// each names the person or system that holds it (alias: users).
    #[command(visible_alias = "users")]
    Tokens(cmds::tokens::Args),
    /// Camera passwords sealed in the state directory (password_ref = "secret:NAME").
    Secrets(cmds::secrets::Args),
    /// The DPO's documents from the config: record of processing (Art. 30),
    /// sign text (Art. 13, --lang en|de), draft impact assessment (Art. 35).
    Dpo(cmds::dpo::Args),
    /// The tamper-evident audit log: verify its hash chain and signed checkpoints.
    Audit(cmds::audit::Args),
    /// Serve a video file in a loop over RTSP: the demo camera.
    Camera(cmds::camera::Args),
    /// Write the whole state (database, keys, sealed secrets, dashboard
    /// edits) to one file sealed under a passphrase read from stdin, while
    /// the appliance runs.
    Backup(cmds::backup::BackupArgs),
    /// Restore a backup into a state directory (the appliance stopped);
    /// the state it replaces is kept beside it.
    Restore(cmds::backup::RestoreArgs),
}

fn main() -> ExitCode {
    if let Err(e) = headcount::process::set_up() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let command = Cli::parse().command;
    // The tools that print a report; not the servers (`run`, `camera`), nor
    // the commands that must clean up when their output fails (`backup`
    // holds a copy of the database in a scratch folder, `redact` a partial
    // video).
    let prints_a_report = matches!(
        command,
        Command::CheckConfig(_)
            | Command::Analyze(_)
            | Command::Models(_)
            | Command::Tokens(_)
            | Command::Dpo(_)
            | Command::Audit(_)
    );
    if prints_a_report {
        headcount::process::end_quietly_when_output_closes();
    }
    let result = match command {
        Command::Run(args) => cmds::run::run(args),
        Command::CheckConfig(args) => cmds::check_config::run(args),
        Command::Analyze(args) => cmds::analyze::run(args),
        Command::Redact(args) => cmds::redact::run(args),
        Command::Models(args) => cmds::models::run(args),
        Command::Tokens(args) => cmds::tokens::run(args),
        Command::Secrets(args) => cmds::secrets::run(args),
        Command::Dpo(args) => cmds::dpo::run(args),
        Command::Audit(args) => cmds::audit::run(args),
        Command::Camera(args) => cmds::camera::run(args),
        Command::Backup(args) => cmds::backup::backup(args),
        Command::Restore(args) => cmds::backup::restore(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
