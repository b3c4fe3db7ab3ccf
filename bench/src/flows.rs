//! What one virtual user does once: the complete sign-in and code flow, a code exchange, a
//! refresh, a userinfo call, or a discovery/JWKS fetch — each request exactly as a browser or a
//! relying party sends it, each answer checked (statuses, `state`, `iss`, the ID token's
//! signature against the published JWKS and its nonce).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use http::{Method, StatusCode, header};
use latchkey_softkey::SoftAuthenticator;
use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce, core::CoreIdToken};
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    Alg, LoginMode, Options,
    agent::{Agent, Answer, Body, FlowError, Jar, StepTimes, basic_authorization},
    jwk::{IdTokenVerifier, JwkSet},
};

/// Cookies a returning browser still holds after its sign-in session ended: the remembered
/// user (30 days) and the CSRF seed.
const RETURNING_COOKIES: &[&str] = &["latchkey_remember", "latchkey_csrf"];

/// One account the generator signed up, with the authenticator holding its passkey.
pub struct Person {
    /// Its username.
    pub username: String,
    /// The software authenticator holding its passkey.
    pub authenticator: SoftAuthenticator,
    /// The cookies its browser keeps between flows (remembered mode).
    pub returning: Jar,
}

/// What every virtual user shares: where to send requests and the client to act as.
pub struct Shared {
    /// The HTTP side.
    pub agent: Agent,
    /// The OIDC client.
    pub client_id: String,
    /// Its secret (`client_secret_basic`).
    pub client_secret: String,
    /// Its registered redirect URI (never contacted: the flow stops at the redirect).
    pub redirect_uri: String,
    /// How a login starts.
    pub login_mode: LoginMode,
    /// The published JWK set, fetched once before the run.
    pub jwks: JwkSet,
    /// The algorithm the client's ID tokens must be signed with.
    pub alg: Alg,
}

impl Shared {
    /// Fetches the JWK set and prepares to act as the client `options` names.
    pub async fn new(options: &Options, agent: Agent) -> anyhow::Result<Shared> {
        let answer = agent.get("jwks", "/jwks.json", &mut Jar::default(), &mut StepTimes::new()).await;
        let answer = answer.and_then(|a| a.expect("jwks", StatusCode::OK)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let jwks: JwkSet = serde_json::from_str(&answer.body)?;
        Ok(Shared {
            agent,
            client_id: options.client_id(),
            client_secret: options.client_secret.clone(),
            redirect_uri: options.redirect_uri.clone(),
            login_mode: options.login_mode,
            jwks,
            alg: options.alg,
        })
    }

    /// An ID-token verifier for this client (one per virtual user).
    pub fn verifier(&self) -> anyhow::Result<IdTokenVerifier> {
        Ok(IdTokenVerifier::new_confidential_client(
            ClientId::new(self.client_id.clone()),
            ClientSecret::new(self.client_secret.clone()),
            IssuerUrl::new(self.agent.base.clone())?,
            self.jwks.clone(),
        )
        .set_allowed_algs([self.alg.core()]))
    }
}

/// A fresh random value, base64url (state, nonce, PKCE verifier).
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// Signs up `username` through the pages (`/signup`, then the passkey); returns the
/// authenticator holding the new passkey and the browser, signed in.
pub async fn sign_up(agent: &Agent, username: &str) -> Result<(SoftAuthenticator, Jar), FlowError> {
    let (mut jar, mut times) = (Jar::default(), StepTimes::new());
    let form = agent.get("signup", "/signup", &mut jar, &mut times).await?.expect("signup", StatusCode::OK)?;
    let csrf = form.csrf_token("signup")?.to_owned();
    let email = format!("{username}@bench.example");
    let fields = [("csrf_token", csrf.as_str()), ("username", username), ("email", &email), ("display_name", "Bench")];
    let page = agent.post_form("signup", "/signup", &fields, &mut jar, &mut times).await?;
    let options = page.expect("signup", StatusCode::OK)?.json_block("signup", "passkey-creation-options")?;
    let mut authenticator = SoftAuthenticator::default();
    let credential = authenticator.register(&options, &agent.base);
    let done = agent.post_json("signup", "/signup/passkey", &credential, &mut jar, &mut times).await?;
    done.expect("signup_passkey", StatusCode::OK)?;
    Ok((authenticator, jar))
}

/// An authorization request with PKCE, as a relying party builds it.
pub struct AuthorizationRequest {
    /// The path and query of `/authorize`.
    pub path: String,
    /// The `state` to expect back.
    pub state: String,
    /// The `nonce` to expect in the ID token.
    pub nonce: String,
    /// The PKCE verifier for the token request.
    pub verifier: String,
}

impl AuthorizationRequest {
    /// A new request for `shared`'s client, scope `openid`.
    pub fn new(shared: &Shared) -> Self {
        let (state, nonce, verifier) = (random_value(), random_value(), random_value());
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        let path = format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state={state}&nonce={nonce}\
             &code_challenge={challenge}&code_challenge_method=S256",
            encode(&shared.client_id),
            encode(&shared.redirect_uri),
        );
        AuthorizationRequest { path, state, nonce, verifier }
    }

