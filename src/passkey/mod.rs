//! WebAuthn ceremonies over webauthn-rs: registration (sign-up, adding a passkey) and
//! authentication (allow-list, discoverable, and decoys for unknown users).
//!
//! This module owns the protocol rules: discoverable credentials where possible, user
//! verification required, decoy credentials that make unknown usernames look like known ones,
//! and the mapping of webauthn-rs errors to [`CeremonyError`]. It does not store anything: the
//! ceremony state travels through [`ceremony`] and passkeys through `store::passkeys`.

pub mod aaguid;
pub mod ceremony;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use webauthn_rs::prelude::*;
use webauthn_rs_proto::{AuthenticatorTransport, ResidentKeyRequirement};

use crate::store::passkeys::NewPasskey;

/// Why a ceremony did not verify. Messages are safe to show to the person.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CeremonyError {
    /// No ceremony in progress: expired, already used, or never started.
    #[error("This sign-in request has expired or was already used. Please try again.")]
    Expired,
    /// The response did not verify (wrong passkey, bad signature, wrong origin, ...).
    #[error("That passkey was not recognised. Please try again or use another passkey.")]
    Rejected,
    /// The signature counter went backwards: the authenticator may have been cloned.
    #[error("That passkey was not recognised. Please try again or use another passkey.")]
    PossibleClone,
    /// A discoverable sign-in with a credential this server does not know (deleted passkey).
    #[error("This passkey is no longer registered here. Please use another passkey.")]
    UnknownCredential { credential_id: String },
    /// A new passkey that is already registered.
    #[error("This passkey is already registered.")]
    AlreadyRegistered,
}

impl CeremonyError {
    /// A short name for the audit log; more precise than what the browser is told
    /// (a possible clone is only "rejected" there).
    pub fn reason(&self) -> &'static str {
        match self {
            CeremonyError::Expired => "expired",
            CeremonyError::Rejected => "rejected",
            CeremonyError::PossibleClone => "possible_clone",
            CeremonyError::UnknownCredential { .. } => "unknown_credential",
            CeremonyError::AlreadyRegistered => "already_registered",
        }
    }
}

/// The WebAuthn relying party of this Latchkey, plus the key that derives decoy credentials.
pub struct PasskeyService {
    webauthn: Webauthn,
    decoy_key: Vec<u8>,
}

impl PasskeyService {
    /// Builds the relying party from the issuer: the RP ID is its host, the origin its origin.
    /// Changing the issuer's host later invalidates every registered passkey.
    pub fn new(issuer: &Url, rp_id: &str, decoy_key: Vec<u8>) -> Result<Self, WebauthnError> {
        let webauthn = WebauthnBuilder::new(rp_id, issuer)?.rp_name("Latchkey").build()?;
        Ok(PasskeyService { webauthn, decoy_key })
    }

