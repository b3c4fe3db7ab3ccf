//! The remembered-user cookie: only Latchkey's own encryption, under its key and for that
//! cookie's name, decodes into a `RememberedUser`.

use std::sync::LazyLock;

use axum::{http::HeaderMap, response::IntoResponse};
use axum_extra::extract::{
    PrivateCookieJar,
    cookie::{Cookie, Key},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use latchkey::{http::cookies, login::RememberedUser};
use proptest::prelude::*;

use super::{apply, config, edits};

static COOKIE_KEY: LazyLock<Key> = LazyLock::new(|| Key::from(&[7u8; 64]));

/// The cookie's name as the decoder looks it up (http, like the tests).
fn remember_name() -> String {
    cookies::name(cookies::REMEMBER, false)
}

/// Decodes a `Cookie:` header as `http::login::remembered_user` does: decrypt, then parse.
fn remembered(cookie_header: &str) -> Option<RememberedUser> {
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::COOKIE, cookie_header.parse().ok()?);
    let jar = PrivateCookieJar::from_headers(&headers, COOKIE_KEY.clone());
    serde_json::from_str(jar.get(&remember_name())?.value()).ok()
}

/// The value Latchkey would set for `value` under `name`, encrypted with `key`.
fn encrypted(name: &str, value: &str, key: &Key) -> String {
    let jar = PrivateCookieJar::from_headers(&HeaderMap::new(), key.clone())
        .add(Cookie::new(name.to_owned(), value.to_owned()));
    let response = (jar, ()).into_response();
    let set_cookie = response.headers()[axum::http::header::SET_COOKIE].to_str().unwrap();
    set_cookie.split_once('=').unwrap().1.split(';').next().unwrap().to_owned()
}

fn remembered_json(name: &str, signed_in: bool) -> String {
    serde_json::to_string(&RememberedUser { name: name.to_owned(), signed_in }).unwrap()
}

proptest! {
    #![proptest_config(config(2048))]

    /// Nothing but Latchkey's own encryption under its key makes a remembered user.
    #[test]
    fn fuzz_remembered_user_cookie(
        plain in prop_oneof![".{0,80}", "[a-z]{1,12}".prop_map(|n| remembered_json(&n, true))],
        random in prop::collection::vec(any::<u8>(), 0..120),
        name in "[a-z0-9@.]{1,20}",
        edits in edits(),
    ) {
        let cookie = |value: &str| format!("{}={value}", remember_name());
        prop_assert_eq!(remembered(&cookie(&plain)), None, "plain text, JSON included");
        prop_assert_eq!(remembered(&cookie(&B64.encode(&random))), None, "random bytes shaped like a sealed value");
        prop_assert_eq!(remembered(&cookie(&base64::engine::general_purpose::STANDARD.encode(&random))), None);

        let json = remembered_json(&name, true);
        let genuine = encrypted(&remember_name(), &json, &COOKIE_KEY);
        prop_assert_eq!(remembered(&cookie(&genuine)), Some(RememberedUser { name: name.clone(), signed_in: true }));
        let mut tampered = genuine.clone().into_bytes();
        apply(&mut tampered, &edits);
        let tampered = cookie(&String::from_utf8_lossy(&tampered));
        // Edits that leave the value as the cookie parser reads it (a trailing space, `%41` for
        // `A`, or an edit undone by the next) are no edits.
        let read = |header: &str| -> Vec<String> {
            header
                .split(';')
                .filter_map(|c| Cookie::parse_encoded(c.to_owned()).ok())
                .filter(|c| c.name() == remember_name())
                .map(|c| c.value().to_owned())
                .collect()
        };
        let unchanged = read(&tampered).iter().any(|value| read(&cookie(&genuine)).contains(value));
        if !unchanged {
            prop_assert_eq!(remembered(&tampered), None, "an edited sealed value");
        }
        let other_key = Key::from(&[8u8; 64]);
        prop_assert_eq!(remembered(&cookie(&encrypted(&remember_name(), &json, &other_key))), None, "another key");
        let other_cookie = encrypted(cookies::SESSION, &json, &COOKIE_KEY);
        prop_assert_eq!(remembered(&cookie(&other_cookie)), None, "sealed for another cookie name");
    }
}
