// A RedactedFrame cannot be built outside the redactor, not even from a
// frame's pixels.
use headcount_core::frame::Frame;
use headcount_core::redaction::RedactedFrame;

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    let _forged = RedactedFrame {
        camera: frame.camera().clone(),
        width: 2,
        height: 2,
        rgb: frame.pixels().to_vec(),
        timestamp_ms: 0,
        stats: Default::default(),
    };
}
