//! A software WebAuthn authenticator for tests: real P-256 keys, real CBOR attestation objects
//! and real signatures, with knobs the tests need (signature counter, backup flags, user
//! verification, signing with a credential the server did not ask for).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One credential held by the authenticator.
#[derive(Clone)]
pub struct SoftCredential {
    pub id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    pub counter: u32,
    key: SigningKey,
}

/// A software authenticator.
#[derive(Clone)]
pub struct SoftAuthenticator {
    pub credentials: Vec<SoftCredential>,
    pub aaguid: [u8; 16],
    /// Whether the signature counter increases with each use (false: always 0, like Safari).
    pub counting: bool,
    pub backup_eligible: bool,
    pub backup_state: bool,
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

fn cose_key(key: &SigningKey) -> Vec<u8> {
    use ciborium::Value as C;
    let point = key.verifying_key().to_encoded_point(false);
    let map = C::Map(vec![
        (C::Integer(1.into()), C::Integer(2.into())),
        (C::Integer(3.into()), C::Integer((-7).into())),
        (C::Integer((-1).into()), C::Integer(1.into())),
        (C::Integer((-2).into()), C::Bytes(point.x().unwrap().to_vec())),
        (C::Integer((-3).into()), C::Bytes(point.y().unwrap().to_vec())),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

impl SoftAuthenticator {
    /// Answers `navigator.credentials.create` for `options` (`{"publicKey": …}`).
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().unwrap().to_owned();
        let user_handle = B64.decode(public_key["user"]["id"].as_str().unwrap()).unwrap();
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let id: Vec<u8> = Sha256::digest(key.verifying_key().to_sec1_bytes()).to_vec();
        let counter: u32 = if self.counting { 1 } else { 0 };
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags(true, self.user_verified, self.backup_eligible, self.backup_state, true));
        auth_data.extend_from_slice(&counter.to_be_bytes());
        auth_data.extend_from_slice(&self.aaguid);
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key));
        let attestation = ciborium::Value::Map(vec![
            (ciborium::Value::Text("fmt".into()), ciborium::Value::Text("none".into())),
            (ciborium::Value::Text("attStmt".into()), ciborium::Value::Map(vec![])),
            (ciborium::Value::Text("authData".into()), ciborium::Value::Bytes(auth_data)),
        ]);
        let mut attestation_object = Vec::new();
        ciborium::into_writer(&attestation, &mut attestation_object).unwrap();
        self.credentials.push(SoftCredential { id: id.clone(), user_handle, rp_id, counter, key });
        json!({
            "id": B64.encode(&id),
            "rawId": B64.encode(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data("webauthn.create", options, origin)),
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
        let (be, bs, uv, counting) = (self.backup_eligible, self.backup_state, self.user_verified, self.counting);
        let credential = &mut self.credentials[index];
        if counting {
            credential.counter += 1;
        }
        let mut auth_data = Sha256::digest(credential.rp_id.as_bytes()).to_vec();
        auth_data.push(flags(true, uv, be, bs, false));
        auth_data.extend_from_slice(&credential.counter.to_be_bytes());
        let client_data_json = client_data("webauthn.get", options, origin);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data_json));
        let signature: Signature = credential.key.sign(&signed);
        json!({
            "id": B64.encode(&credential.id),
            "rawId": B64.encode(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(&client_data_json),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": B64.encode(&credential.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
