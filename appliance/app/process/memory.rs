//! Memory that comes back after a camera reconnects. Every reconnect frees
//! a pipeline's frame-sized buffers; glibc then raises its mmap threshold
//! to their size (its dynamic threshold), so the next ones come from the
//! heap arenas, where freed holes of many sizes stay mapped: RSS grew
//! about a megabyte per reconnect and never came back. A fixed threshold
//! keeps every buffer of 128 KiB or more in its own mapping, returned to
//! the kernel when freed.
//!
//! The price: a buffer of that size allocated and freed on every frame is
//! mapped and faulted in every time (a quarter to most of a stage's CPU).
//! The per-frame paths reuse theirs instead: ONNX Runtime's arena
//! (vision/src/runtime.rs) and decoders without direct rendering
//! (media/src/lib.rs, `tune_decoders`).

/// glibc's default starting threshold; fixing it turns the dynamic one off.
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

pub fn keep_large_buffers_mapped() {
    // SAFETY: mallopt only sets allocator parameters; it is called once, at
    // start, before any other thread exists.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if set != 1 {
        tracing::warn!(
            "could not fix the allocator's mmap threshold; RSS may grow with reconnects"
        );
    }
}
