//! Caps on what callers hold in memory (dashboard sessions, live streams),
//! so that no caller can monopolise them: each token has its own cap, and
//! the total cap refuses newcomers rather than evicting others. Only an
//! admin may take a non-admin's place at the total cap (the least recently
//! used one), so the admin can always get in and is never evicted by
//! another role.

/// One session or stream held, as the caps see it.
pub(super) struct Held<'a, K> {
    pub key: K,
    pub token: &'a str,
    pub admin: bool,
    /// Larger is more recent: a session's last use, a stream's opening order.
    pub recency: i64,
}

/// Where a newcomer fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room<K> {
    /// Under every cap.
    Free,
    /// Its token holds its cap already; this is the token's own least
    /// recently used one.
    TokenFull(K),
    /// The total is reached, and the newcomer is an admin: this is the least
    /// recently used non-admin one, whose place it may take.
    Evict(K),
    /// The total is reached and nothing may give way.
    Full,
}

/// Where a newcomer of `token` (an admin's or not) fits among `held`.
pub(super) fn room<K: Copy>(
    held: &[Held<'_, K>],
    token: &str,
    admin: bool,
    per_token: usize,
    total: usize,
) -> Room<K> {
    let least_recent = |keep: &dyn Fn(&Held<'_, K>) -> bool| {
        held.iter()
            .filter(|h| keep(h))
            .min_by_key(|h| h.recency)
            .map(|h| h.key)
    };
    if held.iter().filter(|h| h.token == token).count() >= per_token {
        return least_recent(&|h| h.token == token).map_or(Room::Full, Room::TokenFull);
    }
    if held.len() < total {
        return Room::Free;
    }
    if !admin {
        return Room::Full;
    }
    least_recent(&|h| !h.admin).map_or(Room::Full, Room::Evict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held<'a>(token: &'a str, admin: bool, key: u32) -> Held<'a, u32> {
        Held {
            key,
            token,
            admin,
            recency: i64::from(key),
        }
    }

    #[test]
    fn a_token_at_its_cap_gives_way_to_itself_only() {
        let all = [
            held("a", false, 1),
            held("b", false, 2),
            held("a", false, 3),
        ];
        assert_eq!(room(&all, "a", false, 2, 10), Room::TokenFull(1));
        assert_eq!(room(&all, "b", false, 2, 10), Room::Free);
        assert_eq!(room(&all, "c", false, 2, 10), Room::Free);
    }

    #[test]
    fn the_total_refuses_non_admins_and_admins_take_a_non_admins_place() {
        let all = [
            held("root", true, 1),
            held("b", false, 2),
            held("c", false, 3),
        ];
        assert_eq!(room(&all, "d", false, 2, 3), Room::Full);
        // The admin's own session, older, is never the one to go.
        assert_eq!(room(&all, "root2", true, 2, 3), Room::Evict(2));
        let admins = [held("root", true, 1), held("root2", true, 2)];
        assert_eq!(room(&admins, "root3", true, 2, 2), Room::Full);
        // An admin at its own cap gives way to itself, not to the others.
        assert_eq!(room(&admins, "root", true, 1, 2), Room::TokenFull(1));
    }
}
