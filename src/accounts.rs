//! Accounts and their passkeys: sign-up (the account exists only once its first passkey
//! verifies), adding, renaming and deleting passkeys.
//!
//! Validation rules for usernames, emails and names live here so the sign-up page and (later)
//! the admin API share them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;
use webauthn_rs::prelude::{CreationChallengeResponse, RegisterPublicKeyCredential};

use crate::{
    app::AppState,
    error::AppError,
    passkey::{
        CeremonyError,
        ceremony::{self, Ceremony},
    },
    session::{self, Session},
    store::{
        self, passkeys,
        users::{self, NewUser},
    },
};

/// The sign-up form as submitted.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct SignupForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
}

/// Field name → message, for forms and (later) problem documents.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// A started registration: options for the browser and the id of its server-side state.
pub struct StartedRegistration {
    pub options: CreationChallengeResponse,
    pub ceremony_id: String,
}

/// A failed registration, with fresh options where the person can simply try again.
pub struct RegistrationFailure {
    pub error: CeremonyError,
    pub retry: Option<StartedRegistration>,
}

/// Checks a username: 1–64 letters, digits, `.`, `_` or `-`.
pub fn validate_username(username: &str) -> Result<(), String> {
    let valid_chars = username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match username.len() {
        0 => Err("Choose a username.".into()),
        65.. => Err("Usernames are at most 64 characters.".into()),
        _ if !valid_chars => Err("Use only letters, digits, dots, dashes and underscores.".into()),
        _ => Ok(()),
    }
}

/// Checks an email address's shape (the mailbox itself is proven later by email links).
pub fn validate_email(email: &str) -> Result<(), String> {
    let shape_ok = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
    });
    if email.is_empty() {
        Err("Enter your email address.".into())
    } else if email.len() > 254 || email.chars().any(char::is_whitespace) || !shape_ok {
        Err("Enter an email address like name@example.com.".into())
    } else {
        Ok(())
    }
}

/// Checks a display name or passkey name: 1–`max` characters, no control characters.
pub fn validate_name(name: &str, max: usize, empty_message: &str) -> Result<(), String> {
    match name.chars().count() {
        0 => Err(empty_message.into()),
        n if n > max => Err(format!("Use at most {max} characters.")),
        _ if name.chars().any(char::is_control) => Err("Remove the control characters.".into()),
        _ => Ok(()),
    }
}

impl SignupForm {
    /// Trims the form and checks every field; returns the new user or every problem at once.
    pub fn validate(&self) -> Result<NewUser, FieldErrors> {
        let username = self.username.trim();
        let email = self.email.trim();
        let display_name = match self.display_name.trim() {
            "" => username,
            name => name,
        };
        let mut errors = FieldErrors::new();
        if let Err(e) = validate_username(username) {
            errors.insert("username", e);
        }
        if let Err(e) = validate_email(email) {
            errors.insert("email", e);
        }
        // A display name left empty copies the username, whose own error then says it all.
        let defaulted = self.display_name.trim().is_empty();
        if let Err(e) = validate_name(display_name, 100, "Enter your name.")
            && !(defaulted && errors.contains_key("username"))
        {
            errors.insert("display_name", e);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewUser {
            id: Uuid::new_v4(),
            username: username.to_owned(),
            email: email.to_owned(),
            display_name: display_name.to_owned(),
        })
    }
}

/// The message for a username or email another account has (compared ignoring case).
pub(crate) fn taken_message(field: &str) -> String {
    match field {
        "username" => "That username is taken. Choose another one.".into(),
        _ => "An account with that email address exists. Sign in instead.".into(),
    }
}

/// Validates the sign-up form and starts registering the first passkey. Nothing is stored in
/// the database until [`finish_signup`].
pub async fn start_signup(
    state: &AppState,
    form: &SignupForm,
) -> Result<Result<StartedRegistration, FieldErrors>, AppError> {
    let new_user = match form.validate() {
        Ok(user) => user,
        Err(errors) => return Ok(Err(errors)),
    };
    if let Some(field) = users::taken_field(&state.db, &new_user.username, &new_user.email).await? {
        return Ok(Err(FieldErrors::from([(field, taken_message(field))])));
    }
    Ok(Ok(start_signup_ceremony(state, new_user).await?))
}

async fn start_signup_ceremony(state: &AppState, user: NewUser) -> Result<StartedRegistration, AppError> {
    let (options, reg_state) = state
        .passkeys
        .start_registration(user.id, &user.username, &user.display_name, Vec::new())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("starting registration: {e}")))?;
    let ceremony_id =
        ceremony::save(&state.ephemeral, &Ceremony::Signup { user, state: reg_state }, state.config.challenge_ttl)
            .await?;
    Ok(StartedRegistration { options, ceremony_id })
}

