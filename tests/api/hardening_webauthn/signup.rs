//! `POST /signup/passkey`: malformed and forged registrations, a credential of another account,
//! and concurrent submissions of one registration.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::{
    authenticator::{Attestation, SoftAuthenticator},
    helpers::{Backend, Browser, TestApp, unique_name},
    on_both_backends,
};

on_both_backends!(
    malformed_registrations_are_bad_requests,
    forged_registrations_are_rejected,
    a_credential_of_another_account_cannot_be_registered_again,
    concurrent_submissions_of_one_registration_create_one_account,
);

/// A new browser at the sign-up passkey step: the browser, the creation options, the username.
async fn signup_step(app: &TestApp) -> (Browser, Value, String) {
    let browser = app.browser();
    let name = unique_name("new");
    let csrf = browser.get("/signup").await.csrf_token();
    let email = format!("{name}@example.com");
    let fields = [("csrf_token", csrf.as_str()), ("username", &name), ("email", &email), ("display_name", "New")];
    let page = browser.post_form("/signup", &fields).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    (browser, page.json_block("passkey-creation-options"), name)
}

async fn account_exists(app: &TestApp, name: &str) -> bool {
    latchkey::store::users::find_by_login(&app.state.db, name).await.unwrap().is_some()
}

async fn malformed_registrations_are_bad_requests(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let (browser, options, name) = signup_step(&app).await;
    let mut auth = SoftAuthenticator::default();
    let good = auth.register(&options, &app.base);
    let before = stored(&app).await;
    for field in ["rawId", "response.clientDataJSON", "response.attestationObject"] {
        for (what, bad) in bad_base64() {
            let case = format!("{field} is {what}");
            let mut registration = good.clone();
            set(&mut registration, field, bad);
            let answer = post_json(&browser, "/signup/passkey", &registration).await;
            answer.assert_refused(StatusCode::BAD_REQUEST, None, &case);
            assert!(answer.body["detail"].as_str().unwrap().contains("not valid WebAuthn JSON"), "{case}");
        }
    }
    for (case, body) in [
        ("not JSON", b"\x00\x01 not json".to_vec()),
        (
            "an assertion instead of a registration",
            serde_json::to_vec(&json!({
                "id": "AAAA", "rawId": "AAAA", "type": "public-key",
                "response": {"clientDataJSON": "AAAA", "authenticatorData": "AAAA", "signature": "AAAA"},
            }))
            .unwrap(),
        ),
    ] {
        post(&browser, "/signup/passkey", body).await.assert_refused(StatusCode::BAD_REQUEST, None, case);
    }
    let mut padded = good.clone();
    padded["response"]["transports"] = json!(vec!["usb"; 900_000]);
    let answer = post_json(&browser, "/signup/passkey", &padded).await;
    answer.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, None, "5 MB registration");
    assert_eq!(stored(&app).await, before, "nothing written");
    assert!(!account_exists(&app, &name).await);
    // None of those reached the ceremony: the real registration still creates the account.
    let answer = post_json(&browser, "/signup/passkey", &good).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(account_exists(&app, &name).await);
}

async fn forged_registrations_are_rejected(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let none = Attestation::None;
    let cases: Vec<(&str, Attestation, Tamper, Edit)> = vec![
        ("authenticator data cut after the counter", none, |data, _| data.truncate(37), AS_SIGNED),
        ("authenticator data cut inside the public key", none, |data, _| data.truncate(data.len() - 10), AS_SIGNED),
        (
            "no attested credential data",
            none,
            |data, _| {
                data[FLAGS] &= !0x40;
                data.truncate(37);
            },
            AS_SIGNED,
        ),
        ("attestation object cut in half", none, UNTOUCHED, |registration| {
            let object = B64.decode(registration["response"]["attestationObject"].as_str().unwrap()).unwrap();
            registration["response"]["attestationObject"] = json!(B64.encode(&object[..object.len() / 2]));
        }),
        ("attestation object that is not CBOR", none, UNTOUCHED, |registration| {
            registration["response"]["attestationObject"] = json!(B64.encode(b"not cbor"));
        }),
        (
            "client data of an assertion (type webauthn.get)",
            none,
            |_, client| edit_client_data(client, |c| c["type"] = json!("webauthn.get")),
            AS_SIGNED,
        ),
        (
            "another ceremony's challenge",
            none,
            |_, client| edit_client_data(client, |c| c["challenge"] = json!(B64.encode([7u8; 32]))),
            AS_SIGNED,
        ),
        (
            "a phishing origin",
            none,
            |_, client| edit_client_data(client, |c| c["origin"] = json!("https://latchkey.example.evil")),
            AS_SIGNED,
        ),
        ("client data from a cross-origin iframe", none, |_, client| edit_client_data(client, framed), AS_SIGNED),
        (
            "another RP ID's hash",
            none,
            |data, _| data[..32].copy_from_slice(&Sha256::digest(b"evil.example")),
            AS_SIGNED,
        ),
        ("user presence flag missing", none, |data, _| data[FLAGS] &= !UP, AS_SIGNED),
        ("user verification flag missing", none, |data, _| data[FLAGS] &= !UV, AS_SIGNED),
        (
            "backed up (BS) but not backup eligible (BE)",
            none,
            |data, _| data[FLAGS] = (data[FLAGS] & !BE) | BS,
            AS_SIGNED,
        ),
        ("self attestation with a flipped signature", Attestation::PackedSelf, UNTOUCHED, |registration| {
            flip_self_attestation_signature(registration)
        }),
        ("self attestation over other (still valid) client data", Attestation::PackedSelf, UNTOUCHED, |registration| {
            let encoded = registration["response"]["clientDataJSON"].as_str().unwrap();
            let mut client: Value = serde_json::from_slice(&B64.decode(encoded).unwrap()).unwrap();
            client["other_keys_can_be_added_here"] = json!("after the signature");
            registration["response"]["clientDataJSON"] = json!(B64.encode(client.to_string()));
        }),
        ("id that is not the rawId", none, UNTOUCHED, |registration| {
            registration["id"] = json!(B64.encode([9u8; 32]));
        }),
        ("id that is not base64url", none, UNTOUCHED, |registration| registration["id"] = json!("not base64url!")),
        ("type other than public-key", none, UNTOUCHED, |registration| registration["type"] = json!("password")),
    ];
    for (case, attestation, tamper, edit) in cases {
        let (browser, options, name) = signup_step(&app).await;
        let before = stored(&app).await;
        let mut registration = SoftAuthenticator::default().register_tampered(&options, &app.base, attestation, tamper);
        edit(&mut registration);
        let answer = post_json(&browser, "/signup/passkey", &registration).await;
        answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), case);
        assert!(answer.body["retry"]["publicKey"]["challenge"].is_string(), "{case}: the page may try again");
        assert_eq!(stored(&app).await, before, "{case}: nothing written");
        assert!(!account_exists(&app, &name).await, "{case}");
        assert!(!signed_in(&browser).await, "{case}");
    }

    let (browser, options, name) = signup_step(&app).await;
    let before = stored(&app).await;
    let mut unverified = SoftAuthenticator { user_verified: false, ..Default::default() };
    let answer = post_json(&browser, "/signup/passkey", &unverified.register(&options, &app.base)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, Some("rejected"), "user_verified: false");
    assert_eq!(stored(&app).await, before, "nothing written");
    assert!(!account_exists(&app, &name).await);

    // The control: an untampered self attestation is accepted.
    let (browser, options, name) = signup_step(&app).await;
    let registration =
        SoftAuthenticator::default().register_tampered(&options, &app.base, Attestation::PackedSelf, UNTOUCHED);
    let answer = post_json(&browser, "/signup/passkey", &registration).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(account_exists(&app, &name).await);
}

