//! A raw decoded frame. It holds identifiable pixels, so it has no way out of
//! the process: nothing in headcount encodes, stores or serves a `Frame`. Only
//! the detectors read it, and only the redactor turns it into something that
//! may be used further (`redaction::RedactedFrame`).

use crate::clock::UnixMs;
use std::sync::Arc;

/// A camera's configured name, shared cheaply between stages.
pub type CameraId = Arc<str>;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("frame of {width}x{height} needs {expected} RGB bytes, got {actual}")]
pub struct FrameSizeError {
    pub width: u32,
    pub height: u32,
    pub expected: usize,
    pub actual: usize,
}

/// Tightly packed 8-bit RGB, row-major. Deliberately neither `Clone` nor
/// serialisable.
#[derive(Debug)]
pub struct Frame {
    camera: CameraId,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    timestamp_ms: UnixMs,
}

impl Frame {
    /// `timestamp_ms` is wall-clock time for live cameras and the position in
    /// the stream for files.
    pub fn new(
        camera: CameraId,
        width: u32,
        height: u32,
        rgb: Vec<u8>,
        timestamp_ms: UnixMs,
    ) -> Result<Self, FrameSizeError> {
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected || width == 0 || height == 0 {
            return Err(FrameSizeError {
                width,
                height,
                expected,
                actual: rgb.len(),
            });
        }
        Ok(Self {
            camera,
            width,
            height,
            rgb,
            timestamp_ms,
        })
    }
    pub fn camera(&self) -> &CameraId {
        &self.camera
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn timestamp_ms(&self) -> UnixMs {
        self.timestamp_ms
    }
    /// Read-only pixels, for the detectors.
    pub fn pixels(&self) -> &[u8] {
        &self.rgb
    }
    /// Hands the pixel buffer to the redactor, which is the only consumer
    /// allowed to take a frame apart.
    pub(crate) fn into_parts(self) -> (CameraId, u32, u32, Vec<u8>, UnixMs) {
        (
            self.camera,
            self.width,
            self.height,
            self.rgb,
            self.timestamp_ms,
        )
    }
}
