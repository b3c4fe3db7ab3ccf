//! Enrollment pages: `GET /enroll/{token}` (never consumes the link), `POST
//! /enroll/{token}/options` (creation options) and `POST /enroll/{token}` (the new passkey;
//! consumes the link and signs the person in).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::{CookieJar, PrivateCookieJar};
use chrono::Utc;
use minijinja::context;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::{
    ceremony_answer,
    extract::{SameOriginJson, Source, ceremony_id},
    login::signed_in_answer,
    pages::{PageError, render},
};
use crate::{
    app::AppState,
    audit::Event,
    enrollment::{self, Enrolled},
    error::AppError,
};

fn unusable() -> AppError {
    AppError::NotFound(
        "This enrollment link is not valid: it was used already or has expired. Ask your administrator for a new one."
            .into(),
    )
}

/// `GET /enroll/{token}`.
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, PageError> {
    let user = enrollment::peek(&state, &token).await?.ok_or_else(unusable)?;
    Ok(render(StatusCode::OK, "enroll.html", context! { display_name => user.display_name, token => token })?)
}

/// `POST /enroll/{token}/options`.
pub async fn options_post(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
    SameOriginJson(_): SameOriginJson<serde_json::Value>,
) -> Result<Response, AppError> {
    let started = enrollment::start(&state, &token).await?.ok_or_else(unusable)?;
    let jar = ceremony_answer::with_ceremony(jar, &state, started.ceremony_id);
    Ok((jar, Json(started.options)).into_response())
}

/// `POST /enroll/{token}`.
pub async fn finish_post(
    State(state): State<AppState>,
    jar: CookieJar,
    private: PrivateCookieJar,
    source: Source,
    Path(token): Path<String>,
    SameOriginJson(response): SameOriginJson<RegisterPublicKeyCredential>,
) -> Result<Response, AppError> {
    let ceremony = ceremony_id(&jar, &state);
    let now = Utc::now();
    match enrollment::finish(&state, &token, &ceremony, &response, now).await? {
        Ok(enrolled) => {
            let user_id = enrolled.user.id;
            source.record(&state, Event::new("enrollment_link.used", now).user(user_id)).await;
            source.record(&state, Event::new("passkey.added", now).user(user_id).with("via", "enrollment_link")).await;
            source.record(&state, Event::new("signin.succeeded", now).user(user_id).with("method", "enrollment")).await;
            let Enrolled { session_id, session, user } = enrolled;
            signed_in_answer(&state, jar, private, session_id, &session, &user).await
        }
        Err(failure) => {
            let event = Event::new("signin.failed", now).with("method", "enrollment");
            source.record(&state, event.with("reason", failure.error.reason())).await;
            let retry = failure.retry.map(|s| (s.options, s.ceremony_id));
            Ok(ceremony_answer::failed(&state, jar, failure.error, retry))
        }
    }
}
