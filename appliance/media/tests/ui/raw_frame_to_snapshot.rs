// The snapshot board (behind the snapshot endpoint) holds redacted frames only.
use headcount_domain::pixels::frame::Frame;
use headcount_domain::snapshot::SnapshotBoard;

fn main() {
    let frame = Frame::new("cam".into(), 2, 2, vec![0; 12], 0).unwrap();
    SnapshotBoard::new(true).publish(frame);
}
