//! Token-signing keys: generating and storing them, the published JWK set, signing and
//! verifying Latchkey's own JWSs, `at_hash`/`c_hash`, and rotation. Claims, issuers and
//! audiences are the callers' business; this module only answers "which key, and is the
//! signature good".
//!
//! Lifecycle of a key (one row of `signing_keys`):
//! - **next**: created, already published in JWKS, not yet signing (`activates_at` in the future),
//!   so relying parties can fetch it before they meet a token it signed;
//! - **active**: the newest key of its algorithm with `activates_at <= now` and not retired: it
//!   signs everything of that algorithm;
//! - **retired**: `retired_at <= now`; it signs nothing but stays published for the *publication
//!   window* so the tokens it signed still verify, then drops out of JWKS (the row stays).
//!
//! Decisions:
//! - **Publication window.** [`SigningKeys::rotate`] persists its `keep_after` in the `settings`
//!   table, so every replica drops retired keys at the same instant; the latest rotation's window
//!   applies to every retired key. Until a rotation records one, [`DEFAULT_RETIRED_PUBLISHED_FOR`]
//!   applies (only keys retired by hand can meet it).
//! - **Kids.** The first key of each algorithm has a fixed kid (`rs256-initial`, `es256-initial`,
//!   `eddsa-initial`) inserted with `ON CONFLICT DO NOTHING`, so replicas starting together against
//!   one database converge on the same key. Rotated keys get `<alg>-<16 random base64url chars>`.
//! - **Replicas.** Each replica holds a snapshot (parsed keys, JWKS bytes, ETag) and re-reads the
//!   table on a timer ([`SigningKeys::spawn_reloader`]); `publish_ahead` must exceed that interval
//!   plus relying parties' JWKS caching, or a replica could meet a token from a key it has not
//!   loaded yet. Signing chooses the active key at the caller's `now`, so a "next" key starts
//!   signing on time without a reload.
//! - **Expiry.** [`SigningKeys::verify`] requires `exp` and compares it with the injected `now`
//!   with no leeway: every replica issuing and checking these tokens runs on synchronised clocks.
//!   [`SigningKeys::verify_ignoring_expiry`] skips it, for `id_token_hint` only.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use anyhow::Context;
use axum::body::Bytes;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::signing_key;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use openidconnect::{
    JsonWebKeyId,
    core::{CoreJsonCurveType, CoreJsonWebKey, CoreJsonWebKeySet},
};
use rand::RngCore;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::SigningAlg;
use crate::store::signing_keys as store;

/// How long retired keys stay published when no rotation has recorded a window.
pub const DEFAULT_RETIRED_PUBLISHED_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest reload interval [`SigningKeys::spawn_reloader`] accepts.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// RSA modulus size for new RS256 keys.
const RSA_BITS: usize = 2048;

/// Latchkey's signing keys: a snapshot of the published keys, swapped whole on reload, so
/// signing and verifying only take a read lock long enough to clone an `Arc`.
pub struct SigningKeys {
    current: RwLock<Arc<Snapshot>>,
    /// Serialises reloads, so a slow reload cannot overwrite a newer snapshot.
    reloading: tokio::sync::Mutex<()>,
}

