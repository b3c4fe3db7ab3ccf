//! A software WebAuthn authenticator: real P-256 keys, real CBOR attestation objects and real
//! signatures, with knobs the tests need (signature counter, backup flags, user verification,
//! signing with a credential the server did not ask for, packed self attestation, and tampering
//! with the signed bytes before they are signed).
//!
//! It answers what a browser's `navigator.credentials.create` / `.get` would, as the JSON the
//! WebAuthn Level 3 `toJSON()` methods produce (RegistrationResponseJSON,
//! AuthenticationResponseJSON), so Latchkey's integration tests and its load generator
//! (`latchkey-bench`) drive the real endpoints. It depends on nothing of Latchkey's and does not
//! verify anything the relying party sends: it is a test double, never an authenticator to use.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use std::sync::Arc;

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The attestation statement of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attestation {
    /// `none`, as most passkey providers send.
    None,
    /// `packed` self attestation: signed by the new credential's own key.
    PackedSelf,
}

/// One credential held by the authenticator.
#[derive(Clone)]
pub struct SoftCredential {
    /// The credential id (SHA-256 of the public key).
    pub id: Vec<u8>,
    /// The user handle the relying party gave at registration (`user.id`).
    pub user_handle: Vec<u8>,
    /// The relying party id it is scoped to.
    pub rp_id: String,
    /// The signature counter last reported.
    pub counter: u32,
    /// Shared by clones: a cloned authenticator holds the same credentials.
    key: Arc<EcdsaKeyPair>,
}

/// A software authenticator.
#[derive(Clone)]
pub struct SoftAuthenticator {
    /// Every credential created so far, oldest first.
    pub credentials: Vec<SoftCredential>,
    /// The AAGUID reported in attestation objects.
    pub aaguid: [u8; 16],
    /// Whether the signature counter increases with each use (false: always 0, like Safari).
    pub counting: bool,
    /// The BE flag (a passkey that may be synced).
    pub backup_eligible: bool,
    /// The BS flag (a passkey that is synced).
    pub backup_state: bool,
    /// The UV flag.
    pub user_verified: bool,
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        SoftAuthenticator {
            credentials: Vec::new(),
            aaguid: [0; 16],
            counting: true,
            backup_eligible: false,
            backup_state: false,
            user_verified: true,
        }
    }
}

fn flags(up: bool, uv: bool, be: bool, bs: bool, at: bool) -> u8 {
    u8::from(up) | u8::from(uv) << 2 | u8::from(be) << 3 | u8::from(bs) << 4 | u8::from(at) << 6
}

fn client_data(kind: &str, options: &Value, origin: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": kind,
        "challenge": options["publicKey"]["challenge"],
        "origin": origin,
        "crossOrigin": false,
    }))
    .unwrap()
}

/// The key's public point in SEC 1 uncompressed form: `04 ‖ x ‖ y`.
fn public_point(key: &EcdsaKeyPair) -> &[u8] {
    key.public_key().as_ref()
}

/// An ASN.1 DER ECDSA signature over `message` (SHA-256), as authenticators send.
fn sign(key: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    key.sign(&SystemRandom::new(), message).expect("signing with a valid key").as_ref().to_vec()
}

