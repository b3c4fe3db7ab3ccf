//! `POST /login/passkey`: malformed and forged assertions, on allow-list (username step) and
//! discoverable (autofill) ceremonies, and backup-eligibility changes.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, unique_name},
    on_both_backends,
};

on_both_backends!(
    malformed_assertions_are_bad_requests,
    forged_assertions_are_rejected,
    backup_eligibility_may_not_change_after_registration,
    discoverable_assertions_without_a_known_owner_are_rejected,
);

/// A new browser at the passkey step for `name`, and the step's request options.
async fn passkey_step(app: &TestApp, name: &str) -> (Browser, Value) {
    let browser = app.browser();
    let step = browser.username_step(name).await;
    assert_eq!(step.status, StatusCode::OK);
    (browser, step.json_block("passkey-options"))
}

async fn malformed_assertions_are_bad_requests(backend: Backend) {
    let mut auth = SoftAuthenticator::default();
    let (app, name) = app_with_user(backend, &mut auth).await;
    let fields =
        ["rawId", "response.clientDataJSON", "response.authenticatorData", "response.signature", "response.userHandle"];
    for field in fields {
        for (what, bad) in bad_base64() {
            let case = format!("{field} is {what}");
            let (browser, options) = passkey_step(&app, &name).await;
            let good = auth.assert(&options, &app.base).unwrap();
            let before = stored(&app).await;
            let mut assertion = good.clone();
            set(&mut assertion, field, bad);
            let answer = post_json(&browser, "/login/passkey", &assertion).await;
            answer.assert_refused(StatusCode::BAD_REQUEST, None, &case);
            assert!(answer.body["detail"].as_str().unwrap().contains("not valid WebAuthn JSON"), "{case}");
            assert_eq!(stored(&app).await, before, "{case}: nothing written");
            // The refused body never reached the ceremony: the real assertion still signs in.
            assert_eq!(post_json(&browser, "/login/passkey", &good).await.status, StatusCode::OK, "{case}");
        }
    }

    let (browser, options) = passkey_step(&app, &name).await;
    let good = auth.assert(&options, &app.base).unwrap();
    let before = stored(&app).await;
    for (case, body) in [
        ("not JSON", b"{\"id\": ".to_vec()),
        ("JSON, not a credential", b"[1, 2, 3]".to_vec()),
        ("a credential without its response", br#"{"id": "AAAA", "rawId": "AAAA", "type": "public-key"}"#.to_vec()),
    ] {
        post(&browser, "/login/passkey", body).await.assert_refused(StatusCode::BAD_REQUEST, None, case);
    }
    // 5 MB that is otherwise the real assertion: refused by size, before anything is read.
    let mut padded = good.clone();
    padded["clientExtensionResults"] = json!({"padding": "x".repeat(5 * 1024 * 1024)});
    let answer = post_json(&browser, "/login/passkey", &padded).await;
    answer.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, None, "5 MB assertion");
    assert_eq!(stored(&app).await, before, "nothing written");
    assert!(!signed_in(&browser).await);
    assert_eq!(post_json(&browser, "/login/passkey", &good).await.status, StatusCode::OK);
}

