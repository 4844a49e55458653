//! `headcount models`: the model supply chain. `verify` checks the
//! manifest's signature and every model against it; `sign` and `keygen`
//! are the release side.

use anyhow::Context;
use clap::Subcommand;
use headcount_domain::models::Manifest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: ModelsAction,
}

#[derive(Subcommand)]
pub enum ModelsAction {
    /// Check the manifest's signature, then every model against it (size, sha256, input shape).
    Verify {
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
        /// Trust this public key (hex) instead of the release key built in.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Sign models/manifest.toml with a release key (writes manifest.toml.sig).
    Sign {
        #[arg(long, default_value = "models")]
        models_dir: PathBuf,
        /// The PKCS#8 Ed25519 private key from `models keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Make a new release signing key.
    Keygen {
        /// Where to write the private key (0600); keep it offline.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(Args { action }: Args) -> anyhow::Result<ExitCode> {
    match action {
        ModelsAction::Verify {
            models_dir,
            public_key,
        } => verify(models_dir, public_key),
        ModelsAction::Sign { models_dir, key } => sign(&models_dir, &key),
        ModelsAction::Keygen { out } => keygen(&out),
    }
}

fn verify(models_dir: PathBuf, public_key: Option<String>) -> anyhow::Result<ExitCode> {
    let keys = match public_key {
        Some(key) => vec![key],
        None => headcount_domain::models::release_keys(),
    };
    let manifest = Manifest::load_trusting(&models_dir, &keys)?;
    println!(
        "manifest signature: ok (key {})",
        &keys[0][..16.min(keys[0].len())]
    );
    let runtime = headcount_vision::OnnxRuntime::load(None)?;
    let mut failures = 0;
    for m in &manifest.models {
        let s = &m.source;
        let outcome = runtime.session(&models_dir, m, 1).map(|_| ());
        let verdict = match &outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                failures += 1;
                format!("FAILED: {e}")
            }
        };
        println!(
            "{:<7} {:<16} {} ({} bytes, sha256 {}) licence {}; from {} {}=={} {}; input {} {:?}: {verdict}",
            format!("{:?}", m.role).to_lowercase(),
            m.name,
            m.file,
            m.size_bytes,
            &m.sha256[..16],
            m.licence,
            s.registry,
            s.package,
            s.version,
            s.path,
            m.input.name,
            m.input.shape,
        );
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A new release signing key: the private half to `out` (0600), the public
/// half printed for models/release-key.pub.
fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        anyhow::bail!(
            "{} exists; refusing to overwrite a signing key",
            out.display()
        );
    }
    let (pkcs8, public) = headcount_domain::models::generate_signing_key()?;
    headcount_domain::security::write_private_file(out, &pkcs8)?;
    println!("{public}");
    eprintln!(
        "private key written to {} (keep it offline); the line above is its public key",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(models_dir: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    let pkcs8 = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    let public = headcount_domain::models::sign_manifest(models_dir, &pkcs8)?;
    println!(
        "signed {} with key {public}",
        models_dir
            .join(headcount_domain::models::MANIFEST_FILE)
            .display()
    );
    if !headcount_domain::models::release_keys().contains(&public) {
        eprintln!(
            "note: this build does not trust that key; the appliance will refuse these models"
        );
    }
    Ok(ExitCode::SUCCESS)
}
