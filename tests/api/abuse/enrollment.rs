//! Bad input where passkeys are added: the account page (`/account/passkeys`) and enrollment
//! links (`/enroll/{token}`). Malformed and forged registrations, a request without the page's
//! `Origin` or CSRF token, another person's ceremony, an unknown, expired, used or mismatched
//! link — each gets its exact status and message, and no passkey row is written (nor a link
//! consumed) by anything refused.

use std::time::Duration;

use chrono::Utc;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use super::passkey_count;
use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, between, unique_name},
    on_both_backends,
};

on_both_backends!(adding_a_passkey_refuses_bad_input, enrollment_links_refuse_bad_input);

const EVIL_ORIGIN: &str = "https://evil.example";

/// Posts `body` as JSON with `origin` (or none); answers status and body.
async fn post_with_origin(browser: &Browser, path: &str, body: &Value, origin: Option<&str>) -> (StatusCode, Value) {
    let mut request = browser.client.post(format!("{}{path}", browser.base)).json(body);
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts a problem document with `status`, `code` (when given) and a detail containing `says`.
fn assert_problem(answer: &(StatusCode, Value), status: StatusCode, code: Option<&str>, says: &str, case: &str) {
    assert_eq!(answer.0, status, "{case}: {}", answer.1);
    assert_eq!(answer.1["status"], status.as_u16(), "{case}: {}", answer.1);
    assert!(answer.1["detail"].as_str().unwrap_or_default().contains(says), "{case}: {}", answer.1);
    if let Some(code) = code {
        assert_eq!(answer.1["code"], code, "{case}: {}", answer.1);
    }
}

/// The value of the cookie `name` in `browser`'s jar.
fn cookie(browser: &Browser, name: &str) -> String {
    use reqwest::cookie::CookieStore;
    let header = browser.jar.cookies(&browser.base.parse().unwrap()).unwrap();
    let all = header.to_str().unwrap().to_owned();
    all.split("; ").find_map(|c| c.strip_prefix(&format!("{name}="))).unwrap().to_owned()
}

async fn signed_up(app: &TestApp) -> (Browser, SoftAuthenticator) {
    let browser = app.browser();
    let mut auth = SoftAuthenticator::default();
    let name = unique_name("adder");
    browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Adder").await;
    (browser, auth)
}

async fn adding_a_passkey_refuses_bad_input(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let (alice, _) = signed_up(&app).await;
    let (bob, _) = signed_up(&app).await;
    let mut key = SoftAuthenticator::default();
    let before = passkey_count(&app).await;

    // Without the page's Origin (a cross-site form or script), nothing starts or finishes.
    for origin in [None, Some(EVIL_ORIGIN)] {
        let case = format!("options from {origin:?}");
        let answer = post_with_origin(&alice, "/account/passkeys/options", &json!({}), origin).await;
        assert_problem(&answer, StatusCode::FORBIDDEN, None, "must come from Latchkey's own pages", &case);
    }
    let (status, options) = alice.post_json("/account/passkeys/options", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let good = key.register(&options, &app.base);
    for origin in [None, Some(EVIL_ORIGIN)] {
        let answer = post_with_origin(&alice, "/account/passkeys", &good, origin).await;
        assert_problem(&answer, StatusCode::FORBIDDEN, None, "must come from Latchkey's own pages", "finish");
    }

    // Malformed JSON never reaches the ceremony.
    for (case, body) in [
        ("not a registration", json!({"id": "AAAA"})),
        ("an array", json!([1, 2, 3])),
        (
            "bad base64",
            json!({"id": "!", "rawId": "!", "type": "public-key", "response": {"clientDataJSON": "!", "attestationObject": "!"}}),
        ),
    ] {
        let answer = alice.post_json("/account/passkeys", &body).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, None, "not valid WebAuthn JSON", case);
    }

    // Bob's session with Alice's ceremony: refused, and Alice's ceremony is spent.
    bob.jar.add_cookie_str(
        &format!("latchkey_ceremony={}", cookie(&alice, "latchkey_ceremony")),
        &app.base.parse().unwrap(),
    );
    let answer = bob.post_json("/account/passkeys", &good).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, Some("expired"), "expired", "another person's ceremony");
    let answer = alice.post_json("/account/passkeys", &good).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, Some("expired"), "expired", "the ceremony Bob spent");

    // A registration made for another origin (a phishing page) is rejected, with a retry.
    let (_, options) = alice.post_json("/account/passkeys/options", &json!({})).await;
    let phished = key.register(&options, EVIL_ORIGIN);
    let answer = alice.post_json("/account/passkeys", &phished).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, Some("rejected"), "not recognised", "phishing origin");
    assert!(answer.1["retry"]["publicKey"]["challenge"].is_string(), "fresh options to try again");
    let stale = key.register(&options, &app.base);
    let answer = alice.post_json("/account/passkeys", &stale).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, Some("rejected"), "not recognised", "the old challenge");
    let answer = bob.post_json("/account/passkeys", &good).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "bob has no ceremony left");
    assert_eq!(passkey_count(&app).await, before, "nothing refused was written");

    // Signed out: 401 with a readable reason; forms without the CSRF token: 403.
    let stranger = app.browser();
    let answer = stranger.post_json("/account/passkeys", &good).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, None, "Sign in again", "no session");
    let account = alice.get("/account").await;
    let passkey_id = between(&account.body, "/account/passkeys/", "/rename").unwrap().to_owned();
    let rename = alice.post_form(&format!("/account/passkeys/{passkey_id}/rename"), &[("name", "Hijacked")]).await;
    assert_eq!(rename.status, StatusCode::FORBIDDEN);
    let forged = alice
        .post_form(&format!("/account/passkeys/{passkey_id}/rename"), &[("csrf_token", "forged"), ("name", "Hijacked")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!alice.get("/account").await.body.contains("Hijacked"));

    // The real thing still works, once.
    let (_, options) = alice.post_json("/account/passkeys/options", &json!({})).await;
    let registration = key.register(&options, &app.base);
    let answer = alice.post_json("/account/passkeys", &registration).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let answer = alice.post_json("/account/passkeys", &registration).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, Some("expired"), "expired", "replayed registration");
    assert_eq!(passkey_count(&app).await, before + 1);
}

