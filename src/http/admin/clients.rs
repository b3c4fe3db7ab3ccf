//! `/clients`: register, list, read, replace (`PUT`, idempotent), change, delete relying parties
//! and rotate their secrets. A client secret appears in a response only when it was just
//! generated, and never again.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use entity::client;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{
    auth::AdminToken,
    extract::{AdminJson, AdminPath},
    page::Page,
};
use crate::{
    admin::{
        AdminError,
        clients::{self, Written},
    },
    app::AppState,
    error::AppError,
    oidc::clients::{Client, ClientSpec},
};

/// A client registration: the body of `POST /clients` and `PUT /clients/{client_id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    /// `POST`: generated when absent. `PUT`: the path's, if given.
    #[serde(default)]
    pub client_id: Option<String>,
    pub name: String,
    /// Exact redirect URIs: absolute, no fragment or wildcard; https, http on a loopback host, or
    /// a private-use scheme (`com.example.app:/cb`).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Public clients (SPAs, native apps) have no secret. Default: confidential.
    #[serde(default)]
    pub public: bool,
    /// First-party clients skip the consent page. Default: false.
    #[serde(default)]
    pub first_party: bool,
    /// Default: `openid profile email offline_access`.
    #[serde(default)]
    pub allowed_scopes: Option<Vec<String>>,
    /// Default: `authorization_code refresh_token`.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// `RS256` (default), `ES256` or `EdDSA`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub access_token_ttl_seconds: Option<i64>,
    #[serde(default)]
    pub refresh_token_ttl_seconds: Option<i64>,
    /// Allows `http` redirect URIs on any host (development only).
    #[serde(default)]
    pub allow_http_redirect_uris: bool,
    /// `PUT` only: the secret the relying party is configured with (at least 32 characters).
    /// `POST` refuses it: Latchkey generates the secret.
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl From<ClientBody> for ClientSpec {
    // Every field by name, so a field added to `ClientSpec` fails to compile here until the
    // API (and so its OpenAPI document) says what to do with it.
    fn from(body: ClientBody) -> ClientSpec {
        ClientSpec {
            client_id: body.client_id,
            name: body.name,
            redirect_uris: body.redirect_uris,
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            public: body.public,
            first_party: body.first_party,
            allowed_scopes: body.allowed_scopes,
            grant_types: body.grant_types,
            id_token_signed_response_alg: body.id_token_signed_response_alg,
            backchannel_logout_uri: body.backchannel_logout_uri,
            access_token_ttl_seconds: body.access_token_ttl_seconds,
            refresh_token_ttl_seconds: body.refresh_token_ttl_seconds,
            allow_http_redirect_uris: body.allow_http_redirect_uris,
            client_secret: body.client_secret,
        }
    }
}

/// Changes to a client; absent fields stay as they are. `null` resets a field to its default.
/// The result must pass every rule a new registration does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Making a client confidential generates a secret, returned once.
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(default)]
    pub first_party: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub grant_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub id_token_signed_response_alg: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub access_token_ttl_seconds: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub refresh_token_ttl_seconds: Option<Option<i64>>,
    #[serde(default)]
    pub allow_http_redirect_uris: Option<bool>,
}

/// Tells `null` (`Some(None)`) from an absent field (`None`, through `#[serde(default)]`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl ClientUpdate {
    /// Writes the given fields over `spec`.
    fn apply(self, spec: &mut ClientSpec) {
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(&mut spec.name, self.name);
        set(&mut spec.redirect_uris, self.redirect_uris);
        set(&mut spec.post_logout_redirect_uris, self.post_logout_redirect_uris);
        set(&mut spec.public, self.public);
        set(&mut spec.first_party, self.first_party);
        set(&mut spec.allowed_scopes, self.allowed_scopes);
        set(&mut spec.grant_types, self.grant_types);
        set(&mut spec.id_token_signed_response_alg, self.id_token_signed_response_alg);
        set(&mut spec.backchannel_logout_uri, self.backchannel_logout_uri);
        set(&mut spec.access_token_ttl_seconds, self.access_token_ttl_seconds);
        set(&mut spec.refresh_token_ttl_seconds, self.refresh_token_ttl_seconds);
        set(&mut spec.allow_http_redirect_uris, self.allow_http_redirect_uris);
    }
}

