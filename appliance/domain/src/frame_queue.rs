//! Frames waiting for inference, shared fairly between cameras.
//!
//! Each camera has one slot: a new frame replaces the one still waiting
//! (which is counted as dropped), so a camera never queues stale frames and
//! memory stays at one frame per camera. Workers take the waiting frame of
//! the camera served longest ago, so when the box cannot keep up every
//! camera slows evenly (each is analysed at about the workers' capacity
//! divided by the cameras) instead of a few fast ones starving the rest.
//! A frame is numbered when it is taken (0, 1, 2, ... per camera, without
//! gaps), which is the order the frame step puts a camera's frames back in.

use crate::pixels::frame::{CameraId, Frame};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct FrameQueue(Arc<Shared>);

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    slots: HashMap<CameraId, Slot>,
    /// Counts takes; a slot's `served` is the count at its last take.
    takes: u64,
    closed: bool,
}

#[derive(Default)]
struct Slot {
    waiting: Option<Frame>,
    /// The number the next frame taken from this camera gets.
    next_number: u64,
    served: u64,
}

/// What became of an offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// Queued in place of the camera's frame still waiting, which is dropped.
    Replaced,
    /// The queue is closed: the appliance is stopping.
    Closed,
}

/// Why no frame was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    Timeout,
    /// Closed and empty: no frame will come.
    Closed,
}

impl FrameQueue {
    pub fn new() -> FrameQueue {
        FrameQueue::default()
    }

    /// Queues `frame` in its camera's slot. Never blocks on inference.
    pub fn offer(&self, frame: Frame) -> Offered {
        let mut state = self.lock();
        if state.closed {
            return Offered::Closed;
        }
        let slot = state.slots.entry(frame.camera().clone()).or_default();
        let offered = match slot.waiting.replace(frame) {
            Some(_) => Offered::Replaced,
            None => Offered::Queued,
        };
        drop(state);
        self.0.ready.notify_one();
        offered
    }

    /// The waiting frame of the camera served longest ago, with its number
    /// among that camera's frames taken; waits up to `timeout` for one.
    pub fn take(&self, timeout: Duration) -> Result<(u64, Frame), TakeError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(taken) = state.take_fairest() {
                return Ok(taken);
            }
            if state.closed {
                return Err(TakeError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TakeError::Timeout);
            }
            state = self
                .0
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Refuses new frames; those waiting are still taken, then `take` says
    /// `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.0.ready.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after every statement.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn take_fairest(&mut self) -> Option<(u64, Frame)> {
        let slot = self
            .slots
            .values_mut()
            .filter(|s| s.waiting.is_some())
            .min_by_key(|s| s.served)?;
        let frame = slot.waiting.take()?;
        self.takes += 1;
        slot.served = self.takes;
        let number = slot.next_number;
        slot.next_number += 1;
        Some((number, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(camera: &str, at: i64) -> Frame {
        Frame::new(camera.into(), 2, 2, vec![0; 12], at).unwrap()
    }

    #[test]
    fn a_new_frame_replaces_the_one_waiting() {
        let q = FrameQueue::new();
        assert_eq!(q.offer(frame("a", 1)), Offered::Queued);
        assert_eq!(q.offer(frame("a", 2)), Offered::Replaced);
        let (number, taken) = q.take(Duration::ZERO).unwrap();
        assert_eq!((number, taken.timestamp_ms()), (0, 2));
        assert_eq!(q.take(Duration::ZERO).unwrap_err(), TakeError::Timeout);
        q.offer(frame("a", 3));
        assert_eq!(q.take(Duration::ZERO).unwrap().0, 1, "numbers have no gaps");
    }

    #[test]
    fn an_overloaded_box_serves_every_camera_in_turn() {
        let q = FrameQueue::new();
        let mut served: HashMap<String, u32> = HashMap::new();
        // Eight cameras deliver a frame each per round; the workers take
        // only three per round: each camera must get 3/8 of its frames.
        for round in 0..80 {
            for c in 0..8 {
                q.offer(frame(&format!("cam{c}"), round));
            }
            for _ in 0..3 {
                let (_, f) = q.take(Duration::ZERO).unwrap();
                *served.entry(f.camera().to_string()).or_default() += 1;
            }
        }
        let (min, max) = (
            served.values().min().copied().unwrap_or(0),
            served.values().max().copied().unwrap_or(0),
        );
        assert_eq!(served.len(), 8);
        assert!(max - min <= 1, "uneven service: {served:?}");
    }

    #[test]
    fn closing_lets_the_waiting_frames_out_then_ends() {
        let q = FrameQueue::new();
        q.offer(frame("a", 1));
        q.close();
        assert_eq!(q.offer(frame("b", 1)), Offered::Closed);
        assert!(q.take(Duration::ZERO).is_ok());
        assert_eq!(
            q.take(Duration::from_secs(5)).unwrap_err(),
            TakeError::Closed
        );
    }

    #[test]
    fn a_waiting_worker_wakes_for_a_frame() {
        let q = FrameQueue::new();
        let offering = q.clone();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            offering.offer(frame("a", 1))
        });
        let (number, _) = q.take(Duration::from_secs(10)).unwrap();
        assert_eq!(number, 0);
        assert_eq!(sender.join().unwrap(), Offered::Queued);
    }
}