/// A new user without passkeys and an enrollment link for them, valid for `ttl`; the link's path.
async fn enrollment_link(app: &TestApp, ttl: Duration) -> String {
    let name = unique_name("enrollee");
    let new = latchkey::store::users::NewUser {
        id: uuid::Uuid::new_v4(),
        username: name.clone(),
        email: format!("{name}@example.com"),
        display_name: "Enrollee".into(),
    };
    latchkey::store::users::insert(&app.state.db, &new, Utc::now()).await.unwrap();
    let link = latchkey::enrollment::issue_link(&app.state, new.id, Some(ttl), Utc::now()).await.unwrap();
    link.url.strip_prefix(&app.base).unwrap().to_owned()
}

/// The link's creation options in `browser` (the ceremony cookie is set).
async fn enroll_options(browser: &Browser, path: &str) -> Value {
    let (status, options) = browser.post_json(&format!("{path}/options"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    options
}

async fn assert_link_unusable(browser: &Browser, path: &str, case: &str) {
    let page = browser.get(path).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{case}");
    assert!(page.body.contains("This enrollment link is not valid"), "{case}: {}", page.body);
    assert!(!page.body.contains("Create a passkey"), "{case}");
    let answer = browser.post_json(&format!("{path}/options"), &json!({})).await;
    assert_problem(&answer, StatusCode::NOT_FOUND, None, "This enrollment link is not valid", case);
}

async fn enrollment_links_refuse_bad_input(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let day = Duration::from_secs(86_400);
    let mut key = SoftAuthenticator::default();
    let browser = app.browser();

    assert_link_unusable(&browser, "/enroll/made-up-token", "an unknown link").await;

    // Malformed, cross-origin and forged registrations leave the link usable.
    let path = enrollment_link(&app, day).await;
    let options = enroll_options(&browser, &path).await;
    let answer = browser.post_json(&path, &json!({"id": "AAAA"})).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, None, "not valid WebAuthn JSON", "malformed");
    let good = key.register(&options, &app.base);
    for origin in [None, Some(EVIL_ORIGIN)] {
        let answer = post_with_origin(&browser, &path, &good, origin).await;
        assert_problem(&answer, StatusCode::FORBIDDEN, None, "must come from Latchkey's own pages", "origin");
    }
    let answer = browser.post_json(&path, &key.register(&options, EVIL_ORIGIN)).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, Some("rejected"), "not recognised", "phishing origin");
    assert_eq!(passkey_count(&app).await, 0);
    assert_eq!(browser.get(&path).await.status, StatusCode::OK, "the link still works");
    assert!(browser.get("/account").await.location() == "/login", "not signed in");

    // A ceremony of one link finishing at another: neither link is consumed.
    let other = enrollment_link(&app, day).await;
    let options = enroll_options(&browser, &path).await;
    let answer = browser.post_json(&other, &key.register(&options, &app.base)).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, Some("expired"), "expired", "another link's ceremony");
    assert_eq!(passkey_count(&app).await, 0);

    // Two browsers opened the link; the first one to finish uses it up.
    let second = app.browser();
    let options = enroll_options(&browser, &path).await;
    let second_options = enroll_options(&second, &path).await;
    let answer = browser.post_json(&path, &key.register(&options, &app.base)).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(answer.1["verified"], true);
    let answer = second.post_json(&path, &key.register(&second_options, &app.base)).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, Some("expired"), "expired", "a used link");
    assert_link_unusable(&second, &path, "a used link").await;
    assert_eq!(passkey_count(&app).await, 1);
    assert_eq!(app.browser().get(&other).await.status, StatusCode::OK, "the other link was never consumed");

    // A link that expires while its ceremony is in progress, then for good.
    let short = enrollment_link(&app, Duration::from_secs(2)).await;
    let late = app.browser();
    let options = enroll_options(&late, &short).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let answer = late.post_json(&short, &key.register(&options, &app.base)).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, Some("expired"), "expired", "expired during the ceremony");
    assert_link_unusable(&late, &short, "an expired link").await;
    assert_eq!(passkey_count(&app).await, 1, "nothing refused was written");
    assert_eq!(late.get("/account").await.location(), "/login");

    // The refusals are in the audit log as failed sign-ins.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let failed = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq("signin.failed"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(failed.iter().all(|e| e.detail.contains("\"method\":\"enrollment\"")), "{failed:?}");
    assert_eq!(failed.len(), 4, "the phishing origin, the other link, the used link, the expired link: {failed:?}");
}
