//! Temporary lockout of a client address after repeated authentication
//! failures: guessing a 256-bit secret is hopeless anyway, but a flood of
//! guesses is worth stopping and reporting.

use crate::clock::UnixMs;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Addresses remembered at most; beyond it, quiet ones are forgotten first
/// so that a spray of addresses cannot grow memory without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window_ms` that lock the address.
    pub max_failures: u32,
    pub window_ms: i64,
    /// How long a locked address is refused, even with a valid token.
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

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: UnixMs,
    failures: u32,
    locked_until: Option<UnixMs>,
}

pub struct Lockout {
    policy: LockoutPolicy,
    clients: Mutex<HashMap<IpAddr, Record>>,
}

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(seconds)` while `client` is locked out.
    pub fn check(&self, client: IpAddr, now: UnixMs) -> Result<(), u64> {
        match self
            .clients()
            .get(&key(client))
            .and_then(|r| r.locked_until)
        {
            Some(until) if until > now => Err(((until - now) as u64).div_ceil(1000)),
            _ => Ok(()),
        }
    }

    /// Records a failure; `Some(until)` when this one locks the address.
    pub fn failure(&self, client: IpAddr, now: UnixMs) -> Option<UnixMs> {
        let policy = self.policy;
        let client = key(client);
        let mut clients = self.clients();
        if clients.len() >= MAX_TRACKED && !clients.contains_key(&client) {
            clients.retain(|_, r| {
                r.locked_until.is_some_and(|u| u > now) || now - r.window_start < policy.window_ms
            });
            // Still full of active addresses: forget the quietest one.
            if clients.len() >= MAX_TRACKED {
                let oldest = clients
                    .iter()
                    .min_by_key(|(_, r)| r.window_start)
                    .map(|(ip, _)| *ip);
                if let Some(ip) = oldest {
                    clients.remove(&ip);
                }
            }
        }
        let record = clients.entry(client).or_insert(Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now - record.window_start >= policy.window_ms {
            *record = Record {
                window_start: now,
                failures: 0,
                locked_until: record.locked_until.filter(|u| *u > now),
            };
        }
        record.failures += 1;
        if record.failures >= policy.max_failures && record.locked_until.is_none_or(|u| u <= now) {
            let until = now + policy.lock_ms;
            record.locked_until = Some(until);
            return Some(until);
        }
        None
    }

    /// A successful login forgets the address's failures.
    pub fn success(&self, client: IpAddr) {
        self.clients().remove(&key(client));
    }
}

/// What one client is: an IPv4 address (also when mapped into IPv6), or an
/// IPv6 /64, the block one host can pick its addresses from.
fn key(client: IpAddr) -> IpAddr {
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

    #[test]
    fn repeated_failures_lock_one_address_for_a_while() {
        let lockout = Lockout::new(policy());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(lockout.failure(a, 0), None);
        assert_eq!(lockout.failure(a, 1_000), None);
        assert_eq!(lockout.failure(a, 2_000), Some(62_000));
        assert_eq!(lockout.check(a, 2_000), Err(60));
        assert_eq!(lockout.check(a, 61_500), Err(1));
        assert_eq!(lockout.check(b, 2_000), Ok(()));
        assert_eq!(lockout.check(a, 62_000), Ok(()));
    }

    #[test]
    fn failures_spread_out_or_followed_by_success_do_not_lock() {
        let lockout = Lockout::new(policy());
        let a: IpAddr = "::1".parse().unwrap();
        for t in [0, 11_000, 22_000, 33_000, 44_000] {
            assert_eq!(lockout.failure(a, t), None);
        }
        lockout.failure(a, 45_000);
        lockout.success(a);
        assert_eq!(lockout.failure(a, 46_000), None);
        assert_eq!(lockout.check(a, 46_000), Ok(()));
    }

    #[test]
    fn a_spray_of_addresses_is_bounded() {
        let lockout = Lockout::new(policy());
        // All within one window: none is quiet enough to be pruned.
        for i in 0..(MAX_TRACKED as u32 + 50) {
            let ip = IpAddr::from(i.to_be_bytes());
            lockout.failure(ip, 1_000);
        }
        assert_eq!(lockout.clients().len(), MAX_TRACKED);
    }

    #[test]
    fn one_ipv6_host_is_one_client_and_mapped_ipv4_is_ipv4() {
        let lockout = Lockout::new(policy());
        for (t, ip) in ["2001:db8::1", "2001:db8::2:3", "2001:db8:0:0:ffff::9"]
            .iter()
            .enumerate()
        {
            lockout.failure(ip.parse().unwrap(), t as i64);
        }
        assert!(lockout.check("2001:db8::77".parse().unwrap(), 10).is_err());
        assert!(lockout
            .check("2001:db8:0:1::1".parse().unwrap(), 10)
            .is_ok());
        for t in 0..3 {
            lockout.failure("::ffff:192.0.2.7".parse().unwrap(), t);
        }
        assert!(lockout.check("192.0.2.7".parse().unwrap(), 10).is_err());
        assert!(lockout.check("192.0.2.8".parse().unwrap(), 10).is_ok());
    }
}
