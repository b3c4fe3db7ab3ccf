//! The signed-in person's pages: `GET /account`, adding a passkey
//! (`POST /account/passkeys/options`, `POST /account/passkeys`), renaming and deleting one,
//! and `POST /logout`.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::passkey as passkey_row;
use minijinja::context;
use uuid::Uuid;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use super::{
    ceremony_answer, cookies,
    csrf::Csrf,
    extract::{CsrfForm, NoFields, SameOriginJson, SignedIn, Source, ceremony_id, signed_in},
    pages::{PageError, json_for_script, render},
};
use crate::{accounts, app::AppState, audit::Event, error::AppError, store::passkeys};

#[derive(serde::Deserialize)]
pub struct AccountQuery {
    notice: Option<String>,
}

/// `GET /account`.
pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    Query(query): Query<AccountQuery>,
) -> Result<Response, PageError> {
    let Some(me) = signed_in(&jar, &state).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let notice = match query.notice.as_deref() {
        Some("added") => Some("Passkey added."),
        Some("renamed") => Some("Passkey renamed."),
        Some("deleted") => Some("Passkey deleted."),
        _ => None,
    };
    let notice = notice.or((!me.session.is_passkey())
        .then_some("You signed in with an email link. Add a passkey for this device, so next time you need no email."));
    Ok(account_page(&state, &me, &csrf, notice, None, StatusCode::OK).await?)
}

/// `POST /account/passkeys/options`: creation options for another passkey.
pub async fn passkey_options_post(
    State(state): State<AppState>,
    jar: CookieJar,
    SameOriginJson(_): SameOriginJson<serde_json::Value>,
) -> Result<Response, AppError> {
    let me = require_signed_in(&jar, &state).await?;
    let started = accounts::start_add_passkey(&state, &me.user).await?;
    let jar = ceremony_answer::with_ceremony(jar, &state, started.ceremony_id);
    Ok((jar, Json(started.options)).into_response())
}

/// `POST /account/passkeys`: verifies and stores the new passkey.
pub async fn passkey_post(
    State(state): State<AppState>,
    jar: CookieJar,
    source: Source,
    SameOriginJson(response): SameOriginJson<RegisterPublicKeyCredential>,
) -> Result<Response, AppError> {
    let me = require_signed_in(&jar, &state).await?;
    let ceremony = ceremony_id(&jar, &state);
    let now = Utc::now();
    match accounts::finish_add_passkey(&state, &me.user, &ceremony, &response, now).await? {
        Ok(added) => {
            let event = Event::new("passkey.added", now).user(me.user.id).with("passkey_id", added.id.to_string());
            source.record(&state, event.with("name", added.name)).await;
            let jar = jar.add(cookies::removal(cookies::CEREMONY, state.config.is_https()));
            Ok((jar, ceremony_answer::verified("/account?notice=added")).into_response())
        }
        Err(failure) => {
            let retry = failure.retry.map(|s| (s.options, s.ceremony_id));
            Ok(ceremony_answer::failed(&state, jar, failure.error, retry))
        }
    }
}

#[derive(serde::Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// `POST /account/passkeys/{id}/rename`.
pub async fn rename_post(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Result<Response, PageError> {
    let me = require_page_session(&jar, &state).await?;
    match accounts::rename_passkey(&state, me.user.id, id, &form.name).await {
        Ok(()) => Ok(Redirect::to("/account?notice=renamed").into_response()),
        Err(err @ AppError::Unprocessable(_)) => Ok(account_error(&state, &me, &csrf, err).await?),
        Err(err) => Err(err.into()),
    }
}

/// `POST /account/passkeys/{id}/delete`.
pub async fn delete_post(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    source: Source,
    Path(id): Path<Uuid>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let me = require_page_session(&jar, &state).await?;
    match accounts::delete_passkey(&state, &me.session, id).await {
        Ok(()) => {
            let event = Event::new("passkey.removed", Utc::now()).user(me.user.id).with("passkey_id", id.to_string());
            source.record(&state, event.with("by", "owner")).await;
            Ok(Redirect::to("/account?notice=deleted").into_response())
        }
        Err(err @ (AppError::Conflict { .. } | AppError::Forbidden(_))) => {
            Ok(account_error(&state, &me, &csrf, err).await?)
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /logout`: ends the session (and what was granted in it); the person stays remembered.
pub async fn logout_post(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    super::oidc::sign_out(&state, jar, Some("/login".into())).await
}

async fn require_signed_in(jar: &CookieJar, state: &AppState) -> Result<SignedIn, AppError> {
    signed_in(jar, state).await?.ok_or_else(|| AppError::Unauthorized("Your session has ended. Sign in again.".into()))
}

async fn require_page_session(jar: &CookieJar, state: &AppState) -> Result<SignedIn, PageError> {
    Ok(require_signed_in(jar, state).await?)
}

async fn account_error(state: &AppState, me: &SignedIn, csrf: &Csrf, err: AppError) -> Result<Response, AppError> {
    let status = err.status();
    account_page(state, me, csrf, None, Some(err.public_message()), status).await
}

async fn account_page(
    state: &AppState,
    me: &SignedIn,
    csrf: &Csrf,
    notice: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let rows = passkeys::list_for_user(&state.db, me.user.id).await?;
    let deletable = rows.len() > 1;
    let signal = serde_json::json!({
        "rpId": state.config.rp_id(),
        "userId": URL_SAFE_NO_PAD.encode(me.user.id.as_bytes()),
        "allAcceptedCredentialIds": rows.iter().map(|r| r.credential_id.as_str()).collect::<Vec<_>>(),
    });
    let listed: Vec<_> = rows.iter().map(|row| listed_passkey(row, deletable)).collect();
    render(
        status,
        "account.html",
        context! {
            csrf_token => csrf.token(),
            user => context! {
                display_name => me.user.display_name.clone(),
                username => me.user.username.clone(),
                email => me.user.email.clone(),
            },
            passkeys => listed,
            notice => notice,
            error => error,
            passkey_signal => json_for_script(&signal),
        },
    )
}

fn listed_passkey(row: &passkey_row::Model, deletable: bool) -> minijinja::Value {
    context! {
        id => row.id.to_string(),
        name => row.name.clone(),
        created_at => display_time(row.created_at),
        last_used_at => row.last_used_at.map(display_time),
        synced => row.backup_eligible,
        deletable => deletable,
    }
}

fn display_time(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y, %H:%M UTC").to_string()
}
