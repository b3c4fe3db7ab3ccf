//! Per-request observability: a request id on every response (`x-request-id`, generated when
//! the client sent none) and in every log line of the request, request counts and latency
//! histograms by route template, and `GET /metrics` (which also reports the size of the
//! in-process ephemeral store and the process's CPU time).

use std::{
    collections::HashMap,
    sync::{LazyLock, RwLock},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{Counter, Histogram};

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
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = method_label(request.method());
    let id_header = HeaderValue::from_str(&id).expect("checked above");
    request.headers_mut().insert(&REQUEST_ID, id_header.clone());
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
    let (requests, duration) = request_metrics(route, method, status);
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    response.headers_mut().insert(&REQUEST_ID, id_header);
    response
}

/// The method as a label value: a method of the client's own making is `OTHER`, so clients
/// cannot add series to the metrics (routes are templates, statuses Latchkey's own).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
    ];
    STANDARD.iter().find(|(standard, _)| standard == method).map_or("OTHER", |(_, label)| label)
}

/// The request counter and latency histogram of one route, method and status.
type Handles = (Counter, Histogram);

/// The handles registered so far, by route, then method and status. Looking them up through
/// the metrics macros would build, hash and clone a labelled key on every request.
type Registered = HashMap<String, Vec<(&'static str, StatusCode, Handles)>>;

static REQUEST_METRICS: LazyLock<RwLock<Registered>> = LazyLock::new(Default::default);

fn request_metrics(route: &str, method: &'static str, status: StatusCode) -> Handles {
    let find = |registered: &Registered| {
        registered.get(route)?.iter().find(|(m, s, _)| *m == method && *s == status).map(|(_, _, h)| h.clone())
    };
    if let Some(handles) = find(&REQUEST_METRICS.read().unwrap_or_else(|e| e.into_inner())) {
        return handles;
    }
    let mut registered = REQUEST_METRICS.write().unwrap_or_else(|e| e.into_inner());
    if let Some(handles) = find(&registered) {
        return handles;
    }
    let handles = (
        metrics::counter!(HTTP_REQUESTS, "route" => route.to_owned(), "method" => method, "status" => status.as_str().to_owned()),
        metrics::histogram!(HTTP_DURATION, "route" => route.to_owned(), "method" => method),
    );
    registered.entry(route.to_owned()).or_default().push((method, status, handles.clone()));
    handles
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
