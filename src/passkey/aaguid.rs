//! Naming passkeys after their provider. The authenticator's AAGUID (in the registration's
//! authenticator data) identifies the provider; a small table of well-known ones, compiled from
//! the community list at passkeydeveloper/passkey-authenticator-aaguids, gives the name shown on
//! the account page until the person renames it.

use std::{collections::HashMap, sync::LazyLock};

use uuid::Uuid;

static KNOWN: LazyLock<HashMap<Uuid, String>> = LazyLock::new(|| {
    let raw: HashMap<String, String> =
        serde_json::from_str(include_str!("aaguids.json")).expect("aaguids.json is valid JSON");
    raw.into_iter().filter_map(|(id, name)| Some((Uuid::parse_str(&id).ok()?, name))).collect()
});

/// The provider name for an AAGUID, if it is a well-known one.
pub fn provider_name(aaguid: Uuid) -> Option<&'static str> {
    KNOWN.get(&aaguid).map(String::as_str)
}

/// The AAGUID in a registration's attestation object (CBOR map with `authData`; the AAGUID is
/// the 16 bytes after rpIdHash (32), flags (1) and counter (4), WebAuthn §6.5.1). `None` when it
/// is absent or all zeros (authenticators that hide their model).
pub fn from_attestation_object(attestation_object: &[u8]) -> Option<Uuid> {
    use ciborium::Value;
    let value: Value = ciborium::from_reader(attestation_object).ok()?;
    let auth_data = value.as_map()?.iter().find_map(|(k, v)| match (k.as_text(), v) {
        (Some("authData"), Value::Bytes(bytes)) => Some(bytes),
        _ => None,
    })?;
    let bytes: [u8; 16] = auth_data.get(37..53)?.try_into().ok()?;
    let aaguid = Uuid::from_bytes(bytes);
    (!aaguid.is_nil()).then_some(aaguid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_common_providers() {
        let gpm = Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").unwrap();
        assert_eq!(provider_name(gpm), Some("Google Password Manager"));
        assert_eq!(provider_name(Uuid::nil()), None);
        assert!(KNOWN.len() >= 20);
    }

    #[test]
    fn reads_the_aaguid_from_authenticator_data() {
        let aaguid = Uuid::parse_str("bada5566-a7aa-401f-bd96-45619a55120d").unwrap();
        let mut auth_data = vec![0u8; 37];
        auth_data.extend_from_slice(aaguid.as_bytes());
        auth_data.extend_from_slice(&[0, 0]);
        let object = ciborium::Value::Map(vec![
            (ciborium::Value::Text("fmt".into()), ciborium::Value::Text("none".into())),
            (ciborium::Value::Text("authData".into()), ciborium::Value::Bytes(auth_data)),
        ]);
        let mut encoded = Vec::new();
        ciborium::into_writer(&object, &mut encoded).unwrap();
        assert_eq!(from_attestation_object(&encoded), Some(aaguid));
        assert_eq!(from_attestation_object(b"not cbor"), None);
    }
}