/// A registered client (its secret is stored only as a hash and never shown again).
#[derive(Serialize, ToSchema)]
#[schema(as = Client)]
pub struct ClientView {
    pub client_id: String,
    /// Only right after it was generated (creation, a client made confidential): store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub name: String,
    pub public: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub allowed_scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub id_token_signed_response_alg: String,
    pub backchannel_logout_uri: Option<String>,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
    pub allow_http_redirect_uris: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClientView {
    fn new(row: client::Model, client_secret: Option<String>) -> Result<ClientView, AdminError> {
        let (created_at, updated_at) = (row.created_at, row.updated_at);
        let spec = Client::from_model(row).map_err(|e| AdminError::App(AppError::Internal(e)))?.to_spec();
        Ok(ClientView {
            client_id: spec.client_id.unwrap_or_default(),
            client_secret,
            name: spec.name,
            public: spec.public,
            first_party: spec.first_party,
            redirect_uris: spec.redirect_uris,
            post_logout_redirect_uris: spec.post_logout_redirect_uris,
            allowed_scopes: spec.allowed_scopes.unwrap_or_default(),
            grant_types: spec.grant_types.unwrap_or_default(),
            id_token_signed_response_alg: spec.id_token_signed_response_alg.unwrap_or_default(),
            backchannel_logout_uri: spec.backchannel_logout_uri,
            access_token_ttl_seconds: spec.access_token_ttl_seconds,
            refresh_token_ttl_seconds: spec.refresh_token_ttl_seconds,
            allow_http_redirect_uris: spec.allow_http_redirect_uris,
            created_at,
            updated_at,
        })
    }

    fn written(written: Written) -> Result<ClientView, AdminError> {
        ClientView::new(written.row, written.secret)
    }
}

/// A freshly generated client secret.
#[derive(Serialize, ToSchema)]
pub struct ClientSecret {
    /// Shown once; the old secret has stopped working.
    pub client_secret: String,
}

/// Registers a client.
#[utoipa::path(post, path = "/clients", tag = "clients", request_body = ClientBody,
    responses(
        (status = 201, description = "The client, with `client_secret` if confidential", body = ClientView),
        (status = 400, response = super::problem::responses::BadRequest),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 409, response = super::problem::responses::Conflict),
        (status = 413, response = super::problem::responses::TooLarge),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn clients_post(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminJson(body): AdminJson<ClientBody>,
) -> Result<(StatusCode, Json<ClientView>), AdminError> {
    let written = clients::create(&state.db, &state.client_secrets, &body.into(), &admin.actor, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(ClientView::written(written)?)))
}

/// Lists every client, oldest first.
#[utoipa::path(get, path = "/clients", tag = "clients",
    responses(
        (status = 200, description = "Every client (never more than one page)", body = Page<ClientView>),
        (status = 401, response = super::problem::responses::Unauthorized),
    ))]
pub async fn clients_get(_: AdminToken, State(state): State<AppState>) -> Result<Json<Page<ClientView>>, AdminError> {
    let rows = clients::list(&state.db).await?;
    let items = rows.into_iter().map(|row| ClientView::new(row, None)).collect::<Result<_, _>>()?;
    Ok(Json(Page::all(items)))
}

/// Reads one client.
#[utoipa::path(get, path = "/clients/{client_id}", tag = "clients", params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
    ))]
pub async fn client_get(
    _: AdminToken,
    State(state): State<AppState>,
    AdminPath(client_id): AdminPath<String>,
) -> Result<Json<ClientView>, AdminError> {
    Ok(Json(ClientView::new(clients::get(&state.db, &client_id).await?, None)?))
}

/// Creates or replaces a client (idempotent: declarative tools may send the same body again).
/// A stored secret is kept unless the body gives `client_secret`.
#[utoipa::path(put, path = "/clients/{client_id}", tag = "clients", params(("client_id" = String, Path)),
    request_body = ClientBody,
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = ClientView),
        (status = 201, description = "Created; `client_secret` when one was generated", body = ClientView),
        (status = 400, response = super::problem::responses::BadRequest),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 413, response = super::problem::responses::TooLarge),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn client_put(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(client_id): AdminPath<String>,
    AdminJson(body): AdminJson<ClientBody>,
) -> Result<Response, AdminError> {
    let spec = body.into();
    let (written, created) =
        clients::put(&state.db, &state.client_secrets, &client_id, &spec, &admin.actor, Utc::now()).await?;
    state.clients.forget(&client_id);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ClientView::written(written)?)).into_response())
}

/// Changes some fields of a client.
#[utoipa::path(patch, path = "/clients/{client_id}", tag = "clients", params(("client_id" = String, Path)),
    request_body = ClientUpdate,
    responses(
        (status = 200, description = "The client as changed", body = ClientView),
        (status = 400, response = super::problem::responses::BadRequest),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
        (status = 413, response = super::problem::responses::TooLarge),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn client_patch(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(client_id): AdminPath<String>,
    AdminJson(body): AdminJson<ClientUpdate>,
) -> Result<Json<ClientView>, AdminError> {
    let (db, secrets) = (&state.db, &state.client_secrets);
    let written = clients::update(db, secrets, &client_id, |spec| body.apply(spec), &admin.actor, Utc::now()).await?;
    state.clients.forget(&client_id);
    Ok(Json(ClientView::written(written)?))
}

/// Deletes a client; its tokens stop working at once.
#[utoipa::path(delete, path = "/clients/{client_id}", tag = "clients", params(("client_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
    ))]
pub async fn client_delete(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(client_id): AdminPath<String>,
) -> Result<StatusCode, AdminError> {
    clients::delete(&state.db, &client_id, &admin.actor, Utc::now()).await?;
    state.clients.forget(&client_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a confidential client a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/clients/{client_id}/secret", tag = "clients", params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "The new secret (shown once)", body = ClientSecret),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn client_secret_post(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(client_id): AdminPath<String>,
) -> Result<Json<ClientSecret>, AdminError> {
    let secret = clients::rotate_secret(&state.db, &state.client_secrets, &client_id, &admin.actor, Utc::now()).await?;
    state.clients.forget(&client_id);
    Ok(Json(ClientSecret { client_secret: secret }))
}
