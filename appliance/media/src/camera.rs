//! One supervised pipeline per camera, on its own thread.
//!
//! rtspsrc reports a killed server as a plain EOS, a server that is down as
//! an error at once, and a frozen server only after ~26 s; so EOS, errors and
//! our own no-frame watchdog all lead to the same recovery: pipeline to Null,
//! back off (1 s doubling to a cap), build a fresh pipeline; the backoff
//! resets at the first frame. Refused credentials (401) and unknown paths
//! (404) are configuration errors: reported as such and retried slowly.
//!
//! The appsink callback never blocks GStreamer's streaming thread: frames go
//! to the camera's slot in the fair `FrameQueue`, replacing (and counting as
//! dropped) a frame that analysis has not taken yet.

use crate::file::sample_to_frame;
use crate::pipeline::{app_sink, build, element};
use crate::{fraction, template, tune_decoders, MediaError};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSinkCallbacks;
use headcount_domain::clock::Clock;
use headcount_domain::config::{CameraConfig, Source, Transport};
use headcount_domain::frame_queue::{FrameQueue, Offered};
use headcount_domain::health::{CameraState, HealthBoard};
use headcount_domain::pixels::frame::CameraId;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The supervisor's clocks; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorTiming {
    /// No frame for this long on a streaming camera means it stalled.
    pub stall_after: Duration,
    /// No first frame this long after (re)connecting means it failed.
    pub first_frame_within: Duration,
    pub backoff_start: Duration,
    pub backoff_cap: Duration,
    /// Wait after a configuration error (bad credentials, unknown path).
    pub config_error_retry: Duration,
}

impl Default for SupervisorTiming {
    fn default() -> Self {
        Self {
            stall_after: Duration::from_secs(5),
            first_frame_within: Duration::from_secs(20),
            backoff_start: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(5),
            config_error_retry: Duration::from_secs(60),
        }
    }
}

pub struct CameraHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CameraHandle {
    /// Stops the pipeline and waits for the supervisor to finish.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts supervising one camera. Frames go to `frames` (which numbers them
/// as they are taken); state goes to `health`.
pub fn spawn_camera(
    camera: &CameraConfig,
    frames: FrameQueue,
    health: HealthBoard,
    clock: Arc<dyn Clock>,
    timing: SupervisorTiming,
) -> Result<CameraHandle, MediaError> {
    crate::init()?;
    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = Supervisor {
        camera: camera.clone(),
        frames,
        health,
        clock,
        timing,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("camera-{}", camera.id))
        .spawn(move || supervisor.run())
        .map_err(|e| MediaError::Stream(format!("cannot start camera thread: {e}")))?;
    Ok(CameraHandle {
        stop,
        thread: Some(thread),
    })
}

struct Supervisor {
    camera: CameraConfig,
    frames: FrameQueue,
    health: HealthBoard,
    clock: Arc<dyn Clock>,
    timing: SupervisorTiming,
    stop: Arc<AtomicBool>,
}

/// When a pipeline run's latest frame arrived, on the monotonic clock (a
/// wall clock step must never look like a stall), as milliseconds since the
/// run began plus one; 0 before the first frame.
struct LastFrame {
    began: Instant,
    at_ms: AtomicU64,
}

impl Default for LastFrame {
    fn default() -> Self {
        Self {
            began: Instant::now(),
            at_ms: AtomicU64::new(0),
        }
    }
}

impl LastFrame {
    fn mark(&self) {
        let since = self.began.elapsed().as_millis() as u64 + 1;
        self.at_ms.store(since, Ordering::SeqCst);
    }

