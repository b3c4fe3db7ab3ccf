//! How the provider treats sessions and people: consent, prompt, acr_values, login_hint,
//! form_post, signing algorithms, client credentials, introspection, revocation, end-session
//! without proof, back-channel logout, and disabled users.

use std::sync::{Arc, Mutex};

use latchkey::oidc::clients::ClientSpec;
use openidconnect::{
    ClientId, IssuerUrl, Nonce,
    core::{CoreIdToken, CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
};
use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, unique_name},
    oidc::{REDIRECT_URI, authorize, client_post, first_party, redeem_code, register, token_request, urlencode},
    on_both_backends,
};

on_both_backends!(codes_carry_the_released_claims_but_not_past_a_disabled_account);
on_both_backends!(refresh_tokens_are_time_ordered_and_those_of_earlier_versions_still_work);
on_both_backends!(the_browser_carries_a_pending_request_unless_it_is_too_long_for_a_cookie);
on_both_backends!(client_credentials_introspection_and_revocation);

async fn person(app: &TestApp, auth: &mut SoftAuthenticator) -> (Browser, String) {
    let browser = app.browser();
    let name = unique_name("p");
    browser.sign_up(auth, &name, &format!("{name}@example.com"), "Pat").await;
    (browser, name)
}

/// The PKCE verifier of `authorize_url`'s challenge (RFC 7636, appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A first-party client and the tokens of one person's code flow with it: the client's id and
/// secret, the person's username, the token response.
async fn first_party_tokens(app: &TestApp) -> (String, String, String, Value) {
    let (client_id, secret) = register(app, first_party()).await;
    let secret = secret.unwrap();
    let (browser, name) = person(app, &mut SoftAuthenticator::default()).await;
    let (code, verifier) = authorize(&browser, app, &client_id, "").await;
    let (status, tokens, _) = redeem_code(app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (client_id, secret, name, tokens)
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &str) -> String {
    format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=st&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256{extra}",
        app.base,
        urlencode(REDIRECT_URI)
    )
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn consent_is_asked_once_and_deny_is_access_denied() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, _) = register(&app, ClientSpec { first_party: false, ..first_party() }).await;
    let (browser, _) = person(&app, &mut SoftAuthenticator::default()).await;

    let page = browser.get(&authorize_url(&app, &client_id, "").replace(&app.base, "")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Allow Test RP?"), "{}", page.body);
    let csrf = page.csrf_token();
    let denied = browser.post_form("/authorize/consent", &[("csrf_token", &csrf), ("decision", "deny")]).await;
    assert_eq!(param(denied.location(), "error").as_deref(), Some("access_denied"));

    let page = browser.get(&authorize_url(&app, &client_id, "").replace(&app.base, "")).await;
    let allowed =
        browser.post_form("/authorize/consent", &[("csrf_token", &page.csrf_token()), ("decision", "allow")]).await;
    assert!(param(allowed.location(), "code").is_some(), "{}", allowed.location());

    let again = browser.client.get(authorize_url(&app, &client_id, "")).send().await.unwrap();
    assert!(param(&location(&again), "code").is_some(), "consent is remembered");
    let forced = browser.get(&authorize_url(&app, &client_id, "&prompt=consent").replace(&app.base, "")).await;
    assert!(forced.body.contains("Allow Test RP?"), "prompt=consent asks again");
    let wider = authorize_url(&app, &client_id, "&prompt=none").replace("scope=openid", "scope=openid%20email");
    let silent = location(&browser.client.get(wider).send().await.unwrap());
    assert_eq!(param(&silent, "error").as_deref(), Some("consent_required"), "a new scope needs consent: {silent}");
}

