//! API tokens: `hc_<id>_<secret>`. The id finds the row; the secret half is
//! only ever stored as HMAC-SHA256 under the device's token key (a file in the
//! state directory, 0600), and checked with `ring::hmac::verify`, which
//! compares in constant time. A stolen database alone opens nothing.
//!
//! The holder's name stays in the token table: what a caller does is recorded
//! (audit log, security events) under the token's pseudonym, `token:<id>`.
//!
//! What the API keeps to check a token again later (a dashboard session, a
//! live stream) is a `Grant`: the token's id and its stored digest, never
//! the secret.

use super::{from_hex, to_hex, SecurityError};
use crate::clock::UnixMs;
use std::fmt;
use std::path::{Path, PathBuf};

pub const TOKEN_KEY_FILE: &str = "token.key";
/// Written at first start, so the admin can read the first token once.
pub const INITIAL_ADMIN_FILE: &str = "initial-admin-token";
pub const PREFIX: &str = "hc_";
pub const ID_BYTES: usize = 8;
pub const SECRET_BYTES: usize = 32;

/// What a caller may do. Each API route names the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Configuration, tokens, calibration snapshots; everything else too.
    Admin,
    /// Live occupancy, flow, dwell, health: running the building.
    Facilities,
    /// Aggregates only, in buckets of 15 minutes or more.
    Planner,
    /// Retention, audit, processing record, access log.
    Dpo,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Facilities, Role::Planner, Role::Dpo];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Facilities => "facilities",
            Role::Planner => "planner",
            Role::Dpo => "dpo",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role; use admin, facilities, planner or dpo"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller, as the API handlers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The token's public id.
    pub id: String,
    /// Its holder's name: for the caller itself, never for a record.
    pub name: String,
    pub role: Role,
    pub expires_ms: Option<UnixMs>,
}

impl Caller {
    /// How the audit log and the security events name the caller.
    pub fn pseudonym(&self) -> String {
        pseudonym(&self.id)
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// The public id, which the audit log's pseudonym `token:<id>` names.
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
    pub revoked_ms: Option<UnixMs>,
}

/// A token just made: the only moment its secret exists outside its holder.
pub struct IssuedToken {
    pub info: TokenInfo,
    /// The id of the token this one replaced (revoked), if any.
    pub replaced: Option<String>,
    secret: String,
}

impl IssuedToken {
    /// A token just minted: `secret` is the whole `hc_<id>_<secret>`.
    pub fn new(info: TokenInfo, replaced: Option<String>, secret: String) -> IssuedToken {
        IssuedToken {
            info,
            replaced,
            secret,
        }
    }

    /// The whole token, to show once.
    pub fn reveal(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuedToken({:?}, ***)", self.info)
    }
}

/// A token checked once, as kept to check it again: its id and stored
/// digest, which name one issued token and open nothing (the secret is not
/// kept). `Debug` prints the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    id: String,
    digest: Vec<u8>,
}

impl Grant {
    /// The grant of the stored token `id` whose secret's digest is `digest`.
    pub fn new(id: String, digest: Vec<u8>) -> Grant {
        Grant { id, digest }
    }

    /// The stored digest the grant was made with.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// The token's public id.
    pub fn token_id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Grant({}, ***)", self.id)
    }
}

/// The id of a presented token that has a token's shape, else None.
pub fn presented_id(presented: &str) -> Option<&str> {
    split(presented).map(|(id, _)| id)
}

/// `hc_<id>_<secret>` into its id and secret, when both have their length.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    presented
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .filter(|(id, secret)| {
            id.len() == 2 * ID_BYTES && secret.len() == 2 * SECRET_BYTES && from_hex(id).is_some()
        })
}

/// Why a presented token was refused. Clients learn only "invalid" or
/// "expired"; the rest goes to the security log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Malformed,
    Unknown,
    WrongSecret,
    Revoked,
    Expired,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Malformed => "malformed",
            AuthFailure::Unknown => "unknown",
            AuthFailure::WrongSecret => "wrong-secret",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Expired => "expired",
        }
    }
}

/// Domain separation for the pseudonym's digest.
const PSEUDONYM_TAG: &[u8] = b"headcount token pseudonym v1\n";

/// How the audit log and the security events name a token: `token:` and 16
/// hex digits of a SHA-256 of the id, not the id, since the id is what a
/// lockout is keyed on and whoever reads the logs must not be able to
/// present it. The DPO's view and `tokens list` map it back to the token.
pub fn pseudonym(id: &str) -> String {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(PSEUDONYM_TAG);
    digest.update(id.as_bytes());
    let hex = to_hex(digest.finish().as_ref());
    format!("token:{}", &hex[..16])
}

/// A token holder's name: 1-64 letters, digits, '-', '_', '.' or '@'.
pub fn check_name(name: &str) -> Result<(), SecurityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(SecurityError::Invalid(format!(
            "`{name}` is not a token name: 1-64 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

/// Where the first admin token is written at first start.
pub fn initial_admin_file(state_dir: &Path) -> PathBuf {
    state_dir.join(INITIAL_ADMIN_FILE)
}
