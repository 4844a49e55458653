//! The `headcount` binary's code, as a library so that the benchmarks
//! (`headcount-bench`) run the same appliance: `cmds` (one module per
//! subcommand), `run` (the daemon's wiring, the one composition root),
//! `frame_step` (the per-frame rules shared by `run`, `analyze` and
//! `redact`) and `process` (what every run sets up first).

pub mod cmds;
pub mod config_file;
pub mod process;
pub mod run;
pub mod state_lock;
