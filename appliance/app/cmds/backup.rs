//! `headcount backup` and `headcount restore`: the appliance's whole state
//! (a consistent copy of the database, taken with SQLite's `VACUUM INTO`
//! while the appliance runs, plus its keys, sealed secrets, TLS identity
//! and the dashboard's edits) in one file sealed under a passphrase read
//! from stdin (`security::sealed_stream`), and back.
//!
//! Invariants: a backup is written to a temporary file and renamed into
//! place only when complete; a restore opens and checks the whole file
//! (every chunk authenticated, the database migrated to this version, its
//! audit chain verified with the backup's own key) in a staging directory
//! beside the state directory before anything there changes, refuses
//! while an appliance runs on it (`state_lock`), and keeps the state it
//! replaces. Nothing in a backup is trusted for a path or a mode.

use anyhow::{bail, Context};
use headcount_domain::security::audit_key;
use headcount_domain::security::sealed_stream::{OpeningReader, SealingWriter};
use headcount_store::{AuditAction, AuditEntry, Database};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{ExitCode, Stdio};

/// The backup's description, its first entry.
const MANIFEST: &str = "backup.json";
/// The state directory's files, under this folder in the archive.
const STATE: &str = "state";
const DATABASE: &str = "headcount.db";
/// Not carried: the database's own side files (its copy is taken whole),
/// the lock, caches rebuilt at start, and the first admin token, which
/// should not outlive its first reading.
const LEFT_OUT: &[&str] = &[
    "headcount.db-wal",
    "headcount.db-shm",
    "headcount.db-journal",
    crate::state_lock::LOCK_FILE,
    "gstreamer-registry.bin",
    headcount_domain::security::tokens::INITIAL_ADMIN_FILE,
];

#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    state: super::StateArgs,
    /// The backup file to write (replaced only once complete), or `-` for
    /// stdout.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The state directory to restore into; what it holds now is kept
    /// beside it as STATE_DIR.before-restore-TIME.
    #[arg(long, default_value = "/var/lib/headcount")]
    state_dir: PathBuf,
    /// The backup file.
    #[arg(long = "in")]
    input: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    made_by: String,
    made_at: String,
    schema_version: i64,
    files: Vec<String>,
}

/// The passphrase: the first line on stdin.
fn passphrase() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("Passphrase (at least 12 characters; it is shown as typed), then Enter: ");
    }
    let line = super::first_line_of_stdin("passphrase")?;
    if line.is_empty() {
        bail!("no passphrase on stdin: give it as the first line (e.g. `< passphrase-file`)");
    }
    Ok(line)
}