/// Every forgery of an assertion answering a real passkey step: the ceremony runs and refuses it.
async fn forged_assertions_are_rejected(backend: Backend) {
    let mut auth = SoftAuthenticator::default();
    let (app, name) = app_with_user(backend, &mut auth).await;
    let tampered: Vec<(&str, Tamper, Edit)> = vec![
        ("truncated authenticator data", |data, _| data.truncate(20), AS_SIGNED),
        ("authenticator data without its counter", |data, _| data.truncate(FLAGS + 1), AS_SIGNED),
        ("non-JSON client data", |_, client| *client = b"not json at all".to_vec(), AS_SIGNED),
        ("client data that is a JSON string", |_, client| *client = b"\"webauthn.get\"".to_vec(), AS_SIGNED),
        (
            "client data of a registration (type webauthn.create)",
            |_, client| edit_client_data(client, |c| c["type"] = json!("webauthn.create")),
            AS_SIGNED,
        ),
        ("client data without a type", |_, client| edit_client_data(client, |c| c["type"] = Value::Null), AS_SIGNED),
        (
            "another ceremony's challenge",
            |_, client| edit_client_data(client, |c| c["challenge"] = json!(B64.encode([7u8; 32]))),
            AS_SIGNED,
        ),
        (
            "a phishing origin",
            |_, client| edit_client_data(client, |c| c["origin"] = json!("https://latchkey.example.evil")),
            AS_SIGNED,
        ),
        (
            "the origin without its port",
            |_, client| edit_client_data(client, |c| c["origin"] = json!("http://localhost")),
            AS_SIGNED,
        ),
        ("the origin over https", |_, client| edit_client_data(client, https_origin), AS_SIGNED),
        ("client data from a cross-origin iframe", |_, client| edit_client_data(client, framed), AS_SIGNED),
        ("another RP ID's hash", |data, _| data[..32].copy_from_slice(&Sha256::digest(b"evil.example")), AS_SIGNED),
        ("user presence flag missing", |data, _| data[FLAGS] &= !UP, AS_SIGNED),
        ("user verification flag missing", |data, _| data[FLAGS] &= !UV, AS_SIGNED),
        ("signature flipped", UNTOUCHED, |assertion| flip_last_bit(assertion, "response.signature")),
        ("signature of another credential's data", UNTOUCHED, |assertion| {
            flip_last_bit(assertion, "response.authenticatorData")
        }),
        ("signature truncated", UNTOUCHED, |assertion| {
            let signature = B64.decode(assertion["response"]["signature"].as_str().unwrap()).unwrap();
            assertion["response"]["signature"] = json!(B64.encode(&signature[..signature.len() / 2]));
        }),
        ("an empty signature", UNTOUCHED, |assertion| assertion["response"]["signature"] = json!("")),
        ("rawId of a credential the step did not offer", UNTOUCHED, |assertion| {
            assertion["rawId"] = json!(B64.encode([9u8; 32]));
        }),
        ("a user handle that is someone else's", UNTOUCHED, |assertion| {
            assertion["response"]["userHandle"] = json!(B64.encode(uuid::Uuid::new_v4().as_bytes()));
        }),
        ("a user handle that is no user id", UNTOUCHED, |assertion| {
            assertion["response"]["userHandle"] = json!("AAAA")
        }),
        ("id that is not the rawId", UNTOUCHED, |assertion| assertion["id"] = json!(B64.encode([9u8; 32]))),
        ("id that is not base64url", UNTOUCHED, |assertion| assertion["id"] = json!("not base64url!")),
        ("type other than public-key", UNTOUCHED, |assertion| assertion["type"] = json!("password")),
    ];
    for (case, tamper, edit) in tampered {
        let (browser, options) = passkey_step(&app, &name).await;
        let before = stored(&app).await;
        let mut assertion = auth.assert_tampered(0, &options, &app.base, tamper);
        edit(&mut assertion);
        let answer = post_json(&browser, "/login/passkey", &assertion).await;
        answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), case);
        assert!(answer.body["detail"].as_str().unwrap().contains("not recognised"), "{case}: {}", answer.body);
        assert!(answer.body["retry"]["publicKey"]["challenge"].is_string(), "{case}: the page may try again");
        assert_eq!(stored(&app).await, before, "{case}: nothing written");
        assert!(!signed_in(&browser).await, "{case}");
    }

    // User verification missing because the authenticator did not verify the person.
    let (browser, options) = passkey_step(&app, &name).await;
    let before = stored(&app).await;
    let mut unverified = SoftAuthenticator { user_verified: false, ..auth.clone() };
    let answer = post_json(&browser, "/login/passkey", &unverified.assert(&options, &app.base).unwrap()).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), "user_verified: false");
    assert_eq!(stored(&app).await, before, "nothing written");

    // After all that, the real passkey still signs in, once.
    let (browser, options) = passkey_step(&app, &name).await;
    let answer = post_json(&browser, "/login/passkey", &auth.assert(&options, &app.base).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(signed_in(&browser).await);
}

