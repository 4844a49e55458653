//! `headcount-bench analytics`: the cost of tracking and of the zone, line,
//! dwell and space logic per analysed frame, on synthetic people (no models,
//! no video), so the figure isolates the analytics. Prints figures; asserts
//! nothing.

use headcount_domain::analytics::{Analytics, OccupancyBoard};
use headcount_domain::config::{Config, SystemSecrets};
use headcount_domain::detection::Detection;
use headcount_domain::geometry::BBox;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// People in view at once.
    #[arg(long, default_value_t = 20)]
    people: usize,
    /// Analysed frames (at 5 fps).
    #[arg(long, default_value_t = 6000)]
    frames: u32,
}

/// One camera with four zones (one concave), two lines and two spaces.
const CONFIG: &str = r#"
[cameras.cam]
url = "testsrc:ball"
analysis_fps = 5
[cameras.cam.zones.nw]
polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
[cameras.cam.zones.ne]
polygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]]
[cameras.cam.zones.south]
polygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
[cameras.cam.zones.ell]
polygon = [[0.1, 0.1], [0.6, 0.1], [0.6, 0.4], [0.3, 0.4], [0.3, 0.9], [0.1, 0.9]]
[cameras.cam.lines.middle]
points = [[0.5, 0.05], [0.5, 0.95]]
in = "left"
[cameras.cam.lines.across]
points = [[0.05, 0.6], [0.95, 0.6]]
in = "right"
[spaces.north]
zones = ["cam.nw", "cam.ne"]
entrances = ["cam.across"]
[spaces.all]
zones = ["cam.nw", "cam.ne", "cam.south"]
"#;

/// Person `i` at frame `f`: walking back and forth across the frame on
/// their own lane and pace, detected 9 times in 10, sometimes weakly.
fn detection(i: usize, f: u32, people: usize) -> Option<Detection> {
    if (f as usize + 7 * i) % 10 == 0 {
        return None;
    }
    let pace = 0.004 + 0.0005 * (i % 7) as f32;
    let phase = (f as f32 * pace + i as f32 * 0.37) % 2.0;
    let x = 0.05 + 0.9 * if phase < 1.0 { phase } else { 2.0 - phase };
    let lane = (i as f32 + 0.5) / people as f32;
    let y = 0.15 + 0.8 * lane + 0.03 * (f as f32 * 0.05 + i as f32).sin();
    let h = 0.1 + 0.1 * y;
    Some(Detection {
        bbox: BBox {
            x1: x - h / 5.0,
            y1: y - h,
            x2: x + h / 5.0,
            y2: y,
        },
        score: if (f as usize + i) % 4 == 0 { 0.4 } else { 0.8 },
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::parse(CONFIG, std::path::Path::new("."), &SystemSecrets)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut analytics = Analytics::new(&config, OccupancyBoard::new(&config));
    let camera = config.cameras[0].id.clone();
    let frames: Vec<Vec<Detection>> = (0..args.frames)
        .map(|f| {
            (0..args.people)
                .filter_map(|i| detection(i, f, args.people))
                .collect()
        })
        .collect();
    let mut times = Vec::with_capacity(frames.len());
    for (f, persons) in frames.iter().enumerate() {
        let start = Instant::now();
        analytics.observe(&camera, f as i64 * 200, persons);
        times.push(start.elapsed());
    }
    analytics.finish();
    times.sort_unstable();
    let total: Duration = times.iter().sum();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let totals = analytics.totals();
    let crossings: u64 = totals.lines.values().map(|(i, o)| i + o).sum();
    let visits: u64 = totals.dwell.values().map(|h| h.visits()).sum();
    println!(
        "tracking + zones/lines/dwell/spaces, {} people, {} frames (4 zones, 2 lines, 2 spaces)",
        args.people, args.frames
    );
    println!(
        "mean {:.3} ms/frame, median {:.3} ms, p99 {:.3} ms, max {:.3} ms (target: under 0.5 ms for 20 people)",
        ms(total) / times.len().max(1) as f64,
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        ms(times[times.len() - 1]),
    );
    println!("work done: {crossings} line crossings, {visits} zone visits");
    Ok(ExitCode::SUCCESS)
}
