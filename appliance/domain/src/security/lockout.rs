//! Limits on repeated authentication failures, kept where an attacker cannot
//! spend them for someone else. Guessing a 256-bit secret is hopeless
//! anyway: the limits stop floods of guesses and report them.
//!
//! - Per token id: failures that name an issued token (a wrong secret, a
//!   revoked or expired token) lock that id; while locked, even its right
//!   secret gets 429 at login and as a bearer token. Sessions already open
//!   are checked again without logging in, so they carry on. Only ids of
//!   issued tokens are tracked: made-up ids grow nothing.
//! - Per client (an IPv4 address or an IPv6 /64): past the limit, the
//!   client is slowed, never locked: its failures are answered 429, late,
//!   and not reported one by one, but a valid token from it is admitted, so
//!   that a page or a host behind the same NAT cannot lock others out.
//!
//! Failures are forgotten only when their window ends: a success clears
//! nothing, so valid requests in between do not buy more guesses.

use crate::clock::UnixMs;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

/// Clients (and token ids) remembered at most; beyond it, quiet ones are
/// forgotten first so that a spray of addresses cannot grow memory without
/// bound, and locked ones last.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window_ms` that lock a token id or slow a client.
    pub max_failures: u32,
    pub window_ms: i64,
    /// How long a token id stays locked, and a client slowed.
    pub lock_ms: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 10,
            window_ms: 60_000,
            lock_ms: 300_000,
        }
    }
}

/// What one failure led to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The client was slowed already, for this many more seconds: answer
    /// late with 429, and do not report this failure on its own.
    pub slowed: Option<u64>,
    /// This failure slowed the client, until then.
    pub client_slowed_until: Option<UnixMs>,
    /// This failure locked the token id, until then.
    pub token_locked_until: Option<UnixMs>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: UnixMs,
    failures: u32,
    locked_until: Option<UnixMs>,
}

impl Record {
    fn locked(&self, now: UnixMs) -> Option<UnixMs> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// Failure records by client or by token id, bounded.
struct Tracked<K>(HashMap<K, Record>);

impl<K: Hash + Eq + Clone> Tracked<K> {
    /// Seconds left of `key`'s lock, if it is locked.
    fn locked_for<Q>(&self, key: &Q, now: UnixMs) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let until = self.0.get(key)?.locked(now)?;
        Some(((until - now) as u64).div_ceil(1000))
    }

    /// Counts a failure; `Some(until)` when this one locks `key`.
    fn failure(&mut self, key: K, now: UnixMs, policy: LockoutPolicy) -> Option<UnixMs> {
        if !self.0.contains_key(&key) {
            self.make_room(now, policy);
        }
        let record = self.0.entry(key).or_insert(Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now - record.window_start >= policy.window_ms {
            *record = Record {
                window_start: now,
                failures: 0,
                locked_until: record.locked(now),
            };
        }
        record.failures = record.failures.saturating_add(1);
        if record.failures >= policy.max_failures && record.locked(now).is_none() {
            let until = now + policy.lock_ms;
            record.locked_until = Some(until);
            return Some(until);
        }
        None
    }

    /// Below `MAX_TRACKED` for one more: what is neither locked nor in its
    /// window goes; if all are active, the quietest unlocked one, and a
    /// lock only when every record is locked (the one ending soonest).
    fn make_room(&mut self, now: UnixMs, policy: LockoutPolicy) {
        if self.0.len() < MAX_TRACKED {
            return;
        }
        self.0
            .retain(|_, r| r.locked(now).is_some() || now - r.window_start < policy.window_ms);
        if self.0.len() < MAX_TRACKED {
            return;
        }
        let victim = self
            .0
            .iter()
            .min_by_key(|(_, r)| match r.locked(now) {
                None => (false, r.window_start),
                Some(until) => (true, until),
            })
            .map(|(key, _)| key.clone());
        if let Some(key) = victim {
            self.0.remove(&key);
        }
    }
}

pub struct Lockout {
    policy: LockoutPolicy,
    clients: Mutex<Tracked<IpAddr>>,
    tokens: Mutex<Tracked<String>>,
}

/// A panic while holding a lock leaves no half-done record behind.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            clients: Mutex::new(Tracked(HashMap::new())),
            tokens: Mutex::new(Tracked(HashMap::new())),
        }
    }

    /// `Err(seconds)` while the token id is locked.
    pub fn token_locked(&self, id: &str, now: UnixMs) -> Result<(), u64> {
        match lock(&self.tokens).locked_for(id, now) {
            Some(seconds) => Err(seconds),
            None => Ok(()),
        }
    }

    /// Counts a failure from `client`, against `token_id` too when the
    /// presented token names an issued one.
    pub fn failure(&self, client: IpAddr, token_id: Option<&str>, now: UnixMs) -> Failure {
        let client = key(client);
        let (slowed, client_slowed_until) = {
            let mut clients = lock(&self.clients);
            match clients.locked_for(&client, now) {
                Some(seconds) => (Some(seconds), None),
                None => (None, clients.failure(client, now, self.policy)),
            }
        };
        let token_locked_until =
            token_id.and_then(|id| lock(&self.tokens).failure(id.to_string(), now, self.policy));
        Failure {
            slowed,
            client_slowed_until,
            token_locked_until,
        }
    }

    /// Forgets every failure, so that a test of something else starts clean.
    pub fn forget(&self) {
        lock(&self.clients).0.clear();
        lock(&self.tokens).0.clear();
    }
}

