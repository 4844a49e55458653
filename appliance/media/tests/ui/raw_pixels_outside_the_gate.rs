// A raw frame's pixels cannot be read outside headcount-domain's `pixels`
// module: there is nothing to copy, encode or send.
use headcount_domain::pixels::frame::Frame;

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    let _copy = frame.pixels().to_vec();
}
