//! Enrollment links: a one-time URL (`{issuer}/enroll/{token}`) an administrator gives a person
//! so they can create a passkey for their account and be signed in — how accounts get their
//! first passkey when sign-up is closed.
//!
//! The token is 256 random bits, kept in the database under its SHA-256 only (links live a day
//! and the command line creates them, so they must outlive any one process). Opening the page
//! never consumes it (mail scanners prefetch links); creating the passkey does, with a
//! conditional update, so of two concurrent redemptions exactly one succeeds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::Serialize;
use uuid::Uuid;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use crate::{
    accounts::{self, RegistrationFailure, StartedRegistration},
    app::AppState,
    error::AppError,
    passkey::{
        CeremonyError,
        ceremony::{self, Ceremony},
    },
    random_token,
    session::{self, Session},
    store::{enrollment_links, passkeys, users},
};

/// A link as given to the administrator.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues a link for `user_id`, valid for `ttl` (default `LATCHKEY_ENROLLMENT_TTL`).
pub async fn issue_link(
    state: &AppState,
    user_id: Uuid,
    ttl: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<IssuedLink, AppError> {
    issue_link_in(&state.db, state.issuer(), user_id, ttl.unwrap_or(state.config.enrollment_ttl), now).await
}

/// [`issue_link`] with only a database: the command line's way, for a first admin.
pub async fn issue_link_in(
    db: &DatabaseConnection,
    issuer: &str,
    user_id: Uuid,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<IssuedLink, AppError> {
    if users::find_by_id(db, user_id).await?.is_none() {
        return Err(AppError::NotFound("No such user.".into()));
    }
    if ttl.is_zero() || ttl > Duration::from_secs(30 * 86400) {
        return Err(AppError::Unprocessable("ttl_seconds must be between 1 and 2592000 (30 days).".into()));
    }
    let token = random_token();
    enrollment_links::insert(db, crate::token_hash(&token), user_id, now + ttl, now).await?;
    tracing::info!(%user_id, "enrollment link issued");
    Ok(IssuedLink { url: format!("{issuer}/enroll/{token}"), expires_at: now + ttl })
}

/// The enabled user a still-valid link is for, without consuming it.
pub async fn peek(state: &AppState, token: &str) -> Result<Option<entity::user::Model>, AppError> {
    let Some(user_id) = enrollment_links::usable_user(&state.db, &crate::token_hash(token), Utc::now()).await? else {
        return Ok(None);
    };
    Ok(users::find_by_id(&state.db, user_id).await?.filter(|u| !u.disabled))
}

/// Starts the passkey registration for the link's user.
pub async fn start(state: &AppState, token: &str) -> Result<Option<StartedRegistration>, AppError> {
    let Some(user) = peek(state, token).await? else { return Ok(None) };
    Ok(Some(accounts::start_add_passkey(state, &user).await?))
}

/// A redeemed link: the person's new session.
pub struct Enrolled {
    pub user: entity::user::Model,
    pub session_id: String,
    /// What the session holds.
    pub session: Session,
}

/// Verifies the new passkey, then consumes the link (atomically) and stores the passkey.
pub async fn finish(
    state: &AppState,
    token: &str,
    ceremony_id: &str,
    response: &RegisterPublicKeyCredential,
    now: DateTime<Utc>,
) -> Result<Result<Enrolled, RegistrationFailure>, AppError> {
    let expired = || Ok(Err(RegistrationFailure { error: CeremonyError::Expired, retry: None }));
    let Some(Ceremony::AddPasskey { user_id, state: reg_state }) =
        ceremony::take(&state.ephemeral, ceremony_id).await?
    else {
        return expired();
    };
    let new_passkey = match state.passkeys.finish_registration(response, &reg_state) {
        Ok(passkey) => passkey,
        Err(error) => return Ok(Err(RegistrationFailure { error, retry: start(state, token).await? })),
    };
    let Some(user) = users::find_by_id(&state.db, user_id).await?.filter(|u| !u.disabled) else {
        return expired();
    };
    // The link is consumed only now, by whoever gets here first, together with the passkey.
    let backup_eligible = new_passkey.backup_eligible;
    let txn = state.db.begin().await?;
    if !enrollment_links::redeem(&txn, &crate::token_hash(token), user_id, now).await? {
        return expired();
    }
    passkeys::insert(&txn, user.id, new_passkey, now).await.map_err(crate::accounts::conflict_or)?;
    txn.commit().await?;
    let session = Session::passkey(user.id, true, backup_eligible, now);
    let session_id = session::create(&state.ephemeral, state.session_policy(), &session, now).await?;
    tracing::info!(user_id = %user.id, "enrollment link redeemed");
    crate::observe::signin("enrollment", true);
    Ok(Ok(Enrolled { user, session_id, session }))
}
