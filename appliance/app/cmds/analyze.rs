//! `headcount analyze`: the models' and the counting's view of a recording
//! or a still, one JSON line per analysed frame, then a summary line. For
//! installers checking a camera placement on a recording (with `--config`:
//! zone occupancy, line crossings, dwell, spaces, and the anomalies the
//! appliance would raise), and for accuracy checks.
//! Nothing but counts and (on request) boxes is printed; no pixel is
//! written anywhere.

use anyhow::Context;
use headcount_domain::analytics::{Analytics, BoardView, OccupancyBoard};
use headcount_domain::anomaly::monitor::{Change, Monitor};
use headcount_domain::clock::UnixMs;
use headcount_domain::config::{Config, SystemSecrets};
use headcount_domain::detection::Detection;
use headcount_domain::frame_step::{self, CameraPlan, CameraSteps, Look, StepRules};
use headcount_domain::pixels::frame::{CameraId, Frame};
use headcount_domain::pixels::redaction::Redactor;
use headcount_media::FileFrames;
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A video file (any format GStreamer decodes) or a JPEG/PNG still.
    #[arg(long)]
    input: PathBuf,
    /// Analysed frames per second (videos); default: the camera's
    /// analysis_fps with --config, else every frame.
    #[arg(long)]
    fps: Option<f64>,
    /// Also print the normalised boxes [x1, y1, x2, y2, score].
    #[arg(long)]
    boxes: bool,
    /// Count with this config's detection settings, models and the zones,
    /// lines and spaces of one of its cameras.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The camera of --config the recording comes from (needed when it has several).
    #[arg(long)]
    camera: Option<String>,
    /// The models folder (default: the config's models_dir, else ./models).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Frames are scaled to this width before analysis (videos); default:
    /// the camera's analysis_width with --config, else 640.
    #[arg(long)]
    width: Option<u32>,
    /// Run the person model on 2x2 tiles as well (slower, finds smaller people).
    #[arg(long)]
    tiling: bool,
    /// Run the person model on every frame (no motion gate), as with
    /// `detection.motion_gate = false`.
    #[arg(long)]
    every_frame: bool,
    /// Do not learn where people are small (no detail tiles), as with
    /// `detection.auto_detail = false`.
    #[arg(long)]
    no_detail: bool,
    /// Look again at this part of the view in finer tiles: x1,y1,x2,y2
    /// (normalised), as a camera's `detail`.
    #[arg(long, value_delimiter = ',', num_args = 4)]
    detail: Option<Vec<f32>>,
    /// The wall-clock time of the first frame (RFC 3339), for the
    /// schedule-driven anomaly rules (after hours, counter drift); default: now.
    #[arg(long)]
    start: Option<String>,
}

#[derive(Serialize)]
struct FrameReport {
    frame: u64,
    timestamp_ms: i64,
    /// Person detections at or above the person threshold.
    persons: usize,
    /// People the tracker holds as present (confirmed tracks).
    tracked: u32,
    /// None when the face model failed on this frame.
    faces: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    face_error: Option<String>,
    /// The person model did not run: the view had not moved since it last
    /// did (the motion gate), and its last findings stand.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    coasted: bool,
    /// Why the frame was not counted: detection failed, so the appliance
    /// would obscure it whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    detection_error: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    zones: BTreeMap<String, u32>,
    /// Crossings so far per line.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    lines: BTreeMap<String, LineTotals>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    spaces: BTreeMap<String, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boxes: Option<Boxes>,
}

#[derive(Serialize)]
struct LineTotals {
    #[serde(rename = "in")]
    entries: u64,
    #[serde(rename = "out")]
    exits: u64,
}

#[derive(Serialize)]
struct Boxes {
    persons: Vec<[f32; 5]>,
    faces: Vec<[f32; 5]>,
    /// The tracker's boxes of the people it holds present (`tracked`).
    tracked: Vec<[f32; 4]>,
}

