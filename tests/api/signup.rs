//! Sign-up: the account exists only once its first passkey verifies; taken names are form
//! errors; nothing is half-written.

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
    on_both_backends,
};

on_both_backends!(signup_creates_account_and_session, taken_names_are_form_errors, failed_passkey_creates_nothing);

async fn signup_creates_account_and_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = app.browser();
    let mut auth = SoftAuthenticator::default();
    let name = unique_name("ada");
    let account = browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Ada Lovelace").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Ada Lovelace"));
    assert!(account.body.contains("This device only"), "a non-backup-eligible passkey is device-bound");
    let user = latchkey::store::users::find_by_login(&app.state.db, &name).await.unwrap().unwrap();
    let passkeys = latchkey::store::passkeys::list_for_user(&app.state.db, user.id).await.unwrap();
    assert_eq!(passkeys.len(), 1);
    assert_eq!(passkeys[0].transports, "hybrid,internal");
}

async fn taken_names_are_form_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = app.browser();
    let name = unique_name("taken");
    let email = format!("{name}@example.com");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &email, "First").await;

    let other = app.browser();
    let csrf = other.get("/signup").await.csrf_token();
    let upper = name.to_uppercase();
    let page = other
        .post_form(
            "/signup",
            &[("csrf_token", &csrf), ("username", &upper), ("email", "new@example.com"), ("display_name", "x")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("That username is taken"), "{}", page.body);

    let shouted_email = email.to_uppercase();
    let page = other
        .post_form(
            "/signup",
            &[("csrf_token", &csrf), ("username", "someone-new"), ("email", &shouted_email), ("display_name", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("An account with that email address exists"), "{}", page.body);

    let page = other
        .post_form(
            "/signup",
            &[("csrf_token", &csrf), ("username", "bad name!"), ("email", "nope"), ("display_name", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Use only letters"));
    assert!(page.body.contains("Enter an email address like"));

    let page = other.post_form("/signup", &[("username", "csrf-less"), ("email", "a@example.com")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "a form without its CSRF token is refused");
}

async fn failed_passkey_creates_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = app.browser();
    let name = unique_name("half");
    let csrf = browser.get("/signup").await.csrf_token();
    let email = format!("{name}@example.com");
    let page = browser
        .post_form("/signup", &[("csrf_token", &csrf), ("username", &name), ("email", &email), ("display_name", "")])
        .await;
    let options = page.json_block("passkey-creation-options");
    assert_eq!(options["publicKey"]["authenticatorSelection"]["residentKey"], "preferred");
    let mut response = SoftAuthenticator::default().register(&options, &browser.base);
    response["response"]["clientDataJSON"] = json!("bm90IGpzb24");
    let (status, body) = browser.post_json("/signup/passkey", &response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not recognised"));
    assert!(body["retry"]["publicKey"]["challenge"].is_string(), "fresh options come back for a retry");
    assert!(latchkey::store::users::find_by_login(&app.state.db, &name).await.unwrap().is_none());

    // The retry with a good response completes the sign-up.
    let mut auth = SoftAuthenticator::default();
    let (status, _) = browser.post_json("/signup/passkey", &auth.register(&body["retry"], &browser.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(latchkey::store::users::find_by_login(&app.state.db, &name).await.unwrap().is_some());

    let (status, body) = browser.post_json("/signup/passkey", &json!({"id": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "malformed WebAuthn JSON: {body}");
}
