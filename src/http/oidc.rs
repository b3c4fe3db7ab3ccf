//! OpenID Provider endpoints: discovery, JWKS, authorization (with resume after sign-in and
//! consent), token, userinfo, revocation, introspection and end-session. Protocol rules live
//! in `crate::oidc`; these handlers parse, call, and render.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::CookieJar;
use chrono::Utc;
use entity::user;
use minijinja::context;

use super::{
    cookies,
    csrf::Csrf,
    extract::{CsrfForm, signed_in},
    pages::{PageError, render},
};
use crate::{
    app::AppState,
    error::{AppError, OAuthError},
    oidc::{
        authorize::{self, AuthorizeError, Params, ResponseMode},
        bearer,
        clients::Client,
        flow::{self, AuthorizationResponse, Next},
        logout::{self, EndSession, EndSessionParams},
        pending::{self, Pending},
        token::{self, Form},
    },
    session::Session,
    store::consents,
};

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// Answers with pre-serialised JSON, honouring `If-None-Match`.
fn cached_json(request_headers: &HeaderMap, body: Bytes, etag: &str, max_age: u32) -> Response {
    let cache = [
        (header::ETAG, HeaderValue::from_str(etag).expect("etags are header-safe")),
        (header::CACHE_CONTROL, HeaderValue::from_str(&format!("public, max-age={max_age}")).expect("valid")),
    ];
    if request_headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (body, etag) = state.discovery.clone();
    cached_json(&headers, body, &etag, 3600)
}

/// `GET /jwks.json`.
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (body, etag) = state.signing_keys.jwks();
    cached_json(&headers, body, &etag, 300)
}

/// `GET /authorize`.
pub async fn authorize_get(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    authorize(&state, jar, &csrf, pairs(query.unwrap_or_default().as_bytes())).await
}

/// `POST /authorize` (form-encoded parameters, OIDC Core §3.1.2.1).
pub async fn authorize_post(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    body: Bytes,
) -> Result<Response, PageError> {
    authorize(&state, jar, &csrf, pairs(&body)).await
}

async fn find_client(state: &AppState, client_id: &str) -> Result<Option<Arc<Client>>, AppError> {
    state.clients.find(&state.db, client_id).await
}

async fn authorize(
    state: &AppState,
    jar: CookieJar,
    csrf: &Csrf,
    pairs: Vec<(String, String)>,
) -> Result<Response, PageError> {
    let params = Params::new(pairs);
    let client = match authorize::client_id(&params) {
        Some(id) => find_client(state, id).await?,
        None => None,
    };
    let request = match authorize::validate(&params, client.as_deref()) {
        Ok(request) => request,
        Err(AuthorizeError::Untrusted(message)) => return Err(PageError(AppError::BadRequest(message))),
        Err(AuthorizeError::ToClient(error)) => {
            return answer(state, jar, flow::error_response(&error, state.issuer()), None).await;
        }
    };
    let client = client.expect("validated requests have a client");
    let pending = Pending::new(request, Utc::now());
    continue_request(state, jar, csrf, &pending, None, &client, false).await
}

/// `GET /authorize/resume`: continues the browser's pending request after sign-in.
pub async fn resume(State(state): State<AppState>, jar: CookieJar, csrf: Csrf) -> Result<Response, PageError> {
    let Some((kept, pending, client)) = pending_request(&state, &jar).await? else {
        // The application's request expired or was answered already: the person is signed
        // in all the same, so show their account rather than an error.
        let jar = jar.add(cookies::removal(cookies::AUTHZ, state.config.is_https()));
        return Ok((jar, Redirect::to("/account")).into_response());
    };
    continue_request(&state, jar, &csrf, &pending, Some(&kept), &client, false).await
}

/// The value of the browser's `latchkey_authz` cookie (its pending request, kept), if any.
pub(super) fn kept_pending(state: &AppState, jar: &CookieJar) -> Option<String> {
    jar.get(&cookies::name(cookies::AUTHZ, state.config.is_https())).map(|c| c.value().to_owned())
}

/// The browser's pending request and the cookie value it is kept as.
pub(super) async fn browser_pending(state: &AppState, jar: &CookieJar) -> Result<Option<(String, Pending)>, AppError> {
    let Some(kept) = kept_pending(state, jar) else {
        return Ok(None);
    };
    let found = pending::find(&state.ephemeral, &state.pending_key, &kept, Utc::now()).await?;
    Ok(found.map(|pending| (kept, pending)))
}

