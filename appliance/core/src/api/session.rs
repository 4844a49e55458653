//! Browser sessions for the dashboard: a token is presented once at login
//! and exchanged for a random session id in an HttpOnly, SameSite=Strict
//! cookie (Secure on TLS). The token stays in memory with its session and is
//! checked again on every request, so revoking or expiring it ends the
//! session at once. State changes made with the cookie must also carry the
//! session's CSRF token in `X-CSRF-Token`, which a page of another origin
//! cannot read. Sessions live in memory only: a restart logs everyone out.

use crate::clock::UnixMs;
use crate::security::{random_bytes, to_hex, SecurityError};
use axum::http::{header, HeaderMap, HeaderValue};
use ring::digest::{digest, SHA256};
use ring::hmac;
use std::collections::HashMap;
use std::sync::Mutex;

pub const COOKIE: &str = "headcount_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused this long ends.
pub const IDLE_MS: i64 = 30 * 60_000;
/// A session ends this long after login, used or not.
pub const LIFETIME_MS: i64 = 12 * 3_600_000;
/// The most sessions kept; the least recently used goes first.
const MAX_SESSIONS: usize = 256;

struct Session {
    token: String,
    csrf: String,
    opened_ms: UnixMs,
    seen_ms: UnixMs,
}

/// A live session: the token to check and the CSRF token to expect.
#[derive(Debug, Clone)]
pub struct Found {
    pub token: String,
    pub csrf: String,
}

/// The sessions of this process, keyed by the SHA-256 of their id (a
/// leaked memory dump does not hand out cookies).
pub struct Sessions {
    by_id: Mutex<HashMap<[u8; 32], Session>>,
    /// Cookies get `Secure` when the API is served over TLS.
    secure: bool,
    csrf_key: hmac::Key,
}

fn key(id: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, id.as_bytes()).as_ref());
    key
}

impl Sessions {
    pub fn new(secure: bool) -> Result<Self, SecurityError> {
        Ok(Self {
            by_id: Mutex::default(),
            secure,
            csrf_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()?),
        })
    }

    /// Opens a session for a token already checked; returns its id and CSRF token.
    pub fn open(&self, token: &str, now: UnixMs) -> Result<(String, String), SecurityError> {
        let id = to_hex(&random_bytes::<32>()?);
        let csrf = to_hex(&random_bytes::<32>()?);
        let mut sessions = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| alive(s, now));
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.seen_ms)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            key(&id),
            Session {
                token: token.to_string(),
                csrf: csrf.clone(),
                opened_ms: now,
                seen_ms: now,
            },
        );
        Ok((id, csrf))
    }

    /// The session of a cookie, if it is still alive; marks it used.
    pub fn find(&self, id: &str, now: UnixMs) -> Option<Found> {
        let mut sessions = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(id);
        let session = sessions.get_mut(&k)?;
        if !alive(session, now) {
            sessions.remove(&k);
            return None;
        }
        session.seen_ms = now;
        Some(Found {
            token: session.token.clone(),
            csrf: session.csrf.clone(),
        })
    }

    pub fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(id));
    }

    /// The cookie that carries a new session.
    pub fn cookie(&self, id: &str) -> Option<HeaderValue> {
        self.cookie_with(id.to_string(), LIFETIME_MS / 1000)
    }

    /// The cookie that removes the session from the browser.
    pub fn clearing_cookie(&self) -> Option<HeaderValue> {
        self.cookie_with(String::new(), 0)
    }

    /// Whether a request's `X-CSRF-Token` is the session's. Compared as an
    /// HMAC under a key of this process: ring's verification does not stop
    /// at the first differing byte.
    pub fn csrf_matches(&self, headers: &HeaderMap, expected: &str) -> bool {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let tag = hmac::sign(&self.csrf_key, expected.as_bytes());
        hmac::verify(&self.csrf_key, presented.as_bytes(), tag.as_ref()).is_ok()
    }

    fn cookie_with(&self, value: String, max_age_s: i64) -> Option<HeaderValue> {
        let cookie = cookie::Cookie::build((COOKIE, value))
            .path("/")
            .http_only(true)
            .same_site(cookie::SameSite::Strict)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(max_age_s))
            .build();
        HeaderValue::from_str(&cookie.to_string()).ok()
    }
}

fn alive(session: &Session, now: UnixMs) -> bool {
    now - session.seen_ms < IDLE_MS && now - session.opened_ms < LIFETIME_MS
}

/// The session id a request's `Cookie` headers carry, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old_and_on_logout() {
        let sessions = Sessions::new(false).unwrap();
        let (id, csrf) = sessions.open("hc_token", 0).unwrap();
        assert_eq!(id.len(), 64);
        let found = sessions.find(&id, IDLE_MS - 1).unwrap();
        assert_eq!(
            (found.token.as_str(), found.csrf.as_str()),
            ("hc_token", csrf.as_str())
        );
        // Used just now, so not idle; but past its lifetime.
        let mut t = IDLE_MS - 1;
        while t + IDLE_MS / 2 < LIFETIME_MS {
            t += IDLE_MS / 2;
            assert!(sessions.find(&id, t).is_some());
        }
        assert!(sessions.find(&id, LIFETIME_MS).is_none());

        let (idle, _) = sessions.open("hc_token", 0).unwrap();
        assert!(sessions.find(&idle, IDLE_MS).is_none(), "idle too long");

        let (closed, _) = sessions.open("hc_token", 0).unwrap();
        sessions.close(&closed);
        assert!(sessions.find(&closed, 1).is_none());
        assert!(sessions.find("not-a-session", 1).is_none());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_on_tls() {
        let plain = Sessions::new(false).unwrap().cookie("abc").unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("headcount_session=abc"), "{plain}");
        assert!(
            plain.contains("HttpOnly") && plain.contains("SameSite=Strict"),
            "{plain}"
        );
        assert!(
            plain.contains("Path=/") && !plain.contains("Secure"),
            "{plain}"
        );
        let tls = Sessions::new(true).unwrap().cookie("abc").unwrap();
        assert!(tls.to_str().unwrap().contains("Secure"));
        let cleared = Sessions::new(false).unwrap().clearing_cookie().unwrap();
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn the_session_cookie_and_csrf_header_are_read_exactly() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_id(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; headcount_session=xyz; b=2"),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("xyz"));
        let sessions = Sessions::new(false).unwrap();
        assert!(!sessions.csrf_matches(&headers, "token"));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("token"));
        assert!(sessions.csrf_matches(&headers, "token"));
        assert!(!sessions.csrf_matches(&headers, "token2"));
    }
}
