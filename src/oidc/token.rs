//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6, §4.4): client authentication and the
//! `authorization_code`, `refresh_token` and `client_credentials` grants.
//!
//! A code exchange stores the grant and its refresh token in one transaction; if that fails the
//! code is released, so a code is either redeemed with its tokens stored, or still redeemable.
//! A replayed code revokes the grant its first redemption created — also when the replay races
//! that redemption, whose tokens are then revoked as they are issued; a reused (already
//! rotated) refresh token revokes its whole grant. Both leave a `token.replayed` audit event.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use entity::{grant, user};
use openidconnect::{AccessToken, ExtraTokenFields, RefreshToken, Scope, StandardTokenResponse, core::CoreTokenType};

use super::{
    authorize::verifier_matches,
    clients::{Client, GrantType},
    code::{self, CodeGrant, Redeemed},
    context::AuthContext,
    tokens::{Issue, Person, Subject, new_refresh_token, refresh_token_key},
};
use crate::{
    app::AppState,
    audit::{self, Event},
    error::OAuthError,
    store::{
        grants::{self, NewRefreshToken, RefreshRotation, RefreshWithGrant},
        users,
    },
};

/// The token response (RFC 6749 §5.1), with an ID token where OpenID Connect adds one.
pub type TokenResponse = StandardTokenResponse<IdTokenField, CoreTokenType>;

/// The `id_token` member (OpenID Connect Core §3.1.3.3), kept as the compact JWS Latchkey just
/// signed: `openidconnect`'s own `IdTokenFields` would parse it back only to serialise it again.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IdTokenField {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

/// Decoded form parameters, each name at most once.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Wraps the decoded pairs; a repeated parameter is `invalid_request` (RFC 6749 §3.2).
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        let mut seen = BTreeSet::new();
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(OAuthError::bad_request(
                "invalid_request",
                format!("The parameter {name} appears more than once."),
            ));
        }
        Ok(Form(pairs))
    }

    /// A parameter's value, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::bad_request("invalid_request", format!("{name} is missing.")))
    }
}

/// Authenticates the client of a token, revocation or introspection request:
/// `client_secret_basic`, `client_secret_post`, or `none` for public clients — one method only.
pub async fn authenticate_client(
    state: &AppState,
    authorization: Option<&str>,
    form: &Form,
) -> Result<Arc<Client>, OAuthError> {
    let basic = authorization.map(parse_basic).transpose()?;
    let used_basic = basic.is_some();
    let (client_id, secret) = match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::bad_request("invalid_request", "Use one client authentication method, not two."));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::bad_request("invalid_request", "client_id does not match the credentials."));
            }
            (id, Some(secret))
        }
        (None, secret) => {
            let id = form.get("client_id").ok_or_else(|| OAuthError::invalid_client(false))?;
            (id.to_owned(), secret.map(str::to_owned))
        }
    };
    let Some(client) = state.clients.find(&state.db, &client_id).await? else {
        return Err(OAuthError::invalid_client(used_basic));
    };
    let authenticated = match (&secret, client.settings.public) {
        (None, true) => true,
        (Some(secret), false) => state.client_secrets.verify(&client, secret),
        _ => false,
    };
    if !authenticated {
        return Err(OAuthError::invalid_client(used_basic));
    }
    Ok(client)
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    let malformed = || OAuthError::invalid_client(true);
    let encoded = header.strip_prefix("Basic ").ok_or_else(malformed)?;
    let decoded =
        String::from_utf8(STANDARD.decode(encoded.trim()).map_err(|_| malformed())?).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Ok((unescape(id).ok_or_else(malformed)?, unescape(secret).ok_or_else(malformed)?))
}

/// Answers a token request.
pub async fn exchange(
    state: &AppState,
    authorization: Option<&str>,
    form: &Form,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = form.require("grant_type")?;
    let grant_type: GrantType = grant_type
        .parse()
        .map_err(|_| OAuthError::bad_request("unsupported_grant_type", "This grant type is not supported."))?;
    let client = authenticate_client(state, authorization, form).await?;
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::bad_request("unauthorized_client", "This client may not use this grant type."));
    }
    let response = match grant_type {
        GrantType::AuthorizationCode => exchange_code(state, &client, form, now).await,
        GrantType::RefreshToken => refresh(state, &client, form, now).await,
        GrantType::ClientCredentials => client_credentials(state, &client, form, now),
    }?;
    crate::observe::tokens_issued(grant_type.as_str());
    Ok(response)
}

