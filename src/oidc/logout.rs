//! Ending SSO sessions: sign-out, RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)
//! and back-channel logout (OpenID Connect Back-Channel Logout 1.0).
//!
//! Ending a session revokes every grant made in it (refresh tokens die, access tokens fail at
//! userinfo and introspection) and notifies each client with a `backchannel_logout_uri` with a
//! signed logout token, delivered in the background with bounded retries: the person's
//! sign-out never waits for a client.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::grant;
use serde::Serialize;
use serde_json::json;
use url::Url;

use super::{clients::Client, tokens::LatchkeyIdTokenClaims};
use crate::{app::AppState, error::AppError, session, store::grants};

/// Delivery attempts per client, and the pause before the first retry (doubling after).
const DELIVERY_ATTEMPTS: u32 = 4;
const FIRST_RETRY_AFTER: Duration = Duration::from_millis(500);

/// Ends the session whose cookie value is `session_id`: revokes its grants and notifies
/// clients over the back channel.
pub async fn end_session(state: &AppState, session_id: &str, now: DateTime<Utc>) -> Result<(), AppError> {
    let Some(ended) = session::load(&state.ephemeral, state.session_policy(), session_id, now).await? else {
        return Ok(());
    };
    session::end(&state.ephemeral, session_id).await?;
    let revoked = grants::revoke_for_session(&state.db, &ended.sid, now).await?;
    tracing::info!(user_id = %ended.user_id, grants = revoked.len(), "signed out");
    notify_clients(state, revoked, now).await
}

/// Sends back-channel logout tokens for revoked grants, one per client and session.
pub async fn notify_clients(state: &AppState, revoked: Vec<grant::Model>, now: DateTime<Utc>) -> Result<(), AppError> {
    let mut notified = std::collections::BTreeSet::new();
    for grant in revoked {
        if !notified.insert((grant.client_id.clone(), grant.sid.clone())) {
            continue;
        }
        let Some(client) = state.clients.find(&state.db, &grant.client_id).await? else { continue };
        let Some(uri) = client.settings.backchannel_logout_uri.clone() else { continue };
        let token = logout_token(state, &client, &grant, now)?;
        tokio::spawn(deliver(state.http.clone(), uri, token, client.client_id.clone()));
    }
    Ok(())
}

#[derive(Serialize)]
struct LogoutTokenClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sub: String,
    sid: &'a str,
    events: serde_json::Value,
}

/// The logout token (Back-Channel Logout §2.4): `typ: logout+jwt`, `sid`, `sub`, the event.
fn logout_token(
    state: &AppState,
    client: &Client,
    grant: &grant::Model,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let claims = LogoutTokenClaims {
        iss: state.issuer(),
        aud: &client.client_id,
        iat: now.timestamp(),
        exp: (now + Duration::from_secs(120)).timestamp(),
        jti: crate::random_token(),
        sub: grant.user_id.to_string(),
        sid: &grant.sid,
        events: json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
    };
    Ok(state.signing_keys.sign(client.settings.id_token_alg, Some("logout+jwt"), &claims, now)?)
}

async fn deliver(http: reqwest::Client, uri: Url, token: String, client_id: String) {
    let mut pause = FIRST_RETRY_AFTER;
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let sent = http.post(uri.clone()).form(&[("logout_token", &token)]).send().await;
        match sent {
            Ok(response) if response.status().is_success() => {
                tracing::info!(%client_id, attempt, "back-channel logout delivered");
                return;
            }
            Ok(response) => {
                tracing::warn!(%client_id, attempt, status = %response.status(), "back-channel logout refused")
            }
            Err(err) => tracing::warn!(%client_id, attempt, error = %err, "back-channel logout not delivered"),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// What an end-session request may do without asking the person.
pub enum EndSession {
    /// The hint proved the client: sign out and go to this URL (or the signed-out page).
    SignOutAndRedirect(Option<String>),
    /// Unverified: ask the person to confirm with **Sign out**.
    Confirm { client: Option<Arc<Client>> },
}

/// Parameters of an end-session request (RP-Initiated Logout §2).
#[derive(Debug, Default, serde::Deserialize)]
pub struct EndSessionParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
}

/// Checks an end-session request. Redirects only to a post-logout URI registered for the
/// client that a valid `id_token_hint` (signature and issuer checked; expiry not, §2) names.
pub async fn check(state: &AppState, params: &EndSessionParams, now: DateTime<Utc>) -> Result<EndSession, AppError> {
    let hinted = params.id_token_hint.as_deref().and_then(|hint| {
        let claims: LatchkeyIdTokenClaims = state.signing_keys.verify_ignoring_expiry(hint, now).ok()?;
        (claims.issuer().as_str() == state.issuer()).then(|| claims.audiences().first().map(|a| a.to_string()))?
    });
    let client_id = hinted.clone().or_else(|| params.client_id.clone());
    let client = match &client_id {
        Some(id) => state.clients.find(&state.db, id).await?,
        None => None,
    };
    let hint_valid = hinted.is_some() && (params.client_id.is_none() || params.client_id == hinted);
    let bad_hint = params.id_token_hint.is_some() && !hint_valid;
    let redirect = match (&client, &params.post_logout_redirect_uri) {
        (Some(client), Some(uri)) if client.allows_post_logout_redirect_uri(uri) => {
            Some(with_state(uri, params.state.as_deref()))
        }
        (_, Some(_)) => return Ok(EndSession::Confirm { client }),
        (_, None) => None,
    };
    if hint_valid && !bad_hint {
        Ok(EndSession::SignOutAndRedirect(redirect))
    } else {
        Ok(EndSession::Confirm { client })
    }
}

/// Where a confirmed sign-out goes: a registered post-logout URI of `client`, or nowhere.
pub fn confirmed_redirect(client: Option<&Client>, params: &EndSessionParams) -> Option<String> {
    let uri = params.post_logout_redirect_uri.as_deref()?;
    client.filter(|c| c.allows_post_logout_redirect_uri(uri)).map(|_| with_state(uri, params.state.as_deref()))
}

fn with_state(uri: &str, state: Option<&str>) -> String {
    let mut url = Url::parse(uri).expect("registered URIs are absolute");
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    url.to_string()
}
