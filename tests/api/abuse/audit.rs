//! Failures leave audit events, read back through the admin API as an operator would: a
//! failed passkey verification (`signin.failed`, naming the targeted account and the reason),
//! a replayed assertion, a replayed authorization code and a reused refresh token
//! (`token.replayed`, naming the client and the person), and a rate limit reached
//! (`ratelimit.exceeded`, once per window however long the flood).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    admin::{Admin, TOKEN},
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
    oidc::{authorize, first_party, redeem_code, register, token_request},
    on_both_backends,
};

on_both_backends!(failures_are_audited);

/// The events of `kind`, newest first.
async fn events(admin: &Admin, kind: &str) -> Vec<Value> {
    let reply = admin.get(&format!("/audit-events?type={kind}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

async fn failures_are_audited(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_ADMIN_TOKEN", TOKEN)]).await;
    let admin = Admin::new(&app);
    let mut auth = SoftAuthenticator { counting: false, ..Default::default() };
    let browser = app.browser();
    let name = unique_name("audited");
    browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Audited").await;
    let user_id = admin.find_user(&name).await["id"].as_str().unwrap().to_owned();
    browser.sign_out().await;

    // Someone else's passkey answering this person's passkey step.
    let mut stranger = SoftAuthenticator::default();
    stranger.register(
        &json!({"publicKey": {"rp": {"id": "localhost"}, "user": {"id": "AAAA"}, "challenge": "AAAA"}}),
        &app.base,
    );
    let step = browser.username_step(&name).await;
    let forged = stranger.assert_with(0, &step.json_block("passkey-options"), &app.base);
    assert_eq!(browser.post_json("/login/passkey", &forged).await.0, StatusCode::UNAUTHORIZED);
    let failed = events(&admin, "signin.failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["user_id"], user_id.as_str(), "names the account that was tried");
    assert_eq!(failed[0]["detail"], json!({"method": "passkey", "reason": "rejected"}));
    assert_eq!(failed[0]["ip"], "127.0.0.1");

    // A replayed assertion (the ceremony was taken by the first answer).
    let step = browser.username_step(&name).await;
    let assertion = auth.assert(&step.json_block("passkey-options"), &app.base).unwrap();
    assert_eq!(browser.post_json("/login/passkey", &assertion).await.0, StatusCode::OK);
    assert_eq!(browser.post_json("/login/passkey", &assertion).await.0, StatusCode::BAD_REQUEST);
    let failed = events(&admin, "signin.failed").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0]["detail"]["reason"], "expired");
    let succeeded = events(&admin, "signin.succeeded").await;
    assert_eq!(succeeded.len(), 2, "sign-up and the one real sign-in: {succeeded:?}");

    // A replayed authorization code, then a reused refresh token.
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    assert_eq!(redeem_code(&app, &client_id, &secret, &code, &verifier).await.0, StatusCode::OK);
    let replay = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!((replay.0, replay.1["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let replayed = events(&admin, "token.replayed").await;
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(replayed[0]["client_id"], client_id.as_str());
    assert_eq!(replayed[0]["user_id"], user_id.as_str());
    assert_eq!(replayed[0]["detail"]["token"], "authorization_code");
    assert!(replayed[0]["detail"]["grant_id"].is_string());
    assert!(
        !replayed[0].to_string().contains(&code) && !replayed[0].to_string().contains(&secret),
        "no secrets in the log"
    );

    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let old =
        redeem_code(&app, &client_id, &secret, &code, &verifier).await.1["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let (app, client_id, secret) = (&app, client_id.clone(), secret.clone());
        async move {
            token_request(app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &token)]).await
        }
    };
    assert_eq!(refresh(old.clone()).await.0, StatusCode::OK);
    assert_eq!(refresh(old.clone()).await.1["error"], "invalid_grant");
    let replayed = events(&admin, "token.replayed").await;
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert_eq!(replayed[0]["detail"]["token"], "refresh_token");
    assert!(!replayed[0].to_string().contains(&old), "no refresh token in the log");

    // Guessing at one account until the limit, and well past it.
    let target = unique_name("target");
    let guesser = app.browser();
    let csrf = guesser.get("/login").await.csrf_token();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(guesser.post_form("/login", &[("csrf_token", &csrf), ("username", &target)]).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 10, "{statuses:?}");
    let limited = events(&admin, "ratelimit.exceeded").await;
    assert_eq!(limited.len(), 1, "one event per window, not one per refusal: {limited:?}");
    assert_eq!(limited[0]["detail"]["limit"], "signin-ip-account");
    assert_eq!(limited[0]["detail"]["subject"], format!("127.0.0.1|{target}"));
    assert_eq!(limited[0]["detail"]["max"], 30);
}
