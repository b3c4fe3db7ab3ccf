//! Sign-in: username step, passkey step, remembered user, switch user, and every way a
//! verification must fail.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, unique_name},
    on_both_backends,
};

on_both_backends!(
    sign_in_by_username_and_by_email,
    remembered_user_goes_straight_to_the_passkey,
    forged_remember_cookie_is_ignored,
    replayed_and_raced_assertions_are_refused,
    expired_challenge_is_refused,
    carried_ceremonies_are_checked,
    another_users_credential_is_refused,
    counter_regression_is_refused_but_zero_counters_work,
    unknown_user_is_indistinguishable,
    disabled_user_cannot_sign_in,
);

async fn signed_up(app: &TestApp, auth: &mut SoftAuthenticator) -> (Browser, String) {
    let browser = app.browser();
    let name = unique_name("user");
    browser.sign_up(auth, &name, &format!("{name}@Example.com"), "Grace Hopper").await;
    browser.sign_out().await;
    (browser, name)
}

async fn sign_in_by_username_and_by_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (_, name) = signed_up(&app, &mut auth).await;

    for typed in [name.to_uppercase(), format!("{name}@example.COM")] {
        let fresh = app.browser();
        let step = fresh.username_step(&typed).await;
        assert_eq!(step.status, StatusCode::OK);
        assert!(step.body.contains("Sign in with a passkey"));
        let options = step.json_block("passkey-options");
        let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
        assert_eq!(allowed.len(), 1, "exactly the user's credentials");
        assert_eq!(allowed[0]["transports"], json!(["hybrid", "internal"]));
        let (status, body) = fresh.answer_passkey_step(&step, &mut auth).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"verified": true, "redirect_to": "/account"}));
        let account = fresh.get("/account").await;
        assert!(account.body.contains("Grace Hopper"));
        assert!(!account.body.contains("Never"), "last use is recorded");
    }
}

async fn remembered_user_goes_straight_to_the_passkey(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, _) = signed_up(&app, &mut auth).await;

    let login = browser.get("/login").await;
    assert!(login.body.contains("Hello, Grace Hopper"), "remembered after sign-up: {}", login.body);
    let (status, _) = browser.answer_passkey_step(&login, &mut auth).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(browser.get("/login").await.location(), "/account", "signed in: /login goes to the account");

    browser.sign_out().await;
    let switched = browser.get("/login/switch-user").await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER);
    assert_eq!(switched.location(), "/login");
    let login = browser.get("/login").await;
    assert!(login.body.contains("Username or email"), "switch user forgets the person");
    assert!(!login.body.contains("Hello,"));
}

async fn forged_remember_cookie_is_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (_, name) = signed_up(&app, &mut auth).await;
    let url = app.base.parse().unwrap();
    let forged = app.browser();
    for value in
        [name.as_str(), r#"{"name":"x","signed_in":true}"#, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
    {
        forged.jar.add_cookie_str(&format!("latchkey_remember={value}"), &url);
        let login = forged.get("/login").await;
        assert!(login.body.contains("Username or email"), "an edited cookie greets nobody");
        assert!(!login.body.contains("Grace"));
    }
}

async fn replayed_and_raced_assertions_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator { counting: false, ..Default::default() };
    let (browser, name) = signed_up(&app, &mut auth).await;
    // The allow-list ceremony of the username step (stored) and the discoverable one of the
    // login page (carried by the browser): each is accepted exactly once.
    let username_step = browser.username_step(&name).await;
    browser.get("/login/switch-user").await;
    let login_page = browser.get("/login").await;
    for (step, carried) in [(username_step, false), (login_page, true)] {
        let cookie = ceremony_cookie(&step);
        assert_eq!(cookie.starts_with("latchkey_ceremony=d."), carried, "{cookie}");
        let assertion = auth.assert(&step.json_block("passkey-options"), &app.base).unwrap();
        let attempts = (0..8).map(|_| {
            let other = browser_with(&app, &cookie);
            let assertion = assertion.clone();
            tokio::spawn(async move { other.post_json("/login/passkey", &assertion).await.0 })
        });
        let mut statuses = Vec::new();
        for attempt in attempts {
            statuses.push(attempt.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST), "{statuses:?}");

        let (status, body) = browser_with(&app, &cookie).post_json("/login/passkey", &assertion).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "expired");
    }
}

