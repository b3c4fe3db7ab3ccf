//! Deciding what an authorization request needs next — sign-in, consent, or an answer — and
//! building the authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`, OAuth 2.0 Form Post
//! Response Mode).

use chrono::{DateTime, Utc};
use entity::user;
use url::Url;

use super::{
    authorize::{AuthorizationRequest, ClientError, Prompt, ResponseMode},
    clients::Client,
    code::{self, CodeGrant},
    context::AuthContext,
    pending::Pending,
    tokens::Person,
};
use crate::{
    app::AppState,
    error::AppError,
    session::Session,
    store::{consents, passkeys},
};

/// What the person's browser must do next.
pub enum Next {
    /// Sign in (again): the request waits, pending.
    SignIn,
    /// Allow or deny the client's scopes.
    Consent,
    /// Go back to the client with this answer.
    Answer(AuthorizationResponse),
}

/// An authorization response: where it goes, how, and its parameters.
#[derive(Debug)]
pub struct AuthorizationResponse {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub params: Vec<(&'static str, String)>,
}

impl AuthorizationResponse {
    /// The redirect URL for `query` mode.
    pub fn redirect_url(&self) -> String {
        let mut url = Url::parse(&self.redirect_uri).expect("registered redirect URIs are absolute");
        url.query_pairs_mut().extend_pairs(self.params.iter().map(|(k, v)| (*k, v.as_str())));
        url.to_string()
    }
}

/// An error answer to a verified redirect URI, with `iss` (RFC 9207).
pub fn error_response(error: &ClientError, issuer: &str) -> AuthorizationResponse {
    let mut params = vec![("error", error.error.to_owned()), ("error_description", error.description.clone())];
    if let Some(state) = &error.state {
        params.push(("state", state.clone()));
    }
    params.push(("iss", issuer.to_owned()));
    AuthorizationResponse { redirect_uri: error.redirect_uri.clone(), response_mode: error.response_mode, params }
}

fn client_error(request: &AuthorizationRequest, error: &'static str, description: &str) -> ClientError {
    ClientError {
        redirect_uri: request.redirect_uri.clone(),
        response_mode: request.response_mode,
        state: request.state.clone(),
        error,
        description: description.to_owned(),
    }
}

/// Whether `session` satisfies the request as it stands: signed in after the request when
/// `prompt=login`, recently enough for `max_age`, strongly enough for `acr_values`.
pub fn session_satisfies(pending: &Pending, session: Option<&Session>, now: DateTime<Utc>) -> bool {
    let Some(session) = session else { return false };
    let context = AuthContext::of(session);
    let fresh = !pending.requires_fresh_sign_in() || session.auth_time >= pending.received_at;
    fresh && context.within_max_age(pending.request.max_age, now) && context.meets_acr(&pending.request.acr_values)
}

/// Decides the next step of a pending request for the browser's signed-in person (their
/// session and account); issues the code when everything is in place. `consent_given` is true right after the person pressed Allow.
pub async fn decide(
    state: &AppState,
    pending: &Pending,
    client: &Client,
    signed_in: Option<(&Session, &user::Model)>,
    consent_given: bool,
    now: DateTime<Utc>,
) -> Result<Next, AppError> {
    let request = &pending.request;
    let session = signed_in.map(|(session, _)| session);
    if !session_satisfies(pending, session, now) {
        let unmet_acr = session.is_some_and(|s| !AuthContext::of(s).meets_acr(&request.acr_values));
        // A person without a passkey cannot meet a passkey demand by signing in again.
        let cannot_meet = match session {
            Some(s) if unmet_acr => passkeys::count_for_user(&state.db, s.user_id).await? == 0,
            _ => false,
        };
        if request.prompt != Prompt::None && !cannot_meet {
            return Ok(Next::SignIn);
        }
        let error = if unmet_acr {
            client_error(request, "unmet_authentication_requirements", "A phishing-resistant sign-in is required.")
        } else {
            client_error(request, "login_required", "The person is not signed in.")
        };
        return Ok(Next::Answer(error_response(&error, state.issuer())));
    }
    let (session, user) = signed_in.expect("a satisfying session exists");
    if !client.settings.first_party && !consent_given {
        let remembered = consents::covers(&state.db, session.user_id, &client.client_id, &request.scopes).await?;
        if !remembered || request.prompt == Prompt::Consent {
            if request.prompt == Prompt::None {
                let error = client_error(request, "consent_required", "The person has not allowed this application.");
                return Ok(Next::Answer(error_response(&error, state.issuer())));
            }
            return Ok(Next::Consent);
        }
    }
    let grant = CodeGrant {
        client_id: client.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scopes: request.scopes.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        context: AuthContext::of(session),
        person: Some(Person::released(user, &request.scopes)),
    };
    let code = code::issue(&state.ephemeral, &grant, state.config.code_ttl).await?;
    let mut params = vec![("code", code)];
    if let Some(request_state) = &request.state {
        params.push(("state", request_state.clone()));
    }
    params.push(("iss", state.issuer().to_owned()));
    Ok(Next::Answer(AuthorizationResponse {
        redirect_uri: request.redirect_uri.clone(),
        response_mode: request.response_mode,
        params,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn signed_in_at(at: DateTime<Utc>) -> Session {
        Session::passkey(Uuid::nil(), true, false, at)
    }

    #[test]
    fn prompt_login_counts_a_sign_in_from_the_instant_of_the_request() {
        let request = Pending::example(Prompt::Login, None, t0());
        let second = chrono::Duration::seconds(1);
        assert!(session_satisfies(&request, Some(&signed_in_at(t0())), t0()), "at the same instant");
        assert!(!session_satisfies(&request, Some(&signed_in_at(t0() - second)), t0() + second));
        assert!(!session_satisfies(&request, None, t0()));
        // The clock went back between the request and the sign-in: the sign-in is not newer.
        assert!(!session_satisfies(&request, Some(&signed_in_at(t0() - second)), t0() - second));
    }

    #[test]
    fn max_age_ends_exactly_after_max_age_seconds_whichever_way_the_clock_moves() {
        let request = Pending::example(Prompt::Default, Some(60), t0());
        let session = signed_in_at(t0());
        let at = |seconds| t0() + chrono::Duration::seconds(seconds);
        assert!(session_satisfies(&request, Some(&session), at(60)));
        assert!(!session_satisfies(&request, Some(&session), at(61)));
        assert!(session_satisfies(&request, Some(&session), at(-86400)), "clock moved back");
        assert!(session_satisfies(&request, Some(&session), DateTime::<Utc>::MIN_UTC));
        assert!(!session_satisfies(&request, Some(&session), DateTime::<Utc>::MAX_UTC));
        let no_limit = Pending::example(Prompt::Default, None, t0());
        assert!(session_satisfies(&no_limit, Some(&session), DateTime::<Utc>::MAX_UTC));
    }
}
