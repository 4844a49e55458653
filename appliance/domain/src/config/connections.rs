//! `[api.connections]` (caps on connections, the admin's reserve, the
//! deadline of each phase of a connection) and `api.hosts` (names the API
//! answers to besides its own). See `security::admission` and
//! `security::hosts`.

use super::Validator;
use crate::security::admission::{AddressBlock, ConnectionPolicy, Deadlines};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnections {
    max: Option<u32>,
    per_client: Option<u32>,
    admin_reserve: Option<u32>,
    admin_addresses: Option<Vec<String>>,
    first_byte_secs: Option<u64>,
    tls_handshake_secs: Option<u64>,
    header_secs: Option<u64>,
    body_secs: Option<u64>,
    send_secs: Option<u64>,
}

/// Most connections the caps may allow: each costs file descriptors.
const MOST_CONNECTIONS: u32 = 65_536;
const MOST_RESERVE: u32 = 1024;

impl Validator<'_> {
    pub(super) fn connections(&mut self, raw: RawConnections) -> ConnectionPolicy {
        let defaults = ConnectionPolicy::default();
        let mut count =
            |key: &str, value: Option<u32>, least: u32, most: u32, default: u32| match value {
                Some(n) if !(least..=most).contains(&n) => {
                    self.error(
                        format!("api.connections.{key}"),
                        format!("must be between {least} and {most}"),
                    );
                    default
                }
                Some(n) => n,
                None => default,
            };
        let max = count("max", raw.max, 1, MOST_CONNECTIONS, defaults.max);
        let per_client = count(
            "per_client",
            raw.per_client,
            1,
            MOST_CONNECTIONS,
            defaults.per_client.min(max),
        );
        let admin_reserve = count(
            "admin_reserve",
            raw.admin_reserve,
            0,
            MOST_RESERVE,
            defaults.admin_reserve,
        );
        if per_client > max {
            self.error(
                "api.connections.per_client",
                format!("{per_client} is more than api.connections.max ({max})"),
            );
        }
        let mut admin_addresses = Vec::new();
        for (i, text) in raw.admin_addresses.unwrap_or_default().iter().enumerate() {
            match text.parse::<AddressBlock>() {
                Ok(block) => admin_addresses.push(block),
                Err(e) => self.error(format!("api.connections.admin_addresses[{i}]"), e),
            }
        }
        let d = Deadlines::default();
        let mut secs = |key: &str, value: Option<u64>, most: u64, default: Duration| match value {
            Some(s) if !(1..=most).contains(&s) => {
                self.error(
                    format!("api.connections.{key}"),
                    format!("must be between 1 and {most} seconds"),
                );
                default
            }
            Some(s) => Duration::from_secs(s),
            None => default,
        };
        let deadlines = Deadlines {
            first_byte: secs("first_byte_secs", raw.first_byte_secs, 60, d.first_byte),
            tls_handshake: secs(
                "tls_handshake_secs",
                raw.tls_handshake_secs,
                60,
                d.tls_handshake,
            ),
            header: secs("header_secs", raw.header_secs, 300, d.header),
            body: secs("body_secs", raw.body_secs, 300, d.body),
            send: secs("send_secs", raw.send_secs, 600, d.send),
        };
        ConnectionPolicy {
            max,
            per_client,
            admin_reserve,
            admin_addresses,
            deadlines,
        }
    }

    /// Host names (or addresses) the API answers to besides its own.
    pub(super) fn hosts(&mut self, raw: Option<Vec<String>>) -> Vec<String> {
        let mut hosts = Vec::new();
        for (i, entry) in raw.unwrap_or_default().into_iter().enumerate() {
            let name = entry.trim().trim_end_matches('.').to_ascii_lowercase();
            if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() || is_host_name(&name) {
                hosts.push(name);
            } else {
                self.error(
                    format!("api.hosts[{i}]"),
                    format!("`{entry}` is not a host name or an address (without a port), such as counter.example.org"),
                );
            }
        }
        hosts
    }
}

