//! Minting tokens: ID tokens (OIDC Core §2, claims from `openidconnect`'s types), access tokens
//! (RFC 9068 JWTs, `typ: at+jwt`) and opaque refresh tokens (stored as a SHA-256 hash).

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use entity::user;
use openidconnect::{
    AdditionalClaims, Audience, AuthenticationContextClass, AuthenticationMethodReference, EndUserEmail, EndUserName,
    EndUserUsername, IdTokenClaims, IssuerUrl, LocalizedClaim, Nonce, StandardClaims, SubjectIdentifier,
    core::CoreGenderClaim,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{SigningAlg, context::AuthContext, keys::SigningKeys};

/// The ID token's claims beyond the standard ones: the session id (`sid`, used by
/// back-channel and RP-initiated logout).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    pub sid: String,
}

impl AdditionalClaims for SessionClaims {}

/// Latchkey's ID token claims.
pub type LatchkeyIdTokenClaims = IdTokenClaims<SessionClaims, CoreGenderClaim>;

/// An RFC 9068 access token's claims. `grant_id` names the grant behind the token, so userinfo
/// and introspection can refuse tokens of revoked grants at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<Uuid>,
}

/// `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What tokens may say about a person: `sub` always, the rest only as far as the granted scopes
/// release it (OIDC Core §5.4). An authorization code carries this from the sign-in it stands
/// for, so the exchange needs no second look at the account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Person {
    pub id: Uuid,
    /// With `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// With `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Person {
    /// What `scopes` release of `user`.
    pub fn released(user: &user::Model, scopes: &BTreeSet<String>) -> Person {
        let profile = scopes.contains("profile");
        Person {
            id: user.id,
            username: profile.then(|| user.username.clone()),
            name: profile.then(|| user.display_name.clone()),
            email: scopes.contains("email").then(|| user.email.clone()),
        }
    }

    /// `sub` and the released claims (ID token and userinfo share this).
    pub fn claims(&self) -> StandardClaims<CoreGenderClaim> {
        let mut claims = StandardClaims::new(SubjectIdentifier::new(self.id.to_string()))
            .set_preferred_username(self.username.clone().map(EndUserUsername::new))
            .set_name(self.name.clone().map(|name| LocalizedClaim::from(EndUserName::new(name))));
        if let Some(email) = &self.email {
            // Latchkey does not verify addresses at sign-up (email links prove them later).
            claims = claims.set_email(Some(EndUserEmail::new(email.clone()))).set_email_verified(Some(false));
        }
        claims
    }
}

/// The person and sign-in a user token is about.
pub struct Subject<'a> {
    pub person: &'a Person,
    pub context: &'a AuthContext,
    pub grant_id: Uuid,
}

/// What every token of one response shares.
pub struct Issue<'a> {
    pub keys: &'a SigningKeys,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scopes: &'a BTreeSet<String>,
    pub lifetime: Duration,
    pub now: DateTime<Utc>,
}

