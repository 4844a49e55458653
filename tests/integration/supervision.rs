//! A dead stage stops the appliance, so that systemd restarts it instead of
//! a dashboard showing stale counts: the appliance answers `/livez`, then a
//! stage made to panic (or to end) by `HEADCOUNT_FAULT_STAGE` stops the
//! whole process, with SIGABRT for a panic and exit status 70 for a stage
//! that ended, and `/livez` stops answering.

use crate::common::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// Starts the appliance on a test source with `fault`, sees it live, then
/// waits for it to stop; its exit status.
fn run_until_the_fault(fault: &str) -> ExitStatus {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let cfg = config(dir.path(), api_port, &[("yard", "testsrc:ball".into(), "")]);
    let mut appliance = Proc::spawn(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .env("HEADCOUNT_FAULT_STAGE", fault)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let live = || get_raw_as(api_port, "/livez", None).is_some_and(|(status, _, _)| status == 200);
    assert!(
        wait_until(Duration::from_secs(20), live),
        "the appliance was not live before the fault ({fault})"
    );
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(40), || {
            status = appliance.0.try_wait().unwrap();
            status.is_some()
        }),
        "the appliance still runs after {fault}"
    );
    assert!(
        get_raw_as(api_port, "/livez", None).is_none(),
        "/livez still answers after {fault}"
    );
    status.unwrap()
}

#[test]
fn a_panicking_stage_aborts_the_appliance() {
    let status = run_until_the_fault("analytics:panic@8");
    assert_eq!(status.signal(), Some(6), "{status:?}"); // SIGABRT
}

#[test]
fn a_stage_that_ends_stops_the_appliance_with_status_70() {
    let status = run_until_the_fault("inference-0:end@8");
    assert_eq!(status.code(), Some(70), "{status:?}");
}
