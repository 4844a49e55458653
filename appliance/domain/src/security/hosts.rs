//! The names the API answers to. A page of another site can point its own
//! host name at the appliance's address (DNS rebinding) and then talk to it
//! as its own origin, with the browser sending that name in `Host`; so a
//! request must name the appliance: an address it listens on, a loopback
//! name, its host name, or a name the admin lists in `api.hosts`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Lower case, without a trailing dot.
    names: BTreeSet<String>,
    addresses: BTreeSet<IpAddr>,
}

impl AllowedHosts {
    /// The bind address (when it is one address), loopback, the machine's
    /// `hostname` (and `hostname.local`) and the configured names and addresses.
    pub fn new(bind: SocketAddr, configured: &[String], hostname: Option<&str>) -> AllowedHosts {
        let mut names = BTreeSet::from(["localhost".to_string()]);
        let mut addresses = BTreeSet::new();
        if !bind.ip().is_unspecified() {
            addresses.insert(bind.ip().to_canonical());
        }
        if let Some(host) = hostname.map(normalise).filter(|h| !h.is_empty()) {
            names.insert(format!("{host}.local"));
            names.insert(host);
        }
        for entry in configured {
            let entry = normalise(entry);
            match entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(address) => {
                    addresses.insert(address.to_canonical());
                }
                Err(_) => {
                    names.insert(entry);
                }
            }
        }
        AllowedHosts { names, addresses }
    }

    /// Whether a request whose `Host` is `host` (port included or not), and
    /// which arrived on the local address `local`, names this appliance.
    pub fn allows(&self, host: &str, local: IpAddr) -> bool {
        let Some(name) = without_port(host) else {
            return false;
        };
        match name.trim_matches(['[', ']']).parse::<IpAddr>() {
            // An address cannot be rebound; it must still be one of ours.
            Ok(address) => {
                let address = address.to_canonical();
                address.is_loopback()
                    || address == local.to_canonical()
                    || self.addresses.contains(&address)
            }
            Err(_) => {
                let name = normalise(name);
                name.ends_with(".localhost") || self.names.contains(&name)
            }
        }
    }

    /// The names and addresses a certificate for this appliance should carry.
    pub fn certificate_names(&self) -> Vec<String> {
        let loopback = ["127.0.0.1".to_string(), "::1".to_string()];
        let addresses = self.addresses.iter().map(IpAddr::to_string);
        let all: BTreeSet<String> = self
            .names
            .iter()
            .cloned()
            .chain(loopback)
            .chain(addresses)
            .collect();
        all.into_iter().collect()
    }
}

fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host of a `Host` value: `name`, `name:port`, `[v6]` or `[v6]:port`.
fn without_port(host: &str) -> Option<&str> {
    let host = host.trim();
    if host.is_empty() {
        return None;
    }
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        return (rest.is_empty() || port(rest.strip_prefix(':')?)).then(|| &host[..=end]);
    }
    match host.rsplit_once(':') {
        // More than one colon and no brackets: not a valid Host.
        Some((name, _)) if name.contains(':') => None,
        Some((name, p)) => port(p).then_some(name),
        None => Some(host),
    }
}

fn port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bind: &str, configured: &[&str]) -> AllowedHosts {
        let configured: Vec<String> = configured.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(bind.parse().unwrap(), &configured, Some("Counter-1"))
    }

    fn local(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_appliances_own_names_and_addresses_are_allowed() {
        let h = hosts("192.168.10.5:8443", &["counter.example.org", "10.1.2.3"]);
        let lan = local("192.168.10.5");
        for ok in [
            "192.168.10.5",
            "192.168.10.5:8443",
            "localhost:8443",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.1:8443",
            "127.0.0.2",
            "[::1]:8443",
            "counter-1",
            "counter-1.local:8443",
            "Counter.Example.Org.",
            "10.1.2.3:1",
        ] {
            assert!(h.allows(ok, lan), "{ok}");
        }
    }

    #[test]
    fn a_rebound_name_or_another_address_is_refused() {
        let h = hosts("192.168.10.5:8443", &["counter.example.org"]);
        let lan = local("192.168.10.5");
        for bad in [
            "attacker.example",
            "attacker.example:8443",
            "counter.example.org.attacker.example",
            "localhost.attacker.example",
            "192.168.10.6",
            "[::1",
            "::1",
            "localhost:http",
            "localhost:",
            "",
            "counter-1.localdomain",
        ] {
            assert!(!h.allows(bad, lan), "{bad}");
        }
    }

    #[test]
    fn on_every_interface_the_address_connected_to_is_allowed() {
        let h = hosts("0.0.0.0:8443", &[]);
        assert!(h.allows("192.168.10.5:8443", local("192.168.10.5")));
        assert!(h.allows("192.168.10.5", local("::ffff:192.168.10.5")));
        assert!(!h.allows("192.168.10.5:8443", local("10.0.0.9")));
        assert!(!h.allows("0.0.0.0", local("10.0.0.9")));
        let v6 = hosts("[::]:8443", &[]);
        assert!(v6.allows("[fd00::5]:8443", local("fd00::5")));
    }

    #[test]
    fn the_certificate_names_the_same_hosts() {
        let names = hosts("192.168.10.5:8443", &["counter.example.org"]).certificate_names();
        for name in [
            "localhost",
            "counter-1",
            "counter-1.local",
            "counter.example.org",
            "127.0.0.1",
            "::1",
            "192.168.10.5",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
        }
    }
}
