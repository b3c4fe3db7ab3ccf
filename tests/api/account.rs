//! The account page: adding, renaming and deleting passkeys, sign-out, and the checks that
//! guard them (CSRF, same-origin JSON, body size, the last passkey).

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, between, unique_name},
    on_both_backends,
};

on_both_backends!(manage_passkeys, account_requests_are_guarded);

async fn manage_passkeys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = app.browser();
    let mut laptop = SoftAuthenticator::default();
    let name = unique_name("pk");
    let account = browser.sign_up(&mut laptop, &name, &format!("{name}@example.com"), "Katherine").await;
    assert!(!account.body.contains("Delete passkey"), "the only passkey cannot be deleted");
    let signal = account.json_block("passkey-signal");
    assert_eq!(signal["rpId"], "localhost");
    assert_eq!(signal["allAcceptedCredentialIds"].as_array().unwrap().len(), 1);

    // A synced passkey from a known provider, added from the account page.
    let (status, options) = browser.post_json("/account/passkeys/options", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(options["publicKey"]["excludeCredentials"].as_array().unwrap().len(), 1);
    let mut phone = SoftAuthenticator {
        aaguid: *uuid::Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").unwrap().as_bytes(),
        backup_eligible: true,
        backup_state: true,
        ..Default::default()
    };
    let (status, body) = browser.post_json("/account/passkeys", &phone.register(&options, &app.base)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let account = browser.get("/account?notice=added").await;
    assert!(account.body.contains("Google Password Manager"), "named from the AAGUID");
    assert!(account.body.contains("Synced"));
    assert!(account.body.contains("Passkey added."));

    // Rename, then delete one of the two.
    let passkey_id = between(&account.body, "/account/passkeys/", "/rename").unwrap().to_owned();
    let csrf = account.csrf_token();
    let renamed = browser
        .post_form(&format!("/account/passkeys/{passkey_id}/rename"), &[("csrf_token", &csrf), ("name", "Work laptop")])
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert!(browser.get("/account").await.body.contains("Work laptop"));
    let too_long = "x".repeat(65);
    let refused = browser
        .post_form(&format!("/account/passkeys/{passkey_id}/rename"), &[("csrf_token", &csrf), ("name", &too_long)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("at most 64"));

    let deleted = browser.post_form(&format!("/account/passkeys/{passkey_id}/delete"), &[("csrf_token", &csrf)]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let account = browser.get("/account").await;
    assert!(!account.body.contains("Work laptop"));
    let remaining = between(&account.body, "/account/passkeys/", "/rename").unwrap().to_owned();
    let last = browser.post_form(&format!("/account/passkeys/{remaining}/delete"), &[("csrf_token", &csrf)]).await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    assert!(last.body.contains("only passkey"));

    // The phone still signs in; the deleted laptop credential no longer does.
    browser.sign_out().await;
    let step = browser.get("/login").await;
    let (status, _) = browser.answer_passkey_step(&step, &mut phone).await;
    assert_eq!(status, StatusCode::OK);
}

async fn account_requests_are_guarded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stranger = app.browser();
    assert_eq!(stranger.get("/account").await.location(), "/login");
    let (status, body) = stranger.post_json("/account/passkeys/options", &json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let browser = app.browser();
    let name = unique_name("guard");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "G").await;

    let cross_site = browser
        .client
        .post(format!("{}/account/passkeys/options", app.base))
        .header(header::ORIGIN, "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(cross_site.headers()[header::CONTENT_TYPE], "application/problem+json");

    let no_origin = browser.client.post(format!("{}/login/passkey", app.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);

    let huge = "x".repeat(5 * 1024 * 1024);
    let oversized = browser
        .client
        .post(format!("{}/login/passkey", app.base))
        .header(header::ORIGIN, &app.base)
        .header(header::CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (status, body) = browser.post_json("/login/passkey", &json!("not a credential")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 400);

    let forged = browser.post_form("/logout", &[("csrf_token", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "still signed in");

    let page = browser.get("/nowhere").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
}
