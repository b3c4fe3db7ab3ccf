//! How a person signed in, as OIDC tells it: `amr` (RFC 8176 values) and `acr` (the OpenID EAP
//! ACR values `phr`/`phrh`), and whether a session meets an `acr_values` / `max_age` demand.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::session::{AuthMethod, Session};

/// `acr` of a passkey sign-in with a synced (backup-eligible) passkey: phishing-resistant.
pub const ACR_PHR: &str = "phr";
/// `acr` of a passkey sign-in with a device-bound passkey: phishing-resistant, hardware-bound.
pub const ACR_PHRH: &str = "phrh";

/// `acr` of a sign-in by emailed link: not phishing-resistant.
pub const ACR_EMAIL: &str = "urn:latchkey:acr:email";

/// The authentication facts tokens carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    pub user_id: uuid::Uuid,
    pub sid: String,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub acr: String,
}

impl AuthContext {
    /// The context of an SSO session.
    pub fn of(session: &Session) -> Self {
        let (amr, acr): (Vec<&str>, &str) = match session.method {
            AuthMethod::Passkey => {
                let key = if session.backup_eligible { "swk" } else { "hwk" };
                let mut amr = vec![key, "user"];
                if session.user_verified {
                    amr.push("mfa");
                }
                (amr, if session.backup_eligible { ACR_PHR } else { ACR_PHRH })
            }
            AuthMethod::Email => (vec!["otp"], ACR_EMAIL),
        };
        AuthContext {
            user_id: session.user_id,
            sid: session.sid.clone(),
            auth_time: session.auth_time,
            amr: amr.into_iter().map(str::to_owned).collect(),
            acr: acr.to_owned(),
        }
    }

    /// Whether this sign-in satisfies the requested `acr_values` (any one of them). Unknown
    /// values are not demands Latchkey can check, so they are met by any sign-in; `phr` is met
    /// by any passkey sign-in, `phrh` only by a device-bound one.
    pub fn meets_acr(&self, acr_values: &[String]) -> bool {
        let demands: Vec<&str> =
            acr_values.iter().map(String::as_str).filter(|v| matches!(*v, ACR_PHR | ACR_PHRH)).collect();
        demands.is_empty()
            || demands.iter().any(|demand| match *demand {
                ACR_PHR => matches!(self.acr.as_str(), ACR_PHR | ACR_PHRH),
                _ => self.acr == ACR_PHRH,
            })
    }

    /// Whether the sign-in is recent enough for `max_age` seconds (OIDC Core §3.1.2.1).
    pub fn within_max_age(&self, max_age: Option<i64>, now: DateTime<Utc>) -> bool {
        max_age.is_none_or(|age| (now - self.auth_time).num_seconds() <= age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(backup_eligible: bool, auth_time: DateTime<Utc>) -> AuthContext {
        AuthContext::of(&Session::passkey(uuid::Uuid::nil(), true, backup_eligible, auth_time))
    }

    #[test]
    fn passkeys_are_phishing_resistant_and_device_bound_ones_hardware_bound() {
        let now = Utc::now();
        let bound = context(false, now);
        assert_eq!((bound.amr.join(" "), bound.acr.as_str()), ("hwk user mfa".into(), "phrh"));
        let synced = context(true, now);
        assert_eq!((synced.amr.join(" "), synced.acr.as_str()), ("swk user mfa".into(), "phr"));
        let phr = vec!["phr".to_owned()];
        let phrh = vec!["phrh".to_owned()];
        assert!(bound.meets_acr(&phr) && bound.meets_acr(&phrh));
        assert!(synced.meets_acr(&phr) && !synced.meets_acr(&phrh));
        assert!(synced.meets_acr(&["urn:other".to_owned()]));
    }

    #[test]
    fn email_sessions_are_not_phishing_resistant() {
        let email = AuthContext::of(&Session::email(uuid::Uuid::nil(), Utc::now()));
        assert_eq!((email.amr.join(" "), email.acr.as_str()), ("otp".into(), ACR_EMAIL));
        assert!(!email.meets_acr(&["phr".to_owned()]));
        assert!(email.meets_acr(&[]));
    }

    #[test]
    fn max_age_counts_from_auth_time() {
        let start = Utc::now();
        let ctx = context(true, start);
        let later = start + chrono::Duration::seconds(100);
        assert!(ctx.within_max_age(None, later));
        assert!(ctx.within_max_age(Some(100), later));
        assert!(!ctx.within_max_age(Some(99), later));
        assert!(ctx.within_max_age(Some(0), start - chrono::Duration::seconds(5)), "clock moved back");
    }

    #[test]
    fn max_age_at_the_ends_of_time_never_panics() {
        let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert!(context(false, first).within_max_age(Some(i64::MAX), last));
        assert!(!context(false, first).within_max_age(Some(0), last));
        assert!(context(false, last).within_max_age(Some(0), first), "clock moved back to the first instant");
        assert!(!context(false, first).within_max_age(Some(i64::MIN), first), "validate() refuses negatives anyway");
    }
}
