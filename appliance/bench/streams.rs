//! `headcount-bench streams`: per-stage cost, then how many live RTSP
//! cameras this machine sustains at the analysis rate without dropping an
//! analysed frame, as a share of the decode-only ceiling measured in the
//! same run (cores / one camera's decode cost); with `--mixed`, cameras of
//! a building (busy, quiet, empty) in turn. Each step prints the slowest,
//! mean and fastest camera's analysed rate, so an overloaded step shows
//! whether cameras slow evenly. Prints figures; asserts nothing.

use anyhow::Context;
use headcount::run::pipeline::Appliance;
use headcount::run::supervisor::Supervisor;
use headcount_domain::analytics::{Analytics, OccupancyBoard};
use headcount_domain::clock::{Clock, SystemClock};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{Config, SystemSecrets};
use headcount_domain::detection::{SearchArea, FULL_FRAME};
use headcount_domain::frame_step::{GateRules, MotionGate, PersonSearchNeed};
use headcount_domain::geometry::BBox;
use headcount_domain::pixels::letterbox::InputSize;
use headcount_domain::pixels::mask::PrivacyMask;
use headcount_domain::pixels::redaction::{Redactor, RegionHold};
use headcount_domain::snapshot::SNAPSHOT_EVERY_MS;
use headcount_media::FileFrames;
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime, StageTimes};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The live stream: an H.264 MPEG-TS (scripts/bench.sh makes 1080p25
    /// and 640x360 ones).
    #[arg(long)]
    video: PathBuf,
    /// The stream's frame rate, for the decode-only ceiling.
    #[arg(long, default_value_t = 25.0)]
    stream_fps: f64,
    /// A mixed building: cameras take `--video` (busy) and these videos
    /// (quiet, empty, ...) in turn, each served by its own RTSP server.
    #[arg(long, num_args = 1..)]
    mixed: Vec<PathBuf>,
    /// The recording analysed for per-stage costs (vtest.avi).
    #[arg(long)]
    stage_video: PathBuf,
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Seconds measured per step, after a warm-up.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 6)]
    warmup_seconds: u64,
    /// The first step's stream count (earlier steps are assumed sustained).
    #[arg(long, default_value_t = 1)]
    from_streams: usize,
    #[arg(long, default_value_t = 10)]
    max_streams: usize,
    /// Cameras added per step.
    #[arg(long, default_value_t = 1)]
    step: usize,
    #[arg(long, default_value_t = 2.0)]
    fps: f64,
    /// Inference workers (default: the config's, one per core up to 4).
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, default_value_t = 1)]
    threads_per_worker: usize,
    #[arg(long, default_value_t = 8654)]
    port: u16,
}

/// CPU seconds (user + system) of a process, from /proc (USER_HZ = 100).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1000.0 / n.max(1) as f64
}

