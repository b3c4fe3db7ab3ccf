//! Authorization requests waiting for the person to sign in or consent. They live in the
//! ephemeral store under a random id the browser keeps in the `latchkey_authz` cookie, so the
//! request survives the trip through `/login` (switch user included) on any replica.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::authorize::{AuthorizationRequest, Prompt};
use crate::{
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

    /// `prompt=login`: a sign-in from before the request does not count.
    pub fn requires_fresh_sign_in(&self) -> bool {
        self.request.prompt == Prompt::Login
    }
}

fn key(id: &str) -> String {
    format!("authz:{id}")
}

/// Stores a pending request; returns its id.
pub async fn save(store: &Ephemeral, pending: &Pending) -> Result<String, EphemeralError> {
    let id = random_token();
    store.put_json(&key(&id), pending, PENDING_TTL).await?;
    Ok(id)
}

/// The pending request with this id, if it has not expired or finished.
pub async fn get(store: &Ephemeral, id: &str) -> Result<Option<Pending>, EphemeralError> {
    if id.is_empty() {
        return Ok(None);
    }
    store.get_json(&key(id)).await
}

/// Forgets an answered request.
pub async fn forget(store: &Ephemeral, id: &str) -> Result<(), EphemeralError> {
    store.delete(&key(id)).await
}
