//! `headcount-bench streams`: per-stage cost, then how many live 1080p25 RTSP
//! streams this machine sustains at the analysis rate without dropping an
//! analysed frame. Prints figures; asserts nothing.

use anyhow::Context;
use headcount::run::pipeline::Appliance;
use headcount::run::supervisor::Supervisor;
use headcount_domain::analytics::{Analytics, OccupancyBoard};
use headcount_domain::clock::{Clock, SystemClock};
use headcount_domain::config::live::LiveConfig;
use headcount_domain::config::{Config, SystemSecrets};
use headcount_domain::pixels::redaction::{Redactor, RegionHold};
use headcount_media::FileFrames;
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime, StageTimes};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The live stream: an H.264 1080p25 MPEG-TS (scripts/bench.sh makes one).
    #[arg(long)]
    video: PathBuf,
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

fn config_text(models_dir: &Path, state: &Path, streams: usize, port: u16, args: &Args) -> String {
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
    for i in 0..streams {
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
        &config_text(&models_dir, &state, 1, args.port, &args),
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
    println!(
        "decode 1080p H.264      {:7.2} ms CPU/frame ({decoded} frames, {:.0} fps wall) -> {:.1} % of a core per 25 fps stream",
        decode_cpu * 1000.0 / decoded.max(1) as f64,
        decoded as f64 / wall.as_secs_f64(),
        decode_cpu / decoded.max(1) as f64 * 25.0 * 100.0
    );
    let runtime = OnnxRuntime::load(None)?;
    let mut detectors = Detectors::load(
        &runtime,
        &models_dir,
        DetectorSettings::from_config(&probe.detection),
    )?;
    let redactor = Redactor::new(probe.privacy.policy());
    let mut hold = RegionHold::default();
    let mut counter = Analytics::new(&probe, OccupancyBoard::new(&probe));
    let camera = probe.cameras[0].id.clone();
    let (mut times, mut redaction, mut counting, mut n) =
        (StageTimes::default(), Duration::ZERO, Duration::ZERO, 0u32);
    let mut size = (0, 0);
    for frame in FileFrames::open(&args.stage_video, Some(args.fps), Some(640))?.take(60) {
        let frame = frame?;
        size = (frame.width(), frame.height());
        let (detections, t) = detectors.detect(&frame)?;
        times.preprocess += t.preprocess;
        times.person += t.person;
        times.face += t.face;
        let start = Instant::now();
        let redacted = redactor.redact(frame, &detections.faces, &detections.persons, &mut hold);
        redaction += start.elapsed();
        let start = Instant::now();
        counter.observe(&camera, redacted.timestamp_ms(), &detections.persons);
        counting += start.elapsed();
        n += 1;
    }
    println!(
        "analysed frames         {n} of {}x{} from {}",
        size.0,
        size.1,
        args.stage_video.display()
    );
    println!(
        "preprocess (both)       {:7.2} ms/frame",
        ms(times.preprocess, n)
    );
    println!(
        "person model (NanoDet)  {:7.2} ms/frame",
        ms(times.person, n)
    );
    println!("face model (YuNet)      {:7.2} ms/frame", ms(times.face, n));
    println!("redaction               {:7.2} ms/frame", ms(redaction, n));
    println!("tracking and counting   {:7.3} ms/frame", ms(counting, n));
    drop(detectors);

    println!(
        "\n== Live 1080p25 RTSP streams at {} analysed fps ({} worker(s))",
        args.fps, probe.detection.workers
    );
    let mut server = CameraServer::start(&args.video, args.port)?;
    println!("streams  analysed fps/stream (min)  dropped  CPU % (appliance)  CPU %/stream  RSS MB  RSS MB/extra stream  server CPU %");
    let mut first_rss = (0, 0.0);
    let mut sustained = 0;
    for streams in args.from_streams.max(1)..=args.max_streams {
        let text = config_text(
            &models_dir,
            &state.join(streams.to_string()),
            streams,
            args.port,
            &args,
        );
        let config =
            Config::parse(&text, &state, &SystemSecrets).map_err(|e| anyhow::anyhow!("{e}"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        server.ensure_running()?;
        let appliance = Appliance::start(
            &config,
            LiveConfig::new(config.clone(), None),
            clock,
            &Supervisor::from_environment()?,
        )?;
        std::thread::sleep(Duration::from_secs(args.warmup_seconds));
        let before = appliance.health.snapshot();
        let (cpu_before, server_before, start) =
            (cpu_seconds("self"), server.cpu_seconds(), Instant::now());
        std::thread::sleep(Duration::from_secs(args.seconds));
        let after = appliance.health.snapshot();
        let (cpu, server_cpu, wall) = (
            cpu_seconds("self") - cpu_before,
            server.cpu_seconds() - server_before,
            start.elapsed().as_secs_f64(),
        );
        let rss = rss_mb();
        appliance.stop();
        let mut min_rate = f64::INFINITY;
        let mut dropped = 0;
        for (camera, h) in &after {
            let b = &before[camera];
            min_rate = min_rate.min((h.frames_analysed - b.frames_analysed) as f64 / wall);
            dropped += h.frames_dropped - b.frames_dropped;
        }
        let cpu_pct = cpu / wall * 100.0;
        if streams == args.from_streams.max(1) {
            first_rss = (streams, rss);
        }
        // What each stream beyond the first step's adds (the models are loaded once).
        let extra = streams - first_rss.0;
        let marginal_rss = if extra > 0 {
            (rss - first_rss.1) / extra as f64
        } else {
            0.0
        };
        println!(
            "{streams:7}  {min_rate:27.2}  {dropped:7}  {cpu_pct:17.0}  {:12.1}  {rss:6.0}  {:19.1}  {:12.0}",
            cpu_pct / streams as f64,
            marginal_rss,
            server_cpu / wall * 100.0
        );
        // Sustained: every stream analysed at (nearly) the full rate, nothing dropped.
        if dropped == 0 && min_rate >= args.fps * 0.9 {
            sustained = streams;
        } else {
            break;
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
    println!(
        "\nsustained: {sustained} stream(s) of 1080p25 at {} analysed fps on {} CPU core(s)",
        args.fps,
        cores()
    );
    Ok(ExitCode::SUCCESS)
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
