//! The token store: API tokens as rows of the `api_token` table, their
//! secrets only as HMAC-SHA256 digests under the device's token key (a file
//! in the state directory, 0600), checked with `ring::hmac::verify`, which
//! compares in constant time. A stolen database alone opens nothing. What a
//! token is and may do is `headcount_domain::security::tokens`.

use crate::{Database, TokenRow};
use headcount_domain::clock::UnixMs;
use headcount_domain::security::tokens::{
    check_name, split, AuthFailure, Caller, Grant, IssuedToken, Role, TokenInfo, ID_BYTES, PREFIX,
    SECRET_BYTES, TOKEN_KEY_FILE,
};
use headcount_domain::security::{device_key, random_bytes, to_hex, SecurityError};
use ring::hmac;
use std::path::Path;
use std::sync::Mutex;

pub struct TokenStore {
    /// Issues, rotates and revokes.
    db: Mutex<Database>,
    /// The checks of every request: read-only connections, one per core,
    /// so that concurrent requests do not queue on one.
    readers: Vec<Mutex<Database>>,
    key: hmac::Key,
}

impl TokenStore {
    /// Opens the token table in `database` with the key in `state_dir`
    /// (made on first use).
    pub fn open(database: &Path, state_dir: &Path) -> Result<TokenStore, SecurityError> {
        let db = Database::open(database)?;
        let key_path = state_dir.join(TOKEN_KEY_FILE);
        // A new key would silently void every token issued under the lost one.
        if !key_path.exists() && !db.tokens()?.is_empty() {
            return Err(SecurityError::Invalid(format!(
                "{} is missing, but {} holds tokens made with it: restore the key from a backup, \
                 or move the database's api_token rows away to start again",
                key_path.display(),
                database.display()
            )));
        }
        let key = device_key(&key_path)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let readers = (0..cores.clamp(2, 8))
            .map(|_| Database::open_read_only(database).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(TokenStore {
            db: Mutex::new(db),
            readers,
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Database> {
        // A panic while holding the lock leaves no half-done state: every
        // write is one SQLite transaction.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>, SecurityError> {
        Ok(self.db().tokens()?.iter().filter_map(info).collect())
    }

    /// A new token for `name`, who must not hold one in force.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        expires_ms: Option<UnixMs>,
        now: UnixMs,
    ) -> Result<IssuedToken, SecurityError> {
        check_name(name)?;
        // An expired token is replaced (and revoked) like any other.
        if self
            .in_force(name)?
            .is_some_and(|t| t.expires_ms.is_none_or(|e| e > now))
        {
            return Err(SecurityError::Invalid(format!(
                "`{name}` already holds a token; rotate or revoke it"
            )));
        }
        self.issue(name, role, expires_ms, now, "created")
    }

    /// A new secret for `name`'s token, same role and expiry; the old one
    /// stops working at once.
    pub fn rotate(&self, name: &str, now: UnixMs) -> Result<IssuedToken, SecurityError> {
        let current = self
            .in_force(name)?
            .ok_or_else(|| SecurityError::Invalid(format!("`{name}` holds no token in force")))?;
        self.issue(name, current.role, current.expires_ms, now, "rotated")
    }

    /// Revokes `name`'s token in force; returns its id.
    pub fn revoke(&self, name: &str, now: UnixMs) -> Result<String, SecurityError> {
        self.db()
            .replace_token(name, None, now, "revoked")?
            .ok_or_else(|| SecurityError::Invalid(format!("`{name}` holds no token in force")))
    }

    /// At first start (no token ever issued): an admin token, handed to
    /// `announce` before it is stored, so that a failure to show it leaves
    /// the store empty and the next start tries again. None when tokens exist.
    pub fn bootstrap_admin(
        &self,
        now: UnixMs,
        announce: impl FnOnce(&IssuedToken) -> Result<(), SecurityError>,
    ) -> Result<Option<IssuedToken>, SecurityError> {
        if !self.db().tokens()?.is_empty() {
            return Ok(None);
        }
        let (row, token) = self.mint("admin", Role::Admin, None, now)?;
        announce(&token)?;
        self.db()
            .replace_token("admin", Some(&row), now, "bootstrap")?;
        Ok(Some(token))
    }

    fn in_force(&self, name: &str) -> Result<Option<TokenInfo>, SecurityError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|t| t.name == name && t.revoked_ms.is_none()))
    }

