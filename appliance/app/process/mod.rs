//! What every run of the `headcount` binary sets up before anything else:
//! no core dumps (`dumps`), large buffers given back to the kernel
//! (`memory`), private new files, and a panic that stops the process.

pub mod dumps;
pub mod memory;

/// New files and folders only for their owner (0600, 0700), as systemd's
/// `UMask=0077` makes them: the state directory, its database and keys
/// stay private however the service is started.
pub fn keep_new_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// A panic anywhere stops the process at once (after the default hook has
/// printed it), as `panic = "abort"` would, in every build: a half-dead
/// appliance that goes on serving is worse than a restart. (The hook, not
/// the profile setting: with `panic = "abort"` in the release profile,
/// `cargo test --release` builds every crate twice, once for the binary and
/// once for the test harness, which needs unwinding.)
pub fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

/// A command-line tool ends quietly, as Unix tools do, when the reader of
/// its output goes away (`headcount analyze ... | head`): killed by SIGPIPE
/// at the next write. Rust ignores SIGPIPE, so that write would fail and
/// `println!` panic, which aborts with a backtrace. Only for tools that
/// print a report: a server must see a closed socket as that connection's
/// error, and a command with files to clean up must get the write error.
pub fn end_quietly_when_output_closes() {
    // SAFETY: signal() only sets SIGPIPE's disposition back to the default;
    // it is called from main before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The set-up of `main`, in order: core dumps forbidden before any frame
/// exists, then logging, the allocator, and panics that abort.
pub fn set_up() -> Result<(), String> {
    dumps::forbid().map_err(|e| {
        format!("cannot forbid core dumps, which could write raw frames to disk: {e}")
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ort=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    memory::give_memory_back_after_reconnects();
    abort_on_panic();
    Ok(())
}
