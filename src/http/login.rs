//! Sign-in pages: `GET/POST /login` (username step, or the passkey step for a remembered
//! user), `POST /login/passkey` (the assertion), `GET /login/switch-user`.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::{CookieJar, PrivateCookieJar};
use chrono::Utc;
use entity::user;
use minijinja::context;
use webauthn_rs::prelude::PublicKeyCredential;

use super::{
    ceremony_answer, cookies,
    csrf::Csrf,
    extract::{CsrfForm, SameOriginJson, Source, ceremony_id, signed_in},
    pages::{PageError, json_for_script, render},
};
use crate::{
    app::AppState,
    audit::Event,
    config::Signup,
    error::AppError,
    login::{self, PasskeyStep, RememberedUser, UsernameOutcome},
    oidc::{flow, pending::Pending},
    ratelimit,
    session::Session,
    store::users::normalize,
};

/// `GET /login`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    private: PrivateCookieJar,
    csrf: Csrf,
) -> Result<Response, PageError> {
    let pending = pending_request(&state, &jar).await?;
    if let Some(me) = signed_in(&jar, &state).await? {
        match &pending {
            None => return Ok(Redirect::to("/account").into_response()),
            Some(p) if flow::session_satisfies(p, Some(&me.session), Utc::now()) => {
                return Ok(Redirect::to(super::oidc::RESUME).into_response());
            }
            // The application asks for a fresh or stronger sign-in: show the login.
            Some(_) => {}
        }
    }
    let hint = pending.and_then(|p| p.request.login_hint).unwrap_or_default();
    let remembered = remembered_user(&private, &state).filter(|r| hint.is_empty() || r.name == normalize(&hint));
    if let Some(remembered) = remembered {
        if let UsernameOutcome::PasskeyStep(step) = login::start_passkey_step(&state, &remembered).await? {
            return passkey_step(&state, jar, private, &csrf, *step);
        }
        let private = private.remove(cookies::removal(cookies::REMEMBER, state.config.is_https()));
        return Ok((private, username_step(&state, jar, &csrf, &hint, None, StatusCode::OK).await?).into_response());
    }
    username_step(&state, jar, &csrf, &hint, None, StatusCode::OK).await
}

/// The authorization request this browser is signing in for, if any.
async fn pending_request(state: &AppState, jar: &CookieJar) -> Result<Option<Pending>, AppError> {
    Ok(super::oidc::browser_pending(state, jar).await?.map(|(_, pending)| pending))
}

/// The answer of a ceremony that signed the browser in (`session_id` names `session`): the
/// session cookie (the ceremony's removed), the remembered user, and where to go next
/// ([`super::oidc::after_sign_in`]).
pub async fn signed_in_answer(
    state: &AppState,
    jar: CookieJar,
    private: PrivateCookieJar,
    session_id: String,
    session: &Session,
    user: &user::Model,
) -> Result<Response, AppError> {
    let https = state.config.is_https();
    let jar = jar
        .add(cookies::build(cookies::SESSION, session_id, Some(state.config.session_max_age), https))
        .add(cookies::removal(cookies::CEREMONY, https));
    let remembered = RememberedUser { name: user.username_normalized.clone(), signed_in: true };
    let private = remember(private, state, &remembered);
    let (jar, next) = super::oidc::after_sign_in(state, jar, session, user).await?;
    Ok((jar, private, ceremony_answer::verified(&next)).into_response())
}

#[derive(serde::Deserialize)]
pub struct UsernameForm {
    #[serde(default)]
    username: String,
}

