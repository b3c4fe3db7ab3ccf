//! Authorization requests waiting for the person to sign in or consent. The browser keeps the
//! request in its `latchkey_authz` cookie, so it survives the trip through `/login` (switch user
//! included) on any replica: [`carried`] (signed, not secret: the browser sent every parameter
//! itself) when it fits in a cookie, which costs the ephemeral store nothing; otherwise in the
//! store, under a random id the cookie holds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::authorize::{AuthorizationRequest, Prompt};
use crate::{
    carried,
    ephemeral::{Ephemeral, EphemeralError},
    random_token,
};

/// How long a person may take to sign in before the request is forgotten.
pub const PENDING_TTL: Duration = Duration::from_secs(30 * 60);

/// A pending authorization request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub request: AuthorizationRequest,
    pub received_at: DateTime<Utc>,
}

impl Pending {
    /// A request received at `now`.
    pub fn new(request: AuthorizationRequest, now: DateTime<Utc>) -> Self {
        Pending { request, received_at: now }
    }

    /// A request of client `client` for `openid`, as tests need one.
    #[cfg(test)]
    pub fn example(prompt: Prompt, max_age: Option<i64>, received_at: DateTime<Utc>) -> Self {
        let request = AuthorizationRequest {
            client_id: "client".into(),
            redirect_uri: "https://app.example.com/callback".into(),
            response_mode: super::authorize::ResponseMode::Query,
            scopes: std::collections::BTreeSet::from(["openid".to_owned()]),
            state: None,
            nonce: None,
            code_challenge: None,
            prompt,
            max_age,
            login_hint: None,
            acr_values: vec![],
        };
        Pending::new(request, received_at)
    }

    /// When a carried request is refused: [`PENDING_TTL`] after it arrived (`None` past the
    /// calendar's end).
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.received_at.checked_add_signed(chrono::Duration::from_std(PENDING_TTL).ok()?)
    }

    /// `prompt=login`: a sign-in from before the request does not count.
    pub fn requires_fresh_sign_in(&self) -> bool {
        self.request.prompt == Prompt::Login
    }
}

/// Marks a cookie value that carries its request rather than naming a stored one (random ids
/// are base64url and never contain a dot).
const CARRIED_PREFIX: &str = "p.";

/// The longest request a cookie carries: browsers keep a cookie's name and value up to 4,096
/// bytes. Longer ones (a client's very long `state`, say) are stored instead.
const MAX_CARRIED_LEN: usize = 3_800;

fn store_key(id: &str) -> String {
    format!("authz:{id}")
}

/// Keeps a pending request for the browser; returns the value of its `latchkey_authz` cookie:
/// the request itself, signed with `signing_key`, or, when that is too long for a cookie, the id
/// it is stored under.
pub async fn keep(store: &Ephemeral, signing_key: &[u8], pending: &Pending) -> Result<String, EphemeralError> {
    let carried = format!("{CARRIED_PREFIX}{}", carried::seal(signing_key, pending));
    if carried.len() <= MAX_CARRIED_LEN {
        return Ok(carried);
    }
    let id = random_token();
    store.put_json(&store_key(&id), pending, PENDING_TTL).await?;
    Ok(id)
}

/// The pending request a cookie value stands for, unless it expired, was answered (stored
/// ones), or does not verify (carried ones).
pub async fn find(
    store: &Ephemeral,
    signing_key: &[u8],
    kept: &str,
    now: DateTime<Utc>,
) -> Result<Option<Pending>, EphemeralError> {
    if kept.is_empty() {
        return Ok(None);
    }
    let Some(sealed) = kept.strip_prefix(CARRIED_PREFIX) else {
        return store.get_json(&store_key(kept)).await;
    };
    let opened = carried::open::<Pending>(signing_key, sealed).map(|(pending, _)| pending);
    Ok(opened.filter(|pending| pending.expires_at().is_some_and(|end| now < end)))
}

/// Forgets an answered request: a stored one is deleted; a carried one goes with its cookie,
/// which the caller removes.
pub async fn forget(store: &Ephemeral, kept: &str) -> Result<(), EphemeralError> {
    if kept.starts_with(CARRIED_PREFIX) {
        return Ok(());
    }
    store.delete(&store_key(kept)).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ephemeral::memory::MemoryStore;

    const KEY: &[u8] = &[3; 32];

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn store() -> Ephemeral {
        Ephemeral::new(Arc::new(MemoryStore::new()))
    }

    fn with_state(state: &str) -> Pending {
        let mut pending = Pending::example(Prompt::Default, None, now());
        pending.request.state = Some(state.to_owned());
        pending
    }

    async fn found(store: &Ephemeral, kept: &str, at: DateTime<Utc>) -> Option<String> {
        let pending = find(store, KEY, kept, at).await.unwrap()?;
        Some(pending.request.state.unwrap_or_default())
    }

    #[tokio::test]
    async fn a_request_that_fits_in_a_cookie_is_carried_and_stores_nothing() {
        let store = store();
        let kept = keep(&store, KEY, &with_state("xyz")).await.unwrap();
        assert!(kept.starts_with(CARRIED_PREFIX));
        assert_eq!(store.entry_count(), Some(0));
        assert_eq!(found(&store, &kept, now()).await.as_deref(), Some("xyz"));
        forget(&store, &kept).await.unwrap();
        assert_eq!(found(&store, &kept, now()).await.as_deref(), Some("xyz"), "goes with its cookie");
    }

    #[tokio::test]
    async fn a_request_too_long_for_a_cookie_is_stored_and_forgotten_once_answered() {
        let store = store();
        let long_state = "s".repeat(MAX_CARRIED_LEN);
        let kept = keep(&store, KEY, &with_state(&long_state)).await.unwrap();
        assert!(!kept.starts_with(CARRIED_PREFIX) && kept.len() < 64, "an id: {kept}");
        assert_eq!(store.entry_count(), Some(1));
        assert_eq!(found(&store, &kept, now()).await, Some(long_state));
        forget(&store, &kept).await.unwrap();
        assert_eq!(found(&store, &kept, now()).await, None);
        assert_eq!(found(&store, "", now()).await, None);
    }

    #[tokio::test]
    async fn carried_requests_expire_like_stored_ones_and_cannot_be_forged() {
        let store = store();
        let kept = keep(&store, KEY, &with_state("xyz")).await.unwrap();
        let last = now() + PENDING_TTL - Duration::from_secs(1);
        assert!(found(&store, &kept, last).await.is_some());
        assert_eq!(found(&store, &kept, now() + PENDING_TTL).await, None, "expired");
        let elsewhere = keep(&store, &[4; 32], &with_state("xyz")).await.unwrap();
        assert_eq!(found(&store, &elsewhere, now()).await, None, "signed with another key");
        let (payload, signature) = kept[CARRIED_PREFIX.len()..].split_once('.').unwrap();
        let mut edited = Pending::example(Prompt::None, None, now());
        edited.request.redirect_uri = "https://attacker.example/".into();
        let edited_payload = carried::seal(&[4; 32], &edited).split_once('.').unwrap().0.to_owned();
        assert_ne!(edited_payload, payload);
        assert_eq!(found(&store, &format!("{CARRIED_PREFIX}{edited_payload}.{signature}"), now()).await, None);
        assert_eq!(found(&store, &format!("{CARRIED_PREFIX}{payload}"), now()).await, None, "unsigned");
        let endless = keep(&store, KEY, &Pending::example(Prompt::Default, None, DateTime::<Utc>::MAX_UTC)).await;
        assert_eq!(found(&store, &endless.unwrap(), now()).await, None, "no expiry on the calendar: refused");
    }
}
