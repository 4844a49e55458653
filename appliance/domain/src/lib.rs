//! headcount's core: everything that needs neither GStreamer nor ONNX Runtime.
//!
//! Data flows one way through these modules:
//! `pixels::frame::Frame` (from ingest) -> detections (from vision) ->
//! `pixels::redaction` (the only maker of `RedactedFrame`) -> `analytics`
//! (zone occupancy, minute buckets) -> `storage` (SQLite) -> `api`
//! (aggregates only). Only `pixels` reads a raw frame's bytes.

pub mod analytics;
pub mod anomaly;
pub mod clock;
pub mod config;
pub mod detection;
pub mod disclosure;
pub mod dpo;
pub mod encoding;
pub mod files;
pub mod fixtures;
pub mod frame_queue;
pub mod frame_step;
pub mod geometry;
pub mod health;
pub mod models;
pub mod person_sizes;
pub mod pixels;
pub mod retention;
pub mod schedule;
pub mod security;
pub mod snapshot;