    /// How long since the latest frame; None before the first.
    fn silent_for(&self) -> Option<Duration> {
        match self.at_ms.load(Ordering::SeqCst) {
            0 => None,
            at => Some(
                self.began
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        }
    }
}

/// Why a pipeline run ended.
struct Ending {
    reason: String,
    /// A configuration problem: retry slowly.
    config_error: bool,
    /// At least one frame arrived during the run.
    streamed: bool,
}

impl Supervisor {
    fn run(self) {
        let _span = tracing::info_span!("camera", camera = %self.camera.id).entered();
        let mut backoff = self.timing.backoff_start;
        let mut first_attempt = true;
        while !self.stop.load(Ordering::SeqCst) {
            if !first_attempt {
                self.health.update(&self.camera.id, |h| h.reconnects += 1);
            }
            first_attempt = false;
            self.set_state(CameraState::Connecting);
            let ending = match self.build() {
                Ok((pipeline, last_frame)) => self.watch(&pipeline, &last_frame),
                Err(e) => Ending {
                    reason: e.to_string(),
                    config_error: true,
                    streamed: false,
                },
            };
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if ending.streamed {
                backoff = self.timing.backoff_start;
            }
            let wait = if ending.config_error {
                self.timing.config_error_retry
            } else {
                backoff
            };
            tracing::warn!(reason = %ending.reason, retry_in_ms = wait.as_millis() as u64, "camera failing");
            self.set_state(CameraState::Failing {
                reason: ending.reason,
            });
            self.sleep(wait);
            if !ending.config_error {
                backoff = (backoff * 2).min(self.timing.backoff_cap);
            }
        }
    }

    fn set_state(&self, state: CameraState) {
        self.health.update(&self.camera.id, |h| h.state = state);
    }

    /// Sleeps in small steps so that a stop request is seen quickly.
    fn sleep(&self, total: Duration) {
        let until = Instant::now() + total;
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }

    fn build(&self) -> Result<(gst::Pipeline, Arc<LastFrame>), MediaError> {
        let c = &self.camera;
        let (fps, width) = (fraction(c.analysis_fps), c.analysis_width.to_string());
        let text = match &c.source {
            Source::Rtsp { .. } => {
                template::render(template::RTSP, &[("fps", &fps), ("width", &width)])
            }
            Source::File { .. } => {
                let rate = format!("videorate drop-only=true ! video/x-raw,framerate={fps} !");
                let scale = template::scale_to(Some(c.analysis_width));
                template::render(template::FILE, &[("rate", &rate), ("scale", &scale)])
            }
            Source::TestPattern { pattern } => template::render(
                template::TESTSRC,
                &[("fps", &fps), ("width", &width), ("pattern", pattern)],
            ),
        };
        let pipeline = build("camera", &text)?;
        tune_decoders(&pipeline);
        let source = element(&pipeline, "camera", "source")?;
        match &c.source {
            Source::Rtsp {
                url,
                transport,
                credentials,
            } => {
                source.set_property("location", url);
                let protocols = match transport {
                    Transport::Tcp => "tcp",
                    Transport::Udp => "udp",
                    Transport::Auto => "tcp+udp",
                };
                source.set_property_from_str("protocols", protocols);
                if let Some(creds) = credentials {
                    source.set_property("user-id", &creds.user);
                    source.set_property("user-pw", creds.password.expose());
                }
            }
            Source::File { path } => {
                source.set_property("location", path.to_string_lossy().as_ref())
            }
            Source::TestPattern { .. } => {}
        }
        let sink = app_sink(&pipeline, "camera", "frames")?;
        // A file camera plays at its own pace, like a live one.
        sink.set_sync(matches!(c.source, Source::File { .. }));
        sink.set_max_buffers(1);
        sink.set_drop(true);
        let last_frame = Arc::new(LastFrame::default());
        sink.set_callbacks(self.frame_callback(last_frame.clone()));
        Ok((pipeline, last_frame))
    }

