//! The JSON answers of every ceremony endpoint: `{"verified": true, "redirect_to": …}` on
//! success, or a problem document with a readable `detail`, a machine `code`, and — where the
//! person can simply try again — fresh options in `retry` (the ceremony cookie then names the
//! new ceremony).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use serde::Serialize;
use serde_json::json;

use super::cookies;
use crate::{app::AppState, error::Problem, passkey::CeremonyError};

/// The success answer.
pub fn verified(redirect_to: &str) -> Json<serde_json::Value> {
    Json(json!({"verified": true, "redirect_to": redirect_to}))
}

/// Sets the ceremony cookie to `id`.
pub fn with_ceremony(jar: CookieJar, state: &AppState, id: String) -> CookieJar {
    jar.add(cookies::build(cookies::CEREMONY, id, Some(state.config.challenge_ttl), state.config.is_https()))
}

/// The failure answer; `retry` is the next ceremony's options and id.
pub fn failed(
    state: &AppState,
    jar: CookieJar,
    error: CeremonyError,
    retry: Option<(impl Serialize, String)>,
) -> Response {
    let (status, code) = match &error {
        CeremonyError::Expired => (StatusCode::BAD_REQUEST, "expired"),
        CeremonyError::Rejected | CeremonyError::PossibleClone => (StatusCode::UNAUTHORIZED, "rejected"),
        CeremonyError::UnknownCredential { .. } => (StatusCode::UNAUTHORIZED, "unknown_credential"),
        CeremonyError::AlreadyRegistered => (StatusCode::CONFLICT, "already_registered"),
    };
    let mut problem = Problem::new(status, error.to_string()).with("code", json!(code));
    if let CeremonyError::UnknownCredential { credential_id } = &error {
        problem = problem.with("credential_id", json!(credential_id));
    }
    let jar = match retry {
        Some((options, id)) => {
            problem = problem.with("retry", serde_json::to_value(options).unwrap_or_default());
            with_ceremony(jar, state, id)
        }
        None => jar.add(cookies::removal(cookies::CEREMONY, state.config.is_https())),
    };
    (jar, problem).into_response()
}