#[tokio::test]
async fn prompt_login_max_age_and_login_hint_send_the_person_to_sign_in() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = person(&app, &mut auth).await;

    let silent = browser.client.get(authorize_url(&app, &client_id, "&prompt=none")).send().await.unwrap();
    assert!(param(&location(&silent), "code").is_some(), "prompt=none with a session answers at once");

    for extra in ["&prompt=login", "&max_age=0"] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let response = browser.client.get(authorize_url(&app, &client_id, extra)).send().await.unwrap();
        assert_eq!(location(&response), "/login", "{extra}");
        let login = browser.get("/login").await;
        assert!(login.body.contains("Sign in with a passkey"), "{extra}: the login shows despite the session");
        let (status, body) = browser.answer_passkey_step(&login, &mut auth).await;
        assert_eq!(status, StatusCode::OK);
        let answered = body["redirect_to"].as_str().unwrap_or_default();
        assert!(answered.starts_with(REDIRECT_URI), "{extra}: straight back to the client: {answered}");
        assert_eq!(param(answered, "state").as_deref(), Some("st"), "{extra}");
        let code = param(answered, "code").unwrap_or_else(|| panic!("{extra}: answered with a code: {answered}"));
        let (status, tokens, _) = redeem_code(&app, &client_id, secret.as_deref().unwrap(), &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{extra}: {tokens}");
        let resumed = browser.client.get(format!("{}/authorize/resume", app.base)).send().await.unwrap();
        assert_eq!(location(&resumed), "/account", "{extra}: the answered request is gone");
    }

    let stranger = app.browser();
    let hinted =
        stranger.client.get(authorize_url(&app, &client_id, &format!("&login_hint={name}"))).send().await.unwrap();
    assert_eq!(location(&hinted), "/login");
    let login = stranger.get("/login").await;
    assert!(login.body.contains(&format!("value=\"{name}\"")), "login_hint prefills the username step");
}

async fn the_browser_carries_a_pending_request_unless_it_is_too_long_for_a_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = person(&app, &mut auth).await;
    browser.sign_out().await;

    // A browser's cookie holds at most 4,096 bytes: a longer request waits in the store.
    let cases = [("st".to_owned(), true), ("s".repeat(2_000), true), ("s".repeat(4_000), false)];
    for (state, carried) in cases {
        let entries = app.state.ephemeral.entry_count();
        let url = authorize_url(&app, &client_id, "").replace("state=st", &format!("state={state}"));
        let started = browser.client.get(url).send().await.unwrap();
        assert_eq!(location(&started), "/login");
        let kept = started
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .find_map(|c| c.to_str().unwrap().strip_prefix("latchkey_authz=")?.split(';').next().map(str::to_owned))
            .expect("the request is kept in the latchkey_authz cookie");
        assert_eq!(kept.starts_with("p."), carried, "{} bytes", kept.len());
        assert!(kept.len() < 3_900, "{} bytes", kept.len());
        let stored = usize::from(!carried);
        assert_eq!(app.state.ephemeral.entry_count(), entries.map(|n| n + stored), "stored only when too long");

        let passkey_step = browser.username_step(&name).await;
        let (status, body) = browser.answer_passkey_step(&passkey_step, &mut auth).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answered = body["redirect_to"].as_str().unwrap_or_default();
        assert_eq!(param(answered, "state"), Some(state), "the request came back whole");
        let code = param(answered, "code").expect("a code");
        let (status, tokens, _) = redeem_code(&app, &client_id, secret.as_deref().unwrap(), &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let resumed = browser.client.get(format!("{}/authorize/resume", app.base)).send().await.unwrap();
        assert_eq!(location(&resumed), "/account", "the answered request is gone");
        browser.sign_out().await;
    }
    // Forged or edited requests are not taken up.
    let forged = app.browser();
    let url = reqwest::Url::parse(&app.base).unwrap();
    forged.jar.add_cookie_str(&format!("latchkey_authz=p.e30.{}", "A".repeat(43)), &url);
    let resumed = forged.client.get(format!("{}/authorize/resume", app.base)).send().await.unwrap();
    assert_eq!(location(&resumed), "/account");
}

