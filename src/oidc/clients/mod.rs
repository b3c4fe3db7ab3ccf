//! Relying parties: what a registered client may do ([`Client`]), the rules a registration must
//! pass ([`validate`]), client secrets ([`ClientSecrets`]), and the ways clients are written:
//! [`create`] (admin API, CLI), [`upsert`] (declarative, `PUT`) and [`apply_file`]
//! (`LATCHKEY_CLIENTS_FILE`).
//!
//! Redirect URIs are matched by exact string comparison (OAuth 2.0 Security BCP, RFC 9700
//! §4.1.3): no normalisation, prefixes or wildcards. Client *authentication* at the token
//! endpoint and the HTTP shapes of the admin API live elsewhere; this module stops at "is this
//! the right secret".

use std::{
    collections::{BTreeSet, HashSet},
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    str::FromStr,
    time::Duration,
};

use anyhow::{Context, anyhow};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::client;
use rand::RngCore;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use url::{Host, Url};

mod cache;
mod file;
mod secrets;
#[cfg(test)]
mod tests;
mod validate;

pub use cache::{CLIENT_CACHE_TTL, ClientCache};
pub use file::apply_file;
pub use secrets::ClientSecrets;
use validate::check_uri;
pub use validate::validate;

use crate::{
    accounts::{FieldErrors, validate_name},
    oidc::SigningAlg,
    store::{self, clients as rows},
};

/// The scopes Latchkey knows; also the default a client may request.
pub const KNOWN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The longest token lifetime a client may override to.
const MAX_TTL_SECONDS: i64 = 365 * 24 * 60 * 60;

/// The shortest client secret an operator may supply (Latchkey's own are 43 characters).
const MIN_SECRET_CHARS: usize = 32;

/// An OAuth 2.0 grant type a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4; confidential clients only.
    ClientCredentials,
}

impl GrantType {
    /// Every grant type.
    pub const ALL: [GrantType; 3] =
        [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials];

    /// The OAuth name (`authorization_code`, `refresh_token`, `client_credentials`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| {
            format!("Unknown grant type '{s}'; use authorization_code, refresh_token or client_credentials.")
        })
    }
}

/// What a client registration says, apart from its id and secret: the part a registration
/// ([`ValidClient`]) and a stored client ([`Client`]) share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    pub name: String,
    /// Public clients (SPAs, native apps) cannot keep a secret and never authenticate.
    pub public: bool,
    /// First-party clients skip the consent screen.
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub allowed_scopes: BTreeSet<String>,
    pub grant_types: BTreeSet<GrantType>,
    pub id_token_alg: SigningAlg,
    pub backchannel_logout_uri: Option<Url>,
    /// Overrides `LATCHKEY_ACCESS_TOKEN_TTL` for this client.
    pub access_token_ttl: Option<Duration>,
    /// Overrides the refresh-token lifetime for this client.
    pub refresh_token_ttl: Option<Duration>,
}

/// A registered relying party, as the protocol code consults it.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub settings: ClientSettings,
    /// Private so the hash is never rendered by accident; see [`ClientSecrets::verify`].
    secret_hash: Option<String>,
}