impl Issue<'_> {
    fn expires(&self) -> DateTime<Utc> {
        self.now + self.lifetime
    }

    fn scope_string(&self) -> String {
        self.scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
    }

    /// An access token for a person (authorization code and refresh grants), signed with the
    /// client's algorithm.
    pub fn user_access_token(&self, subject: &Subject<'_>, alg: SigningAlg) -> anyhow::Result<String> {
        let claims = AccessTokenClaims {
            iss: self.issuer.to_owned(),
            sub: subject.person.id.to_string(),
            aud: self.issuer.to_owned(),
            exp: self.expires().timestamp(),
            iat: self.now.timestamp(),
            jti: crate::random_token(),
            client_id: self.client_id.to_owned(),
            scope: self.scope_string(),
            auth_time: Some(subject.context.auth_time.timestamp()),
            acr: Some(subject.context.acr.clone()),
            amr: Some(subject.context.amr.clone()),
            sid: Some(subject.context.sid.clone()),
            grant_id: Some(subject.grant_id),
        };
        self.keys.sign(alg, Some(ACCESS_TOKEN_TYP), &claims, self.now)
    }

    /// An access token for the client itself (client credentials grant): `sub` is the client.
    pub fn client_access_token(&self, alg: SigningAlg) -> anyhow::Result<String> {
        let claims = AccessTokenClaims {
            iss: self.issuer.to_owned(),
            sub: self.client_id.to_owned(),
            aud: self.issuer.to_owned(),
            exp: self.expires().timestamp(),
            iat: self.now.timestamp(),
            jti: crate::random_token(),
            client_id: self.client_id.to_owned(),
            scope: self.scope_string(),
            auth_time: None,
            acr: None,
            amr: None,
            sid: None,
            grant_id: None,
        };
        self.keys.sign(alg, Some(ACCESS_TOKEN_TYP), &claims, self.now)
    }

    /// An ID token (OIDC Core §2, §3.1.3.6) signed with the client's algorithm.
    pub fn id_token(
        &self,
        subject: &Subject<'_>,
        alg: SigningAlg,
        nonce: Option<&str>,
        access_token: &str,
    ) -> anyhow::Result<String> {
        let issuer = IssuerUrl::new(self.issuer.to_owned())?;
        let claims = LatchkeyIdTokenClaims::new(
            issuer,
            vec![Audience::new(self.client_id.to_owned())],
            self.expires(),
            self.now,
            subject.person.claims(),
            SessionClaims { sid: subject.context.sid.clone() },
        )
        .set_nonce(nonce.map(|n| Nonce::new(n.to_owned())))
        .set_auth_time(Some(subject.context.auth_time))
        .set_auth_context_ref(Some(AuthenticationContextClass::new(subject.context.acr.clone())))
        .set_auth_method_refs(Some(
            subject.context.amr.iter().cloned().map(AuthenticationMethodReference::new).collect(),
        ))
        .set_access_token_hash(Some(openidconnect::AccessTokenHash::new(super::keys::token_hash(alg, access_token))));
        self.keys.sign(alg, Some("JWT"), &claims, self.now)
    }
}

/// A new opaque refresh token and the key it is stored under. The token starts with a UUIDv7
/// ([`crate::token_with_id`]), and so does its key, so new tokens are appended to the table's
/// key index rather than scattered through it.
pub fn new_refresh_token() -> (String, String) {
    let token = crate::token_with_id(Uuid::now_v7());
    let key = refresh_token_key(&token);
    (token, key)
}

/// The key a refresh token is stored under: the UUID it starts with, in hex, then the token's
/// hash; for a token of an earlier version (random only), its hash alone.
pub fn refresh_token_key(token: &str) -> String {
    let hash = crate::token_hash(token);
    match crate::token_id(token) {
        Some(id) => format!("{}{hash}", id.simple()),
        None => hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> user::Model {
        user::Model {
            id: Uuid::new_v4(),
            username: "ada".into(),
            username_normalized: "ada".into(),
            email: "ada@example.com".into(),
            email_normalized: "ada@example.com".into(),
            display_name: "Ada".into(),
            disabled: false,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn refresh_tokens_are_stored_under_time_ordered_keys() {
        let (first, first_key) = new_refresh_token();
        let (second, second_key) = new_refresh_token();
        assert_eq!((refresh_token_key(&first), refresh_token_key(&second)), (first_key.clone(), second_key.clone()));
        assert!(first_key < second_key, "issued later, sorted later");
        assert!(first_key.ends_with(&crate::token_hash(&first)) && !first_key.contains(&first));
        let earlier = crate::random_token();
        assert_eq!(refresh_token_key(&earlier), crate::token_hash(&earlier), "earlier tokens: the hash alone");
    }

    #[test]
    fn a_person_holds_only_what_the_scopes_release() {
        let user = user();
        let scopes = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let bare = Person::released(&user, &scopes(&["openid"]));
        assert_eq!(serde_json::to_value(&bare).unwrap(), serde_json::json!({"id": user.id}));
        let all = Person::released(&user, &scopes(&["openid", "profile", "email"]));
        let claims = serde_json::to_value(all.claims()).unwrap();
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!((claims["preferred_username"].as_str(), claims["name"].as_str()), (Some("ada"), Some("Ada")));
        assert_eq!(
            (claims["email"].as_str(), claims["email_verified"].as_bool()),
            (Some("ada@example.com"), Some(false))
        );
        let profile_only = serde_json::to_value(Person::released(&user, &scopes(&["profile"])).claims()).unwrap();
        assert!(profile_only.get("email").is_none() && profile_only.get("name").is_some());
    }
}
