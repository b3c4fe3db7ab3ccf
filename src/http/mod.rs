//! The HTTP layer (axum): routes, extractors, cookies, templates and static assets.
//!
//! Handlers stay thin: they parse input, call one domain function (`login`, `accounts`,
//! `session`) and render a page or JSON. Security headers, the CSRF seed cookie and the body
//! size limit are applied to every route here.

mod account;
mod admin;
mod assets;
mod ceremony_answer;
mod client_ip;
pub mod cookies;
mod csrf;
mod email;
mod enroll;
pub(crate) mod extract;
mod health;
mod limits;
mod login;
mod observe;
pub mod oidc;
pub mod pages;
mod security;
mod signup;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    response::Redirect,
    routing::{get, post},
};

use crate::{
    app::AppState,
    ratelimit::{self, SIGNIN_PER_IP},
};

/// Largest request body accepted anywhere (WebAuthn responses are a few kilobytes).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The endpoints relying parties may call from a browser (OIDC Discovery §4, RFC 6749 §3.2):
/// any origin may read them; no cookies are involved. The CORS answers are the same whatever
/// the request's origin or preflight headers, so they carry no `Vary` (which `tower-http` would
/// otherwise build on every request).
fn cross_origin_routes(state: &AppState) -> Router<AppState> {
    use axum::http::{HeaderName, Method, header};
    use tower_http::cors::{Any, CorsLayer};
    let token_limit = middleware::from_fn_with_state((state.clone(), ratelimit::TOKEN_PER_IP), limits::token_per_ip);
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .vary([] as [HeaderName; 0]);
    Router::new()
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/jwks.json", get(oidc::jwks))
        .route("/token", post(oidc::token_post).route_layer(token_limit))
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/revoke", post(oidc::revoke))
        .route("/introspect", post(oidc::introspect))
        .layer(cors)
}

/// The complete router of Latchkey.
pub fn router(state: AppState) -> Router {
    let admin_limit = middleware::from_fn_with_state((state.clone(), ratelimit::ADMIN_PER_IP), limits::per_ip);
    Router::new()
        .merge(browser_routes(&state))
        .nest("/admin/v1", admin::router(&state).layer(admin_limit))
        .merge(cross_origin_routes(&state))
        .route("/static/{file}", get(assets::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics_get))
        .fallback(pages::not_found)
        // Outermost first: metrics and the request id, the request deadline, the body size
        // limit, the security headers. One layer rather than four, because axum boxes every
        // route once per `Router::layer` and clones those boxes on every request.
        .layer(
            tower::ServiceBuilder::new()
                .layer(middleware::from_fn(observe::track))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    state.config.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .layer(middleware::from_fn_with_state(state.clone(), security::headers)),
        )
        .with_state(state)
}

/// The pages and the JSON endpoints they call: the only routes whose browsers need a CSRF
/// cookie (API, static and probe routes skip generating one).
fn browser_routes(state: &AppState) -> Router<AppState> {
    let signin_limit = middleware::from_fn_with_state((state.clone(), SIGNIN_PER_IP), limits::per_ip);
    // Every request that may store a pending authorization request or start a ceremony.
    let opens = middleware::from_fn_with_state(
        (state.clone(), ratelimit::login_transactions_per_ip(&state.config)),
        limits::per_ip,
    );
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route(
            "/login",
            get(login::page).post(login::username_post).route_layer(opens.clone()).route_layer(signin_limit.clone()),
        )
        .route("/login/passkey", post(login::passkey_post).route_layer(signin_limit))
        .route("/login/switch-user", get(login::switch_user))
        .route("/login/email", post(email::request_post))
        .route("/login/email/{token}", get(email::link_page).post(email::link_post))
        .route("/enroll/{token}", get(enroll::page).post(enroll::finish_post))
        .route("/enroll/{token}/options", post(enroll::options_post).route_layer(opens.clone()))
        .route("/signup", get(signup::page).merge(post(signup::form_post).route_layer(opens.clone())))
        .route("/signup/passkey", post(signup::passkey_post))
        .route("/account", get(account::page))
        .route("/account/passkeys/options", post(account::passkey_options_post).route_layer(opens.clone()))
        .route("/account/passkeys", post(account::passkey_post))
        .route("/account/passkeys/{id}/rename", post(account::rename_post))
        .route("/account/passkeys/{id}/delete", post(account::delete_post))
        .route("/logout", post(account::logout_post))
        .route("/authorize", get(oidc::authorize_get).post(oidc::authorize_post).route_layer(opens))
        .route("/authorize/resume", get(oidc::resume))
        .route("/authorize/consent", post(oidc::consent_post))
        .route("/end-session", get(oidc::end_session_get).post(oidc::end_session_post))
        .route("/end-session/confirm", post(oidc::end_session_confirm))
        .layer(middleware::from_fn_with_state(state.clone(), csrf::seed_cookie))
}
