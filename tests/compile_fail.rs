//! The privacy gate holds at compile time: a raw `Frame` cannot be given to
//! the video writer, the snapshot board or an image encoder, and a
//! `RedactedFrame` cannot be made anywhere but in the redactor; and the
//! tracker (track ids, positions) cannot be reached outside analytics. Each
//! case in `tests/ui` must fail to compile with the error recorded beside it.

#[test]
fn unredacted_frames_cannot_reach_an_exporter() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