    fn frame_callback(&self, last_frame: Arc<LastFrame>) -> AppSinkCallbacks {
        let (camera, frames, health, clock): (CameraId, _, _, _) = (
            self.camera.id.clone(),
            self.frames.clone(),
            self.health.clone(),
            self.clock.clone(),
        );
        AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let now = clock.now_ms();
                let frame = match sample_to_frame(&sample, &camera, Some(now)) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable frame skipped");
                        return Ok(gst::FlowSuccess::Ok);
                    }
                };
                last_frame.mark();
                let offered = frames.offer(frame);
                health.update(&camera, |h| {
                    h.state = CameraState::Streaming;
                    h.last_frame = Some(Instant::now());
                    if offered == Offered::Replaced {
                        h.frames_dropped += 1;
                    }
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build()
    }

    /// Plays the pipeline until it ends, errs, stalls or we are stopped.
    fn watch(&self, pipeline: &gst::Pipeline, last_frame: &LastFrame) -> Ending {
        let started = Instant::now();
        let ending = |reason: String, config_error: bool| Ending {
            reason,
            config_error,
            streamed: last_frame.silent_for().is_some(),
        };
        let result = (|| {
            let bus = pipeline
                .bus()
                .ok_or_else(|| ending("pipeline has no bus".into(), true))?;
            if pipeline.set_state(gst::State::Playing).is_err() {
                return Err(self.first_error(&bus).map_or_else(
                    || ending("could not start the pipeline".into(), false),
                    |(r, c)| ending(r, c),
                ));
            }
            loop {
                if self.stop.load(Ordering::SeqCst) {
                    return Err(ending("stopped".into(), false));
                }
                if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                    match msg.view() {
                        gst::MessageView::Eos(_) => {
                            return Err(ending("the stream ended".into(), false))
                        }
                        gst::MessageView::Error(e) => {
                            let (reason, config_error) = classify(e.error());
                            return Err(ending(reason, config_error));
                        }
                        _ => {}
                    }
                }
                let silent = last_frame.silent_for();
                if silent.is_none() && started.elapsed() > self.timing.first_frame_within {
                    return Err(ending(
                        format!(
                            "no frame within {} s of connecting",
                            self.timing.first_frame_within.as_secs()
                        ),
                        false,
                    ));
                }
                if let Some(silent) = silent.filter(|s| *s > self.timing.stall_after) {
                    return Err(ending(
                        format!("no frame for {} s", silent.as_secs()),
                        false,
                    ));
                }
            }
        })();
        let _ = pipeline.set_state(gst::State::Null);
        match result {
            Ok(()) => ending("stopped".into(), false),
            Err(e) => e,
        }
    }

    fn first_error(&self, bus: &gst::Bus) -> Option<(String, bool)> {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(classify(e.error())),
            _ => None,
        }
    }
}

/// Words for an ingest error, and whether it is a configuration problem.
/// Only GStreamer's short message is used, never its debug text, which can
/// carry the full URL.
fn classify(error: glib_error::Error) -> (String, bool) {
    use gst::ResourceError as R;
    match error.kind::<R>() {
        Some(R::NotAuthorized) => (
            "the camera refused the credentials (401); check the configured user and password"
                .into(),
            true,
        ),
        Some(R::NotFound) => (
            "the camera has no such stream (404); check the URL path".into(),
            true,
        ),
        Some(R::OpenRead | R::OpenReadWrite | R::Read) => (
            "cannot connect to the camera (connection refused or unreachable)".into(),
            false,
        ),
        _ => (format!("stream error: {}", scrub(error.message())), false),
    }
}

/// Removes anything that looks like `user:password@` from a message.
fn scrub(message: &str) -> String {
    message
        .split_whitespace()
        .map(|word| match (word.find("://"), word.find('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &word[..scheme], &word[at + 1..])
            }
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

mod glib_error {
    pub use gstreamer::glib::Error;
}

#[cfg(test)]
mod tests {
    #[test]
    fn scrub_removes_credentials() {
        assert_eq!(
            super::scrub("could not open rtsp://admin:hunter2@10.0.0.5/live now"),
            "could not open rtsp://***@10.0.0.5/live now"
        );
        assert_eq!(super::scrub("plain message"), "plain message");
    }
}
