//! No pixels on disk after a crash. The appliance, started with core dumps
//! allowed (`ulimit -c unlimited`) and killed by SIGSEGV while it analyses
//! frames, writes no core file, and its core size limit is 0. A control
//! process started the same way shows that this machine would have written
//! one: with `core_pattern` `core`, a `core*` file in its working directory.

use crate::common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Runs `program args` in `dir` from a shell that first allows core dumps.
fn start_with_core_dumps_allowed(dir: &Path, program: &str, args: &[&str]) -> Proc {
    Proc::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -c unlimited; exec "$@""#)
            .arg("sh")
            .arg(program)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// The "Max core file size" soft and hard limits of a process.
fn core_limits(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))?;
    let mut fields = line.split_whitespace();
    Some((fields.next()?.to_string(), fields.next()?.to_string()))
}

/// Signals SIGSEGV until the process ends. Rust's runtime catches the first
/// (its stack overflow check), restores the default action and returns: a
/// real fault then faults again and ends the process, a signal needs a
/// second one.
fn segfault(process: &mut Proc) -> ExitStatus {
    let pid = process.0.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Fails harmlessly once the process is gone.
        let _ = Command::new("kill").args(["-SEGV", &pid]).status();
        std::thread::sleep(Duration::from_millis(300));
        if let Some(status) = process.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{pid} survives SIGSEGV");
    }
}

fn core_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("core"))
        .collect()
}

#[test]
fn a_crashed_appliance_leaves_no_core_file() {
    // The control: a plain process, killed the same way.
    let control_dir = tempfile::tempdir().unwrap();
    let mut control = start_with_core_dumps_allowed(control_dir.path(), "sleep", &["30"]);
    let pid = control.0.id();
    assert!(
        wait_until(Duration::from_secs(5), || core_limits(pid)
            .is_some_and(|(soft, _)| soft != "0")
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")),
        "the control did not start with core dumps allowed: {:?}",
        core_limits(pid)
    );
    let status = segfault(&mut control);
    assert_eq!(status.signal(), Some(11), "{status:?}");
    let cores_apply = !core_files(control_dir.path()).is_empty();
    if !cores_apply {
        let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
        println!(
            "core files: not applicable here (the control left none; core_pattern {:?}); checking the limits only",
            pattern.trim()
        );
    }

    // The appliance, analysing frames when it is killed.
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let cfg = config(dir.path(), api_port, &[("yard", "testsrc:ball".into(), "")]);
    let mut appliance = start_with_core_dumps_allowed(
        dir.path(),
        crate::common::BIN,
        &["run", "--config", cfg.to_str().unwrap()],
    );
    let token_file = state_dir_of(&cfg).join("initial-admin-token");
    let mut health = serde_json::Value::Null;
    let analysing = wait_until(Duration::from_secs(40), || {
        let Ok(token) = std::fs::read_to_string(&token_file) else {
            return false;
        };
        health = request_raw(api_port, "GET", "/api/v1/health", Some(token.trim()))
            .and_then(|(_, _, body)| serde_json::from_slice(&body).ok())
            .unwrap_or_default();
        health["cameras"][0]["frames_analysed"].as_u64() >= Some(2)
    });
    assert!(analysing, "the appliance analysed no frames: {health}");
    let pid = appliance.0.id();
    assert_eq!(
        core_limits(pid),
        Some(("0".to_string(), "0".to_string())),
        "the appliance may still write core files"
    );
    let status = segfault(&mut appliance);
    assert_eq!(status.signal(), Some(11), "{status:?}");
    assert!(
        !status.core_dumped(),
        "the kernel dumped the appliance's memory"
    );
    if cores_apply {
        assert_eq!(core_files(dir.path()), Vec::<String>::new());
    }
}
