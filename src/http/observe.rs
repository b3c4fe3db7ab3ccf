//! Per-request observability: a request id on every response (`x-request-id`, generated when
//! the client sent none) and in every log line of the request, request counts and latency
//! histograms by route template, and `GET /metrics` (which also reports the size of the
//! in-process ephemeral store and the process's CPU time).

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    app::AppState,
    observe::{
        HTTP_DURATION, HTTP_REQUESTS, MEMORY_STORE_BYTES, MEMORY_STORE_ENTRIES, process_cpu_exposition, prometheus,
    },
};

/// The header carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Records the request's metrics and runs it inside a span naming its id.
pub async fn track(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().as_str().to_owned();
    request.headers_mut().insert(&REQUEST_ID, HeaderValue::from_str(&id).expect("checked above"));
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request served");
        }
    });
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    response.headers_mut().insert(&REQUEST_ID, HeaderValue::from_str(&id).expect("checked above"));
    response
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics_get(State(state): State<AppState>) -> Response {
    if let Some(entries) = state.ephemeral.entry_count() {
        metrics::gauge!(MEMORY_STORE_ENTRIES).set(entries as f64);
    }
    if let Some(bytes) = state.ephemeral.footprint_bytes() {
        metrics::gauge!(MEMORY_STORE_BYTES).set(bytes as f64);
    }
    let mut body = prometheus().render();
    body.push_str(&process_cpu_exposition().unwrap_or_default());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
