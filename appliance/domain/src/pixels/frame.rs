//! A raw decoded frame. It holds identifiable pixels, so it has no way out of
//! the process: nothing in headcount encodes, stores or serves a `Frame`, and
//! its bytes are readable only inside `crate::pixels`. The detectors see it
//! through `letterbox` (a model tensor) and `scan_faces`; only the redactor
//! turns it into something that may be used further (`RedactedFrame`).

use crate::clock::UnixMs;
use crate::detection::Detection;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Which frame a face scan was made on: unique per frame made in this
/// process, so a scan cannot vouch for another frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::pixels) struct FrameId(u64);

static NEXT_FRAME_ID: AtomicU64 = AtomicU64::new(0);

/// Tightly packed 8-bit RGB, row-major. Deliberately neither `Clone` nor
/// serialisable, and its `Debug` prints no pixels.
pub struct Frame {
    id: FrameId,
    camera: CameraId,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    timestamp_ms: UnixMs,
    /// The privacy mask blanked in `rgb`, kept so that redaction blanks it
    /// again over what it spread into it (a blur reaching in from outside).
    mask: Option<super::mask::PrivacyMask>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("camera", &self.camera)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish_non_exhaustive()
    }
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
            id: FrameId(NEXT_FRAME_ID.fetch_add(1, Ordering::Relaxed)),
            camera,
            width,
            height,
            rgb,
            timestamp_ms,
            mask: None,
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
    /// Read-only pixels, for the letterbox, the statistics and the redactor.
    pub(in crate::pixels) fn pixels(&self) -> &[u8] {
        &self.rgb
    }
    /// Writable pixels, for the privacy mask alone, which it records.
    pub(in crate::pixels) fn masked_with(&mut self, mask: &super::mask::PrivacyMask) -> &mut [u8] {
        self.mask = Some(mask.clone());
        &mut self.rgb
    }
    /// The privacy mask blanked in this frame, if any.
    pub(in crate::pixels) fn mask(&self) -> Option<&super::mask::PrivacyMask> {
        self.mask.as_ref()
    }
    pub(in crate::pixels) fn id(&self) -> FrameId {
        self.id
    }
    /// Hands the pixel buffer to the redactor, which is the only consumer
    /// allowed to take a frame apart.
    pub(in crate::pixels) fn into_parts(self) -> (CameraId, u32, u32, Vec<u8>, UnixMs) {
        (
            self.camera,
            self.width,
            self.height,
            self.rgb,
            self.timestamp_ms,
        )
    }

    /// Runs the face detector on this frame. The scan is the redactor's
    /// proof that faces were searched for in this frame and no other.
    pub fn scan_faces(&self, model: &mut dyn FaceModel) -> FaceScan {
        FaceScan {
            frame: self.id,
            faces: model.find_faces(self),
        }
    }
}

/// A face detector, as the redactor needs it. Implementing this trait is the
/// one way to make a `FaceScan`, so each implementation is where a review
/// must check that faces are really searched for (headcount's is
/// `headcount_vision`'s YuNet detector).
pub trait FaceModel {
    /// The faces in the frame, or why the search failed.
    fn find_faces(&mut self, frame: &Frame) -> Result<Vec<Detection>, String>;
}

/// The outcome of a face search on one frame: the faces, or why the search
/// failed. Made only by `Frame::scan_faces`; a failed scan, or the scan of
/// another frame, makes the redactor obscure the frame whole.
#[derive(Debug)]
pub struct FaceScan {
    frame: FrameId,
    faces: Result<Vec<Detection>, String>,
}

impl FaceScan {
    /// The faces found, or why the search failed.
    pub fn faces(&self) -> Result<&[Detection], &str> {
        match &self.faces {
            Ok(faces) => Ok(faces),
            Err(e) => Err(e),
        }
    }

    /// The faces, when this scan succeeded on `frame`; None otherwise.
    pub(in crate::pixels) fn faces_in(&self, frame: &Frame) -> Option<&[Detection]> {
        match &self.faces {
            Ok(faces) if self.frame == frame.id() => Some(faces),
            _ => None,
        }
    }
}

/// The detectors' findings for one frame.
///
/// `faces` is the frame's `FaceScan`, not a list: a face detector that failed
/// must make the redactor obscure the whole frame, never be mistaken for "no
/// faces", and only a real scan of that frame can stand for one. It is None
/// when the face model was not run on this frame (it will not be
/// published), and then the frame can only be obscured whole or dropped.
#[derive(Debug)]
pub struct Detections {
    pub persons: Vec<Detection>,
    pub faces: Option<FaceScan>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::testing::GivenFaces;

    #[test]
    fn debug_names_camera_size_and_time_but_prints_no_pixels() {
        let frame = Frame::new("lobby".into(), 64, 48, vec![173; 64 * 48 * 3], 1234).unwrap();
        let text = format!("{frame:?}");
        assert_eq!(
            text,
            r#"Frame { camera: "lobby", width: 64, height: 48, timestamp_ms: 1234, .. }"#
        );
        assert!(!text.contains("173"));
    }

    #[test]
    fn a_scan_vouches_for_its_own_frame_only() {
        let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
        let other = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
        let scan = frame.scan_faces(&mut GivenFaces::none());
        assert_eq!(scan.faces_in(&frame), Some(&[][..]));
        assert_eq!(scan.faces_in(&other), None);
        let failed = frame.scan_faces(&mut GivenFaces::failing("model timed out"));
        assert_eq!(failed.faces_in(&frame), None);
        assert_eq!(failed.faces(), Err("model timed out"));
    }
}
