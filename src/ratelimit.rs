//! Fixed-window rate limits kept in the ephemeral store, so they hold across replicas.
//! `LATCHKEY_RATE_LIMITS=off` turns them off (benchmarks, load tests).
//!
//! The first refusal of a window is recorded as a `ratelimit.exceeded` audit event naming the
//! limit and its subject; later refusals in the same window are not, so a flood costs no
//! database writes.

use std::time::Duration;

use chrono::Utc;

use crate::{app::AppState, audit, config::Config, ephemeral::EphemeralError};

/// One limit: at most `max` events per `window` for a key.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub name: &'static str,
    pub max: u64,
    pub window: Duration,
}

/// Email sign-in links per account: a handful per hour.
pub const EMAIL_LINK_PER_USER: Limit = Limit { name: "email-user", max: 5, window: Duration::from_secs(3600) };
/// Email sign-in links per client address: generous, so one office behind a NAT is fine.
pub const EMAIL_LINK_PER_IP: Limit = Limit { name: "email-ip", max: 100, window: Duration::from_secs(3600) };

/// Sign-in attempts (username step, passkey verification) per client address: generous, so a
/// busy office behind one NAT address is never stopped.
pub const SIGNIN_PER_IP: Limit = Limit { name: "signin-ip", max: 600, window: Duration::from_secs(60) };
/// Username steps per client address and account: tight, yet a real person on another
/// address is never locked out.
pub const SIGNIN_PER_IP_ACCOUNT: Limit = Limit { name: "signin-ip-account", max: 30, window: Duration::from_secs(60) };
/// Token endpoint requests per client address.
pub const TOKEN_PER_IP: Limit = Limit { name: "token-ip", max: 1200, window: Duration::from_secs(60) };
/// Admin API requests per client address.
pub const ADMIN_PER_IP: Limit = Limit { name: "admin-ip", max: 600, window: Duration::from_secs(60) };

/// New sign-in transactions per client address: requests that may store a pending
/// authorization request or start a WebAuthn ceremony (`LATCHKEY_LOGIN_TRANSACTIONS_PER_IP`
/// per minute). Bounds how much ephemeral state one address can pile up with flows it never
/// finishes.
pub fn login_transactions_per_ip(config: &Config) -> Limit {
    Limit { name: "login-transactions-ip", max: config.login_transactions_per_ip, window: Duration::from_secs(60) }
}

/// Counts one event for `subject` under `limit`; `Err(retry_after)` once over the limit.
pub async fn check(state: &AppState, limit: Limit, subject: &str) -> Result<Result<(), Duration>, EphemeralError> {
    if !state.config.rate_limits {
        return Ok(Ok(()));
    }
    let (count, left) = state.ephemeral.increment(&format!("rate:{}:{subject}", limit.name), limit.window).await?;
    if count <= limit.max {
        return Ok(Ok(()));
    }
    if count == limit.max + 1 {
        let event = audit::Event::new("ratelimit.exceeded", Utc::now())
            .with("limit", limit.name)
            .with("subject", subject)
            .with("max", limit.max)
            .with("window_seconds", limit.window.as_secs());
        if let Err(err) = audit::record(&state.db, event).await {
            tracing::error!(error = %err, "audit event not recorded");
        }
    }
    Ok(Err(left.max(Duration::from_secs(1))))
}
