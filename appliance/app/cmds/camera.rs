//! `headcount camera`: serves a video file in a loop over RTSP, the demo
//! camera and the tests' cameras.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// An H.264 MPEG-TS file (scripts/setup.sh makes one from vtest.avi).
    #[arg(long)]
    file: PathBuf,
    #[arg(long, default_value_t = 8554)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    #[arg(long, default_value = "/vtest")]
    mount: String,
    /// Require Basic auth with this user (password from --password-env).
    #[arg(long, requires = "password_env")]
    user: Option<String>,
    /// Environment variable holding the password for --user.
    #[arg(long, requires = "user")]
    password_env: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let password = match &args.password_env {
        Some(var) => Some(
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?,
        ),
        None => None,
    };
    let credentials = args
        .user
        .as_deref()
        .zip(password.as_deref())
        .map(|(user, password)| headcount_media::ServerCredentials { user, password });
    let server =
        headcount_media::serve_file(&args.file, &args.bind, args.port, &args.mount, credentials)?;
    println!("serving {} at {}", args.file.display(), server.url);
    server.wait();
    Ok(ExitCode::SUCCESS)
}