    /// Starts registering a passkey for `user_id`, excluding the person's existing credentials.
    /// Asks for a discoverable credential where the authenticator can make one (webauthn-rs
    /// defaults to "discouraged"); user verification stays required.
    pub fn start_registration(
        &self,
        user_id: Uuid,
        username: &str,
        display_name: &str,
        existing: Vec<CredentialID>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), CeremonyError> {
        let exclude = (!existing.is_empty()).then_some(existing);
        let (mut options, state) =
            self.webauthn.start_passkey_registration(user_id, username, display_name, exclude).map_err(rejected)?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
            selection.require_resident_key = false;
        }
        Ok((options, state))
    }

    /// Verifies a registration response and returns the passkey ready to store.
    pub fn finish_registration(
        &self,
        response: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<NewPasskey, CeremonyError> {
        check_unread_members(&response.id, &response.raw_id, &response.type_, &response.response.client_data_json)?;
        let verified = self.webauthn.finish_passkey_registration(response, state).map_err(rejected)?;
        // webauthn-rs does not keep the transports the browser reported; they make later
        // allow-lists faster to satisfy (security key vs. phone vs. this device).
        let mut credential = Credential::from(verified);
        credential.transports = response.response.transports.clone().filter(|t| !t.is_empty());
        let passkey = Passkey::from(credential.clone());
        let aaguid = aaguid::from_attestation_object(&response.response.attestation_object);
        let name = aaguid.and_then(aaguid::provider_name).unwrap_or("Passkey").to_owned();
        Ok(NewPasskey {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            passkey_json: serde_json::to_string(&passkey).map_err(|_| CeremonyError::Rejected)?,
            name,
            aaguid,
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
            transports: credential.transports.iter().flatten().filter_map(transport_name).collect(),
        })
    }

    /// Starts an allow-list sign-in for a user's passkeys. A user without passkeys gets a decoy,
    /// so the answer looks the same.
    pub fn start_authentication(
        &self,
        passkeys: &[Passkey],
        login_name: &str,
    ) -> (RequestChallengeResponse, PasskeyAuthentication) {
        match self.webauthn.start_passkey_authentication(passkeys) {
            Ok(started) => started,
            Err(_) => {
                let (options, state, _) = self.start_decoy(login_name);
                (options, state)
            }
        }
    }

    /// Options for a name that matches no account, made exactly as a real allow-list request
    /// is made from stored passkeys — each parsed from JSON and handed to webauthn-rs — so they
    /// have the same shape and cost the same time. The passkeys are `DECOY_PASSKEY` under one
    /// or two credential ids derived from an HMAC of the normalised name: the same name always
    /// gets the same ids, which belong to nobody. The state verifies nothing anyone can sign.
    /// The decoy passkeys come back too, for the ceremony to carry as a real one carries the
    /// account's.
    pub fn start_decoy(&self, login_name: &str) -> (RequestChallengeResponse, PasskeyAuthentication, Vec<Passkey>) {
        let digest = crate::keyed_hash(&self.decoy_key, &[crate::store::users::normalize(login_name).as_bytes()]);
        let count = 1 + usize::from(digest[0] & 1);
        let decoys: Vec<Passkey> = (0..count)
            .map(|i| {
                let mut credential = Credential::from(parse_stored(DECOY_PASSKEY).expect("the decoy passkey parses"));
                credential.cred_id = decoy_credential_id(&self.decoy_key, &digest, i);
                Passkey::from(credential)
            })
            .collect();
        let (options, state) =
            self.webauthn.start_passkey_authentication(&decoys).expect("decoy passkeys make a valid request");
        (options, state, decoys)
    }

    /// Starts a discoverable sign-in (passkey autofill or the "Use a passkey" button).
    pub fn start_discoverable(&self) -> (RequestChallengeResponse, DiscoverableAuthentication) {
        self.discoverable_options()
    }

    fn discoverable_options(&self) -> (RequestChallengeResponse, DiscoverableAuthentication) {
        self.webauthn
            .start_discoverable_authentication()
            .expect("starting a discoverable authentication needs no input and cannot fail")
    }

    /// Verifies an allow-list assertion against its ceremony state.
    pub fn finish_authentication(
        &self,
        response: &PublicKeyCredential,
        state: &PasskeyAuthentication,
    ) -> Result<AuthenticationResult, CeremonyError> {
        check_unread_members(&response.id, &response.raw_id, &response.type_, &response.response.client_data_json)?;
        self.webauthn.finish_passkey_authentication(response, state).map_err(rejected)
    }

    /// The user handle and credential id a discoverable assertion claims.
    pub fn identify_discoverable(&self, response: &PublicKeyCredential) -> Result<(Uuid, String), CeremonyError> {
        check_unread_members(&response.id, &response.raw_id, &response.type_, &response.response.client_data_json)?;
        let (user, credential_id) = self.webauthn.identify_discoverable_authentication(response).map_err(rejected)?;
        Ok((user, URL_SAFE_NO_PAD.encode(credential_id)))
    }

    /// Verifies a discoverable assertion against the stored passkey it names.
    pub fn finish_discoverable(
        &self,
        response: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        passkey: &Passkey,
    ) -> Result<AuthenticationResult, CeremonyError> {
        check_unread_members(&response.id, &response.raw_id, &response.type_, &response.response.client_data_json)?;
        self.webauthn.finish_discoverable_authentication_v2(response, state, passkey).map_err(rejected)
    }
}

/// What webauthn-rs does not check: `id` must be the base64url of `rawId` and `type` must be
/// `public-key` (WebAuthn L3 §5.1), and the client data must not come from a cross-origin
/// iframe (§7.1 step 9, §7.2 step 13: Latchkey's pages are never framed, `frame-ancestors
/// 'none'`). Browsers always send these so; anything else was made by hand and is refused rather
/// than silently accepted. Client data that is not JSON is left to webauthn-rs to refuse.
fn check_unread_members(id: &str, raw_id: &[u8], type_: &str, client_data_json: &[u8]) -> Result<(), CeremonyError> {
    #[derive(serde::Deserialize)]
    struct Frame {
        #[serde(rename = "crossOrigin")]
        cross_origin: Option<serde_json::Value>,
        #[serde(rename = "topOrigin")]
        top_origin: Option<serde_json::Value>,
    }
    let framed = serde_json::from_slice::<Frame>(client_data_json).is_ok_and(|frame| {
        !matches!(frame.cross_origin, None | Some(serde_json::Value::Bool(false))) || frame.top_origin.is_some()
    });
    if type_ == "public-key" && id == URL_SAFE_NO_PAD.encode(raw_id) && !framed {
        Ok(())
    } else {
        tracing::info!(framed, "passkey ceremony rejected: id is not rawId, type is not public-key, or framed");
        Err(CeremonyError::Rejected)
    }
}

