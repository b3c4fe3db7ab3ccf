//! The admin API, `/admin/v1`: JSON over HTTP for operators and declarative tools, behind
//! `Authorization: Bearer <LATCHKEY_ADMIN_TOKEN>` ([`auth::AdminToken`]).
//!
//! Handlers parse input with extractors that answer problem documents ([`extract`]), call one
//! function of [`crate::admin`] and serialise the result; one module per resource. Without an
//! admin token configured, every path here answers 404, the OpenAPI document included.

mod audit;
mod auth;
mod clients;
mod extract;
mod keys;
mod openapi;
mod page;
mod passkeys;
mod problem;
mod users;

use axum::{
    Router,
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::{OpenApi, openapi::server::Server};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

/// The admin API's routes, to be nested at `/admin/v1`.
pub fn router(state: &AppState) -> Router<AppState> {
    if state.config.admin_token.is_none() {
        return Router::new().fallback(|| async { problem::not_found() });
    }
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(users::users_post, users::users_get))
        .routes(routes!(users::user_get, users::user_patch, users::user_delete))
        .routes(routes!(passkeys::passkeys_get))
        .routes(routes!(passkeys::passkey_delete))
        .routes(routes!(passkeys::enrollment_links_post))
        .routes(routes!(clients::clients_post, clients::clients_get))
        .routes(routes!(clients::client_get, clients::client_put, clients::client_patch, clients::client_delete))
        .routes(routes!(clients::client_secret_post))
        .routes(routes!(keys::keys_get))
        .routes(routes!(keys::keys_rotate_post))
        .routes(routes!(audit::events_get))
        .split_for_parts();
    document.servers = Some(vec![Server::new(format!("{}/admin/v1", state.issuer()))]);
    let document = Bytes::from(document.to_pretty_json().expect("the OpenAPI document serialises"));
    router
        // The one route without a token: the document describes the API, it reveals no data.
        .route("/openapi.json", get(move || async move { json(document.clone()) }))
        .fallback(|| async { problem::not_found() })
        .method_not_allowed_fallback(problem::method_not_allowed)
        // Answers carry secrets (client secrets, enrollment links) and personal data.
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
