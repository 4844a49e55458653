//! A face model for unit tests (this crate's and, with the `test-support`
//! feature, other crates'): it "finds" the faces it was given; and a look
//! at a raw frame's bytes, for tests that prove what a stage was given.

use super::frame::{FaceModel, Frame};
use crate::detection::Detection;

pub struct GivenFaces(Result<Vec<Detection>, String>);

impl GivenFaces {
    pub fn found(faces: Vec<Detection>) -> GivenFaces {
        GivenFaces(Ok(faces))
    }

    pub fn none() -> GivenFaces {
        GivenFaces(Ok(Vec::new()))
    }

    pub fn failing(reason: &str) -> GivenFaces {
        GivenFaces(Err(reason.to_string()))
    }
}

impl FaceModel for GivenFaces {
    fn find_faces(&mut self, _: &Frame) -> Result<Vec<Detection>, String> {
        self.0.clone()
    }
}

/// A copy of a raw frame's bytes (tests only: nothing else may read them).
pub fn pixels_of(frame: &Frame) -> Vec<u8> {
    frame.pixels().to_vec()
}
