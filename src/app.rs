//! Application state and the server's life cycle: building the state from [`Config`]
//! (database, migrations, generated secrets, ephemeral store), and serving the router on a
//! listener until shutdown. Tests call [`run`] with a listener on port 0.

use std::{future::Future, ops::Deref, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{body::Bytes, extract::FromRef};
use axum_extra::extract::cookie::Key;
use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    carried,
    config::Config,
    ephemeral::{Ephemeral, memory::MemoryStore, redis::RedisStore},
    mail::Mailer,
    oidc::{
        clients::{self, ClientCache, ClientSecrets},
        discovery,
        keys::SigningKeys,
    },
    passkey::PasskeyService,
    session::SessionPolicy,
    store::{self, group_commit::GroupCommit, kept::KeptConnections},
};

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// The parts of [`AppState`].
pub struct AppInner {
    pub config: Config,
    pub db: DatabaseConnection,
    /// The same database for the login and token paths' single statements, over PostgreSQL
    /// connections kept between them ([`store::kept`]).
    pub hot_path: KeptConnections,
    /// Write transactions that go to SQLite as scripts, committed in groups.
    pub writes: GroupCommit,
    pub ephemeral: Ephemeral,
    pub passkeys: PasskeyService,
    /// Encrypts and signs cookies (the remembered user).
    pub cookie_key: Key,
    /// Keys CSRF tokens to the browser's CSRF cookie.
    pub csrf_key: Vec<u8>,
    /// Signs the ceremonies browsers carry (`passkey::ceremony`).
    pub ceremony_key: Vec<u8>,
    /// Signs the pending authorization requests browsers carry ([`crate::oidc::pending`]).
    pub pending_key: Vec<u8>,
    /// Token-signing keys, shared with every replica through the database.
    pub signing_keys: Arc<SigningKeys>,
    pub client_secrets: ClientSecrets,
    /// Registered clients, read through a short-lived cache.
    pub clients: ClientCache,
    /// The discovery document, serialised once, and its ETag.
    pub discovery: (Bytes, String),
    /// Outgoing HTTP (back-channel logout), with short timeouts.
    pub http: reqwest::Client,
    pub mailer: Mailer,
    issuer: String,
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Key {
        state.cookie_key.clone()
    }
}

impl AppState {
    /// Connects to the stores, applies migrations and loads (or creates) the instance secrets.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.admin_token.is_none() {
            tracing::info!("admin API off: LATCHKEY_ADMIN_TOKEN is not set, so every /admin/v1 path answers 404");
        }
        // Install the metrics recorder before anything is counted.
        crate::observe::prometheus();
        let db = store::connect_with(&config.database_url, config.database_max_connections)
            .await
            .context("connecting to the database")?;
        store::migrate(&db).await.context("applying database migrations")?;
        let ephemeral = match &config.redis_url {
            Some(url) => Ephemeral::new(Arc::new(
                RedisStore::connect(url, &config.redis_prefix).await.context("connecting to Redis")?,
            )),
            None => Ephemeral::new(Arc::new(MemoryStore::with_max_entries(config.memory_store_max_entries))),
        };
        let cookie_key = store::settings::get_or_create_secret(&db, "cookie_key", 64).await?;
        let csrf_key = store::settings::get_or_create_secret(&db, "csrf_key", 32).await?;
        let ceremony_key = store::settings::get_or_create_secret(&db, "ceremony_key", 32).await?;
        let decoy_key = store::settings::get_or_create_secret(&db, "decoy_credential_key", 32).await?;
        let passkeys = PasskeyService::new(&config.issuer, config.rp_id(), decoy_key)
            .context("configuring WebAuthn from LATCHKEY_ISSUER")?;
        let issuer = config.issuer.as_str().trim_end_matches('/').to_owned();
        let signing_keys =
            Arc::new(SigningKeys::load_or_create(&db, Utc::now()).await.context("loading signing keys")?);
        signing_keys.spawn_reloader(db.clone(), config.key_reload_interval);
        let client_secrets = ClientSecrets::load(&db).await?;
        if let Some(path) = &config.clients_file {
            let applied = clients::apply_file(&db, &client_secrets, path, Utc::now()).await?;
            tracing::info!(clients = applied, file = %path.display(), "declarative clients applied");
        }
        let discovery = discovery::document(&issuer)?;
        let etag = format!("\"{}\"", &crate::random_token()[..16]);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("building the HTTP client")?;
        let (config_smtp, config_from) = (config.smtp_url.clone(), config.mail_from.clone());
        let hot_path = KeptConnections::new(db.clone());
        Ok(AppState(Arc::new(AppInner {
            config,
            writes: GroupCommit::new(hot_path.clone()),
            hot_path,
            db,
            ephemeral,
            passkeys,
            cookie_key: Key::from(&cookie_key),
            csrf_key,
            pending_key: carried::derive_key(&ceremony_key, "pending authorization request"),
            ceremony_key,
            signing_keys,
            client_secrets,
            clients: ClientCache::default(),
            discovery: (Bytes::from(discovery), etag),
            http,
            mailer: Mailer::new(config_smtp.as_deref(), &config_from)?,
            issuer,
        })))
    }

    /// The issuer identifier: `LATCHKEY_ISSUER` without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Session lifetimes from the configuration.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy { idle_timeout: self.config.session_idle_timeout, max_age: self.config.session_max_age }
    }
}

/// Serves Latchkey on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (grace, header_timeout) = (config.shutdown_grace, config.header_read_timeout);
    let state = AppState::build(config).await?;
    let router = crate::http::router(state);
    tracing::info!(address = %listener.local_addr()?, "Latchkey is listening");
    crate::serve::serve(listener, router, header_timeout, grace, shutdown).await;
    Ok(())
}