// By hand so the secret's hash never reaches a log line through `{:?}`.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("settings", &self.settings)
            .field("secret_hash", &self.secret_hash.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Client {
    /// Reads a stored row; fails only when the row was written by something other than this
    /// module (bad JSON, unknown grant or algorithm).
    pub fn from_model(row: client::Model) -> anyhow::Result<Client> {
        let context = || format!("stored client '{}'", row.client_id);
        let uris = |json: &str| serde_json::from_str::<Vec<String>>(json);
        let redirect_uris = uris(&row.redirect_uris).with_context(context)?;
        let post_logout_redirect_uris = uris(&row.post_logout_redirect_uris).with_context(context)?;
        let grant_types = row
            .grant_types
            .split_whitespace()
            .map(GrantType::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{}: {e}", context()))?;
        let id_token_alg = row.id_token_signed_response_alg.parse().map_err(|e| anyhow!("{}: {e}", context()))?;
        let backchannel_logout_uri =
            row.backchannel_logout_uri.as_deref().map(Url::parse).transpose().with_context(context)?;
        let ttl = |seconds: Option<i64>| {
            seconds.map(|s| u64::try_from(s).map(Duration::from_secs)).transpose().with_context(context)
        };
        let settings = ClientSettings {
            access_token_ttl: ttl(row.access_token_ttl_seconds)?,
            refresh_token_ttl: ttl(row.refresh_token_ttl_seconds)?,
            allowed_scopes: row.allowed_scopes.split_whitespace().map(str::to_owned).collect(),
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            id_token_alg,
            backchannel_logout_uri,
            name: row.name,
            public: row.public,
            first_party: row.first_party,
        };
        Ok(Client { client_id: row.client_id, settings, secret_hash: row.secret_hash })
    }

    /// Whether `uri` is registered, by exact string comparison (RFC 9700 §4.1.3; OIDC Core
    /// §3.1.2.1 "MUST exactly match").
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        self.settings.redirect_uris.iter().any(|registered| registered == uri)
    }

    /// Whether `uri` is a registered post-logout redirect URI (OIDC RP-Initiated Logout §2),
    /// by exact string comparison.
    pub fn allows_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.settings.post_logout_redirect_uris.iter().any(|registered| registered == uri)
    }

    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.settings.grant_types.contains(&grant)
    }

    /// Whether the client may request `scope`.
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.settings.allowed_scopes.contains(scope)
    }

    /// Whether the client has a secret (confidential clients always do once stored).
    pub fn has_secret(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// This client as a spec that validates to the same client (without the secret): the
    /// starting point for a partial update (`PATCH`).
    pub fn to_spec(&self) -> ClientSpec {
        let settings = &self.settings;
        let uris = settings.redirect_uris.iter().chain(&settings.post_logout_redirect_uris);
        ClientSpec {
            client_id: Some(self.client_id.clone()),
            name: settings.name.clone(),
            redirect_uris: settings.redirect_uris.clone(),
            post_logout_redirect_uris: settings.post_logout_redirect_uris.clone(),
            public: settings.public,
            first_party: settings.first_party,
            allowed_scopes: Some(settings.allowed_scopes.iter().cloned().collect()),
            grant_types: Some(settings.grant_types.iter().map(|g| g.as_str().to_owned()).collect()),
            id_token_signed_response_alg: Some(settings.id_token_alg.as_str().to_owned()),
            backchannel_logout_uri: settings.backchannel_logout_uri.as_ref().map(Url::to_string),
            access_token_ttl_seconds: settings.access_token_ttl.map(duration_seconds),
            refresh_token_ttl_seconds: settings.refresh_token_ttl.map(duration_seconds),
            allow_http_redirect_uris: uris.into_iter().any(|uri| check_uri(uri, false).is_err()),
            client_secret: None,
        }
    }
}

fn duration_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

/// A client registration as written by an operator: the admin API body, one entry of the
/// clients file, or the CLI's flags. Field names are the JSON/YAML names.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSpec {
    /// Chosen by the operator in declarative use; generated by [`create`] when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    /// Default: `openid profile email offline_access`.
    pub allowed_scopes: Option<Vec<String>>,
    /// Default: `authorization_code refresh_token`.
    pub grant_types: Option<Vec<String>>,
    /// Default: `RS256`.
    pub id_token_signed_response_alg: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
    /// Allows `http` redirect URIs on any host (development setups such as Compose networks).
    pub allow_http_redirect_uris: bool,
    /// Declarative use only ([`upsert`], the clients file): the secret the relying party is
    /// configured with. [`create`] refuses it: there Latchkey generates the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

// By hand so a secret never reaches a log line through `{:?}`.
impl fmt::Debug for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpec")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .field("public", &self.public)
            .field("grant_types", &self.grant_types)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// A spec that passed [`validate`], with defaults filled in and duplicates removed.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidClient {
    pub client_id: Option<String>,
    pub settings: ClientSettings,
    pub client_secret: Option<String>,
}

// By hand so a secret never reaches a log line through `{:?}`.
impl fmt::Debug for ValidClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidClient")
            .field("client_id", &self.client_id)
            .field("settings", &self.settings)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ValidClient {
    fn into_client(self, client_id: String, secret_hash: Option<String>) -> Client {
        Client { client_id, settings: self.settings, secret_hash }
    }
}

/// The row a client is stored as.
fn to_row(client: &Client, created_at: DateTime<Utc>, updated_at: DateTime<Utc>) -> client::Model {
    let join = |items: Vec<&str>| items.join(" ");
    let settings = &client.settings;
    client::Model {
        client_id: client.client_id.clone(),
        name: settings.name.clone(),
        secret_hash: client.secret_hash.clone(),
        public: settings.public,
        first_party: settings.first_party,
        redirect_uris: serde_json::Value::from(settings.redirect_uris.clone()).to_string(),
        post_logout_redirect_uris: serde_json::Value::from(settings.post_logout_redirect_uris.clone()).to_string(),
        allowed_scopes: join(settings.allowed_scopes.iter().map(String::as_str).collect()),
        grant_types: join(settings.grant_types.iter().map(|g| g.as_str()).collect()),
        id_token_signed_response_alg: settings.id_token_alg.as_str().to_owned(),
        backchannel_logout_uri: settings.backchannel_logout_uri.as_ref().map(Url::to_string),
        access_token_ttl_seconds: settings.access_token_ttl.map(duration_seconds),
        refresh_token_ttl_seconds: settings.refresh_token_ttl.map(duration_seconds),
        created_at,
        updated_at,
    }
}