/// The browser's pending request (its cookie value, the request, its client).
async fn pending_request(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(String, Pending, Arc<Client>)>, AppError> {
    let Some((kept, pending)) = browser_pending(state, jar).await? else {
        return Ok(None);
    };
    Ok(find_client(state, &pending.request.client_id).await?.map(|client| (kept, pending, client)))
}

/// Answers, signs in, or asks for consent. `kept_as` is the value of the browser's cookie for
/// the request; a request that cannot be answered at once is kept only then.
async fn continue_request(
    state: &AppState,
    jar: CookieJar,
    csrf: &Csrf,
    pending: &Pending,
    kept_as: Option<&str>,
    client: &Client,
    consent_given: bool,
) -> Result<Response, PageError> {
    let me = signed_in(&jar, state).await?;
    let person = me.as_ref().map(|m| (&m.session, &m.user));
    match flow::decide(state, pending, client, person, consent_given, Utc::now()).await? {
        Next::Answer(response) => answer(state, jar, response, kept_as).await,
        Next::SignIn => {
            let jar = keep_pending(state, jar, pending, kept_as).await?;
            Ok((jar, Redirect::to("/login")).into_response())
        }
        Next::Consent => {
            let jar = keep_pending(state, jar, pending, kept_as).await?;
            let scopes: Vec<_> = pending
                .request
                .scopes
                .iter()
                .map(|s| context! { name => s, description => scope_description(s) })
                .collect();
            let page = render(
                StatusCode::OK,
                "consent.html",
                context! {
                    csrf_token => csrf.token(),
                    client_name => client.settings.name.clone(),
                    user_name => me.map(|m| m.user.display_name),
                    scopes => scopes,
                },
            )?;
            Ok((jar, page).into_response())
        }
    }
}

/// Keeps the request (unless it is kept already) in the browser's `latchkey_authz` cookie.
async fn keep_pending(
    state: &AppState,
    jar: CookieJar,
    pending: &Pending,
    kept_as: Option<&str>,
) -> Result<CookieJar, AppError> {
    if kept_as.is_some() {
        return Ok(jar);
    }
    let kept = pending::keep(&state.ephemeral, &state.pending_key, pending).await?;
    Ok(jar.add(cookies::build(cookies::AUTHZ, kept, Some(pending::PENDING_TTL), state.config.is_https())))
}

fn scope_description(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "offline_access" => "Stay connected when you are not using it",
        _ => "Use an additional permission",
    }
}

/// Where a pending authorization request continues after sign-in, unless answered at once.
pub const RESUME: &str = "/authorize/resume";

/// Where the browser goes right after `session` opened for `user`. A pending request whose
/// answer is a plain redirect (query response mode, an http(s) redirect URI) is answered here
/// and then, so the browser goes straight back to the application: one redirect and one
/// request fewer than through `/authorize/resume`, which still takes every other case (consent,
/// form post, a custom-scheme redirect URI, a sign-in that does not satisfy the request).
/// Without a pending request, the account page.
pub async fn after_sign_in(
    state: &AppState,
    jar: CookieJar,
    session: &Session,
    user: &user::Model,
) -> Result<(CookieJar, String), AppError> {
    if kept_pending(state, &jar).is_none() {
        return Ok((jar, "/account".into()));
    }
    let resume = || RESUME.to_owned();
    let Some((kept, pending, client)) = pending_request(state, &jar).await? else {
        return Ok((jar, resume()));
    };
    let plain_redirect = pending.request.response_mode == ResponseMode::Query
        && ["https://", "http://"].iter().any(|scheme| pending.request.redirect_uri.starts_with(scheme));
    if !plain_redirect {
        return Ok((jar, resume()));
    }
    match flow::decide(state, &pending, &client, Some((session, user)), false, Utc::now()).await? {
        Next::Answer(response) => Ok((forget_pending(state, jar, Some(&kept)).await?, response.redirect_url())),
        Next::SignIn | Next::Consent => Ok((jar, resume())),
    }
}

/// Forgets the pending request (`kept_as`, when the browser keeps it) and its cookie, so it
/// cannot be answered twice.
async fn forget_pending(state: &AppState, jar: CookieJar, kept_as: Option<&str>) -> Result<CookieJar, AppError> {
    if let Some(kept) = kept_as {
        pending::forget(&state.ephemeral, kept).await?;
    }
    Ok(jar.add(cookies::removal(cookies::AUTHZ, state.config.is_https())))
}

/// Delivers an authorization response (success or error) and forgets the pending request.
async fn answer(
    state: &AppState,
    jar: CookieJar,
    response: AuthorizationResponse,
    kept_as: Option<&str>,
) -> Result<Response, PageError> {
    let jar = forget_pending(state, jar, kept_as).await?;
    match response.response_mode {
        ResponseMode::Query => Ok((jar, Redirect::to(&response.redirect_url())).into_response()),
        ResponseMode::FormPost => {
            let params: Vec<_> = response.params.iter().map(|(k, v)| context! { name => *k, value => v }).collect();
            let mut page = render(
                StatusCode::OK,
                "form_post.html",
                context! { action => response.redirect_uri.clone(), params => params },
            )?;
            // The form posts to the client: allow exactly its origin as a form target.
            let origin =
                url::Url::parse(&response.redirect_uri).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
            let policy = format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action {origin}; frame-ancestors 'none'; base-uri 'none'"
            );
            if let Ok(value) = HeaderValue::from_str(&policy) {
                page.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
            }
            Ok((jar, page).into_response())
        }
    }
}