fn cose_key(key: &EcdsaKeyPair) -> Vec<u8> {
    use ciborium::Value as C;
    let (x, y) = public_point(key)[1..].split_at(32);
    let map = C::Map(vec![
        (C::Integer(1.into()), C::Integer(2.into())),
        (C::Integer(3.into()), C::Integer((-7).into())),
        (C::Integer((-1).into()), C::Integer(1.into())),
        (C::Integer((-2).into()), C::Bytes(x.to_vec())),
        (C::Integer((-3).into()), C::Bytes(y.to_vec())),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

impl SoftAuthenticator {
    /// Answers `navigator.credentials.create` for `options` (`{"publicKey": …}`).
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        self.register_tampered(options, origin, Attestation::None, |_, _| {})
    }

    /// Like [`register`](Self::register), with the attestation statement `attestation`, after
    /// `tamper` has changed the authenticator data and the client data JSON (both as bytes):
    /// anything a self attestation signs is signed as tampered, so a test can probe one check.
    pub fn register_tampered(
        &mut self,
        options: &Value,
        origin: &str,
        attestation: Attestation,
        tamper: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>),
    ) -> Value {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().unwrap().to_owned();
        let user_handle = B64.decode(public_key["user"]["id"].as_str().unwrap()).unwrap();
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("generating a P-256 key");
        let id: Vec<u8> = Sha256::digest(public_point(&key)).to_vec();
        let counter: u32 = if self.counting { 1 } else { 0 };
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags(true, self.user_verified, self.backup_eligible, self.backup_state, true));
        auth_data.extend_from_slice(&counter.to_be_bytes());
        auth_data.extend_from_slice(&self.aaguid);
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key));
        let mut client_data_json = client_data("webauthn.create", options, origin);
        tamper(&mut auth_data, &mut client_data_json);
        use ciborium::Value as C;
        let (fmt, statement) = match attestation {
            Attestation::None => ("none", vec![]),
            Attestation::PackedSelf => {
                let mut signed = auth_data.clone();
                signed.extend_from_slice(&Sha256::digest(&client_data_json));
                let statement = vec![
                    (C::Text("alg".into()), C::Integer((-7).into())),
                    (C::Text("sig".into()), C::Bytes(sign(&key, &signed))),
                ];
                ("packed", statement)
            }
        };
        let attestation = C::Map(vec![
            (C::Text("fmt".into()), C::Text(fmt.into())),
            (C::Text("attStmt".into()), C::Map(statement)),
            (C::Text("authData".into()), C::Bytes(auth_data)),
        ]);
        let mut attestation_object = Vec::new();
        ciborium::into_writer(&attestation, &mut attestation_object).unwrap();
        self.credentials.push(SoftCredential { id: id.clone(), user_handle, rp_id, counter, key: Arc::new(key) });
        json!({
            "id": B64.encode(&id),
            "rawId": B64.encode(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data_json),
                "attestationObject": B64.encode(attestation_object),
                "transports": ["hybrid", "internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// Answers `navigator.credentials.get` for `options`, with the first credential the allow
    /// list names (or, for a discoverable request, the first one for the RP).
    pub fn assert(&mut self, options: &Value, origin: &str) -> Option<Value> {
        let allowed: Vec<Vec<u8>> = options["publicKey"]["allowCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| B64.decode(c["id"].as_str()?).ok())
            .collect();
        let rp_id = options["publicKey"]["rpId"].as_str()?.to_owned();
        let index = self
            .credentials
            .iter()
            .position(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))?;
        Some(self.assert_with(index, options, origin))
    }

    /// Signs an assertion with credential `index`, whatever the request asked for.
    pub fn assert_with(&mut self, index: usize, options: &Value, origin: &str) -> Value {
        self.assert_tampered(index, options, origin, |_, _| {})
    }

    /// Like [`assert_with`](Self::assert_with), after `tamper` has changed the authenticator data
    /// and the client data JSON (both as bytes): the signature covers the tampered bytes, so a
    /// test can probe one check with an otherwise valid assertion.
    pub fn assert_tampered(
        &mut self,
        index: usize,
        options: &Value,
        origin: &str,
        tamper: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>),
    ) -> Value {
        let (be, bs, uv, counting) = (self.backup_eligible, self.backup_state, self.user_verified, self.counting);
        let credential = &mut self.credentials[index];
        if counting {
            credential.counter += 1;
        }
        let mut auth_data = Sha256::digest(credential.rp_id.as_bytes()).to_vec();
        auth_data.push(flags(true, uv, be, bs, false));
        auth_data.extend_from_slice(&credential.counter.to_be_bytes());
        let mut client_data_json = client_data("webauthn.get", options, origin);
        tamper(&mut auth_data, &mut client_data_json);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data_json));
        let signature = sign(&credential.key, &signed);
        json!({
            "id": B64.encode(&credential.id),
            "rawId": B64.encode(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(&client_data_json),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(signature),
                "userHandle": B64.encode(&credential.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
