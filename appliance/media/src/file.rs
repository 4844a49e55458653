//! Recordings read frame by frame, for `headcount analyze` and the bench.
//! Unlike a live camera, nothing is dropped: the reader pulls at its pace.

use crate::pipeline::{app_sink, build, element, first_error};
use crate::{fraction, template, FrameRate, MediaError};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSink;
use headcount_domain::pixels::frame::{CameraId, Frame};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct FileFrames {
    pipeline: gst::Pipeline,
    sink: AppSink,
    camera: CameraId,
    finished: bool,
    rate: Option<FrameRate>,
    path: std::path::PathBuf,
}

impl FileFrames {
    /// `fps` None reads every frame; otherwise frames are dropped to that
    /// rate. `width` None keeps the native resolution.
    pub fn open(
        path: &Path,
        fps: Option<f64>,
        width: Option<u32>,
    ) -> Result<FileFrames, MediaError> {
        crate::init()?;
        if !path.is_file() {
            return Err(MediaError::Stream(format!(
                "{} is not a readable file",
                path.display()
            )));
        }
        let rate = fps
            .map(|f| {
                format!(
                    "videorate drop-only=true ! video/x-raw,framerate={} !",
                    fraction(f)
                )
            })
            .unwrap_or_default();
        let text = template::render(
            template::FILE,
            &[("rate", &rate), ("scale", &template::scale_to(width))],
        );
        let pipeline = build("file", &text)?;
        // One thread: frame threads would each hold a set of reference
        // frames (tens of MB at 1080p); the callers already keep the cores
        // busy.
        crate::tune_decoders(&pipeline);
        element(&pipeline, "file", "source")?
            .set_property("location", path.to_string_lossy().as_ref());
        let sink = app_sink(&pipeline, "file", "frames")?;
        // Pull at our own pace: no clock sync, and backpressure instead of drops.
        sink.set_sync(false);
        sink.set_max_buffers(2);
        sink.set_drop(false);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| MediaError::Stream(pipeline_error(&pipeline, path)))?;
        Ok(FileFrames {
            pipeline,
            sink,
            camera: "file".into(),
            finished: false,
            rate: None,
            path: path.to_path_buf(),
        })
    }

    /// The stream's frame rate, known once a frame has been read; None for
    /// a variable rate.
    pub fn frame_rate(&self) -> Option<FrameRate> {
        self.rate
    }

    /// The file's duration, where the container says.
    pub fn duration(&self) -> Option<Duration> {
        self.pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| Duration::from_nanos(d.nseconds()))
    }
}

/// The first error on the bus, in words, or a generic one.
fn pipeline_error(pipeline: &gst::Pipeline, path: &Path) -> String {
    match first_error(pipeline, gst::ClockTime::from_mseconds(500)) {
        Some(message) => format!("cannot decode {}: {message}", path.display()),
        None => format!("cannot decode {}", path.display()),
    }
}

impl Iterator for FileFrames {
    type Item = Result<Frame, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        // Poll rather than block: a pipeline that fails (say, a file that is
        // not a video) posts an error on the bus and never reaches EOS.
        loop {
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                if self.rate.is_none() {
                    self.rate = sample
                        .caps()
                        .and_then(|caps| gstreamer_video::VideoInfo::from_caps(caps).ok())
                        .map(|info| info.fps())
                        .filter(|fps| fps.numer() > 0 && fps.denom() > 0)
                        .map(|fps| FrameRate {
                            numerator: fps.numer(),
                            denominator: fps.denom(),
                        });
                }
                return Some(
                    sample_to_frame(&sample, &self.camera, None).map_err(MediaError::Stream),
                );
            }
            if let Some(message) = first_error(&self.pipeline, gst::ClockTime::ZERO) {
                self.finished = true;
                return Some(Err(MediaError::Stream(format!(
                    "cannot decode {}: {message}",
                    self.path.display()
                ))));
            }
            if self.sink.is_eos() {
                self.finished = true;
                return None;
            }
        }
    }
}

impl Drop for FileFrames {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Copies an RGB sample into a tightly packed `Frame`. `timestamp_ms` None
/// takes the buffer's position in the stream.
pub(crate) fn sample_to_frame(
    sample: &gst::Sample,
    camera: &CameraId,
    timestamp_ms: Option<i64>,
) -> Result<Frame, String> {
    let buffer = sample.buffer().ok_or("sample without buffer")?;
    let caps = sample.caps().ok_or("sample without caps")?;
    let info = gstreamer_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let frame = gstreamer_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| e.to_string())?;
    let (width, height) = (info.width(), info.height());
    let stride = info.stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|e| e.to_string())?;
    let row = width as usize * 3;
    let mut rgb = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        rgb.extend_from_slice(
            data.get(y * stride..y * stride + row)
                .ok_or("short RGB buffer")?,
        );
    }
    let timestamp =
        timestamp_ms.unwrap_or_else(|| buffer.pts().map(|t| t.mseconds() as i64).unwrap_or(0));
    Frame::new(camera.clone(), width, height, rgb, timestamp).map_err(|e| e.to_string())
}

/// Decodes a file as fast as possible on one thread, without scaling or
/// converting, and returns (frames, elapsed): the cost of decoding alone.
pub fn decode_only(path: &Path) -> Result<(u64, Duration), MediaError> {
    crate::init()?;
    let pipeline = build(
        "decode",
        "filesrc name=source ! decodebin ! fakesink name=sink sync=false",
    )?;
    // As in live cameras, so that the figure is the cost per camera.
    crate::tune_decoders(&pipeline);
    element(&pipeline, "decode", "source")?
        .set_property("location", path.to_string_lossy().as_ref());
    let sink = element(&pipeline, "decode", "sink")?;
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = frames.clone();
    let pad = sink
        .static_pad("sink")
        .ok_or_else(|| MediaError::Stream("no sink pad".into()))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let start = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| MediaError::Stream(pipeline_error(&pipeline, path)))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Stream("no bus".into()))?;
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::NONE,
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(msg) => match msg.view() {
            gst::MessageView::Error(e) => Err(MediaError::Stream(e.error().message().to_string())),
            _ => Ok((
                frames.load(std::sync::atomic::Ordering::Relaxed),
                start.elapsed(),
            )),
        },
        None => Err(MediaError::Stream("bus closed".into())),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
