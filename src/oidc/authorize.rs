//! The authorization request (OIDC Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636, RFC 9207):
//! parsing and validating it, and the error answers it may get.
//!
//! The order of checks matters for safety: until the client and the exact redirect URI are
//! known to be registered, every error is shown on Latchkey's own error page and never sent
//! to the (unverified) redirect URI (RFC 6749 §4.1.2.1). Only then are errors returned to the
//! client as `error=` parameters.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::clients::{Client, GrantType};

/// The scopes Latchkey knows; others are ignored (RFC 6749 §3.3 lets the server limit scope).
pub const KNOWN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// How the authorization response travels back to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// The `prompt` parameter (OIDC Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prompt {
    #[default]
    Default,
    /// Never show a page: answer at once or with an error.
    None,
    /// Ask the person to sign in again even with a session.
    Login,
    /// Ask for consent again even when it was given before.
    Consent,
}

/// A validated authorization request from a registered client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    /// Granted scopes: requested, known and allowed for the client; always contains `openid`.
    pub scopes: BTreeSet<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// S256 code challenge (RFC 7636).
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
}

impl AuthorizationRequest {
    /// Space-separated scopes as OAuth writes them.
    pub fn scope_string(&self) -> String {
        self.scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
    }
}

/// Why an authorization request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect.
    Untrusted(String),
    /// An error for the client, delivered to its (verified) redirect URI.
    ToClient(ClientError),
}

/// An OAuth error answer for a verified redirect URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    /// RFC 6749 §4.1.2.1 / OIDC Core §3.1.2.6 error code.
    pub error: &'static str,
    pub description: String,
}

/// The request's parameters, each name once (duplicates are detected by [`single_values`]).
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps decoded query or form pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn duplicated(&self) -> Option<&str> {
        let mut seen = BTreeSet::new();
        self.0.iter().map(|(k, _)| k.as_str()).find(|k| !seen.insert(*k))
    }

    fn repeats(&self, name: &str) -> bool {
        self.0.iter().filter(|(k, _)| k == name).count() > 1
    }
}

/// Reads the client id, so the caller can look the client up before [`validate`].
pub fn client_id(params: &Params) -> Option<&str> {
    params.get("client_id")
}

/// Validates an authorization request against the registered `client` (None: unknown).
pub fn validate(params: &Params, client: Option<&Client>) -> Result<AuthorizationRequest, AuthorizeError> {
    let untrusted = |m: &str| Err(AuthorizeError::Untrusted(m.to_owned()));
    let duplicated = params.duplicated();
    // Whichever parameter repeats first: a repeated client_id or redirect_uri is never trusted.
    if params.repeats("client_id") || params.repeats("redirect_uri") {
        return untrusted("The request repeats client_id or redirect_uri.");
    }
    let Some(client) = client else {
        return untrusted(if params.get("client_id").is_some() {
            "The application that sent you here is not registered with this server."
        } else {
            "The request does not say which application sent you here (client_id is missing)."
        });
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return untrusted("The request has no redirect_uri.");
    };
    if !client.allows_redirect_uri(redirect_uri) {
        return untrusted("The redirect_uri is not registered for this application.");
    }
    // From here on the redirect URI is trusted: errors go back to the client.
    let response_mode = match params.get("response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => ResponseMode::Query,
    };
    let state = params.get("state").map(str::to_owned);
    let to_client = |error: &'static str, description: &str| {
        Err(AuthorizeError::ToClient(ClientError {
            redirect_uri: redirect_uri.to_owned(),
            response_mode,
            state: state.clone(),
            error,
            description: description.to_owned(),
        }))
    };
    if let Some(name) = duplicated {
        return to_client("invalid_request", &format!("The parameter {name} appears more than once."));
    }
    if !matches!(params.get("response_mode"), None | Some("query" | "form_post")) {
        return to_client("invalid_request", "response_mode must be query or form_post.");
    }
    if params.get("request").is_some() {
        return to_client("request_not_supported", "Request objects are not supported.");
    }
    if params.get("request_uri").is_some() {
        return to_client("request_uri_not_supported", "request_uri is not supported.");
    }
    match params.get("response_type") {
        None => return to_client("invalid_request", "response_type is missing."),
        Some("code") => {}
        Some(_) => return to_client("unsupported_response_type", "Only response_type=code is supported."),
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return to_client("unauthorized_client", "This client may not use the authorization code flow.");
    }
    let requested: BTreeSet<&str> = params.get("scope").unwrap_or_default().split(' ').collect();
    if !requested.contains("openid") {
        return to_client("invalid_scope", "The scope must include openid.");
    }
    let scopes = requested
        .into_iter()
        .filter(|s| KNOWN_SCOPES.contains(s) && client.allows_scope(s))
        .map(str::to_owned)
        .collect();
    let code_challenge = match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (None, None) if client.settings.public => {
            return to_client("invalid_request", "Public clients must use PKCE (code_challenge with S256).");
        }
        (None, None) => None,
        (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => Some(challenge.to_owned()),
        (Some(_), Some("S256")) => {
            return to_client("invalid_request", "code_challenge is not a valid S256 challenge.");
        }
        (None, Some(_)) => return to_client("invalid_request", "code_challenge_method without code_challenge."),
        (Some(_), _) => return to_client("invalid_request", "Only code_challenge_method=S256 is supported."),
    };
    let prompt = match parse_prompt(params.get("prompt")) {
        Ok(prompt) => prompt,
        Err(message) => return to_client("invalid_request", message),
    };
    let max_age = match params.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => return to_client("invalid_request", "max_age must be a non-negative integer."),
    };
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        response_mode,
        scopes,
        state,
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge,
        prompt,
        max_age,
        login_hint: params.get("login_hint").map(str::to_owned),
        acr_values: params
            .get("acr_values")
            .unwrap_or_default()
            .split(' ')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is exactly 43 characters of the base64url alphabet.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `select_account` is accepted and needs nothing (the username step is always offered).
fn parse_prompt(value: Option<&str>) -> Result<Prompt, &'static str> {
    let values: BTreeSet<&str> = value.unwrap_or_default().split(' ').filter(|v| !v.is_empty()).collect();
    if values.contains("none") && values.len() > 1 {
        return Err("prompt=none cannot be combined with other values.");
    }
    if values.iter().any(|v| !matches!(*v, "none" | "login" | "consent" | "select_account")) {
        return Err("prompt has an unknown value.");
    }
    Ok(if values.contains("none") {
        Prompt::None
    } else if values.contains("login") {
        Prompt::Login
    } else if values.contains("consent") {
        Prompt::Consent
    } else {
        Prompt::Default
    })
}

/// Checks a PKCE verifier against the stored S256 challenge (RFC 7636 §4.6), in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    valid_verifier && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}
