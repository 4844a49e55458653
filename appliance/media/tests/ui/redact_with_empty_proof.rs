// Redaction takes the frame's face scan: an empty list of faces made by hand
// is no proof that the face detector ran.
use headcount_domain::pixels::frame::Detections;
use headcount_domain::pixels::frame::Frame;
use headcount_domain::pixels::redaction::{RedactionPolicy, Redactor, RegionHold};

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    let detections = Detections {
        persons: Vec::new(),
        faces: Ok(Vec::new()),
    };
    let redactor = Redactor::new(RedactionPolicy::default());
    let _unredacted = redactor.redact(
        frame,
        &detections.faces,
        &detections.persons,
        &mut RegionHold::default(),
    );
}
