//! SSO sessions: who is signed in in this browser, since when and how.
//!
//! A session is created only after a verified sign-in, always under a fresh random id (never
//! one the browser held before). It lives in the ephemeral store under a hash of that id, so a
//! dump of the store cannot be replayed as cookies, with an idle timeout (renewed as it is used)
//! and an absolute one.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    ephemeral::{Ephemeral, EphemeralError},
    random_token,
};

/// How the person proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Passkey,
    /// An emailed one-time link: weaker (not phishing-resistant); it may add a passkey and
    /// finish a sign-in in progress, but account changes ask for a passkey sign-in.
    Email,
}

/// A signed-in browser.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Public id of this session (the ID token's `sid`); unrelated to the cookie value.
    pub sid: String,
    pub user_id: Uuid,
    pub auth_time: DateTime<Utc>,
    pub method: AuthMethod,
    pub user_verified: bool,
    /// Whether the passkey used may be synced (backup-eligible): decides `phr` vs `phrh`.
    pub backup_eligible: bool,
    /// Last time the idle timeout was renewed.
    pub renewed_at: DateTime<Utc>,
}

/// A fresh public session id: a UUIDv7 in base64url. Time-ordered, so the grants of new
/// sessions are appended to their `sid` index rather than scattered through it; public (ID
/// tokens and back-channel logout carry it), so a UUID's randomness is all it needs.
fn new_sid() -> String {
    URL_SAFE_NO_PAD.encode(Uuid::now_v7().as_bytes())
}

impl Session {
    /// A session opened by a verified passkey at `now`, under a fresh public `sid`.
    pub fn passkey(user_id: Uuid, user_verified: bool, backup_eligible: bool, now: DateTime<Utc>) -> Self {
        Session {
            sid: new_sid(),
            user_id,
            auth_time: now,
            method: AuthMethod::Passkey,
            user_verified,
            backup_eligible,
            renewed_at: now,
        }
    }
}

impl Session {
    /// A session opened by an emailed sign-in link at `now`.
    pub fn email(user_id: Uuid, now: DateTime<Utc>) -> Self {
        Session {
            sid: new_sid(),
            user_id,
            auth_time: now,
            method: AuthMethod::Email,
            user_verified: false,
            backup_eligible: false,
            renewed_at: now,
        }
    }

    /// Whether this session proved possession of a passkey (needed for account changes).
    pub fn is_passkey(&self) -> bool {
        self.method == AuthMethod::Passkey
    }
}

/// Idle and absolute lifetimes of sessions.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub max_age: Duration,
}

impl SessionPolicy {
    fn ttl_from(&self, session: &Session, now: DateTime<Utc>) -> Option<Duration> {
        let absolute_end = session.auth_time + self.max_age;
        let left = (absolute_end - now).to_std().ok()?;
        Some(left.min(self.idle_timeout)).filter(|d| !d.is_zero())
    }
}

fn key(id: &str) -> String {
    format!("session:{}", crate::token_hash(id))
}

