//! Forged tokens at the HTTP endpoints: an access token and an ID token Latchkey really issued,
//! then every classic JWT forgery made from them — `alg: none`, HS256 keyed with the server's
//! public key (as PEM, JWK or modulus), a valid signature under an unknown `kid`, an attacker's
//! key under the real `kid`, and payloads edited after signing. Userinfo answers 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`, introspection `{"active": false}`, and
//! end-session never signs out without asking (the confirmation page, no redirect, the session
//! alive).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use reqwest::{StatusCode, header};
use rsa::{
    BigUint, RsaPrivateKey, RsaPublicKey,
    pkcs1::EncodeRsaPublicKey,
    pkcs8::{EncodePublicKey, LineEnding},
    signature::{SignatureEncoding, Signer},
};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, unique_name},
    oidc::{authorize, first_party, redeem_code, register, urlencode},
    on_both_backends,
};

on_both_backends!(forged_tokens_are_refused_everywhere);

/// The post-logout redirect URI `first_party()` registers.
const LOGOUT_URI: &str = "http://localhost:9/signed-out";

/// Header, payload and signature of a compact JWS.
fn split(jwt: &str) -> (Value, Value, Vec<u8>) {
    let mut parts = jwt.split('.');
    let json = |part: Option<&str>| serde_json::from_slice::<Value>(&B64.decode(part.unwrap()).unwrap()).unwrap();
    let header = json(parts.next());
    let payload = json(parts.next());
    (header, payload, B64.decode(parts.next().unwrap()).unwrap())
}

fn signing_input(header: &Value, payload: &Value) -> String {
    format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()))
}

fn compact(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, payload), B64.encode(signature))
}

fn hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let mut header = header.clone();
    header["alg"] = json!("HS256");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input(&header, payload).as_bytes());
    compact(&header, payload, &mac.finalize().into_bytes())
}

fn rs256(header: &Value, payload: &Value, key: &RsaPrivateKey) -> String {
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    compact(header, payload, &signer.sign(signing_input(header, payload).as_bytes()).to_vec())
}

/// Every forgery of `genuine` (signed by Latchkey with the RSA key `jwk`), named.
fn forgeries(genuine: &str, jwk: &Value, attacker: &RsaPrivateKey) -> Vec<(&'static str, String)> {
    let (header, payload, signature) = split(genuine);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut edited = header.clone();
        change(&mut edited);
        edited
    };
    let none = with(&|h| h["alg"] = json!("none"));
    let modulus = B64.decode(jwk["n"].as_str().unwrap()).unwrap();
    let exponent = B64.decode(jwk["e"].as_str().unwrap()).unwrap();
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&modulus), BigUint::from_bytes_be(&exponent)).unwrap();
    let spki_pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let pkcs1_pem = public.to_pkcs1_pem(LineEnding::LF).unwrap();
    let edited = |change: &dyn Fn(&mut Value)| {
        let mut edited = payload.clone();
        change(&mut edited);
        compact(&header, &edited, &signature)
    };
    vec![
        ("alg none, no signature", format!("{}.", signing_input(&none, &payload))),
        ("alg none, the genuine signature kept", compact(&none, &payload, &signature)),
        ("alg none, no kid", format!("{}.", signing_input(&with(&|h| *h = json!({"alg": "none"})), &payload))),
        ("alg NONE", format!("{}.", signing_input(&with(&|h| h["alg"] = json!("NONE")), &payload))),
        ("HS256 keyed with the public key as SPKI PEM", hs256(&header, &payload, spki_pem.as_bytes())),
        ("HS256 keyed with the SPKI PEM, no final newline", hs256(&header, &payload, spki_pem.trim_end().as_bytes())),
        ("HS256 keyed with the public key as PKCS#1 PEM", hs256(&header, &payload, pkcs1_pem.as_bytes())),
        ("HS256 keyed with the JWK", hs256(&header, &payload, jwk.to_string().as_bytes())),
        ("HS256 keyed with the modulus", hs256(&header, &payload, &modulus)),
        (
            "a valid signature under an unknown kid",
            rs256(&with(&|h| h["kid"] = json!("rs256-attacker")), &payload, attacker),
        ),
        ("an attacker's key under the server's kid", rs256(&header, &payload, attacker)),
        (
            "the genuine signature over another header",
            compact(&with(&|h| h["typ"] = json!("JWT+x")), &payload, &signature),
        ),
        ("payload for another subject", edited(&|p| p["sub"] = json!(uuid::Uuid::new_v4().to_string()))),
        ("payload with a later expiry", edited(&|p| p["exp"] = json!(p["exp"].as_i64().unwrap() + 86_400))),
        ("payload for another audience", edited(&|p| p["aud"] = json!("another-client"))),
        ("payload with more scope", edited(&|p| p["scope"] = json!("openid profile email offline_access admin"))),
        ("no signature at all", format!("{}.", signing_input(&header, &payload))),
        ("not a JWT", "e30.e30".to_owned()),
    ]
}