pub fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let passphrase = passphrase()?;
    let state_dir = args.state.state_dir.clone();
    if !state_dir.is_dir() {
        bail!("there is no state directory at {}", state_dir.display());
    }
    if args.out.as_os_str() == "-" {
        write_backup(&args.state, &passphrase, std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let out = &args.out;
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut partial = tempfile::Builder::new()
        .prefix(".headcount-backup-")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    let started = std::time::Instant::now();
    if owned_by_another_user(&state_dir) {
        // As root on the service's directory: read it as its owner, so
        // that SQLite's side files keep their owner and nothing planted
        // there is followed with root's rights; the sealed bytes come back
        // over a pipe into root's file.
        through_owner(&state_dir, &args.state, &passphrase, partial.as_file_mut())?;
    } else {
        write_backup(&args.state, &passphrase, partial.as_file_mut())?;
    }
    partial.as_file().sync_all()?;
    partial
        .persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let size = std::fs::metadata(out)?.len();
    eprintln!(
        "backup of {} written to {} ({:.1} MB in {:.1} s); keep the passphrase apart from it",
        state_dir.display(),
        out.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn owned_by_another_user(dir: &Path) -> bool {
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let owner = std::fs::metadata(dir).map(|m| m.uid()).ok();
    me == Some(0) && owner.is_some_and(|o| o != 0)
}

/// Runs `backup --out -` as the state directory's owner, the passphrase on
/// its stdin, its stdout copied into `out`.
fn through_owner(
    state_dir: &Path,
    state: &super::StateArgs,
    passphrase: &str,
    out: &mut std::fs::File,
) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let owner = std::fs::metadata(state_dir)?;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(["backup", "--out", "-", "--state-dir"]);
    command.arg(state_dir);
    if let Some(database) = &state.database {
        command.arg("--database").arg(database);
    }
    let mut child = command
        .uid(owner.uid())
        .gid(owner.gid())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run as the owner of the state directory")?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{passphrase}")?;
    }
    if let Some(mut stdout) = child.stdout.take() {
        std::io::copy(&mut stdout, out)?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the backup failed (as the state directory's owner); nothing was written");
    }
    Ok(())
}

/// The sealed archive of `state` into `out`.
fn write_backup(state: &super::StateArgs, passphrase: &str, out: impl Write) -> anyhow::Result<()> {
    let state_dir = &state.state_dir;
    let database = state
        .database
        .clone()
        .unwrap_or_else(|| state_dir.join(DATABASE));
    let sealed = SealingWriter::new(out, passphrase)?;
    let scratch = tempfile::Builder::new()
        .prefix("headcount-backup-")
        .tempdir()
        .context("cannot make a private scratch folder")?;
    let copy = scratch.path().join(DATABASE);
    // As it is: the appliance running on it may be older than this binary.
    let mut db = Database::open_as_is(&database)
        .with_context(|| format!("cannot open {}", database.display()))?;
    // The backup is a read of everything: recorded before the copy, so the
    // copy carries its own record.
    db.append_audit(
        headcount_domain::clock::Clock::now_ms(&headcount_domain::clock::SystemClock),
        &[AuditEntry {
            actor: headcount_store::console_user(),
            role: "admin".into(),
            action: AuditAction::Export,
            target: "backup of the state directory".into(),
            rows: 0,
            detail: serde_json::Value::Null,
        }],
    )?;
    db.copy_into(&copy)?;
    let schema_version = db.file_schema_version()?;
    drop(db);

    let files = state_files(state_dir)?;
    let manifest = Manifest {
        made_by: format!("headcount {}", env!("CARGO_PKG_VERSION")),
        made_at: jiff::Timestamp::now().to_string(),
        schema_version,
        files: files
            .iter()
            .map(|f| f.display().to_string())
            .chain([DATABASE.to_string()])
            .collect(),
    };
    let mut archive = tar::Builder::new(sealed);
    append(
        &mut archive,
        Path::new(MANIFEST),
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    append_file(&mut archive, &Path::new(STATE).join(DATABASE), &copy)?;
    for file in &files {
        append_file(
            &mut archive,
            &Path::new(STATE).join(file),
            &state_dir.join(file),
        )?;
    }
    let sealed = archive.into_inner()?;
    sealed.finish()?.flush()?;
    Ok(())
}

/// The state directory's regular files (relative paths), the database and
/// what `LEFT_OUT` names excepted; links and other kinds are skipped.
fn state_files(state_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(state_dir.join(&folder))
            .with_context(|| format!("cannot list {}", state_dir.join(&folder).display()))?;
        for entry in entries {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            let kind = entry.file_type()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                folders.push(relative);
            } else if kind.is_file()
                && !(folder.as_os_str().is_empty()
                    && (name == DATABASE || LEFT_OUT.contains(&name.as_str())))
                && !name.starts_with('.')
            {
                files.push(relative);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &Path,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    archive.append_data(&mut header, path, bytes)?;
    Ok(())
}

fn append_file<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &Path,
    source: &Path,
) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let len = file.metadata()?.len();
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    archive.append_data(&mut header, path, (&mut file).take(len))?;
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let passphrase = passphrase()?;
    let target = absolute(&args.state_dir)?;
    let parent = target
        .parent()
        .context("the state directory cannot be the root")?
        .to_path_buf();
    let existing = target.is_dir();
    let _lock = if existing {
        Some(crate::state_lock::StateLock::take(&target)?)
    } else {
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        None
    };
    let name = target
        .file_name()
        .context("the state directory needs a name")?
        .to_string_lossy()
        .into_owned();
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.restoring-"))
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let started = std::time::Instant::now();
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot open {}", args.input.display()))?;
    let unpacked = unpack(file, &passphrase, staging.path()).with_context(|| {
        format!(
            "{} cannot be restored; nothing was changed",
            args.input.display()
        )
    })?;

    let known = headcount_store::schema_version();
    if unpacked.schema_version > known {
        bail!(
            "{} was made by a newer headcount ({}, database schema {}; this one knows {known}); \
             install that version or newer to restore it; nothing was changed",
            args.input.display(),
            unpacked.made_by,
            unpacked.schema_version
        );
    }
    let database = staging.path().join(DATABASE);
    let db = Database::open(&database).context("the backup's database cannot be opened")?;
    let public_key = audit_key::read_audit_public_key(staging.path())
        .context("the backup has no readable audit public key")?;
    let report = headcount_store::verify_audit(&db, &public_key)?;
    if !report.is_intact() {
        bail!(
            "the backup's audit log does not verify ({} problem(s), first: {}); nothing was changed",
            report.problems.len(),
            report.problems[0]
        );
    }
    drop(db);

    if existing {
        let owner = std::fs::metadata(&target)?;
        give_to(staging.path(), owner.uid(), owner.gid())?;
    }
    let staged = staging.keep();
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let kept = existing.then(|| {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        parent.join(format!("{name}.before-restore-{stamp}"))
    });
    if let Some(kept) = &kept {
        std::fs::rename(&target, kept)
            .with_context(|| format!("cannot move {} aside", target.display()))?;
    }
    if let Err(e) = std::fs::rename(&staged, &target) {
        if let Some(kept) = &kept {
            let _ = std::fs::rename(kept, &target);
        }
        return Err(e)
            .with_context(|| format!("cannot put the restored state at {}", target.display()));
    }
    rustix::fs::fsync(std::fs::File::open(&parent)?)?;
    println!(
        "restored {} ({}, made {}; database schema {} -> {known}) into {} in {:.1} s",
        args.input.display(),
        unpacked.made_by,
        unpacked.made_at,
        unpacked.schema_version,
        target.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "the audit log verifies: {} entries, {} signed checkpoints",
        report.entries, report.checkpoints
    );
    if let Some(kept) = kept {
        println!("the state it replaced is kept in {}", kept.display());
    }
    println!(
        "at its next start the appliance applies retention again: what expired since the backup is removed"
    );
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    // The real directory (a DynamicUser= service's is a link into
    // /var/lib/private), so that the swap happens where the files are.
    match std::fs::canonicalize(path) {
        Ok(real) => Ok(real),
        Err(_) if path.is_absolute() => Ok(path.to_path_buf()),
        Err(_) => Ok(std::env::current_dir()?.join(path)),
    }
}

/// Opens, authenticates and unpacks the whole backup into `into`; every
/// path checked, every mode ours.
fn unpack(file: std::fs::File, passphrase: &str, into: &Path) -> anyhow::Result<Manifest> {
    let reader = OpeningReader::new(std::io::BufReader::new(file), passphrase)?;
    let mut archive = tar::Archive::new(reader);
    let mut manifest: Option<Manifest> = None;
    let mut has_database = false;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("{} is not a regular file", path.display());
        }
        if path == Path::new(MANIFEST) {
            let mut text = Vec::new();
            entry.read_to_end(&mut text)?;
            manifest = Some(serde_json::from_slice(&text).context("its description is not valid")?);
            continue;
        }
        let relative = path
            .strip_prefix(STATE)
            .ok()
            .filter(|r| r.components().all(|c| matches!(c, Component::Normal(_))))
            .filter(|r| !r.as_os_str().is_empty())
            .with_context(|| format!("unexpected entry {}", path.display()))?;
        has_database |= relative == Path::new(DATABASE);
        let dest = into.join(relative);
        if let Some(folder) = dest.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)?;
        }
        let public = relative
            .extension()
            .is_some_and(|e| e == "pub" || e == "pem")
            && !relative.to_string_lossy().contains("key");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if public { 0o644 } else { 0o600 })
            .open(&dest)
            .with_context(|| format!("{} twice, or cannot be written", relative.display()))?;
        std::io::copy(&mut entry, &mut out)?;
        out.sync_all()?;
    }
    // Up to the last chunk: only a stream that ends where it was sealed
    // to end has been read whole.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?;
    let manifest = manifest.context("it has no description (backup.json)")?;
    if !has_database {
        bail!("it holds no database");
    }
    Ok(manifest)
}

/// Hands the restored tree to the owner of the state it replaces (without
/// following links: there are none, but nothing here trusts that).
fn give_to(root: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if me != 0 {
        return Ok(());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}
