// Only a redacted frame can be encoded as an image.
use headcount_domain::pixels::frame::Frame;
use headcount_domain::pixels::redaction::StillFormat;

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    let _png = frame.encode(StillFormat::Png);
}
