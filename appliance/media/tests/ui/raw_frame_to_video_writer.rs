// The video writer takes redacted frames only.
use headcount_domain::pixels::frame::Frame;
use headcount_media::{FrameRate, VideoWriter};

fn main() {
    let rate = FrameRate { numerator: 25, denominator: 1 };
    let mut writer = VideoWriter::create("out.mp4".as_ref(), 2, 2, rate).unwrap();
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    writer.write(frame).unwrap();
}
