//! Users as an operator manages them: create (without a passkey; an enrollment link gives them
//! their first), list and search, change, disable, delete, and their passkeys.
//!
//! Disabling or deleting a user revokes their grants in the same transaction, so refresh and
//! access tokens stop working at once, and then tells relying parties over the back channel.
//! Their browser sessions need nothing: every session load checks the user exists and is
//! enabled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{grant, passkey, user};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Actor, AdminError};
use crate::{
    accounts::{self, CreateUserError, FieldErrors, SignupForm, validate_email, validate_name, validate_username},
    app::AppState,
    audit,
    enrollment::{self, IssuedLink},
    error::AppError,
    oidc::logout,
    store::{
        grants, passkeys,
        users::{self, UserChanges},
    },
};

/// The longest lifetime of an enrollment link an operator may ask for: 30 days.
pub const MAX_ENROLLMENT_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;

/// A user as the operator describes it.
#[derive(Clone, Debug, Default)]
pub struct UserInput {
    pub username: String,
    pub email: String,
    /// Defaults to the username.
    pub display_name: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub disabled: Option<bool>,
}

/// Checks the fields that are present, trimmed; returns them as changes or every problem.
fn validate(
    username: Option<&str>,
    email: Option<&str>,
    display_name: Option<&str>,
) -> Result<UserChanges, FieldErrors> {
    let mut errors = FieldErrors::new();
    let username = username.map(str::trim);
    let email = email.map(str::trim);
    let display_name = display_name.map(str::trim);
    if let Some(Err(e)) = username.map(validate_username) {
        errors.insert("username", e);
    }
    if let Some(Err(e)) = email.map(validate_email) {
        errors.insert("email", e);
    }
    if let Some(Err(e)) = display_name.map(|n| validate_name(n, 100, "Enter a display name.")) {
        errors.insert("display_name", e);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(UserChanges {
        username: username.map(str::to_owned),
        email: email.map(str::to_owned),
        display_name: display_name.map(str::to_owned),
        disabled: None,
    })
}

fn taken(field: &'static str) -> AdminError {
    AdminError::App(AppError::Conflict { field, message: accounts::taken_message(field) })
}

/// A failed write: a unique violation names the field taken; anything else passes on.
fn conflict_or(err: DbErr) -> AdminError {
    AdminError::App(accounts::conflict_or(err))
}

/// The fields of a user worth recording in the audit log.
fn snapshot(user: &user::Model) -> Value {
    json!({
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "disabled": user.disabled,
    })
}

/// Creates a user with no passkey yet.
pub async fn create(
    db: &DatabaseConnection,
    input: &UserInput,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<user::Model, AdminError> {
    let form = SignupForm {
        username: input.username.clone(),
        email: input.email.clone(),
        display_name: input.display_name.clone().unwrap_or_default(),
    };
    let txn = db.begin().await?;
    let user = accounts::create_user(&txn, &form, now).await.map_err(|err| match err {
        CreateUserError::Invalid(errors) => AdminError::Invalid(errors),
        CreateUserError::Taken(field, _) => taken(field),
        CreateUserError::Storage(err) => AdminError::App(err),
    })?;
    let event = actor.event("admin.user.created", now).user(user.id).with("after", snapshot(&user));
    audit::record(&txn, event).await?;
    txn.commit().await?;
    tracing::info!(user_id = %user.id, "user created by an admin");
    Ok(user)
}

/// A user by id.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<user::Model, AdminError> {
    users::find_by_id(db, id).await?.ok_or_else(|| AdminError::not_found("user"))
}

/// A page of users, oldest first, optionally only those matching `search`; see
/// [`users::list`].
pub async fn list(
    db: &impl ConnectionTrait,
    search: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<user::Model>, AdminError> {
    Ok(users::list(db, search, after, limit).await?)
}

/// Changes a user. Disabling revokes every grant of theirs at once and notifies relying parties;
/// the audit event is `admin.user.disabled` then, `admin.user.updated` for other changes, and
/// none when nothing changed.
pub async fn update(
    state: &AppState,
    id: Uuid,
    patch: &UserPatch,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<user::Model, AdminError> {
    let mut changes = validate(patch.username.as_deref(), patch.email.as_deref(), patch.display_name.as_deref())
        .map_err(AdminError::Invalid)?;
    changes.disabled = patch.disabled;
    let txn = state.db.begin().await?;
    let before = users::find_by_id_for_update(&txn, id).await?.ok_or_else(|| AdminError::not_found("user"))?;
    check_not_taken_by_others(&txn, id, &changes).await?;
    let after =
        users::update(&txn, id, &changes).await.map_err(conflict_or)?.ok_or_else(|| AdminError::not_found("user"))?;
    let revoked = if after.disabled && patch.disabled == Some(true) {
        grants::revoke_for_user(&txn, id, now).await?
    } else {
        Vec::new()
    };
    let (old, new) = changed_fields(&snapshot(&before), &snapshot(&after));
    if !old.is_empty() || !revoked.is_empty() {
        let kind = if after.disabled && !before.disabled { "admin.user.disabled" } else { "admin.user.updated" };
        let event = actor
            .event(kind, now)
            .user(id)
            .with("before", old)
            .with("after", new)
            .with("revoked_grants", revoked.len());
        audit::record(&txn, event).await?;
    }
    txn.commit().await?;
    notify(state, revoked, now).await;
    Ok(after)
}

/// A username or email another user has, ignoring case, is a conflict. (Usernames cannot hold
/// `@` and emails must, so a login lookup finds only the one kind.)
async fn check_not_taken_by_others(
    db: &impl ConnectionTrait,
    id: Uuid,
    changes: &UserChanges,
) -> Result<(), AdminError> {
    for (field, value) in [("username", &changes.username), ("email", &changes.email)] {
        let Some(value) = value else { continue };
        if users::find_by_login(db, value).await?.is_some_and(|other| other.id != id) {
            return Err(taken(field));
        }
    }
    Ok(())
}

/// The members of two snapshots that differ: (old values, new values).
fn changed_fields(before: &Value, after: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let (mut old, mut new) = (Map::new(), Map::new());
    if let (Value::Object(before), Value::Object(after)) = (before, after) {
        for (name, value) in after {
            if before.get(name) != Some(value) {
                old.insert(name.clone(), before.get(name).cloned().unwrap_or(Value::Null));
                new.insert(name.clone(), value.clone());
            }
        }
    }
    (old, new)
}

/// Deletes a user with their passkeys, grants and consents; their tokens stop working at once
/// and relying parties are told over the back channel.
pub async fn delete(state: &AppState, id: Uuid, actor: &Actor, now: DateTime<Utc>) -> Result<(), AdminError> {
    let txn = state.db.begin().await?;
    let user = users::find_by_id_for_update(&txn, id).await?.ok_or_else(|| AdminError::not_found("user"))?;
    // Revoked first so the grants can be named in logout tokens; the rows go with the user.
    let revoked = grants::revoke_for_user(&txn, id, now).await?;
    users::delete(&txn, id).await?;
    let event = actor
        .event("admin.user.deleted", now)
        .user(id)
        .with("before", snapshot(&user))
        .with("revoked_grants", revoked.len());
    audit::record(&txn, event).await?;
    txn.commit().await?;
    tracing::info!(user_id = %id, "user deleted by an admin");
    notify(state, revoked, now).await;
    Ok(())
}

/// Back-channel logout for grants revoked by a committed change. The change stands whatever
/// happens here, so a failure is logged, not returned.
async fn notify(state: &AppState, revoked: Vec<grant::Model>, now: DateTime<Utc>) {
    if revoked.is_empty() {
        return;
    }
    if let Err(err) = logout::notify_clients(state, revoked, now).await {
        tracing::warn!(error = %err, "back-channel logout after an admin change failed");
    }
}

/// A user's passkeys, oldest first.
pub async fn passkeys(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<passkey::Model>, AdminError> {
    get(db, user_id).await?;
    Ok(passkeys::list_for_user(db, user_id).await?)
}

/// Removes one of a user's passkeys, even the last one (an enrollment link gives them a new
/// one).
pub async fn remove_passkey(
    db: &DatabaseConnection,
    user_id: Uuid,
    passkey_id: Uuid,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    let txn = db.begin().await?;
    get(&txn, user_id).await?;
    let existing = passkeys::list_for_user(&txn, user_id).await?;
    let Some(removed) = existing.iter().find(|p| p.id == passkey_id) else {
        return Err(AdminError::not_found("passkey"));
    };
    passkeys::delete(&txn, user_id, passkey_id).await?;
    let event = actor
        .event("admin.passkey.removed", now)
        .user(user_id)
        .with("passkey_id", passkey_id.to_string())
        .with("name", removed.name.clone());
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(())
}

/// Issues a one-time enrollment link with which the user creates a passkey.
pub async fn issue_enrollment_link(
    state: &AppState,
    user_id: Uuid,
    ttl_seconds: Option<i64>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<IssuedLink, AdminError> {
    let ttl = match ttl_seconds {
        None => None,
        Some(seconds) => match u64::try_from(seconds) {
            Ok(s @ 1..=MAX_ENROLLMENT_TTL_SECONDS) => Some(Duration::from_secs(s)),
            _ => {
                let message = format!("Use a number of seconds from 1 to {MAX_ENROLLMENT_TTL_SECONDS} (30 days).");
                return Err(AdminError::field("ttl_seconds", message));
            }
        },
    };
    let user = get(&state.db, user_id).await?;
    if user.disabled {
        let message = "The user is disabled; enable them before issuing an enrollment link.";
        return Err(AdminError::App(AppError::Conflict { field: "disabled", message: message.into() }));
    }
    let link = enrollment::issue_link(state, user_id, ttl, now).await?;
    let event = actor
        .event("admin.enrollment_link.created", now)
        .user(user_id)
        .with("expires_at", link.expires_at.to_rfc3339());
    audit::record(&state.db, event).await?;
    Ok(link)
}
