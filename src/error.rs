//! The one error type of Latchkey's HTTP layer and its renderings.
//!
//! [`AppError`] is named by meaning; JSON endpoints render it as an RFC 9457 problem document
//! ([`Problem`]), pages render it through [`crate::http::pages::PageError`]. Internal details
//! are logged once and never sent: a 5xx body is generic.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::ephemeral::EphemeralError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A unique value is taken; `field` names it.
    #[error("{message}")]
    Conflict { field: &'static str, message: String },
    #[error("{0}")]
    Unprocessable(String),
    /// The request body is over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// A dependency (database, Redis) did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message safe to show to the person or client; internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unavailable(_) => {
                "Latchkey cannot reach its storage right now. Please try again in a moment.".into()
            }
            AppError::Internal(_) => "Something went wrong on our side. Please try again.".into(),
            other => other.to_string(),
        }
    }

    /// Logs server-side failures once, with their real cause.
    pub fn log(&self) {
        match self {
            AppError::Internal(err) => tracing::error!(error = %format!("{err:#}"), "internal error"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            _ => {}
        }
    }

    /// This error as a problem document, to which callers may add members.
    pub fn into_problem(self) -> Problem {
        self.log();
        let mut problem = Problem::new(self.status(), self.public_message());
        if let AppError::Conflict { field, .. } = &self {
            problem = problem.with("field", json!(field));
        }
        problem
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        crate::observe::storage_error("database");
        if crate::store::is_unreachable(&err) {
            AppError::Unavailable(format!("database: {err}"))
        } else {
            AppError::Internal(anyhow::Error::new(err).context("database"))
        }
    }
}

impl From<EphemeralError> for AppError {
    fn from(err: EphemeralError) -> Self {
        crate::observe::storage_error("ephemeral");
        match err {
            EphemeralError::Unavailable(cause) => AppError::Unavailable(format!("ephemeral store: {cause}")),
            EphemeralError::Corrupt(cause) => AppError::Internal(anyhow::anyhow!("ephemeral store entry: {cause}")),
        }
    }
}

/// An RFC 9457 problem document: `type`, `title`, `status`, `detail`, plus extension members.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    members: Map<String, Value>,
}

impl Problem {
    /// A problem with the given status and human-readable detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let mut members = Map::new();
        members.insert("type".into(), json!("about:blank"));
        members.insert("title".into(), json!(status.canonical_reason().unwrap_or("Error")));
        members.insert("status".into(), json!(status.as_u16()));
        members.insert("detail".into(), json!(detail.into()));
        Problem { status, members }
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.members.insert(name.into(), value);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(Value::Object(self.members))).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

/// An OAuth 2.0 error answer (RFC 6749 §5.2, RFC 6750 §3): `{error, error_description}` as
/// JSON, never cached, with `WWW-Authenticate` where the RFCs ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    pub www_authenticate: Option<String>,
}

impl OAuthError {
    /// A 400 with the given code.
    pub fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error, description: description.into(), www_authenticate: None }
    }

    /// `invalid_client` (401); `basic` adds the `WWW-Authenticate: Basic` challenge (§5.2).
    pub fn invalid_client(basic: bool) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed.".into(),
            www_authenticate: basic.then(|| r#"Basic realm="latchkey""#.to_owned()),
        }
    }

    /// `invalid_token` (401) for a bearer token (RFC 6750 §3.1).
    pub fn invalid_token(description: impl Into<String>) -> Self {
        let description = description.into();
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
            www_authenticate: Some(format!(r#"Bearer error="invalid_token", error_description="{description}""#)),
            description,
        }
    }

    /// `insufficient_scope` (403) for a bearer token (RFC 6750 §3.1).
    pub fn insufficient_scope(scope: &str) -> Self {
        OAuthError {
            status: StatusCode::FORBIDDEN,
            error: "insufficient_scope",
            description: format!("The access token lacks the {scope} scope."),
            www_authenticate: Some(format!(r#"Bearer error="insufficient_scope", scope="{scope}""#)),
        }
    }

    /// `temporarily_unavailable` (503) when storage is down.
    pub fn unavailable() -> Self {
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "Latchkey cannot reach its storage right now. Try again shortly.".into(),
            www_authenticate: None,
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(err: AppError) -> Self {
        err.log();
        match err {
            AppError::Unavailable(_) => OAuthError::unavailable(),
            other => OAuthError {
                status: other.status(),
                error: if other.status().is_server_error() { "server_error" } else { "invalid_request" },
                description: other.public_message(),
                www_authenticate: None,
            },
        }
    }
}

impl From<sea_orm::DbErr> for OAuthError {
    fn from(err: sea_orm::DbErr) -> Self {
        AppError::from(err).into()
    }
}

impl From<EphemeralError> for OAuthError {
    fn from(err: EphemeralError) -> Self {
        AppError::from(err).into()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