/// Flips the last bit of the `sig` of a packed attestation statement.
fn flip_self_attestation_signature(registration: &mut Value) {
    use ciborium::Value as C;
    let bytes = B64.decode(registration["response"]["attestationObject"].as_str().unwrap()).unwrap();
    let mut object: C = ciborium::from_reader(bytes.as_slice()).unwrap();
    let statement = object.as_map_mut().unwrap().iter_mut().find(|(k, _)| k.as_text() == Some("attStmt")).unwrap();
    let sig = statement.1.as_map_mut().unwrap().iter_mut().find(|(k, _)| k.as_text() == Some("sig")).unwrap();
    let C::Bytes(signature) = &mut sig.1 else { panic!("sig is bytes") };
    *signature.last_mut().unwrap() ^= 1;
    let mut out = Vec::new();
    ciborium::into_writer(&object, &mut out).unwrap();
    registration["response"]["attestationObject"] = json!(B64.encode(out));
}

/// The same credential id for a second account: refused when stored, and nothing half-written.
async fn a_credential_of_another_account_cannot_be_registered_again(backend: Backend) {
    let mut alice = SoftAuthenticator::default();
    let (app, _) = app_with_user(backend, &mut alice).await;
    let (browser, options, name) = signup_step(&app).await;
    let before = stored(&app).await;
    let alice_id = alice.credentials[0].id.clone();
    // Alice's credential id in the attested credential data (after rpIdHash 32, flags 1,
    // counter 4, AAGUID 16 and the id's length 2) and in the JSON.
    let target = alice_id.clone();
    let mut registration =
        SoftAuthenticator::default().register_tampered(&options, &app.base, Attestation::None, move |data, _| {
            data[55..87].copy_from_slice(&target);
        });
    registration["id"] = json!(B64.encode(&alice_id));
    registration["rawId"] = json!(B64.encode(&alice_id));
    let answer = post_json(&browser, "/signup/passkey", &registration).await;
    answer.assert_refused(StatusCode::CONFLICT, None, "another account's credential");
    assert_eq!(answer.body["field"], "credential", "{}", answer.body);
    assert!(answer.body["detail"].as_str().unwrap().contains("already registered"), "{}", answer.body);
    assert_eq!(stored(&app).await, before, "no user without a passkey, Alice's passkey UNTOUCHED");
    assert!(!account_exists(&app, &name).await);
}

/// The registration twin of `login::replayed_and_raced_assertions_are_refused`.
async fn concurrent_submissions_of_one_registration_create_one_account(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let (browser, options, name) = signup_step(&app).await;
    let before = stored(&app).await;
    let registration = SoftAuthenticator::default().register(&options, &app.base);
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let (browser, registration) = (browser.clone(), registration.clone());
            tokio::spawn(async move { post_json(&browser, "/signup/passkey", &registration).await })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.unwrap());
    }
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    for answer in answers.iter().filter(|a| a.status != StatusCode::OK) {
        answer.assert_refused(StatusCode::BAD_REQUEST, Some("expired"), "a raced registration");
    }
    let after = stored(&app).await;
    assert_eq!((after.users, after.passkeys.len()), (before.users + 1, before.passkeys.len() + 1));
    assert!(account_exists(&app, &name).await);
}