/// WebAuthn L3 §7.2 step 6: when the person was identified before the ceremony (the username
/// step), a user handle in the response must be theirs (webauthn-rs checks it only for
/// discoverable sign-ins).
pub fn check_user_handle(response: &PublicKeyCredential, user_id: Uuid) -> Result<(), CeremonyError> {
    match response.get_user_unique_id() {
        Some(handle) if handle != user_id.as_bytes() => {
            tracing::info!("passkey ceremony rejected: the user handle is not the identified user's");
            Err(CeremonyError::Rejected)
        }
        _ => Ok(()),
    }
}

/// WebAuthn L3 §7.2 step 19: the backup-eligible (BE) flag is fixed when a credential is made
/// and must not change. Latchkey's business logic depends on it (a device-bound passkey is
/// `phrh`, a synced one `phr`), so a change either way fails the assertion: webauthn-rs refuses
/// it for discoverable sign-ins but lets BE go from 0 to 1 on allow-list ones.
pub fn check_backup_eligibility(result: &AuthenticationResult, registered: bool) -> Result<(), CeremonyError> {
    if result.backup_eligible() == registered {
        Ok(())
    } else {
        tracing::warn!(registered, asserted = result.backup_eligible(), "passkey backup eligibility changed");
        Err(CeremonyError::Rejected)
    }
}

/// A passkey of nobody's, as webauthn-rs stores one: made once by a software authenticator whose
/// private key was thrown away. Decoys carry it under their own credential ids.
pub(crate) const DECOY_PASSKEY: &str = concat!(
    r#"{"cred":{"cred_id":"eClhTs-5GKFoNJJyMIwR1RoW3X0jVFRzbQ0UBxhY0rU","cred":{"type_":"ES256","key":{"EC_EC2":"#,
    r#"{"curve":"SECP256R1","x":"W0SdvgAaqNTZTseNeVEBP5ELFkpL0sKSEINwtlRMl60","#,
    r#""y":"EXMnb5T71bz_PtPSEIfuXuOions1rs4z_M1iGJKjc9k"}}},"counter":1,"transports":["hybrid","internal"],"#,
    r#""user_verified":true,"backup_eligible":false,"backup_state":false,"registration_policy":"required","#,
    r#""extensions":{"cred_protect":"Ignored","hmac_create_secret":"NotRequested","appid":"NotRequested","#,
    r#""cred_props":"Ignored"},"attestation":{"data":"None","metadata":"None"},"attestation_format":"none"}}"#,
);

fn decoy_credential_id(key: &[u8], digest: &[u8], index: usize) -> Vec<u8> {
    let mut id = crate::keyed_hash(key, &[digest, &[index as u8]]).to_vec();
    // Platform authenticators typically use 16-32 byte ids; vary the length a little too.
    id.truncate(16 + usize::from(digest[1] % 2) * 16);
    id
}

/// Maps a webauthn-rs failure to what the person is told; the precise reason goes to the log.
fn rejected(err: WebauthnError) -> CeremonyError {
    match err {
        WebauthnError::CredentialPossibleCompromise => {
            tracing::warn!("passkey counter went backwards: possible cloned authenticator");
            CeremonyError::PossibleClone
        }
        WebauthnError::CredentialExcludedFromRequest => CeremonyError::AlreadyRegistered,
        other => {
            tracing::info!(reason = %other, "passkey ceremony rejected");
            CeremonyError::Rejected
        }
    }
}

fn transport_name(transport: &AuthenticatorTransport) -> Option<String> {
    match serde_json::to_value(transport).ok()? {
        serde_json::Value::String(name) if name != "unknown" => Some(name),
        _ => None,
    }
}

/// Reads a stored passkey.
pub fn parse_stored(passkey_json: &str) -> Result<Passkey, serde_json::Error> {
    serde_json::from_str(passkey_json)
}

