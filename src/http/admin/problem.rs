//! Errors of the admin API as RFC 9457 problem documents (`application/problem+json`), and the
//! schema the OpenAPI document gives them.
//!
//! Field-level problems (422) carry an `errors` member, field name → message; a conflict (409)
//! names its `field`. 5xx details stay in the log.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::{
    accounts::FieldErrors,
    admin::AdminError,
    error::{AppError, Problem},
};

/// An RFC 9457 problem document, as every admin API error is answered.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// Always `about:blank`: `title` and `status` say it all.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: String,
    /// The status's reason phrase.
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    /// The HTTP status.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong, for a person to read.
    pub detail: String,
    /// 409: the field whose value is taken (`username`, `email`, `client_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 422: one message per invalid or unknown field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub errors: Option<FieldErrors>,
}

/// A 422 naming each invalid field.
pub fn invalid(errors: &FieldErrors) -> Problem {
    let detail = match errors.len() {
        1 => "A field is invalid; see errors.",
        _ => "Some fields are invalid; see errors.",
    };
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail).with("errors", json!(errors))
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Invalid(errors) => invalid(&errors).into_response(),
            AdminError::App(err) => err.into_response(),
        }
    }
}

/// A missing or wrong admin token: 401 with the `Bearer` challenge (RFC 6750 §3).
pub struct Unauthenticated {
    /// A token was sent, and it was not the admin token.
    pub wrong_token: bool,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let (detail, challenge) = if self.wrong_token {
            ("The bearer token is not the admin token.", r#"Bearer realm="latchkey-admin", error="invalid_token""#)
        } else {
            ("Send the admin token as Authorization: Bearer <token>.", r#"Bearer realm="latchkey-admin""#)
        };
        let mut response = AppError::Unauthorized(detail.into()).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        response
    }
}

/// 404 for unknown admin paths and malformed ids alike.
pub fn not_found() -> Response {
    AppError::NotFound("Nothing here: check the path and the id.".into()).into_response()
}

/// 405 for a known path and an unknown method.
pub async fn method_not_allowed() -> Response {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "This path does not take that method; see openapi.json.")
        .into_response()
}

/// Reusable responses of the OpenAPI document (documentation only: errors are built from
/// [`AdminError`] and [`Unauthenticated`] above).
#[allow(dead_code)]
pub mod responses {
    use utoipa::ToResponse;

    use super::ProblemDoc;

    /// The request body is not JSON.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct BadRequest(ProblemDoc);

    /// No admin token, or the wrong one.
    #[derive(ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "Bearer realm=\"latchkey-admin\""))
    )]
    pub struct Unauthorized(ProblemDoc);

    /// No such user, passkey or client (malformed ids included).
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct NotFound(ProblemDoc);

    /// A username, email or client id that is taken; `field` names it.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct Conflict(ProblemDoc);

    /// The request body is over the size limit.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct TooLarge(ProblemDoc);

    /// Invalid or unknown fields (body or query); `errors` names each.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct Invalid(ProblemDoc);
}
