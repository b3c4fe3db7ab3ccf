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
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::{Host, Url};

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

/// A registered relying party, as the protocol code consults it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
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
    /// Private so the hash is never rendered by accident; see [`ClientSecrets::verify`].
    secret_hash: Option<String>,
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
        Ok(Client {
            access_token_ttl: ttl(row.access_token_ttl_seconds)?,
            refresh_token_ttl: ttl(row.refresh_token_ttl_seconds)?,
            allowed_scopes: row.allowed_scopes.split_whitespace().map(str::to_owned).collect(),
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            id_token_alg,
            backchannel_logout_uri,
            client_id: row.client_id,
            name: row.name,
            public: row.public,
            first_party: row.first_party,
            secret_hash: row.secret_hash,
        })
    }

    /// Whether `uri` is registered, by exact string comparison (RFC 9700 §4.1.3; OIDC Core
    /// §3.1.2.1 "MUST exactly match").
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|registered| registered == uri)
    }

    /// Whether `uri` is a registered post-logout redirect URI (OIDC RP-Initiated Logout §2),
    /// by exact string comparison.
    pub fn allows_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|registered| registered == uri)
    }

    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether the client may request `scope`.
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.allowed_scopes.contains(scope)
    }

    /// Whether the client has a secret (confidential clients always do once stored).
    pub fn has_secret(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// This client as a spec that validates to the same client (without the secret): the
    /// starting point for a partial update (`PATCH`).
    pub fn to_spec(&self) -> ClientSpec {
        let uris = self.redirect_uris.iter().chain(&self.post_logout_redirect_uris);
        ClientSpec {
            client_id: Some(self.client_id.clone()),
            name: self.name.clone(),
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            public: self.public,
            first_party: self.first_party,
            allowed_scopes: Some(self.allowed_scopes.iter().cloned().collect()),
            grant_types: Some(self.grant_types.iter().map(|g| g.as_str().to_owned()).collect()),
            id_token_signed_response_alg: Some(self.id_token_alg.as_str().to_owned()),
            backchannel_logout_uri: self.backchannel_logout_uri.as_ref().map(Url::to_string),
            access_token_ttl_seconds: self.access_token_ttl.map(duration_seconds),
            refresh_token_ttl_seconds: self.refresh_token_ttl.map(duration_seconds),
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
    pub name: String,
    pub public: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub allowed_scopes: BTreeSet<String>,
    pub grant_types: BTreeSet<GrantType>,
    pub id_token_alg: SigningAlg,
    pub backchannel_logout_uri: Option<Url>,
    pub access_token_ttl: Option<Duration>,
    pub refresh_token_ttl: Option<Duration>,
    pub client_secret: Option<String>,
}

impl fmt::Debug for ValidClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.public)
            .field("grant_types", &self.grant_types)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl ValidClient {
    fn into_client(self, client_id: String, secret_hash: Option<String>) -> Client {
        Client {
            client_id,
            name: self.name,
            public: self.public,
            first_party: self.first_party,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            allowed_scopes: self.allowed_scopes,
            grant_types: self.grant_types,
            id_token_alg: self.id_token_alg,
            backchannel_logout_uri: self.backchannel_logout_uri,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            secret_hash,
        }
    }
}

/// The row a client is stored as.
fn to_row(client: &Client, created_at: DateTime<Utc>, updated_at: DateTime<Utc>) -> client::Model {
    let join = |items: Vec<&str>| items.join(" ");
    client::Model {
        client_id: client.client_id.clone(),
        name: client.name.clone(),
        secret_hash: client.secret_hash.clone(),
        public: client.public,
        first_party: client.first_party,
        redirect_uris: serde_json::Value::from(client.redirect_uris.clone()).to_string(),
        post_logout_redirect_uris: serde_json::Value::from(client.post_logout_redirect_uris.clone()).to_string(),
        allowed_scopes: join(client.allowed_scopes.iter().map(String::as_str).collect()),
        grant_types: join(client.grant_types.iter().map(|g| g.as_str()).collect()),
        id_token_signed_response_alg: client.id_token_alg.as_str().to_owned(),
        backchannel_logout_uri: client.backchannel_logout_uri.as_ref().map(Url::to_string),
        access_token_ttl_seconds: client.access_token_ttl.map(duration_seconds),
        refresh_token_ttl_seconds: client.refresh_token_ttl.map(duration_seconds),
        created_at,
        updated_at,
    }
}

/// Checks every field of `spec` and returns the client it describes, or one message per field
/// that is wrong (keys are the JSON field names).
pub fn validate(spec: &ClientSpec) -> Result<ValidClient, FieldErrors> {
    let mut errors = FieldErrors::new();

    let name = spec.name.trim();
    record(&mut errors, "name", validate_name(name, 100, "Enter a name."));
    if let Some(client_id) = &spec.client_id {
        record(&mut errors, "client_id", validate_client_id(client_id));
    }
    let grant_types = record(&mut errors, "grant_types", parse_grant_types(spec.grant_types.as_deref(), spec.public));
    let only_client_credentials =
        grant_types.as_ref().is_some_and(|g| g.iter().eq([GrantType::ClientCredentials].iter()));
    let allow_http = spec.allow_http_redirect_uris;
    if spec.redirect_uris.is_empty() && !only_client_credentials {
        errors.insert("redirect_uris", "Add at least one redirect URI.".into());
    }
    record(&mut errors, "redirect_uris", check_uris(&spec.redirect_uris, allow_http));
    record(&mut errors, "post_logout_redirect_uris", check_uris(&spec.post_logout_redirect_uris, allow_http));
    let allowed_scopes = record(&mut errors, "allowed_scopes", parse_scopes(spec.allowed_scopes.as_deref()));
    let id_token_alg = record(
        &mut errors,
        "id_token_signed_response_alg",
        spec.id_token_signed_response_alg
            .as_deref()
            .map_or(Ok(SigningAlg::RS256), |alg| alg.parse::<SigningAlg>().map_err(|e| format!("{e}."))),
    );
    let backchannel_logout_uri = record(
        &mut errors,
        "backchannel_logout_uri",
        spec.backchannel_logout_uri.as_deref().map(parse_backchannel_uri).transpose(),
    );
    let access_token_ttl =
        record(&mut errors, "access_token_ttl_seconds", spec.access_token_ttl_seconds.map(parse_ttl).transpose());
    let refresh_token_ttl =
        record(&mut errors, "refresh_token_ttl_seconds", spec.refresh_token_ttl_seconds.map(parse_ttl).transpose());
    match &spec.client_secret {
        Some(_) if spec.public => {
            let message = "Public clients have no secret; remove client_secret or make the client confidential.";
            errors.insert("client_secret", message.into());
        }
        Some(secret) if secret.chars().count() < MIN_SECRET_CHARS => {
            errors.insert("client_secret", format!("Use a secret of at least {MIN_SECRET_CHARS} characters."));
        }
        _ => {}
    }

    let parsed =
        (grant_types, allowed_scopes, id_token_alg, backchannel_logout_uri, access_token_ttl, refresh_token_ttl);
    let (
        Some(grant_types),
        Some(allowed_scopes),
        Some(id_token_alg),
        Some(backchannel_logout_uri),
        Some(access_token_ttl),
        Some(refresh_token_ttl),
    ) = parsed
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidClient {
        client_id: spec.client_id.clone(),
        name: name.to_owned(),
        public: spec.public,
        first_party: spec.first_party,
        redirect_uris: dedup(&spec.redirect_uris),
        post_logout_redirect_uris: dedup(&spec.post_logout_redirect_uris),
        allowed_scopes,
        grant_types,
        id_token_alg,
        backchannel_logout_uri,
        access_token_ttl,
        refresh_token_ttl,
        client_secret: spec.client_secret.clone(),
    })
}

