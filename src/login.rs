//! Signing in with a passkey: the username step, the passkey step and its verification.
//!
//! The username step finds the account by username or email and starts an allow-list
//! ceremony for its passkeys. Names that match no account (and disabled accounts) get a decoy
//! ceremony that looks the same, costs the same work (queries included), and always fails with
//! the message a wrong passkey gets, unless the operator chose to reveal unknown users.
//! Verification takes the ceremony state atomically, checks that the credential belongs to the
//! user of this login and that its backup eligibility is what it was at registration, updates
//! the stored passkey (counter, backup state, last use) and opens an SSO session. The ceremony
//! carries the account and passkeys the username step read, so the passkey step reads nothing:
//! its one write checks that the passkey is still registered and the account still enabled.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::{passkey as passkey_row, user};
use uuid::Uuid;
use webauthn_rs::prelude::{AuthenticationResult, Passkey, PublicKeyCredential, RequestChallengeResponse};

use crate::{
    app::AppState,
    audit::{self, Event},
    error::AppError,
    passkey::{
        self, CeremonyError,
        ceremony::{self, Ceremony, LoginAccount},
    },
    session::{self, Session},
    store::{
        passkeys::{self, CredentialUpdate, PasskeyUse},
        users,
    },
};

/// Who the browser remembers (the remembered-user cookie's content).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RememberedUser {
    /// The username or email as typed, normalised.
    pub name: String,
    /// Set once a sign-in succeeded: the greeting may then show the display name.
    pub signed_in: bool,
}

/// The passkey step, ready to render.
pub struct PasskeyStep {
    pub greeting: String,
    pub options: RequestChallengeResponse,
    pub ceremony_id: String,
}

/// A started ceremony: options for the browser and the id of its server-side state.
pub struct Started {
    pub options: RequestChallengeResponse,
    pub ceremony_id: String,
}

/// What the username step leads to.
pub enum UsernameOutcome {
    PasskeyStep(Box<PasskeyStep>),
    /// Only when `LATCHKEY_REVEAL_UNKNOWN_USERS=true`.
    UnknownUser,
}

/// A verified sign-in.
pub struct SignedIn {
    pub session_id: String,
    /// What the session holds.
    pub session: Session,
    pub user: user::Model,
}

/// A failed verification, with fresh options to try again where the login can continue.
pub struct LoginFailure {
    pub error: CeremonyError,
    pub retry: Option<Started>,
    /// The account the passkey step was for (never set for a decoy or a discoverable sign-in,
    /// whose user handle the failed assertion does not prove).
    pub user_id: Option<Uuid>,
}

/// Starts the passkey step for a username or email (typed, or remembered).
pub async fn start_passkey_step(state: &AppState, remembered: &RememberedUser) -> Result<UsernameOutcome, AppError> {
    // One query whether or not the name has an account (the passkeys come joined), so the
    // answer takes as long either way: timing must not tell which names have accounts.
    let found =
        users::find_by_login_with_passkeys(&state.hot_path, &remembered.name).await?.filter(|(u, _)| !u.disabled);
    let (options, user_id, ceremony_state, greeting, account) = match found {
        Some((user, passkeys)) => {
            let keys = parse_all(&passkeys);
            let (options, ceremony_state) = state.passkeys.start_authentication(&keys, &remembered.name);
            let greeting = if remembered.signed_in || state.config.reveal_unknown_users {
                user.display_name.clone()
            } else {
                remembered.name.clone()
            };
            (options, Some(user.id), ceremony_state, greeting, LoginAccount { user, passkeys })
        }
        None if state.config.reveal_unknown_users => return Ok(UsernameOutcome::UnknownUser),
        None => {
            let (options, decoy_state, decoys) = state.passkeys.start_decoy(&remembered.name);
            let account = decoy_account(&remembered.name, &decoys);
            (options, None, decoy_state, remembered.name.clone(), account)
        }
    };
    let ceremony = Ceremony::Login {
        login_name: remembered.name.clone(),
        user_id,
        state: Some(ceremony_state),
        account: Some(Box::new(account)),
    };
    let ceremony_id = ceremony::save(&state.ephemeral, &ceremony, state.config.challenge_ttl).await?;
    Ok(UsernameOutcome::PasskeyStep(Box::new(PasskeyStep { greeting, options, ceremony_id })))
}

