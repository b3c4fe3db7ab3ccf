//! CSRF protection for forms: every browser gets a random `latchkey_csrf` cookie, and forms
//! carry `csrf_token = HMAC(csrf_key, cookie)`. A cross-site page can make the browser send the
//! cookie but cannot read it, so it cannot compute the token. JSON endpoints use an `Origin`
//! check instead (see `extract`).

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::cookies;
use crate::{app::AppState, error::AppError, random_token};

/// The CSRF cookie value of this request (existing, or fresh and about to be set).
#[derive(Clone)]
struct CsrfSeed(String);

/// Makes sure the browser holds a CSRF cookie, and exposes its value to handlers.
pub async fn seed_cookie(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let https = state.config.is_https();
    let existing = cookies::sent_value(request.headers(), &cookies::name(cookies::CSRF, https))
        .filter(|v| v.len() == 43)
        .map(str::to_owned);
    let fresh = existing.is_none();
    let seed = existing.unwrap_or_else(random_token);
    request.extensions_mut().insert(CsrfSeed(seed.clone()));
    let mut response = next.run(request).await;
    if fresh {
        let cookie = cookies::build(cookies::CSRF, seed, None, https);
        if let Ok(value) = cookie.to_string().parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Issues and checks CSRF tokens for this browser.
pub struct Csrf {
    seed: String,
    key: Vec<u8>,
}

impl Csrf {
    /// The token to put in a form's hidden `csrf_token` field.
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(crate::keyed_hash(&self.key, &[self.seed.as_bytes()]))
    }

    /// Checks a submitted token in constant time.
    pub fn verify(&self, token: &str) -> Result<(), AppError> {
        let forbidden = || AppError::Forbidden("This form has expired. Go back, reload the page and try again.".into());
        let submitted = URL_SAFE_NO_PAD.decode(token).map_err(|_| forbidden())?;
        if crate::keyed_hash_matches(&self.key, &[self.seed.as_bytes()], &submitted) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

impl FromRequestParts<AppState> for Csrf {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let seed = parts
            .extensions
            .get::<CsrfSeed>()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("CSRF middleware is not installed")))?;
        Ok(Csrf { seed: seed.0.clone(), key: state.csrf_key.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_cookie() {
        let mine = Csrf { seed: "a".repeat(43), key: vec![1; 32] };
        let theirs = Csrf { seed: "b".repeat(43), key: vec![1; 32] };
        assert!(mine.verify(&mine.token()).is_ok());
        assert!(theirs.verify(&mine.token()).is_err());
        assert!(mine.verify("").is_err());
        assert!(mine.verify("%%%").is_err());
    }
}