/// Records a failed field (the first message per field wins) and hands back a good one's value.
fn record<T>(errors: &mut FieldErrors, field: &'static str, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(message) => {
            errors.entry(field).or_insert(message);
            None
        }
    }
}

/// Client ids share the username alphabet so they are safe in URLs, logs and HTTP Basic.
fn validate_client_id(client_id: &str) -> Result<(), String> {
    let valid_chars = client_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match client_id.len() {
        0 => Err("Enter a client_id, or leave it out to have one generated.".into()),
        65.. => Err("Use at most 64 characters.".into()),
        _ if !valid_chars => Err("Use only letters, digits, dots, dashes and underscores.".into()),
        _ => Ok(()),
    }
}

fn parse_grant_types(given: Option<&[String]>, public: bool) -> Result<BTreeSet<GrantType>, String> {
    let grants: BTreeSet<GrantType> = match given {
        None => [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        Some(names) => names.iter().map(|name| name.parse()).collect::<Result<_, _>>()?,
    };
    if grants.is_empty() {
        return Err("Choose at least one grant type.".into());
    }
    if public && grants.contains(&GrantType::ClientCredentials) {
        // RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients.
        return Err("client_credentials needs a confidential client: a public client cannot authenticate.".into());
    }
    Ok(grants)
}

fn parse_scopes(given: Option<&[String]>) -> Result<BTreeSet<String>, String> {
    let scopes: BTreeSet<String> = match given {
        None => KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        Some(scopes) => scopes.iter().cloned().collect(),
    };
    if let Some(unknown) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(format!("Unknown scope '{unknown}'; use openid, profile, email or offline_access."));
    }
    if !scopes.contains("openid") {
        return Err("Include the openid scope.".into());
    }
    Ok(scopes)
}

fn parse_ttl(seconds: i64) -> Result<Duration, String> {
    match seconds {
        ..=0 => Err("Use a positive number of seconds.".into()),
        s if s > MAX_TTL_SECONDS => Err(format!("Use at most {MAX_TTL_SECONDS} seconds (one year).")),
        s => Ok(Duration::from_secs(s.unsigned_abs())),
    }
}

/// OIDC Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment; like redirect URIs,
/// plain http only on loopback hosts.
fn parse_backchannel_uri(uri: &str) -> Result<Url, String> {
    let url = parse_absolute(uri)?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(format!("'{uri}': use https (http only for localhost, 127.0.0.1 and [::1]).")),
    }
}

