//! OAuth request parsing: the authorization request (`authorize::validate` against a real
//! `Client`), the token request form (`token::Form::new`) and PKCE (`verifier_matches`).

use std::collections::BTreeSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use latchkey::oidc::{
    authorize::{self, AuthorizeError, KNOWN_SCOPES, Params},
    clients::Client,
    token::Form,
};
use proptest::{prelude::*, sample::Index};
use sha2::{Digest, Sha256};

use super::{apply, config, edits};

const REGISTERED: [&str; 2] = ["https://app.example.com/callback", "http://127.0.0.1:8080/cb?x=1"];

/// Redirect URIs that are almost registered ones (RFC 9700 §4.1.3: exact match only).
const NEAR_MISSES: [&str; 14] = [
    "https://app.example.com/callback/",
    "https://APP.example.com/callback",
    "https://app.example.com/Callback",
    "https://app.example.com/callback?x=1",
    "https://app.example.com/callback#fragment",
    "https://app.example.com:443/callback",
    "http://app.example.com/callback",
    "https://app.example.com/callbac",
    "https://app.example.com/callback%20",
    " https://app.example.com/callback",
    "https://app.example.com.evil/callback",
    "http://127.0.0.1:8080/cb",
    "http://127.0.0.1:8080/cb?x=2",
    "http://localhost:8080/cb?x=1",
];

/// A client as stored: public or confidential, with or without the code grant, with `openid`
/// and any other known scopes.
fn client() -> impl Strategy<Value = Client> {
    let grants = prop::sample::subsequence(vec!["authorization_code", "refresh_token", "client_credentials"], 0..=3);
    let scopes = prop::sample::subsequence(vec!["profile", "email", "offline_access"], 0..=3);
    (any::<bool>(), grants, scopes).prop_map(|(public, grants, scopes)| {
        let now = chrono::Utc::now();
        let model = entity::client::Model {
            client_id: "fuzz-client".into(),
            name: "Fuzz".into(),
            secret_hash: (!public).then(|| "00".repeat(32)),
            public,
            first_party: true,
            redirect_uris: serde_json::to_string(&REGISTERED).unwrap(),
            post_logout_redirect_uris: "[]".into(),
            allowed_scopes: std::iter::once("openid").chain(scopes).collect::<Vec<_>>().join(" "),
            grant_types: grants.join(" "),
            id_token_signed_response_alg: "RS256".into(),
            backchannel_logout_uri: None,
            access_token_ttl_seconds: None,
            refresh_token_ttl_seconds: None,
            created_at: now,
            updated_at: now,
        };
        Client::from_model(model).unwrap()
    })
}

const PARAMETERS: [&str; 15] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "response_mode",
    "request",
    "request_uri",
    "login_hint",
    "acr_values",
];