/// Creates a session under a fresh id and returns that id (the cookie value).
pub async fn create(
    store: &Ephemeral,
    policy: SessionPolicy,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<String, EphemeralError> {
    let id = random_token();
    let ttl = policy.ttl_from(session, now).unwrap_or(policy.idle_timeout);
    store.put_json(&key(&id), session, ttl).await?;
    Ok(id)
}

/// The live session with this id, renewing its idle timeout when a tenth of it has passed.
pub async fn load(
    store: &Ephemeral,
    policy: SessionPolicy,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, EphemeralError> {
    let Some(mut session) = store.get_json::<Session>(&key(id)).await? else {
        return Ok(None);
    };
    let Some(ttl) = policy.ttl_from(&session, now) else {
        store.delete(&key(id)).await?;
        return Ok(None);
    };
    if (now - session.renewed_at).to_std().unwrap_or_default() > policy.idle_timeout / 10 {
        session.renewed_at = now;
        store.put_json(&key(id), &session, ttl).await?;
    }
    Ok(Some(session))
}

/// Ends the session with this id.
pub async fn end(store: &Ephemeral, id: &str) -> Result<(), EphemeralError> {
    store.delete(&key(id)).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ephemeral::memory::MemoryStore;

    fn policy() -> SessionPolicy {
        SessionPolicy { idle_timeout: Duration::from_secs(3600), max_age: Duration::from_secs(86400) }
    }

    fn session(at: DateTime<Utc>) -> Session {
        Session::passkey(Uuid::new_v4(), true, false, at)
    }

    #[test]
    fn session_ids_are_distinct_and_time_ordered() {
        let now = Utc::now();
        let (first, second) = (session(now).sid, Session::email(Uuid::new_v4(), now).sid);
        let uuid = |sid: &str| Uuid::from_slice(&URL_SAFE_NO_PAD.decode(sid).unwrap()).unwrap();
        assert_eq!(uuid(&first).get_version_num(), 7);
        assert!(uuid(&first) < uuid(&second), "opened later, sorted later");
    }

    #[tokio::test]
    async fn sessions_load_until_their_absolute_end() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let start = Utc::now();
        let id = create(&store, policy(), &session(start), start).await.unwrap();
        assert!(load(&store, policy(), &id, start).await.unwrap().is_some());
        assert!(load(&store, policy(), "another-id", start).await.unwrap().is_none());
        let after_max_age = start + chrono::Duration::seconds(86401);
        assert!(load(&store, policy(), &id, after_max_age).await.unwrap().is_none());
        assert!(load(&store, policy(), &id, start).await.unwrap().is_none(), "expired sessions are deleted");
    }

    #[tokio::test]
    async fn a_clock_moved_backwards_does_not_panic() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let start = Utc::now();
        let id = create(&store, policy(), &session(start), start).await.unwrap();
        let earlier = start - chrono::Duration::days(3);
        assert!(load(&store, policy(), &id, earlier).await.unwrap().is_some());
    }

    /// A fixed start, so boundaries are exact to the nanosecond.
    fn t0() -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn sessions_end_exactly_at_their_absolute_end() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let end = t0() + chrono::Duration::seconds(86400);
        let ended = create(&store, policy(), &session(t0()), t0()).await.unwrap();
        assert!(load(&store, policy(), &ended, end).await.unwrap().is_none(), "not one instant past max_age");
        assert!(load(&store, policy(), &ended, t0()).await.unwrap().is_none(), "and it was deleted");
        let live = create(&store, policy(), &session(t0()), t0()).await.unwrap();
        let just_before = end - chrono::Duration::nanoseconds(1);
        assert!(load(&store, policy(), &live, just_before).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn renewal_never_moves_backwards_and_no_instant_panics() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let id = create(&store, policy(), &session(t0()), t0()).await.unwrap();
        let later = t0() + chrono::Duration::minutes(7);
        let renewed = load(&store, policy(), &id, later).await.unwrap().unwrap();
        assert_eq!(renewed.renewed_at, later, "renewed once a tenth of the idle timeout passed");
        for earlier in [t0(), t0() - chrono::Duration::days(400), DateTime::<Utc>::MIN_UTC] {
            let loaded = load(&store, policy(), &id, earlier).await.unwrap().expect("before its end");
            assert_eq!(loaded.renewed_at, later, "a clock moved back does not renew into the past");
            assert_eq!(loaded.auth_time, t0());
        }
        assert!(load(&store, policy(), &id, DateTime::<Utc>::MAX_UTC).await.unwrap().is_none());
        assert!(load(&store, policy(), &id, later).await.unwrap().is_none(), "deleted once past its end");
    }

    #[tokio::test]
    async fn ended_sessions_are_gone() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let now = Utc::now();
        let id = create(&store, policy(), &session(now), now).await.unwrap();
        end(&store, &id).await.unwrap();
        assert!(load(&store, policy(), &id, now).await.unwrap().is_none());
    }
}