fn config_text(models_dir: &Path, state: &Path, streams: usize, args: &Args) -> String {
    let mut text = format!(
        "[appliance]\nsite = \"bench\"\nstate_dir = {state:?}\nmodels_dir = {models_dir:?}\n\
         [detection]\nthreads_per_worker = {}\n[defaults]\nanalysis_fps = {}\n",
        args.threads_per_worker, args.fps
    );
    if let Some(workers) = args.workers {
        text = text.replace(
            "[detection]\n",
            &format!("[detection]\nworkers = {workers}\n"),
        );
    }
    let servers = 1 + args.mixed.len();
    for i in 0..streams {
        let port = args.port + (i % servers) as u16;
        text += &format!(
            "[cameras.s{i}]\nurl = \"rtsp://127.0.0.1:{port}/bench\"\n\
             [cameras.s{i}.zones.all]\npolygon = [[0, 0], [1, 0], [1, 1], [0, 1]]\n"
        );
    }
    text
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let models_dir = std::path::absolute(&args.models_dir)?;
    let state = std::env::temp_dir().join(format!("headcount-bench-{}", std::process::id()));
    std::fs::create_dir_all(&state)?;
    let probe = Config::parse(
        &config_text(&models_dir, &state, 1, &args),
        &state,
        &SystemSecrets,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    println!(
        "== Per-stage cost ({} thread(s) per worker)",
        args.threads_per_worker
    );
    let cpu0 = cpu_seconds("self");
    let (decoded, wall) = headcount_media::decode_only(&args.video)?;
    let decode_cpu = cpu_seconds("self") - cpu0;
    // One camera's decoding, in cores: what bounds a box that did nothing else.
    let decode_cores = decode_cpu / decoded.max(1) as f64 * args.stream_fps;
    let ceiling = cores() as f64 / decode_cores;
    println!(
        "decode {:<16} {:7.2} ms CPU/frame ({decoded} frames, {:.0} fps wall) -> {:.1} % of a core per {} fps stream",
        args.video.file_name().map_or("".into(), |n| n.to_string_lossy()),
        decode_cpu * 1000.0 / decoded.max(1) as f64,
        decoded as f64 / wall.as_secs_f64(),
        decode_cores * 100.0,
        args.stream_fps
    );
    println!(
        "decode-only ceiling     {ceiling:7.1} cameras on {} cores",
        cores()
    );
    stage_costs(&args, &models_dir, &probe)?;

    println!(
        "\n== Live RTSP streams of {} at {} analysed fps ({} worker(s){})",
        args.video.display(),
        args.fps,
        probe.detection.workers,
        if args.mixed.is_empty() {
            String::new()
        } else {
            format!(
                "; a mixed building: cameras in turn busy, {}",
                args.mixed
                    .iter()
                    .map(|v| v.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let videos: Vec<&Path> = std::iter::once(args.video.as_path())
        .chain(args.mixed.iter().map(PathBuf::as_path))
        .collect();
    let mut servers = videos
        .iter()
        .enumerate()
        .map(|(i, video)| CameraServer::start(video, args.port + i as u16))
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("cameras  analysed fps min/mean/max  dropped  coasted %  p99 capture->count ms  CPU %  CPU %/camera  RSS MB  RSS MB/extra camera  server CPU %");
    let mut first_rss = (0, 0.0);
    let mut sustained = 0;
    let mut step = args.from_streams.max(1);
    while step <= args.max_streams {
        let streams = step;
        step += args.step.max(1);
        let text = config_text(
            &models_dir,
            &state.join(streams.to_string()),
            streams,
            &args,
        );
        let config =
            Config::parse(&text, &state, &SystemSecrets).map_err(|e| anyhow::anyhow!("{e}"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        for server in &mut servers {
            server.ensure_running()?;
        }
        let appliance = Appliance::start(
            &config,
            LiveConfig::new(config.clone(), None),
            clock,
            &Supervisor::from_environment()?,
        )?;
        std::thread::sleep(Duration::from_secs(args.warmup_seconds));
        let before = appliance.health.snapshot();
        let servers_before: f64 = servers.iter().map(CameraServer::cpu_seconds).sum();
        let (cpu_before, start) = (cpu_seconds("self"), Instant::now());
        std::thread::sleep(Duration::from_secs(args.seconds));
        let after = appliance.health.snapshot();
        let (cpu, server_cpu, wall) = (
            cpu_seconds("self") - cpu_before,
            servers.iter().map(CameraServer::cpu_seconds).sum::<f64>() - servers_before,
            start.elapsed().as_secs_f64(),
        );
        let rss = rss_mb();
        appliance.stop();
        let rates: Vec<f64> = after
            .iter()
            .map(|(camera, h)| (h.frames_analysed - before[camera].frames_analysed) as f64 / wall)
            .collect();
        let (mut dropped, mut analysed, mut coasted) = (0, 0, 0);
        for (camera, h) in &after {
            let b = &before[camera];
            dropped += h.frames_dropped - b.frames_dropped;
            analysed += h.frames_analysed - b.frames_analysed;
            coasted += h.frames_coasted - b.frames_coasted;
        }
        let latency = after.values().filter_map(|h| h.latency_p99_ms).max();
        let min_rate = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max_rate = rates.iter().copied().fold(0.0, f64::max);
        let mean_rate = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        let cpu_pct = cpu / wall * 100.0;
        if first_rss.0 == 0 {
            first_rss = (streams, rss);
        }
        // What each camera beyond the first step's adds (the models are loaded once).
        let extra = streams - first_rss.0;
        let marginal_rss = if extra > 0 {
            (rss - first_rss.1) / extra as f64
        } else {
            0.0
        };
        println!(
            "{streams:7}  {min_rate:9.2} /{mean_rate:5.2} /{max_rate:5.2}  {dropped:7}  {:9.0}  {:>21}  {cpu_pct:5.0}  {:12.1}  {rss:6.0}  {:19.1}  {:12.0}",
            coasted as f64 * 100.0 / analysed.max(1) as f64,
            latency.map_or("-".to_string(), |l| l.to_string()),
            cpu_pct / streams as f64,
            marginal_rss,
            server_cpu / wall * 100.0
        );
        // Sustained: every camera analysed at (nearly) the full rate, nothing dropped.
        if dropped == 0 && min_rate >= args.fps * 0.9 {
            sustained = streams;
        } else {
            break;
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&state);
    println!(
        "\nsustained: {sustained} camera(s) at {} analysed fps = {:.0} % of the decode-only ceiling ({ceiling:.1}) on {} CPU core(s)",
        args.fps,
        sustained as f64 * 100.0 / ceiling,
        cores()
    );
    Ok(ExitCode::SUCCESS)
}

/// What each stage costs per analysed frame of the stage video at 640 px,
/// and what the motion gate saves on it.
fn stage_costs(args: &Args, models_dir: &Path, probe: &Config) -> anyhow::Result<()> {
    let runtime = OnnxRuntime::load(None)?;
    let mut detectors = Detectors::load(
        &runtime,
        models_dir,
        DetectorSettings::from_config(&probe.detection),
    )?;
    let redactor = Redactor::new(probe.privacy.policy());
    let mut hold = RegionHold::default();
    let mut counter = Analytics::new(probe, OccupancyBoard::new(probe));
    let camera = probe.cameras[0].id.clone();
    let mut gate = MotionGate::default();
    let gate_rules = GateRules {
        refresh_ms: probe.detection.refresh_ms,
        ..GateRules::default()
    };
    // Detail: the upper half of the view, where vtest's people are small.
    let detail = SearchArea {
        detail: Some(BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 1.0,
            y2: 0.5,
        }),
        ..SearchArea::FULL
    };
    let mut full = StageTimes::default();
    let mut with_detail = StageTimes::default();
    let (mut redaction, mut counting, mut gating, mut n, mut looked) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0u32, 0u32);
    let mut size = (0, 0);
    for frame in FileFrames::open(&args.stage_video, Some(args.fps), Some(640))?.take(60) {
        // The bench's cameras have no privacy masks.
        let frame = PrivacyMask::default().apply(frame?);
        size = (frame.frame().width(), frame.frame().height());
        let start = Instant::now();
        let need = gate.decide(&frame, FULL_FRAME, gate_rules);
        gating += start.elapsed();
        let frame = frame.into_frame();
        let (_, t) = detectors.detect_with(&frame, Some(detail), false)?;
        add(&mut with_detail, t);
        let (detections, t) = detectors.detect(&frame)?;
        add(&mut full, t);
        if !matches!(need, PersonSearchNeed::Coast(_)) {
            looked += 1;
            gate.found(frame.timestamp_ms(), &detections.persons);
        }
        let Some(scan) = &detections.faces else {
            anyhow::bail!("detect searched no faces");
        };
        let start = Instant::now();
        let redacted = redactor.redact(frame, scan, &detections.persons, &mut hold);
        redaction += start.elapsed();
        let start = Instant::now();
        counter.observe(&camera, redacted.timestamp_ms(), &detections.persons);
        counting += start.elapsed();
        n += 1;
    }
    println!(
        "analysed frames         {n} of {}x{} from {} at {} fps",
        size.0,
        size.1,
        args.stage_video.display(),
        args.fps
    );
    println!(
        "motion gate             {:7.2} ms/frame; the person model ran on {looked} of {n} frames ({:.0} %)",
        ms(gating, n),
        looked as f64 * 100.0 / n.max(1) as f64
    );
    println!(
        "preprocess (both)       {:7.2} ms/frame",
        ms(full.preprocess, n)
    );
    println!(
        "person model, frame     {:7.2} ms/frame ({:.1} passes)",
        ms(full.person, n),
        full.person_passes as f64 / n.max(1) as f64
    );
    println!(
        "person model + detail   {:7.2} ms/frame ({:.1} passes: the frame, then the upper half in tiles)",
        ms(with_detail.person, n),
        with_detail.person_passes as f64 / n.max(1) as f64
    );
    println!(
        "face model (YuNet)      {:7.2} ms/frame; live, only on a snapshot frame (every {} s per camera, when snapshots are on)",
        ms(full.face, n),
        SNAPSHOT_EVERY_MS / 1000
    );
    println!(
        "redaction               {:7.2} ms/frame (snapshot frames only)",
        ms(redaction, n)
    );
    println!("tracking and counting   {:7.3} ms/frame", ms(counting, n));
    batching_costs(&mut detectors)
}

/// What batching several cameras' frames into one person-model call would
/// save, per frame of a 16:9 camera (416x256 at the model): frames one call
/// each, as one batch (the batch dimension), and as a mosaic (the frames
/// stacked into one taller input; the model's height is dynamic). Rounds
/// interleave the three so a noisy machine slows them alike; medians.
fn batching_costs(detectors: &mut Detectors) -> anyhow::Result<()> {
    const ROUNDS: usize = 7;
    let frame = InputSize {
        width: 416,
        height: 256,
    };
    for frames in [2usize, 4] {
        let mosaic = InputSize {
            height: frame.height * frames,
            ..frame
        };
        let (mut single, mut batch, mut stacked) = (Vec::new(), Vec::new(), Vec::new());
        let mut batch_refused = None;
        for _ in 0..ROUNDS {
            let mut apart = Duration::ZERO;
            for _ in 0..frames {
                apart += detectors.time_person_pass(1, frame)?;
            }
            single.push(apart);
            match detectors.time_person_pass(frames, frame) {
                Ok(t) => batch.push(t),
                Err(e) => batch_refused = Some(e),
            }
            stacked.push(detectors.time_person_pass(1, mosaic)?);
        }
        let per_frame = |times: &mut Vec<Duration>| {
            times.sort();
            times[times.len() / 2].as_secs_f64() * 1000.0 / frames as f64
        };
        let batched = match batch_refused {
            Some(e) => {
                let first_line = e.to_string().lines().next().unwrap_or_default().to_owned();
                format!("refused by the model ({first_line})")
            }
            None => format!("{:.2} ms", per_frame(&mut batch)),
        };
        println!(
            "batching {frames} frames     {:7.2} ms/frame one call each; as a batch {batched}; as a {}x{} mosaic {:.2} ms",
            per_frame(&mut single),
            mosaic.width,
            mosaic.height,
            per_frame(&mut stacked)
        );
    }
    Ok(())
}

fn add(total: &mut StageTimes, t: StageTimes) {
    total.preprocess += t.preprocess;
    total.person += t.person;
    total.face += t.face;
    total.person_passes += t.person_passes;
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The demo camera in its own process, so its CPU is not counted as ours.
struct CameraServer(Child);

impl CameraServer {
    fn start(video: &Path, port: u16) -> anyhow::Result<CameraServer> {
        // The appliance's binary, beside this one, serves the stream.
        let child = Command::new(std::env::current_exe()?.with_file_name("headcount"))
            .args([
                "camera",
                "--port",
                &port.to_string(),
                "--mount",
                "/bench",
                "--file",
            ])
            .arg(video)
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start the RTSP server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the RTSP server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(CameraServer(child))
    }
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.0.try_wait()? {
            Some(status) => anyhow::bail!("the RTSP server exited: {status}"),
            None => Ok(()),
        }
    }
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.0.id().to_string())
    }
}

impl Drop for CameraServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
