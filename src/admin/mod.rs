//! What an operator can do through the admin API: manage users and their passkeys, relying
//! parties and signing keys. Every change commits together with its audit event, and every
//! failure a request can cause is an [`AdminError`] naming what was wrong.
//!
//! The rules themselves live with their subjects (usernames and emails in
//! [`crate::accounts`], clients in [`crate::oidc::clients`], keys in [`crate::oidc::keys`]);
//! this module decides what changes together. JSON shapes and HTTP statuses are
//! [`crate::http`]'s business.

pub mod clients;
pub mod keys;
pub mod users;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::{accounts::FieldErrors, audit::Event, error::AppError, oidc::clients::ClientError};

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Some fields broke a rule; one message per field (keys are the JSON field names).
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// Anything else, named by meaning (not found, conflict, storage down, internal).
    #[error(transparent)]
    App(#[from] AppError),
}

impl AdminError {
    /// A single invalid field.
    pub fn field(field: &'static str, message: impl Into<String>) -> AdminError {
        AdminError::Invalid(FieldErrors::from([(field, message.into())]))
    }

    /// 404 with a message naming what was not found.
    pub fn not_found(what: &str) -> AdminError {
        AdminError::App(AppError::NotFound(format!("No such {what}.")))
    }
}

impl From<DbErr> for AdminError {
    fn from(err: DbErr) -> Self {
        AdminError::App(err.into())
    }
}

impl From<ClientError> for AdminError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Invalid(errors) => AdminError::Invalid(errors),
            ClientError::Conflict => AdminError::App(AppError::Conflict {
                field: "client_id",
                message: "A client with this client_id exists already.".into(),
            }),
            ClientError::Db(err) => err.into(),
        }
    }
}

/// Who made a change: the admin API caller's address and user agent, copied into audit events.
/// (There is one admin credential, so "who" is the request's origin, not a person.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// An audit event of `kind` done by this actor through the admin API.
    pub fn event(&self, kind: &'static str, now: DateTime<Utc>) -> Event {
        Event::new(kind, now).source(self.ip.clone(), self.user_agent.clone()).with("actor", "admin_api")
    }
}
