//! `headcount redact`: a copy of a video or a still with every face
//! redacted, for a data-protection officer answering a subject-access
//! request. Same resolution and frame rate, H.264 by OpenH264, audio
//! dropped. The output is written under a temporary name and renamed only
//! when complete, so a failure never leaves a file that looks finished.

use anyhow::{bail, Context};
use headcount_domain::config::MAX_POLYGON_POINTS;
use headcount_domain::detection::SearchArea;
use headcount_domain::frame_step::{
    self, CameraSteps, Examined, FrameDetector, Look, PersonSearch, StepRules,
};
use headcount_domain::geometry::{Point, Polygon};
use headcount_domain::pixels::frame::Detections;
use headcount_domain::pixels::frame::Frame;
use headcount_domain::pixels::mask::PrivacyMask;
use headcount_domain::pixels::redaction::{
    RedactedFrame, RedactionMode, RedactionPolicy, RedactionStats, Redactor, StillFormat,
};
use headcount_media::{Container, FileFrames, FrameRate, VideoWriter};
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime, StageTimes};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// A video (any format GStreamer decodes) or a PNG/JPEG still.
    #[arg(long)]
    input: PathBuf,
    /// .mp4 or .mkv for a video, .png or .jpg for a still.
    #[arg(long)]
    output: PathBuf,
    /// How regions are obscured: blur (strongest), a mosaic, or grey fill.
    #[arg(long, value_enum, default_value_t = Mode::Blur)]
    mode: Mode,
    /// Redact whole persons, not only faces and heads.
    #[arg(long)]
    full_body: bool,
    /// Face and head boxes are grown by this factor (1 to 3).
    #[arg(long, default_value_t = 1.3)]
    mask_scale: f32,
    /// Face detector score threshold (0 to 1); lower finds more, and
    /// redacts more that is not a face.
    #[arg(long, default_value_t = 0.25)]
    threshold: f32,
    /// Milliseconds (of the video's time) a region stays redacted after the
    /// detector last saw it. Default: 200 (5 frames at 25 fps), or the gap
    /// between person frames (--person-every) when a slow video makes that
    /// longer.
    #[arg(long)]
    hold_ms: Option<u32>,
    /// Run the person model (heads, whole persons) on every Nth frame of a
    /// video; between, person regions are held at their predicted place, so
    /// N - 1 frames must fit in --hold-ms. Faces are searched in every
    /// frame. 1 for every frame.
    #[arg(long, default_value_t = 2)]
    person_every: u32,
    /// The models folder (with manifest.toml).
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Frames detected in parallel (videos), each worker with its own
    /// models. Default: up to two for frames up to 1920x1080, one above (a
    /// worker's working memory grows with the frame).
    #[arg(long)]
    workers: Option<usize>,
    /// ONNX Runtime threads per worker. Default: the cores shared out.
    #[arg(long)]
    threads: Option<usize>,
    /// A static privacy mask: a polygon of normalised points
    /// X1,Y1,X2,Y2,X3,Y3[,...] blanked in every frame before anything looks
    /// at it, as a camera's `masks` are. Repeat for more.
    #[arg(long = "mask", value_name = "X1,Y1,X2,Y2,X3,Y3,...")]
    masks: Vec<String>,
    /// Print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// A `--mask` polygon, checked as a config's outlines are.
fn mask_polygon(text: &str) -> anyhow::Result<Polygon> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "--mask {text}: {e}; give X1,Y1,X2,Y2,X3,Y3,... as fractions of the frame"
            )
        })?;
    if values.len() % 2 != 0 || values.len() < 6 || values.len() > 2 * MAX_POLYGON_POINTS {
        bail!(
            "--mask {text}: needs 3 to {MAX_POLYGON_POINTS} points (X,Y pairs), has {} numbers",
            values.len()
        );
    }
    if let Some(v) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        bail!("--mask {text}: {v} is outside the frame; coordinates are fractions in [0, 1]");
    }
    let polygon = Polygon::new(
        values
            .chunks_exact(2)
            .map(|p| Point {
                x: p[0] as f32,
                y: p[1] as f32,
            })
            .collect(),
    );
    if let Some((i, j)) = polygon.self_intersection() {
        bail!("--mask {text}: edges {i} and {j} cross; the points must go around the outline in order");
    }
    Ok(polygon)
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Mode {
    Blur,
    Pixelate,
    Fill,
}

