//! Rate limits in front of the endpoints attackers hammer: sign-in, the token endpoint and the
//! admin API. Counted per client address in the ephemeral store (so they hold across
//! replicas); over the limit the answer is 429 with `Retry-After`, as a page for browsers and a
//! problem document for everything else.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{client_ip::client_ip, pages::render};
use crate::{
    app::AppState,
    error::{AppError, Problem},
    ratelimit::{self, Limit},
};

/// Counts the request against `limit` for its client address.
pub async fn per_ip(State((state, limit)): State<(AppState, Limit)>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let ip = client_ip(&parts, &state.config.trusted_proxies).map(|ip| ip.to_string()).unwrap_or_default();
    let wants_page =
        parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    match ratelimit::check(&state, limit, &ip).await {
        Ok(Ok(())) => next.run(Request::from_parts(parts, body)).await,
        Ok(Err(retry_after)) => too_many(retry_after, wants_page),
        Err(err) => AppError::from(err).into_response(),
    }
}

/// The 429 answer.
pub fn too_many(retry_after: std::time::Duration, wants_page: bool) -> Response {
    let message = "Too many requests from your address. Wait a moment, then try again.";
    let mut response = if wants_page {
        let context = minijinja::context! { title => "Too many requests", message => message };
        render(StatusCode::TOO_MANY_REQUESTS, "error.html", context).unwrap_or_else(|e| e.into_response())
    } else {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, message).into_response()
    };
    let seconds = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()).expect("digits");
    response.headers_mut().insert(header::RETRY_AFTER, seconds);
    response
}
