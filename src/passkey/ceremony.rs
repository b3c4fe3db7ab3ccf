//! Ceremony state between the options a browser receives and the response it posts back.
//!
//! The state lives server-side in the ephemeral store under an opaque random id that the
//! browser holds in an HttpOnly cookie. Finishing a ceremony *takes* the state atomically, so a
//! replayed or raced second response finds nothing, even when the first one failed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration};

use crate::{
    ephemeral::{Ephemeral, EphemeralError},
    random_token,
    store::users::NewUser,
};

/// A ceremony in progress.
#[derive(Serialize, Deserialize)]
pub enum Ceremony {
    /// The passkey step after the username step (or for a remembered user). `user_id` is
    /// `None` for a decoy (a name that matches no account), whose state names credentials
    /// nobody has; `state` is `None` only in decoys stored by earlier versions.
    Login { login_name: String, user_id: Option<Uuid>, state: Option<PasskeyAuthentication> },
    /// A discoverable sign-in from the username step (autofill or "Use a passkey").
    Discoverable { state: DiscoverableAuthentication },
    /// Sign-up: the account is created only once its first passkey verifies.
    Signup { user: NewUser, state: PasskeyRegistration },
    /// A signed-in person adding another passkey.
    AddPasskey { user_id: Uuid, state: PasskeyRegistration },
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

/// Takes the ceremony with this id: the first caller gets it, later callers get `None`.
pub async fn take(store: &Ephemeral, id: &str) -> Result<Option<Ceremony>, EphemeralError> {
    store.take_json(&key(id)).await
}