/// Why writing a client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The spec broke a rule; one message per field.
    #[error("invalid client: {}", describe(.0))]
    Invalid(FieldErrors),
    /// A client with this `client_id` exists already.
    #[error("a client with this client_id already exists")]
    Conflict,
    /// The database failed; an internal error.
    #[error(transparent)]
    Db(DbErr),
}

impl From<DbErr> for ClientError {
    fn from(err: DbErr) -> Self {
        match store::unique_violation(&err) {
            Some(_) => ClientError::Conflict,
            None => ClientError::Db(err),
        }
    }
}

fn describe(errors: &FieldErrors) -> String {
    errors.iter().map(|(field, message)| format!("{field}: {message}")).collect::<Vec<_>>().join("; ")
}

/// Registers a new client. Generates the `client_id` when the spec has none, and a secret for a
/// confidential client, returned here once and stored only as a hash.
pub async fn create(
    db: &impl ConnectionTrait,
    secrets: &ClientSecrets,
    spec: &ClientSpec,
    now: DateTime<Utc>,
) -> Result<(Client, Option<String>), ClientError> {
    let valid = validate(spec);
    if spec.client_secret.is_some() {
        let mut errors = valid.err().unwrap_or_default();
        errors.insert("client_secret", "Latchkey generates client secrets; leave client_secret out.".into());
        return Err(ClientError::Invalid(errors));
    }
    let valid = valid.map_err(ClientError::Invalid)?;
    let client_id = valid.client_id.clone().unwrap_or_else(generate_client_id);
    let secret = (!valid.settings.public).then(ClientSecrets::generate);
    let client = valid.into_client(client_id, secret.as_deref().map(|s| secrets.hash(s)));
    rows::insert(db, to_row(&client, now, now)).await?;
    Ok((client, secret))
}

/// 128 random bits, base64url: 22 characters, unguessable though not secret.
fn generate_client_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates the client `client_id` or replaces every field of it (declarative tools, the clients
/// file). The stored secret is kept unless `spec.client_secret` gives one; a confidential client
/// without any gets a generated secret, returned once. Applying the same spec again writes
/// nothing. Returns the client, a newly generated secret, and whether the client was created.
pub async fn upsert(
    db: &impl ConnectionTrait,
    secrets: &ClientSecrets,
    client_id: &str,
    spec: &ClientSpec,
    now: DateTime<Utc>,
) -> Result<(Client, Option<String>, bool), ClientError> {
    if spec.client_id.as_deref().is_some_and(|id| id != client_id) {
        let message = format!("Does not match the client_id '{client_id}' being written.");
        return Err(ClientError::Invalid(FieldErrors::from([("client_id", message)])));
    }
    let spec = ClientSpec { client_id: Some(client_id.to_owned()), ..spec.clone() };
    let valid = validate(&spec).map_err(ClientError::Invalid)?;
    let existing = rows::find(db, client_id).await?;
    let kept_hash = existing.as_ref().and_then(|row| row.secret_hash.clone());
    let (secret_hash, generated) = match (&valid.client_secret, kept_hash) {
        _ if valid.settings.public => (None, None),
        (Some(given), _) => (Some(secrets.hash(given)), None),
        (None, Some(kept)) => (Some(kept), None),
        (None, None) => {
            let secret = ClientSecrets::generate();
            (Some(secrets.hash(&secret)), Some(secret))
        }
    };
    let client = valid.into_client(client_id.to_owned(), secret_hash);
    match existing {
        None => {
            rows::insert(db, to_row(&client, now, now)).await?;
            Ok((client, generated, true))
        }
        Some(old) => {
            let row = to_row(&client, old.created_at, old.updated_at);
            if row != old {
                rows::replace(db, client::Model { updated_at: now, ..row }).await?;
            }
            Ok((client, generated, false))
        }
    }
}

/// Gives a confidential client a fresh secret, returned once; the old secret stops working at
/// once. `Ok(None)` when there is no such client; public clients have no secret (`Invalid`).
pub async fn rotate_secret(
    db: &impl ConnectionTrait,
    secrets: &ClientSecrets,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, ClientError> {
    let Some(row) = rows::find(db, client_id).await? else {
        return Ok(None);
    };
    if row.public {
        let message = "Public clients have no secret to rotate.".to_owned();
        return Err(ClientError::Invalid(FieldErrors::from([("public", message)])));
    }
    let secret = ClientSecrets::generate();
    let found = rows::set_secret_hash(db, client_id, Some(secrets.hash(&secret)), now).await?;
    Ok(found.then_some(secret))
}
