//! Security events as RFC 5424 syslog messages, so that a security
//! operations centre collects them beside its physical-security events.
//! Sent as datagrams to a syslog socket (journald's `/dev/log` by default,
//! which files them in the journal) or to a syslog collector over UDP, and
//! always also written to the service log.
//!
//! Tokens are named by their pseudonym (`token:<id>`), never by their
//! holder's name: these events leave the appliance, and its retention.
//!
//! The RFC 5424 line is formatted here rather than by a crate: the syslog
//! crates format a numeric MSGID only, and the format is one `format!` plus
//! the escaping rule of section 6.3.3.

use crate::clock::UnixMs;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Structured-data id: `name@enterprise`. 32473 is the enterprise number
/// RFC 5612 reserves for documentation; a vendor build replaces it with its own.
pub const SD_ID: &str = "headcount@32473";

/// RFC 5424 severities used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Alert = 1,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// Something a security operations centre wants to know about.
#[derive(Debug, Clone, PartialEq)]
pub enum SecurityEvent {
    LoginFailed {
        client: String,
        /// The pseudonym of the issued token the attempt named, if any.
        token: Option<String>,
        reason: &'static str,
        route: String,
    },
    /// A token locked after repeated failures that named it; `client` sent
    /// the failure that locked it.
    Lockout {
        token: String,
        client: String,
        until_ms: UnixMs,
    },
    /// A client slowed after repeated failures: its valid tokens still pass.
    Throttled {
        client: String,
        until_ms: UnixMs,
    },
    /// A login a browser sent from a page of another site, refused.
    CrossSiteRefused {
        client: String,
        /// The `Origin` or `Sec-Fetch-Site` that gave it away.
        evidence: String,
        route: String,
    },
    /// A session, or a live stream opened with a bearer token, ended
    /// because its token was revoked or expired.
    SessionEnded {
        token: String,
        reason: &'static str,
        /// "session" or "live stream".
        ended: &'static str,
    },
    /// `token`, here and below: the token's pseudonym.
    AccessDenied {
        client: String,
        token: String,
        role: &'static str,
        route: String,
    },
    /// A token over its rate limit; once a minute at most per token.
    RateLimited {
        client: String,
        token: String,
        route: String,
    },
    TokenCreated {
        token: String,
        role: &'static str,
    },
    TokenRotated {
        token: String,
        replaced: String,
    },
    TokenRevoked {
        token: String,
    },
    ConfigChanged {
        digest: String,
    },
    ModelVerificationFailed {
        detail: String,
    },
    SecretChanged {
        secret: String,
        action: &'static str,
    },
    ServiceStarted {
        version: &'static str,
    },
}