/// Why a token failed [`SigningKeys::verify`]. Messages are safe to show; they carry no key
/// material or token content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS with a JSON header and payload (this includes `alg: none`).
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    /// The header names no kid, or one that is not published.
    #[error("the token was not signed by a published key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key its `kid` names.
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// The header's `typ` is not the one expected.
    #[error("the token is not of the expected type")]
    WrongType,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` is not after `now`.
    #[error("the token has expired")]
    Expired,
}

/// A key's state at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signs tokens of its algorithm.
    Active,
    /// Signs nothing; published until its publication window ends.
    Retired,
}

/// One key as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The JWK `kid`.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: SigningAlg,
    /// When it was generated.
    pub created_at: DateTime<Utc>,
    /// When it starts (or started) signing.
    pub activates_at: DateTime<Utc>,
    /// When it stops (or stopped) signing.
    pub retired_at: Option<DateTime<Utc>>,
    /// Its state at the `now` passed to [`SigningKeys::list`].
    pub state: KeyState,
    /// Whether it is in JWKS at that `now`.
    pub published: bool,
}

/// Everything loaded at one reload.
struct Snapshot {
    /// Every row, in the order [`store::all`] returns them.
    rows: Vec<KeyMeta>,
    /// Published keys, in JWKS order (active first).
    published: Vec<PublishedKey>,
    retired_published_for: chrono::Duration,
    jwks: Bytes,
    etag: String,
}

/// A row without its private key.
#[derive(Clone, Debug)]
struct KeyMeta {
    kid: String,
    alg: SigningAlg,
    created_at: DateTime<Utc>,
    activates_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

/// A published key with its parsed material.
struct PublishedKey {
    meta: KeyMeta,
    material: Arc<Material>,
}

/// What signing and verifying with one key needs, parsed once. Rows never change except
/// `retired_at`, so reloads reuse this by kid.
struct Material {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    jwk: CoreJsonWebKey,
}

impl SigningKeys {
    /// Loads every key from the database, first creating the initial key of each algorithm that
    /// has no key at all (retired ones included). Safe when several replicas start at once against one database: the initial
    /// keys have fixed kids and are inserted with `ON CONFLICT DO NOTHING`, then read back.
    pub async fn load_or_create(db: &DatabaseConnection, now: DateTime<Utc>) -> anyhow::Result<Self> {
        for alg in SigningAlg::ALL {
            create_initial_if_none(db, alg, now).await?;
        }
        let snapshot = Snapshot::load(db, now, None).await?;
        Ok(Self { current: RwLock::new(Arc::new(snapshot)), reloading: tokio::sync::Mutex::new(()) })
    }

    /// Re-reads keys from the database (rotations done by another replica) and rebuilds JWKS.
    /// On error the previous snapshot stays in use.
    pub async fn reload(&self, db: &DatabaseConnection, now: DateTime<Utc>) -> anyhow::Result<()> {
        let _serialised = self.reloading.lock().await;
        let next = Snapshot::load(db, now, Some(&self.snapshot())).await?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(())
    }

    /// Spawns a task that calls [`reload`](Self::reload) every `interval` (at least one second);
    /// failures are logged and the previous keys kept. The task ends once `self` is dropped.
    pub fn spawn_reloader(self: &Arc<Self>, db: DatabaseConnection, interval: Duration) -> tokio::task::JoinHandle<()> {
        let keys = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(MIN_RELOAD_INTERVAL));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // The first tick is immediate, and the keys were just loaded.
            loop {
                ticks.tick().await;
                let Some(keys) = keys.upgrade() else { return };
                if let Err(error) = keys.reload(&db, Utc::now()).await {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "reloading signing keys failed; keeping the loaded ones"
                    );
                }
            }
        })
    }

    /// The JWK set (`{"keys":[…]}`, active keys first, each with `kid`, `alg` and `use: sig`)
    /// and its strong ETag, both computed at the last load.
    pub fn jwks(&self) -> (Bytes, String) {
        let snapshot = self.snapshot();
        (snapshot.jwks.clone(), snapshot.etag.clone())
    }

    /// Signs `claims` as a compact JWS with the key of `alg` active at `now`. The header carries
    /// `alg`, `kid`, and `typ` when given (`"JWT"`, `"at+jwt"`, `"logout+jwt"`, …).
    pub fn sign<T: Serialize>(
        &self,
        alg: SigningAlg,
        typ: Option<&str>,
        claims: &T,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let snapshot = self.snapshot();
        let key = signer(&snapshot.published, alg, now).with_context(|| format!("no {alg} signing key is active"))?;
        let mut header = Header::new(jwt_alg(alg));
        header.typ = typ.map(str::to_owned);
        header.kid = Some(key.meta.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.material.encoding).with_context(|| format!("signing with {alg}"))
    }

    /// Verifies a JWS Latchkey signed and returns its claims. The `kid` must name a key
    /// published at `now` and the header `alg` must be that key's (so `alg: none`, HS256 keyed with a public
    /// key, and algorithm swaps all fail); `typ` must match `expected_typ` when given (RFC 7515
    /// §4.1.9: case-insensitive, `application/` optional); `exp` is required and must be after
    /// `now`. `iss` and `aud` are NOT checked: callers do.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<T, TokenError> {
        let claims = self.verified_claims(token, expected_typ, now)?;
        check_expiry(&claims, now)?;
        serde_json::from_value(Value::Object(claims)).map_err(|_| TokenError::Malformed)
    }

    /// Like [`verify`](Self::verify) without the `typ` and `exp` checks: for `id_token_hint`,
    /// which RP-Initiated Logout 1.0 §2 accepts after the ID token has expired. The key must
    /// still be published at `now`.
    pub fn verify_ignoring_expiry<T: DeserializeOwned>(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<T, TokenError> {
        let claims = self.verified_claims(token, None, now)?;
        serde_json::from_value(Value::Object(claims)).map_err(|_| TokenError::Malformed)
    }

    /// Header, key and signature checks shared by the `verify*` methods.
    fn verified_claims(
        &self,
        token: &str,
        expected_typ: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let snapshot = self.snapshot();
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = snapshot.published_key(kid, now).ok_or(TokenError::UnknownKey)?;
        if header.alg != jwt_alg(key.meta.alg) {
            return Err(TokenError::AlgorithmMismatch);
        }
        check_type(header.typ.as_deref(), expected_typ)?;
        let material = &key.material;
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(token, &material.decoding, &material.validation);
        Ok(decoded.map_err(signature_error)?.claims)
    }

    /// Rotation: creates a new key per algorithm, published at once and signing from
    /// `now + publish_ahead`; every older key of that algorithm is retired at that same instant
    /// and stays published `keep_after` longer, so tokens it signed still verify. Then reloads.
    /// Two rotations racing on different replicas leave one extra published key per algorithm
    /// until the next rotation retires it.
    pub async fn rotate(
        &self,
        db: &DatabaseConnection,
        now: DateTime<Utc>,
        publish_ahead: Duration,
        keep_after: Duration,
    ) -> anyhow::Result<()> {
        let activates_at = chrono::Duration::from_std(publish_ahead)
            .ok()
            .and_then(|ahead| now.checked_add_signed(ahead))
            .context("publish_ahead is too long")?;
        let keep_after = chrono::Duration::from_std(keep_after).context("keep_after is too long")?.num_seconds();
        let mut fresh = Vec::with_capacity(SigningAlg::ALL.len());
        for alg in SigningAlg::ALL {
            fresh.push(new_row(random_kid(alg), alg, generate_pem(alg).await?, now, activates_at));
        }
        let txn = db.begin().await?;
        for key in fresh {
            store::retire_all(&txn, &key.alg, activates_at).await?;
            store::insert(&txn, key).await?;
        }
        store::set_retired_published_for(&txn, keep_after).await?;
        txn.commit().await?;
        self.reload(db, now).await
    }

    /// Every stored key (oldest activation first) with its state at `now`, including keys
    /// no longer published.
    pub fn list(&self, now: DateTime<Utc>) -> Vec<KeyInfo> {
        let snapshot = self.snapshot();
        let rows = &snapshot.rows;
        rows.iter()
            .map(|meta| KeyInfo {
                kid: meta.kid.clone(),
                alg: meta.alg,
                created_at: meta.created_at,
                activates_at: meta.activates_at,
                retired_at: meta.retired_at,
                state: meta.state(rows, now),
                published: meta.published(now, snapshot.retired_published_for),
            })
            .collect()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// OIDC Core §3.1.3.6 `at_hash` (and §3.3.2.11 `c_hash`): base64url of the left half of the
/// hash of the ASCII token, with the hash of the signing algorithm: SHA-256 for RS256 and
/// ES256, SHA-512 for EdDSA over Ed25519 (as `openidconnect`'s verifier computes it).
pub fn token_hash(alg: SigningAlg, token: &str) -> String {
    let digest = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => Sha256::digest(token).to_vec(),
        SigningAlg::EdDSA => Sha512::digest(token).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

impl Snapshot {
    /// Reads every row and builds a snapshot, reusing `previous`'s parsed keys.
    async fn load(db: &DatabaseConnection, now: DateTime<Utc>, previous: Option<&Snapshot>) -> anyhow::Result<Self> {
        let rows = store::all(db).await.context("reading signing keys")?;
        let retired_published_for = match store::retired_published_for(db).await? {
            Some(seconds) => chrono::Duration::try_seconds(seconds).context("retired-key window out of range")?,
            None => chrono::Duration::from_std(DEFAULT_RETIRED_PUBLISHED_FOR)?,
        };
        Self::build(rows, retired_published_for, now, previous)
    }

    fn build(
        rows: Vec<signing_key::Model>,
        retired_published_for: chrono::Duration,
        now: DateTime<Utc>,
        previous: Option<&Snapshot>,
    ) -> anyhow::Result<Self> {
        let cache: HashMap<&str, &Arc<Material>> =
            previous.iter().flat_map(|p| &p.published).map(|k| (k.meta.kid.as_str(), &k.material)).collect();
        let mut metas = Vec::with_capacity(rows.len());
        let mut published = Vec::new();
        for row in rows {
            let meta = KeyMeta::from_row(&row)?;
            if meta.published(now, retired_published_for) {
                let material = match cache.get(meta.kid.as_str()) {
                    Some(material) => Arc::clone(material),
                    None => Arc::new(Material::from_pem(meta.alg, &meta.kid, &row.private_pem)?),
                };
                published.push(PublishedKey { meta: meta.clone(), material });
            }
            metas.push(meta);
        }
        sort_for_jwks(&mut published, now);
        let (jwks, etag) = jwks_document(&published)?;
        Ok(Self { rows: metas, published, retired_published_for, jwks, etag })
    }

    /// The key named `kid`, if loaded and still published at `now` (between reloads a retired
    /// key's window can end).
    fn published_key(&self, kid: &str, now: DateTime<Utc>) -> Option<&PublishedKey> {
        self.published.iter().find(|key| key.meta.kid == kid && key.meta.published(now, self.retired_published_for))
    }
}

impl KeyMeta {
    fn from_row(row: &signing_key::Model) -> anyhow::Result<Self> {
        Ok(Self {
            kid: row.kid.clone(),
            alg: row.alg.parse().map_err(|e| anyhow::anyhow!("signing key {}: {e}", row.kid))?,
            created_at: row.created_at,
            activates_at: row.activates_at,
            retired_at: row.retired_at,
        })
    }

    fn may_sign(&self, now: DateTime<Utc>) -> bool {
        self.activates_at <= now && self.retired_at.is_none_or(|retired| retired > now)
    }

    fn published(&self, now: DateTime<Utc>, retired_published_for: chrono::Duration) -> bool {
        match self.retired_at {
            None => true,
            // A window end so far off that it overflows never comes.
            Some(retired) => retired.checked_add_signed(retired_published_for).is_none_or(|until| now < until),
        }
    }

    /// The state among `all` keys at `now`. A key retired before it would have activated, or
    /// superseded by a newer active key, counts as retired.
    fn state(&self, all: &[KeyMeta], now: DateTime<Utc>) -> KeyState {
        let never_signs = self.retired_at.is_some_and(|retired| retired <= now || retired <= self.activates_at);
        if never_signs {
            KeyState::Retired
        } else if self.activates_at > now {
            KeyState::Next
        } else if signer(all, self.alg, now).is_some_and(|active| active.kid == self.kid) {
            KeyState::Active
        } else {
            KeyState::Retired
        }
    }
}

impl AsRef<KeyMeta> for KeyMeta {
    fn as_ref(&self) -> &KeyMeta {
        self
    }
}

impl AsRef<KeyMeta> for PublishedKey {
    fn as_ref(&self) -> &KeyMeta {
        &self.meta
    }
}

/// The key that signs `alg` at `now`: the newest allowed to (ties broken by kid).
fn signer<K: AsRef<KeyMeta>>(keys: &[K], alg: SigningAlg, now: DateTime<Utc>) -> Option<&K> {
    keys.iter()
        .filter(|key| key.as_ref().alg == alg && key.as_ref().may_sign(now))
        .max_by(|a, b| (a.as_ref().activates_at, &a.as_ref().kid).cmp(&(b.as_ref().activates_at, &b.as_ref().kid)))
}

/// Active keys first, then next, then retired; by algorithm, newest first within each.
fn sort_for_jwks(keys: &mut [PublishedKey], now: DateTime<Utc>) {
    let active: Vec<String> =
        SigningAlg::ALL.into_iter().filter_map(|alg| signer(keys, alg, now)).map(|k| k.meta.kid.clone()).collect();
    keys.sort_by_key(|key| {
        let rank = if active.contains(&key.meta.kid) {
            0
        } else if key.meta.activates_at > now {
            1
        } else {
            2
        };
        (rank, key.meta.alg, std::cmp::Reverse(key.meta.activates_at))
    });
}

/// The JWKS bytes and a strong ETag over them (RFC 9110 §8.8.3).
fn jwks_document(keys: &[PublishedKey]) -> anyhow::Result<(Bytes, String)> {
    let set = CoreJsonWebKeySet::new(keys.iter().map(|key| key.material.jwk.clone()).collect());
    let bytes = serde_json::to_vec(&set).context("serialising JWKS")?;
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&Sha256::digest(&bytes)[..16]));
    Ok((Bytes::from(bytes), etag))
}

impl Material {
    fn from_pem(alg: SigningAlg, kid: &str, pem: &str) -> anyhow::Result<Self> {
        let kid_value = Some(JsonWebKeyId::new(kid.to_owned()));
        let (encoding, decoding, jwk) = match alg {
            SigningAlg::RS256 => rsa_parts(pem, kid_value),
            SigningAlg::ES256 => p256_parts(pem, kid_value),
            SigningAlg::EdDSA => ed25519_parts(pem, kid_value),
        }
        .with_context(|| format!("signing key {kid} is not a valid {alg} private key"))?;
        Ok(Self { encoding, decoding, validation: signature_only(jwt_alg(alg)), jwk: with_alg(jwk, alg)? })
    }
}

type Parts = (EncodingKey, DecodingKey, CoreJsonWebKey);

fn rsa_parts(pem: &str, kid: Option<JsonWebKeyId>) -> anyhow::Result<Parts> {
    use rsa::{pkcs1::DecodeRsaPrivateKey, traits::PublicKeyParts};
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)?;
    let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
    let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
    Ok((EncodingKey::from_rsa_pem(pem.as_bytes())?, decoding, CoreJsonWebKey::new_rsa(n, e, kid)))
}

fn p256_parts(pem: &str, kid: Option<JsonWebKeyId>) -> anyhow::Result<Parts> {
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem)?;
    let point = key.verifying_key().to_encoded_point(false);
    let (x, y) = point.x().zip(point.y()).context("an uncompressed point has both coordinates")?;
    // jsonwebtoken's EC "DER" verification key is the SEC1 point, as its from_ec_components builds.
    let decoding = DecodingKey::from_ec_der(point.as_bytes());
    let jwk = CoreJsonWebKey::new_ec(x.to_vec(), y.to_vec(), CoreJsonCurveType::P256, kid);
    Ok((EncodingKey::from_ec_pem(pem.as_bytes())?, decoding, jwk))
}

fn ed25519_parts(pem: &str, kid: Option<JsonWebKeyId>) -> anyhow::Result<Parts> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)?;
    let public = key.verifying_key().to_bytes();
    // As for EC, jsonwebtoken's Ed25519 "DER" verification key is the raw 32-byte public key.
    let decoding = DecodingKey::from_ed_der(&public);
    let jwk = CoreJsonWebKey::new_okp(public.to_vec(), CoreJsonCurveType::Ed25519, kid);
    Ok((EncodingKey::from_ed_pem(pem.as_bytes())?, decoding, jwk))
}

/// `CoreJsonWebKey` has no setter for `alg` (RFC 7517 §4.4), so the key takes one trip through
/// JSON to gain it; parsing it back proves `openidconnect` understands the result.
fn with_alg(jwk: CoreJsonWebKey, alg: SigningAlg) -> anyhow::Result<CoreJsonWebKey> {
    let mut value = serde_json::to_value(jwk)?;
    value.as_object_mut().context("a JWK is a JSON object")?.insert("alg".into(), alg.as_str().into());
    Ok(serde_json::from_value(value)?)
}

/// A validation that checks the signature only: `exp` is checked against the injected `now`
/// (jsonwebtoken would read the system clock), `iss`/`aud` by the callers.
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation
}

fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

fn check_type(typ: Option<&str>, expected: Option<&str>) -> Result<(), TokenError> {
    match (typ, expected) {
        (_, None) => Ok(()),
        (Some(typ), Some(expected)) if media_type(typ).eq_ignore_ascii_case(media_type(expected)) => Ok(()),
        _ => Err(TokenError::WrongType),
    }
}

/// A `typ` without its optional `application/` prefix (RFC 7515 §4.1.9).
fn media_type(typ: &str) -> &str {
    const PREFIX: &str = "application/";
    match typ.get(..PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    }
}

fn check_expiry(claims: &Map<String, Value>, now: DateTime<Utc>) -> Result<(), TokenError> {
    let exp = claims.get("exp").and_then(Value::as_f64).ok_or(TokenError::Malformed)?;
    if (now.timestamp() as f64) < exp { Ok(()) } else { Err(TokenError::Expired) }
}

fn signature_error(error: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            TokenError::Malformed
        }
        _ => TokenError::BadSignature,
    }
}

async fn create_initial_if_none(db: &DatabaseConnection, alg: SigningAlg, now: DateTime<Utc>) -> anyhow::Result<()> {
    if store::exists_for_alg(db, alg.as_str()).await? {
        return Ok(());
    }
    let key = new_row(initial_kid(alg), alg, generate_pem(alg).await?, now, now);
    store::insert_if_absent(db, key).await.with_context(|| format!("storing the initial {alg} key"))
}

fn new_row(
    kid: String,
    alg: SigningAlg,
    private_pem: String,
    created_at: DateTime<Utc>,
    activates_at: DateTime<Utc>,
) -> signing_key::Model {
    signing_key::Model { kid, alg: alg.as_str().to_owned(), private_pem, created_at, activates_at, retired_at: None }
}

fn initial_kid(alg: SigningAlg) -> String {
    format!("{}-initial", alg.as_str().to_ascii_lowercase())
}

fn random_kid(alg: SigningAlg) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("{}-{}", alg.as_str().to_ascii_lowercase(), URL_SAFE_NO_PAD.encode(bytes))
}

/// Generates a private key off the async runtime (RSA takes tens of milliseconds or more).
async fn generate_pem(alg: SigningAlg) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || generate_pem_blocking(alg)).await.context("key generation task")?
}

/// A fresh private key as PEM: PKCS#1 for RSA (what `openidconnect` also loads), PKCS#8 v1
/// (without the optional public key, which some parsers reject) for P-256 and Ed25519.
fn generate_pem_blocking(alg: SigningAlg) -> anyhow::Result<String> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::{pkcs1::EncodeRsaPrivateKey, rand_core::OsRng};
    let pem = match alg {
        SigningAlg::RS256 => rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)?.to_pkcs1_pem(LineEnding::LF)?,
        SigningAlg::ES256 => p256::ecdsa::SigningKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF)?,
        SigningAlg::EdDSA => {
            let secret_key = ed25519_dalek::SigningKey::generate(&mut OsRng).to_bytes();
            ed25519_dalek::pkcs8::KeypairBytes { secret_key, public_key: None }.to_pkcs8_pem(LineEnding::LF)?
        }
    };
    Ok(pem.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use jsonwebtoken::EncodingKey;
    use openidconnect::{
        AccessToken, AccessTokenHash, ClientId, IssuerUrl, JsonWebKey, Nonce,
        core::{CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm},
    };
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://id.example.com";
    const CLIENT: &str = "client-1";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn minutes(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    async fn fresh_db() -> DatabaseConnection {
        let db = crate::store::connect("sqlite::memory:").await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        db
    }

    fn claims(now: DateTime<Utc>, expires_in: i64) -> Value {
        json!({
            "iss": ISSUER, "sub": "user-1", "aud": CLIENT,
            "iat": now.timestamp(), "exp": now.timestamp() + expires_in,
        })
    }

    fn core_alg(alg: SigningAlg) -> CoreJwsSigningAlgorithm {
        match alg {
            SigningAlg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            SigningAlg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            SigningAlg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
        }
    }

    fn published_set(keys: &SigningKeys) -> CoreJsonWebKeySet {
        serde_json::from_slice(&keys.jwks().0).unwrap()
    }

    fn published_kids(keys: &SigningKeys) -> Vec<String> {
        let jwks: Value = serde_json::from_slice(&keys.jwks().0).unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }

    fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// Signs with the loaded private key of `kid`, but with whatever header the test wants.
    fn sign_raw(keys: &SigningKeys, kid: &str, header: &Header, claims: &Value) -> String {
        let snapshot = keys.snapshot();
        let key = snapshot.published_key(kid, t0()).unwrap();
        jsonwebtoken::encode(header, claims, &key.material.encoding).unwrap()
    }

    #[tokio::test]
    async fn jwks_lists_each_algorithm_once_with_alg_and_use() {
        let keys = SigningKeys::load_or_create(&fresh_db().await, t0()).await.unwrap();
        let (bytes, etag) = keys.jwks();
        let jwks: Value = serde_json::from_slice(&bytes).unwrap();
        let found: Vec<(&str, &str, &str, &str)> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["kid"].as_str().unwrap(),
                    k["alg"].as_str().unwrap(),
                    k["use"].as_str().unwrap(),
                    k["kty"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("rs256-initial", "RS256", "sig", "RSA"),
                ("es256-initial", "ES256", "sig", "EC"),
                ("eddsa-initial", "EdDSA", "sig", "OKP")
            ]
        );
        assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "no private parts");
        assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
        assert_eq!(published_set(&keys).keys().len(), 3, "openidconnect understands every key");
    }

    #[tokio::test]
    async fn tokens_of_every_algorithm_verify_with_openidconnect() {
        let now = t0();
        let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
        for alg in SigningAlg::ALL {
            let token = keys.sign(alg, Some("JWT"), &claims(now, 600), now).unwrap();
            let id_token: CoreIdToken = token.parse().unwrap();
            let issuer = IssuerUrl::new(ISSUER.to_owned()).unwrap();
            let verifier =
                CoreIdTokenVerifier::new_public_client(ClientId::new(CLIENT.into()), issuer, published_set(&keys))
                    .set_allowed_algs([core_alg(alg)])
                    .set_time_fn(move || now);
            let verified = id_token.claims(&verifier, |_: Option<&Nonce>| -> Result<(), String> { Ok(()) });
            assert_eq!(verified.unwrap().subject().as_str(), "user-1", "{alg}");
            let ours: Value = keys.verify(&token, Some("JWT"), now).unwrap();
            assert_eq!(ours["sub"], "user-1");
        }
    }

    #[tokio::test]
    async fn token_hash_matches_openidconnect() {
        let keys = SigningKeys::load_or_create(&fresh_db().await, t0()).await.unwrap();
        let set = published_set(&keys);
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        for alg in SigningAlg::ALL {
            let kid = initial_kid(alg);
            let jwk = set.keys().iter().find(|k| k.key_id().map(|id| id.as_str()) == Some(kid.as_str())).unwrap();
            let expected = AccessTokenHash::from_token(&AccessToken::new(token.into()), &core_alg(alg), jwk).unwrap();
            assert_eq!(token_hash(alg, token), *expected, "{alg}");
        }
        // OIDC Core §3.1.3.6: the left half of a 256-bit hash is 16 bytes, 22 base64url chars.
        assert_eq!(token_hash(SigningAlg::RS256, token).len(), 22);
        assert_eq!(token_hash(SigningAlg::EdDSA, token).len(), 43);
    }

    #[tokio::test]
    async fn forged_and_misused_tokens_fail() {
        let now = t0();
        let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
        let body = claims(now, 600);
        let verify = |token: &str| keys.verify::<Value>(token, None, now).map(|_| ());
        let good = keys.sign(SigningAlg::RS256, None, &body, now).unwrap();
        assert_eq!(verify(&good), Ok(()));

        let none = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "rs256-initial"})), b64(&body));
        assert_eq!(verify(&none), Err(TokenError::Malformed));
        assert_eq!(verify("not-a-jwt"), Err(TokenError::Malformed));

        // HS256 keyed with the RSA public key, in both PEM forms a naive verifier might use.
        let public = rsa_public_key(&published_set(&keys).keys()[0]);
        for pem in public_pems(&public) {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("rs256-initial".into());
            let forged = jsonwebtoken::encode(&header, &body, &EncodingKey::from_secret(pem.as_bytes())).unwrap();
            assert_eq!(verify(&forged), Err(TokenError::AlgorithmMismatch));
        }

        // Algorithm swap: a real ES256 signature presented under the RS256 key's kid.
        let mut swapped = Header::new(Algorithm::ES256);
        swapped.kid = Some("rs256-initial".into());
        assert_eq!(verify(&sign_raw(&keys, "es256-initial", &swapped, &body)), Err(TokenError::AlgorithmMismatch));

        let mut unknown = Header::new(Algorithm::RS256);
        unknown.kid = Some("rs256-somewhere-else".into());
        assert_eq!(verify(&sign_raw(&keys, "rs256-initial", &unknown, &body)), Err(TokenError::UnknownKey));
        let kidless = Header::new(Algorithm::RS256);
        assert_eq!(verify(&sign_raw(&keys, "rs256-initial", &kidless, &body)), Err(TokenError::UnknownKey));

        let [header, _, signature] = good.split('.').collect::<Vec<_>>()[..] else { panic!("three parts") };
        let mut admin = body.clone();
        admin["sub"] = "admin".into();
        let tampered = format!("{header}.{}.{signature}", b64(&admin));
        assert_eq!(verify(&tampered), Err(TokenError::BadSignature));
        let flipped =
            if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
        assert_eq!(verify(&format!("{}.{flipped}", good.rsplit_once('.').unwrap().0)), Err(TokenError::BadSignature));
    }

    fn rsa_public_key(jwk: &CoreJsonWebKey) -> rsa::RsaPublicKey {
        let value = serde_json::to_value(jwk).unwrap();
        let part =
            |name: &str| rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(value[name].as_str().unwrap()).unwrap());
        rsa::RsaPublicKey::new(part("n"), part("e")).unwrap()
    }

    fn public_pems(key: &rsa::RsaPublicKey) -> [String; 2] {
        use rsa::{pkcs1::EncodeRsaPublicKey, pkcs8::EncodePublicKey};
        let line = rsa::pkcs8::LineEnding::LF;
        [key.to_pkcs1_pem(line).unwrap(), key.to_public_key_pem(line).unwrap()]
    }

    #[tokio::test]
    async fn expiry_is_checked_against_the_given_now_without_leeway() {
        let now = t0();
        let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
        for alg in SigningAlg::ALL {
            let token = keys.sign(alg, None, &claims(now, 60), now).unwrap();
            assert!(keys.verify::<Value>(&token, None, now + chrono::Duration::seconds(59)).is_ok());
            assert_eq!(
                keys.verify::<Value>(&token, None, now + chrono::Duration::seconds(60)),
                Err(TokenError::Expired)
            );
        }
        let expired = keys.sign(SigningAlg::RS256, Some("JWT"), &claims(now, 60), now).unwrap();
        let late = now + chrono::Duration::days(1);
        let hint: Value = keys.verify_ignoring_expiry(&expired, late).unwrap();
        assert_eq!(hint["sub"], "user-1", "an expired id_token_hint is still recognised");
        let forged = format!("{}.{}", expired.rsplit_once('.').unwrap().0, "AAAA");
        assert_eq!(keys.verify_ignoring_expiry::<Value>(&forged, late), Err(TokenError::BadSignature));
        let mut no_exp = claims(now, 60);
        no_exp.as_object_mut().unwrap().remove("exp");
        let token = keys.sign(SigningAlg::ES256, None, &no_exp, now).unwrap();
        assert_eq!(keys.verify::<Value>(&token, None, now), Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn typ_is_set_when_asked_and_checked_when_expected() {
        let now = t0();
        let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
        let access = keys.sign(SigningAlg::ES256, Some("at+jwt"), &claims(now, 60), now).unwrap();
        let untyped = keys.sign(SigningAlg::ES256, None, &claims(now, 60), now).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&access).unwrap().typ.as_deref(), Some("at+jwt"));
        assert_eq!(jsonwebtoken::decode_header(&untyped).unwrap().typ, None);
        let check = |token: &str, expected| keys.verify::<Value>(token, expected, now).map(|_| ());
        assert_eq!(check(&access, Some("at+jwt")), Ok(()));
        assert_eq!(check(&access, Some("application/AT+JWT")), Ok(()), "RFC 7515 §4.1.9");
        assert_eq!(check(&access, None), Ok(()));
        assert_eq!(check(&access, Some("logout+jwt")), Err(TokenError::WrongType));
        assert_eq!(check(&untyped, Some("at+jwt")), Err(TokenError::WrongType));
    }

    #[tokio::test]
    async fn rotation_publishes_ahead_then_retires_and_unpublishes() {
        let db = fresh_db().await;
        let (publish_ahead, keep_after) = (minutes(10), minutes(30));
        let keys = SigningKeys::load_or_create(&db, t0()).await.unwrap();
        let t1 = t0() + chrono::Duration::hours(1);
        let old_tokens: Vec<(SigningAlg, String)> = SigningAlg::ALL
            .into_iter()
            .map(|alg| (alg, keys.sign(alg, None, &claims(t1, 7200), t1).unwrap()))
            .collect();
        let etag_before = keys.jwks().1;

        keys.rotate(&db, t1, publish_ahead, keep_after).await.unwrap();
        let kids = published_kids(&keys);
        assert_eq!(kids.len(), 6, "new keys are published at once");
        assert_eq!(&kids[..3], ["rs256-initial", "es256-initial", "eddsa-initial"], "active keys first");
        assert!(kids[3].starts_with("rs256-") && kids[4].starts_with("es256-") && kids[5].starts_with("eddsa-"));
        assert_ne!(keys.jwks().1, etag_before);
        for (alg, _) in &old_tokens {
            assert_eq!(kid_of(&keys.sign(*alg, None, &claims(t1, 60), t1).unwrap()), initial_kid(*alg), "not yet");
        }
        assert_states(&keys, t1, &[KeyState::Active; 3], &[KeyState::Next; 3]);

        let t2 = t1 + chrono::Duration::from_std(publish_ahead).unwrap();
        for (alg, old) in &old_tokens {
            let new_kid = kid_of(&keys.sign(*alg, None, &claims(t2, 60), t2).unwrap());
            assert!(new_kid != initial_kid(*alg) && kids.contains(&new_kid), "the new key signs from activation");
            assert!(keys.verify::<Value>(old, None, t2).is_ok());
        }
        assert_states(&keys, t2, &[KeyState::Retired; 3], &[KeyState::Active; 3]);

        let end = t2 + chrono::Duration::from_std(keep_after).unwrap();
        let just_before = end - chrono::Duration::seconds(1);
        keys.reload(&db, just_before).await.unwrap();
        assert_eq!(published_kids(&keys).len(), 6, "retired keys stay published for keep_after");
        assert!(old_tokens.iter().all(|(_, old)| keys.verify::<Value>(old, None, just_before).is_ok()));
        let replica = SigningKeys::load_or_create(&db, just_before).await.unwrap();
        assert_eq!(replica.jwks(), keys.jwks(), "another replica publishes the same set");

        assert!(keys.verify::<Value>(&old_tokens[0].1, None, end).is_err(), "the window ends before a reload");
        keys.reload(&db, end).await.unwrap();
        let kids_after = published_kids(&keys);
        assert_eq!(kids_after, kids[3..], "retired keys drop out after keep_after");
        for (_, old) in &old_tokens {
            assert_eq!(keys.verify::<Value>(old, None, end), Err(TokenError::UnknownKey));
        }
        replica.reload(&db, end).await.unwrap();
        assert_eq!(replica.jwks(), keys.jwks(), "the window is shared through the database");
        let listed = keys.list(end);
        assert_eq!(listed.len(), 6, "rows stay");
        assert!(
            listed.iter().filter(|k| k.kid.ends_with("-initial")).all(|k| !k.published && k.retired_at == Some(t2))
        );
    }

    /// Asserts the states of the three initial keys and the three rotated ones at `now`.
    fn assert_states(keys: &SigningKeys, now: DateTime<Utc>, initial: &[KeyState; 3], rotated: &[KeyState; 3]) {
        let listed = keys.list(now);
        let state_of = |rotated: bool| -> Vec<KeyState> {
            let mut keys: Vec<&KeyInfo> = listed.iter().filter(|k| k.kid.ends_with("-initial") != rotated).collect();
            keys.sort_by_key(|k| k.alg);
            keys.iter().map(|k| k.state).collect()
        };
        assert_eq!(state_of(false), initial);
        assert_eq!(state_of(true), rotated);
        assert!(listed.iter().all(|k| k.published));
    }

    #[tokio::test]
    async fn a_second_rotation_before_activation_supersedes_the_pending_key() {
        let db = fresh_db().await;
        let keys = SigningKeys::load_or_create(&db, t0()).await.unwrap();
        keys.rotate(&db, t0(), minutes(10), minutes(30)).await.unwrap();
        let t1 = t0() + chrono::Duration::minutes(5);
        keys.rotate(&db, t1, minutes(10), minutes(30)).await.unwrap();
        let at = |m| t0() + chrono::Duration::minutes(m);
        let signing_kid = |now| kid_of(&keys.sign(SigningAlg::ES256, None, &claims(now, 60), now).unwrap());
        let (first, second, third) = (signing_kid(at(9)), signing_kid(at(10)), signing_kid(at(15)));
        assert_eq!(first, "es256-initial");
        assert!(second != first && third != second && third != first);
        let es256: Vec<KeyInfo> = keys.list(at(15)).into_iter().filter(|k| k.alg == SigningAlg::ES256).collect();
        assert_eq!(es256.iter().filter(|k| k.state == KeyState::Active).count(), 1);
    }

    #[tokio::test]
    async fn concurrent_first_starts_create_one_key_per_algorithm() {
        let db = fresh_db().await;
        let (a, b) = tokio::join!(
            SigningKeys::load_or_create(&db, t0()),
            SigningKeys::load_or_create(&db, t0() + chrono::Duration::seconds(1))
        );
        assert_one_initial_key_each(&store::all(&db).await.unwrap());
        assert_eq!(a.unwrap().jwks(), b.unwrap().jwks());
    }

    fn assert_one_initial_key_each(rows: &[signing_key::Model]) {
        let mut kids: Vec<&str> = rows.iter().map(|row| row.kid.as_str()).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["eddsa-initial", "es256-initial", "rs256-initial"]);
    }

    /// Two replicas (separate connection pools) starting at once against one PostgreSQL; runs
    /// when `LATCHKEY_TEST_DATABASE_URL` is set, like the integration tests.
    #[tokio::test]
    async fn concurrent_first_starts_on_postgres_create_one_key_per_algorithm() {
        use sea_orm::ConnectionTrait;
        let Ok(url) = std::env::var("LATCHKEY_TEST_DATABASE_URL") else {
            eprintln!("notice: LATCHKEY_TEST_DATABASE_URL not set; skipping the PostgreSQL run");
            return;
        };
        let schema = format!("test_keys_{}", uuid::Uuid::new_v4().simple());
        let admin = crate::store::connect(&url).await.unwrap();
        admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}options[search_path]={schema}");
        let (one, two) = (crate::store::connect(&scoped).await.unwrap(), crate::store::connect(&scoped).await.unwrap());
        crate::store::migrate(&one).await.unwrap();
        let (a, b) = tokio::join!(SigningKeys::load_or_create(&one, t0()), SigningKeys::load_or_create(&two, t0()));
        let rows = store::all(&one).await.unwrap();
        admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
        assert_one_initial_key_each(&rows);
        assert_eq!(a.unwrap().jwks(), b.unwrap().jwks());
    }
}