fn check_uris(uris: &[String], allow_http: bool) -> Result<(), String> {
    uris.iter().try_for_each(|uri| check_uri(uri, allow_http))
}

/// The rules for redirect and post-logout redirect URIs: absolute, no fragment (RFC 6749
/// §3.1.2), no wildcards, and a scheme that cannot leak the code: https, http on a loopback host
/// (RFC 8252 §7.3), or a private-use scheme with a dot in it, as native apps use (RFC 8252 §7.1).
fn check_uri(uri: &str, allow_http: bool) -> Result<(), String> {
    if uri.contains('*') {
        return Err(format!("'{uri}': wildcards are not allowed; list each URI exactly."));
    }
    let url = parse_absolute(uri)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(&url) => Ok(()),
        "http" => Err(format!("'{uri}': use https; http is allowed only for localhost, 127.0.0.1 and [::1].")),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "'{uri}': use https, http on a loopback host, or a private-use scheme such as com.example.app:/callback."
        )),
    }
}

fn parse_absolute(uri: &str) -> Result<Url, String> {
    // `Url::parse` silently trims surrounding spaces; a registered URI is compared byte for byte,
    // so refuse them rather than store a URI no request will ever match.
    if uri.is_empty() || uri.chars().any(char::is_whitespace) {
        return Err(format!("'{uri}' is not an absolute URI: remove the spaces."));
    }
    let url = Url::parse(uri).map_err(|_| format!("'{uri}' is not an absolute URI."))?;
    if url.fragment().is_some() {
        return Err(format!("'{uri}' must not contain a fragment (#…)."));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        None => false,
    }
}

fn dedup(uris: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    uris.iter().filter(|uri| seen.insert(uri.as_str())).cloned().collect()
}

/// The instance's key for hashing client secrets, shared by every replica.
#[derive(Clone)]
pub struct ClientSecrets {
    key: Hmac<Sha256>,
}

impl fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecrets([redacted])")
    }
}

impl ClientSecrets {
    /// Loads the key from the settings table, generating it on first start.
    pub async fn load(db: &DatabaseConnection) -> Result<ClientSecrets, DbErr> {
        let key = store::settings::get_or_create_secret(db, "client_secret_key", 32).await?;
        Ok(ClientSecrets::from_key(&key))
    }

    /// A key from raw bytes (tests, or an operator-supplied key).
    pub fn from_key(key: &[u8]) -> ClientSecrets {
        // HMAC takes keys of any length, so this cannot fail.
        let key = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
        ClientSecrets { key }
    }

    /// A fresh client secret: 256 random bits, base64url (43 characters).
    pub fn generate() -> String {
        crate::random_token()
    }

