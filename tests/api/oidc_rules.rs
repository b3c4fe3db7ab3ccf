//! Every rule of the authorization and token endpoints, broken once: each answer is checked
//! for its exact status and OAuth error code, and nothing is issued that should not be.

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
    oidc::{REDIRECT_URI, authorize, first_party, redeem_code, register, token_request, urlencode},
};
use latchkey::oidc::clients::ClientSpec;

fn location(response: &reqwest::Response) -> String {
    response.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn untrusted_requests_get_an_error_page_never_a_redirect() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, _) = register(&app, first_party()).await;
    let browser = app.browser();
    let base = format!("{}/authorize?response_type=code&scope=openid&code_challenge=x", app.base);
    for (case, query) in [
        ("unknown client", format!("&client_id=nobody&redirect_uri={}", urlencode(REDIRECT_URI))),
        ("missing client", format!("&redirect_uri={}", urlencode(REDIRECT_URI))),
        (
            "trailing slash",
            format!("&client_id={client_id}&redirect_uri={}", urlencode("http://localhost:9/callback/")),
        ),
        ("case", format!("&client_id={client_id}&redirect_uri={}", urlencode("http://LOCALHOST:9/callback"))),
        (
            "added query",
            format!("&client_id={client_id}&redirect_uri={}", urlencode("http://localhost:9/callback?x=1")),
        ),
        ("port", format!("&client_id={client_id}&redirect_uri={}", urlencode("http://localhost:10/callback"))),
        ("scheme", format!("&client_id={client_id}&redirect_uri={}", urlencode("https://localhost:9/callback"))),
        ("missing", format!("&client_id={client_id}")),
        (
            "duplicated",
            format!("&client_id={client_id}&client_id={client_id}&redirect_uri={}", urlencode(REDIRECT_URI)),
        ),
    ] {
        let response = browser.client.get(format!("{base}{query}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert!(location(&response).is_empty(), "{case}: never a redirect");
        assert!(response.text().await.unwrap().contains("<h1"), "{case}: an error page");
    }
}

#[tokio::test]
async fn client_errors_go_back_to_the_client_with_state_and_iss() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, _) = register(&app, first_party()).await;
    let (public_id, _) = register(&app, ClientSpec { public: true, ..first_party() }).await;
    let browser = app.browser();
    let good = format!("client_id={client_id}&redirect_uri={}&state=xyz", urlencode(REDIRECT_URI));
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    for (case, query, error) in [
        ("no response_type", format!("{good}&scope=openid"), "invalid_request"),
        ("token response_type", format!("{good}&scope=openid&response_type=token"), "unsupported_response_type"),
        ("no openid", format!("{good}&scope=profile&response_type=code"), "invalid_scope"),
        (
            "plain PKCE",
            format!("{good}&scope=openid&response_type=code&code_challenge={challenge}&code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            "malformed challenge",
            format!("{good}&scope=openid&response_type=code&code_challenge=short&code_challenge_method=S256"),
            "invalid_request",
        ),
        ("duplicated scope", format!("{good}&scope=openid&scope=openid&response_type=code"), "invalid_request"),
        ("prompt=none signed out", format!("{good}&scope=openid&response_type=code&prompt=none"), "login_required"),
        ("bad max_age", format!("{good}&scope=openid&response_type=code&max_age=-1"), "invalid_request"),
        ("request object", format!("{good}&scope=openid&response_type=code&request=eyJ"), "request_not_supported"),
        (
            "public without PKCE",
            format!(
                "client_id={public_id}&redirect_uri={}&state=xyz&scope=openid&response_type=code",
                urlencode(REDIRECT_URI)
            ),
            "invalid_request",
        ),
    ] {
        let response = browser.client.get(format!("{}/authorize?{query}", app.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{case}");
        let target = url::Url::parse(&location(&response)).unwrap();
        assert!(target.as_str().starts_with(REDIRECT_URI), "{case}");
        let param = |name: &str| target.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        assert_eq!(param("error").as_deref(), Some(error), "{case}");
        assert_eq!(param("state").as_deref(), Some("xyz"), "{case}");
        assert_eq!(param("iss").as_deref(), Some(app.base.as_str()), "{case}");
    }
}

#[tokio::test]
async fn token_endpoint_rules() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (other_id, other_secret) = register(&app, first_party()).await;
    let browser = app.browser();
    let name = unique_name("tok");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "T").await;

    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    // A code exchange's form; `send` lends it to `token_request` and keeps the challenge header.
    let exchange = |code: &str, verifier: Option<&str>, redirect: &str| {
        let mut form = vec![("grant_type", "authorization_code".to_owned()), ("code", code.to_owned())];
        form.push(("redirect_uri", redirect.to_owned()));
        form.extend(verifier.map(|v| ("code_verifier", v.to_owned())));
        form
    };
    let send = async |id: &str, secret: &str, form: Vec<(&'static str, String)>| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body, headers) = token_request(&app, id, secret, &form).await;
        let challenge = headers.get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
        (status, body, challenge)
    };

    let (status, body, challenge) = send(&client_id, "wrong", exchange(&code, Some(&verifier), REDIRECT_URI)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(challenge.unwrap().starts_with("Basic"), "invalid_client with Basic carries WWW-Authenticate");

    let (_, body, _) =
        send(&other_id, other_secret.as_deref().unwrap(), exchange(&code, Some(&verifier), REDIRECT_URI)).await;
    assert_eq!(body["error"], "invalid_grant", "a code redeemed by another client");

    let (code, _) = authorize(&browser, &app, &client_id, "").await;
    let (_, body, _) = send(&client_id, &secret, exchange(&code, None, REDIRECT_URI)).await;
    assert_eq!(body["error"], "invalid_grant", "PKCE verifier missing");

    let (code, _) = authorize(&browser, &app, &client_id, "").await;
    let wrong = "wrong-verifier-wrong-verifier-wrong-verifier-wrong";
    let (_, body, _) = send(&client_id, &secret, exchange(&code, Some(wrong), REDIRECT_URI)).await;
    assert_eq!(body["error"], "invalid_grant", "PKCE verifier wrong");

    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let (_, body, _) = send(&client_id, &secret, exchange(&code, Some(&verifier), "http://localhost:9/other")).await;
    assert_eq!(body["error"], "invalid_grant", "another redirect URI");

    let (status, body, _) = send(&client_id, &secret, vec![("grant_type", "password".into())]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));

    let both = reqwest::Client::new()
        .post(format!("{}/token", app.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("client_secret", secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(both.json::<Value>().await.unwrap()["error"], "invalid_request", "two authentication methods");

    let json_body = reqwest::Client::new()
        .post(format!("{}/token", app.base))
        .basic_auth(&client_id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body.json::<Value>().await.unwrap()["error"], "invalid_request");

    let (status, _, _) =
        token_request(&app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", "made-up")])
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("LATCHKEY_CODE_TTL", "1s")]).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let browser = app.browser();
    let name = unique_name("exp");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "E").await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, body, _) = redeem_code(&app, &client_id, &secret.unwrap(), &code, &verifier).await;
    assert_eq!(body["error"], "invalid_grant");
}
