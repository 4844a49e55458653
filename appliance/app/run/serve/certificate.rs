//! The API's TLS certificate: the admin's (`api.tls_cert`, `api.tls_key`),
//! else this device's own in `state_dir/tls`: a P-256 key made at first
//! start, and a self-signed certificate whose common name is the site and
//! whose names are the hosts the API answers to (`AllowedHosts`), valid for
//! 825 days. It is renewed, with the same key (a client that pinned the key
//! keeps trusting it), when the site or the names change or fewer than 30
//! days are left: at start and once a day while running. What it was made
//! for is written as text before its PEM block, so the check needs no
//! certificate parser.

use anyhow::Context;
use headcount_domain::config::{Config, Tls};
use headcount_domain::security::hosts::AllowedHosts;
use headcount_domain::security::{to_hex, write_private_file};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TLS_DIR: &str = "tls";
/// The longest validity browsers accept for a certificate (CA/Browser Forum).
const VALIDITY: Duration = Duration::from_secs(825 * 86_400);
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// Once a day is often enough to renew 30 days ahead.
pub const RENEWAL_CHECK: Duration = Duration::from_secs(86_400);
/// Clocks of clients may be a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);

pub struct Certificate {
    pub cert: PathBuf,
    key: PathBuf,
    /// What this device's own certificate must say; None for the admin's.
    own: Option<Issued>,
}

/// What this device's own certificate was made for.
#[derive(Debug, Clone, PartialEq)]
struct Issued {
    common_name: String,
    names: Vec<String>,
    /// Whole seconds since the epoch.
    not_after: u64,
}

impl Certificate {
    /// The certificate to serve, made or renewed if due; None on plain HTTP.
    pub fn for_config(config: &Config, hosts: &AllowedHosts) -> anyhow::Result<Option<Self>> {
        match &config.api.tls {
            Tls::Off => Ok(None),
            Tls::Supplied { cert, key } => Ok(Some(Certificate {
                cert: cert.clone(),
                key: key.clone(),
                own: None,
            })),
            Tls::SelfSigned => {
                let dir = config.state_dir.join(TLS_DIR);
                let own = Certificate {
                    cert: dir.join("cert.pem"),
                    key: dir.join("key.pem"),
                    own: Some(Issued {
                        // One line of text: it is also the file's header.
                        common_name: config.site.chars().filter(|c| !c.is_control()).collect(),
                        names: hosts.certificate_names(),
                        not_after: 0,
                    }),
                };
                own.renew_if_due(SystemTime::now())?;
                Ok(Some(own))
            }
        }
    }

    /// Makes this device's certificate when it is missing, was made by an
    /// older version or for other names, or expires within 30 days; true
    /// when it made one.
    pub fn renew_if_due(&self, now: SystemTime) -> anyhow::Result<bool> {
        let Some(wanted) = &self.own else {
            return Ok(false);
        };
        let reason = match std::fs::read_to_string(&self.cert) {
            Err(_) => "there was none",
            Ok(text) => match Issued::read(&text) {
                None => "it was made by an older version",
                Some(issued)
                    if (&issued.common_name, &issued.names)
                        != (&wanted.common_name, &wanted.names) =>
                {
                    "the site or the host names changed"
                }
                Some(issued) if seconds(now + RENEW_BEFORE) >= issued.not_after => {
                    "it expires within 30 days"
                }
                Some(_) => return Ok(false),
            },
        };
        self.issue(wanted, now)?;
        tracing::info!(
            certificate = %self.cert.display(),
            reason,
            names = %wanted.names.join(" "),
            "made this device's self-signed TLS certificate (valid 825 days, same key)"
        );
        Ok(true)
    }

    fn issue(&self, wanted: &Issued, now: SystemTime) -> anyhow::Result<()> {
        let key = match std::fs::read_to_string(&self.key) {
            Ok(pem) => rcgen::KeyPair::from_pem(&pem)
                .with_context(|| format!("{} holds no usable key", self.key.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate().context("cannot make the TLS key")?;
                // Key first, certificate last, each atomically: a crash in
                // between leaves a key without a certificate, made next time.
                write_private_file(&self.key, key.serialize_pem().as_bytes())?;
                key
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.key.display())),
        };
        let mut params = rcgen::CertificateParams::new(wanted.names.clone())
            .context("cannot name the TLS certificate")?;
        let mut subject = rcgen::DistinguishedName::new();
        subject.push(rcgen::DnType::CommonName, wanted.common_name.as_str());
        params.distinguished_name = subject;
        let not_after = now + VALIDITY;
        params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
        params.not_after = not_after.into();
        let cert = params
            .self_signed(&key)
            .context("cannot make the TLS certificate")?;
        let issued = Issued {
            not_after: seconds(not_after),
            ..wanted.clone()
        };
        let text = format!("{}{}", issued.header(), cert.pem());
        write_private_file(&self.cert, text.as_bytes())?;
        Ok(())
    }

