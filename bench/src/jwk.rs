//! The key type the generator verifies ID tokens with: openidconnect's own JWK (parsing, `kid`,
//! `alg`, `use`, key selection, every claim check), with RS256, ES256 and EdDSA signatures
//! checked by AWS-LC, as Latchkey itself checks them, instead of openidconnect's pure-Rust
//! crypto. The generator shares the machine with what it measures (PostgreSQL and Redis run on
//! its core): a P-256 verification in pure Rust costs about four times AWS-LC's, on every flow.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, SignatureVerificationError,
    core::{CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The published JWK set.
pub type JwkSet = openidconnect::JsonWebKeySet<Jwk>;

/// An ID-token verifier checking signatures with [`Jwk`].
pub type IdTokenVerifier = openidconnect::IdTokenVerifier<'static, Jwk>;

/// A published key: openidconnect's JWK, and its public key as AWS-LC takes it.
#[derive(Clone, Debug)]
pub struct Jwk {
    core: CoreJsonWebKey,
    public: Public,
}

/// Public key material by kind, decoded once when the JWK set is read.
#[derive(Clone, Debug)]
enum Public {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// SEC 1 uncompressed point: `04 ‖ x ‖ y`.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
    /// Anything else: openidconnect verifies it.
    Other,
}

impl Public {
    fn of(jwk: &Value) -> Public {
        let field = |name: &str| jwk[name].as_str().and_then(|v| B64.decode(v).ok());
        match (jwk["kty"].as_str(), jwk["crv"].as_str()) {
            (Some("RSA"), _) => match (field("n"), field("e")) {
                (Some(n), Some(e)) => Public::Rsa { n, e },
                _ => Public::Other,
            },
            (Some("EC"), Some("P-256")) => match (field("x"), field("y")) {
                (Some(x), Some(y)) => Public::P256([&[4u8][..], &x, &y].concat()),
                _ => Public::Other,
            },
            (Some("OKP"), Some("Ed25519")) => field("x").map_or(Public::Other, Public::Ed25519),
            _ => Public::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let public = Public::of(&value);
        let core = CoreJsonWebKey::deserialize(value).map_err(serde::de::Error::custom)?;
        Ok(Jwk { core, public })
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(serializer)
    }
}

impl JsonWebKey for Jwk {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.core.key_id()
    }

    fn key_type(&self) -> &CoreJsonWebKeyType {
        self.core.key_type()
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.core.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.core.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        Jwk { core: CoreJsonWebKey::new_symmetric(key), public: Public::Other }
    }

    fn verify_signature(
        &self,
        alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        let checked = match (alg, &self.public) {
            (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Public::Rsa { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            }
            (CoreJwsSigningAlgorithm::EcdsaP256Sha256, Public::P256(point)) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            (CoreJwsSigningAlgorithm::EdDsa, Public::Ed25519(x)) => {
                UnparsedPublicKey::new(&ED25519, x).verify(message, signature)
            }
            // Mismatched pairs and other algorithms: openidconnect decides (and refuses mismatches).
            _ => return self.core.verify_signature(alg, message, signature),
        };
        checked.map_err(|_| SignatureVerificationError::CryptoError("bad signature".into()))
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.core.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
    };
    use serde_json::json;

    use super::*;

    fn p256_jwk(key: &EcdsaKeyPair) -> Jwk {
        let point = key.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])});
        serde_json::from_value(jwk).unwrap()
    }

    #[test]
    fn checks_signatures_with_the_right_key_and_algorithm_only() {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let signature = key.sign(&SystemRandom::new(), b"message").unwrap();
        let jwk = p256_jwk(&key);
        let es256 = CoreJwsSigningAlgorithm::EcdsaP256Sha256;
        assert!(jwk.verify_signature(&es256, b"message", signature.as_ref()).is_ok());
        assert!(jwk.verify_signature(&es256, b"massage", signature.as_ref()).is_err());
        let other = p256_jwk(&EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap());
        assert!(other.verify_signature(&es256, b"message", signature.as_ref()).is_err());
        let rs256 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
        assert!(jwk.verify_signature(&rs256, b"message", signature.as_ref()).is_err(), "an algorithm swap");

        let ed = Ed25519KeyPair::generate().unwrap();
        let jwk: Jwk =
            serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(ed.public_key().as_ref())}))
                .unwrap();
        let eddsa = CoreJwsSigningAlgorithm::EdDsa;
        assert!(jwk.verify_signature(&eddsa, b"message", ed.sign(b"message").as_ref()).is_ok());
        assert!(jwk.verify_signature(&eddsa, b"message", ed.sign(b"other").as_ref()).is_err());
        assert!(jwk.verify_signature(&es256, b"message", ed.sign(b"message").as_ref()).is_err());
    }
}
