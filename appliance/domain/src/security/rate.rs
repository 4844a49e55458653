//! A rate limit per API token: a token bucket for each, so that no token,
//! however low its role, can make the appliance work (and grow its audit
//! log) without bound, and no token can spend another's allowance. Keyed by
//! the token's id: only a caller with a valid token reaches it (guessers
//! meet the per-address lockout first).
//!
//! The default, a burst of 120 and 2 requests a second, is far above what
//! a dashboard needs (the embedded page makes a dozen requests when it
//! loads and a few a minute after, plus one live stream) and what a script
//! polling each route every few seconds needs, yet bounds one token to
//! 7200 requests an hour.

use crate::clock::UnixMs;
use std::collections::HashMap;
use std::sync::Mutex;

/// Tokens remembered at most; beyond it, full buckets (which are as good as
/// none) are forgotten first, then the longest unused.
const MAX_TRACKED: usize = 10_000;
const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePolicy {
    /// Requests a token may make at once.
    pub burst: u32,
    /// Requests a second a token may keep up.
    pub per_sec: f64,
}

impl Default for RatePolicy {
    fn default() -> Self {
        RatePolicy {
            burst: 120,
            per_sec: 2.0,
        }
    }
}

/// A request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When the next request would be allowed, in whole seconds.
    pub retry_after_s: u64,
    /// The token's first refusal this minute: worth a security event (one
    /// a minute at most, however hard it pushes).
    pub report: bool,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Requests left, refilled continuously up to the burst.
    left: f64,
    at: UnixMs,
    /// The minute of the last refusal reported.
    reported: Option<i64>,
}

pub struct RateLimit {
    policy: RatePolicy,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimit {
    pub fn new(policy: RatePolicy) -> RateLimit {
        RateLimit {
            policy,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one request of the token `id` at `now`.
    pub fn take(&self, id: &str, now: UnixMs) -> Result<(), Refused> {
        let policy = self.policy;
        let burst = f64::from(policy.burst);
        let refilled = |b: &Bucket| {
            // A clock that went back refills nothing.
            let elapsed_s = (now - b.at).max(0) as f64 / 1000.0;
            (b.left + elapsed_s * policy.per_sec).min(burst)
        };
        // A panic while holding the lock leaves no half-done state.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(id) {
            buckets.retain(|_, b| refilled(b) < burst);
            if buckets.len() >= MAX_TRACKED {
                let idle = buckets
                    .iter()
                    .min_by_key(|(_, b)| b.at)
                    .map(|(id, _)| id.clone());
                if let Some(idle) = idle {
                    buckets.remove(&idle);
                }
            }
        }
        let bucket = buckets.entry(id.to_string()).or_insert(Bucket {
            left: burst,
            at: now,
            reported: None,
        });
        bucket.left = refilled(bucket);
        bucket.at = bucket.at.max(now);
        if bucket.left >= 1.0 {
            bucket.left -= 1.0;
            return Ok(());
        }
        let minute = now.div_euclid(MINUTE_MS);
        let report = bucket.reported != Some(minute);
        bucket.reported = Some(minute);
        let wait_s = (1.0 - bucket.left) / policy.per_sec;
        Err(Refused {
            retry_after_s: (wait_s.ceil() as u64).max(1),
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMs = 1_764_000_000_000;

    fn limit(burst: u32, per_sec: f64) -> RateLimit {
        RateLimit::new(RatePolicy { burst, per_sec })
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = limit(3, 2.0);
        for _ in 0..3 {
            assert_eq!(rate.take("a", T), Ok(()));
        }
        assert_eq!(
            rate.take("a", T),
            Err(Refused {
                retry_after_s: 1,
                report: true
            })
        );
        // Reported once a minute, however many are refused.
        assert!(!rate.take("a", T + 100).unwrap_err().report);
        // Half a second gives one request back at 2 a second.
        assert_eq!(rate.take("a", T + 500), Ok(()));
        assert!(rate.take("a", T + 500).is_err());
        // Refilled up to the burst, never beyond.
        for _ in 0..3 {
            assert_eq!(rate.take("a", T + 3_600_000), Ok(()));
        }
        assert!(rate.take("a", T + 3_600_000).unwrap_err().report);
    }

    #[test]
    fn one_token_cannot_spend_anothers_allowance() {
        let rate = limit(2, 0.1);
        assert!(rate.take("a", T).is_ok() && rate.take("a", T).is_ok());
        let refused = rate.take("a", T).unwrap_err();
        assert_eq!(refused.retry_after_s, 10);
        assert_eq!(rate.take("b", T), Ok(()));
        // A clock that went back refills nothing.
        assert!(rate.take("a", T - 60_000).is_err());
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_go_first() {
        let rate = limit(2, 1.0);
        rate.take("busy", T).unwrap();
        rate.take("busy", T).unwrap();
        for i in 0..MAX_TRACKED + 10 {
            rate.take(&format!("t{i}"), T).unwrap();
        }
        assert!(rate.buckets.lock().unwrap().len() <= MAX_TRACKED);
        // An hour later every bucket is full again: forgetting them loses nothing.
        rate.take("late", T + 3_600_000).unwrap();
        assert_eq!(rate.buckets.lock().unwrap().len(), 1);
    }
}
