//! `/signing-keys`: the token-signing keys with their state, and rotation.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{auth::AdminToken, page::Page};
use crate::{
    admin::{AdminError, keys},
    app::AppState,
    oidc::keys::{KeyInfo, KeyState},
};

/// A signing key (its private half never leaves Latchkey).
#[derive(Serialize, ToSchema)]
#[schema(as = SigningKey)]
pub struct KeyView {
    /// The JWK `kid`.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    pub created_at: DateTime<Utc>,
    /// When it starts (or started) signing.
    pub activates_at: DateTime<Utc>,
    /// When it stops (or stopped) signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// `next` (published, not signing yet), `active` or `retired`.
    #[schema(example = "active")]
    pub state: String,
    /// Whether it is in the JWKS now.
    pub published: bool,
}

impl From<KeyInfo> for KeyView {
    fn from(key: KeyInfo) -> KeyView {
        let state = match key.state {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        };
        KeyView {
            kid: key.kid,
            alg: key.alg.as_str().to_owned(),
            created_at: key.created_at,
            activates_at: key.activates_at,
            retired_at: key.retired_at,
            state: state.to_owned(),
            published: key.published,
        }
    }
}

fn page(keys: Vec<KeyInfo>) -> Json<Page<KeyView>> {
    Json(Page::all(keys.into_iter().map(KeyView::from).collect()))
}

/// Lists every signing key, oldest activation first.
#[utoipa::path(get, path = "/signing-keys", tag = "signing keys",
    responses(
        (status = 200, description = "Every key (never more than one page)", body = Page<KeyView>),
        (status = 401, response = super::problem::responses::Unauthorized),
    ))]
pub async fn keys_get(_: AdminToken, State(state): State<AppState>) -> Json<Page<KeyView>> {
    page(keys::list(&state, Utc::now()))
}

/// Rotates: a new key per algorithm, published now and signing in an hour; the old keys retire
/// then and stay published 24 hours longer.
#[utoipa::path(post, path = "/signing-keys/rotate", tag = "signing keys",
    responses(
        (status = 200, description = "Every key after the rotation", body = Page<KeyView>),
        (status = 401, response = super::problem::responses::Unauthorized),
    ))]
pub async fn keys_rotate_post(
    admin: AdminToken,
    State(state): State<AppState>,
) -> Result<Json<Page<KeyView>>, AdminError> {
    Ok(page(keys::rotate(&state, &admin.actor, Utc::now()).await?))
}
