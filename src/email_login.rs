//! Signing in with an emailed one-time link, for a device without a passkey.
//!
//! The passkey step offers **Email me a sign-in link**: the link (`/login/email/{token}`, 256
//! random bits stored under their SHA-256, 15 minutes by default, single use) carries the authorization
//! request in progress, so the application's sign-in continues after the click. The answer is
//! the same whether or not the account exists. Opening the link never consumes it (mail
//! scanners prefetch links); the page's **Sign in** button does. A session opened this way is
//! an email session: `amr` `otp`, not phishing-resistant, and weaker on the account page.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    app::AppState,
    error::AppError,
    mail::Mail,
    random_token,
    ratelimit::{self, EMAIL_LINK_PER_IP, EMAIL_LINK_PER_USER},
    session::{self, Session},
    store::users,
};

#[derive(Serialize, Deserialize)]
struct EmailLink {
    user_id: Uuid,
    /// The pending authorization request of the browser that asked for the link.
    pending_authz: Option<String>,
}

fn key(token: &str) -> String {
    format!("email-link:{}", crate::token_hash(token))
}

/// Why no link was sent.
pub enum NotSent {
    /// Over a rate limit: try again after this long.
    RateLimited(Duration),
    /// Email sign-in is turned off.
    Disabled,
}

/// Sends a sign-in link to the account named `login_name`, if there is one. Unknown names,
/// disabled accounts and known ones all answer `Ok` (the caller shows the same page); the
/// value names the account that got a link, for the audit log only.
pub async fn request_link(
    state: &AppState,
    login_name: &str,
    client_ip: &str,
    pending_authz: Option<String>,
) -> Result<Result<Option<Uuid>, NotSent>, AppError> {
    if !state.config.email_login {
        return Ok(Err(NotSent::Disabled));
    }
    let normalized = users::normalize(login_name);
    for (limit, subject) in [(EMAIL_LINK_PER_IP, client_ip), (EMAIL_LINK_PER_USER, normalized.as_str())] {
        if let Err(retry_after) = ratelimit::check(state, limit, subject).await? {
            return Ok(Err(NotSent::RateLimited(retry_after)));
        }
    }
    let Some(user) = users::find_by_login(&state.db, &normalized).await?.filter(|u| !u.disabled) else {
        return Ok(Ok(None));
    };
    let token = random_token();
    let link = EmailLink { user_id: user.id, pending_authz };
    state.ephemeral.put_json(&key(&token), &link, state.config.email_link_ttl).await?;
    let url = format!("{}/login/email/{token}", state.issuer());
    let mail = render_mail(&user, &url, state.config.email_link_ttl)?;
    if let Err(err) = state.mailer.send(mail).await {
        // A link nobody received must not stay usable.
        state.ephemeral.delete(&key(&token)).await?;
        return Err(err);
    }
    tracing::info!(user_id = %user.id, "email sign-in link sent");
    Ok(Ok(Some(user.id)))
}

fn render_mail(user: &entity::user::Model, url: &str, ttl: Duration) -> Result<Mail, AppError> {
    let minutes = (ttl.as_secs() / 60).max(1);
    let context = minijinja::context! { name => user.display_name.clone(), url => url, minutes => minutes };
    Ok(Mail {
        to: user.email.clone(),
        subject: "Your Latchkey sign-in link".into(),
        text: crate::http::pages::render_text("email/sign_in.txt", context.clone())?,
        html: crate::http::pages::render_text("email/sign_in.html", context)?,
    })
}

/// Whether a link is valid, without consuming it (the page that shows **Sign in**).
pub async fn is_valid(state: &AppState, token: &str) -> Result<bool, AppError> {
    Ok(state.ephemeral.get_json::<EmailLink>(&key(token)).await?.is_some())
}

/// A used link: the new email session and the authorization request to resume, if any.
pub struct SignedIn {
    pub user: entity::user::Model,
    pub session_id: String,
    pub pending_authz: Option<String>,
}

/// Consumes the link (atomically: a second press finds nothing) and opens an email session.
pub async fn redeem(state: &AppState, token: &str, now: DateTime<Utc>) -> Result<Option<SignedIn>, AppError> {
    let Some(link) = state.ephemeral.take_json::<EmailLink>(&key(token)).await? else {
        return Ok(None);
    };
    let Some(user) = users::find_by_id(&state.db, link.user_id).await?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let session = Session::email(user.id, now);
    let session_id = session::create(&state.ephemeral, state.session_policy(), &session, now).await?;
    tracing::info!(user_id = %user.id, "signed in with an email link");
    crate::observe::signin("email", true);
    Ok(Some(SignedIn { user, session_id, pending_authz: link.pending_authz }))
}