/// The `name=value` of the ceremony cookie a page set.
fn ceremony_cookie(step: &crate::helpers::Page) -> String {
    step.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .find_map(|v| v.to_str().ok().filter(|v| v.starts_with("latchkey_ceremony=")))
        .expect("a ceremony cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A new browser holding only `cookie`.
fn browser_with(app: &TestApp, cookie: &str) -> Browser {
    let browser = app.browser();
    browser.jar.add_cookie_str(cookie, &app.base.parse().unwrap());
    browser
}

/// The discoverable ceremony the browser carries is signed and stamped: an edited one, one
/// signed by another instance, or an expired one is refused like a missing one.
async fn carried_ceremonies_are_checked(backend: Backend) {
    let other = TestApp::spawn(backend.clone()).await;
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CHALLENGE_TTL", "2s")]).await;
    let mut auth = SoftAuthenticator::default();
    signed_up(&app, &mut auth).await;
    let page = app.browser().get("/login").await;
    let cookie = ceremony_cookie(&page);
    let options = page.json_block("passkey-options");
    let (payload, signature) = cookie.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let edited = format!("{payload}.{flipped}{}", &signature[1..]);
    let foreign = ceremony_cookie(&other.browser().get("/login").await);
    for forged in [edited, foreign, "latchkey_ceremony=d.e30.AAAA".to_owned()] {
        let assertion = auth.assert(&options, &app.base).unwrap();
        let (status, body) = browser_with(&app, &forged).post_json("/login/passkey", &assertion).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("expired")), "{forged}");
    }
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let assertion = auth.assert(&options, &app.base).unwrap();
    let (status, body) = browser_with(&app, &cookie).post_json("/login/passkey", &assertion).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("expired")), "expired");
}

async fn expired_challenge_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_CHALLENGE_TTL", "1s")]).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = signed_up(&app, &mut auth).await;
    let step = browser.username_step(&name).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, body) = browser.answer_passkey_step(&step, &mut auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "expired");
    assert!(body["detail"].as_str().unwrap().contains("expired"));
}

async fn another_users_credential_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = SoftAuthenticator::default();
    let mut mallory = SoftAuthenticator::default();
    let (browser, alice_name) = signed_up(&app, &mut alice).await;
    signed_up(&app, &mut mallory).await;

    // Mallory's own credential answering Alice's passkey step.
    let step = browser.username_step(&alice_name).await;
    let forged = mallory.assert_with(0, &step.json_block("passkey-options"), &app.base);
    let (status, body) = browser.post_json("/login/passkey", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "rejected");
    assert!(body["retry"]["publicKey"]["allowCredentials"].is_array(), "the page can try again");

    // A discoverable assertion claiming Alice's user handle with Mallory's credential.
    let login = app.browser().get("/login").await;
    let options = login.json_block("passkey-options");
    mallory.credentials[0].user_handle = alice.credentials[0].user_handle.clone();
    let forged = mallory.assert_with(0, &options, &app.base);
    let fresh = app.browser();
    let (status, body) = post_with_page_cookies(&fresh, &login, "/login/passkey", &forged, &app.base).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// Posts JSON carrying the cookies `page` set (as the browser that loaded it would).
async fn post_with_page_cookies(
    browser: &Browser,
    page: &crate::helpers::Page,
    path: &str,
    body: &serde_json::Value,
    base: &str,
) -> (StatusCode, serde_json::Value) {
    let url = base.parse().unwrap();
    for cookie in page.headers.get_all(header::SET_COOKIE) {
        browser.jar.add_cookie_str(cookie.to_str().unwrap(), &url);
    }
    browser.post_json(path, body).await
}