/// Letters, digits and hyphens in dot-separated labels of 1 to 63
/// characters (no hyphen at either end), at most 253 in all.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, SecretSource};
    use std::path::Path;
    use std::time::Duration;

    struct NoSecrets;

    impl SecretSource for NoSecrets {
        fn env(&self, _: &str) -> Option<String> {
            None
        }
        fn file(&self, _: &Path) -> Option<String> {
            None
        }
    }

    fn parse(api: &str) -> Result<Config, Vec<String>> {
        let text = format!(
            "[appliance]\nsite = \"hq\"\n[api]\n{api}\n[cameras.c]\nurl = \"testsrc:ball\"\n"
        );
        Config::parse(&text, Path::new("/etc/headcount"), &NoSecrets)
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_hold_and_every_key_is_read() {
        let api = parse("").unwrap().api;
        assert_eq!(api.connections, Default::default());
        assert!(api.hosts.is_empty());
        let api = parse(
            "hosts = [\"Counter.Example.org.\", \"192.168.10.5\", \"[fd00::5]\"]\n\
             [api.connections]\nmax = 100\nper_client = 10\nadmin_reserve = 0\n\
             admin_addresses = [\"192.168.10.0/24\", \"fd00::7\"]\nfirst_byte_secs = 1\n\
             tls_handshake_secs = 2\nheader_secs = 3\nbody_secs = 4\nsend_secs = 5",
        )
        .unwrap()
        .api;
        assert_eq!(
            api.hosts,
            ["counter.example.org", "192.168.10.5", "[fd00::5]"]
        );
        let c = api.connections;
        assert_eq!((c.max, c.per_client, c.admin_reserve), (100, 10, 0));
        assert!(c.is_admin_address("192.168.10.9".parse().unwrap()));
        assert!(c.is_admin_address("fd00::7".parse().unwrap()));
        assert!(!c.is_admin_address("192.168.11.9".parse().unwrap()));
        let d = c.deadlines;
        assert_eq!(
            [d.first_byte, d.tls_handshake, d.header, d.body, d.send],
            [1, 2, 3, 4, 5].map(Duration::from_secs)
        );
        // An unset share never exceeds a smaller pool.
        assert_eq!(
            parse("[api.connections]\nmax = 4")
                .unwrap()
                .api
                .connections
                .per_client,
            4
        );
    }

    #[test]
    fn every_bad_setting_is_reported_at_once_with_its_key() {
        let errors = parse(
            "hosts = [\"ok.example\", \"evil.example:8080\", \"-x.example\", \"\"]\n\
             [api.connections]\nmax = 0\nper_client = 70000\nadmin_reserve = 5000\n\
             admin_addresses = [\"10.0.0.0/33\", \"office\"]\nfirst_byte_secs = 0\n\
             tls_handshake_secs = 61\nheader_secs = 301\nbody_secs = 0\nsend_secs = 601",
        )
        .unwrap_err();
        for expected in [
            "api.hosts[1]: `evil.example:8080` is not a host name or an address",
            "api.hosts[2]:",
            "api.hosts[3]:",
            "api.connections.max: must be between 1 and 65536",
            "api.connections.per_client: must be between 1 and 65536",
            "api.connections.admin_reserve: must be between 0 and 1024",
            "api.connections.admin_addresses[0]: `10.0.0.0/33`: the prefix length must be 0 to 32",
            "api.connections.admin_addresses[1]: `office` is not an address or a network",
            "api.connections.first_byte_secs: must be between 1 and 60 seconds",
            "api.connections.tls_handshake_secs: must be between 1 and 60 seconds",
            "api.connections.header_secs: must be between 1 and 300 seconds",
            "api.connections.body_secs: must be between 1 and 300 seconds",
            "api.connections.send_secs: must be between 1 and 600 seconds",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(expected)),
                "{expected}: {errors:#?}"
            );
        }
        assert!(!errors.iter().any(|e| e.starts_with("api.hosts[0]")));
        let errors = parse("[api.connections]\nmax = 8\nper_client = 9\nidle = 3").unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("idle")),
            "an unknown key is named: {errors:#?}"
        );
        let errors = parse("[api.connections]\nmax = 8\nper_client = 9").unwrap_err();
        assert_eq!(
            errors,
            ["api.connections.per_client: 9 is more than api.connections.max (8)"]
        );
    }
}