    fn issue(
        &self,
        name: &str,
        role: Role,
        expires_ms: Option<UnixMs>,
        now: UnixMs,
        change: &str,
    ) -> Result<IssuedToken, SecurityError> {
        let (row, mut token) = self.mint(name, role, expires_ms, now)?;
        token.replaced = self.db().replace_token(name, Some(&row), now, change)?;
        Ok(token)
    }

    /// A new token and the row that stores it (not stored yet).
    fn mint(
        &self,
        name: &str,
        role: Role,
        expires_ms: Option<UnixMs>,
        now: UnixMs,
    ) -> Result<(TokenRow, IssuedToken), SecurityError> {
        if expires_ms.is_some_and(|e| e <= now) {
            return Err(SecurityError::Invalid(
                "the expiry must be in the future".into(),
            ));
        }
        let id = to_hex(&random_bytes::<ID_BYTES>()?);
        let secret = to_hex(&random_bytes::<SECRET_BYTES>()?);
        let row = TokenRow {
            id: id.clone(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            digest: hmac::sign(&self.key, secret.as_bytes()).as_ref().to_vec(),
            created_ms: now,
            expires_ms,
            revoked_ms: None,
        };
        let token = IssuedToken::new(
            TokenInfo {
                id,
                name: name.to_string(),
                role,
                created_ms: now,
                expires_ms,
                revoked_ms: None,
            },
            None,
            format!("{PREFIX}{}_{secret}", row.id),
        );
        Ok((row, token))
    }

    /// Checks a presented token. The secret is compared in constant time;
    /// a revoked or expired token is refused even with the right secret.
    pub fn authenticate(&self, presented: &str, now: UnixMs) -> Result<Caller, AuthFailure> {
        self.check(presented, now).map(|(caller, _)| caller)
    }

    /// `authenticate`, with the `Grant` to check the token again later
    /// without keeping its secret.
    pub fn check(&self, presented: &str, now: UnixMs) -> Result<(Caller, Grant), AuthFailure> {
        let (id, secret) = split(presented).ok_or(AuthFailure::Malformed)?;
        let row = self.row(id)?;
        hmac::verify(&self.key, secret.as_bytes(), &row.digest)
            .map_err(|_| AuthFailure::WrongSecret)?;
        let caller = in_force(&row, now)?;
        Ok((caller, Grant::new(row.id, row.digest)))
    }

    /// Checks again a token checked before: the same issued token (its
    /// stored digest unchanged), still neither revoked nor expired.
    pub fn recheck(&self, grant: &Grant, now: UnixMs) -> Result<Caller, AuthFailure> {
        let row = self.row(grant.token_id())?;
        if row.digest != grant.digest() {
            return Err(AuthFailure::WrongSecret);
        }
        in_force(&row, now)
    }

    /// A free reader, else (all busy) the first one's turn.
    fn reader(&self) -> std::sync::MutexGuard<'_, Database> {
        self.readers
            .iter()
            .find_map(|reader| reader.try_lock().ok())
            .unwrap_or_else(|| self.readers[0].lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn row(&self, id: &str) -> Result<TokenRow, AuthFailure> {
        self.reader()
            .token_by_id(id)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the token table");
                AuthFailure::Unknown
            })?
            .ok_or(AuthFailure::Unknown)
    }
}

