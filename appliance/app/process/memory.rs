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
//!
//! Each reconnect also starts new GStreamer streaming threads, and glibc
//! gives new threads arenas of their own, up to eight per core, each
//! keeping its freed memory: with the threshold fixed, RSS still grew by
//! about 8 % over 30 reconnects of two cameras before levelling off (176
//! to 190 MB), and 1.4 % with two arenas (173 to 176 MB). Heaptrack over
//! the same 30 reconnects found 4.5 MB never freed at exit, most of it
//! GStreamer's plugin registry loaded once: the growth was the arenas, not
//! a leak. Two arenas are enough for a process whose per-frame paths
//! allocate little (above).

/// glibc's default starting threshold; fixing it turns the dynamic one off.
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Heap arenas all threads share, instead of up to eight per core.
const ARENAS: libc::c_int = 2;

pub fn give_memory_back_after_reconnects() {
    // SAFETY: mallopt only sets allocator parameters; it is called once, at
    // start, before any other thread exists.
    let threshold_set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    // SAFETY: as above.
    let arenas_set = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
    if threshold_set != 1 || arenas_set != 1 {
        tracing::warn!(
            "could not fix the allocator's mmap threshold and arenas; RSS may grow with reconnects"
        );
    }
}
