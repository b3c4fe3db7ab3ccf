//! Discovery (OpenID Connect Discovery 1.0 §3): the provider metadata, built once with
//! `openidconnect`'s types and served as pre-serialised bytes with an ETag.

use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata, ResponseTypes, Scope, TokenUrl,
    UserInfoUrl,
    core::{
        CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
        CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode,
        CoreResponseType, CoreSubjectIdentifierType,
    },
};
use serde::{Deserialize, Serialize};

/// Metadata `openidconnect` has no field for (RFC 8414, RFC 9207, RP-Initiated and
/// Back-Channel Logout).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatchkeyMetadata {
    pub code_challenge_methods_supported: Vec<String>,
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<CoreClientAuthMethod>,
    pub introspection_endpoint_auth_methods_supported: Vec<CoreClientAuthMethod>,
    pub authorization_response_iss_parameter_supported: bool,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub acr_values_supported: Vec<String>,
    pub prompt_values_supported: Vec<String>,
}

impl AdditionalProviderMetadata for LatchkeyMetadata {}

type Metadata = ProviderMetadata<
    LatchkeyMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The discovery document for `issuer` (no trailing slash), as JSON bytes.
pub fn document(issuer: &str) -> anyhow::Result<Vec<u8>> {
    let url = |path: &str| format!("{issuer}{path}");
    let auth_methods = vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::None,
    ];
    let additional = LatchkeyMetadata {
        code_challenge_methods_supported: vec!["S256".into()],
        end_session_endpoint: url("/end-session"),
        revocation_endpoint: url("/revoke"),
        introspection_endpoint: url("/introspect"),
        revocation_endpoint_auth_methods_supported: auth_methods.clone(),
        introspection_endpoint_auth_methods_supported: auth_methods.clone(),
        authorization_response_iss_parameter_supported: true,
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        acr_values_supported: vec!["phrh".into(), "phr".into()],
        prompt_values_supported: ["none", "login", "consent", "select_account"].map(String::from).to_vec(),
    };
    let algs = vec![
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EdDsa,
    ];
    let metadata = Metadata::new(
        IssuerUrl::new(issuer.to_owned())?,
        AuthUrl::new(url("/authorize"))?,
        JsonWebKeySetUrl::new(url("/jwks.json"))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        algs.clone(),
        additional,
    )
    .set_token_endpoint(Some(TokenUrl::new(url("/token"))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(url("/userinfo"))?))
    .set_scopes_supported(Some(["openid", "profile", "email", "offline_access"].map(|s| Scope::new(s.into())).to_vec()))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query, CoreResponseMode::FormPost]))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
        CoreGrantType::ClientCredentials,
    ]))
    .set_token_endpoint_auth_methods_supported(Some(auth_methods))
    .set_userinfo_signing_alg_values_supported(None)
    .set_claims_supported(Some(
        [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "at_hash",
            "name",
            "preferred_username",
            "email",
            "email_verified",
        ]
        .map(|c| CoreClaimName::new(c.into()))
        .to_vec(),
    ))
    .set_claims_parameter_supported(Some(false))
    .set_request_parameter_supported(Some(false))
    .set_request_uri_parameter_supported(Some(false));
    Ok(serde_json::to_vec(&metadata)?)
}