#[tokio::test]
async fn a_sign_in_for_consent_or_form_post_continues_at_resume() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (third_party, _) = register(&app, ClientSpec { first_party: false, ..first_party() }).await;
    let (first, _) = register(&app, first_party()).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, _) = person(&app, &mut auth).await;
    browser.sign_out().await;

    for (client_id, extra, expected) in
        [(&third_party, "", "Allow Test RP?"), (&first, "&response_mode=form_post", "method=\"post\"")]
    {
        let started = browser.client.get(authorize_url(&app, client_id, extra)).send().await.unwrap();
        assert_eq!(location(&started), "/login", "{extra}");
        let login = browser.get("/login").await;
        let (status, body) = browser.answer_passkey_step(&login, &mut auth).await;
        assert_eq!((status, body["redirect_to"].as_str()), (StatusCode::OK, Some("/authorize/resume")), "{extra}");
        let resumed = browser.get("/authorize/resume").await;
        assert!(resumed.body.contains(expected), "{extra}: {}", resumed.body);
        browser.sign_out().await;
    }
}

#[tokio::test]
async fn acr_values_demand_a_device_bound_passkey() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, _) = register(&app, first_party()).await;
    let mut synced = SoftAuthenticator { backup_eligible: true, backup_state: true, ..Default::default() };
    let (browser, _) = person(&app, &mut synced).await;

    let phr = browser.client.get(authorize_url(&app, &client_id, "&acr_values=phr&prompt=none")).send().await.unwrap();
    assert!(param(&location(&phr), "code").is_some(), "a synced passkey is phishing-resistant");
    let phrh =
        browser.client.get(authorize_url(&app, &client_id, "&acr_values=phrh&prompt=none")).send().await.unwrap();
    assert_eq!(param(&location(&phrh), "error").as_deref(), Some("unmet_authentication_requirements"));
    let interactive = browser.client.get(authorize_url(&app, &client_id, "&acr_values=phrh")).send().await.unwrap();
    assert_eq!(location(&interactive), "/login", "asked to sign in with a stronger passkey");
}

#[tokio::test]
async fn form_post_and_every_signing_algorithm() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (browser, _) = person(&app, &mut SoftAuthenticator::default()).await;
    let jwks: CoreJsonWebKeySet = reqwest::get(format!("{}/jwks.json", app.base)).await.unwrap().json().await.unwrap();
    for (alg, core_alg) in [
        ("RS256", CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256),
        ("ES256", CoreJwsSigningAlgorithm::EcdsaP256Sha256),
        ("EdDSA", CoreJwsSigningAlgorithm::EdDsa),
    ] {
        let spec = ClientSpec { id_token_signed_response_alg: Some(alg.into()), ..first_party() };
        let (client_id, secret) = register(&app, spec).await;
        let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
        let (status, body, _) = redeem_code(&app, &client_id, secret.as_deref().unwrap(), &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        let id_token: CoreIdToken = body["id_token"].as_str().unwrap().parse().unwrap();
        let verifier = openidconnect::core::CoreIdTokenVerifier::new_confidential_client(
            ClientId::new(client_id.clone()),
            openidconnect::ClientSecret::new(secret.clone().unwrap()),
            IssuerUrl::new(app.base.clone()).unwrap(),
            jwks.clone(),
        )
        .set_allowed_algs(vec![core_alg]);
        id_token.claims(&verifier, &Nonce::new("n1".into())).unwrap_or_else(|e| panic!("{alg}: {e}"));
    }

    let (client_id, _) = register(&app, first_party()).await;
    let page = browser.get(&authorize_url(&app, &client_id, "&response_mode=form_post").replace(&app.base, "")).await;
    assert_eq!(page.status, StatusCode::OK);
    // minijinja escapes `/` in attributes as `&#x2f;`, which browsers decode.
    assert!(page.body.contains("action=\"http:&#x2f;&#x2f;localhost:9&#x2f;callback\""), "{}", page.body);
    assert!(page.body.contains("name=\"code\"") && page.body.contains("name=\"iss\""));
    assert!(page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("form-action http://localhost:9"));
}

