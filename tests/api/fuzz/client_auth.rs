//! Client authentication at `POST /token`, over HTTP: any `Authorization` header (well-formed
//! Basic with RFC 6749 §2.3.1 escaping, unescaped, random bytes, other schemes, nonsense) with
//! any `client_id` / `client_secret` in the body, alone or both at once. Never a 5xx or a
//! dropped connection; a token only for exactly one correct method with the right secret;
//! every refusal `401 invalid_client` (with a `Basic` challenge when a header was sent) or
//! `400 invalid_request` / `unsupported_grant_type` (malformed requests are refused before
//! anyone is authenticated).

use std::sync::LazyLock;

use base64::{Engine, engine::general_purpose::STANDARD};
use latchkey::oidc::clients::{self, ClientSpec};
use proptest::prelude::*;
use reqwest::{StatusCode, header};
use serde_json::Value;

use super::config;
use crate::helpers::{Backend, TestApp};

/// A confidential client whose secret needs escaping, and a public client.
const CLIENT_ID: &str = "fuzz-confidential";
const SECRET: &str = "s3cret:with%25 special+chars&more=yes/0123456789";
const PUBLIC_ID: &str = "fuzz-public";

/// Latchkey (without rate limits: the cases come fast), its runtime, and the two clients.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
    http: reqwest::Client,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(async {
        let app = TestApp::spawn_with(Backend::Embedded, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
        let spec = |public: bool| ClientSpec {
            name: "Fuzz".into(),
            redirect_uris: vec!["http://localhost:9/callback".into()],
            public,
            grant_types: (!public).then(|| vec!["authorization_code".into(), "client_credentials".into()]),
            client_secret: (!public).then(|| SECRET.to_owned()),
            ..Default::default()
        };
        let (db, secrets, now) = (&app.state.db, &app.state.client_secrets, chrono::Utc::now());
        clients::upsert(db, secrets, CLIENT_ID, &spec(false), now).await.unwrap();
        clients::upsert(db, secrets, PUBLIC_ID, &spec(true), now).await.unwrap();
        app
    });
    Fixture { runtime, app, http: reqwest::Client::new() }
});

fn escape(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Client ids and secrets: the real ones, near misses, and anything.
fn credential() -> impl Strategy<Value = String> {
    let interesting =
        [CLIENT_ID, SECRET, PUBLIC_ID, "", ":", "%", "%zz", "%3A", "+", "fuzz-confidential ", "FUZZ-CONFIDENTIAL"]
            .map(str::to_owned)
            .to_vec();
    prop_oneof![3 => prop::sample::select(interesting), 1 => "[ -~]{0,40}", 1 => "\\PC{0,12}"]
}

/// `Authorization` header values.
fn authorization() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (credential(), credential())
            .prop_map(|(id, secret)| format!("Basic {}", STANDARD.encode(format!("{}:{}", escape(&id), escape(&secret))))),
        1 => (credential(), credential()).prop_map(|(id, secret)| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(|bytes| format!("Basic {}", STANDARD.encode(bytes))),
        1 => "Basic [ -~]{0,60}",
        1 => "[ -~]{0,60}",
        1 => prop::sample::select(vec!["Basic", "Basic ", "basic Zm9vOmJhcg==", "Bearer abc", "Basic Og==", "Basic ==="])
            .prop_map(str::to_owned),
    ]
}

