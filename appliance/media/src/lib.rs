//! headcount's ingest: the only crate that links GStreamer.
//!
//! It turns camera streams and files into raw frames
//! (`headcount_domain::pixels::frame::Frame`) at the analysis rate and size,
//! reports camera health, serves files over RTSP for the demo camera and
//! tests, and encodes redacted video files (from `RedactedFrame`s only). It
//! knows nothing of models, zones or storage. Pipelines come from the
//! templates in the top-level `pipelines/`.

mod camera;
mod file;
mod pipeline;
mod server;
mod template;
mod writer;

pub use camera::{spawn_camera, CameraHandle, SupervisorTiming};
pub use file::{decode_only, FileFrames};
pub use server::{serve_file, RtspServer, ServerCredentials};
pub use writer::{temporary_path, Container, FrameRate, VideoWriter};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("cannot build the {kind} pipeline: {message}")]
    Build { kind: &'static str, message: String },
    #[error("{0}")]
    Stream(String),
    #[error("cannot serve RTSP: {0}")]
    Server(String),
}

/// Initialises GStreamer once; later calls are cheap.
pub fn init() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// Sets up every libav decoder that `pipeline` plugs (inside decodebin too):
/// - one thread: with several cameras the cores are better spent on more
///   streams than on frame threads within one, which cost extra CPU per
///   frame for their synchronisation;
/// - no direct rendering: with it, a decoded picture that libav keeps as a
///   reference while `videorate` holds the previous one is copied into new
///   memory on every frame, and this process maps every buffer of 128 KiB
///   or more afresh (app/process/memory.rs): at 1080p 780 page faults a
///   frame, and a quarter of the decoding thread's CPU. Without it libav
///   decodes into its own pool and each frame is copied once into a pooled
///   buffer.
fn tune_decoders(pipeline: &gstreamer::Pipeline) {
    use gstreamer::prelude::*;
    pipeline.connect_deep_element_added(|_, _, element| {
        let is_libav_decoder = element
            .factory()
            .is_some_and(|f| f.name().starts_with("avdec_"));
        if !is_libav_decoder {
            return;
        }
        if element.has_property("max-threads") {
            element.set_property("max-threads", 1i32);
        }
        if element.has_property("direct-rendering") {
            element.set_property("direct-rendering", false);
        }
    });
}

/// A frame rate as a GStreamer fraction string, e.g. 2.0 -> "2/1", 0.5 -> "1/2".
fn fraction(fps: f64) -> String {
    let den = 1000u64;
    let num = (fps * den as f64).round().max(1.0) as u64;
    let g = gcd(num, den);
    format!("{}/{}", num / g, den / g)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fractions() {
        for (fps, expected) in [
            (2.0, "2/1"),
            (0.5, "1/2"),
            (12.5, "25/2"),
            (0.0001, "1/1000"),
        ] {
            assert_eq!(super::fraction(fps), expected);
        }
    }
}