    /// The stored form of `secret`: hex HMAC-SHA-256 under the instance key.
    //
    // A keyed fast hash, not bcrypt or argon2: the secrets Latchkey generates carry 256 bits of
    // entropy (and operator-supplied ones at least 32 characters), so there is nothing for a slow
    // hash to protect against brute force, and it would only slow down every token request. The
    // key (in the settings table) means a leaked `clients` table alone does not even allow
    // offline guessing.
    pub fn hash(&self, secret: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Whether `presented` is the client's secret, compared in constant time. Public clients
    /// and clients without a stored secret never verify.
    pub fn verify(&self, client: &Client, presented: &str) -> bool {
        match &client.secret_hash {
            Some(stored) if !client.public && !presented.is_empty() => {
                bool::from(self.hash(presented).as_bytes().ct_eq(stored.as_bytes()))
            }
            _ => false,
        }
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
    let secret = (!valid.public).then(ClientSecrets::generate);
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
        _ if valid.public => (None, None),
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

/// The clients file: `clients: [ClientSpec, …]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default)]
    clients: Vec<ClientSpec>,
}

/// Applies the YAML clients file at `path` (`LATCHKEY_CLIENTS_FILE`): every entry is validated
/// first, then all are upserted in one transaction, so a bad file changes nothing. Clients not in
/// the file are left alone. Returns how many entries were applied.
pub async fn apply_file(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    path: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let shown = path.display();
    let text = tokio::fs::read_to_string(path).await.with_context(|| format!("cannot read clients file {shown}"))?;
    // No source snippets in errors: the lines around a mistake may hold client secrets.
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let file: ClientsFile =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| anyhow!("clients file {shown}: {e}"))?;
    let problems = check_file(&file.clients);
    if !problems.is_empty() {
        return Err(anyhow!("clients file {shown} is invalid:\n  {}", problems.join("\n  ")));
    }
    // Replicas starting together may both insert the same new client; the loser's transaction
    // fails with a conflict, and a second attempt finds the rows and replaces them.
    let mut attempts_left = 2;
    let created = loop {
        attempts_left -= 1;
        match upsert_all(db, secrets, &file.clients, now).await {
            Err(ClientError::Conflict) if attempts_left > 0 => continue,
            result => break result.with_context(|| format!("applying clients file {shown}"))?,
        }
    };
    for client_id in created {
        tracing::info!(%client_id, "client created from the clients file");
    }
    Ok(file.clients.len())
}

/// Every problem in the file's entries, each naming the entry and field.
fn check_file(specs: &[ClientSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, spec) in specs.iter().enumerate() {
        let entry = match &spec.client_id {
            Some(id) => format!("clients[{index}] ({id})"),
            None => format!("clients[{index}]"),
        };
        let mut errors = validate(spec).err().unwrap_or_default();
        match &spec.client_id {
            None => {
                errors.insert("client_id", "Required in the clients file.".into());
            }
            Some(id) if !seen.insert(id.as_str()) => {
                errors.insert("client_id", format!("'{id}' appears more than once."));
            }
            Some(_) => {}
        }
        if !spec.public && spec.client_secret.is_none() {
            // The operator has to configure the relying party with the secret, so it must come
            // from the file rather than be generated where nobody sees it.
            errors.entry("client_secret").or_insert_with(|| "Required for a confidential client.".into());
        }
        problems.extend(errors.into_iter().map(|(field, message)| format!("{entry}: {field}: {message}")));
    }
    problems
}

/// Upserts every spec in one transaction; returns the ids of the clients it created.
async fn upsert_all(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    specs: &[ClientSpec],
    now: DateTime<Utc>,
) -> Result<Vec<String>, ClientError> {
    let txn = db.begin().await?;
    let mut created = Vec::new();
    for spec in specs {
        let client_id = spec.client_id.as_deref().unwrap_or_default();
        let (client, _, was_created) = upsert(&txn, secrets, client_id, spec, now).await?;
        if was_created {
            created.push(client.client_id);
        }
    }
    txn.commit().await?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn later() -> DateTime<Utc> {
        now() + chrono::Duration::hours(1)
    }

    fn spec() -> ClientSpec {
        ClientSpec {
            name: "Example".into(),
            redirect_uris: vec!["https://rp.example/cb".into()],
            ..ClientSpec::default()
        }
    }

    fn secrets() -> ClientSecrets {
        ClientSecrets::from_key(b"test key")
    }

    async fn db() -> DatabaseConnection {
        let db = store::connect("sqlite::memory:").await.unwrap();
        store::migrate(&db).await.unwrap();
        db
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    type Change = fn(&mut ClientSpec);

    #[test]
    fn grant_types_round_trip_through_their_oauth_names() {
        for grant in GrantType::ALL {
            assert_eq!(grant.as_str().parse::<GrantType>(), Ok(grant));
        }
        assert_eq!(GrantType::ClientCredentials.as_str(), "client_credentials");
        assert!("implicit".parse::<GrantType>().is_err());
    }

    #[test]
    fn defaults_fill_in_scopes_grants_and_algorithm() {
        let valid = validate(&spec()).unwrap();
        assert_eq!(valid.allowed_scopes, KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(valid.grant_types, [GrantType::AuthorizationCode, GrantType::RefreshToken].into());
        assert_eq!(valid.id_token_alg, SigningAlg::RS256);
        assert!(!valid.public && !valid.first_party);
        assert_eq!((valid.access_token_ttl, valid.refresh_token_ttl), (None, None));
    }

    #[test]
    fn validation_names_the_field_of_each_broken_rule() {
        let cases: &[(&str, Change, &str, &str)] = &[
            ("empty name", |s| s.name = "  ".into(), "name", "Enter a name"),
            ("long name", |s| s.name = "x".repeat(101), "name", "at most 100"),
            ("empty client_id", |s| s.client_id = Some(String::new()), "client_id", "Enter a client_id"),
            ("long client_id", |s| s.client_id = Some("a".repeat(65)), "client_id", "at most 64"),
            ("client_id with a slash", |s| s.client_id = Some("a/b".into()), "client_id", "letters, digits"),
            ("client_id with a space", |s| s.client_id = Some("a b".into()), "client_id", "letters, digits"),
            ("no redirect URI", |s| s.redirect_uris.clear(), "redirect_uris", "at least one"),
            ("relative URI", |s| s.redirect_uris = vec!["/cb".into()], "redirect_uris", "not an absolute URI"),
            ("fragment", |s| s.redirect_uris = vec!["https://rp.example/cb#x".into()], "redirect_uris", "fragment"),
            (
                "empty fragment",
                |s| s.redirect_uris = vec!["https://rp.example/cb#".into()],
                "redirect_uris",
                "fragment",
            ),
            ("wildcard", |s| s.redirect_uris = vec!["https://*.rp.example/cb".into()], "redirect_uris", "wildcards"),
            (
                "surrounding space",
                |s| s.redirect_uris = vec![" https://rp.example/cb".into()],
                "redirect_uris",
                "spaces",
            ),
            ("http elsewhere", |s| s.redirect_uris = vec!["http://rp.example/cb".into()], "redirect_uris", "use https"),
            (
                "http on a look-alike host",
                |s| s.redirect_uris = vec!["http://localhost.evil.example/cb".into()],
                "redirect_uris",
                "use https",
            ),
            ("http on 127.0.0.2", |s| s.redirect_uris = vec!["http://127.0.0.2/cb".into()], "redirect_uris", "https"),
            ("javascript", |s| s.redirect_uris = vec!["javascript:alert(1)".into()], "redirect_uris", "private-use"),
            ("scheme without a dot", |s| s.redirect_uris = vec!["myapp:/cb".into()], "redirect_uris", "private-use"),
            (
                "one bad URI among good ones",
                |s| s.redirect_uris.push("ftp://rp.example/cb".into()),
                "redirect_uris",
                "ftp://rp.example/cb",
            ),
            (
                "post-logout over http",
                |s| s.post_logout_redirect_uris = vec!["http://rp.example/".into()],
                "post_logout_redirect_uris",
                "use https",
            ),
            (
                "post-logout with a fragment",
                |s| s.post_logout_redirect_uris = vec!["https://rp.example/#bye".into()],
                "post_logout_redirect_uris",
                "fragment",
            ),
            (
                "post-logout wildcard",
                |s| s.post_logout_redirect_uris = vec!["https://rp.example/*".into()],
                "post_logout_redirect_uris",
                "wildcards",
            ),
            (
                "unknown scope",
                |s| s.allowed_scopes = Some(vec!["openid".into(), "admin".into()]),
                "allowed_scopes",
                "'admin'",
            ),
            ("no openid scope", |s| s.allowed_scopes = Some(vec!["profile".into()]), "allowed_scopes", "openid"),
            ("no scopes", |s| s.allowed_scopes = Some(vec![]), "allowed_scopes", "openid"),
            ("unknown grant", |s| s.grant_types = Some(vec!["implicit".into()]), "grant_types", "'implicit'"),
            ("no grants", |s| s.grant_types = Some(vec![]), "grant_types", "at least one"),
            (
                "public client_credentials",
                |s| {
                    s.public = true;
                    s.grant_types = Some(vec!["client_credentials".into()]);
                },
                "grant_types",
                "confidential",
            ),
            (
                "public client with a secret",
                |s| {
                    s.public = true;
                    s.client_secret = Some(SECRET.into());
                },
                "client_secret",
                "Public clients have no secret",
            ),
            ("short secret", |s| s.client_secret = Some("x".repeat(31)), "client_secret", "at least 32"),
            (
                "unknown alg",
                |s| s.id_token_signed_response_alg = Some("HS256".into()),
                "id_token_signed_response_alg",
                "HS256",
            ),
            (
                "backchannel over http",
                |s| s.backchannel_logout_uri = Some("http://rp.example/logout".into()),
                "backchannel_logout_uri",
                "https",
            ),
            (
                "backchannel relative",
                |s| s.backchannel_logout_uri = Some("/logout".into()),
                "backchannel_logout_uri",
                "absolute",
            ),
            (
                "backchannel fragment",
                |s| s.backchannel_logout_uri = Some("https://rp.example/logout#x".into()),
                "backchannel_logout_uri",
                "fragment",
            ),
            (
                "backchannel private-use scheme",
                |s| s.backchannel_logout_uri = Some("com.example.app:/logout".into()),
                "backchannel_logout_uri",
                "https",
            ),
            ("zero access TTL", |s| s.access_token_ttl_seconds = Some(0), "access_token_ttl_seconds", "positive"),
            (
                "negative refresh TTL",
                |s| s.refresh_token_ttl_seconds = Some(-1),
                "refresh_token_ttl_seconds",
                "positive",
            ),
            (
                "TTL over a year",
                |s| s.refresh_token_ttl_seconds = Some(31_536_001),
                "refresh_token_ttl_seconds",
                "one year",
            ),
        ];
        for (what, change, field, fragment) in cases {
            let mut spec = spec();
            change(&mut spec);
            let errors = validate(&spec).expect_err(what);
            assert_eq!(errors.keys().copied().collect::<Vec<_>>(), [*field], "{what}: {errors:?}");
            assert!(errors[field].contains(fragment), "{what}: {:?} lacks {fragment:?}", errors[field]);
        }
    }

    #[test]
    fn validation_accepts_the_allowed_edge_cases() {
        let cases: &[(&str, Change)] = &[
            ("http on localhost", |s| s.redirect_uris = vec!["http://localhost:3000/cb".into()]),
            ("http on 127.0.0.1", |s| s.redirect_uris = vec!["http://127.0.0.1:49152/cb".into()]),
            ("http on [::1]", |s| s.redirect_uris = vec!["http://[::1]:8080/cb".into()]),
            ("private-use scheme", |s| s.redirect_uris = vec!["com.example.app:/oauth2redirect".into()]),
            ("query string", |s| s.redirect_uris = vec!["https://rp.example/cb?tenant=a".into()]),
            ("http anywhere when allowed", |s| {
                s.allow_http_redirect_uris = true;
                s.redirect_uris = vec!["http://rp:3000/cb".into()];
                s.post_logout_redirect_uris = vec!["http://rp:3000/".into()];
            }),
            ("client_credentials without redirect URIs", |s| {
                s.redirect_uris.clear();
                s.grant_types = Some(vec!["client_credentials".into()]);
            }),
            ("a client_id at the limit", |s| s.client_id = Some(format!("app.v1_{}", "x".repeat(57)))),
            ("a 100-character name", |s| s.name = "n".repeat(100)),
            ("openid only", |s| s.allowed_scopes = Some(vec!["openid".into()])),
            ("ES256", |s| s.id_token_signed_response_alg = Some("ES256".into())),
            ("EdDSA", |s| s.id_token_signed_response_alg = Some("EdDSA".into())),
            ("backchannel https", |s| s.backchannel_logout_uri = Some("https://rp.example/logout".into())),
            ("backchannel on loopback", |s| s.backchannel_logout_uri = Some("http://127.0.0.1:9000/logout".into())),
            ("TTL of one second", |s| s.access_token_ttl_seconds = Some(1)),
            ("TTL of one year", |s| s.refresh_token_ttl_seconds = Some(31_536_000)),
            ("a 32-character secret", |s| s.client_secret = Some(SECRET.into())),
            ("a public client", |s| s.public = true),
        ];
        for (what, change) in cases {
            let mut spec = spec();
            change(&mut spec);
            if let Err(errors) = validate(&spec) {
                panic!("{what}: {errors:?}");
            }
        }
    }

    #[test]
    fn duplicate_uris_are_stored_once() {
        let mut spec = spec();
        spec.redirect_uris.push(spec.redirect_uris[0].clone());
        assert_eq!(validate(&spec).unwrap().redirect_uris, ["https://rp.example/cb"]);
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let mut spec = spec();
        spec.post_logout_redirect_uris = vec!["https://rp.example/bye".into()];
        let client = validate(&spec).unwrap().into_client("c".into(), None);
        assert!(client.allows_redirect_uri("https://rp.example/cb"));
        for near_miss in [
            "https://rp.example/cb/",
            "https://rp.example/cb?x=1",
            "https://rp.example/cb#",
            "https://RP.example/cb",
            "https://rp.example:443/cb",
            "https://rp.example/c",
            "https://rp.example/cbx",
            "",
        ] {
            assert!(!client.allows_redirect_uri(near_miss), "{near_miss}");
        }
        assert!(client.allows_post_logout_redirect_uri("https://rp.example/bye"));
        assert!(!client.allows_post_logout_redirect_uri("https://rp.example/bye/"));
        assert!(!client.allows_post_logout_redirect_uri("https://rp.example/cb"));
        assert!(client.allows_grant(GrantType::AuthorizationCode));
        assert!(!client.allows_grant(GrantType::ClientCredentials));
        assert!(client.allows_scope("offline_access"));
        assert!(!client.allows_scope("admin"));
    }

    #[test]
    fn to_spec_validates_back_to_the_same_client() {
        let mut spec = spec();
        spec.allow_http_redirect_uris = true;
        spec.redirect_uris.push("http://rp:3000/cb".into());
        spec.backchannel_logout_uri = Some("https://rp.example/logout".into());
        spec.refresh_token_ttl_seconds = Some(3600);
        spec.id_token_signed_response_alg = Some("EdDSA".into());
        let client = validate(&spec).unwrap().into_client("c".into(), None);
        let again = validate(&client.to_spec()).unwrap().into_client("c".into(), None);
        assert_eq!(again, client);
        assert!(client.to_spec().allow_http_redirect_uris);
    }

    #[test]
    fn secrets_verify_only_the_right_secret_of_a_confidential_client() {
        let secrets = secrets();
        let secret = ClientSecrets::generate();
        assert_eq!(secret.len(), 43);
        let hash = secrets.hash(&secret);
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(ClientSecrets::from_key(b"other key").hash(&secret), hash, "the hash is keyed");

        let mut client = validate(&spec()).unwrap().into_client("c".into(), Some(hash));
        assert!(secrets.verify(&client, &secret));
        assert!(!secrets.verify(&client, &ClientSecrets::generate()));
        assert!(!secrets.verify(&client, &secret[..42]));
        assert!(!secrets.verify(&client, ""));
        assert!(!ClientSecrets::from_key(b"other key").verify(&client, &secret));

        client.public = true;
        assert!(!secrets.verify(&client, &secret), "public clients never authenticate");
        client.public = false;
        client.secret_hash = None;
        assert!(!secrets.verify(&client, &secret));
        assert!(!secrets.verify(&client, ""));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut spec = spec();
        spec.client_secret = Some(SECRET.into());
        assert!(!format!("{spec:?}").contains(SECRET));
        assert!(!format!("{:?}", validate(&spec).unwrap()).contains(SECRET));
        assert!(!format!("{:?}", secrets()).contains("test key"));
    }

    #[tokio::test]
    async fn create_stores_a_confidential_client_with_a_hashed_secret() {
        let (db, secrets) = (db().await, secrets());
        let (client, secret) = create(&db, &secrets, &spec(), now()).await.unwrap();
        let secret = secret.expect("confidential clients get a secret");
        assert_eq!(client.client_id.len(), 22);
        assert!(validate_client_id(&client.client_id).is_ok());
        assert!(secrets.verify(&client, &secret));

        let row = rows::find(&db, &client.client_id).await.unwrap().unwrap();
        assert_eq!(row.secret_hash.as_deref(), Some(secrets.hash(&secret).as_str()));
        assert_eq!((row.created_at, row.updated_at), (now(), now()));
        assert_eq!(Client::from_model(row).unwrap(), client);

        let (other, _) = create(&db, &secrets, &spec(), now()).await.unwrap();
        assert_ne!(other.client_id, client.client_id);
    }

    #[tokio::test]
    async fn create_gives_public_clients_no_secret() {
        let (db, secrets) = (db().await, secrets());
        let spec = ClientSpec { public: true, client_id: Some("spa".into()), ..spec() };
        let (client, secret) = create(&db, &secrets, &spec, now()).await.unwrap();
        assert_eq!((client.client_id.as_str(), secret, client.has_secret()), ("spa", None, false));
        let row = rows::find(&db, "spa").await.unwrap().unwrap();
        assert_eq!(row.secret_hash, None);
        assert_eq!(Client::from_model(row).unwrap(), client);
    }

    #[tokio::test]
    async fn create_refuses_a_taken_client_id_an_operator_secret_and_invalid_specs() {
        let (db, secrets) = (db().await, secrets());
        let spec = ClientSpec { client_id: Some("web".into()), ..spec() };
        create(&db, &secrets, &spec, now()).await.unwrap();
        assert!(matches!(create(&db, &secrets, &spec, now()).await, Err(ClientError::Conflict)));

        let with_secret = ClientSpec { client_id: Some("other".into()), client_secret: Some(SECRET.into()), ..spec };
        match create(&db, &secrets, &with_secret, now()).await {
            Err(ClientError::Invalid(errors)) => {
                assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["client_secret"])
            }
            other => panic!("{other:?}"),
        }
        let invalid = ClientSpec { name: String::new(), ..with_secret };
        match create(&db, &secrets, &invalid, now()).await {
            Err(ClientError::Invalid(errors)) => {
                assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["client_secret", "name"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(rows::list(&db).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn upsert_is_idempotent_and_keeps_the_secret() {
        let (db, secrets) = (db().await, secrets());
        let (client, secret, created) = upsert(&db, &secrets, "web", &spec(), now()).await.unwrap();
        let secret = secret.expect("a confidential client without a secret gets one");
        assert!(created);
        let before = rows::find(&db, "web").await.unwrap().unwrap();

        let (again, no_secret, created) = upsert(&db, &secrets, "web", &spec(), later()).await.unwrap();
        assert_eq!((again, no_secret, created), (client, None, false));
        assert_eq!(rows::find(&db, "web").await.unwrap().unwrap(), before, "nothing written, not even updated_at");

        let renamed = ClientSpec { name: "Renamed".into(), ..spec() };
        let (client, no_secret, _) = upsert(&db, &secrets, "web", &renamed, later()).await.unwrap();
        assert_eq!((client.name.as_str(), no_secret), ("Renamed", None));
        assert!(secrets.verify(&client, &secret), "the existing secret is kept");
        let row = rows::find(&db, "web").await.unwrap().unwrap();
        assert_eq!((row.name.as_str(), row.created_at, row.updated_at), ("Renamed", now(), later()));
    }

    #[tokio::test]
    async fn upsert_replaces_every_field() {
        let (db, secrets) = (db().await, secrets());
        let full = ClientSpec {
            first_party: true,
            post_logout_redirect_uris: vec!["https://rp.example/bye".into()],
            backchannel_logout_uri: Some("https://rp.example/logout".into()),
            access_token_ttl_seconds: Some(60),
            id_token_signed_response_alg: Some("ES256".into()),
            ..spec()
        };
        upsert(&db, &secrets, "web", &full, now()).await.unwrap();
        let (client, ..) = upsert(&db, &secrets, "web", &spec(), later()).await.unwrap();
        let stored = Client::from_model(rows::find(&db, "web").await.unwrap().unwrap()).unwrap();
        assert_eq!(stored, client);
        assert!(!stored.first_party);
        assert!(stored.post_logout_redirect_uris.is_empty());
        assert_eq!((stored.backchannel_logout_uri, stored.access_token_ttl), (None, None));
        assert_eq!(stored.id_token_alg, SigningAlg::RS256);
    }

    #[tokio::test]
    async fn upsert_uses_a_given_secret_and_clears_it_for_public_clients() {
        let (db, secrets) = (db().await, secrets());
        let given = ClientSpec { client_secret: Some(SECRET.into()), ..spec() };
        let (client, generated, _) = upsert(&db, &secrets, "web", &given, now()).await.unwrap();
        assert_eq!(generated, None);
        assert!(secrets.verify(&client, SECRET));

        let public = ClientSpec { public: true, ..spec() };
        let (client, generated, _) = upsert(&db, &secrets, "web", &public, later()).await.unwrap();
        assert_eq!((generated, client.has_secret()), (None, false));
        assert_eq!(rows::find(&db, "web").await.unwrap().unwrap().secret_hash, None);

        let (client, generated, _) = upsert(&db, &secrets, "web", &spec(), later()).await.unwrap();
        assert!(secrets.verify(&client, &generated.expect("confidential again: a fresh secret")));
    }

    #[tokio::test]
    async fn upsert_refuses_a_different_client_id_in_the_spec() {
        let (db, secrets) = (db().await, secrets());
        let spec = ClientSpec { client_id: Some("other".into()), ..spec() };
        match upsert(&db, &secrets, "web", &spec, now()).await {
            Err(ClientError::Invalid(errors)) => assert!(errors["client_id"].contains("'web'")),
            other => panic!("{other:?}"),
        }
        match upsert(&db, &secrets, "bad id", &ClientSpec { client_id: None, ..spec }, now()).await {
            Err(ClientError::Invalid(errors)) => assert!(errors.contains_key("client_id")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn rotate_secret_replaces_the_secret_of_confidential_clients_only() {
        let (db, secrets) = (db().await, secrets());
        let (client, old) = create(&db, &secrets, &spec(), now()).await.unwrap();
        let new = rotate_secret(&db, &secrets, &client.client_id, later()).await.unwrap().unwrap();
        let row = rows::find(&db, &client.client_id).await.unwrap().unwrap();
        assert_eq!(row.updated_at, later());
        let client = Client::from_model(row).unwrap();
        assert!(secrets.verify(&client, &new));
        assert!(!secrets.verify(&client, &old.unwrap()));

        assert_eq!(rotate_secret(&db, &secrets, "nobody", now()).await.unwrap(), None);
        let public = ClientSpec { public: true, client_id: Some("spa".into()), ..spec() };
        create(&db, &secrets, &public, now()).await.unwrap();
        assert!(matches!(rotate_secret(&db, &secrets, "spa", now()).await, Err(ClientError::Invalid(_))));
    }

    /// A temporary file that removes itself.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(contents: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!("latchkey-clients-{}.yaml", crate::random_token()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const FILE: &str = r#"
clients:
  - client_id: web
    name: Web app
    redirect_uris: [https://app.example/callback]
    post_logout_redirect_uris: [https://app.example/]
    client_secret: "0123456789abcdef0123456789abcdef"
    first_party: true
  - client_id: cli
    name: Command line
    public: true
    redirect_uris:
      - http://127.0.0.1/callback
    allowed_scopes: [openid, offline_access]
    grant_types: [authorization_code, refresh_token]
"#;

    #[tokio::test]
    async fn apply_file_upserts_every_client_idempotently() {
        let (db, secrets) = (db().await, secrets());
        let file = TempFile::new(FILE);
        assert_eq!(apply_file(&db, &secrets, &file.0, now()).await.unwrap(), 2);
        let stored = rows::list(&db).await.unwrap();
        assert_eq!(apply_file(&db, &secrets, &file.0, later()).await.unwrap(), 2);
        assert_eq!(rows::list(&db).await.unwrap(), stored, "a second apply changes nothing");

        let web = Client::from_model(rows::find(&db, "web").await.unwrap().unwrap()).unwrap();
        assert!(web.first_party && secrets.verify(&web, SECRET));
        let cli = Client::from_model(rows::find(&db, "cli").await.unwrap().unwrap()).unwrap();
        assert!(cli.public && !cli.has_secret());
        assert_eq!(cli.allowed_scopes, ["offline_access".to_owned(), "openid".to_owned()].into());
    }

    #[tokio::test]
    async fn apply_file_reports_every_problem_and_writes_nothing() {
        let (db, secrets) = (db().await, secrets());
        let file = TempFile::new(
            r#"
clients:
  - client_id: web
    name: Web app
    redirect_uris: [https://app.example/callback]
    client_secret: "0123456789abcdef0123456789abcdef"
  - name: No id
    public: true
    redirect_uris: [https://app.example/callback]
  - client_id: confidential
    name: Confidential without a secret
    redirect_uris: [http://app.example/callback]
  - client_id: web
    name: Twice
    public: true
    redirect_uris: [https://app.example/callback]
"#,
        );
        let error = format!("{:#}", apply_file(&db, &secrets, &file.0, now()).await.unwrap_err());
        for expected in [
            file.0.display().to_string(),
            "clients[1]: client_id: Required".into(),
            "clients[2] (confidential): client_secret: Required".into(),
            "clients[2] (confidential): redirect_uris: 'http://app.example/callback'".into(),
            "clients[3] (web): client_id: 'web' appears more than once".into(),
        ] {
            assert!(error.contains(&expected), "{error} lacks {expected}");
        }
        assert!(!error.contains("clients[0]"), "{error}");
        assert!(rows::list(&db).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn apply_file_refuses_unknown_fields_and_hides_secrets_in_errors() {
        let (db, secrets) = (db().await, secrets());
        let file = TempFile::new(
            r#"
clients:
  - client_id: web
    name: Web app
    client_secret: "a-secret-that-must-not-be-logged-0123"
    redirect_uri: [https://app.example/callback]
"#,
        );
        let error = format!("{:#}", apply_file(&db, &secrets, &file.0, now()).await.unwrap_err());
        assert!(error.contains("redirect_uri"), "{error}");
        assert!(!error.contains("must-not-be-logged"), "{error}");
        let missing = std::env::temp_dir().join("latchkey-no-such-clients-file.yaml");
        assert!(apply_file(&db, &secrets, &missing, now()).await.is_err());
    }
}
