//! Browser sessions for the dashboard: a token is presented once at login
//! and exchanged for a random session id in an HttpOnly, SameSite=Strict
//! cookie (Secure on TLS). The session keeps the token's `Grant` (its id and
//! stored digest, not its secret), checked again on every request, so
//! revoking or expiring the token ends the session at once. State changes
//! made with the cookie must also carry the session's CSRF token in
//! `X-CSRF-Token`, which a page of another origin cannot read. Sessions live
//! in memory only: a restart logs everyone out.
//!
//! Capped per token (its own least recently used session goes) and in total
//! (new non-admin sessions are refused; an admin's takes the least recently
//! used non-admin one's place): see `quota`.

use super::quota::{self, Held, Room};
use axum::http::{header, HeaderMap, HeaderValue};
use headcount_domain::clock::UnixMs;
use headcount_domain::security::{random_bytes, to_hex, Grant, Role, SecurityError};
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
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 256;
/// The most sessions one token keeps; its least recently used goes first.
pub const SESSIONS_PER_TOKEN: usize = 8;

struct Session {
    grant: Grant,
    admin: bool,
    csrf: String,
    opened_ms: UnixMs,
    seen_ms: UnixMs,
}

/// How a session is known in memory: the SHA-256 of its id (a leaked
/// memory dump does not hand out cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key of a cookie's session id.
    pub fn of(id: &str) -> SessionKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, id.as_bytes()).as_ref());
        SessionKey(key)
    }
}

/// A live session: the token to check again and the CSRF token to expect.
#[derive(Debug, Clone)]
pub struct Found {
    pub grant: Grant,
    pub csrf: String,
}

/// A session just opened: the cookie's id and the CSRF token.
#[derive(Debug)]
pub struct Opened {
    pub id: String,
    pub csrf: String,
}

/// The sessions of this process.
pub struct Sessions {
    by_key: Mutex<HashMap<SessionKey, Session>>,
    /// Cookies get `Secure` when the API is served over TLS.
    secure: bool,
    csrf_key: hmac::Key,
}

