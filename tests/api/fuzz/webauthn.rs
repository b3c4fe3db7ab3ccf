//! The WebAuthn JSON path: parsing `PublicKeyCredential` and `RegisterPublicKeyCredential`,
//! then `PasskeyService::finish_authentication` / `finish_registration`, with arbitrary,
//! credential-shaped and edited inputs.

use std::sync::LazyLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use latchkey::passkey::PasskeyService;
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid,
};

use super::{apply, config, edits};
use crate::authenticator::SoftAuthenticator;

const ORIGIN: &str = "http://localhost:8080";
const RP_ID: &str = "localhost";

/// A relying party with one registration and one authentication in progress, and the real
/// browser responses to both; fuzzed inputs are verified against these states.
struct Ceremonies {
    service: PasskeyService,
    registration: Value,
    registration_state: PasskeyRegistration,
    registration_challenge: Vec<u8>,
    assertion: Value,
    authentication_state: PasskeyAuthentication,
    authentication_challenge: Vec<u8>,
    credential_id: Vec<u8>,
}

static CEREMONIES: LazyLock<Ceremonies> = LazyLock::new(|| {
    let service = PasskeyService::new(&Url::parse(ORIGIN).unwrap(), RP_ID, vec![1; 32]).unwrap();
    let mut auth = SoftAuthenticator::default();
    let (options, registration_state) = service.start_registration(Uuid::new_v4(), "fuzz", "Fuzz", vec![]).unwrap();
    let registration_challenge = options.public_key.challenge.to_vec();
    let registration = auth.register(&serde_json::to_value(&options).unwrap(), ORIGIN);
    let new = service.finish_registration(&serde_json::from_value(registration.clone()).unwrap(), &registration_state);
    let passkey = latchkey::passkey::parse_stored(&new.expect("the real registration verifies").passkey_json).unwrap();
    let (options, state) = service.start_authentication(&[passkey], "fuzz");
    let authentication_challenge = options.public_key.challenge.to_vec();
    let assertion = auth.assert(&serde_json::to_value(&options).unwrap(), ORIGIN).unwrap();
    let authentication_state = state;
    let parsed = serde_json::from_value(assertion.clone()).unwrap();
    assert!(service.finish_authentication(&parsed, &authentication_state).is_ok(), "the real assertion verifies");
    Ceremonies {
        service,
        registration,
        registration_state,
        registration_challenge,
        assertion,
        authentication_state,
        authentication_challenge,
        credential_id: auth.credentials[0].id.clone(),
    }
});

/// What an assertion's signature and credential lookup depend on.
fn signed_parts(credential: &PublicKeyCredential) -> impl PartialEq + std::fmt::Debug {
    let r = &credential.response;
    let parts = (&credential.id, &credential.raw_id, &credential.type_, &r.authenticator_data, &r.client_data_json);
    format!("{parts:?} {:?}", r.signature)
}

/// Verifies `bytes` as an assertion; `Ok` carries the parsed credential that verified.
fn verify_assertion(bytes: &[u8]) -> Option<PublicKeyCredential> {
    let c = &*CEREMONIES;
    let credential: PublicKeyCredential = serde_json::from_slice(bytes).ok()?;
    let _ = c.service.identify_discoverable(&credential);
    c.service.finish_authentication(&credential, &c.authentication_state).ok().map(|_| credential)
}

/// Verifies `bytes` as a registration; `Some` carries the parsed response that verified.
fn verify_registration(bytes: &[u8]) -> Option<RegisterPublicKeyCredential> {
    let c = &*CEREMONIES;
    let response: RegisterPublicKeyCredential = serde_json::from_slice(bytes).ok()?;
    c.service.finish_registration(&response, &c.registration_state).ok().map(|_| response)
}

/// What a registration that verified must have had, whatever was changed on the way: client data
/// of a `webauthn.create` for our challenge and origin, outside any frame, and authenticator data
/// for our RP ID with user presence and verification.
fn assert_registration_rules_hold(response: &RegisterPublicKeyCredential) {
    let client: Value = serde_json::from_slice(&response.response.client_data_json).unwrap();
    assert_eq!(client["type"], "webauthn.create");
    let challenge = client["challenge"].as_str().unwrap().trim_end_matches('=');
    let decoded = B64.decode(challenge).or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(challenge));
    assert_eq!(decoded.unwrap(), CEREMONIES.registration_challenge);
    let origin = Url::parse(client["origin"].as_str().unwrap()).unwrap().origin();
    assert_eq!(origin, Url::parse(ORIGIN).unwrap().origin());
    assert!(client.get("topOrigin").is_none() && matches!(client.get("crossOrigin"), None | Some(Value::Bool(false))));
    let object: ciborium::Value = ciborium::from_reader(response.response.attestation_object.as_slice()).unwrap();
    // webauthn-rs's CBOR reader skips tags and takes byte-string keys (harmless: what counts is
    // the values, and they are checked below).
    fn untag(value: &ciborium::Value) -> &ciborium::Value {
        match value {
            ciborium::Value::Tag(_, inner) => untag(inner),
            other => other,
        }
    }
    let is_auth_data = |k: &ciborium::Value| {
        untag(k).as_text() == Some("authData") || untag(k).as_bytes().is_some_and(|b| b == b"authData")
    };
    let auth_data = untag(&object).as_map().unwrap().iter().find(|(k, _)| is_auth_data(k)).unwrap();
    let auth_data = untag(&auth_data.1).as_bytes().unwrap();
    assert_eq!(auth_data[..32], Sha256::digest(RP_ID.as_bytes())[..]);
    assert_eq!(auth_data[32] & 0x05, 0x05, "user present and verified");
    assert_eq!(response.id, B64.encode(&response.raw_id));
}

