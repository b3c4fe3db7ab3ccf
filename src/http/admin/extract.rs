//! Extractors of the admin API that answer every refusal as a problem document, never axum's
//! plain-text rejections: JSON bodies ([`AdminJson`]), query strings ([`AdminQuery`]) and path
//! parameters ([`AdminPath`]).
//!
//! Bodies: over the size limit 413; not JSON 400; JSON of the wrong shape — an unknown field, a
//! missing one, a wrong type — 422 with `errors` naming the field. An empty body reads as `{}`,
//! so requests whose fields are all optional need none. The `Content-Type` is not checked: the
//! bearer token, not a cookie, authenticates, so there is no cross-site form to guard against.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::problem;
use crate::{
    app::AppState,
    error::{AppError, Problem},
};

/// A JSON request body of type `T` (declared with `#[serde(deny_unknown_fields)]`).
pub struct AdminJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AdminJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::TooLarge("The request body is too large.".into())
            } else {
                AppError::BadRequest("The request body could not be read.".into())
            };
            error.into_response()
        })?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { bytes };
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(AdminJson(value)),
            Err(JsonRejection::JsonDataError(rejection)) => {
                // axum tracks the path to the failing field; the same error without the path
                // tells where the path ends and serde's message begins.
                let with_path = std::error::Error::source(&rejection).map(ToString::to_string).unwrap_or_default();
                let bare = serde_json::from_slice::<T>(&bytes).err().map(|e| e.to_string()).unwrap_or_default();
                let path = with_path.strip_suffix(&bare).and_then(|p| p.strip_suffix(": ")).unwrap_or("");
                Err(shape_problem(path, &bare).into_response())
            }
            Err(rejection) => {
                let reason = std::error::Error::source(&rejection).map(|e| without_position(&e.to_string()));
                let detail = format!("The request body is not valid JSON ({}).", reason.unwrap_or_default());
                Err(AppError::BadRequest(detail).into_response())
            }
        }
    }
}

/// Query parameters of type `T` (every field an optional string, unknown ones refused).
pub struct AdminQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for AdminQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(AdminQuery)
            .map_err(|e| shape_problem("", &e.to_string()).into_response())
    }
}

/// Path parameters of type `T`; any that do not parse (a malformed UUID) answer 404, as an
/// unknown id does.
pub struct AdminPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for AdminPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(AdminPath(value)),
            Err(_) => Err(problem::not_found()),
        }
    }
}

/// A 422 for input that parsed but does not fit the expected shape. `path` is where serde
/// failed (`display_name`, `redirect_uris[0]`; empty at the top level), `message` its words.
fn shape_problem(path: &str, message: &str) -> Problem {
    let message = without_position(message);
    let quoted = |prefix: &str| {
        let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
        let (name, tail) = rest.split_once('`')?;
        Some((name.to_owned(), tail.trim_start_matches(", ").to_owned()))
    };
    let (field, text) = if let Some((name, expected)) = quoted("unknown field ") {
        let text = match expected.as_str() {
            "" | "there are no fields" => "Unknown field.".to_owned(),
            expected => format!("Unknown field; {expected}."),
        };
        (name, text)
    } else if let Some((name, _)) = quoted("missing field ") {
        (name, "Required.".to_owned())
    } else if let Some((name, _)) = quoted("duplicate field ") {
        (name, "Given more than once.".to_owned())
    } else if !path.is_empty() {
        let top = path.split(['.', '[']).next().unwrap_or(path);
        (top.to_owned(), format!("{}{}.", capitalised(&message), at_path(path, top)))
    } else {
        let detail = format!("The request does not have the expected shape: {message}.");
        return Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
    };
    let mut errors = Map::new();
    errors.insert(field, Value::String(text));
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "A field is invalid; see errors.")
        .with("errors", Value::Object(errors))
}

/// ` (at redirect_uris[1])` when the failure is inside the field rather than the field itself.
fn at_path(path: &str, top: &str) -> String {
    if path == top { String::new() } else { format!(" (at {path})") }
}

/// serde_json's messages end with " at line 1 column 20"; the body is one line in most clients.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(problem: Problem) -> Value {
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = futures_body(response);
        body["errors"].clone()
    }

    fn futures_body(response: Response) -> Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn serde_messages_become_field_errors() {
        let unknown = errors(shape_problem("", "unknown field `nmae`, expected `name` or `email` at line 1 column 7"));
        assert_eq!(unknown["nmae"], "Unknown field; expected `name` or `email`.");
        assert_eq!(errors(shape_problem("", "missing field `username`"))["username"], "Required.");
        let typed = errors(shape_problem("disabled", "invalid type: string \"yes\", expected a boolean"));
        assert_eq!(typed["disabled"], "Invalid type: string \"yes\", expected a boolean.");
        let nested = errors(shape_problem("redirect_uris[1]", "invalid type: integer `5`, expected a string"));
        assert_eq!(nested["redirect_uris"], "Invalid type: integer `5`, expected a string (at redirect_uris[1]).");
    }
}