/// WebAuthn L3 §7.2 step 19: Latchkey tells device-bound from synced passkeys (`phrh`/`phr`), so
/// the BE flag must stay what it was at registration; BS may change while BE is set.
async fn backup_eligibility_may_not_change_after_registration(backend: Backend) {
    let mut device_bound = SoftAuthenticator::default();
    let (app, name) = app_with_user(backend, &mut device_bound).await;
    for (case, be, bs) in [("BE set later", true, false), ("BE and BS set later", true, true)] {
        for discoverable in [false, true] {
            let case = format!("{case} ({})", if discoverable { "discoverable" } else { "allow-list" });
            let (browser, options) = step_for(&app, &name, discoverable).await;
            let before = stored(&app).await;
            let mut changed = SoftAuthenticator { backup_eligible: be, backup_state: bs, ..device_bound.clone() };
            let assertion = changed.assert(&options, &app.base).unwrap();
            let answer = post_json(&browser, "/login/passkey", &assertion).await;
            answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), &case);
            assert_eq!(stored(&app).await, before, "{case}: nothing written");
            assert!(!signed_in(&browser).await, "{case}");
        }
    }

    // A synced passkey (BE=1) that later claims to be device-bound.
    let mut synced = SoftAuthenticator { backup_eligible: true, ..Default::default() };
    let synced_name = unique_name("synced");
    let browser = app.browser();
    browser.sign_up(&mut synced, &synced_name, &format!("{synced_name}@example.com"), "Synced").await;
    browser.sign_out().await;
    for discoverable in [false, true] {
        let (browser, options) = step_for(&app, &synced_name, discoverable).await;
        let before = stored(&app).await;
        let mut changed = SoftAuthenticator { backup_eligible: false, ..synced.clone() };
        let answer = post_json(&browser, "/login/passkey", &changed.assert(&options, &app.base).unwrap()).await;
        answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), "BE cleared later");
        assert_eq!(stored(&app).await, before, "nothing written");
    }
    // Backing up a backup-eligible passkey (BS 0 → 1) is what synced passkeys do: allowed, stored.
    let (browser, options) = step_for(&app, &synced_name, false).await;
    let mut backed_up = SoftAuthenticator { backup_state: true, ..synced.clone() };
    let answer = post_json(&browser, "/login/passkey", &backed_up.assert(&options, &app.base).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let user = latchkey::store::users::find_by_login(&app.state.db, &synced_name).await.unwrap().unwrap();
    let rows = latchkey::store::passkeys::list_for_user(&app.state.db, user.id).await.unwrap();
    assert!(rows[0].backup_eligible && rows[0].backup_state, "the new backup state is stored");

    // The device-bound passkey, unchanged, still signs in both ways.
    for discoverable in [false, true] {
        let (browser, options) = step_for(&app, &name, discoverable).await;
        let answer = post_json(&browser, "/login/passkey", &device_bound.assert(&options, &app.base).unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
}

/// A passkey step in a new browser: the username step for `name`, or (discoverable) the login
/// page's autofill request.
async fn step_for(app: &TestApp, name: &str, discoverable: bool) -> (Browser, Value) {
    if !discoverable {
        return passkey_step(app, name).await;
    }
    let browser = app.browser();
    let page = browser.get("/login").await;
    let options = page.json_block("passkey-options");
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]), "a discoverable request");
    (browser, options)
}

async fn discoverable_assertions_without_a_known_owner_are_rejected(backend: Backend) {
    let mut auth = SoftAuthenticator::default();
    let (app, name) = app_with_user(backend, &mut auth).await;
    let cases: [(&str, Edit); 3] = [
        ("no user handle", |assertion| assertion["response"]["userHandle"] = Value::Null),
        ("a user handle that is no user id", |assertion| assertion["response"]["userHandle"] = json!("AAAA")),
        ("an empty user handle", |assertion| assertion["response"]["userHandle"] = json!("")),
    ];
    for (case, edit) in cases {
        let (browser, options) = step_for(&app, &name, true).await;
        let before = stored(&app).await;
        let mut assertion = auth.assert(&options, &app.base).unwrap();
        edit(&mut assertion);
        let answer = post_json(&browser, "/login/passkey", &assertion).await;
        answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), case);
        assert!(answer.body["retry"]["publicKey"]["challenge"].is_string(), "{case}: the page may try again");
        assert_eq!(stored(&app).await, before, "{case}: nothing written");
    }

    // A passkey this server never registered (or has deleted): the page is told which one.
    let mut stranger = SoftAuthenticator::default();
    let creation = json!({"publicKey": {"rp": {"id": "localhost"}, "user": {"id": B64.encode([5u8; 16])}}});
    stranger.register(&creation, &app.base);
    let (browser, options) = step_for(&app, &name, true).await;
    let before = stored(&app).await;
    let answer = post_json(&browser, "/login/passkey", &stranger.assert(&options, &app.base).unwrap()).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, Some("unknown_credential"), "unregistered passkey");
    assert_eq!(answer.body["credential_id"], B64.encode(&stranger.credentials[0].id));
    assert_eq!(stored(&app).await, before, "nothing written");
}