/// Introspection and revocation answer only the client a token was issued to; revoking either
/// token of a grant ends the grant.
async fn client_credentials_introspection_and_revocation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spec = ClientSpec {
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()]),
        ..first_party()
    };
    let (client_id, secret) = register(&app, spec).await;
    let owner = (client_id.clone(), secret.unwrap());
    let (other_id, other_secret) = register(&app, first_party()).await;
    let other = (other_id, other_secret.unwrap());
    let (machine, _, _) =
        token_request(&app, &owner.0, &owner.1, &[("grant_type", "client_credentials"), ("scope", "profile")]).await;
    assert_eq!(machine, StatusCode::OK);

    let (browser, _) = person(&app, &mut SoftAuthenticator::default()).await;
    let grant_tokens = || async {
        let (code, verifier) = authorize(&browser, &app, &owner.0, "").await;
        let (_, tokens, _) = redeem_code(&app, &owner.0, &owner.1, &code, &verifier).await;
        let token = |name: &str| tokens[name].as_str().unwrap().to_owned();
        (token("access_token"), token("refresh_token"), token("id_token"))
    };
    let (access, refresh, id_token) = grant_tokens().await;
    let introspect = async |(id, secret): &(String, String), token: &str| {
        client_post(&app, "/introspect", id, secret, &[("token", token)]).await.1
    };
    let revoke = async |(id, secret): &(String, String), token: &str| {
        let (status, _, _) = client_post(&app, "/revoke", id, secret, &[("token", token)]).await;
        assert_eq!(status, StatusCode::OK, "RFC 7009 §2.2: 200 whatever the token");
    };
    let active = introspect(&owner, &access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], owner.0.as_str());
    let active = introspect(&owner, &refresh).await;
    assert_eq!((&active["active"], &active["token_type"]), (&Value::Bool(true), &Value::from("refresh_token")));
    assert_eq!(introspect(&other, &access).await["active"], false, "another client learns nothing");
    assert_eq!(introspect(&other, &refresh).await["active"], false, "nor of the refresh token");
    let userinfo =
        reqwest::Client::new().get(format!("{}/userinfo", app.base)).bearer_auth(id_token).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED, "an ID token is not an access token");

    revoke(&other, &refresh).await;
    revoke(&other, &access).await;
    assert_eq!(introspect(&owner, &access).await["active"], true, "another client cannot revoke the grant");
    revoke(&owner, &refresh).await;
    assert_eq!(introspect(&owner, &access).await["active"], false, "revoking the refresh token ends its grant");
    assert_eq!(introspect(&owner, &refresh).await["active"], false);

    let (access, refresh, _) = grant_tokens().await;
    revoke(&owner, &access).await;
    assert_eq!(introspect(&owner, &refresh).await["active"], false, "revoking the access token ends its grant");
    revoke(&owner, "nothing").await;
}

#[tokio::test]
async fn unproven_end_session_asks_first_and_back_channel_logout_is_delivered() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let spec =
        ClientSpec { backchannel_logout_uri: Some(format!("http://127.0.0.1:{port}/backchannel")), ..first_party() };
    let (client_id, secret) = register(&app, spec).await;
    let (browser, _) = person(&app, &mut SoftAuthenticator::default()).await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let (_, tokens, _) = redeem_code(&app, &client_id, secret.as_deref().unwrap(), &code, &verifier).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();

    let tampered = format!("{}x", id_token);
    for query in [
        format!("id_token_hint={tampered}&post_logout_redirect_uri={}", urlencode("http://localhost:9/signed-out")),
        format!("id_token_hint={id_token}&post_logout_redirect_uri={}", urlencode("http://localhost:9/elsewhere")),
        format!("client_id={client_id}&post_logout_redirect_uri={}", urlencode("http://localhost:9/signed-out")),
    ] {
        let page = browser.get(&format!("/end-session?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert!(page.location().is_empty(), "{query}: never redirects");
        assert!(page.body.contains("Sign out of Latchkey?"), "{query}");
    }
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "nothing happened without confirmation");

    let page = browser
        .get(&format!(
            "/end-session?client_id={client_id}&post_logout_redirect_uri={}&state=s",
            urlencode("http://localhost:9/signed-out")
        ))
        .await;
    let confirmed = browser
        .post_form(
            "/end-session/confirm",
            &[
                ("csrf_token", &page.csrf_token()),
                ("client_id", &client_id),
                ("post_logout_redirect_uri", "http://localhost:9/signed-out"),
                ("state", "s"),
            ],
        )
        .await;
    assert_eq!(confirmed.location(), "http://localhost:9/signed-out?state=s");
    assert_eq!(browser.get("/account").await.location(), "/login");

    let mut delivered = Vec::new();
    for _ in 0..50 {
        delivered = received.lock().unwrap().clone();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(delivered.len(), 1, "one logout token for the client");
    let token = delivered[0].strip_prefix("logout_token=").expect("form-encoded logout_token");
    let claims = jwt_claims(token);
    let id_claims = jwt_claims(&id_token);
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["aud"], client_id.as_str());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    let header = jwt_header(token);
    assert_eq!(header["typ"], "logout+jwt");
}