    /// The code from the authorization response `answer` (a 303 to the redirect URI), after
    /// checking `state` and `iss` (RFC 9207).
    pub fn code_from(&self, shared: &Shared, step: &'static str, answer: Answer) -> Result<String, FlowError> {
        let answer = answer.expect(step, StatusCode::SEE_OTHER)?;
        self.code_in(shared, step, &answer.location.unwrap_or_default())
    }

    /// The code in `location`, the authorization response's URL, after checking `state` and `iss`.
    pub fn code_in(&self, shared: &Shared, step: &'static str, location: &str) -> Result<String, FlowError> {
        if !location.starts_with(&shared.redirect_uri) {
            return Err(FlowError::new(step, format!("redirected to {}", location.split('?').next().unwrap_or(""))));
        }
        let url = url::Url::parse(location).map_err(|_| FlowError::new(step, "bad redirect URL"))?;
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        if let Some(error) = param("error") {
            return Err(FlowError::new(step, error));
        }
        if param("state").as_deref() != Some(self.state.as_str()) {
            return Err(FlowError::new(step, "state mismatch"));
        }
        if param("iss").as_deref() != Some(shared.agent.base.as_str()) {
            return Err(FlowError::new(step, "iss mismatch"));
        }
        param("code").ok_or_else(|| FlowError::new(step, "no code"))
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The complete flow for `person`: `/authorize` → sign-in (per the login mode) → assertion,
/// answered with the redirect to the client → `/token` → ID token verified. The browser starts without a session
/// each time (a new browser, or a returning one whose session ended).
pub async fn login(
    shared: &Shared,
    verifier: &IdTokenVerifier,
    person: &mut Person,
    times: &mut StepTimes,
) -> Result<(), FlowError> {
    let agent = &shared.agent;
    let mut jar = match shared.login_mode {
        LoginMode::Remembered => person.returning.clone(),
        LoginMode::Username | LoginMode::Discoverable => Jar::default(),
    };
    let request = AuthorizationRequest::new(shared);
    let started =
        agent.get("authorize", &request.path, &mut jar, times).await?.expect("authorize", StatusCode::SEE_OTHER)?;
    if started.location.as_deref() != Some("/login") {
        return Err(FlowError::new("authorize", "not sent to /login"));
    }
    let page = agent.get("login_page", "/login", &mut jar, times).await?.expect("login_page", StatusCode::OK)?;
    let is_username_step = page.body.contains("name=\"username\"");
    let options = if is_username_step && shared.login_mode != LoginMode::Discoverable {
        let fields = [("csrf_token", page.csrf_token("login_page")?), ("username", person.username.as_str())];
        let step = agent.post_form("username", "/login", &fields, &mut jar, times).await?;
        step.expect("username", StatusCode::OK)?.json_block("username", "passkey-options")?
    } else {
        page.json_block("login_page", "passkey-options")?
    };
    let assertion = person
        .authenticator
        .assert(&options, &agent.base)
        .ok_or_else(|| FlowError::new("passkey", "no allowed credential"))?;
    let verified = agent.post_json("passkey", "/login/passkey", &assertion, &mut jar, times).await?;
    let verified = verified.expect("passkey", StatusCode::OK)?;
    let answer: Value = serde_json::from_str(&verified.body).map_err(|_| FlowError::new("passkey", "not JSON"))?;
    // A first-party client's request is answered with the sign-in: straight back to it.
    let code = request.code_in(shared, "passkey", answer["redirect_to"].as_str().unwrap_or_default())?;
    if shared.login_mode == LoginMode::Remembered {
        person.returning = jar.keeping(RETURNING_COOKIES);
    }
    let tokens = exchange_code(shared, &code, &request.verifier, times).await?;
    verify_id_token(verifier, &tokens, &request.nonce)
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The ID token.
    pub id_token: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
}

/// `POST /token` with `client_secret_basic` and `fields`.
pub async fn token_request(
    shared: &Shared,
    step: &'static str,
    fields: &[(&str, &str)],
    times: &mut StepTimes,
) -> Result<Tokens, FlowError> {
    let authorization = basic_authorization(&shared.client_id, &shared.client_secret);
    let request = shared.agent.request(Method::POST, "/token").header(header::AUTHORIZATION, authorization);
    let answer = shared.agent.send_form(step, request, fields, &mut Jar::default(), times).await?;
    if answer.status != StatusCode::OK {
        let kind = serde_json::from_str::<OAuthErrorBody>(&answer.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("status {}", answer.status.as_u16()));
        return Err(FlowError::new(step, kind));
    }
    serde_json::from_str(&answer.body).map_err(|_| FlowError::new(step, "not a token response"))
}

/// Exchanges a code (RFC 6749 §4.1.3 with the PKCE verifier).
pub async fn exchange_code(
    shared: &Shared,
    code: &str,
    verifier: &str,
    times: &mut StepTimes,
) -> Result<Tokens, FlowError> {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", shared.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    token_request(shared, "token", &fields, times).await
}

/// Verifies the ID token's signature against the JWKS, its issuer, audience, expiry and nonce.
pub fn verify_id_token(verifier: &IdTokenVerifier, tokens: &Tokens, nonce: &str) -> Result<(), FlowError> {
    let raw = tokens.id_token.as_deref().ok_or_else(|| FlowError::new("id_token", "missing"))?;
    let id_token: CoreIdToken = raw.parse().map_err(|_| FlowError::new("id_token", "malformed"))?;
    let nonce = Nonce::new(nonce.to_owned());
    id_token.claims(verifier, &nonce).map(drop).map_err(|e| FlowError::new("id_token", short(&e.to_string())))
}

/// The first words of an error message, so error kinds stay few.
fn short(message: &str) -> String {
    message.split([':', '(']).next().unwrap_or(message).trim().to_owned()
}

/// Mints a code for a browser that is signed in: `/authorize` answers at once.
pub async fn mint_code(shared: &Shared, jar: &mut Jar) -> Result<(String, AuthorizationRequest), FlowError> {
    let request = AuthorizationRequest::new(shared);
    let answer = shared.agent.get("mint", &request.path, jar, &mut StepTimes::new()).await?;
    let code = request.code_from(shared, "mint", answer)?;
    Ok((code, request))
}

/// One refresh (RFC 6749 §6); rotates `refresh_token` in place.
pub async fn refresh(shared: &Shared, refresh_token: &mut String, times: &mut StepTimes) -> Result<(), FlowError> {
    let fields = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
    let tokens = token_request(shared, "refresh", &fields, times).await?;
    *refresh_token = tokens.refresh_token.ok_or_else(|| FlowError::new("refresh", "no new refresh token"))?;
    Ok(())
}

/// One userinfo call with `access_token`.
pub async fn userinfo(shared: &Shared, access_token: &str, times: &mut StepTimes) -> Result<(), FlowError> {
    let request =
        shared.agent.request(Method::GET, "/userinfo").header(header::AUTHORIZATION, format!("Bearer {access_token}"));
    let answer = shared.agent.send("userinfo", request, Body::default(), &mut Jar::default(), times).await?;
    let answer = answer.expect("userinfo", StatusCode::OK)?;
    if !answer.body.contains("\"sub\"") {
        return Err(FlowError::new("userinfo", "no sub"));
    }
    Ok(())
}

/// One fetch of the discovery document (`jwks` false) or the JWK set (`jwks` true).
pub async fn discovery(shared: &Shared, jwks: bool, times: &mut StepTimes) -> Result<(), FlowError> {
    let (step, path) = if jwks { ("jwks", "/jwks.json") } else { ("discovery", "/.well-known/openid-configuration") };
    let answer = shared.agent.get(step, path, &mut Jar::default(), times).await?.expect(step, StatusCode::OK)?;
    if !answer.body.starts_with('{') {
        return Err(FlowError::new(step, "not JSON"));
    }
    Ok(())
}