/// What a decoy ceremony carries where a real one carries the account: built the same way (a
/// user row, and a row per decoy passkey holding a stored passkey's JSON), so that storing and
/// taking the ceremony costs what a real one does. It names nobody and is never read.
fn decoy_account(login_name: &str, decoys: &[Passkey]) -> LoginAccount {
    let now = Utc::now();
    let user = user::Model {
        id: Uuid::nil(),
        username: login_name.to_owned(),
        username_normalized: login_name.to_owned(),
        email: login_name.to_owned(),
        email_normalized: login_name.to_owned(),
        display_name: login_name.to_owned(),
        created_at: now,
        disabled: false,
    };
    let passkeys = decoys
        .iter()
        .map(|decoy| passkey_row::Model {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            credential_id: URL_SAFE_NO_PAD.encode(decoy.cred_id()),
            passkey_json: passkey::DECOY_PASSKEY.to_owned(),
            name: "Passkey".to_owned(),
            aaguid: Some(Uuid::nil()),
            created_at: now,
            last_used_at: Some(now),
            backup_eligible: false,
            backup_state: false,
            transports: "hybrid,internal".to_owned(),
        })
        .collect();
    LoginAccount { user, passkeys }
}

/// Starts a discoverable sign-in (autofill, or the "Use a passkey" button).
/// Nothing is stored: the browser carries the ceremony ([`ceremony::carry_discoverable`]).
pub fn start_discoverable(state: &AppState, now: DateTime<Utc>) -> Started {
    let (options, ceremony_state) = state.passkeys.start_discoverable();
    let expires_at = now + state.config.challenge_ttl;
    Started { options, ceremony_id: ceremony::carry_discoverable(&state.ceremony_key, ceremony_state, expires_at) }
}

/// Verifies the browser's assertion for the ceremony `ceremony_id` and opens a session.
/// `success` is the audit event of a success, from the request (its source); it is recorded
/// naming the user and the passkey, together with the passkey's update.
pub async fn finish(
    state: &AppState,
    ceremony_id: &str,
    response: &PublicKeyCredential,
    now: DateTime<Utc>,
    success: Event,
) -> Result<Result<SignedIn, LoginFailure>, AppError> {
    let Some(taken) = ceremony::take_sign_in(&state.ephemeral, &state.ceremony_key, ceremony_id, now).await? else {
        return Ok(Err(LoginFailure { error: CeremonyError::Expired, retry: None, user_id: None }));
    };
    let verified = match &taken {
        Ceremony::Login { user_id: Some(user_id), state: Some(ceremony_state), account, .. } => {
            let verified = passkey::check_user_handle(response, *user_id)
                .and_then(|()| state.passkeys.finish_authentication(response, ceremony_state));
            let result = match verified {
                Ok(result) => result,
                Err(err) => return failure(state, &taken, err).await,
            };
            let used = match account {
                Some(account) => account_passkey(account, &result),
                None => owned_passkey(state, *user_id, &result).await?,
            };
            used.map(|(row, user)| (result, row, user))
        }
        Ceremony::Login { .. } => return failure(state, &taken, CeremonyError::Rejected).await,
        Ceremony::Discoverable { state: ceremony_state } => {
            match verify_discoverable(state, response, ceremony_state.clone()).await? {
                Ok(verified) => Some(verified),
                Err(err) => return failure(state, &taken, err).await,
            }
        }
        Ceremony::Signup { .. } | Ceremony::AddPasskey { .. } => {
            return Ok(Err(LoginFailure { error: CeremonyError::Expired, retry: None, user_id: None }));
        }
    };
    let Some((result, row, user)) = verified.filter(|(_, _, user)| !user.disabled) else {
        return failure(state, &taken, CeremonyError::Rejected).await;
    };
    if let Err(err) = passkey::check_backup_eligibility(&result, row.backup_eligible) {
        return failure(state, &taken, err).await;
    }
    let backup_eligible = row.backup_eligible;
    let event = success.user(user.id).with("passkey_id", row.id.to_string());
    if !record_use(state, row, &result, now, event).await? {
        // Removed, or its account disabled, since the username step read them.
        return failure(state, &taken, CeremonyError::Rejected).await;
    }
    let session = Session::passkey(user.id, result.user_verified(), backup_eligible, now);
    let session_id = session::create(&state.ephemeral, state.session_policy(), &session, now).await?;
    tracing::info!(user_id = %user.id, "signed in with a passkey");
    crate::observe::signin("passkey", true);
    Ok(Ok(SignedIn { session_id, user, session }))
}

/// A verified assertion, the stored passkey it used and that passkey's owner.
type Verified = (AuthenticationResult, passkey_row::Model, user::Model);