impl From<Mode> for RedactionMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Blur => RedactionMode::Blur,
            Mode::Pixelate => RedactionMode::Pixelate,
            Mode::Fill => RedactionMode::Fill,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Still(StillFormat),
    Video(Container),
}

impl Output {
    fn from_path(path: &Path) -> Option<Output> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Output::Still(StillFormat::Png)),
            "jpg" | "jpeg" => Some(Output::Still(StillFormat::Jpeg)),
            _ => Container::from_path(path).map(Output::Video),
        }
    }
}

#[derive(Serialize, Default)]
struct Summary {
    frames: u64,
    width: u32,
    height: u32,
    fps: Option<f64>,
    faces_redacted: u64,
    persons_redacted: u64,
    regions_held: u64,
    frames_obscured_whole: u64,
    seconds: f64,
    frames_per_second: f64,
    /// Detection cost per frame in ms, summed over the workers (which run
    /// in parallel, so these can add up to more than the wall time).
    detection_ms_per_frame: StageMs,
}

#[derive(Serialize, Default)]
struct StageMs {
    preprocess: f64,
    person_model: f64,
    face_model: f64,
}

impl Summary {
    fn add(&mut self, stats: RedactionStats) {
        self.frames += 1;
        self.faces_redacted += stats.faces as u64;
        self.persons_redacted += stats.persons as u64;
        self.regions_held += stats.held as u64;
        self.frames_obscured_whole += u64::from(stats.obscured_whole);
    }
}

