//! Latchkey: a passkey-first OpenID Connect identity provider.
//!
//! Map of the crate:
//! - [`config`]: typed configuration from `LATCHKEY_*` variables.
//! - [`app`]: application state, router assembly, and `run` (used by `main` and by tests).
//! - [`http`]: axum handlers, extractors and templates; thin, they call the domain below.
//! - Domain: [`login`] (username step, passkey sign-in), [`accounts`] (sign-up, passkey
//!   management), [`session`] (SSO sessions), [`passkey`] (WebAuthn ceremonies).
//! - Storage: [`store`] (durable, sea-orm) and [`ephemeral`] (TTL state: memory or Redis).
//! - [`error`]: the error type every request path returns.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod audit;
pub mod carried;
pub mod config;
pub mod email_login;
pub mod enrollment;
pub mod ephemeral;
pub mod error;
pub mod http;
pub mod login;
pub mod mail;
pub mod observe;
pub mod oidc;
pub mod passkey;
pub mod ratelimit;
pub mod serve;
pub mod session;
pub mod store;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh 256-bit random value, base64url-encoded: ids of sessions, ceremonies and tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh token that starts with `id`: its 16 bytes, then 256 random bits, base64url-encoded.
/// The random part makes it unguessable; `id` (no secret) names what it stands for, and a
/// time-ordered one (UUIDv7) lets its rows be appended to indexes rather than scattered.
pub fn token_with_id(id: uuid::Uuid) -> String {
    let mut bytes = [0u8; TOKEN_WITH_ID_BYTES];
    bytes[..16].copy_from_slice(id.as_bytes());
    rand::rng().fill_bytes(&mut bytes[16..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The id a [`token_with_id`] starts with; `None` for anything else.
pub fn token_id(token: &str) -> Option<uuid::Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok().filter(|bytes| bytes.len() == TOKEN_WITH_ID_BYTES)?;
    uuid::Uuid::from_slice(&bytes[..16]).ok()
}

const TOKEN_WITH_ID_BYTES: usize = 16 + 32;

/// The stored form of a high-entropy token (session ids, codes, refresh tokens, links): its
/// SHA-256 in lower-case hex. A plain hash suffices, as nobody can guess such a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// HMAC-SHA-256 under `key` of `parts`, one after the other: the one keyed hash Latchkey uses
/// (carried values, CSRF tokens, client secrets, decoy credential ids, derived keys).
pub fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    keyed_mac(key, parts).finalize().into_bytes().into()
}

/// Whether `candidate` is [`keyed_hash`]`(key, parts)`, compared in constant time.
pub fn keyed_hash_matches(key: &[u8], parts: &[&[u8]], candidate: &[u8]) -> bool {
    keyed_mac(key, parts).verify_slice(candidate).is_ok()
}

fn keyed_mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hash_is_hmac_sha256_over_the_parts_in_order() {
        // RFC 4231, test case 2, with the message split in two.
        let tag = keyed_hash(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(keyed_hash_matches(b"Jefe", &[b"what do ya want for nothing?"], &tag));
        assert!(!keyed_hash_matches(b"Jeff", &[b"what do ya want for nothing?"], &tag));
        assert!(!keyed_hash_matches(b"Jefe", &[b"what do ya want for nothing?"], &tag[..31]));
    }
}
