// A RedactedFrame cannot be built outside the redactor, not even from
// pixels at hand.
use headcount_domain::pixels::redaction::RedactedFrame;

fn main() {
    let _forged = RedactedFrame {
        camera: "cam".into(),
        width: 2,
        height: 2,
        rgb: vec![0; 12],
        timestamp_ms: 0,
        stats: Default::default(),
    };
}