#[derive(Serialize)]
struct SummaryLine {
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    frames: u64,
    duration_s: f64,
    zones: BTreeMap<String, ZoneSummary>,
    lines: BTreeMap<String, LineTotals>,
    spaces: BTreeMap<String, SpaceSummary>,
    /// The anomalies raised, in the order they started.
    anomalies: Vec<AnomalySummary>,
}

/// An anomaly of the recording, its times in seconds from the first frame.
#[derive(Serialize)]
struct AnomalySummary {
    #[serde(rename = "type")]
    kind: &'static str,
    subject_type: &'static str,
    subject: String,
    start_s: f64,
    /// None: still open at the end of the recording.
    end_s: Option<f64>,
    value: f64,
    threshold: f64,
    explanation: String,
}

/// Collects the monitor's changes into the summary's list.
struct AnomalyLog {
    start_ms: UnixMs,
    anomalies: Vec<AnomalySummary>,
}

impl AnomalyLog {
    fn seconds(&self, at: UnixMs) -> f64 {
        ((at - self.start_ms) as f64 / 100.0).round() / 10.0
    }

    fn record(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Open { started, finding } => self.push(started, None, finding),
                Change::Instant { at, finding } => self.push(at, Some(at), finding),
                Change::Close {
                    kind,
                    subject,
                    started,
                    ended,
                } => {
                    let start_s = self.seconds(started);
                    let end_s = self.seconds(ended);
                    if let Some(open) = self.anomalies.iter_mut().find(|a| {
                        a.kind == kind.as_str()
                            && a.subject == subject.name()
                            && a.start_s == start_s
                            && a.end_s.is_none()
                    }) {
                        open.end_s = Some(end_s);
                    }
                }
            }
        }
    }

    fn push(&mut self, at: UnixMs, end: Option<UnixMs>, f: headcount_domain::anomaly::Finding) {
        let (start_s, end_s) = (self.seconds(at), end.map(|e| self.seconds(e)));
        self.anomalies.push(AnomalySummary {
            kind: f.kind.as_str(),
            subject_type: f.subject.kind(),
            subject: f.subject.name().to_string(),
            start_s,
            end_s,
            value: f.value,
            threshold: f.threshold,
            explanation: f.explanation,
        });
    }
}

#[derive(Serialize)]
struct ZoneSummary {
    peak: u32,
    mean: f64,
    visits: u64,
    dwell_median_s: Option<f64>,
    dwell_p90_s: Option<f64>,
}

#[derive(Serialize)]
struct SpaceSummary {
    peak: u32,
    mean: f64,
    #[serde(rename = "final")]
    last: Option<u32>,
}

/// Four decimals: a tenth of a pixel of a 1000-pixel frame.
fn rounded(v: f32) -> f32 {
    (v * 10_000.0).round() / 10_000.0
}

fn as_rows(detections: &[Detection]) -> Vec<[f32; 5]> {
    detections
        .iter()
        .map(|d| [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2, d.score].map(rounded))
        .collect()
}

fn is_still(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png")
}