/// The stored form of a passkey.
pub fn serialize_stored(passkey: &Passkey) -> String {
    serde_json::to_string(passkey).expect("a passkey always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> PasskeyService {
        let issuer = Url::parse("http://localhost:8080").unwrap();
        PasskeyService::new(&issuer, "localhost", vec![7; 32]).unwrap()
    }

    #[test]
    fn registration_prefers_discoverable_credentials_and_requires_uv() {
        let (options, _) = service().start_registration(Uuid::new_v4(), "alice", "Alice", vec![vec![1, 2, 3]]).unwrap();
        let json = serde_json::to_value(&options).unwrap();
        let selection = &json["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "preferred");
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(json["publicKey"]["excludeCredentials"][0]["id"], "AQID");
        assert_eq!(json["publicKey"]["rp"]["id"], "localhost");
    }

    #[test]
    fn decoys_are_stable_per_name_and_shaped_like_real_requests() {
        let service = service();
        let decoy = |name: &str| serde_json::to_value(service.start_decoy(name).0).unwrap();
        let (a, b, c) = (decoy("Nobody"), decoy("nobody "), decoy("somebody-else"));
        assert_eq!(a["publicKey"]["allowCredentials"], b["publicKey"]["allowCredentials"]);
        assert_ne!(a["publicKey"]["allowCredentials"], c["publicKey"]["allowCredentials"]);
        assert_ne!(a["publicKey"]["challenge"], b["publicKey"]["challenge"]);
        assert_eq!(a["publicKey"]["userVerification"], "required");
        let stored = parse_stored(DECOY_PASSKEY).unwrap();
        let real = serde_json::to_value(service.start_authentication(&[stored], "someone").0).unwrap();
        let shape = |mut options: serde_json::Value| {
            options["publicKey"]["challenge"] = "".into();
            options["publicKey"]["allowCredentials"] = serde_json::json!([]);
            options
        };
        assert_eq!(shape(a.clone()), shape(real), "the same request but for challenge and credentials");
        let ids = a["publicKey"]["allowCredentials"].as_array().unwrap();
        assert!(
            ids.iter().all(|c| c["id"] != "eClhTs-5GKFoNJJyMIwR1RoW3X0jVFRzbQ0UBxhY0rU"),
            "never the template's id"
        );
    }

    #[test]
    fn members_webauthn_rs_does_not_read_are_checked() {
        let raw_id = [1u8, 2, 3];
        let client = |extra: &str| format!(r#"{{"type":"webauthn.get","challenge":"AA","origin":"x"{extra}}}"#);
        let check =
            |id: &str, type_: &str, extra: &str| check_unread_members(id, &raw_id, type_, client(extra).as_bytes());
        assert_eq!(check("AQID", "public-key", ""), Ok(()));
        assert_eq!(check("AQID", "public-key", r#","crossOrigin":false"#), Ok(()));
        assert_eq!(check("AQID", "public-key", r#","crossOrigin":true"#), Err(CeremonyError::Rejected));
        assert_eq!(check("AQID", "public-key", r#","crossOrigin":"false""#), Err(CeremonyError::Rejected));
        assert_eq!(check("AQID", "public-key", r#","topOrigin":"https://evil.example""#), Err(CeremonyError::Rejected));
        assert_eq!(check("AQID=", "public-key", ""), Err(CeremonyError::Rejected), "padded");
        assert_eq!(check("AQIE", "public-key", ""), Err(CeremonyError::Rejected));
        assert_eq!(check("AQID", "password", ""), Err(CeremonyError::Rejected));
        assert_eq!(check_unread_members("AQID", &raw_id, "public-key", b"not json"), Ok(()), "left to webauthn-rs");
    }

    #[test]
    fn a_user_handle_must_be_the_identified_users() {
        let user = Uuid::new_v4();
        let assertion = |handle: serde_json::Value| -> PublicKeyCredential {
            serde_json::from_value(serde_json::json!({
                "id": "AQID", "rawId": "AQID", "type": "public-key",
                "response": {"authenticatorData": "", "clientDataJSON": "", "signature": "", "userHandle": handle},
            }))
            .unwrap()
        };
        assert_eq!(check_user_handle(&assertion(URL_SAFE_NO_PAD.encode(user.as_bytes()).into()), user), Ok(()));
        assert_eq!(check_user_handle(&assertion(serde_json::Value::Null), user), Ok(()), "the handle is optional");
        let other = URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes());
        assert_eq!(check_user_handle(&assertion(other.into()), user), Err(CeremonyError::Rejected));
        assert_eq!(check_user_handle(&assertion("AAAA".into()), user), Err(CeremonyError::Rejected));
    }

    #[test]
    fn discoverable_requests_have_no_allow_list() {
        let (options, _) = service().start_discoverable();
        let json = serde_json::to_value(options).unwrap();
        assert_eq!(json["publicKey"]["allowCredentials"], serde_json::json!([]));
    }
}
