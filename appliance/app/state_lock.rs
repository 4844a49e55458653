//! One appliance per state directory. `run` holds an exclusive lock on
//! `run.lock` in it for its whole life; `restore` takes the same lock, so
//! it cannot replace the state under a running appliance, and a second
//! `run` on the same directory is refused instead of sharing its files.
//! The lock is the kernel's (flock): it goes with the process, however it
//! ends, so a crash never leaves a stale lock behind.

use anyhow::Context;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const LOCK_FILE: &str = "run.lock";

/// Held while alive.
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock, or says which process holds it.
    pub fn take(state_dir: &Path) -> anyhow::Result<StateLock> {
        use rustix::fs::{flock, FlockOperation};
        let path = state_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                file.set_len(0)?;
                writeln!(file, "{}", std::process::id())?;
                Ok(StateLock { _file: file })
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                file.rewind()?;
                let _ = file.read_to_string(&mut holder);
                anyhow::bail!(
                    "a headcount appliance is running on {} (process {}); stop it first \
                     (systemctl stop headcount)",
                    state_dir.display(),
                    holder.trim()
                )
            }
            Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::take(dir.path()).unwrap();
        let refused = StateLock::take(dir.path()).err().unwrap().to_string();
        assert!(
            refused.contains(&format!("(process {})", std::process::id())),
            "{refused}"
        );
        drop(held);
        StateLock::take(dir.path()).unwrap();
    }
}
