//! Manual correction of a space counted at its entrances (as Axis's
//! `adjustOccupancy`): the API asks, the analytics thread, which owns the
//! counts, checks it between frames, has it recorded in the audit log
//! (who, why, before, after) and only then applies it and answers: a
//! correction that cannot be recorded is not made.

use crate::config::MAX_CAPACITY;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// At most this many corrections wait for the analytics thread; more are
/// refused until it has caught up.
pub const MAX_PENDING: usize = 16;

/// How a space's entrance count is corrected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjustment {
    /// To this many people.
    Set(u32),
    /// By this many (fewer when negative).
    Add(i64),
}

/// The count before and after a correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjusted {
    pub before: u32,
    pub after: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdjustError {
    #[error("no space `{0}`")]
    UnknownSpace(String),
    #[error("space `{0}` has no entrances: its count is the sum of its zones, which nobody can correct by hand")]
    NotCountedAtEntrances(String),
    #[error("the count of `{space}` is {count}; {by:+} would take it below zero")]
    BelowZero { space: String, count: u32, by: i64 },
    #[error("{0} people is more than any space holds (at most {MAX_CAPACITY})")]
    TooMany(i64),
    #[error("the correction cannot be recorded in the audit log ({0}); nothing changed")]
    NotRecorded(String),
}

/// Who asks for a correction, and why: what the audit log keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrector {
    /// The caller's pseudonym.
    pub actor: String,
    pub role: String,
    /// One line.
    pub reason: String,
}

impl Adjustment {
    /// The count after this correction of `count` in `space`.
    pub fn apply(self, space: &str, count: u32) -> Result<u32, AdjustError> {
        let after = match self {
            Adjustment::Set(n) => i64::from(n),
            Adjustment::Add(by) => {
                let after = i64::from(count).saturating_add(by);
                if after < 0 {
                    return Err(AdjustError::BelowZero {
                        space: space.to_string(),
                        count,
                        by,
                    });
                }
                after
            }
        };
        if after > i64::from(MAX_CAPACITY) {
            return Err(AdjustError::TooMany(after));
        }
        Ok(after as u32)
    }
}

/// One correction waiting for the analytics thread.
pub struct Request {
    pub space: String,
    pub adjustment: Adjustment,
    pub by: Corrector,
    reply: SyncSender<Result<Adjusted, AdjustError>>,
}

impl Request {
    pub fn answer(self, result: Result<Adjusted, AdjustError>) {
        // The asker may have given up waiting; the correction stands.
        let _ = self.reply.send(result);
    }
}

/// Corrections asked for by the API, taken by the analytics thread.
#[derive(Clone, Default)]
pub struct Adjustments(Arc<Mutex<Vec<Request>>>);

impl Adjustments {
    /// Queues a correction; the answer comes on the receiver once applied.
    /// None when `MAX_PENDING` already wait.
    pub fn request(
        &self,
        space: String,
        adjustment: Adjustment,
        by: Corrector,
    ) -> Option<Receiver<Result<Adjusted, AdjustError>>> {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING {
            return None;
        }
        let (reply, answer) = sync_channel(1);
        pending.push(Request {
            space,
            adjustment,
            by,
            reply,
        });
        Some(answer)
    }

    /// The corrections asked for since the last call, oldest first.
    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrector() -> Corrector {
        Corrector {
            actor: "tok-1".into(),
            role: "facilities".into(),
            reason: "the test".into(),
        }
    }

    #[test]
    fn set_and_add_stay_within_zero_and_the_largest_capacity() {
        assert_eq!(Adjustment::Set(7).apply("hall", 3), Ok(7));
        assert_eq!(Adjustment::Add(-3).apply("hall", 3), Ok(0));
        assert_eq!(Adjustment::Add(4).apply("hall", 3), Ok(7));
        assert_eq!(
            Adjustment::Add(-4).apply("hall", 3),
            Err(AdjustError::BelowZero {
                space: "hall".into(),
                count: 3,
                by: -4
            })
        );
        assert_eq!(
            Adjustment::Add(i64::MAX).apply("hall", 3),
            Err(AdjustError::TooMany(i64::MAX))
        );
        assert_eq!(
            Adjustment::Set(MAX_CAPACITY + 1).apply("hall", 0),
            Err(AdjustError::TooMany(i64::from(MAX_CAPACITY) + 1))
        );
    }

    #[test]
    fn at_most_max_pending_wait_and_each_gets_its_answer() {
        let adjustments = Adjustments::default();
        let answers: Vec<_> = (0..MAX_PENDING)
            .map(|i| {
                adjustments
                    .request(format!("s{i}"), Adjustment::Set(1), corrector())
                    .unwrap()
            })
            .collect();
        assert!(adjustments
            .request("one more".into(), Adjustment::Set(1), corrector())
            .is_none());
        for (i, request) in adjustments.take().into_iter().enumerate() {
            assert_eq!(request.space, format!("s{i}"));
            request.answer(Ok(Adjusted {
                before: 0,
                after: i as u32,
            }));
        }
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.recv().unwrap().unwrap().after, i as u32);
        }
        assert!(adjustments
            .request("again".into(), Adjustment::Set(1), corrector())
            .is_some());
    }
}
