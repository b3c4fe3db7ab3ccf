//! `/users/{id}/passkeys` and `/users/{id}/enrollment-links`: a user's passkeys, and the
//! one-time links with which a user creates one.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use entity::passkey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    auth::AdminToken,
    extract::{AdminJson, AdminPath},
    page::Page,
};
use crate::{
    admin::{AdminError, users},
    app::AppState,
};

/// A passkey of a user (its public key stays inside Latchkey).
#[derive(Serialize, ToSchema)]
#[schema(as = Passkey)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Backup-eligible: a synced passkey (a passkey provider's), not bound to one device.
    pub synced: bool,
    /// How the authenticator can be reached: `internal`, `hybrid`, `usb`, `nfc`, `ble`.
    pub transports: Vec<String>,
}

impl From<passkey::Model> for PasskeyView {
    fn from(row: passkey::Model) -> PasskeyView {
        PasskeyView {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            synced: row.backup_eligible,
            transports: row.transports.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        }
    }
}

/// Options of a new enrollment link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentLinkCreate {
    /// How long the link works, 1–2592000 seconds (default `LATCHKEY_ENROLLMENT_TTL`, 24 h).
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
}

/// A one-time link: whoever opens it can create a passkey for the user and is signed in.
#[derive(Serialize, ToSchema)]
#[schema(as = EnrollmentLink)]
pub struct EnrollmentLinkView {
    /// `{issuer}/enroll/{token}`; give it to the person over a channel you trust.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Lists a user's passkeys, oldest first.
#[utoipa::path(get, path = "/users/{id}/passkeys", tag = "users", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user's passkeys (never more than one page)", body = Page<PasskeyView>),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
    ))]
pub async fn passkeys_get(
    _: AdminToken,
    State(state): State<AppState>,
    AdminPath(id): AdminPath<Uuid>,
) -> Result<Json<Page<PasskeyView>>, AdminError> {
    let rows = users::passkeys(&state.db, id).await?;
    Ok(Json(Page::all(rows.into_iter().map(PasskeyView::from).collect())))
}

/// Removes a passkey from a user, even their last one.
#[utoipa::path(delete, path = "/users/{id}/passkeys/{passkey_id}", tag = "users",
    params(("id" = Uuid, Path), ("passkey_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
    ))]
pub async fn passkey_delete(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath((id, passkey_id)): AdminPath<(Uuid, Uuid)>,
) -> Result<StatusCode, AdminError> {
    users::remove_passkey(&state.db, id, passkey_id, &admin.actor, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a one-time enrollment link for a user.
#[utoipa::path(post, path = "/users/{id}/enrollment-links", tag = "users", params(("id" = Uuid, Path)),
    request_body(content = EnrollmentLinkCreate, description = "May be empty"),
    responses(
        (status = 201, description = "The link (shown once)", body = EnrollmentLinkView),
        (status = 400, response = super::problem::responses::BadRequest),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
        (status = 409, response = super::problem::responses::Conflict),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn enrollment_links_post(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(id): AdminPath<Uuid>,
    AdminJson(body): AdminJson<EnrollmentLinkCreate>,
) -> Result<(StatusCode, Json<EnrollmentLinkView>), AdminError> {
    let link = users::issue_enrollment_link(&state, id, body.ttl_seconds, &admin.actor, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(EnrollmentLinkView { url: link.url, expires_at: link.expires_at })))
}