async fn counter_regression_is_refused_but_zero_counters_work(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = signed_up(&app, &mut auth).await;
    let clone = auth.clone();
    for _ in 0..2 {
        let step = browser.username_step(&name).await;
        assert_eq!(browser.answer_passkey_step(&step, &mut auth).await.0, StatusCode::OK);
        browser.sign_out().await;
    }
    let mut cloned = clone;
    let step = browser.username_step(&name).await;
    let (status, body) = browser.answer_passkey_step(&step, &mut cloned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a counter that went backwards: {body}");

    // Two sign-ins race with one authenticator; the one with the lower counter finishes last.
    // Its counter must not replace the higher one: a clone at that lower counter stays refused.
    let (first, second) = (app.browser(), app.browser());
    let (first_step, second_step) = (first.username_step(&name).await, second.username_step(&name).await);
    let first_assertion = auth.assert_with(0, &first_step.json_block("passkey-options"), &app.base);
    let mut cloned = auth.clone();
    let second_assertion = auth.assert_with(0, &second_step.json_block("passkey-options"), &app.base);
    assert_eq!(second.post_json("/login/passkey", &second_assertion).await.0, StatusCode::OK);
    assert_eq!(first.post_json("/login/passkey", &first_assertion).await.0, StatusCode::OK);
    let step = browser.username_step(&name).await;
    let (status, body) = browser.answer_passkey_step(&step, &mut cloned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a counter the race would have put back: {body}");

    let mut safari = SoftAuthenticator { counting: false, ..Default::default() };
    let (browser, name) = signed_up(&app, &mut safari).await;
    for _ in 0..3 {
        let step = browser.username_step(&name).await;
        assert_eq!(browser.answer_passkey_step(&step, &mut safari).await.0, StatusCode::OK);
        browser.sign_out().await;
    }
}

async fn unknown_user_is_indistinguishable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (_, known) = signed_up(&app, &mut auth).await;
    let unknown = unique_name("nobody");

    let known_step = app.browser().username_step(&known).await;
    let unknown_step = app.browser().username_step(&unknown).await;
    assert_eq!(known_step.status, unknown_step.status);
    assert_eq!(known_step.cookie_names(), unknown_step.cookie_names());
    let shape = |page: &crate::helpers::Page| {
        let mut options = page.json_block("passkey-options");
        options["publicKey"]["challenge"] = json!("");
        for credential in options["publicKey"]["allowCredentials"].as_array_mut().unwrap() {
            credential["id"] = json!("");
        }
        options["publicKey"]["allowCredentials"] =
            json!(options["publicKey"]["allowCredentials"].as_array().unwrap()[..1]);
        options
    };
    assert_eq!(shape(&known_step), shape(&unknown_step));
    // What is stored for each is of one make and, per credential offered, about one size, so
    // storing and taking it costs alike (a ceremony that carried the account, beside a decoy's
    // that carried nothing, made the step 12 % slower for names with an account).
    let stored_bytes_per_credential = |step: &crate::helpers::Page| {
        let id = ceremony_cookie(step).split_once('=').unwrap().1.to_owned();
        let credentials = step.json_block("passkey-options")["publicKey"]["allowCredentials"].as_array().unwrap().len();
        let store = app.state.ephemeral.clone();
        async move {
            let stored = store.get_json::<serde_json::Value>(&format!("ceremony:{id}")).await.unwrap().unwrap();
            stored.to_string().len() / credentials
        }
    };
    let known_bytes = stored_bytes_per_credential(&known_step).await;
    let unknown_bytes = stored_bytes_per_credential(&unknown_step).await;
    assert!(known_bytes.abs_diff(unknown_bytes) * 5 < known_bytes, "{known_bytes} B against {unknown_bytes} B");
    assert!(unknown_step.body.contains(&format!("Hello, {unknown}")));
    assert!(known_step.body.contains(&format!("Hello, {known}")), "greeted by the typed name before sign-in");

    let again = app.browser().username_step(&unknown).await;
    assert_eq!(
        again.json_block("passkey-options")["publicKey"]["allowCredentials"],
        unknown_step.json_block("passkey-options")["publicKey"]["allowCredentials"],
        "decoy credentials are stable for a name"
    );

    // Signing in fails exactly like a wrong passkey does.
    let browser = app.browser();
    let step = browser.username_step(&unknown).await;
    let (status, unknown_failure) =
        browser.post_json("/login/passkey", &auth.assert_with(0, &step.json_block("passkey-options"), &app.base)).await;
    let mut stranger = SoftAuthenticator::default();
    stranger.register(&creation_options_for_nobody(), &app.base);
    let browser = app.browser();
    let step = browser.username_step(&known).await;
    let (known_status, known_failure) = browser
        .post_json("/login/passkey", &stranger.assert_with(0, &step.json_block("passkey-options"), &app.base))
        .await;
    assert_eq!(status, known_status);
    assert_eq!(unknown_failure["detail"], known_failure["detail"]);
    assert_eq!(unknown_failure["code"], known_failure["code"]);

    let revealing = TestApp::spawn_with(Backend::Embedded, &[("LATCHKEY_REVEAL_UNKNOWN_USERS", "true")]).await;
    let page = revealing.browser().username_step(&unknown).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("No matching user found"));
}

/// Creation options good enough for the software authenticator to mint a credential that the
/// server never registered.
fn creation_options_for_nobody() -> serde_json::Value {
    json!({"publicKey": {"rp": {"id": "localhost"}, "user": {"id": "AAAA"}, "challenge": "AAAA"}})
}

