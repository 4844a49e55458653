// Only a redacted frame can be encoded as an image.
use headcount_core::pixels::frame::Frame;
use headcount_core::pixels::redaction::StillFormat;

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    let _png = frame.encode(StillFormat::Png);
}