impl SecurityEvent {
    /// MSGID, severity, structured-data parameters and a human message.
    fn parts(&self) -> (&'static str, Severity, Vec<(&'static str, String)>, String) {
        use SecurityEvent::*;
        match self {
            LoginFailed {
                client,
                token,
                reason,
                route,
            } => (
                "LOGIN_FAILED",
                Severity::Warning,
                [("client", client.clone())]
                    .into_iter()
                    .chain(token.clone().map(|t| ("token", t)))
                    .chain([("reason", reason.to_string()), ("route", route.clone())])
                    .collect(),
                format!("authentication failed from {client} ({reason})"),
            ),
            Lockout {
                token,
                client,
                until_ms,
            } => (
                "LOCKOUT",
                Severity::Alert,
                vec![
                    ("token", token.clone()),
                    ("client", client.clone()),
                    ("until", crate::clock::rfc3339_millis(*until_ms)),
                ],
                format!("token {token} locked after repeated authentication failures"),
            ),
            Throttled { client, until_ms } => (
                "THROTTLED",
                Severity::Alert,
                vec![("client", client.clone()), ("until", crate::clock::rfc3339_millis(*until_ms))],
                format!(
                    "{client} slowed after repeated authentication failures (its failures are no longer reported one by one)"
                ),
            ),
            CrossSiteRefused {
                client,
                evidence,
                route,
            } => (
                "CROSS_SITE_REFUSED",
                Severity::Warning,
                vec![
                    ("client", client.clone()),
                    ("evidence", evidence.clone()),
                    ("route", route.clone()),
                ],
                format!("a page of another site tried {route} from {client}'s browser"),
            ),
            SessionEnded {
                token,
                reason,
                ended,
            } => (
                "SESSION_ENDED",
                Severity::Notice,
                vec![
                    ("token", token.clone()),
                    ("reason", reason.to_string()),
                    ("ended", ended.to_string()),
                ],
                format!("a {ended} of token {token} ended ({reason})"),
            ),
            AccessDenied {
                client,
                token,
                role,
                route,
            } => (
                "ACCESS_DENIED",
                Severity::Warning,
                vec![
                    ("client", client.clone()),
                    ("token", token.clone()),
                    ("role", role.to_string()),
                    ("route", route.clone()),
                ],
                format!("token {token} ({role}) may not use {route}"),
            ),
            RateLimited {
                client,
                token,
                route,
            } => (
                "RATE_LIMITED",
                Severity::Warning,
                vec![
                    ("client", client.clone()),
                    ("token", token.clone()),
                    ("route", route.clone()),
                ],
                format!("token {token} is over its rate limit (reported once a minute)"),
            ),
            TokenCreated { token, role } => (
                "TOKEN_CREATED",
                Severity::Notice,
                vec![("token", token.clone()), ("role", role.to_string())],
                format!("token {token} created with role {role}"),
            ),
            TokenRotated { token, replaced } => (
                "TOKEN_ROTATED",
                Severity::Notice,
                vec![("token", token.clone()), ("replaced", replaced.clone())],
                format!("token {replaced} rotated: {token} replaces it"),
            ),
            TokenRevoked { token } => (
                "TOKEN_REVOKED",
                Severity::Notice,
                vec![("token", token.clone())],
                format!("token {token} revoked"),
            ),
            ConfigChanged { digest } => (
                "CONFIG_CHANGED",
                Severity::Notice,
                vec![("sha256", digest.clone())],
                "the configuration changed since the last start".to_string(),
            ),
            ModelVerificationFailed { detail } => (
                "MODEL_REJECTED",
                Severity::Error,
                vec![("detail", detail.clone())],
                format!("model verification failed: {detail}"),
            ),
            SecretChanged { secret, action } => (
                "SECRET_CHANGED",
                Severity::Notice,
                vec![("secret", secret.clone()), ("action", action.to_string())],
                format!("camera secret {secret} {action}"),
            ),
            ServiceStarted { version } => (
                "STARTED",
                Severity::Info,
                vec![("version", version.to_string())],
                format!("headcount {version} started"),
            ),
        }
    }

    /// The event as one RFC 5424 message (facility authpriv).
    pub fn to_rfc5424(&self, at_ms: UnixMs, hostname: &str, pid: u32) -> String {
        let (msgid, severity, params, message) = self.parts();
        let priority = AUTHPRIV * 8 + severity as u8;
        let sd: String = params
            .iter()
            .map(|(k, v)| format!(" {k}=\"{}\"", escape_param(v)))
            .collect();
        format!(
            "<{priority}>1 {} {} headcount {pid} {msgid} [{SD_ID}{sd}] {message}",
            crate::clock::rfc3339_millis(at_ms),
            header_field(hostname),
        )
    }
}

/// Facility 10: security/authorisation messages (private).
const AUTHPRIV: u8 = 10;