async fn verify_discoverable(
    state: &AppState,
    response: &PublicKeyCredential,
    ceremony_state: webauthn_rs::prelude::DiscoverableAuthentication,
) -> Result<Result<Verified, CeremonyError>, AppError> {
    let (user_handle, credential_id) = match state.passkeys.identify_discoverable(response) {
        Ok(found) => found,
        Err(err) => return Ok(Err(err)),
    };
    let Some((row, user)) = passkeys::find_with_owner(&state.db, &credential_id).await? else {
        return Ok(Err(CeremonyError::UnknownCredential { credential_id }));
    };
    // The user handle the authenticator returns must be the owner of the credential.
    if row.user_id != user_handle {
        return Ok(Err(CeremonyError::Rejected));
    }
    let stored = passkey::parse_stored(&row.passkey_json).map_err(|e| AppError::Internal(e.into()))?;
    Ok(state.passkeys.finish_discoverable(response, ceremony_state, &stored).map(|result| (result, row, user)))
}

fn used_credential_id(result: &AuthenticationResult) -> String {
    URL_SAFE_NO_PAD.encode(result.cred_id())
}

/// The passkey the assertion used, among those the username step read, and their owner.
fn account_passkey(account: &LoginAccount, result: &AuthenticationResult) -> Option<(passkey_row::Model, user::Model)> {
    let credential_id = used_credential_id(result);
    let row = account.passkeys.iter().find(|row| row.credential_id == credential_id)?;
    Some((row.clone(), account.user.clone()))
}

/// The stored passkey the assertion used and its owner, if that is `user_id` (a ceremony stored
/// by an earlier version, which did not carry the account).
async fn owned_passkey(
    state: &AppState,
    user_id: Uuid,
    result: &AuthenticationResult,
) -> Result<Option<(passkey_row::Model, user::Model)>, AppError> {
    let credential_id = used_credential_id(result);
    Ok(passkeys::find_with_owner(&state.db, &credential_id).await?.filter(|(row, _)| row.user_id == user_id))
}

/// Saves what the assertion changed: counter and backup state when they moved, and the time of
/// use (backup eligibility cannot change: [`passkey::check_backup_eligibility`]), with `event`;
/// `false` when the passkey is no longer registered or its account is disabled.
async fn record_use(
    state: &AppState,
    row: passkey_row::Model,
    result: &AuthenticationResult,
    now: DateTime<Utc>,
    event: Event,
) -> Result<bool, AppError> {
    let mut stored = passkey::parse_stored(&row.passkey_json).map_err(|e| AppError::Internal(e.into()))?;
    let credential = match stored.update_credential(result) {
        Some(true) => Some(CredentialUpdate { read: row.passkey_json, new: passkey::serialize_stored(&stored) }),
        _ => None,
    };
    let used = PasskeyUse {
        user_id: row.user_id,
        id: row.id,
        credential,
        backup_state: result.backup_state(),
        now,
        event: audit::row(event),
    };
    Ok(passkeys::record_use(&state.writes, used).await?)
}

/// A failed verification: logs it and starts a fresh ceremony of the same kind for a retry.
async fn failure(
    state: &AppState,
    taken: &Ceremony,
    error: CeremonyError,
) -> Result<Result<SignedIn, LoginFailure>, AppError> {
    tracing::info!(reason = ?error, "passkey sign-in failed");
    crate::observe::signin("passkey", false);
    let user_id = match taken {
        Ceremony::Login { user_id, .. } => *user_id,
        _ => None,
    };
    let retry = match taken {
        Ceremony::Login { login_name, .. } => {
            let remembered = RememberedUser { name: login_name.clone(), signed_in: false };
            match start_passkey_step(state, &remembered).await? {
                UsernameOutcome::PasskeyStep(step) => {
                    Some(Started { options: step.options, ceremony_id: step.ceremony_id })
                }
                UsernameOutcome::UnknownUser => None,
            }
        }
        Ceremony::Discoverable { .. } => Some(start_discoverable(state, Utc::now())),
        _ => None,
    };
    Ok(Err(LoginFailure { error, retry, user_id }))
}

/// Parses stored passkeys, skipping (and logging) any that cannot be read.
pub fn parse_all(rows: &[passkey_row::Model]) -> Vec<Passkey> {
    rows.iter()
        .filter_map(|row| match passkey::parse_stored(&row.passkey_json) {
            Ok(key) => Some(key),
            Err(err) => {
                tracing::error!(passkey_id = %row.id, %err, "stored passkey cannot be read");
                None
            }
        })
        .collect()
}