/// The caller of a token whose secret was right, unless it was revoked or
/// has expired.
fn in_force(row: &TokenRow, now: UnixMs) -> Result<Caller, AuthFailure> {
    if row.revoked_ms.is_some() {
        return Err(AuthFailure::Revoked);
    }
    if row.expires_ms.is_some_and(|e| e <= now) {
        return Err(AuthFailure::Expired);
    }
    let role = row.role.parse().map_err(|_| AuthFailure::Unknown)?;
    Ok(Caller {
        id: row.id.clone(),
        name: row.name.clone(),
        role,
        expires_ms: row.expires_ms,
    })
}

fn info(row: &TokenRow) -> Option<TokenInfo> {
    Some(TokenInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        role: row.role.parse().ok()?,
        created_ms: row.created_ms,
        expires_ms: row.expires_ms,
        revoked_ms: row.revoked_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_domain::security::tokens::presented_id;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("db.sqlite"), dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn the_first_start_makes_one_admin_token_and_only_once() {
        let (_dir, store) = store();
        // Showing it failed: nothing is stored, the next start tries again.
        let failed =
            store.bootstrap_admin(500, |_| Err(SecurityError::Invalid("disk full".into())));
        assert!(failed.is_err());
        assert!(store.list().unwrap().is_empty());
        let first = store.bootstrap_admin(1_000, |_| Ok(())).unwrap().unwrap();
        assert_eq!(first.info.role, Role::Admin);
        assert!(store.bootstrap_admin(2_000, |_| Ok(())).unwrap().is_none());
        let caller = store.authenticate(first.reveal(), 3_000).unwrap();
        assert_eq!((caller.name.as_str(), caller.role), ("admin", Role::Admin));
        // Revoking every token does not bring a new default one back.
        store.revoke("admin", 4_000).unwrap();
        assert!(store.bootstrap_admin(5_000, |_| Ok(())).unwrap().is_none());
    }

    #[test]
    fn only_a_digest_is_stored() {
        let (dir, store) = store();
        let token = store.create("ops", Role::Facilities, None, 1).unwrap();
        let secret = token.reveal().rsplit('_').next().unwrap().to_string();
        let db = std::fs::read(dir.path().join("db.sqlite")).unwrap();
        let wal = std::fs::read(dir.path().join("db.sqlite-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
        assert!(!format!("{token:?}").contains(&secret));
    }

    #[test]
    fn wrong_revoked_expired_and_malformed_tokens_are_refused() {
        let (_dir, store) = store();
        let good = store.create("a", Role::Planner, Some(10_000), 1).unwrap();
        let presented = good.reveal().to_string();
        assert_eq!(
            store.authenticate(&presented, 5_000).unwrap().role,
            Role::Planner
        );
        assert_eq!(
            store.authenticate(&presented, 10_000),
            Err(AuthFailure::Expired)
        );

        let mut wrong = presented.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            store.authenticate(&wrong, 5_000),
            Err(AuthFailure::WrongSecret)
        );
        for junk in [
            "",
            "hc_",
            "Bearer x",
            "hc_zz_zz",
            &presented[..presented.len() - 1],
        ] {
            assert_eq!(
                store.authenticate(junk, 5_000),
                Err(AuthFailure::Malformed),
                "{junk}"
            );
        }
        let unknown = format!("hc_{}_{}", "0".repeat(16), "0".repeat(64));
        assert_eq!(
            store.authenticate(&unknown, 5_000),
            Err(AuthFailure::Unknown)
        );

        store.revoke("a", 6_000).unwrap();
        assert_eq!(
            store.authenticate(&presented, 7_000),
            Err(AuthFailure::Revoked)
        );
    }

    #[test]
    fn rotation_keeps_name_role_and_expiry_and_kills_the_old_secret() {
        let (_dir, store) = store();
        let old = store
            .create("dash", Role::Facilities, Some(1_000_000), 1)
            .unwrap();
        let new = store.rotate("dash", 2).unwrap();
        assert_eq!(
            store.authenticate(old.reveal(), 3),
            Err(AuthFailure::Revoked)
        );
        let caller = store.authenticate(new.reveal(), 3).unwrap();
        assert_eq!(caller.role, Role::Facilities);
        assert_eq!(caller.expires_ms, Some(1_000_000));
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed.iter().filter(|t| t.revoked_ms.is_none()).count(), 1);
    }

    #[test]
    fn names_are_checked_and_unique_while_in_force() {
        let (_dir, store) = store();
        store.create("x", Role::Dpo, None, 1).unwrap();
        assert!(store
            .create("x", Role::Dpo, None, 2)
            .unwrap_err()
            .to_string()
            .contains("already"));
        assert!(store.create("bad name", Role::Dpo, None, 2).is_err());
        assert!(store
            .create("y", Role::Dpo, Some(1), 2)
            .unwrap_err()
            .to_string()
            .contains("future"));
        assert!(store.rotate("nobody", 2).is_err());
        assert!(store.revoke("nobody", 2).is_err());
        store.revoke("x", 3).unwrap();
        store.create("x", Role::Admin, None, 4).unwrap();
    }

    #[test]
    fn a_lost_key_is_an_error_and_another_key_opens_nothing() {
        let (dir, store) = store();
        let token = store.create("a", Role::Admin, None, 1).unwrap();
        drop(store);
        let key = dir.path().join(TOKEN_KEY_FILE);
        let db = dir.path().join("db.sqlite");
        let original = std::fs::read(&key).unwrap();
        std::fs::remove_file(&key).unwrap();
        let err = TokenStore::open(&db, dir.path()).err().unwrap();
        assert!(err.to_string().contains("is missing, but"), "{err}");
        assert!(!key.exists(), "no new key may replace the lost one");
        let mut other = original.clone();
        other[0] ^= 1;
        std::fs::write(&key, &other).unwrap();
        let store = TokenStore::open(&db, dir.path()).unwrap();
        assert_eq!(
            store.authenticate(token.reveal(), 2),
            Err(AuthFailure::WrongSecret)
        );
        drop(store);
        std::fs::write(&key, &original).unwrap();
        let store = TokenStore::open(&db, dir.path()).unwrap();
        assert!(store.authenticate(token.reveal(), 2).is_ok());
    }

    #[test]
    fn a_grant_rechecks_its_token_without_the_secret() {
        let (_dir, store) = store();
        let token = store
            .create("desk", Role::Facilities, Some(10_000), 1)
            .unwrap();
        let secret = token.reveal().rsplit('_').next().unwrap().to_string();
        let (caller, grant) = store.check(token.reveal(), 2).unwrap();
        assert_eq!(grant.token_id(), caller.id);
        assert_eq!(presented_id(token.reveal()), Some(caller.id.as_str()));
        assert!(!format!("{grant:?}").contains(&secret));
        assert_eq!(store.recheck(&grant, 3).unwrap(), caller);
        assert_eq!(store.recheck(&grant, 10_000), Err(AuthFailure::Expired));
        // Another token's digest under this id is not this grant.
        let forged = Grant::new(grant.token_id().to_string(), vec![0; 32]);
        assert_eq!(store.recheck(&forged, 3), Err(AuthFailure::WrongSecret));
        store.revoke("desk", 4).unwrap();
        assert_eq!(store.recheck(&grant, 5), Err(AuthFailure::Revoked));
        assert_eq!(presented_id("hc_short_x"), None);
    }

    #[test]
    fn an_expired_token_can_be_replaced_by_a_new_one() {
        let (_dir, store) = store();
        store.create("temp", Role::Planner, Some(100), 1).unwrap();
        let fresh = store.create("temp", Role::Planner, None, 200).unwrap();
        assert!(store.authenticate(fresh.reveal(), 300).is_ok());
    }
}
