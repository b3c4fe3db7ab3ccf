//! Email sign-in pages: `POST /login/email` (send a link to the remembered user),
//! `GET /login/email/{token}` (the page with **Sign in**), `POST /login/email/{token}` (use it).

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::{CookieJar, PrivateCookieJar};
use chrono::Utc;
use minijinja::context;

use super::{
    cookies,
    csrf::Csrf,
    extract::{CsrfForm, NoFields, Source},
    login::{remember, remembered_user},
    pages::{PageError, render},
};
use crate::{
    app::AppState,
    audit::Event,
    email_login::{self, NotSent},
    error::AppError,
    login::RememberedUser,
};

/// `POST /login/email`: **Email me a sign-in link** on the passkey step.
pub async fn request_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    source: Source,
    jar: CookieJar,
    private: PrivateCookieJar,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let Some(remembered) = remembered_user(&private, &state) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let pending = super::oidc::kept_pending(&state, &jar);
    match email_login::request_link(&state, &remembered.name, &peer.ip().to_string(), pending).await {
        Ok(Ok(sent_to)) => {
            if let Some(user_id) = sent_to {
                source.record(&state, Event::new("email_link.sent", Utc::now()).user(user_id)).await;
            }
            Ok(render(
                StatusCode::OK,
                "message.html",
                context! {
                    title => "Check your email",
                    message => "If an account matches, we sent it a sign-in link. It works once, for a short while. You can close this page.",
                },
            )?)
        }
        Ok(Err(NotSent::RateLimited(retry_after))) => {
            let mut page = render(
                StatusCode::TOO_MANY_REQUESTS,
                "message.html",
                context! {
                    title => "Too many requests",
                    message => "Too many sign-in links were requested. Wait a while, then try again.",
                    link => context! { href => "/login", text => "Back to sign-in" },
                },
            )?;
            let seconds = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()).expect("digits");
            page.headers_mut().insert(header::RETRY_AFTER, seconds);
            Ok(page)
        }
        Ok(Err(NotSent::Disabled)) => {
            Err(PageError(AppError::NotFound("Email sign-in is turned off on this server.".into())))
        }
        Err(AppError::Unavailable(cause)) if cause.starts_with("smtp") => Ok(render(
            StatusCode::SERVICE_UNAVAILABLE,
            "message.html",
            context! {
                title => "Email not sent",
                message => "We could not send the email right now. Please try again in a few minutes, or sign in with a passkey.",
                link => context! { href => "/login", text => "Back to sign-in" },
            },
        )?),
        Err(err) => Err(err.into()),
    }
}

fn used_or_expired() -> PageError {
    PageError(AppError::BadRequest(
        "This sign-in link was already used or has expired. Ask for a new one on the sign-in page.".into(),
    ))
}

/// `GET /login/email/{token}`: never consumes the link.
pub async fn link_page(
    State(state): State<AppState>,
    csrf: Csrf,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    if !email_login::is_valid(&state, &token).await? {
        return Err(used_or_expired());
    }
    Ok(render(StatusCode::OK, "email_link.html", context! { csrf_token => csrf.token(), token => token })?)
}

/// `POST /login/email/{token}`: **Sign in** consumes the link.
pub async fn link_post(
    State(state): State<AppState>,
    jar: CookieJar,
    private: PrivateCookieJar,
    source: Source,
    Path(token): Path<String>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let now = Utc::now();
    let Some(signed_in) = email_login::redeem(&state, &token, now).await? else {
        return Err(used_or_expired());
    };
    let user_id = signed_in.user.id;
    source.record(&state, Event::new("email_link.used", now).user(user_id)).await;
    source.record(&state, Event::new("signin.succeeded", now).user(user_id).with("method", "email")).await;
    let https = state.config.is_https();
    let mut jar =
        jar.add(cookies::build(cookies::SESSION, signed_in.session_id, Some(state.config.session_max_age), https));
    let next = match signed_in.pending_authz {
        Some(pending) => {
            jar = jar.add(cookies::build(cookies::AUTHZ, pending, Some(crate::oidc::pending::PENDING_TTL), https));
            super::oidc::RESUME
        }
        None => "/account",
    };
    let remembered = RememberedUser { name: signed_in.user.username_normalized.clone(), signed_in: true };
    Ok((jar, remember(private, &state, &remembered), Redirect::to(next)).into_response())
}
