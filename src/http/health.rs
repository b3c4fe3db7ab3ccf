//! `/healthz` (the process answers) and `/readyz` (its database and ephemeral store answer
//! within a short timeout; 503 naming the failed dependency otherwise).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::app::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = check(state.db.ping()).await;
    let redis = if state.config.redis_url.is_some() {
        check(state.ephemeral.ping()).await
    } else {
        "not configured".to_owned()
    };
    let ready = database == "ok" && (redis == "ok" || redis == "not configured");
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {"database": database, "redis": redis},
    });
    (status, Json(body))
}

async fn check<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(err)) => {
            tracing::warn!(%err, "readiness check failed");
            "unavailable".into()
        }
        Err(_) => "timed out".into(),
    }
}
