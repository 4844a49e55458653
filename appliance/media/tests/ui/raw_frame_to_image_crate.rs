// The `image` crate cannot encode a raw frame: a Frame is not a byte slice.
use headcount_domain::pixels::frame::Frame;

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    let _ = image::write_buffer_with_format(
        &mut png,
        &frame,
        2,
        2,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    );
}
