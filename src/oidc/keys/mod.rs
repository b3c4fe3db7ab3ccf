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
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
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
    signer: Signer,
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
        key.material.signer.jws(&header, claims).with_context(|| format!("signing with {alg}"))
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
        let (signer, decoding, jwk) = match alg {
            SigningAlg::RS256 => rsa_parts(pem, kid_value),
            SigningAlg::ES256 => p256_parts(pem, kid_value),
            SigningAlg::EdDSA => ed25519_parts(pem, kid_value),
        }
        .with_context(|| format!("signing key {kid} is not a valid {alg} private key"))?;
        Ok(Self { signer, decoding, validation: signature_only(jwt_alg(alg)), jwk: with_alg(jwk, alg)? })
    }
}

type Parts = (Signer, DecodingKey, CoreJsonWebKey);

/// A private key parsed once, ready to sign. `jsonwebtoken`'s `EncodingKey` keeps only the DER
/// and parses it again at every signature (for P-256 that derives the public key, a second
/// scalar multiplication), so Latchkey signs with these (AWS-LC through `aws-lc-rs`) and
/// assembles the compact JWS (RFC 7515 §7.1) itself. The header and claims are serialised
/// exactly as `jsonwebtoken::encode` does, so the tokens verify with any JOSE library; the keys
/// stay in the PEM formats the RustCrypto crates write.
enum Signer {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (AWS-LC blinds the private-key operation).
    Rs256(aws_lc_rs::signature::RsaKeyPair),
    /// ECDSA P-256 with SHA-256; the signature is `r || s` (RFC 7518 §3.4). AWS-LC generates the
    /// nonce.
    Es256(aws_lc_rs::signature::EcdsaKeyPair),
    /// Ed25519 (RFC 8037 §3.1); `ed25519-dalek` is as fast as AWS-LC here.
    EdDsa(ed25519_dalek::SigningKey),
}

impl Signer {
    /// `base64url(header) . base64url(claims) . base64url(signature)`.
    fn jws<T: Serialize>(&self, header: &Header, claims: &T) -> anyhow::Result<String> {
        let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }

    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        use ed25519_dalek::Signer as _;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ok(match self {
            Signer::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                signature
            }
            Signer::Es256(key) => {
                key.sign(&rng, message).map_err(|_| anyhow::anyhow!("ECDSA signing failed"))?.as_ref().to_vec()
            }
            Signer::EdDsa(key) => key.try_sign(message)?.to_bytes().to_vec(),
        })
    }
}

fn rsa_parts(pem: &str, kid: Option<JsonWebKeyId>) -> anyhow::Result<Parts> {
    use rsa::{
        pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey},
        traits::PublicKeyParts,
    };
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)?;
    let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
    let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
    let signer = aws_lc_rs::signature::RsaKeyPair::from_der(key.to_pkcs1_der()?.as_bytes())
        .map_err(|rejected| anyhow::anyhow!("AWS-LC rejects the RSA key: {rejected}"))?;
    Ok((Signer::Rs256(signer), decoding, CoreJsonWebKey::new_rsa(n, e, kid)))
}

fn p256_parts(pem: &str, kid: Option<JsonWebKeyId>) -> anyhow::Result<Parts> {
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem)?;
    let point = key.verifying_key().to_encoded_point(false);
    let (x, y) = point.x().zip(point.y()).context("an uncompressed point has both coordinates")?;
    let signer = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.to_bytes(),
        point.as_bytes(),
    )
    .map_err(|rejected| anyhow::anyhow!("AWS-LC rejects the P-256 key: {rejected}"))?;
    // jsonwebtoken's EC "DER" verification key is the SEC1 point, as its from_ec_components builds.
    let decoding = DecodingKey::from_ec_der(point.as_bytes());
    let jwk = CoreJsonWebKey::new_ec(x.to_vec(), y.to_vec(), CoreJsonCurveType::P256, kid);
    Ok((Signer::Es256(signer), decoding, jwk))
}

fn ed25519_parts(pem: &str, kid: Option<JsonWebKeyId>) -> anyhow::Result<Parts> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)?;
    let public = key.verifying_key().to_bytes();
    // As for EC, jsonwebtoken's Ed25519 "DER" verification key is the raw 32-byte public key.
    let decoding = DecodingKey::from_ed_der(&public);
    let jwk = CoreJsonWebKey::new_okp(public.to_vec(), CoreJsonCurveType::Ed25519, kid);
    Ok((Signer::EdDsa(key), decoding, jwk))
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

/// How long before its creation an initial key counts as active. Replicas starting together
/// run on clocks a little apart: one whose clock is behind the replica that created a key must
/// still find it active, or it could sign nothing of that algorithm (and would publish its JWK
/// set in another order) until its clock caught up.
const INITIAL_KEY_ACTIVE_BEFORE_CREATION: chrono::Duration = chrono::Duration::minutes(5);

async fn create_initial_if_none(db: &DatabaseConnection, alg: SigningAlg, now: DateTime<Utc>) -> anyhow::Result<()> {
    if store::exists_for_alg(db, alg.as_str()).await? {
        return Ok(());
    }
    let activates_at = now.checked_sub_signed(INITIAL_KEY_ACTIVE_BEFORE_CREATION).unwrap_or(now);
    let key = new_row(initial_kid(alg), alg, generate_pem(alg).await?, now, activates_at);
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
mod tests;
