//! A face model for unit tests (this crate's and, with the `test-support`
//! feature, other crates'): it "finds" the faces it was given.

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
