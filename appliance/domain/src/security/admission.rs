//! Which connections the API takes. A general pool is capped in total and
//! per client (an IPv4 address or an IPv6 /64, as for the lockout), so that
//! idle or slow clients cannot use up the process's file descriptors. A
//! small reserve beyond it takes only the admin's addresses (the box itself
//! always), and only once the pool or their own share of it is full: no
//! client elsewhere can touch the reserve, so a full pool never locks the
//! admin out. A connection is counted from its accept until it closes; the
//! `Permit` that `admit` hands out gives its place back when dropped.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Descriptors one connection may hold: its socket, and the read-only
/// SQLite connection (database, WAL and shared-memory index) a request on
/// it may open.
pub const DESCRIPTORS_PER_CONNECTION: u64 = 4;
/// Descriptors besides connections and cameras: the writer's and the token
/// store's databases, the log, the models and libraries, ONNX Runtime's and
/// the runtime's own. Generous: about 60 are open after a start.
pub const DESCRIPTORS_BASE: u64 = 256;
/// Descriptors per camera: RTSP and RTP sockets, GStreamer's pipes and
/// wake-up descriptors. Generous: about 10 are open per camera.
pub const DESCRIPTORS_PER_CAMERA: u64 = 32;

/// A network given as an address and a prefix length, such as
/// `192.168.10.0/24`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    network: IpAddr,
    prefix: u8,
}

impl AddressBlock {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for AddressBlock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "`{text}` is not an address or a network such as 192.168.10.5 or 192.168.10.0/24"
            )
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| wrong())?;
        let longest = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => longest,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= longest => p,
                _ => {
                    return Err(format!(
                        "`{text}`: the prefix length must be 0 to {longest}"
                    ))
                }
            },
        };
        Ok(AddressBlock { network, prefix })
    }
}

impl fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// How long each phase of a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From the accept to the client's first byte.
    pub first_byte: Duration,
    /// The TLS handshake, from the first byte.
    pub tls_handshake: Duration,
    /// A request head; for a kept-alive connection, counted from the end of
    /// the previous answer, so it is also the longest idle wait.
    pub header: Duration,
    /// A request body, counted from the end of its head.
    pub body: Duration,
    /// An answer that cannot be sent on (the client stopped reading).
    pub send: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            first_byte: Duration::from_secs(5),
            tls_handshake: Duration::from_secs(10),
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
            send: Duration::from_secs(30),
        }
    }
}

/// `[api.connections]`: the caps, the admin's reserve and the deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// Connections open at once in the general pool, from all clients.
    pub max: u32,
    /// Of which from one client.
    pub per_client: u32,
    /// Connections beyond the pool for the admin's addresses only.
    pub admin_reserve: u32,
    /// Besides 127.0.0.1 and ::1, the addresses that may use the reserve.
    pub admin_addresses: Vec<AddressBlock>,
    pub deadlines: Deadlines,
}

impl Default for ConnectionPolicy {
    fn default() -> Self {
        ConnectionPolicy {
            max: 256,
            per_client: 32,
            admin_reserve: 8,
            admin_addresses: Vec::new(),
            deadlines: Deadlines::default(),
        }
    }
}

impl ConnectionPolicy {
    /// File descriptors the process may need at once with these caps and
    /// this many cameras.
    pub fn descriptors_needed(&self, cameras: usize) -> u64 {
        (u64::from(self.max) + u64::from(self.admin_reserve)) * DESCRIPTORS_PER_CONNECTION
            + DESCRIPTORS_BASE
            + cameras as u64 * DESCRIPTORS_PER_CAMERA
    }

    /// Whether `address` may use the admin's reserve.
    pub fn is_admin_address(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        address == IpAddr::V4(Ipv4Addr::LOCALHOST)
            || address == IpAddr::V6(Ipv6Addr::LOCALHOST)
            || self.admin_addresses.iter().any(|b| b.contains(address))
    }
}

/// Why a connection was turned away at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The general pool is full (and the reserve, for an admin address).
    Full,
    /// This client holds its whole share of the pool.
    ClientFull,
}

#[derive(Debug, Default)]
struct Counts {
    pool: u32,
    reserve: u32,
    per_client: HashMap<IpAddr, u32>,
}

/// The connection caps, shared by the accept loop and every connection.
#[derive(Clone)]
pub struct Admission {
    policy: Arc<ConnectionPolicy>,
    counts: Arc<Mutex<Counts>>,
}

/// A place in the pool or the reserve, given back when dropped.
pub struct Permit {
    counts: Arc<Mutex<Counts>>,
    /// The client's key in the pool, or None for the reserve.
    pooled: Option<IpAddr>,
}