/// A signed-in browser that authorized `client_id`; its access token and ID token.
async fn issued_tokens(app: &TestApp, client_id: &str, secret: &str) -> (Browser, String, String) {
    let browser = app.browser();
    let name = unique_name("forge");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Forge Target").await;
    let (code, verifier) = authorize(&browser, app, client_id, "").await;
    let (status, tokens, _) = redeem_code(app, client_id, secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = |name: &str| tokens[name].as_str().unwrap().to_owned();
    (browser, token("access_token"), token("id_token"))
}

/// The published JWK with this kid.
async fn published_key(app: &TestApp, kid: &str) -> Value {
    let jwks: Value = reqwest::get(format!("{}/jwks.json", app.base)).await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("the token's key is published").clone()
}

async fn userinfo(app: &TestApp, token: &str) -> (StatusCode, String) {
    let response =
        reqwest::Client::new().get(format!("{}/userinfo", app.base)).bearer_auth(token).send().await.unwrap();
    let challenge = response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
    (response.status(), challenge.unwrap_or_default())
}

async fn introspect(app: &TestApp, client_id: &str, secret: &str, token: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/introspect", app.base))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn end_session_path(hint: &str) -> String {
    format!("/end-session?id_token_hint={}&post_logout_redirect_uri={}&state=s", urlencode(hint), urlencode(LOGOUT_URI))
}

async fn forged_tokens_are_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (browser, access_token, id_token) = issued_tokens(&app, &client_id, &secret).await;
    let attacker = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();

    // The genuine tokens work: each refusal below is the forgery's doing.
    assert_eq!(userinfo(&app, &access_token).await.0, StatusCode::OK);
    assert_eq!(introspect(&app, &client_id, &secret, &access_token).await["active"], true);

    let jwk = published_key(&app, split(&access_token).0["kid"].as_str().unwrap()).await;
    assert_eq!(jwk["kty"], "RSA", "the default client gets RS256 tokens");
    for (case, forged) in forgeries(&access_token, &jwk, &attacker) {
        let (status, challenge) = userinfo(&app, &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "userinfo, {case}");
        assert!(challenge.starts_with(r#"Bearer error="invalid_token""#), "userinfo, {case}: {challenge}");
        assert_eq!(
            introspect(&app, &client_id, &secret, &forged).await,
            json!({"active": false}),
            "introspection, {case}"
        );
    }

    let jwk = published_key(&app, split(&id_token).0["kid"].as_str().unwrap()).await;
    for (case, forged) in forgeries(&id_token, &jwk, &attacker) {
        let page = browser.get(&end_session_path(&forged)).await;
        assert_eq!(page.status, StatusCode::OK, "end-session, {case}");
        assert!(page.location().is_empty(), "end-session, {case}: no redirect");
        assert!(page.body.contains("Sign out of Latchkey?"), "end-session, {case}: asks first");
        assert!(
            !page
                .headers
                .get_all(header::SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("latchkey_session=")),
            "end-session, {case}: the session cookie stays"
        );
        assert_eq!(browser.get("/account").await.status, StatusCode::OK, "end-session, {case}: still signed in");
    }
    assert_eq!(userinfo(&app, &access_token).await.0, StatusCode::OK, "nothing was revoked");

    // The genuine hint signs out without asking.
    let signed_out = browser.get(&end_session_path(&id_token)).await;
    assert_eq!(signed_out.location(), format!("{LOGOUT_URI}?state=s"));
    assert_eq!(browser.get("/account").await.location(), "/login");
}