/// A code or refresh token presented a second time (stolen, or a confused client): revokes
/// the grant it belongs to and records a `token.replayed` audit event, in one transaction.
async fn revoke_replayed(
    state: &AppState,
    client: &Client,
    grant_id: uuid::Uuid,
    token: &'static str,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    tracing::warn!(client_id = %client.client_id, %grant_id, token, "token replayed: grant revoked");
    let mut event = Event::new("token.replayed", now)
        .client(client.client_id.clone())
        .with("grant_id", grant_id.to_string())
        .with("token", token);
    if let Some(grant) = grants::find(&state.db, grant_id).await? {
        event = event.user(grant.user_id);
    }
    let txn = sea_orm::TransactionTrait::begin(&state.db).await?;
    grants::revoke(&txn, grant_id, now).await?;
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(())
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::bad_request("invalid_grant", description)
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6).
async fn exchange_code(
    state: &AppState,
    client: &Client,
    form: &Form,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let code = form.require("code")?;
    let (grant, grant_id, mark) = match code::redeem(&state.ephemeral, code).await? {
        Redeemed::Fresh { grant, grant_id, mark } => (grant, grant_id, mark),
        Redeemed::Replayed { grant_id } => {
            revoke_replayed(state, client, grant_id, "authorization_code", now).await?;
            return Err(invalid_grant("The authorization code was already used."));
        }
        Redeemed::Unknown => return Err(invalid_grant("The authorization code is invalid or expired.")),
    };
    if grant.client_id != client.client_id {
        return Err(invalid_grant("The authorization code was issued to another client."));
    }
    if form.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request."));
    }
    match (&grant.code_challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if verifier_matches(verifier, challenge) => {}
        (Some(_), _) => return Err(invalid_grant("The PKCE code_verifier does not match.")),
        (None, Some(_)) => return Err(invalid_grant("code_verifier was sent but no code_challenge was.")),
        (None, None) => {}
    }
    let (person, refresh) = match store_grant(state, client, &grant, grant_id, now).await {
        Ok(stored) => stored,
        Err(err) => {
            // Nothing was stored (the database failed, or the account is gone): the code
            // stays redeemable, as if this request had never come.
            code::restore(&state.ephemeral, code, &grant).await?;
            return Err(err);
        }
    };
    if code::was_replayed(&state.ephemeral, code, &mark).await? {
        grants::revoke(&state.db, grant_id, now).await?;
    }
    let subject = Subject { person: &person, context: &grant.context, grant_id };
    respond(state, client, &grant.scopes, &subject, grant.nonce.as_deref(), refresh.map(|(t, _)| t), now)
}

