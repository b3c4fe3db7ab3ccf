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
        use sea_orm::DbErr;
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => AppError::Unavailable(format!("database: {err}")),
            other => AppError::Internal(anyhow::Error::new(other).context("database")),
        }
    }
}

impl From<EphemeralError> for AppError {
    fn from(err: EphemeralError) -> Self {
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
