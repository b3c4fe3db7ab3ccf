//! The OpenID Provider as a real relying party sees it: the `openidconnect` crate's client
//! side does discovery, the code flow with PKCE, ID token verification against the published
//! JWKS, refresh, userinfo and RP-initiated logout; then every rule is broken once.

use chrono::Utc;
use latchkey::oidc::clients::{self, ClientSpec};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    core::{CoreClient, CoreProviderMetadata, CoreResponseType},
};
use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, unique_name},
    on_both_backends,
};

pub const REDIRECT_URI: &str = "http://localhost:9/callback";
const LOGOUT_URI: &str = "http://localhost:9/signed-out";

/// Registers a client; returns its id and secret (None for public clients).
pub async fn register(app: &TestApp, spec: ClientSpec) -> (String, Option<String>) {
    let (client, secret) = clients::create(&app.state.db, &app.state.client_secrets, &spec, Utc::now()).await.unwrap();
    (client.client_id, secret)
}

pub fn first_party() -> ClientSpec {
    ClientSpec {
        name: "Test RP".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![LOGOUT_URI.into()],
        first_party: true,
        ..Default::default()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A signed-in browser with its authenticator.
pub async fn signed_in_person(app: &TestApp) -> (Browser, SoftAuthenticator, String) {
    let browser = app.browser();
    let mut auth = SoftAuthenticator::default();
    let name = unique_name("rp-user");
    browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Rita Person").await;
    (browser, auth, name)
}

/// Follows an authorization URL in `browser` until it leaves Latchkey; returns the final URL.
async fn follow(browser: &Browser, url: &str) -> url::Url {
    let mut next = url.to_owned();
    for _ in 0..5 {
        let response = browser.client.get(&next).send().await.unwrap();
        assert!(response.status().is_redirection(), "{next}: {} {}", response.status(), response.text().await.unwrap());
        let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
        let resolved = url::Url::parse(&browser.base).unwrap().join(&location).unwrap();
        if resolved.as_str().starts_with(REDIRECT_URI) || resolved.as_str().starts_with(LOGOUT_URI) {
            return resolved;
        }
        next = resolved.to_string();
    }
    panic!("too many redirects");
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

on_both_backends!(code_flow_with_a_real_relying_party, replayed_code_and_reused_refresh_token_revoke);

async fn code_flow_with_a_real_relying_party(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let (browser, _, name) = signed_in_person(&app).await;
    let http = http();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http).await.unwrap();
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), secret.map(ClientSecret::new))
            .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let callback = follow(&browser, auth_url.as_str()).await;
    assert_eq!(query(&callback, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(query(&callback, "iss").as_deref(), Some(app.base.as_str()), "RFC 9207");
    let code = query(&callback, "code").expect("a code");

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("the ID token verifies with the published JWKS");
    let user = latchkey::store::users::find_by_login(&app.state.db, &name).await.unwrap().unwrap();
    assert_eq!(claims.subject().as_str(), user.id.to_string(), "sub is the stable user id");
    assert_eq!(claims.preferred_username().unwrap().as_str(), name);
    assert_eq!(claims.email().unwrap().as_str(), format!("{name}@example.com"));
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "phrh");
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(amr, ["hwk", "user", "mfa"]);
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    let raw: Value = jwt_payload(&id_token.to_string());
    assert!(raw["sid"].is_string());

    let info: Value = http
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], user.id.to_string());
    assert_eq!(info["name"], "Rita Person");

    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client.exchange_refresh_token(&refresh).unwrap().request_async(&http).await.unwrap();
    assert_ne!(refreshed.refresh_token().unwrap().secret(), refresh.secret(), "refresh tokens rotate");
    assert!(refreshed.id_token().unwrap().claims(&verifier, |_: Option<&Nonce>| Ok(())).is_ok());

    // RP-initiated logout with the ID token as hint goes straight back to the client.
    let logout = format!(
        "{}/end-session?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        app.base,
        id_token,
        urlencode(LOGOUT_URI)
    );
    let back = follow(&browser, &logout).await;
    assert_eq!(back.as_str(), format!("{LOGOUT_URI}?state=bye"));
    let after =
        http.get(format!("{}/userinfo", app.base)).bearer_auth(refreshed.access_token().secret()).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "logout revokes what the session granted");
    assert!(after.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
    let refused = client.exchange_refresh_token(refreshed.refresh_token().unwrap()).unwrap().request_async(&http).await;
    assert!(refused.is_err());
    assert_eq!(browser.get("/account").await.location(), "/login", "the SSO session ended");
}

async fn replayed_code_and_reused_refresh_token_revoke(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (browser, _, _) = signed_in_person(&app).await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let first = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(first.2.get(header::CACHE_CONTROL).unwrap(), "no-store");
    let replay = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!((replay.0, replay.1["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let access = first.1["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, access).await, StatusCode::UNAUTHORIZED, "a replayed code revokes its tokens");
    let refresh = first.1["refresh_token"].as_str().unwrap();
    let after_replay =
        token_request(&app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(after_replay.1["error"], "invalid_grant");

    // Refresh-token reuse revokes the whole family.
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let tokens = redeem_code(&app, &client_id, &secret, &code, &verifier).await.1;
    let old = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated =
        token_request(&app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &old)]).await.1;
    let newer = rotated["refresh_token"].as_str().unwrap().to_owned();
    let reuse =
        token_request(&app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &old)]).await;
    assert_eq!(reuse.1["error"], "invalid_grant");
    let family =
        token_request(&app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &newer)]).await;
    assert_eq!(family.1["error"], "invalid_grant", "the rotated successor died with the family");
    assert_eq!(userinfo_status(&app, rotated["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
}

/// Runs an authorization request with PKCE in a signed-in browser; returns code and verifier.
pub async fn authorize(browser: &Browser, app: &TestApp, client_id: &str, extra: &str) -> (String, String) {
    let verifier = PkceCodeVerifier::new(crate::helpers::unique_name("verifier-verifier-verifier-verifier"));
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let url = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile%20offline_access&state=s1&nonce=n1&code_challenge={}&code_challenge_method=S256{extra}",
        app.base,
        urlencode(REDIRECT_URI),
        challenge.as_str()
    );
    let callback = follow(browser, &url).await;
    (query(&callback, "code").unwrap_or_else(|| panic!("no code in {callback}")), verifier.secret().clone())
}

pub async fn token_request(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value, header::HeaderMap) {
    client_post(app, "/token", client_id, secret, form).await
}

/// A form POST to one of the client-authenticated endpoints (`/token`, `/introspect`,
/// `/revoke`) with `client_secret_basic`: the status, the JSON body (`Null` when there is none)
/// and the headers.
pub async fn client_post(
    app: &TestApp,
    path: &str,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value, header::HeaderMap) {
    let response =
        http().post(format!("{}{path}", app.base)).basic_auth(client_id, Some(secret)).form(form).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, response.json().await.unwrap_or(Value::Null), headers)
}

/// Exchanges an authorization code with its PKCE verifier at the token endpoint.
pub async fn redeem_code(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value, header::HeaderMap) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    token_request(app, client_id, secret, &form).await
}

pub async fn userinfo_status(app: &TestApp, access_token: &str) -> StatusCode {
    http().get(format!("{}/userinfo", app.base)).bearer_auth(access_token).send().await.unwrap().status()
}

pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn jwt_payload(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
