//! A face model for core's unit tests: it "finds" the faces it was given.

use super::frame::{FaceModel, Frame};
use crate::detection::Detection;

pub(crate) struct GivenFaces(Result<Vec<Detection>, String>);

impl GivenFaces {
    pub(crate) fn found(faces: Vec<Detection>) -> GivenFaces {
        GivenFaces(Ok(faces))
    }

    pub(crate) fn none() -> GivenFaces {
        GivenFaces(Ok(Vec::new()))
    }

    pub(crate) fn failing(reason: &str) -> GivenFaces {
        GivenFaces(Err(reason.to_string()))
    }
}

impl FaceModel for GivenFaces {
    fn find_faces(&mut self, _: &Frame) -> Result<Vec<Detection>, String> {
        self.0.clone()
    }
}
