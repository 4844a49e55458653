// A face scan, the redactor's proof that faces were searched for, cannot be
// written by hand: only Frame::scan_faces makes one.
use headcount_domain::pixels::frame::FaceScan;

fn main() {
    let _no_faces = FaceScan {
        faces: Ok(Vec::new()),
    };
}