#[derive(serde::Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    decision: String,
}

/// `POST /authorize/consent`: **Allow** or **Deny**.
pub async fn consent_post(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Result<Response, PageError> {
    let Some((kept, pending, client)) = pending_request(&state, &jar).await? else {
        return Err(PageError(AppError::BadRequest(
            "This request has expired. Go back to the application and start again.".into(),
        )));
    };
    let Some(me) = signed_in(&jar, &state).await? else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    if form.decision != "allow" {
        let error = authorize::ClientError {
            redirect_uri: pending.request.redirect_uri.clone(),
            response_mode: pending.request.response_mode,
            state: pending.request.state.clone(),
            error: "access_denied",
            description: "The person denied access.".into(),
        };
        return answer(&state, jar, flow::error_response(&error, state.issuer()), Some(&kept)).await;
    }
    consents::grant(&state.db, me.user.id, &client.client_id, &pending.request.scopes, Utc::now())
        .await
        .map_err(AppError::from)?;
    continue_request(&state, jar, &csrf, &pending, Some(&kept), &client, true).await
}

/// `POST /token`.
pub async fn token_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(OAuthError::bad_request(
            "invalid_request",
            "Send the request as application/x-www-form-urlencoded.",
        ));
    }
    let form = Form::new(pairs(&body))?;
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let response = token::exchange(&state, authorization, &form, Utc::now()).await?;
    Ok(([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(response)).into_response())
}

/// `GET /userinfo` and `POST /userinfo` with a bearer token (RFC 6750 §2.1).
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, OAuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_request",
            description: "A bearer access token is required.".into(),
            www_authenticate: Some(r#"Bearer realm="latchkey""#.into()),
        })?;
    let claims = bearer::userinfo(&state, token.trim(), Utc::now()).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(claims)).into_response())
}

async fn authenticated_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Arc<Client>, Form), OAuthError> {
    let form = Form::new(pairs(body))?;
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let client = token::authenticate_client(state, authorization, &form).await?;
    Ok((client, form))
}

/// `POST /revoke` (RFC 7009).
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    let (client, form) = authenticated_form(&state, &headers, &body).await?;
    let token = form.get("token").ok_or_else(|| OAuthError::bad_request("invalid_request", "token is missing."))?;
    bearer::revoke(&state, &client, token, Utc::now()).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (client, form) = authenticated_form(&state, &headers, &body).await?;
    let token = form.get("token").ok_or_else(|| OAuthError::bad_request("invalid_request", "token is missing."))?;
    let answer = bearer::introspect(&state, &client, token, Utc::now()).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

/// `GET /end-session`.
pub async fn end_session_get(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let params: EndSessionParams = serde_urlencoded::from_str(&query.unwrap_or_default()).unwrap_or_default();
    end_session(&state, jar, &csrf, params).await
}

/// `POST /end-session`.
pub async fn end_session_post(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: Csrf,
    body: Bytes,
) -> Result<Response, PageError> {
    let params: EndSessionParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    end_session(&state, jar, &csrf, params).await
}

async fn end_session(
    state: &AppState,
    jar: CookieJar,
    csrf: &Csrf,
    params: EndSessionParams,
) -> Result<Response, PageError> {
    match logout::check(state, &params, Utc::now()).await? {
        EndSession::SignOutAndRedirect(redirect) => sign_out(state, jar, redirect).await,
        EndSession::Confirm { client } => Ok(render(
            StatusCode::OK,
            "end_session.html",
            context! {
                csrf_token => csrf.token(),
                client_name => client.as_ref().map(|c| c.settings.name.clone()),
                client_id => client.as_ref().map(|c| c.client_id.clone()),
                post_logout_redirect_uri => params.post_logout_redirect_uri,
                state => params.state,
            },
        )?),
    }
}

/// `POST /end-session/confirm`: the person pressed **Sign out**.
pub async fn end_session_confirm(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(params): CsrfForm<EndSessionParams>,
) -> Result<Response, PageError> {
    let client = match params.client_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => find_client(&state, id).await?,
        None => None,
    };
    let redirect = logout::confirmed_redirect(client.as_deref(), &params);
    sign_out(&state, jar, redirect).await
}

/// Ends this browser's session, then redirects or shows the signed-out page.
pub async fn sign_out(state: &AppState, jar: CookieJar, redirect: Option<String>) -> Result<Response, PageError> {
    let https = state.config.is_https();
    if let Some(cookie) = jar.get(&cookies::name(cookies::SESSION, https)) {
        logout::end_session(state, cookie.value(), Utc::now()).await?;
    }
    let jar = jar.add(cookies::removal(cookies::SESSION, https));
    match redirect {
        Some(url) => Ok((jar, Redirect::to(&url)).into_response()),
        None => {
            let page = render(
                StatusCode::OK,
                "message.html",
                context! { title => "Signed out", message => "You are signed out of Latchkey.", link => context! { href => "/login", text => "Sign in again" } },
            )?;
            Ok((jar, page).into_response())
        }
    }
}