fn s256(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Values that matter to some parameter, and anything at all.
fn value() -> impl Strategy<Value = String> {
    let interesting: Vec<String> = REGISTERED
        .iter()
        .chain(NEAR_MISSES.iter())
        .copied()
        .chain([
            "code",
            "token",
            "code id_token",
            "CODE",
            "openid",
            "openid profile email",
            "profile",
            "openid  offline_access",
            "S256",
            "s256",
            "plain",
            "none",
            "login",
            "consent none",
            "select_account",
            "-1",
            "0",
            "3600",
            "99999999999999999999",
            "query",
            "form_post",
            "fragment",
            "phr",
            "fuzz-client",
            "",
        ])
        .map(str::to_owned)
        .chain([s256("a"), s256("verifier"), "A".repeat(42), "A".repeat(44), format!("{}=", s256("x"))])
        .collect();
    prop_oneof![3 => prop::sample::select(interesting), 1 => ".{0,50}"]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![5 => prop::sample::select(PARAMETERS.to_vec()).prop_map(str::to_owned), 1 => "[a-z_]{0,12}"]
}

/// A valid request, then up to five edits: a parameter dropped, repeated, or set to another value.
fn authorization_params() -> impl Strategy<Value = Vec<(String, String)>> {
    let valid: Vec<(String, String)> = [
        ("client_id", "fuzz-client".to_owned()),
        ("redirect_uri", REGISTERED[0].to_owned()),
        ("response_type", "code".to_owned()),
        ("scope", "openid profile".to_owned()),
        ("state", "xyz".to_owned()),
        ("code_challenge", s256("verifier")),
        ("code_challenge_method", "S256".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let edit = prop_oneof![
        any::<Index>().prop_map(|i| (0u8, i, String::new(), String::new())),
        any::<Index>().prop_map(|i| (1u8, i, String::new(), String::new())),
        (any::<Index>(), value()).prop_map(|(i, v)| (2u8, i, String::new(), v)),
        (any::<Index>(), name(), value()).prop_map(|(i, n, v)| (3u8, i, n, v)),
    ];
    let edited = prop::collection::vec(edit, 0..6).prop_map(move |edits| {
        let mut params = valid.clone();
        for (kind, index, name, value) in edits {
            if params.is_empty() {
                break;
            }
            let i = index.index(params.len());
            match kind {
                0 => drop(params.remove(i)),
                1 => params.push(params[i].clone()),
                2 => params[i].1 = value,
                _ => params.push((name, value)),
            }
        }
        params
    });
    prop_oneof![3 => edited, 1 => prop::collection::vec((name(), value()), 0..12)]
}

/// The first value of `name`, as the validator reads it (empty counts as absent).
fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn fuzz_authorization_requests(params in authorization_params(), client in client()) {
        let result = authorize::validate(&Params::new(params.clone()), Some(&client));
        let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        let repeated = |name: &str| names.iter().filter(|n| **n == name).count() > 1;
        match result {
            Ok(request) => {
                prop_assert!(names.iter().collect::<BTreeSet<_>>().len() == names.len(), "no repeated parameter");
                prop_assert_eq!(first(&params, "redirect_uri"), Some(request.redirect_uri.as_str()));
                prop_assert!(REGISTERED.contains(&request.redirect_uri.as_str()), "exactly registered");
                prop_assert_eq!(first(&params, "response_type"), Some("code"));
                prop_assert!(client.allows_grant(latchkey::oidc::clients::GrantType::AuthorizationCode));
                let requested: BTreeSet<&str> = first(&params, "scope").unwrap_or_default().split(' ').collect();
                prop_assert!(requested.contains("openid") && request.scopes.contains("openid"));
                for scope in &request.scopes {
                    prop_assert!(requested.contains(scope.as_str()) && client.allows_scope(scope));
                    prop_assert!(KNOWN_SCOPES.contains(&scope.as_str()));
                }
                let method = first(&params, "code_challenge_method");
                match &request.code_challenge {
                    Some(challenge) => {
                        prop_assert_eq!(first(&params, "code_challenge"), Some(challenge.as_str()));
                        prop_assert_eq!(method, Some("S256"), "RFC 7636 §4.3: S256 only");
                        prop_assert_eq!(challenge.len(), 43);
                        prop_assert!(B64.decode(challenge).is_ok_and(|d| d.len() == 32));
                    }
                    None => {
                        prop_assert!(!client.settings.public, "public clients must use PKCE");
                        prop_assert!(first(&params, "code_challenge").is_none() && method.is_none());
                    }
                }
                prop_assert!(first(&params, "request").is_none() && first(&params, "request_uri").is_none());
            }
            Err(AuthorizeError::ToClient(error)) => {
                // An error is only ever sent to the exact redirect URI the client registered.
                prop_assert!(!repeated("redirect_uri") && !repeated("client_id"));
                prop_assert_eq!(first(&params, "redirect_uri"), Some(error.redirect_uri.as_str()));
                prop_assert!(REGISTERED.contains(&error.redirect_uri.as_str()));
            }
            Err(AuthorizeError::Untrusted(message)) => prop_assert!(!message.is_empty()),
        }
        let unknown_client = authorize::validate(&Params::new(params), None);
        prop_assert!(matches!(unknown_client, Err(AuthorizeError::Untrusted(_))));
    }
}

// ---- The token request ------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn fuzz_token_forms(pairs in prop::collection::vec((name(), value()), 0..10), probe in name()) {
        let unique = pairs.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len() == pairs.len();
        match Form::new(pairs.clone()) {
            Ok(form) => {
                prop_assert!(unique, "a repeated parameter is invalid_request (RFC 6749 §3.2)");
                for (name, value) in &pairs {
                    prop_assert_eq!(form.get(name), (!value.is_empty()).then_some(value.as_str()));
                }
                prop_assert_eq!(form.get(&probe), first(&pairs, &probe));
            }
            Err(_) => prop_assert!(!unique),
        }
    }

    #[test]
    fn fuzz_pkce_verifiers_match_only_their_challenge(
        verifier in "[A-Za-z0-9._~-]{43,128}",
        other in "[A-Za-z0-9._~-]{43,128}",
        edits in edits(),
    ) {
        let challenge = s256(&verifier);
        prop_assert!(authorize::verifier_matches(&verifier, &challenge));
        prop_assert_eq!(authorize::verifier_matches(&other, &challenge), other == verifier);
        let mut changed = challenge.clone().into_bytes();
        apply(&mut changed, &edits);
        let changed = String::from_utf8_lossy(&changed);
        prop_assert_eq!(authorize::verifier_matches(&verifier, &changed), changed == challenge);
    }

    #[test]
    fn fuzz_pkce_arbitrary_strings(verifier in ".{0,200}", challenge in ".{0,60}") {
        let valid = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        let expected = valid && challenge == s256(&verifier);
        prop_assert_eq!(authorize::verifier_matches(&verifier, &challenge), expected);
        prop_assert_eq!(authorize::verifier_matches(&verifier, &s256(&verifier)), valid, "RFC 7636 §4.1");
    }
}
