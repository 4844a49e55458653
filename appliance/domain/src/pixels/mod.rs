//! The gate around raw pixels: the only module that reads a `Frame`'s bytes.
//!
//! Everything else sees a raw frame as its camera, size and time. Before
//! anything looks at it, `mask` blanks the camera's static privacy masks
//! (the frame step takes only a `MaskedFrame`). The
//! detectors get a normalised model tensor (`letterbox`), never the RGB
//! bytes; the tamper detector gets statistics (`stats`); the one way to
//! pixels that may leave is `redaction`, which takes proof that the face
//! detector ran on that very frame (`frame::FaceScan`). Code outside this
//! module cannot read, copy or encode a raw frame: `tests/ui` holds the
//! compile-fail proofs.

pub mod frame;
pub mod letterbox;
pub mod mask;
pub mod motion;
pub mod redaction;
pub mod stats;

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