/// RFC 5424 6.3.3: `"`, `\` and `]` are escaped inside a PARAM-VALUE.
fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Header fields are printable US-ASCII without spaces, at most 255 chars.
fn header_field(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

/// Where security events go besides the service log.
#[derive(Debug, Clone, PartialEq)]
pub enum SyslogTarget {
    /// A syslog datagram socket such as journald's `/dev/log`.
    Unix(PathBuf),
    /// A syslog collector (RFC 5426).
    Udp(SocketAddr),
    /// The service log only.
    None,
}

pub struct SecurityLog {
    target: SyslogTarget,
    hostname: String,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Whether a failure to reach syslog was reported already (once is enough).
    send_failed: std::sync::atomic::AtomicBool,
}

impl SecurityLog {
    pub fn new(
        target: SyslogTarget,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> SecurityLog {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        SecurityLog {
            target,
            hostname,
            clock,
            send_failed: Default::default(),
        }
    }

    pub fn emit(&self, event: SecurityEvent) {
        let line = event.to_rfc5424(self.clock.now_ms(), &self.hostname, std::process::id());
        match event.parts().1 {
            Severity::Alert | Severity::Error => tracing::error!(target: "security", "{line}"),
            Severity::Warning => tracing::warn!(target: "security", "{line}"),
            Severity::Notice | Severity::Info => tracing::info!(target: "security", "{line}"),
        }
        let sent = match &self.target {
            // Never block a request on a slow log reader: a datagram the
            // socket cannot take now is dropped (the service log keeps it).
            SyslogTarget::Unix(path) => UnixDatagram::unbound().and_then(|s| {
                s.set_nonblocking(true)?;
                s.send_to(line.as_bytes(), path)
            }),
            SyslogTarget::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                UdpSocket::bind(local).and_then(|s| {
                    s.set_nonblocking(true)?;
                    s.send_to(line.as_bytes(), addr)
                })
            }
            SyslogTarget::None => Ok(0),
        };
        if let Err(e) = sent {
            if self
                .send_failed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            tracing::error!(target: "security", error = %e, target_socket = ?self.target, "cannot send security events to syslog; they go to the service log only");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn events_are_rfc5424_with_escaped_structured_data() {
        let event = SecurityEvent::LoginFailed {
            client: "127.0.0.1".into(),
            token: None,
            reason: "wrong-secret",
            route: "/api/v1/x?a=\"]\\".into(),
        };
        let line = event.to_rfc5424(1_767_225_600_000, "edge box", 42);
        assert_eq!(
            line,
            "<84>1 2026-01-01T00:00:00.000Z edgebox headcount 42 LOGIN_FAILED \
             [headcount@32473 client=\"127.0.0.1\" reason=\"wrong-secret\" route=\"/api/v1/x?a=\\\"\\]\\\\\"] \
             authentication failed from 127.0.0.1 (wrong-secret)"
        );
        let lockout = SecurityEvent::Lockout {
            token: "token:0123456789abcdef".into(),
            client: "::1".into(),
            until_ms: 0,
        };
        assert!(lockout.to_rfc5424(0, "", 1).starts_with(
            "<81>1 1970-01-01T00:00:00.000Z - headcount 1 LOCKOUT \
             [headcount@32473 token=\"token:0123456789abcdef\" client=\"::1\""
        ));
    }

    #[test]
    fn events_reach_a_unix_syslog_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let socket = UnixDatagram::bind(&path).unwrap();
        let log = SecurityLog::new(SyslogTarget::Unix(path), Arc::new(ManualClock::new(1_000)));
        log.emit(SecurityEvent::TokenRevoked {
            token: "token:0123456789abcdef".into(),
        });
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<85>1 1970-01-01T00:00:01.000Z "), "{got}");
        assert!(
            got.contains(" TOKEN_REVOKED [headcount@32473 token=\"token:0123456789abcdef\"] "),
            "{got}"
        );

        // A reader that does not keep up never blocks the sender.
        for _ in 0..1000 {
            log.emit(SecurityEvent::TokenRevoked {
                token: "token:0123456789abcdef".into(),
            });
        }
        assert!(socket.recv(&mut buf).is_ok());
    }
}
