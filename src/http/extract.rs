//! Extractors shared by the handlers: forms with a checked CSRF token, WebAuthn JSON bodies
//! from the same origin, the ceremony cookie, and the signed-in person.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, header, request::Parts},
};
use axum_extra::extract::CookieJar;
use chrono::Utc;
use entity::user;
use serde::de::DeserializeOwned;

use super::{client_ip::client_ip, cookies, csrf::Csrf, pages::PageError};
use crate::{
    app::AppState,
    audit,
    error::AppError,
    session::{self, Session},
    store::users,
};

/// A urlencoded form whose `csrf_token` field matched this browser's CSRF cookie.
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize)]
struct TokenField {
    #[serde(default)]
    csrf_token: String,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    /// Forms belong to pages, so a refused form is answered with the error page.
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let csrf = <Csrf as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
        check_origin_if_present(&parts.headers, state)?;
        let bytes = body_bytes(Request::from_parts(parts.clone(), body), state).await?;
        let token: TokenField = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
        csrf.verify(&token.csrf_token)?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
        Ok(CsrfForm(form))
    }
}

/// A JSON body posted by Latchkey's own script: `Origin` must be the issuer's origin, and the
/// body must parse as `T`.
pub struct SameOriginJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for SameOriginJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if origin != Some(state.config.origin().as_str()) {
            return Err(AppError::Forbidden("This request must come from Latchkey's own pages.".into()));
        }
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(AppError::BadRequest("Send the request as application/json.".into()));
        }
        let bytes = body_bytes(request, state).await?;
        serde_json::from_slice(&bytes)
            .map(SameOriginJson)
            .map_err(|e| AppError::BadRequest(format!("The request body is not valid WebAuthn JSON ({e}).")))
    }
}

/// A form without fields of its own beyond the CSRF token.
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// The request body, within the router's size limit (413 beyond it).
async fn body_bytes(request: Request, state: &AppState) -> Result<axum::body::Bytes, AppError> {
    axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("The request body is too large.".into())
        } else {
            AppError::BadRequest("The request body could not be read.".into())
        }
    })
}

/// Forms are also refused when the browser says they come from another origin.
fn check_origin_if_present(headers: &HeaderMap, state: &AppState) -> Result<(), AppError> {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) if origin != state.config.origin() && origin != "null" => {
            Err(AppError::Forbidden("This form must be sent from Latchkey's own pages.".into()))
        }
        _ => Ok(()),
    }
}

/// The id of the ceremony in progress in this browser (empty when there is none).
pub fn ceremony_id(jar: &CookieJar, state: &AppState) -> String {
    jar.get(&cookies::name(cookies::CEREMONY, state.config.is_https()))
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

/// The signed-in person of this browser.
pub struct SignedIn {
    pub session: Session,
    pub user: user::Model,
}

/// Loads the signed-in person, if the session cookie names a live session of an enabled user.
pub async fn signed_in(jar: &CookieJar, state: &AppState) -> Result<Option<SignedIn>, AppError> {
    let Some(cookie) = jar.get(&cookies::name(cookies::SESSION, state.config.is_https())) else {
        return Ok(None);
    };
    let Some(session) = session::load(&state.ephemeral, state.session_policy(), cookie.value(), Utc::now()).await?
    else {
        return Ok(None);
    };
    let user = users::find_by_id(&state.db, session.user_id).await?.filter(|u| !u.disabled);
    Ok(user.map(|user| SignedIn { session, user }))
}

/// Where a request came from, for the audit log: the TCP peer and the user agent.
pub struct Source {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Source {
    /// `event`, from this source.
    pub fn stamp(&self, event: audit::Event) -> audit::Event {
        event.source(self.ip.clone(), self.user_agent.clone())
    }

    /// Reads the source of a request.
    pub fn of(parts: &Parts, state: &AppState) -> Source {
        let ip = client_ip(parts, &state.config.trusted_proxies).map(|ip| ip.to_string());
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Source { ip, user_agent }
    }

    /// Records `event` from this source; a failure to record is logged, never the request's.
    pub async fn record(&self, state: &AppState, event: audit::Event) {
        if let Err(err) = audit::record(&state.db, self.stamp(event)).await {
            tracing::error!(error = %err, "audit event not recorded");
        }
    }
}

impl FromRequestParts<AppState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Source::of(parts, state))
    }
}
