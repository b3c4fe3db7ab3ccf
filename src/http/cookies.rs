//! Latchkey's cookies and their attributes: `HttpOnly`, `SameSite=Lax` (Strict would drop them
//! exactly when a relying party redirects the person here), `Path=/`, and `Secure` plus the
//! `__Host-` prefix whenever the issuer is https.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum_extra::extract::cookie::{Cookie, SameSite};

/// The SSO session id.
pub const SESSION: &str = "latchkey_session";
/// The remembered user (encrypted).
pub const REMEMBER: &str = "latchkey_remember";
/// The id of the WebAuthn ceremony in progress.
pub const CEREMONY: &str = "latchkey_ceremony";
/// The id of the authorization request waiting for this browser to sign in.
pub const AUTHZ: &str = "latchkey_authz";
/// The random value CSRF tokens are bound to.
pub const CSRF: &str = "latchkey_csrf";

/// The cookie's name as sent: `__Host-` prefixed on https.
pub fn name(base: &str, https: bool) -> String {
    if https { format!("__Host-{base}") } else { base.to_owned() }
}

/// The value of the cookie `name` exactly as the browser sent it (not percent-decoded; the last
/// one when it was sent twice, as in a parsed jar). For a value that never needs decoding, read
/// on every request: it skips decoding every other cookie the request carries.
pub fn sent_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == name)
        .last()
        .and_then(|cookie| cookie.value_raw())
}

/// A cookie with Latchkey's attributes; `max_age` `None` makes it last for the browser session.
pub fn build(base: &str, value: String, max_age: Option<Duration>, https: bool) -> Cookie<'static> {
    let mut cookie =
        Cookie::build((name(base, https), value)).http_only(true).same_site(SameSite::Lax).path("/").secure(https);
    if let Some(age) = max_age {
        let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        cookie = cookie.max_age(time::Duration::seconds(seconds));
    }
    cookie.build()
}

/// A cookie that deletes `base` in the browser (same name, path and prefix).
pub fn removal(base: &str, https: bool) -> Cookie<'static> {
    let mut cookie = build(base, String::new(), None, https);
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_value_is_found_among_the_cookie_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; latchkey_csrf=seed%41; b".parse().unwrap());
        headers.append(header::COOKIE, "c=3".parse().unwrap());
        assert_eq!(sent_value(&headers, "latchkey_csrf"), Some("seed%41"), "as sent, not decoded");
        assert_eq!(sent_value(&headers, "c"), Some("3"));
        assert_eq!(sent_value(&headers, "latchkey"), None);
        headers.append(header::COOKIE, "c=4".parse().unwrap());
        assert_eq!(sent_value(&headers, "c"), Some("4"), "the last of two, as a parsed jar keeps");
        assert_eq!(sent_value(&HeaderMap::new(), "c"), None);
    }
}
