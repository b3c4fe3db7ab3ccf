//! The admin API's authentication: `Authorization: Bearer <LATCHKEY_ADMIN_TOKEN>`, compared in
//! constant time. Every admin handler takes [`AdminToken`], which also records who is calling
//! (address, user agent) for the audit log.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::{self, Unauthenticated};
use crate::http::extract::Source;
use crate::{admin::Actor, app::AppState};

/// Proof that the request carried the admin token, and who sent it.
pub struct AdminToken {
    pub actor: Actor,
}

impl FromRequestParts<AppState> for AdminToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        // The router is not mounted without a token; this is only a second lock on the door.
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(problem::not_found());
        };
        let presented = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
        match presented {
            None => Err(Unauthenticated { wrong_token: false }.into_response()),
            Some(token) if !same_token(token, expected) => Err(Unauthenticated { wrong_token: true }.into_response()),
            Some(_) => Ok(AdminToken { actor: actor(parts, state) }),
        }
    }
}

/// The token of an `Authorization: Bearer` header; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Compares digests rather than the tokens, so neither the content nor the length of the
/// admin token leaks through timing.
fn same_token(presented: &str, expected: &str) -> bool {
    Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
}

/// The caller's address (the TCP peer) and user agent.
fn actor(parts: &Parts, state: &AppState) -> Actor {
    let Source { ip, user_agent } = Source::of(parts, state);
    Actor { ip, user_agent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        let token = "0123456789abcdef0123456789abcdef";
        assert!(same_token(token, token));
        assert!(!same_token(&token[1..], token));
        assert!(!same_token(&format!("{token}x"), token));
        assert!(!same_token("", token));
    }
}