/// How long a region stays redacted by default: 5 frames at 25 fps.
const DEFAULT_HOLD_MS: u32 = 200;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let output = check_paths(&args)?;
    if !(1.0..=3.0).contains(&args.mask_scale) {
        bail!("--mask-scale {} is outside [1, 3]", args.mask_scale);
    }
    if args.person_every == 0 {
        bail!("--person-every must be at least 1");
    }
    if !(args.threshold > 0.0 && args.threshold < 1.0) {
        bail!("--threshold {} is outside (0, 1)", args.threshold);
    }
    let mask = PrivacyMask::new(
        args.masks
            .iter()
            .map(|m| mask_polygon(m))
            .collect::<anyhow::Result<_>>()?,
    );
    let mut job = Job {
        runtime: OnnxRuntime::load(None)?,
        models_dir: args.models_dir.clone(),
        face_threshold: args.threshold,
        workers: args.workers,
        threads: args.threads,
        person_every: args.person_every as u64,
        hold_ms: args.hold_ms,
        detectors: Vec::new(),
        redactor: Redactor::new(RedactionPolicy {
            mode: args.mode.into(),
            mask_scale: args.mask_scale,
            full_body: args.full_body,
            hold_ms: args.hold_ms.unwrap_or(DEFAULT_HOLD_MS),
        }),
        steps: CameraSteps::default(),
        mask,
        summary: Summary::default(),
    };
    let start = Instant::now();
    match output {
        Output::Still(format) => job.still(&args.input, &args.output, format)?,
        Output::Video(_) => job.video(&args.input, &args.output)?,
    }
    let t = job.times();
    let summary = &mut job.summary;
    summary.seconds = start.elapsed().as_secs_f64();
    summary.frames_per_second = summary.frames as f64 / summary.seconds.max(1e-9);
    let per_frame = |d: Duration| d.as_secs_f64() * 1000.0 / summary.frames.max(1) as f64;
    summary.detection_ms_per_frame = StageMs {
        preprocess: per_frame(t.preprocess),
        person_model: per_frame(t.person),
        face_model: per_frame(t.face),
    };
    if args.json {
        println!("{}", serde_json::to_string(summary)?);
    } else {
        println!(
            "redacted {} frame(s) of {}x{} in {:.1} s ({:.1} fps): {} face(s) and {} person(s) redacted, {} region(s) held over from earlier frames, {} frame(s) obscured whole -> {}",
            summary.frames,
            summary.width,
            summary.height,
            summary.seconds,
            summary.frames_per_second,
            summary.faces_redacted,
            summary.persons_redacted,
            summary.regions_held,
            summary.frames_obscured_whole,
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The output kind, after refusing what cannot work before any decoding.
fn check_paths(args: &Args) -> anyhow::Result<Output> {
    let (input, output) = (&args.input, &args.output);
    if !input.is_file() {
        bail!("{} is not a readable file", input.display());
    }
    let kind = Output::from_path(output).with_context(|| {
        format!(
            "{}: the output must end in .mp4 or .mkv (video), or .png or .jpg (still)",
            output.display()
        )
    })?;
    let input_is_still = matches!(Output::from_path(input), Some(Output::Still(_)));
    match (input_is_still, kind) {
        (true, Output::Video(_)) => {
            bail!("{} is a still; write it to a .png or .jpg", input.display())
        }
        (false, Output::Still(_)) => {
            bail!("{} is a video; write it to a .mp4 or .mkv", input.display())
        }
        _ => {}
    }
    if same_file(input, output) {
        bail!(
            "the output {} is the input; choose another path (the input is never overwritten)",
            output.display()
        );
    }
    Ok(kind)
}

/// True when both paths name one file, even through links or `..`. An
/// output that does not exist yet is resolved through its folder.
fn same_file(input: &Path, output: &Path) -> bool {
    let Ok(input) = input.canonicalize() else {
        return false;
    };
    let output = output.canonicalize().ok().or_else(|| {
        let parent = output.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = parent.unwrap_or(Path::new(".")).canonicalize().ok()?;
        Some(dir.join(output.file_name()?))
    });
    output.as_deref() == Some(input.as_path())
}

struct Job {
    runtime: OnnxRuntime,
    models_dir: PathBuf,
    face_threshold: f32,
    workers: Option<usize>,
    threads: Option<usize>,
    person_every: u64,
    /// As asked for; None: the default, fitted to the video's rate.
    hold_ms: Option<u32>,
    /// One detector set per detection thread, loaded once the frame size
    /// is known.
    detectors: Vec<Timed>,
    redactor: Redactor,
    /// The file's frames in order, each redacted with the hold.
    steps: CameraSteps,
    /// Blanked in every frame before it is examined.
    mask: PrivacyMask,
    summary: Summary,
}

/// A detector set with where its time went.
struct Timed {
    detectors: Detectors,
    times: StageTimes,
}

impl FrameDetector for Timed {
    fn find(
        &mut self,
        frame: &Frame,
        persons: Option<SearchArea>,
        faces: bool,
    ) -> Result<Detections, String> {
        let (found, times) = self
            .detectors
            .detect_with(frame, persons, faces)
            .map_err(|e| e.to_string())?;
        self.times.preprocess += times.preprocess;
        self.times.person += times.person;
        self.times.face += times.face;
        Ok(found)
    }
}

/// Every frame is examined by the same rules as the appliance's, with no
/// deadline (a file waits) and no tamper statistics, and published.
const RULES: StepRules = StepRules {
    deadline: None,
    tamper: false,
    publish: true,
};

/// Faces in every frame; persons over the whole frame, or (between person
/// frames) not at all: the hold carries their regions.
fn look(persons: bool) -> Look {
    Look {
        persons: if persons {
            PersonSearch::Within(SearchArea::FULL)
        } else {
            PersonSearch::Skip
        },
        faces: true,
    }
}

/// Frames up to 1080p are detected by two workers by default (280-286 MB
/// peak at 1080p, 1.1 times one worker's speed with two threads on 2 cores);
/// larger frames by one, as a worker's working memory grows with the frame.
const TWO_WORKERS_UP_TO_PIXELS: u64 = 1920 * 1080;

impl Job {
    /// Loads the models for frames of `pixels` pixels.
    fn load_detectors(&mut self, pixels: u64) -> anyhow::Result<()> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = self
            .workers
            .unwrap_or(if pixels <= TWO_WORKERS_UP_TO_PIXELS {
                cores.min(2)
            } else {
                1
            })
            .max(1);
        let settings = DetectorSettings {
            person_threshold: 0.4,
            face_threshold: self.face_threshold,
            person_tiling: false,
            threads: self.threads.unwrap_or(cores / workers).max(1),
        };
        self.detectors = (0..workers)
            .map(|_| {
                Detectors::load(&self.runtime, &self.models_dir, settings).map(|detectors| Timed {
                    detectors,
                    times: StageTimes::default(),
                })
            })
            .collect::<Result<_, _>>()
            .context("cannot load the models")?;
        Ok(())
    }

    /// Fits the hold to the gap between person frames at this video's rate:
    /// person regions must be held until the person model sees them again.
    /// The default hold grows to the gap; an explicit --hold-ms shorter than
    /// it is refused.
    fn fit_hold(&mut self, rate: FrameRate) -> anyhow::Result<()> {
        let (Ok(numerator @ 1..), Ok(denominator)) = (
            u64::try_from(rate.numerator),
            u64::try_from(rate.denominator),
        ) else {
            // A variable rate: nothing to fit to.
            return Ok(());
        };
        // (person_every - 1) frames of denominator / numerator s, in ms.
        let gap_ms = ((self.person_every - 1) * 1000 * denominator).div_ceil(numerator);
        let policy = self.redactor.policy();
        match self.hold_ms {
            None if gap_ms > u64::from(policy.hold_ms) => {
                let hold_ms = u32::try_from(gap_ms).context("--person-every is too large")?;
                self.redactor = Redactor::new(RedactionPolicy { hold_ms, ..policy });
                Ok(())
            }
            Some(hold_ms) if gap_ms > u64::from(hold_ms) => bail!(
                "--person-every {} leaves {gap_ms} ms between person frames at this video's {:.2} fps, more than --hold-ms {hold_ms}: person regions would not be held until the next person frame; lower --person-every or raise --hold-ms",
                self.person_every,
                numerator as f64 / denominator as f64,
            ),
            _ => Ok(()),
        }
    }

    /// Redacts the file's frame `index` and those before it that wait, in
    /// stream order (the temporal hold depends on it); a failed detector
    /// obscures the frame whole.
    fn redact(&mut self, index: u64, examined: Examined) -> Vec<RedactedFrame> {
        self.steps
            .finish(index, examined, &self.redactor)
            .into_iter()
            // Every frame of a file is published (RULES), so each comes back
            // redacted or obscured whole.
            .filter_map(|stepped| stepped.redacted)
            .inspect(|redacted| self.summary.add(redacted.stats()))
            .collect()
    }

    /// Where the detectors' time went, over every detection thread.
    fn times(&self) -> StageTimes {
        self.detectors
            .iter()
            .fold(StageTimes::default(), |mut sum, timed| {
                sum.preprocess += timed.times.preprocess;
                sum.person += timed.times.person;
                sum.face += timed.times.face;
                sum
            })
    }

    fn still(&mut self, input: &Path, output: &Path, format: StillFormat) -> anyhow::Result<()> {
        let image = image::open(input)
            .with_context(|| format!("cannot read image {}", input.display()))?
            .to_rgb8();
        let (width, height) = image.dimensions();
        (self.summary.width, self.summary.height) = (width, height);
        let frame = Frame::new("file".into(), width, height, image.into_raw(), 0)?;
        self.workers = Some(1);
        self.load_detectors(width as u64 * height as u64)?;
        let frame = self.mask.apply(frame);
        let examined = frame_step::examine(frame, &mut self.detectors[0], look(true), RULES);
        let redacted = self.redact(0, examined);
        let [redacted] = <[RedactedFrame; 1]>::try_from(redacted)
            .map_err(|_| anyhow::anyhow!("a still is one frame"))?;
        let bytes = redacted.encode(format)?;
        let temporary = headcount_media::temporary_path(output);
        let written = std::fs::File::create(&temporary)
            .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&temporary, output));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            bail!("cannot write {}: {e}", output.display());
        }
        Ok(())
    }

    /// Decoding (GStreamer threads), detection (one thread per detector
    /// set, frames in parallel) and encoding (the writer's thread) overlap;
    /// redaction runs here, in frame order.
    fn video(&mut self, input: &Path, output: &Path) -> anyhow::Result<()> {
        let mut frames = FileFrames::open(input, None, None)?;
        let first = frames
            .next()
            .with_context(|| format!("{} has no video frames", input.display()))??;
        let (width, height) = (first.width(), first.height());
        let rate = frames.frame_rate().unwrap_or(FrameRate {
            numerator: 25,
            denominator: 1,
        });
        self.fit_hold(rate)?;
        (self.summary.width, self.summary.height) = (width, height);
        self.summary.fps = Some(rate.numerator as f64 / rate.denominator as f64);
        let expected = frames
            .duration()
            .map(|d| (d.as_secs_f64() * rate.numerator as f64 / rate.denominator as f64) as u64);
        let mut writer = VideoWriter::create(output, width, height, rate)?;
        self.load_detectors(width as u64 * height as u64)?;
        let mut progress = Progress::new(expected);

        // Few frames in flight: a 1080p frame is 6 MB.
        let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, Frame)>(1);
        // Owned by the detection threads only: when they stop, the reader's
        // sends fail and it stops too, so an error anywhere ends every thread.
        let (done_tx, done_rx) = sync_channel::<(u64, Examined)>(1);
        let mut detectors = std::mem::take(&mut self.detectors);
        // The workers share a copy; the job redacts meanwhile.
        let mask = &self.mask.clone();
        let outcome = std::thread::scope(|scope| -> anyhow::Result<()> {
            let person_every = self.person_every;
            for set in detectors.iter_mut() {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                scope.spawn(move || loop {
                    let Ok((index, frame)) = work_rx.recv() else {
                        return;
                    };
                    let look = look(index % person_every == 0);
                    let examined = frame_step::examine(mask.apply(frame), set, look, RULES);
                    if done_tx.send((index, examined)).is_err() {
                        return;
                    }
                });
            }
            drop((done_tx, work_rx));
            let reader = scope.spawn(move || -> anyhow::Result<()> {
                for (index, frame) in std::iter::once(Ok(first)).chain(frames).enumerate() {
                    let frame = frame?;
                    if work_tx.send((index as u64, frame)).is_err() {
                        break;
                    }
                }
                Ok(())
            });
            // Dropped on return, error or not, so the detection threads stop.
            let done_rx = done_rx;
            // Detection finishes out of order; redaction and encoding may not.
            for (index, examined) in done_rx.iter() {
                for redacted in self.redact(index, examined) {
                    writer.write(redacted)?;
                    progress.show(self.summary.frames);
                }
            }
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("the decoding thread panicked"))?
        });
        self.detectors = detectors;
        progress.done();
        outcome?;
        writer.finish()?;
        Ok(())
    }
}

/// A progress line on stderr, only when it is a terminal.
struct Progress {
    expected: Option<u64>,
    start: Instant,
    last: Instant,
    on: bool,
}

impl Progress {
    fn new(expected: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            expected: expected.filter(|&n| n > 0),
            start: now,
            last: now,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, frames: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let fps = frames as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let line = match self.expected {
            Some(total) => {
                let done = (frames as f64 / total as f64).min(1.0);
                let filled = (done * 30.0) as usize;
                format!(
                    "[{}{}] {:3.0}% {frames}/{total} frames, {fps:.1} fps",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    done * 100.0
                )
            }
            None => format!("{frames} frames, {fps:.1} fps"),
        };
        eprint!("\r{line}  ");
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}