/// `POST /login`: the username step; answers with the passkey step.
pub async fn username_post(
    State(state): State<AppState>,
    jar: CookieJar,
    private: PrivateCookieJar,
    csrf: Csrf,
    source: Source,
    CsrfForm(form): CsrfForm<UsernameForm>,
) -> Result<Response, PageError> {
    let typed = form.username.trim();
    if typed.is_empty() || typed.len() > 254 {
        let error = Some("Enter your username or email.");
        return username_step(&state, jar, &csrf, typed, error, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let remembered = RememberedUser { name: normalize(typed), signed_in: false };
    // Per address and account: guessing at one account is slowed down, while the person
    // themselves, from any other address, is never locked out.
    let subject = format!("{}|{}", source.ip.as_deref().unwrap_or_default(), remembered.name);
    if let Err(retry_after) =
        ratelimit::check(&state, ratelimit::SIGNIN_PER_IP_ACCOUNT, &subject).await.map_err(AppError::from)?
    {
        return Ok(super::limits::too_many(retry_after, true));
    }
    match login::start_passkey_step(&state, &remembered).await? {
        UsernameOutcome::PasskeyStep(step) => {
            let private = remember(private, &state, &remembered);
            passkey_step(&state, jar, private, &csrf, *step)
        }
        UsernameOutcome::UnknownUser => {
            let error = Some("No matching user found.");
            username_step(&state, jar, &csrf, typed, error, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// `POST /login/passkey`: verifies the assertion and opens the session.
pub async fn passkey_post(
    State(state): State<AppState>,
    jar: CookieJar,
    private: PrivateCookieJar,
    source: Source,
    SameOriginJson(response): SameOriginJson<PublicKeyCredential>,
) -> Result<Response, AppError> {
    let ceremony = ceremony_id(&jar, &state);
    let now = Utc::now();
    let success = source.stamp(Event::new("signin.succeeded", now).with("method", "passkey"));
    match login::finish(&state, &ceremony, &response, now, success).await? {
        Ok(signed_in) => {
            let login::SignedIn { session_id, session, user } = signed_in;
            signed_in_answer(&state, jar, private, session_id, &session, &user).await
        }
        Err(failure) => {
            let mut event = Event::new("signin.failed", now).with("method", "passkey");
            if let Some(user_id) = failure.user_id {
                event = event.user(user_id);
            }
            source.record(&state, event.with("reason", failure.error.reason())).await;
            let retry = failure.retry.map(|s| (s.options, s.ceremony_id));
            Ok(ceremony_answer::failed(&state, jar, failure.error, retry))
        }
    }
}

/// `GET /login/switch-user`: forgets the remembered user and the login in progress.
pub async fn switch_user(State(state): State<AppState>, jar: CookieJar, private: PrivateCookieJar) -> Response {
    let https = state.config.is_https();
    let jar = jar.add(cookies::removal(cookies::CEREMONY, https));
    let private = private.remove(cookies::removal(cookies::REMEMBER, https));
    (jar, private, Redirect::to("/login")).into_response()
}

/// The remembered user, if the cookie is present and decrypts (an edited cookie does not).
pub fn remembered_user(private: &PrivateCookieJar, state: &AppState) -> Option<RememberedUser> {
    let cookie = private.get(&cookies::name(cookies::REMEMBER, state.config.is_https()))?;
    serde_json::from_str(cookie.value()).ok()
}

/// Sets the remembered-user cookie.
pub fn remember(private: PrivateCookieJar, state: &AppState, user: &RememberedUser) -> PrivateCookieJar {
    let value = serde_json::to_string(user).expect("a remembered user serialises");
    private.add(cookies::build(cookies::REMEMBER, value, Some(state.config.remember_for), state.config.is_https()))
}

fn passkey_step(
    state: &AppState,
    jar: CookieJar,
    private: PrivateCookieJar,
    csrf: &Csrf,
    step: PasskeyStep,
) -> Result<Response, PageError> {
    let jar = ceremony_answer::with_ceremony(jar, state, step.ceremony_id);
    let page = render(
        StatusCode::OK,
        "login_passkey.html",
        context! {
            csrf_token => csrf.token(),
            greeting => step.greeting,
            email_login => state.config.email_login,
            passkey_options => json_for_script(&step.options),
        },
    )?;
    Ok((jar, private, page).into_response())
}

async fn username_step(
    state: &AppState,
    jar: CookieJar,
    csrf: &Csrf,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let started = login::start_discoverable(state, Utc::now());
    let jar = ceremony_answer::with_ceremony(jar, state, started.ceremony_id);
    let page = render(
        status,
        "login_username.html",
        context! {
            csrf_token => csrf.token(),
            username => username,
            error => error,
            passkey_options => json_for_script(&started.options),
            signup_open => state.config.signup == Signup::Open,
        },
    )?;
    Ok((jar, page).into_response())
}
