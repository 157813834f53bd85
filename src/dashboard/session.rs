//! Dashboard sessions, in memory: a random token in an HttpOnly cookie, a
//! CSRF token per session, an idle timeout and an absolute lifetime.
//!
//! Only a SHA-256 of each token is kept as the map key, so nothing in
//! memory can be replayed as a cookie. Sessions do not survive a restart —
//! people log in again, which is also what a lost laptop wants. The map is
//! bounded: past [`MAX_SESSIONS`] the least recently used session ends.
//!
//! It does not check passwords or roles (see `users` and the parent module).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use secmon_core::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::keys::Role;

/// Sessions kept at most; one per login, so this bounds what a flood of
/// successful logins (a stolen password in a loop) can allocate.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Sent back in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    /// The user's `updated` when the session began: a password or role
    /// change (or removal) ends it.
    pub user_updated: Timestamp,
    pub created: Instant,
    pub last_seen: Instant,
}

pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    pub idle: Duration,
    pub max_age: Duration,
}

/// 32 random bytes as 64 hex characters.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_matches(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            max_age,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) < self.idle
            && now.saturating_duration_since(s.created) < self.max_age
    }

    /// Starts a session; returns (cookie token, CSRF token).
    pub fn create(
        &self,
        user: &str,
        role: Role,
        user_updated: Timestamp,
        now: Instant,
    ) -> (String, String) {
        let token = random_token();
        let csrf = random_token();
        let mut g = self.lock();
        if g.len() >= MAX_SESSIONS {
            g.retain(|_, s| self.alive(s, now));
            if g.len() >= MAX_SESSIONS
                && let Some(oldest) = g.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
            {
                g.remove(&oldest);
            }
        }
        g.insert(
            key(&token),
            Session {
                user: user.to_string(),
                role,
                csrf: csrf.clone(),
                user_updated,
                created: now,
                last_seen: now,
            },
        );
        (token, csrf)
    }

    /// The live session of a token, its idle clock restarted; `None` (and
    /// the session forgotten) if it has expired.
    pub fn touch(&self, token: &str, now: Instant) -> Option<Session> {
        let k = key(token);
        let mut g = self.lock();
        let alive = self.alive(g.get(&k)?, now);
        if !alive {
            g.remove(&k);
            return None;
        }
        let s = g.get_mut(&k)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(&key(token));
    }

    /// Ends every session whose user no longer exists, or whose password or
    /// role changed since it began (`current` gives a user's `updated`).
    pub fn retain_users(&self, current: impl Fn(&str) -> Option<Timestamp>) {
        self.lock()
            .retain(|_, s| current(&s.user) == Some(s.user_updated));
    }

    /// Sessions alive now (for the auth dashboard's "active sessions").
    pub fn active(&self, now: Instant) -> usize {
        let mut g = self.lock();
        g.retain(|_, s| self.alive(s, now));
        g.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn idle_timeout_and_max_age() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        let (tok, csrf) = s.create("alice", Role::Viewer, Timestamp(1), t0);
        assert_eq!(tok.len(), 64);
        assert_ne!(tok, csrf);
        // Activity keeps it alive…
        for i in 1..=4 {
            let t = t0 + Duration::from_secs(50 * i);
            assert_eq!(s.touch(&tok, t).unwrap().user, "alice");
        }
        // …but not past the absolute lifetime.
        assert!(s.touch(&tok, t0 + Duration::from_secs(301)).is_none());
        let (tok2, _) = s.create("bob", Role::Admin, Timestamp(1), t0);
        assert!(s.touch(&tok2, t0 + Duration::from_secs(59)).is_some());
        // 60 s without a request: gone, and stays gone.
        assert!(s.touch(&tok2, t0 + Duration::from_secs(120)).is_none());
        assert!(s.touch(&tok2, t0 + Duration::from_secs(121)).is_none());
        assert!(s.touch("not-a-token", t0).is_none());
    }

    #[test]
    fn password_change_and_removal_end_sessions() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t = Instant::now();
        let (a, _) = s.create("alice", Role::Viewer, Timestamp(1), t);
        let (b, _) = s.create("bob", Role::Viewer, Timestamp(1), t);
        let (c, _) = s.create("carol", Role::Viewer, Timestamp(1), t);
        s.retain_users(|u| match u {
            "alice" => Some(Timestamp(1)),
            "bob" => Some(Timestamp(2)),
            _ => None,
        });
        assert!(s.touch(&a, t).is_some());
        assert!(s.touch(&b, t).is_none());
        assert!(s.touch(&c, t).is_none());
        s.remove(&a);
        assert!(s.touch(&a, t).is_none());
        assert_eq!(s.active(t), 0);
    }

    #[test]
    fn bounded() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t = Instant::now();
        let (first, _) = s.create("u", Role::Viewer, Timestamp(1), t);
        for i in 0..MAX_SESSIONS {
            s.create(
                "u",
                Role::Viewer,
                Timestamp(1),
                t + Duration::from_millis(i as u64 + 1),
            );
        }
        assert_eq!(s.active(t + Duration::from_secs(1)), MAX_SESSIONS);
        assert!(s.touch(&first, t).is_none(), "the least recently used went");
    }

    #[test]
    fn csrf_comparison() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abd", "abc"));
        assert!(!csrf_matches("ab", "abc"));
        assert!(!csrf_matches("", "abc"));
    }
}
