//! Sign-up pages: `GET/POST /signup` (the form; answers with the page that creates the first
//! passkey) and `POST /signup/passkey` (creates the account once the passkey verifies).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::{CookieJar, PrivateCookieJar};
use chrono::Utc;
use minijinja::context;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::{
    ceremony_answer,
    csrf::Csrf,
    extract::{CsrfForm, SameOriginJson, Source, ceremony_id},
    login::signed_in_answer,
    pages::{PageError, json_for_script, render},
};
use crate::{
    accounts::{self, FieldErrors, SignedUp, SignupForm},
    app::AppState,
    audit::Event,
    config::Signup,
    error::AppError,
};

fn ensure_open(state: &AppState) -> Result<(), AppError> {
    match state.config.signup {
        Signup::Open => Ok(()),
        Signup::Closed => Err(AppError::NotFound(
            "Sign-up is closed on this server. Ask an administrator for an enrollment link.".into(),
        )),
    }
}

/// `GET /signup`.
pub async fn page(State(state): State<AppState>, csrf: Csrf) -> Result<Response, PageError> {
    ensure_open(&state)?;
    Ok(form_page(&csrf, &SignupForm::default(), &FieldErrors::new(), StatusCode::OK)?)
}

/// `POST /signup`: validates the form and answers with the passkey-creation page.
pub async fn form_post(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Result<Response, PageError> {
    ensure_open(&state)?;
    let started = match accounts::start_signup(&state, &form).await? {
        Ok(started) => started,
        Err(errors) => return Ok(form_page(&csrf, &form, &errors, StatusCode::UNPROCESSABLE_ENTITY)?),
    };
    let display_name = started.options.public_key.user.display_name.clone();
    let jar = ceremony_answer::with_ceremony(jar, &state, started.ceremony_id);
    let page = render(
        StatusCode::OK,
        "signup_passkey.html",
        context! { display_name, passkey_creation_options => json_for_script(&started.options) },
    )?;
    Ok((jar, page).into_response())
}

/// `POST /signup/passkey`: verifies the first passkey, creates the account, signs in.
pub async fn passkey_post(
    State(state): State<AppState>,
    jar: CookieJar,
    private: PrivateCookieJar,
    source: Source,
    SameOriginJson(response): SameOriginJson<RegisterPublicKeyCredential>,
) -> Result<Response, AppError> {
    ensure_open(&state)?;
    let ceremony = ceremony_id(&jar, &state);
    let now = Utc::now();
    match accounts::finish_signup(&state, &ceremony, &response, now).await? {
        Ok(signed_up) => {
            source.record(&state, Event::new("user.signed_up", now).user(signed_up.user.id)).await;
            let event = Event::new("signin.succeeded", now).user(signed_up.user.id).with("method", "signup");
            source.record(&state, event).await;
            let SignedUp { session_id, session, user } = signed_up;
            signed_in_answer(&state, jar, private, session_id, &session, &user).await
        }
        Err(failure) => {
            let retry = failure.retry.map(|s| (s.options, s.ceremony_id));
            Ok(ceremony_answer::failed(&state, jar, failure.error, retry))
        }
    }
}

fn form_page(csrf: &Csrf, form: &SignupForm, errors: &FieldErrors, status: StatusCode) -> Result<Response, AppError> {
    render(
        status,
        "signup.html",
        context! { csrf_token => csrf.token(), values => minijinja::Value::from(minijinja::value::Serde(form)), errors => minijinja::Value::from(minijinja::value::Serde(errors)) },
    )
}