/// The config to count with and the camera the recording stands for.
fn setup(args: &Args) -> anyhow::Result<(Config, CameraId)> {
    let Some(path) = &args.config else {
        let text = format!(
            "[appliance]\nmodels_dir = {:?}\n[cameras.file]\nurl = \"testsrc:ball\"\n[detection]\nthreads_per_worker = 2\n",
            std::path::absolute(args.models_dir.as_deref().unwrap_or(Path::new("models")))?
        );
        let config = Config::parse(&text, Path::new("."), &SystemSecrets)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok((config, "file".into()));
    };
    let mut config = Config::load(path, &SystemSecrets)
        .map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    if let Some(dir) = &args.models_dir {
        config.models_dir = dir.clone();
    }
    let names: Vec<&str> = config.cameras.iter().map(|c| &*c.id).collect();
    let camera = match (&args.camera, names.as_slice()) {
        (Some(name), _) if names.contains(&name.as_str()) => name.as_str().into(),
        (Some(name), _) => anyhow::bail!(
            "--camera {name}: {} has no such camera (it has {})",
            path.display(),
            names.join(", ")
        ),
        (None, [only]) => (*only).into(),
        (None, _) => anyhow::bail!(
            "--camera is needed: {} has cameras {}",
            path.display(),
            names.join(", ")
        ),
    };
    Ok((config, camera))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, camera) = setup(&args)?;
    let camera_config = config
        .cameras
        .iter()
        .find(|c| c.id == camera)
        .context("the camera is in the config")?;
    let (fps, width) = match &args.config {
        Some(_) => (
            args.fps.or(Some(camera_config.analysis_fps)),
            args.width.unwrap_or(camera_config.analysis_width),
        ),
        None => (args.fps, args.width.unwrap_or(640)),
    };
    let mut settings = DetectorSettings::from_config(&config.detection);
    settings.person_tiling |= args.tiling;
    let runtime = OnnxRuntime::load(config.onnxruntime_library.as_deref())?;
    let mut detectors = Detectors::load(&runtime, &config.models_dir, settings)?;
    let start_ms = match &args.start {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|_| {
                anyhow::anyhow!(
                    "--start: `{text}` is not an RFC 3339 time such as 2026-11-29T22:00:00+01:00"
                )
            })?
            .as_millisecond(),
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let board = OccupancyBoard::new(&config);
    let mut analytics = Analytics::new(&config, board.clone());
    let mut monitor = Monitor::new(&config, start_ms);
    let tamper = camera_config.tamper.is_some();
    let mut log = AnomalyLog {
        start_ms,
        anomalies: Vec::new(),
    };
    let mut first_at: Option<i64> = None;
    let high = config.detection.person_threshold;
    let mut out = std::io::stdout().lock();
    let (mut frames, mut last_ms) = (0u64, 0i64);
    // The appliance's frame step, with no deadline (a file waits): a frame
    // whose detection fails is not counted, as live. No pixel is published,
    // but faces are searched for, to report them.
    let rules = StepRules {
        deadline: None,
        tamper,
        publish: false,
    };
    let redactor = Redactor::new(config.privacy.policy());
    let mut steps = CameraSteps::default();
    let mut area = camera_config.search_area(config.detection.crop_to_zones);
    if let Some(d) = &args.detail {
        area.detail = Some(headcount_domain::geometry::BBox {
            x1: d[0],
            y1: d[1],
            x2: d[2],
            y2: d[3],
        });
    }
    let mut plan_rules = config.detection.plan_rules();
    if args.every_frame {
        plan_rules.gate = None;
    }
    if args.no_detail {
        plan_rules.learn_detail = false;
    }
    let mut plan = CameraPlan::default();
    let mask = camera_config.privacy_mask();
    let mut report = |index: u64, frame: Frame| -> anyhow::Result<()> {
        let frame = mask.apply(frame);
        let look = Look {
            persons: plan.plan(&frame, area, false, plan_rules),
            faces: true,
        };
        let at = frame.frame().timestamp_ms();
        let examined = frame_step::examine(frame, &mut detectors, look, rules);
        plan.learn(at, &examined, plan_rules);
        for stepped in steps.finish(index, examined, &redactor) {
            let at = stepped.at;
            // The monitor runs on wall-clock time from --start.
            let wall = start_ms + at - *first_at.get_or_insert(at);
            if let Some(stats) = &stepped.tamper {
                log.record(monitor.observe_frame(&camera, wall, stats));
            }
            let (found, detection_error) = match stepped.detections {
                Ok(mut found) => {
                    found.persons = plan.counted(at, found.persons);
                    (Some(found), None)
                }
                Err(e) => (None, Some(e)),
            };
            if let Some(found) = &found {
                analytics.observe(&camera, at, &found.persons);
            }
            log.record(monitor.observe_counts(wall, &analytics.signals()));
            let faces = found
                .as_ref()
                .and_then(|f| f.faces.as_ref())
                .map(|scan| scan.faces());
            let view = board.snapshot();
            let line = FrameReport {
                frame: index,
                timestamp_ms: at,
                persons: found
                    .as_ref()
                    .map_or(0, |f| f.persons.iter().filter(|p| p.score >= high).count()),
                tracked: analytics.present(&camera),
                faces: faces
                    .as_ref()
                    .and_then(|f| f.as_ref().ok())
                    .map(|f| f.len()),
                face_error: faces
                    .as_ref()
                    .and_then(|f| f.as_ref().err())
                    .map(|e| e.to_string()),
                coasted: !stepped.looked,
                detection_error,
                zones: current(&view, false),
                lines: line_totals(&analytics),
                spaces: current(&view, true),
                boxes: found.as_ref().filter(|_| args.boxes).map(|f| Boxes {
                    persons: as_rows(&f.persons),
                    faces: f
                        .faces
                        .as_ref()
                        .and_then(|scan| scan.faces().ok())
                        .map(as_rows)
                        .unwrap_or_default(),
                    tracked: analytics
                        .present_boxes(&camera)
                        .iter()
                        .map(|b| [b.x1, b.y1, b.x2, b.y2].map(rounded))
                        .collect(),
                }),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
            (frames, last_ms) = (frames + 1, at);
        }
        Ok(())
    };
    if is_still(&args.input) {
        let image = image::open(&args.input)
            .with_context(|| format!("cannot read image {}", args.input.display()))?
            .to_rgb8();
        let (w, h) = image.dimensions();
        report(0, Frame::new(camera.clone(), w, h, image.into_raw(), 0)?)?;
    } else {
        for (index, frame) in FileFrames::open(&args.input, fps, Some(width))?.enumerate() {
            report(index as u64, frame?)?;
        }
    }
    analytics.finish();
    let end = start_ms + last_ms - first_at.unwrap_or(last_ms);
    log.record(monitor.finish(end));
    let mut summary = summarise(&analytics, &board.snapshot(), frames, last_ms);
    summary.anomalies = log.anomalies;
    println!("{}", serde_json::to_string(&SummaryLine { summary })?);
    Ok(ExitCode::SUCCESS)
}

