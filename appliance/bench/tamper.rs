//! `headcount-bench tamper`: the cost of camera tamper detection per frame
//! (measuring the frame's statistics, then judging them against the
//! reference) on decoded frames of a recording. Decoding is not timed.
//! Prints figures; asserts nothing.

use anyhow::Context;
use headcount_domain::anomaly::tamper::{TamperDetector, TamperSettings};
use headcount_domain::pixels::stats::FrameStats;
use headcount_media::FileFrames;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// A video file (e.g. vtest.avi).
    #[arg(long)]
    input: PathBuf,
    /// Frames are scaled to this width, as the analysis stage sees them.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Frames timed, after the warm-up.
    #[arg(long, default_value_t = 2000)]
    frames: usize,
}

/// Frames measured but not timed, so that caches and the allocator settle.
const WARM_UP: usize = 50;
/// Frames decoded up front and replayed (about 55 MB at 640x480): decoding
/// alongside would compete for the cores and blur the figures. Still more
/// than the last-level cache holds, so every frame is read from memory as
/// it is on the appliance.
const DECODED: usize = 60;
/// The usual analysis rate, for decoding and for the timestamps.
const FPS: f64 = 2.0;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut decoded = Vec::with_capacity(DECODED);
    for frame in FileFrames::open(&args.input, Some(FPS), Some(args.width))
        .with_context(|| format!("cannot open {}", args.input.display()))?
        .take(DECODED)
    {
        decoded.push(frame?);
    }
    let Some(first) = decoded.first() else {
        anyhow::bail!("{} has no frames", args.input.display());
    };
    let (width, height) = (first.width(), first.height());
    // A short learning period, so that most timed frames take the full
    // path (covered, defocused, moved and frozen all judged).
    let settings = TamperSettings {
        learning_ms: 5_000,
        ..TamperSettings::default()
    };
    let mut detector = TamperDetector::new(settings, 0);
    let mut times = Vec::with_capacity(args.frames);
    let mut raised = 0usize;
    for (i, frame) in decoded
        .iter()
        .cycle()
        .take(WARM_UP + args.frames)
        .enumerate()
    {
        // Timestamps continue across replays.
        let at = (i as f64 * 1000.0 / FPS) as i64;
        let start = Instant::now();
        let stats = FrameStats::measure(frame);
        let readings = detector.observe(at, &stats);
        let elapsed = start.elapsed();
        if i >= WARM_UP {
            times.push(elapsed);
            raised += readings.len();
        }
    }
    let n = times.len().max(1);
    let total: Duration = times.iter().sum();
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pick = |q: usize| times.get((times.len() * q / 100).min(times.len().saturating_sub(1)));
    let mean = us(total) / n as f64;
    let p50 = pick(50).map_or(0.0, |d| us(*d));
    let p99 = pick(99).map_or(0.0, |d| us(*d));
    println!(
        "tamper (measure + observe), {width}x{height}, {} frames ({} decoded from {}, replayed): mean {mean:.1} us, p50 {p50:.1} us, p99 {p99:.1} us (target: under 1000 us at 640x360); {raised} readings raised",
        times.len(),
        decoded.len(),
        args.input.display()
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "tamper",
            "width": width,
            "height": height,
            "frames": times.len(),
            "mean_us": mean,
            "p50_us": p50,
            "p99_us": p99,
            "readings": raised,
        })
    );
    Ok(ExitCode::SUCCESS)
}
