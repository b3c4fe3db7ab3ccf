//! Signing keys as an operator sees them: the list with each key's state, and rotation.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Actor, AdminError};
use crate::{app::AppState, audit, oidc::keys::KeyInfo};

/// How long a rotated-in key is published before it signs, so relying parties caching JWKS
/// see it first.
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(60 * 60);

/// How long a rotated-out key stays published, so tokens it signed still verify.
pub const KEEP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Every key with its state at `now`.
pub fn list(state: &AppState, now: DateTime<Utc>) -> Vec<KeyInfo> {
    state.signing_keys.list(now)
}

/// Rotates every algorithm's key (see [`crate::oidc::keys::SigningKeys::rotate`]) and returns
/// the new list.
pub async fn rotate(state: &AppState, actor: &Actor, now: DateTime<Utc>) -> Result<Vec<KeyInfo>, AdminError> {
    let before: Vec<String> = list(state, now).into_iter().map(|k| k.kid).collect();
    state
        .signing_keys
        .rotate(&state.db, now, PUBLISH_AHEAD, KEEP_AFTER)
        .await
        .map_err(|e| AdminError::App(e.into()))?;
    let after = list(state, now);
    let added: Vec<&str> = after.iter().filter(|k| !before.contains(&k.kid)).map(|k| k.kid.as_str()).collect();
    let event = actor
        .event("admin.signing_keys.rotated", now)
        .with("new_kids", added)
        .with("activates_at", (now + PUBLISH_AHEAD).to_rfc3339());
    audit::record(&state.db, event).await?;
    Ok(after)
}
