//! The privacy gate holds at compile time: a raw `Frame`'s pixels cannot be
//! read outside headcount-domain's `pixels` module, the frame cannot be given
//! to the video writer, the snapshot board or an image encoder, a
//! `RedactedFrame` cannot be made anywhere but in the redactor, whose proof
//! of a face search (`FaceScan`) cannot be made by hand; and the tracker
//! (track ids, positions) cannot be reached outside analytics. Each case in
//! `tests/ui` must fail to compile with the error recorded beside it.

#[test]
fn unredacted_frames_cannot_reach_an_exporter() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
