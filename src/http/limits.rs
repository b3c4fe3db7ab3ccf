//! Rate limits in front of the endpoints attackers hammer: sign-in, the token endpoint and the
//! admin API. Counted per client address in the ephemeral store (so they hold across
//! replicas); over the limit the answer is 429 with `Retry-After`, as a page for browsers and a
//! problem document for everything else. When the store cannot count, the request fails the
//! way its endpoint fails: a page for browsers, an OAuth error at the token endpoint (so
//! clients see `temporarily_unavailable`), a problem document elsewhere.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    client_ip::client_ip,
    pages::{PageError, render},
};
use crate::{
    app::AppState,
    error::{AppError, OAuthError, Problem},
    ratelimit::{self, Limit},
};

/// Counts the request against `limit` for its client address.
pub async fn per_ip(State((state, limit)): State<(AppState, Limit)>, request: Request, next: Next) -> Response {
    let wants_page =
        request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    let store_failed = |err: AppError| if wants_page { PageError(err).into_response() } else { err.into_response() };
    limited(&state, limit, request, next, wants_page, store_failed).await
}

/// [`per_ip`] for the token endpoint, whose failures are OAuth errors (RFC 6749 §5.2).
pub async fn token_per_ip(State((state, limit)): State<(AppState, Limit)>, request: Request, next: Next) -> Response {
    limited(&state, limit, request, next, false, |err| OAuthError::from(err).into_response()).await
}

/// Runs the request if its address is under `limit`: otherwise 429 (a page when `wants_page`),
/// or `store_failed` when the limit cannot be counted.
async fn limited(
    state: &AppState,
    limit: Limit,
    request: Request,
    next: Next,
    wants_page: bool,
    store_failed: impl FnOnce(AppError) -> Response,
) -> Response {
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, &state.config.trusted_proxies).map(|ip| ip.to_string()).unwrap_or_default();
    match ratelimit::check(state, limit, &ip).await {
        Ok(Ok(())) => next.run(Request::from_parts(parts, body)).await,
        Ok(Err(retry_after)) => too_many(retry_after, wants_page),
        Err(err) => store_failed(err.into()),
    }
}

/// The 429 answer.
pub fn too_many(retry_after: Duration, wants_page: bool) -> Response {
    let message = "Too many requests from your address. Wait a moment, then try again.";
    let mut response = if wants_page {
        let context = minijinja::context! { title => "Too many requests", message => message };
        render(StatusCode::TOO_MANY_REQUESTS, "message.html", context).unwrap_or_else(|e| e.into_response())
    } else {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, message).into_response()
    };
    let seconds = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()).expect("digits");
    response.headers_mut().insert(header::RETRY_AFTER, seconds);
    response
}