/// Stores the grant of a redeemed code, with its refresh token when the client may refresh, in
/// one transaction, provided its person's account still exists and is enabled; returns what
/// the tokens may say about the person, and the refresh token.
async fn store_grant(
    state: &AppState,
    client: &Client,
    grant: &CodeGrant,
    grant_id: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<(Person, Option<(String, String)>), OAuthError> {
    let person = match &grant.person {
        Some(person) => person.clone(),
        None => Person::released(&live_user(state, grant.context.user_id).await?, &grant.scopes),
    };
    let refresh = client.allows_grant(GrantType::RefreshToken).then(new_refresh_token);
    let expires_at = grant_expiry(state, client, &grant.scopes, &grant.context, now);
    let row = grant_row(grant, grant_id, expires_at, now);
    let stored_refresh = refresh.as_ref().map(|(_, key)| NewRefreshToken { key: key.clone(), expires_at });
    if !grants::insert_with_refresh(&state.writes, row, stored_refresh).await? {
        return Err(account_gone());
    }
    Ok((person, refresh))
}

/// How long a grant (and its refresh tokens) may live: with `offline_access` the offline
/// lifetime, otherwise as long as the SSO session could.
fn grant_expiry(
    state: &AppState,
    client: &Client,
    scopes: &BTreeSet<String>,
    context: &AuthContext,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    if scopes.contains("offline_access") {
        now + client.settings.refresh_token_ttl.unwrap_or(state.config.offline_refresh_ttl)
    } else {
        context.auth_time + state.config.session_max_age
    }
}

fn grant_row(grant: &CodeGrant, id: uuid::Uuid, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> grant::Model {
    grant::Model {
        id,
        client_id: grant.client_id.clone(),
        user_id: grant.context.user_id,
        sid: grant.context.sid.clone(),
        scope: grant.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        auth_time: grant.context.auth_time,
        amr: grant.context.amr.join(" "),
        acr: grant.context.acr.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
    }
}

/// The user behind a grant, if they still exist and are enabled.
async fn live_user(state: &AppState, user_id: uuid::Uuid) -> Result<user::Model, OAuthError> {
    enabled(users::find_by_id(&state.hot_path, user_id).await?)
}

/// The user, if they exist and are enabled.
fn enabled(user: Option<user::Model>) -> Result<user::Model, OAuthError> {
    user.filter(|user| !user.disabled).ok_or_else(account_gone)
}

fn account_gone() -> OAuthError {
    invalid_grant("The account is disabled or deleted.")
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2).
async fn refresh(
    state: &AppState,
    client: &Client,
    form: &Form,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let presented = form.require("refresh_token")?;
    let key = refresh_token_key(presented);
    let Some(RefreshWithGrant { token, grant, user }) = grants::find_refresh(&state.hot_path, &key).await? else {
        return Err(invalid_grant("The refresh token is invalid."));
    };
    if grant.client_id != client.client_id {
        return Err(invalid_grant("The refresh token was issued to another client."));
    }
    if token.used_at.is_some() {
        revoke_replayed(state, client, grant.id, "refresh_token", now).await?;
        return Err(invalid_grant("The refresh token was already used."));
    }
    if !grants::is_live(&grant, now) || token.expires_at <= now {
        return Err(invalid_grant("The refresh token has expired or was revoked."));
    }
    let scopes = narrowed_scopes(&grant, form.get("scope"))?;
    let user = enabled(user)?;
    let (new_token, new_key) = new_refresh_token();
    let new = NewRefreshToken { key: new_key, expires_at: token.expires_at };
    let rotation = RefreshRotation { grant_id: grant.id, old_key: key, new, now };
    if !grants::rotate_refresh(&state.writes, rotation).await? {
        revoke_replayed(state, client, grant.id, "refresh_token", now).await?;
        return Err(invalid_grant("The refresh token was already used."));
    }
    let context = AuthContext {
        user_id: grant.user_id,
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        amr: grant.amr.split(' ').map(str::to_owned).collect(),
        acr: grant.acr.clone(),
    };
    let person = Person::released(&user, &scopes);
    let subject = Subject { person: &person, context: &context, grant_id: grant.id };
    respond(state, client, &scopes, &subject, None, Some(new_token), now)
}

/// A refresh may ask for fewer scopes than the grant has, never more (RFC 6749 §6).
fn narrowed_scopes(grant: &grant::Model, requested: Option<&str>) -> Result<BTreeSet<String>, OAuthError> {
    let granted: BTreeSet<String> = grant.scope.split(' ').map(str::to_owned).collect();
    let Some(requested) = requested else { return Ok(granted) };
    let requested: BTreeSet<String> = requested.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if !requested.is_subset(&granted) {
        return Err(OAuthError::bad_request("invalid_scope", "A refresh cannot add scopes."));
    }
    Ok(requested)
}

/// RFC 6749 §4.4: an access token for the (confidential) client itself; no ID token.
fn client_credentials(
    state: &AppState,
    client: &Client,
    form: &Form,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let requested: BTreeSet<String> =
        form.get("scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if requested.iter().any(|s| !client.allows_scope(s) || s == "openid" || s == "offline_access") {
        return Err(OAuthError::bad_request("invalid_scope", "The client may not request these scopes."));
    }
    let issue = issue(state, client, &requested, now);
    let access_token = issue.client_access_token(client.settings.id_token_alg).map_err(internal)?;
    Ok(base_response(access_token, issue.lifetime, &requested, None))
}

fn issue<'a>(state: &'a AppState, client: &'a Client, scopes: &'a BTreeSet<String>, now: DateTime<Utc>) -> Issue<'a> {
    Issue {
        keys: &state.signing_keys,
        issuer: state.issuer(),
        client_id: &client.client_id,
        scopes,
        lifetime: client.settings.access_token_ttl.unwrap_or(state.config.access_token_ttl),
        now,
    }
}

fn respond(
    state: &AppState,
    client: &Client,
    scopes: &BTreeSet<String>,
    subject: &Subject<'_>,
    nonce: Option<&str>,
    refresh_token: Option<String>,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    let issue = issue(state, client, scopes, now);
    let access_token = issue.user_access_token(subject, client.settings.id_token_alg).map_err(internal)?;
    let id_token = issue.id_token(subject, client.settings.id_token_alg, nonce, &access_token).map_err(internal)?;
    let mut response = base_response(access_token, issue.lifetime, scopes, Some(id_token));
    response.set_refresh_token(refresh_token.map(RefreshToken::new));
    Ok(response)
}

fn base_response(
    access_token: String,
    lifetime: Duration,
    scopes: &BTreeSet<String>,
    id_token: Option<String>,
) -> TokenResponse {
    let mut response =
        TokenResponse::new(AccessToken::new(access_token), CoreTokenType::Bearer, IdTokenField { id_token });
    response.set_expires_in(Some(&lifetime));
    if !scopes.is_empty() {
        response.set_scopes(Some(scopes.iter().cloned().map(Scope::new).collect()));
    }
    response
}

fn internal(err: anyhow::Error) -> OAuthError {
    OAuthError::from(crate::error::AppError::Internal(err))
}
