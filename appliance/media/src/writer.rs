//! Redacted video files, for `headcount redact`. The writer accepts
//! `RedactedFrame`s only, so it cannot encode a raw frame. It writes to a
//! temporary name beside the output and renames only when the file is
//! complete, so a failed or interrupted run leaves nothing that looks done.

use crate::pipeline::{build, element, first_error};
use crate::{template, MediaError};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSrc;
use headcount_domain::pixels::redaction::RedactedFrame;
use std::path::{Path, PathBuf};

/// The containers `VideoWriter` can write, chosen by the output extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Matroska,
}

impl Container {
    pub fn from_path(path: &Path) -> Option<Container> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" => Some(Container::Mp4),
            "mkv" => Some(Container::Matroska),
            _ => None,
        }
    }
    fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Matroska => "matroskamux",
        }
    }
}

/// Frame rate as a fraction, e.g. 30000/1001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub numerator: i32,
    pub denominator: i32,
}

pub struct VideoWriter {
    pipeline: gst::Pipeline,
    source: AppSrc,
    temporary: PathBuf,
    output: PathBuf,
    width: u32,
    height: u32,
    rate: FrameRate,
    frames: u64,
    finished: bool,
}

impl VideoWriter {
    /// Starts writing `output` (MP4 or Matroska, from its extension) at the
    /// given size and rate. Fails at once if the output cannot be created.
    pub fn create(
        output: &Path,
        width: u32,
        height: u32,
        rate: FrameRate,
    ) -> Result<VideoWriter, MediaError> {
        crate::init()?;
        let container = Container::from_path(output).ok_or_else(|| {
            MediaError::Stream(format!(
                "{}: a video output must end in .mp4 or .mkv",
                output.display()
            ))
        })?;
        let temporary = temporary_path(output);
        // Fail now, with the OS's reason, rather than in a streaming thread.
        std::fs::File::create(&temporary)
            .map_err(|e| MediaError::Stream(format!("cannot write {}: {e}", output.display())))?;
        let text = template::render(template::ENCODE, &[("mux", container.muxer())]);
        let pipeline = build("encode", &text).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })?;
        let source = element(&pipeline, "encode", "frames")?
            .downcast::<AppSrc>()
            .map_err(|_| MediaError::Stream("`frames` is not an appsrc".into()))?;
        let caps =
            gstreamer_video::VideoInfo::builder(gstreamer_video::VideoFormat::Rgb, width, height)
                .fps(gst::Fraction::new(rate.numerator, rate.denominator))
                .build()
                .and_then(|info| info.to_caps())
                .map_err(|e| MediaError::Stream(format!("bad video size or rate: {e}")))?;
        source.set_caps(Some(&caps));
        // At most two frames queued before the producer blocks.
        source.set_max_bytes(2 * width as u64 * height as u64 * 3);
        element(&pipeline, "encode", "encoder")?
            .set_property("bitrate", bitrate(width, height, rate));
        element(&pipeline, "encode", "sink")?
            .set_property("location", temporary.to_string_lossy().as_ref());
        let writer = VideoWriter {
            pipeline,
            source,
            temporary,
            output: output.to_path_buf(),
            width,
            height,
            rate,
            frames: 0,
            finished: false,
        };
        if writer.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(writer.bus_error("cannot start the encoder"));
        }
        Ok(writer)
    }

    /// Appends one frame; it must have the size the writer was created with.
    pub fn write(&mut self, frame: RedactedFrame) -> Result<(), MediaError> {
        if (frame.width(), frame.height()) != (self.width, self.height) {
            return Err(MediaError::Stream(format!(
                "frame of {}x{} in a {}x{} video",
                frame.width(),
                frame.height(),
                self.width,
                self.height
            )));
        }
        let at = |frames: u64| {
            gst::ClockTime::SECOND
                .mul_div_floor(
                    frames * self.rate.denominator as u64,
                    self.rate.numerator as u64,
                )
                .unwrap_or(gst::ClockTime::ZERO)
        };
        let mut buffer = gst::Buffer::from_mut_slice(frame.into_pixels());
        {
            let buffer = buffer.get_mut().expect("a new buffer is writable");
            buffer.set_pts(at(self.frames));
            buffer.set_duration(at(self.frames + 1) - at(self.frames));
        }
        self.frames += 1;
        self.source
            .push_buffer(buffer)
            .map_err(|_| self.bus_error("encoding failed"))?;
        Ok(())
    }

    /// Flushes the encoder, closes the file and moves it to its final name.
    pub fn finish(mut self) -> Result<u64, MediaError> {
        self.source
            .end_of_stream()
            .map_err(|_| self.bus_error("encoding failed"))?;
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| MediaError::Stream("no bus".into()))?;
        let outcome = bus.timed_pop_filtered(
            gst::ClockTime::NONE,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        if let Some(msg) = outcome {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(MediaError::Stream(format!(
                    "encoding failed: {}",
                    e.error().message()
                )));
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        std::fs::File::open(&self.temporary)
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&self.temporary, &self.output))
            .map_err(|e| {
                MediaError::Stream(format!("cannot finish {}: {e}", self.output.display()))
            })?;
        self.finished = true;
        Ok(self.frames)
    }

    /// The first error on the bus, else `context`.
    fn bus_error(&self, context: &str) -> MediaError {
        MediaError::Stream(match first_error(&self.pipeline, gst::ClockTime::ZERO) {
            Some(m) => format!("{context}: {m}"),
            None => context.to_string(),
        })
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if !self.finished {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// `dir/.name.partial`, beside the output so that the rename stays on one
/// file system and is atomic.
pub fn temporary_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.partial"))
}

/// About 0.1 bit per pixel: visually clean H.264 for redaction review.
fn bitrate(width: u32, height: u32, rate: FrameRate) -> u32 {
    let fps = rate.numerator as f64 / rate.denominator.max(1) as f64;
    (width as f64 * height as f64 * fps * 0.1).clamp(200_000.0, 50_000_000.0) as u32
}