/// A finished sign-up: the new account and its first session.
pub struct SignedUp {
    pub user: user::Model,
    pub session_id: String,
    /// What the session holds.
    pub session: Session,
}

/// Verifies the first passkey and creates the account and the passkey in one transaction.
pub async fn finish_signup(
    state: &AppState,
    ceremony_id: &str,
    response: &RegisterPublicKeyCredential,
    now: DateTime<Utc>,
) -> Result<Result<SignedUp, RegistrationFailure>, AppError> {
    let Some(Ceremony::Signup { user: new_user, state: reg_state }) =
        ceremony::take(&state.ephemeral, ceremony_id).await?
    else {
        return Ok(Err(RegistrationFailure { error: CeremonyError::Expired, retry: None }));
    };
    let new_passkey = match state.passkeys.finish_registration(response, &reg_state) {
        Ok(passkey) => passkey,
        Err(error) => {
            let retry = Some(start_signup_ceremony(state, new_user).await?);
            return Ok(Err(RegistrationFailure { error, retry }));
        }
    };
    let backup_eligible = new_passkey.backup_eligible;
    let user = insert_user_with_passkey(&state.db, &new_user, new_passkey, now).await?;
    // Registration required user verification.
    let session = Session::passkey(user.id, true, backup_eligible, now);
    let session_id = session::create(&state.ephemeral, state.session_policy(), &session, now).await?;
    tracing::info!(user_id = %user.id, "account created");
    Ok(Ok(SignedUp { user, session_id, session }))
}

async fn insert_user_with_passkey(
    db: &DatabaseConnection,
    new_user: &NewUser,
    new_passkey: passkeys::NewPasskey,
    now: DateTime<Utc>,
) -> Result<user::Model, AppError> {
    let txn = db.begin().await?;
    let inserted = async {
        let user = users::insert(&txn, new_user, now).await?;
        passkeys::insert(&txn, user.id, new_passkey, now).await?;
        Ok::<_, sea_orm::DbErr>(user)
    }
    .await;
    match inserted {
        Ok(user) => {
            txn.commit().await?;
            Ok(user)
        }
        Err(err) => {
            txn.rollback().await?;
            Err(conflict_or(err))
        }
    }
}

/// Turns a unique-constraint violation into a 409 naming the field; anything else passes on.
pub(crate) fn conflict_or(err: sea_orm::DbErr) -> AppError {
    match store::unique_violation(&err) {
        Some(detail) if detail.contains("username") => {
            AppError::Conflict { field: "username", message: taken_message("username") }
        }
        Some(detail) if detail.contains("email") => {
            AppError::Conflict { field: "email", message: taken_message("email") }
        }
        Some(_) => AppError::Conflict { field: "credential", message: CeremonyError::AlreadyRegistered.to_string() },
        None => err.into(),
    }
}

/// Why an account could not be created without a passkey (admin API, command line).
#[derive(Debug)]
pub enum CreateUserError {
    Invalid(FieldErrors),
    Taken(&'static str, String),
    Storage(AppError),
}

/// Creates an account without a passkey; its person gets one through an enrollment link.
pub async fn create_user(
    db: &impl sea_orm::ConnectionTrait,
    form: &SignupForm,
    now: DateTime<Utc>,
) -> Result<user::Model, CreateUserError> {
    let new_user = form.validate().map_err(CreateUserError::Invalid)?;
    let storage = |e: sea_orm::DbErr| CreateUserError::Storage(e.into());
    if let Some(field) = users::taken_field(db, &new_user.username, &new_user.email).await.map_err(storage)? {
        return Err(CreateUserError::Taken(field, taken_message(field)));
    }
    users::insert(db, &new_user, now).await.map_err(|err| match conflict_or(err) {
        AppError::Conflict { field, message } => CreateUserError::Taken(field, message),
        other => CreateUserError::Storage(other),
    })
}

/// Starts adding a passkey to `user`'s account (a signed-in person's, or the one an enrollment
/// link is for), excluding the passkeys already registered.
pub async fn start_add_passkey(state: &AppState, user: &user::Model) -> Result<StartedRegistration, AppError> {
    let existing = passkeys::list_for_user(&state.db, user.id).await?;
    let exclude = crate::login::parse_all(&existing).iter().map(|k| k.cred_id().clone()).collect();
    let (options, reg_state) = state
        .passkeys
        .start_registration(user.id, &user.username, &user.display_name, exclude)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("starting registration: {e}")))?;
    let ceremony = Ceremony::AddPasskey { user_id: user.id, state: reg_state };
    let ceremony_id = ceremony::save(&state.ephemeral, &ceremony, state.config.challenge_ttl).await?;
    Ok(StartedRegistration { options, ceremony_id })
}