#[tokio::test]
async fn disabled_users_lose_their_tokens() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, secret, name, tokens) = first_party_tokens(&app).await;
    app.set_disabled(&name, true).await;
    let (_, refreshed, _) = token_request(
        &app,
        &client_id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(refreshed["error"], "invalid_grant");
    let info = reqwest::Client::new()
        .get(format!("{}/userinfo", app.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED);
}

/// New refresh tokens are stored under keys that start with their time-ordered id; a token
/// issued before (stored under its hash alone) still refreshes after the upgrade.
async fn refresh_tokens_are_time_ordered_and_those_of_earlier_versions_still_work(backend: Backend) {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let app = TestApp::spawn(backend).await;
    let (client_id, secret, _, tokens) = first_party_tokens(&app).await;
    let issued = tokens["refresh_token"].as_str().unwrap();
    let stored = entity::refresh_token::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(stored.token_hash, latchkey::oidc::tokens::refresh_token_key(issued));
    assert!(stored.token_hash.starts_with(&latchkey::token_id(issued).unwrap().simple().to_string()));

    let earlier = latchkey::random_token();
    entity::refresh_token::ActiveModel {
        token_hash: Set(latchkey::token_hash(&earlier)),
        grant_id: Set(stored.grant_id),
        created_at: Set(stored.created_at),
        expires_at: Set(stored.expires_at),
        used_at: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    let refresh = |token: String| {
        let (app, client_id, secret) = (&app, &client_id, &secret);
        async move {
            token_request(app, client_id, secret, &[("grant_type", "refresh_token"), ("refresh_token", &token)]).await
        }
    };
    let (status, refreshed, _) = refresh(earlier.clone()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let next = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert!(latchkey::token_id(&next).is_some(), "its successor has the new form");
    assert_eq!(refresh(next).await.0, StatusCode::OK);
    assert_eq!(refresh(earlier).await.1["error"], "invalid_grant", "rotated: single use");
}

/// A code carries what its scopes release about the person, so the exchange reads no account;
/// the grant's INSERT still refuses an account disabled since, and nothing is stored.
async fn codes_carry_the_released_claims_but_not_past_a_disabled_account(backend: Backend) {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let app = TestApp::spawn(backend).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (browser, name) = person(&app, &mut SoftAuthenticator::default()).await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let (status, tokens, _) = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!((claims["preferred_username"].as_str(), claims["name"].as_str()), (Some(name.as_str()), Some("Pat")));
    assert!(claims.get("email").is_none(), "the email scope was not asked for: {claims}");

    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    app.set_disabled(&name, true).await;
    let (status, body, _) = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert_eq!(entity::grant::Entity::find().count(&app.state.db).await.unwrap(), 1, "only the first grant");
    assert_eq!(entity::refresh_token::Entity::find().count(&app.state.db).await.unwrap(), 1);
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(index).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn jwt_claims(jwt: &str) -> Value {
    jwt_part(jwt, 1)
}

fn jwt_header(jwt: &str) -> Value {
    jwt_part(jwt, 0)
}
