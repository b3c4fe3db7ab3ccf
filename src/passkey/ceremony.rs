//! Ceremony state between the options a browser receives and the response it posts back.
//!
//! Most ceremonies live server-side in the ephemeral store under an opaque random id that the
//! browser holds in an HttpOnly cookie. Finishing a ceremony *takes* the state atomically, so a
//! replayed or raced second response finds nothing, even when the first one failed.
//!
//! The discoverable ceremony is different: every username page starts one for passkey
//! autofill, and most are never used. Its state holds nothing secret (the challenge is in the
//! page anyway), so the browser carries it — signed with the instance's ceremony key and
//! stamped with its expiry — and the store only learns of it when it is used: finishing claims
//! it with an atomic put-if-absent marker that lives until the ceremony would have expired.
//! Same single-use guarantee, and a page view costs no store write and leaves nothing behind.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::{passkey, user};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration};

use crate::{
    carried,
    ephemeral::{Ephemeral, EphemeralError},
    random_token,
    store::users::NewUser,
};

/// A ceremony in progress.
#[derive(Serialize, Deserialize)]
pub enum Ceremony {
    /// The passkey step after the username step (or for a remembered user). `user_id` is
    /// `None` for a decoy (a name that matches no account), whose state names credentials
    /// nobody has; `state` is `None` only in decoys stored by earlier versions. `account` is
    /// what the username step read, so the passkey step need not read it again (for a decoy, a
    /// stand-in of the same make that is never read; `None` in ceremonies stored by earlier
    /// versions).
    Login {
        login_name: String,
        user_id: Option<Uuid>,
        state: Option<PasskeyAuthentication>,
        #[serde(default)]
        account: Option<Box<LoginAccount>>,
    },
    /// A discoverable sign-in from the username step (autofill or "Use a passkey").
    Discoverable { state: DiscoverableAuthentication },
    /// Sign-up: the account is created only once its first passkey verifies.
    Signup { user: NewUser, state: PasskeyRegistration },
    /// A signed-in person adding another passkey.
    AddPasskey { user_id: Uuid, state: PasskeyRegistration },
}

/// An account and its passkeys as the username step read them.
#[derive(Serialize, Deserialize)]
pub struct LoginAccount {
    pub user: user::Model,
    pub passkeys: Vec<passkey::Model>,
}

fn key(id: &str) -> String {
    format!("ceremony:{id}")
}

/// Stores a ceremony and returns the id the browser keeps in its cookie.
pub async fn save(store: &Ephemeral, ceremony: &Ceremony, ttl: Duration) -> Result<String, EphemeralError> {
    let id = random_token();
    store.put_json(&key(&id), ceremony, ttl).await?;
    Ok(id)
}

/// Takes the stored ceremony with this id: the first caller gets it, later callers get `None`.
pub async fn take(store: &Ephemeral, id: &str) -> Result<Option<Ceremony>, EphemeralError> {
    store.take_json(&key(id)).await
}

/// Takes a sign-in ceremony, stored or carried by the browser: the first caller gets it, later
/// callers get `None`, as do forged, altered and expired carried ones.
pub async fn take_sign_in(
    store: &Ephemeral,
    signing_key: &[u8],
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Ceremony>, EphemeralError> {
    let Some(carried) = id.strip_prefix(CARRIED_PREFIX) else {
        return take(store, id).await;
    };
    let Some((state, signature, expires_at)) = open(signing_key, carried, now) else {
        return Ok(None);
    };
    let left = (expires_at - now).to_std().unwrap_or_default();
    let used = format!("ceremony-used:{}", URL_SAFE_NO_PAD.encode(&signature[..16]));
    Ok(store.put_new_json(&used, &(), left).await?.then_some(Ceremony::Discoverable { state }))
}

/// Marks ids that carry their (discoverable) state instead of naming a stored one. Random ids
/// are base64url and never contain a dot.
const CARRIED_PREFIX: &str = "d.";

/// What a carried ceremony holds.
#[derive(Serialize, Deserialize)]
struct Carried {
    state: DiscoverableAuthentication,
    /// Unix seconds after which the ceremony is refused.
    expires: i64,
}

/// A discoverable ceremony as an id the browser carries: `d.` and the [`carried`] state with
/// its expiry, signed with the instance's ceremony key.
pub fn carry_discoverable(signing_key: &[u8], state: DiscoverableAuthentication, expires_at: DateTime<Utc>) -> String {
    format!("{CARRIED_PREFIX}{}", carried::seal(signing_key, &Carried { state, expires: expires_at.timestamp() }))
}

/// The state, signature and expiry of a carried ceremony whose signature checks and which has
/// not expired.
fn open(
    signing_key: &[u8],
    sealed: &str,
    now: DateTime<Utc>,
) -> Option<(DiscoverableAuthentication, Vec<u8>, DateTime<Utc>)> {
    let (carried, signature) = carried::open::<Carried>(signing_key, sealed)?;
    let expires_at = DateTime::from_timestamp(carried.expires, 0).filter(|at| *at > now)?;
    Some((carried.state, signature, expires_at))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use url::Url;

    use super::*;
    use crate::{ephemeral::memory::MemoryStore, passkey::PasskeyService};

    const KEY: &[u8] = &[9; 32];

    fn discoverable() -> DiscoverableAuthentication {
        let issuer = Url::parse("http://localhost:8080").unwrap();
        PasskeyService::new(&issuer, "localhost", vec![7; 32]).unwrap().start_discoverable().1
    }

    fn store() -> Ephemeral {
        Ephemeral::new(Arc::new(MemoryStore::new()))
    }

    #[tokio::test]
    async fn a_carried_ceremony_is_taken_once_and_stores_nothing_until_then() {
        let (store, now) = (store(), Utc::now());
        let id = carry_discoverable(KEY, discoverable(), now + Duration::from_secs(600));
        assert_eq!(store.entry_count(), Some(0));
        assert!(matches!(take_sign_in(&store, KEY, &id, now).await.unwrap(), Some(Ceremony::Discoverable { .. })));
        assert!(take_sign_in(&store, KEY, &id, now).await.unwrap().is_none(), "single use");
        assert!(take(&store, &id).await.unwrap().is_none(), "not a stored ceremony");
    }

    #[tokio::test]
    async fn forged_altered_and_expired_carried_ceremonies_are_refused() {
        let (store, now) = (store(), Utc::now());
        let id = carry_discoverable(KEY, discoverable(), now + Duration::from_secs(600));
        let other_key = carry_discoverable(&[1; 32], discoverable(), now + Duration::from_secs(600));
        let (payload, signature) = id.rsplit_once('.').unwrap();
        let altered = format!("{}A.{signature}", &payload[..payload.len() - 1]);
        for forged in [other_key.as_str(), altered.as_str(), "d.", "d.x.y", "d.%%.%%"] {
            assert!(take_sign_in(&store, KEY, forged, now).await.unwrap().is_none(), "{forged}");
        }
        let later = now + Duration::from_secs(601);
        assert!(take_sign_in(&store, KEY, &id, later).await.unwrap().is_none(), "expired");
        assert!(take_sign_in(&store, KEY, &id, now).await.unwrap().is_some(), "refusals did not use it up");
    }

    #[tokio::test]
    async fn stored_ceremonies_are_taken_through_either_door() {
        let store = store();
        let ceremony = Ceremony::Discoverable { state: discoverable() };
        let id = save(&store, &ceremony, Duration::from_secs(60)).await.unwrap();
        assert!(take_sign_in(&store, KEY, &id, Utc::now()).await.unwrap().is_some());
        assert!(take(&store, &id).await.unwrap().is_none());
    }
}
