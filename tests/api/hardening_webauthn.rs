//! WebAuthn bad input, end to end (issue 7): every way an assertion (`POST /login/passkey`) or a
//! registration (`POST /signup/passkey`) can be malformed or forged gets its exact answer — 400
//! when the body is not WebAuthn JSON, 401 `rejected` when it does not verify, 409 for a
//! credential registered to someone else, 413 when it is too large — with a readable `detail`,
//! and nothing is written: no session cookie, no user or passkey row, the stored passkey (counter,
//! flags) and its last use untouched.
//!
//! Each forgery is signed as forged (see [`SoftAuthenticator::assert_tampered`]), so it probes
//! exactly one check rather than failing on the signature. Counter regression, another user's
//! credential answering a passkey step and two concurrent submissions of one assertion are in
//! `login.rs`; non-JSON client data at sign-up is in `signup.rs`.

mod login;
mod signup;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::{StatusCode, header};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, unique_name},
};

/// Offset of the flags byte in authenticator data (after the 32-byte RP ID hash).
const FLAGS: usize = 32;
/// User present.
const UP: u8 = 0x01;
/// User verified.
const UV: u8 = 0x04;
/// Backup eligible.
const BE: u8 = 0x08;
/// Backup state (backed up).
const BS: u8 = 0x10;

/// Changes the authenticator data and the client data JSON before they are signed.
type Tamper = fn(&mut Vec<u8>, &mut Vec<u8>);
/// Changes the response JSON after signing.
type Edit = fn(&mut Value);
/// Leaves what is signed as the authenticator made it.
const UNTOUCHED: Tamper = |_, _| {};
/// Leaves the response as it was signed.
const AS_SIGNED: Edit = |_| {};

/// The answer to a ceremony post: status, problem document, and the cookies it set.
struct Answer {
    status: StatusCode,
    body: Value,
    set_cookies: Vec<String>,
}

/// Posts `body` as Latchkey's script does (same-origin, `application/json`).
async fn post(browser: &Browser, path: &str, body: impl Into<reqwest::Body>) -> Answer {
    let response = browser
        .client
        .post(format!("{}{path}", browser.base))
        .header(header::ORIGIN, &browser.origin)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let set_cookies =
        response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let text = response.text().await.unwrap();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), set_cookies }
}

async fn post_json(browser: &Browser, path: &str, body: &Value) -> Answer {
    post(browser, path, serde_json::to_vec(body).unwrap()).await
}

impl Answer {
    /// Asserts a refusal with `status` (and `code`, when the ceremony ran), a readable detail,
    /// and no session or remembered-user cookie.
    fn assert_refused(&self, status: StatusCode, code: Option<&str>, case: &str) {
        assert_eq!(self.status, status, "{case}: {}", self.body);
        assert_eq!(self.body["status"], status.as_u16(), "{case}: a problem document: {}", self.body);
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(detail.len() > 10 && detail.ends_with('.'), "{case}: a readable detail: {}", self.body);
        assert!(!detail.contains("went wrong"), "{case}: not an internal error: {}", self.body);
        if let Some(code) = code {
            assert_eq!(self.body["code"], code, "{case}: {}", self.body);
        }
        for cookie in &self.set_cookies {
            assert!(
                !cookie.starts_with("latchkey_session=") && !cookie.starts_with("latchkey_remember="),
                "{case}: no sign-in cookie: {cookie}"
            );
        }
    }
}

/// What a refused ceremony must leave as it was: every user and every passkey row, with the
/// stored credential (counter, flags) and its last use.
#[derive(Debug, PartialEq)]
struct Stored {
    users: u64,
    passkeys: Vec<entity::passkey::Model>,
}

async fn stored(app: &TestApp) -> Stored {
    let users = entity::user::Entity::find().count(&app.state.db).await.unwrap();
    let mut passkeys = entity::passkey::Entity::find().all(&app.state.db).await.unwrap();
    passkeys.sort_by(|a, b| a.credential_id.cmp(&b.credential_id));
    Stored { users, passkeys }
}

/// Latchkey without rate limits (this file sends many ceremonies from one address) and one
/// signed-up, signed-out person with `auth`'s passkey.
async fn app_with_user(backend: Backend, auth: &mut SoftAuthenticator) -> (TestApp, String) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let browser = app.browser();
    let name = unique_name("target");
    browser.sign_up(auth, &name, &format!("{name}@example.com"), "Target Person").await;
    browser.sign_out().await;
    (app, name)
}

/// Whether `browser` is signed in.
async fn signed_in(browser: &Browser) -> bool {
    browser.get("/account").await.status == StatusCode::OK
}

/// Sets the member at `path` (dot-separated) of `value`.
fn set(value: &mut Value, path: &str, to: Value) {
    let mut target = value;
    for key in path.split('.') {
        target = &mut target[key];
    }
    *target = to;
}

/// Changes `client_data` (JSON bytes) with `change`.
fn edit_client_data(client_data: &mut Vec<u8>, change: impl FnOnce(&mut Value)) {
    let mut parsed: Value = serde_json::from_slice(client_data).unwrap();
    change(&mut parsed);
    *client_data = serde_json::to_vec(&parsed).unwrap();
}

/// Flips the last bit of the base64url member at `path`.
fn flip_last_bit(value: &mut Value, path: &str) {
    let mut target = &mut *value;
    for key in path.split('.') {
        target = &mut target[key];
    }
    let mut bytes = B64.decode(target.as_str().unwrap()).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    *target = json!(B64.encode(bytes));
}

/// Base64url that is not: characters outside the alphabet, an impossible length, the standard
/// alphabet, a number.
fn bad_base64() -> [(&'static str, Value); 4] {
    [
        ("characters outside the alphabet", json!("not base64url!")),
        ("an impossible length", json!("A")),
        ("standard-alphabet base64 with padding", json!("+/+/+w==")),
        ("a number", json!(12345)),
    ]
}

/// Client data of a ceremony run inside a cross-origin iframe (WebAuthn L3 §5.8.1).
fn framed(client_data: &mut Value) {
    client_data["crossOrigin"] = json!(true);
    client_data["topOrigin"] = json!("https://framing.example.evil");
}

fn https_origin(client_data: &mut Value) {
    let origin = client_data["origin"].as_str().unwrap().replace("http://", "https://");
    client_data["origin"] = json!(origin);
}
