//! Access tokens presented back to Latchkey: userinfo (OIDC Core §5.3), introspection
//! (RFC 7662) and revocation (RFC 7009). Access tokens are self-contained JWTs, but each of
//! these checks that the grant behind the token is still live, so revocation (code replay,
//! logout, a disabled user) takes effect here at once.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::grant;
use openidconnect::{EmptyAdditionalClaims, UserInfoClaims, core::CoreGenderClaim};
use serde_json::{Value, json};

use super::{
    clients::Client,
    tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims, Person, refresh_token_key},
};
use crate::{
    app::AppState,
    error::OAuthError,
    store::grants::{self, RefreshWithGrant},
};

/// A verified access token and, for user tokens, its live grant.
pub struct VerifiedAccessToken {
    pub claims: AccessTokenClaims,
    pub grant: Option<grant::Model>,
}

/// Verifies an access token: signature, type, expiry, issuer, and a live grant.
pub async fn verify_access_token(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedAccessToken, OAuthError> {
    let claims = verify_signed_claims(state, token, now)?;
    let grant = match claims.grant_id {
        None => None,
        Some(id) => Some(live(grants::find(&state.hot_path, id).await?, now)?),
    };
    Ok(VerifiedAccessToken { claims, grant })
}

/// An access token's claims, if its signature, type, expiry and issuer are right.
fn verify_signed_claims(state: &AppState, token: &str, now: DateTime<Utc>) -> Result<AccessTokenClaims, OAuthError> {
    let claims: AccessTokenClaims = state
        .signing_keys
        .verify(token, Some(ACCESS_TOKEN_TYP), now)
        .map_err(|_| OAuthError::invalid_token("The access token is invalid or expired."))?;
    if claims.iss != state.issuer() {
        return Err(OAuthError::invalid_token("The access token was issued by someone else."));
    }
    Ok(claims)
}

/// The access token's grant, if it is still live.
fn live(grant: Option<grant::Model>, now: DateTime<Utc>) -> Result<grant::Model, OAuthError> {
    grant.filter(|g| grants::is_live(g, now)).ok_or_else(|| OAuthError::invalid_token("The access token was revoked."))
}

/// The userinfo answer for a bearer token. Its grant and the grant's person are read with one
/// query.
pub async fn userinfo(state: &AppState, token: &str, now: DateTime<Utc>) -> Result<Value, OAuthError> {
    let claims = verify_signed_claims(state, token, now)?;
    let Some(grant_id) = claims.grant_id else {
        return Err(OAuthError::invalid_token("This access token does not belong to a person."));
    };
    let (grant, user) = grants::find_with_user(&state.hot_path, grant_id).await?.unzip();
    live(grant, now)?;
    let scopes: BTreeSet<String> = claims.scope.split(' ').map(str::to_owned).collect();
    if !scopes.contains("openid") {
        return Err(OAuthError::insufficient_scope("openid"));
    }
    let user = user
        .flatten()
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_token("The account is disabled or deleted."))?;
    let claims: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> =
        UserInfoClaims::new(Person::released(&user, &scopes).claims(), EmptyAdditionalClaims {});
    Ok(serde_json::to_value(claims).expect("claims serialise"))
}

/// RFC 7662: what `client` may learn about `token` (only tokens issued to it are active).
pub async fn introspect(
    state: &AppState,
    client: &Client,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Value, OAuthError> {
    let inactive = json!({"active": false});
    if let Ok(verified) = verify_access_token(state, token, now).await {
        let claims = verified.claims;
        if claims.client_id != client.client_id {
            return Ok(inactive);
        }
        return Ok(json!({
            "active": true, "token_type": "Bearer", "scope": claims.scope, "client_id": claims.client_id,
            "sub": claims.sub, "aud": claims.aud, "iss": claims.iss, "exp": claims.exp, "iat": claims.iat,
            "jti": claims.jti, "sid": claims.sid, "acr": claims.acr, "auth_time": claims.auth_time,
        }));
    }
    match grants::find_refresh(&state.hot_path, &refresh_token_key(token)).await? {
        Some(RefreshWithGrant { token: refresh, grant, .. })
            if grant.client_id == client.client_id
                && refresh.used_at.is_none()
                && refresh.expires_at > now
                && grants::is_live(&grant, now) =>
        {
            Ok(json!({
                "active": true, "token_type": "refresh_token", "scope": grant.scope, "client_id": grant.client_id,
                "sub": grant.user_id.to_string(), "iss": state.issuer(), "exp": refresh.expires_at.timestamp(),
                "iat": refresh.created_at.timestamp(), "sid": grant.sid,
            }))
        }
        _ => Ok(inactive),
    }
}

/// RFC 7009: revokes the grant behind `token` when it belongs to `client`. Unknown tokens and
/// other clients' tokens are ignored (the answer is 200 either way, §2.2).
pub async fn revoke(state: &AppState, client: &Client, token: &str, now: DateTime<Utc>) -> Result<(), OAuthError> {
    let grant = match grants::find_refresh(&state.hot_path, &refresh_token_key(token)).await? {
        Some(refresh) => Some(refresh.grant),
        None => match state.signing_keys.verify::<AccessTokenClaims>(token, Some(ACCESS_TOKEN_TYP), now) {
            Ok(AccessTokenClaims { client_id, grant_id: Some(id), .. }) if client_id == client.client_id => {
                grants::find(&state.hot_path, id).await?
            }
            _ => None,
        },
    };
    if let Some(grant) = grant
        && grant.client_id == client.client_id
    {
        grants::revoke(&state.db, grant.id, now).await?;
        tracing::info!(client_id = %client.client_id, grant_id = %grant.id, "grant revoked by the client");
    }
    Ok(())
}