    /// rustls (ring) with the certificate chain and key, offering HTTP/1.1 only.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let load = || -> anyhow::Result<rustls::ServerConfig> {
            let chain =
                CertificateDer::pem_file_iter(&self.cert)?.collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(&self.key)?;
            Ok(rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(chain, key)?)
        };
        let mut config = load().with_context(|| {
            format!(
                "cannot use the TLS certificate {} and key {}",
                self.cert.display(),
                self.key.display()
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// SHA-256 of the certificate's first DER block, for clients to pin.
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_file(&self.cert)
            .map_err(|e| anyhow::anyhow!("{} holds no certificate: {e}", self.cert.display()))?;
        Ok(to_hex(
            ring::digest::digest(&ring::digest::SHA256, &der).as_ref(),
        ))
    }

    /// Whether this is the device's own certificate, which renews itself.
    pub fn renews(&self) -> bool {
        self.own.is_some()
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Issued {
    const NAMES: &str = "# names: ";
    const COMMON_NAME: &str = "# common-name: ";
    const NOT_AFTER: &str = "# not-after: ";

    /// Text before the PEM block, which PEM readers skip.
    fn header(&self) -> String {
        let not_after = jiff::Timestamp::from_second(self.not_after as i64)
            .map_or_else(|_| self.not_after.to_string(), |t| t.to_string());
        format!(
            "# This device's own certificate, made by headcount; renewed with the same key\n\
             # when the site or host names change or 30 days before it expires.\n\
             {}{}\n{}{}\n{}{not_after}\n",
            Self::COMMON_NAME,
            self.common_name,
            Self::NAMES,
            self.names.join(" "),
            Self::NOT_AFTER,
        )
    }

    fn read(text: &str) -> Option<Issued> {
        let field = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix));
        let not_after: jiff::Timestamp = field(Self::NOT_AFTER)?.trim().parse().ok()?;
        Some(Issued {
            common_name: field(Self::COMMON_NAME)?.to_string(),
            names: field(Self::NAMES)?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            not_after: u64::try_from(not_after.as_second()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(dir: &std::path::Path, site: &str, names: &[&str]) -> Certificate {
        Certificate {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            own: Some(Issued {
                common_name: site.into(),
                names: names.iter().map(|n| n.to_string()).collect(),
                not_after: 0,
            }),
        }
    }

    #[test]
    fn made_once_kept_then_renewed_with_the_same_key() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let cert = own(dir.path(), "hq", &["127.0.0.1", "localhost"]);
        assert!(cert.renew_if_due(now).unwrap());
        let text = std::fs::read_to_string(&cert.cert).unwrap();
        let issued = Issued::read(&text).unwrap();
        assert_eq!(issued.common_name, "hq");
        assert_eq!(issued.not_after, seconds(now + VALIDITY));
        cert.server_config().unwrap();
        let key = std::fs::read(&cert.key).unwrap();
        let first = cert.fingerprint().unwrap();

        // Kept while valid and named alike.
        assert!(!cert.renew_if_due(now + RENEWAL_CHECK).unwrap());
        assert_eq!(cert.fingerprint().unwrap(), first);
        // Renewed 30 days before it expires, and when the names change.
        assert!(cert.renew_if_due(now + VALIDITY - RENEW_BEFORE).unwrap());
        let renamed = own(dir.path(), "hq", &["127.0.0.1", "counter.example.org"]);
        assert!(renamed.renew_if_due(now).unwrap());
        assert_ne!(cert.fingerprint().unwrap(), first);
        assert_eq!(std::fs::read(&cert.key).unwrap(), key, "the key stays");

        // A certificate of an older version (no header) is replaced.
        let pem = std::fs::read_to_string(&cert.cert).unwrap();
        let bare = &pem[pem.find("-----BEGIN").unwrap()..];
        std::fs::write(&cert.cert, bare).unwrap();
        assert!(renamed.renew_if_due(now).unwrap());
    }
}
