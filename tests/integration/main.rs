//! headcount's integration tests, one binary linked once: each module
//! drives the real `headcount` binary, a real RTSP server, real SQLite
//! files, a real MQTT broker and a real browser, all on loopback (`common`
//! holds the shared helpers: ports, processes, requests, waits).
//!
//! Run one module with `cargo test --release --test integration <module>::`.

mod common;

mod anomalies;
mod anomaly_alerts;
mod architecture;
mod building;
mod cli;
mod connections;
mod correction;
mod crash;
mod dashboard;
mod disclosure;
mod end_to_end;
mod fleet_tls;
mod governance;
mod live_mqtt;
mod operate;
mod privacy_egress;
mod redaction;
mod scenarios;
mod security;
mod supervision;