impl Sessions {
    pub fn new(secure: bool) -> Result<Self, SecurityError> {
        Ok(Self {
            by_key: Mutex::default(),
            secure,
            csrf_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()?),
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Session>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for a token just checked, within the caps; None when
    /// every place is taken and none may give way.
    pub fn open(
        &self,
        grant: Grant,
        role: Role,
        now: UnixMs,
    ) -> Result<Option<Opened>, SecurityError> {
        let id = to_hex(&random_bytes::<32>()?);
        let csrf = to_hex(&random_bytes::<32>()?);
        let admin = role == Role::Admin;
        let mut sessions = self.sessions();
        sessions.retain(|_, s| alive(s, now));
        let held: Vec<Held<'_, SessionKey>> = sessions
            .iter()
            .map(|(key, s)| Held {
                key: *key,
                token: s.grant.token_id(),
                admin: s.admin,
                recency: s.seen_ms,
            })
            .collect();
        match quota::room(
            &held,
            grant.token_id(),
            admin,
            SESSIONS_PER_TOKEN,
            MAX_SESSIONS,
        ) {
            Room::Free => {}
            Room::TokenFull(key) | Room::Evict(key) => {
                sessions.remove(&key);
            }
            Room::Full => return Ok(None),
        }
        sessions.insert(
            SessionKey::of(&id),
            Session {
                grant,
                admin,
                csrf: csrf.clone(),
                opened_ms: now,
                seen_ms: now,
            },
        );
        Ok(Some(Opened { id, csrf }))
    }

    /// The session of `key`, if it is still alive; marks it used.
    pub fn find(&self, key: SessionKey, now: UnixMs) -> Option<Found> {
        let mut sessions = self.sessions();
        let session = sessions.get_mut(&key)?;
        if !alive(session, now) {
            sessions.remove(&key);
            return None;
        }
        session.seen_ms = now;
        Some(Found {
            grant: session.grant.clone(),
            csrf: session.csrf.clone(),
        })
    }

    pub fn close(&self, key: SessionKey) {
        self.sessions().remove(&key);
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

    /// A grant for a token of the store in `dir`, and the store.
    fn grant(store: &headcount_store::TokenStore, name: &str, role: Role) -> Grant {
        let token = store.create(name, role, None, 0).unwrap();
        store.check(token.reveal(), 0).unwrap().1
    }

    fn store() -> (tempfile::TempDir, headcount_store::TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            headcount_store::TokenStore::open(&dir.path().join("h.db"), dir.path()).unwrap();
        (dir, store)
    }

    fn open(sessions: &Sessions, grant: &Grant, role: Role, now: UnixMs) -> Option<SessionKey> {
        let opened = sessions.open(grant.clone(), role, now).unwrap()?;
        Some(SessionKey::of(&opened.id))
    }

    #[test]
    fn sessions_end_when_idle_or_old_and_on_logout() {
        let (_dir, store) = store();
        let desk = grant(&store, "desk", Role::Facilities);
        let sessions = Sessions::new(false).unwrap();
        let opened = sessions
            .open(desk.clone(), Role::Facilities, 0)
            .unwrap()
            .unwrap();
        assert_eq!(opened.id.len(), 64);
        let key = SessionKey::of(&opened.id);
        let found = sessions.find(key, IDLE_MS - 1).unwrap();
        assert_eq!(
            (&found.grant, found.csrf.as_str()),
            (&desk, opened.csrf.as_str())
        );
        // Used just now, so not idle; but past its lifetime.
        let mut t = IDLE_MS - 1;
        while t + IDLE_MS / 2 < LIFETIME_MS {
            t += IDLE_MS / 2;
            assert!(sessions.find(key, t).is_some());
        }
        assert!(sessions.find(key, LIFETIME_MS).is_none());

        let idle = open(&sessions, &desk, Role::Facilities, 0).unwrap();
        assert!(sessions.find(idle, IDLE_MS).is_none(), "idle too long");

        let closed = open(&sessions, &desk, Role::Facilities, 0).unwrap();
        sessions.close(closed);
        assert!(sessions.find(closed, 1).is_none());
        assert!(sessions.find(SessionKey::of("not-a-session"), 1).is_none());
    }

    #[test]
    fn one_token_cannot_log_out_another_nor_anyone_the_admin() {
        let (_dir, store) = store();
        let admin = grant(&store, "admin", Role::Admin);
        let desk = grant(&store, "desk", Role::Facilities);
        let sessions = Sessions::new(false).unwrap();
        let admins = open(&sessions, &admin, Role::Admin, 0).unwrap();
        let first_desk = open(&sessions, &desk, Role::Facilities, 1).unwrap();
        // A token logging in again and again drops its own oldest sessions only.
        let mut now = 2;
        for _ in 0..3 * SESSIONS_PER_TOKEN {
            open(&sessions, &desk, Role::Facilities, now).unwrap();
            now += 1;
        }
        assert!(sessions.find(first_desk, now).is_none());
        assert!(sessions.find(admins, now).is_some());
        assert_eq!(sessions.sessions().len(), 1 + SESSIONS_PER_TOKEN);

        // Every place taken by many tokens: newcomers are refused, nobody is evicted...
        let others: Vec<Grant> = (0..MAX_SESSIONS / SESSIONS_PER_TOKEN)
            .map(|i| grant(&store, &format!("user{i}"), Role::Planner))
            .collect();
        for other in &others {
            while sessions.sessions().len() < MAX_SESSIONS {
                let before = sessions.sessions().len();
                open(&sessions, other, Role::Planner, now).unwrap();
                now += 1;
                if sessions.sessions().len() == before {
                    break;
                }
            }
        }
        assert_eq!(sessions.sessions().len(), MAX_SESSIONS);
        let late = grant(&store, "late", Role::Facilities);
        assert!(sessions
            .open(late, Role::Facilities, now)
            .unwrap()
            .is_none());
        assert!(sessions.find(admins, now).is_some());
        // ...but an admin gets in, in the least recently used non-admin's place.
        let oldest_desk = sessions
            .sessions()
            .iter()
            .filter(|(_, s)| !s.admin)
            .min_by_key(|(_, s)| s.seen_ms)
            .map(|(k, _)| *k)
            .unwrap();
        let second_admin = open(&sessions, &admin, Role::Admin, now + 1).unwrap();
        assert!(sessions.find(second_admin, now + 1).is_some());
        assert!(sessions.find(oldest_desk, now + 1).is_none());
        assert!(sessions.find(admins, now + 1).is_some());
        // Sessions hold the grant, never the token's secret.
        assert!(!format!("{:?}", sessions.find(admins, now + 1)).contains("hc_"));
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
