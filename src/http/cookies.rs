//! Latchkey's cookies and their attributes: `HttpOnly`, `SameSite=Lax` (Strict would drop them
//! exactly when a relying party redirects the person here), `Path=/`, and `Secure` plus the
//! `__Host-` prefix whenever the issuer is https.

use std::time::Duration;

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