impl Permit {
    /// Whether this connection took a place of the admin's reserve.
    pub fn reserved(&self) -> bool {
        self.pooled.is_none()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        match self.pooled {
            None => counts.reserve = counts.reserve.saturating_sub(1),
            Some(key) => {
                counts.pool = counts.pool.saturating_sub(1);
                if let Some(n) = counts.per_client.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        counts.per_client.remove(&key);
                    }
                }
            }
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admission {
    pub fn new(policy: ConnectionPolicy) -> Admission {
        Admission {
            policy: Arc::new(policy),
            counts: Arc::default(),
        }
    }

    /// A place for a connection from `peer`: in the pool while it and the
    /// client's share have room, else in the reserve for an admin address.
    /// Memory is bounded: one entry per client with a connection open.
    pub fn admit(&self, peer: IpAddr) -> Result<Permit, Refused> {
        let key = super::lockout::key(peer);
        let mut counts = lock(&self.counts);
        let held = counts.per_client.get(&key).copied().unwrap_or(0);
        let refusal = if counts.pool >= self.policy.max {
            Refused::Full
        } else if held >= self.policy.per_client {
            Refused::ClientFull
        } else {
            counts.pool += 1;
            counts.per_client.insert(key, held + 1);
            return Ok(self.permit(Some(key)));
        };
        if counts.reserve < self.policy.admin_reserve && self.policy.is_admin_address(peer) {
            counts.reserve += 1;
            return Ok(self.permit(None));
        }
        Err(refusal)
    }

    fn permit(&self, pooled: Option<IpAddr>) -> Permit {
        Permit {
            counts: self.counts.clone(),
            pooled,
        }
    }

    /// Connections open now, pool and reserve.
    pub fn open(&self) -> u32 {
        let counts = lock(&self.counts);
        counts.pool + counts.reserve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: u32, per_client: u32, admin_reserve: u32) -> ConnectionPolicy {
        ConnectionPolicy {
            max,
            per_client,
            admin_reserve,
            admin_addresses: vec!["192.168.10.0/28".parse().unwrap()],
            deadlines: Deadlines::default(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_client_gets_its_share_and_no_more() {
        let admission = Admission::new(policy(10, 2, 0));
        let a: Vec<_> = (0..2)
            .map(|_| admission.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refused::ClientFull)
        );
        // Another address is still served, and a closed connection frees its place.
        let b = admission.admit(ip("10.0.0.2")).unwrap();
        drop(a);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
        assert!(!b.reserved());
    }

    #[test]
    fn one_ipv6_host_is_one_client_and_mapped_ipv4_is_ipv4() {
        let admission = Admission::new(policy(10, 1, 0));
        let _one = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refused::ClientFull)
        );
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("::ffff:10.0.0.1")).err(),
            Some(Refused::ClientFull)
        );
    }

    #[test]
    fn a_full_pool_leaves_the_reserve_to_admin_addresses_only() {
        let admission = Admission::new(policy(3, 3, 2));
        let _pool: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| admission.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(admission.admit(ip("10.0.0.4")).err(), Some(Refused::Full));
        // The box itself and the configured network use the reserve.
        let local = admission.admit(ip("127.0.0.1")).unwrap();
        assert!(local.reserved());
        let configured = admission.admit(ip("192.168.10.14")).unwrap();
        assert!(configured.reserved());
        assert_eq!(admission.admit(ip("::1")).err(), Some(Refused::Full));
        // Other loopback addresses and neighbours of the network do not.
        drop(local);
        assert_eq!(admission.admit(ip("127.0.0.2")).err(), Some(Refused::Full));
        assert_eq!(
            admission.admit(ip("192.168.10.16")).err(),
            Some(Refused::Full)
        );
        let local = admission.admit(ip("::1")).unwrap();
        assert!(local.reserved());
        assert_eq!(admission.open(), 5);
    }

    #[test]
    fn an_admin_address_past_its_own_share_uses_the_reserve() {
        let admission = Admission::new(policy(10, 1, 1));
        let _first = admission.admit(ip("127.0.0.1")).unwrap();
        assert!(admission.admit(ip("127.0.0.1")).unwrap().reserved());
        let _other = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refused::ClientFull)
        );
    }

    #[test]
    fn places_come_back_and_memory_goes_with_the_last_connection() {
        let admission = Admission::new(policy(1000, 1, 0));
        let permits: Vec<_> = (0..1000u32)
            .map(|i| admission.admit(IpAddr::V4(i.into())).unwrap())
            .collect();
        assert_eq!(admission.open(), 1000);
        drop(permits);
        assert_eq!(admission.open(), 0);
        assert!(lock(&admission.counts).per_client.is_empty());
    }

    #[test]
    fn address_blocks_parse_and_match() {
        let block: AddressBlock = "192.168.10.0/24".parse().unwrap();
        assert!(block.contains(ip("192.168.10.77")));
        assert!(block.contains(ip("::ffff:192.168.10.77")));
        assert!(!block.contains(ip("192.168.11.1")));
        let v6: AddressBlock = "fd00:1::/48".parse().unwrap();
        assert!(v6.contains(ip("fd00:1:0:5::1")) && !v6.contains(ip("fd00:2::1")));
        assert!("0.0.0.0/0"
            .parse::<AddressBlock>()
            .unwrap()
            .contains(ip("8.8.8.8")));
        let one: AddressBlock = "10.0.0.1".parse().unwrap();
        assert!(one.contains(ip("10.0.0.1")) && !one.contains(ip("10.0.0.0")));
        assert_eq!(one.to_string(), "10.0.0.1/32");
        for bad in ["10.0.0.0/33", "example.org", "10.0.0.0/x", "::/129", ""] {
            assert!(bad.parse::<AddressBlock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_descriptor_budget_covers_every_connection_and_camera() {
        let default = ConnectionPolicy::default();
        assert_eq!(default.descriptors_needed(0), 264 * 4 + 256);
        assert_eq!(
            default.descriptors_needed(3) - default.descriptors_needed(0),
            96
        );
    }
}