fn current(view: &BoardView, spaces: bool) -> BTreeMap<String, u32> {
    let map = if spaces { &view.spaces } else { &view.zones };
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.occupancy?)))
        .collect()
}

fn line_totals(analytics: &Analytics) -> BTreeMap<String, LineTotals> {
    analytics
        .totals()
        .lines
        .iter()
        .map(|(k, &(entries, exits))| (k.clone(), LineTotals { entries, exits }))
        .collect()
}

fn summarise(analytics: &Analytics, view: &BoardView, frames: u64, last_ms: i64) -> Summary {
    let totals = analytics.totals();
    let occupancy = |key: &str| {
        let (samples, sum, peak) = totals.occupancy.get(key).copied().unwrap_or_default();
        let mean = (sum as f64 / samples.max(1) as f64 * 100.0).round() / 100.0;
        (peak, mean)
    };
    let round1 = |v: Option<f64>| v.map(|s| (s * 10.0).round() / 10.0);
    let zones = view
        .zones
        .keys()
        .map(|key| {
            let (peak, mean) = occupancy(key);
            let dwell = totals.dwell.get(key);
            let summary = ZoneSummary {
                peak,
                mean,
                visits: dwell.map_or(0, |h| h.visits()),
                dwell_median_s: round1(dwell.and_then(|h| h.quantile(0.5))),
                dwell_p90_s: round1(dwell.and_then(|h| h.quantile(0.9))),
            };
            (key.clone(), summary)
        })
        .collect();
    let spaces = view
        .spaces
        .iter()
        .map(|(name, live)| {
            let (peak, mean) = occupancy(name);
            let summary = SpaceSummary {
                peak,
                mean,
                last: live.occupancy,
            };
            (name.clone(), summary)
        })
        .collect();
    Summary {
        frames,
        duration_s: last_ms as f64 / 1000.0,
        zones,
        lines: line_totals(analytics),
        spaces,
        anomalies: Vec::new(),
    }
}