async fn disabled_user_cannot_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = signed_up(&app, &mut auth).await;
    app.set_disabled(&name, true).await;
    let step = browser.username_step(&name).await;
    let options = step.json_block("passkey-options");
    let (status, body) = browser.post_json("/login/passkey", &auth.assert_with(0, &options, &app.base)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

on_both_backends!(an_account_disabled_or_a_passkey_removed_during_the_passkey_step_gets_nothing);

/// The passkey step uses what the username step read; its write checks that both still hold.
async fn an_account_disabled_or_a_passkey_removed_during_the_passkey_step_gets_nothing(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = signed_up(&app, &mut auth).await;
    let user = latchkey::store::users::find_by_login(&app.state.db, &name).await.unwrap().unwrap();
    let successes = || {
        entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::Kind.eq("signin.succeeded"))
            .count(&app.state.db)
    };
    let before = successes().await.unwrap();

    let step = browser.username_step(&name).await;
    app.set_disabled(&name, true).await;
    let (status, body) =
        browser.post_json("/login/passkey", &auth.assert_with(0, &step.json_block("passkey-options"), &app.base)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    app.set_disabled(&name, false).await;

    let step = browser.username_step(&name).await;
    let passkey = latchkey::store::passkeys::list_for_user(&app.state.db, user.id).await.unwrap().remove(0);
    assert!(latchkey::store::passkeys::delete(&app.state.db, user.id, passkey.id).await.unwrap());
    let (status, body) =
        browser.post_json("/login/passkey", &auth.assert_with(0, &step.json_block("passkey-options"), &app.base)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    assert_eq!(successes().await.unwrap(), before, "no sign-in recorded");
    assert_eq!(browser.get("/account").await.location(), "/login", "no session opened");
}

on_both_backends!(sign_ins_are_audited);

async fn sign_ins_are_audited(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let app = TestApp::spawn(backend).await;
    let mut auth = SoftAuthenticator::default();
    let (browser, name) = signed_up(&app, &mut auth).await;
    let step = browser.username_step(&name).await;
    assert_eq!(browser.answer_passkey_step(&step, &mut auth).await.0, StatusCode::OK);
    browser.sign_out().await;

    let mut stranger = SoftAuthenticator::default();
    stranger.register(&creation_options_for_nobody(), &app.base);
    let step = browser.username_step(&name).await;
    let forged = stranger.assert_with(0, &step.json_block("passkey-options"), &app.base);
    assert_eq!(browser.post_json("/login/passkey", &forged).await.0, StatusCode::UNAUTHORIZED);

    let user = latchkey::store::users::find_by_login(&app.state.db, &name).await.unwrap().unwrap();
    let events = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::UserId.eq(user.id))
        .order_by_asc(entity::audit_event::Column::At)
        .all(&app.state.db)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["user.signed_up", "signin.succeeded", "signin.succeeded", "signin.failed"], "{kinds:?}");
    assert!(events[2].detail.contains("\"method\":\"passkey\""), "{}", events[2].detail);
    let passkeys = latchkey::store::passkeys::list_for_user(&app.state.db, user.id).await.unwrap();
    let used = passkeys[0].id.to_string();
    assert!(events[2].detail.contains(&format!("\"passkey_id\":\"{used}\"")), "{}", events[2].detail);
    assert_eq!(events[2].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(passkeys[0].last_used_at, Some(events[2].at), "the use is saved with its event");
    let failures = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq("signin.failed"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].detail.contains("rejected"), "{}", failures[0].detail);
}

#[tokio::test]
async fn guessing_at_one_account_is_rate_limited_per_address() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let browser = app.browser();
    let login = browser.get("/login").await;
    let csrf = login.csrf_token();
    let mut statuses = Vec::new();
    for _ in 0..31 {
        statuses.push(browser.post_form("/login", &[("csrf_token", &csrf), ("username", "target")]).await);
    }
    assert!(statuses[..30].iter().all(|p| p.status == StatusCode::OK));
    let limited = &statuses[30];
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.get(header::RETRY_AFTER).is_some());
    assert!(limited.body.contains("Too many requests"));
    let other = browser.post_form("/login", &[("csrf_token", &csrf), ("username", "someone-else")]).await;
    assert_eq!(other.status, StatusCode::OK, "other accounts are unaffected");
    let off = TestApp::spawn_with(Backend::Embedded, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let browser = off.browser();
    let csrf = browser.get("/login").await.csrf_token();
    for _ in 0..35 {
        assert_eq!(
            browser.post_form("/login", &[("csrf_token", &csrf), ("username", "target")]).await.status,
            StatusCode::OK
        );
    }
}