/// JSON shaped like a credential: the real challenge, RP ID and credential id where the strategy
/// picks them, arbitrary bytes everywhere else (flags, counter, attested data, signature,
/// attestation statement), so inputs get past parsing into the checks and the signature and
/// attestation verifiers. The credential's key signed none of it: it never verifies.
fn credential_shaped() -> impl Strategy<Value = Value> {
    let bytes = |max| prop::collection::vec(any::<u8>(), 0..max);
    let kind = prop_oneof![Just("webauthn.get".to_owned()), Just("webauthn.create".to_owned()), "[a-z.]{0,16}"];
    let formats = vec!["none", "packed", "fido-u2f", "tpm", "android-key", "apple", "android-safetynet", "x"];
    let client = (any::<bool>(), bytes(48), kind);
    let authenticator = (any::<bool>(), bytes(64), any::<u8>(), any::<u32>(), bytes(200));
    let signatures = (bytes(100), prop::sample::select(formats), bytes(100), bytes(24));
    (client, authenticator, signatures).prop_map(|(client, authenticator, signatures)| {
        let ((real_challenge, challenge, kind), (real_id, id, flags, counter, tail)) = (client, authenticator);
        let (signature, fmt, statement_signature, handle) = signatures;
        let c = &*CEREMONIES;
        let challenge = match (real_challenge, kind.as_str()) {
            (false, _) => challenge,
            (true, "webauthn.create") => c.registration_challenge.clone(),
            (true, _) => c.authentication_challenge.clone(),
        };
        let raw_id = if real_id { c.credential_id.clone() } else { id };
        let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        auth_data.extend_from_slice(&tail);
        let client = json!({"type": kind, "challenge": B64.encode(challenge), "origin": ORIGIN, "crossOrigin": false});
        use ciborium::Value as C;
        let statement = C::Map(vec![
            (C::Text("alg".into()), C::Integer((-7).into())),
            (C::Text("sig".into()), C::Bytes(statement_signature.clone())),
            (C::Text("x5c".into()), C::Array(vec![C::Bytes(statement_signature)])),
        ]);
        let object = C::Map(vec![
            (C::Text("fmt".into()), C::Text(fmt.into())),
            (C::Text("attStmt".into()), statement),
            (C::Text("authData".into()), C::Bytes(auth_data.clone())),
        ]);
        let mut attestation_object = Vec::new();
        ciborium::into_writer(&object, &mut attestation_object).unwrap();
        json!({
            "id": B64.encode(&raw_id), "rawId": B64.encode(&raw_id), "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client.to_string()),
                "signature": B64.encode(signature),
                "userHandle": B64.encode(handle),
                "attestationObject": B64.encode(attestation_object),
            },
            "clientExtensionResults": {},
        })
    })
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn fuzz_webauthn_arbitrary_bytes_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(verify_assertion(&bytes).is_none());
        prop_assert!(verify_registration(&bytes).is_none());
    }

    #[test]
    fn fuzz_webauthn_credential_shaped_json_never_verifies(credential in credential_shaped()) {
        let bytes = serde_json::to_vec(&credential).unwrap();
        prop_assert!(verify_assertion(&bytes).is_none());
        prop_assert!(verify_registration(&bytes).is_none());
    }

    /// Edits of the JSON text: whatever still verifies signed exactly what the authenticator signed.
    #[test]
    fn fuzz_webauthn_edited_assertion_json(edits in edits()) {
        let original: PublicKeyCredential = serde_json::from_value(CEREMONIES.assertion.clone()).unwrap();
        let mut bytes = serde_json::to_vec(&CEREMONIES.assertion).unwrap();
        apply(&mut bytes, &edits);
        if let Some(verified) = verify_assertion(&bytes) {
            prop_assert_eq!(signed_parts(&verified), signed_parts(&original));
        }
    }

    /// Edits of the decoded bytes of one member: a changed member never verifies.
    #[test]
    fn fuzz_webauthn_edited_assertion_member(
        member in prop::sample::select(vec!["rawId", "authenticatorData", "clientDataJSON", "signature"]),
        edits in edits(),
    ) {
        let mut assertion = CEREMONIES.assertion.clone();
        let slot = if member == "rawId" { &mut assertion[member] } else { &mut assertion["response"][member] };
        let mut bytes = B64.decode(slot.as_str().unwrap()).unwrap();
        let before = bytes.clone();
        apply(&mut bytes, &edits);
        prop_assume!(bytes != before);
        *slot = json!(B64.encode(&bytes));
        prop_assert!(verify_assertion(&serde_json::to_vec(&assertion).unwrap()).is_none());
    }

    /// Edits of a registration's JSON text or of one decoded member: whatever still verifies
    /// keeps every rule of the ceremony.
    #[test]
    fn fuzz_webauthn_edited_registration(
        member in prop::sample::select(vec!["", "clientDataJSON", "attestationObject"]),
        edits in edits(),
    ) {
        let mut registration = CEREMONIES.registration.clone();
        let bytes = if member.is_empty() {
            let mut bytes = serde_json::to_vec(&registration).unwrap();
            apply(&mut bytes, &edits);
            bytes
        } else {
            let slot = &mut registration["response"][member];
            let mut bytes = B64.decode(slot.as_str().unwrap()).unwrap();
            apply(&mut bytes, &edits);
            *slot = json!(B64.encode(&bytes));
            serde_json::to_vec(&registration).unwrap()
        };
        if let Some(verified) = verify_registration(&bytes) {
            assert_registration_rules_hold(&verified);
        }
    }
}