/// A token request: the header (if any) and the form pairs, in order.
#[derive(Clone, Debug)]
struct Request {
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

/// Anything at all.
fn random_request() -> impl Strategy<Value = Request> {
    let grant = prop_oneof![
        4 => Just(Some("client_credentials".to_owned())),
        1 => Just(Some("authorization_code".to_owned())),
        1 => Just(None),
        1 => "[a-z_]{0,20}".prop_map(Some),
    ];
    let extra = prop::collection::vec(
        (prop::sample::select(vec!["client_id", "client_secret", "grant_type", "x"]), credential()),
        0..2,
    );
    (
        prop::option::weighted(0.6, authorization()),
        prop::option::of(credential()),
        prop::option::of(credential()),
        grant,
        extra,
    )
        .prop_map(|(authorization, client_id, secret, grant, extra)| {
            let mut form = Vec::new();
            form.extend(grant.map(|g| ("grant_type".to_owned(), g)));
            form.extend(client_id.map(|id| ("client_id".to_owned(), id)));
            form.extend(secret.map(|s| ("client_secret".to_owned(), s)));
            form.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
            Request { authorization, form }
        })
}

/// A correct client-credentials request (Basic, or in the body), then perhaps one change.
fn near_valid_request() -> impl Strategy<Value = Request> {
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let edit = prop_oneof![
        3 => Just(None),
        1 => (prop::sample::select(vec!["client_id", "client_secret", "grant_type", "x"]), credential()).prop_map(Some),
    ];
    (any::<bool>(), any::<bool>(), edit).prop_map(move |(basic, escaped, edit)| {
        let mut form = vec![pair("grant_type", "client_credentials")];
        let authorization = if basic {
            let (id, secret) =
                if escaped { (escape(CLIENT_ID), escape(SECRET)) } else { (CLIENT_ID.into(), SECRET.into()) };
            Some(format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))))
        } else {
            form.extend([pair("client_id", CLIENT_ID), pair("client_secret", SECRET)]);
            None
        };
        if let Some((name, value)) = edit {
            match form.iter_mut().find(|(k, _)| k == name) {
                Some(existing) if value.len() % 2 == 0 => existing.1 = value,
                _ => form.push((name.to_owned(), value)),
            }
        }
        Request { authorization, form }
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![random_request(), near_valid_request()]
}

/// The id and secret of a Basic header, decoded as RFC 6749 §2.3.1 says.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(STANDARD.decode(value.strip_prefix("Basic ")?.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

/// A form value as the endpoint reads it: present and not empty.
fn get<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Whether the request authenticates a client by exactly one method: the confidential client
/// with its secret (Basic, or in the body), or the public client by its id alone.
fn authenticates(request: &Request) -> bool {
    let mut names: Vec<&str> = request.form.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return false;
    }
    match &request.authorization {
        Some(header) => {
            basic_credentials(header).is_some_and(|(id, secret)| id == CLIENT_ID && secret == SECRET)
                && get(request, "client_secret").is_none()
                && get(request, "client_id").is_none_or(|id| id == CLIENT_ID)
        }
        None => matches!(
            (get(request, "client_id"), get(request, "client_secret")),
            (Some(CLIENT_ID), Some(SECRET)) | (Some(PUBLIC_ID), None)
        ),
    }
}

/// Whether the request should get a token: the confidential client, authenticated, asking for
/// client credentials (which need nothing else).
fn should_succeed(request: &Request) -> bool {
    authenticates(request)
        && get(request, "grant_type") == Some("client_credentials")
        && (request.authorization.is_some() || get(request, "client_id") == Some(CLIENT_ID))
}

proptest! {
    #![proptest_config(config(256))]

    /// Every answer is honest; only the real credentials, sent one way, get a token.
    #[test]
    fn fuzz_token_client_authentication(request in request()) {
        let fixture = &*FIXTURE;
        let (status, challenge, body) = fixture.runtime.block_on(async {
            let mut sent = fixture.http.post(format!("{}/token", fixture.app.base)).form(&request.form);
            if let Some(value) = &request.authorization {
                sent = sent.header(header::AUTHORIZATION, value);
            }
            let response = sent.send().await.expect("an answer, not a dropped connection");
            let challenge = response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
            (response.status(), challenge, response.json::<Value>().await.expect("a JSON answer"))
        });
        let error = body["error"].as_str().unwrap_or_default();
        if should_succeed(&request) {
            prop_assert_eq!(status, StatusCode::OK, "{}", body);
            prop_assert!(body["access_token"].is_string());
        } else {
            match status {
                StatusCode::UNAUTHORIZED => {
                    prop_assert_eq!(error, "invalid_client");
                    if request.authorization.is_some() {
                        prop_assert!(challenge.is_some_and(|c| c.starts_with("Basic")), "a Basic challenge");
                    }
                }
                StatusCode::BAD_REQUEST => {
                    // Malformed requests are refused before authentication; an authenticated
                    // client may also ask for something it may not have.
                    let allowed: &[&str] = if authenticates(&request) {
                        &["invalid_request", "unsupported_grant_type", "unauthorized_client", "invalid_grant"]
                    } else {
                        &["invalid_request", "unsupported_grant_type"]
                    };
                    prop_assert!(allowed.contains(&error), "{}", body);
                }
                other => prop_assert!(false, "{other}: {body}"),
            }
            prop_assert!(body["access_token"].is_null(), "no token: {}", body);
            prop_assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{}", body);
        }
    }
}