/// Verifies and stores a new passkey for `user`.
pub async fn finish_add_passkey(
    state: &AppState,
    user: &user::Model,
    ceremony_id: &str,
    response: &RegisterPublicKeyCredential,
    now: DateTime<Utc>,
) -> Result<Result<entity::passkey::Model, RegistrationFailure>, AppError> {
    let Some(Ceremony::AddPasskey { user_id, state: reg_state }) =
        ceremony::take(&state.ephemeral, ceremony_id).await?
    else {
        return Ok(Err(RegistrationFailure { error: CeremonyError::Expired, retry: None }));
    };
    if user_id != user.id {
        return Ok(Err(RegistrationFailure { error: CeremonyError::Expired, retry: None }));
    }
    let mut new_passkey = match state.passkeys.finish_registration(response, &reg_state) {
        Ok(passkey) => passkey,
        Err(error) => {
            let retry = Some(start_add_passkey(state, user).await?);
            return Ok(Err(RegistrationFailure { error, retry }));
        }
    };
    let existing = passkeys::list_for_user(&state.db, user.id).await?;
    new_passkey.name = distinct_name(&new_passkey.name, existing.iter().map(|p| p.name.as_str()));
    let added = passkeys::insert(&state.db, user.id, new_passkey, now).await.map_err(conflict_or)?;
    tracing::info!(user_id = %user.id, "passkey added");
    Ok(Ok(added))
}

/// `base`, or `base 2`, `base 3`, … so that two passkeys from the same provider can be told
/// apart on the account page.
fn distinct_name<'a>(base: &str, taken: impl Iterator<Item = &'a str> + Clone) -> String {
    (1..)
        .map(|n| if n == 1 { base.to_owned() } else { format!("{base} {n}") })
        .find(|candidate| !taken.clone().any(|t| t == candidate))
        .expect("some suffix is free")
}

/// Renames one of the user's passkeys.
pub async fn rename_passkey(state: &AppState, user_id: Uuid, passkey_id: Uuid, name: &str) -> Result<(), AppError> {
    let name = name.trim();
    validate_name(name, 64, "Enter a name for the passkey.").map_err(AppError::Unprocessable)?;
    if !passkeys::rename(&state.db, user_id, passkey_id, name).await? {
        return Err(AppError::NotFound("No such passkey.".into()));
    }
    Ok(())
}

/// Deletes one of the signed-in person's passkeys, never the last one: without another way in,
/// the person would be locked out. The user row is locked so two deletes cannot both pass.
/// An email session cannot delete passkeys (it would let a mailbox take over the account).
pub async fn delete_passkey(state: &AppState, session: &Session, passkey_id: Uuid) -> Result<(), AppError> {
    if !session.is_passkey() {
        return Err(AppError::Forbidden(
            "Deleting a passkey needs a passkey sign-in. Sign out, then sign in with a passkey.".into(),
        ));
    }
    let user_id = session.user_id;
    let txn = state.db.begin().await?;
    users::find_by_id_for_update(&txn, user_id).await?;
    if passkeys::count_for_user(&txn, user_id).await? <= 1 {
        return Err(AppError::Conflict {
            field: "passkey",
            message: "This is your only passkey. Add another one before deleting it.".into(),
        });
    }
    if !passkeys::delete(&txn, user_id, passkey_id).await? {
        return Err(AppError::NotFound("No such passkey.".into()));
    }
    txn.commit().await?;
    tracing::info!(%user_id, %passkey_id, "passkey deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkey_names_are_made_distinct() {
        assert_eq!(distinct_name("Passkey", ["YubiKey"].into_iter()), "Passkey");
        assert_eq!(distinct_name("Passkey", ["Passkey", "Passkey 2"].into_iter()), "Passkey 3");
    }

    #[test]
    fn usernames() {
        assert!(validate_username("alice.smith-2_x").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("has space").is_err());
        assert!(validate_username("ünïcode").is_err());
        assert!(validate_username(&"a".repeat(64)).is_ok());
        assert!(validate_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn emails() {
        assert!(validate_email("a@example.com").is_ok());
        for bad in ["", "a", "a@b", "@example.com", "a@.com", "a b@example.com", "a@example.com."] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signup_form_reports_every_field_and_defaults_the_display_name() {
        let errors = SignupForm { username: "bad name".into(), email: "nope".into(), display_name: "".into() }
            .validate()
            .unwrap_err();
        assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["email", "username"]);
        let user = SignupForm { username: " alice ".into(), email: "A@Example.com".into(), display_name: "".into() }
            .validate()
            .unwrap();
        assert_eq!(user.display_name, "alice");
        assert_eq!(user.email, "A@Example.com");
    }
}