/// What one client is: an IPv4 address (also when mapped into IPv6), or an
/// IPv6 /64, the block one host can pick its addresses from.
pub(crate) fn key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 3,
            window_ms: 10_000,
            lock_ms: 60_000,
        }
    }

    fn slowed(lockout: &Lockout, client: &str, now: UnixMs) -> bool {
        lockout
            .failure(client.parse().unwrap(), None, now)
            .slowed
            .is_some()
    }

    #[test]
    fn failures_against_a_token_lock_that_token_and_slow_the_client() {
        let lockout = Lockout::new(policy());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(lockout.failure(a, Some("victim"), 0), Failure::default());
        assert_eq!(
            lockout.failure(b, Some("victim"), 1_000),
            Failure::default()
        );
        // The third failure against the id locks it, from whichever client.
        let third = lockout.failure(a, Some("victim"), 2_000);
        assert_eq!(third.token_locked_until, Some(62_000));
        assert_eq!((third.slowed, third.client_slowed_until), (None, None));
        assert_eq!(lockout.token_locked("victim", 2_000), Err(60));
        assert_eq!(lockout.token_locked("victim", 61_500), Err(1));
        assert_eq!(lockout.token_locked("victim", 62_000), Ok(()));
        assert_eq!(lockout.token_locked("other", 2_000), Ok(()));

        // A's third failure slows it (and it alone), locking no token.
        let slowing = lockout.failure(a, None, 3_000);
        assert_eq!(slowing.client_slowed_until, Some(63_000));
        let after = lockout.failure(a, Some("other"), 4_000);
        assert_eq!(after.slowed, Some(59));
        assert!(!slowed(&lockout, "127.0.0.3", 4_000));
        // Failures while slowed still count against the token they name.
        assert_eq!(lockout.token_locked("other", 4_000), Ok(()));
        lockout.failure(a, Some("other"), 5_000);
        let locks = lockout.failure(a, Some("other"), 6_000);
        assert_eq!(locks.token_locked_until, Some(66_000));
        assert!(slowed(&lockout, "127.0.0.2", 62_999));
        assert!(!slowed(&lockout, "127.0.0.2", 63_000));
    }

    #[test]
    fn failures_spread_out_do_not_lock() {
        let lockout = Lockout::new(policy());
        let a: IpAddr = "::1".parse().unwrap();
        for t in [0, 11_000, 22_000, 33_000, 44_000] {
            assert_eq!(lockout.failure(a, Some("t"), t), Failure::default());
        }
        assert_eq!(lockout.token_locked("t", 44_000), Ok(()));
    }

    #[test]
    fn a_spray_is_bounded_and_locks_are_forgotten_last() {
        let lockout = Lockout::new(policy());
        let locked: IpAddr = "198.51.100.1".parse().unwrap();
        for t in 0..3 {
            lockout.failure(locked, Some("victim"), t);
        }
        // All within one window, after the lock: none is quiet enough to be
        // pruned, and the oldest records are the locked ones.
        for i in 0..(MAX_TRACKED as u32 + 50) {
            let ip = IpAddr::from(i.to_be_bytes());
            lockout.failure(ip, Some(&format!("id{i}")), 1_000);
        }
        assert_eq!(lock(&lockout.clients).0.len(), MAX_TRACKED);
        assert_eq!(lock(&lockout.tokens).0.len(), MAX_TRACKED);
        assert!(lockout.failure(locked, None, 2_000).slowed.is_some());
        assert_eq!(lockout.token_locked("victim", 2_000), Err(59));
    }

    #[test]
    fn one_ipv6_host_is_one_client_and_mapped_ipv4_is_ipv4() {
        let lockout = Lockout::new(policy());
        for (t, ip) in ["2001:db8::1", "2001:db8::2:3", "2001:db8:0:0:ffff::9"]
            .iter()
            .enumerate()
        {
            lockout.failure(ip.parse().unwrap(), None, t as i64);
        }
        assert!(slowed(&lockout, "2001:db8::77", 10));
        assert!(!slowed(&lockout, "2001:db8:0:1::1", 10));
        for t in 0..3 {
            lockout.failure("::ffff:192.0.2.7".parse().unwrap(), None, t);
        }
        assert!(slowed(&lockout, "192.0.2.7", 10));
        assert!(!slowed(&lockout, "192.0.2.8", 10));
    }
}
