//! Tests of client validation, secrets, writes and the clients file.

use chrono::TimeZone;

use super::{validate::validate_client_id, *};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn later() -> DateTime<Utc> {
    now() + chrono::Duration::hours(1)
}

fn spec() -> ClientSpec {
    ClientSpec { name: "Example".into(), redirect_uris: vec!["https://rp.example/cb".into()], ..ClientSpec::default() }
}

fn secrets() -> ClientSecrets {
    ClientSecrets::from_key(b"test key")
}

async fn db() -> DatabaseConnection {
    let db = store::connect("sqlite::memory:").await.unwrap();
    store::migrate(&db).await.unwrap();
    db
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

type Change = fn(&mut ClientSpec);

#[test]
fn grant_types_round_trip_through_their_oauth_names() {
    for grant in GrantType::ALL {
        assert_eq!(grant.as_str().parse::<GrantType>(), Ok(grant));
    }
    assert_eq!(GrantType::ClientCredentials.as_str(), "client_credentials");
    assert!("implicit".parse::<GrantType>().is_err());
}

#[test]
fn defaults_fill_in_scopes_grants_and_algorithm() {
    let valid = validate(&spec()).unwrap().settings;
    assert_eq!(valid.allowed_scopes, KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    assert_eq!(valid.grant_types, [GrantType::AuthorizationCode, GrantType::RefreshToken].into());
    assert_eq!(valid.id_token_alg, SigningAlg::RS256);
    assert!(!valid.public && !valid.first_party);
    assert_eq!((valid.access_token_ttl, valid.refresh_token_ttl), (None, None));
}

#[test]
fn validation_names_the_field_of_each_broken_rule() {
    let cases: &[(&str, Change, &str, &str)] = &[
        ("empty name", |s| s.name = "  ".into(), "name", "Enter a name"),
        ("long name", |s| s.name = "x".repeat(101), "name", "at most 100"),
        ("empty client_id", |s| s.client_id = Some(String::new()), "client_id", "Enter a client_id"),
        ("long client_id", |s| s.client_id = Some("a".repeat(65)), "client_id", "at most 64"),
        ("client_id with a slash", |s| s.client_id = Some("a/b".into()), "client_id", "letters, digits"),
        ("client_id with a space", |s| s.client_id = Some("a b".into()), "client_id", "letters, digits"),
        ("no redirect URI", |s| s.redirect_uris.clear(), "redirect_uris", "at least one"),
        ("relative URI", |s| s.redirect_uris = vec!["/cb".into()], "redirect_uris", "not an absolute URI"),
        ("fragment", |s| s.redirect_uris = vec!["https://rp.example/cb#x".into()], "redirect_uris", "fragment"),
        ("empty fragment", |s| s.redirect_uris = vec!["https://rp.example/cb#".into()], "redirect_uris", "fragment"),
        ("wildcard", |s| s.redirect_uris = vec!["https://*.rp.example/cb".into()], "redirect_uris", "wildcards"),
        ("surrounding space", |s| s.redirect_uris = vec![" https://rp.example/cb".into()], "redirect_uris", "spaces"),
        ("http elsewhere", |s| s.redirect_uris = vec!["http://rp.example/cb".into()], "redirect_uris", "use https"),
        (
            "http on a look-alike host",
            |s| s.redirect_uris = vec!["http://localhost.evil.example/cb".into()],
            "redirect_uris",
            "use https",
        ),
        ("http on 127.0.0.2", |s| s.redirect_uris = vec!["http://127.0.0.2/cb".into()], "redirect_uris", "https"),
        ("javascript", |s| s.redirect_uris = vec!["javascript:alert(1)".into()], "redirect_uris", "private-use"),
        ("scheme without a dot", |s| s.redirect_uris = vec!["myapp:/cb".into()], "redirect_uris", "private-use"),
        (
            "one bad URI among good ones",
            |s| s.redirect_uris.push("ftp://rp.example/cb".into()),
            "redirect_uris",
            "ftp://rp.example/cb",
        ),
        (
            "post-logout over http",
            |s| s.post_logout_redirect_uris = vec!["http://rp.example/".into()],
            "post_logout_redirect_uris",
            "use https",
        ),
        (
            "post-logout with a fragment",
            |s| s.post_logout_redirect_uris = vec!["https://rp.example/#bye".into()],
            "post_logout_redirect_uris",
            "fragment",
        ),
        (
            "post-logout wildcard",
            |s| s.post_logout_redirect_uris = vec!["https://rp.example/*".into()],
            "post_logout_redirect_uris",
            "wildcards",
        ),
        (
            "unknown scope",
            |s| s.allowed_scopes = Some(vec!["openid".into(), "admin".into()]),
            "allowed_scopes",
            "'admin'",
        ),
        ("no openid scope", |s| s.allowed_scopes = Some(vec!["profile".into()]), "allowed_scopes", "openid"),
        ("no scopes", |s| s.allowed_scopes = Some(vec![]), "allowed_scopes", "openid"),
        ("unknown grant", |s| s.grant_types = Some(vec!["implicit".into()]), "grant_types", "'implicit'"),
        ("no grants", |s| s.grant_types = Some(vec![]), "grant_types", "at least one"),
        (
            "public client_credentials",
            |s| {
                s.public = true;
                s.grant_types = Some(vec!["client_credentials".into()]);
            },
            "grant_types",
            "confidential",
        ),
        (
            "public client with a secret",
            |s| {
                s.public = true;
                s.client_secret = Some(SECRET.into());
            },
            "client_secret",
            "Public clients have no secret",
        ),
        ("short secret", |s| s.client_secret = Some("x".repeat(31)), "client_secret", "at least 32"),
        (
            "unknown alg",
            |s| s.id_token_signed_response_alg = Some("HS256".into()),
            "id_token_signed_response_alg",
            "HS256",
        ),
        (
            "backchannel over http",
            |s| s.backchannel_logout_uri = Some("http://rp.example/logout".into()),
            "backchannel_logout_uri",
            "https",
        ),
        (
            "backchannel relative",
            |s| s.backchannel_logout_uri = Some("/logout".into()),
            "backchannel_logout_uri",
            "absolute",
        ),
        (
            "backchannel fragment",
            |s| s.backchannel_logout_uri = Some("https://rp.example/logout#x".into()),
            "backchannel_logout_uri",
            "fragment",
        ),
        (
            "backchannel private-use scheme",
            |s| s.backchannel_logout_uri = Some("com.example.app:/logout".into()),
            "backchannel_logout_uri",
            "https",
        ),
        ("zero access TTL", |s| s.access_token_ttl_seconds = Some(0), "access_token_ttl_seconds", "positive"),
        ("negative refresh TTL", |s| s.refresh_token_ttl_seconds = Some(-1), "refresh_token_ttl_seconds", "positive"),
        (
            "TTL over a year",
            |s| s.refresh_token_ttl_seconds = Some(31_536_001),
            "refresh_token_ttl_seconds",
            "one year",
        ),
    ];
    for (what, change, field, fragment) in cases {
        let mut spec = spec();
        change(&mut spec);
        let errors = validate(&spec).expect_err(what);
        assert_eq!(errors.keys().copied().collect::<Vec<_>>(), [*field], "{what}: {errors:?}");
        assert!(errors[field].contains(fragment), "{what}: {:?} lacks {fragment:?}", errors[field]);
    }
}

#[test]
fn validation_accepts_the_allowed_edge_cases() {
    let cases: &[(&str, Change)] = &[
        ("http on localhost", |s| s.redirect_uris = vec!["http://localhost:3000/cb".into()]),
        ("http on 127.0.0.1", |s| s.redirect_uris = vec!["http://127.0.0.1:49152/cb".into()]),
        ("http on [::1]", |s| s.redirect_uris = vec!["http://[::1]:8080/cb".into()]),
        ("private-use scheme", |s| s.redirect_uris = vec!["com.example.app:/oauth2redirect".into()]),
        ("query string", |s| s.redirect_uris = vec!["https://rp.example/cb?tenant=a".into()]),
        ("http anywhere when allowed", |s| {
            s.allow_http_redirect_uris = true;
            s.redirect_uris = vec!["http://rp:3000/cb".into()];
            s.post_logout_redirect_uris = vec!["http://rp:3000/".into()];
        }),
        ("client_credentials without redirect URIs", |s| {
            s.redirect_uris.clear();
            s.grant_types = Some(vec!["client_credentials".into()]);
        }),
        ("a client_id at the limit", |s| s.client_id = Some(format!("app.v1_{}", "x".repeat(57)))),
        ("a 100-character name", |s| s.name = "n".repeat(100)),
        ("openid only", |s| s.allowed_scopes = Some(vec!["openid".into()])),
        ("ES256", |s| s.id_token_signed_response_alg = Some("ES256".into())),
        ("EdDSA", |s| s.id_token_signed_response_alg = Some("EdDSA".into())),
        ("backchannel https", |s| s.backchannel_logout_uri = Some("https://rp.example/logout".into())),
        ("backchannel on loopback", |s| s.backchannel_logout_uri = Some("http://127.0.0.1:9000/logout".into())),
        ("TTL of one second", |s| s.access_token_ttl_seconds = Some(1)),
        ("TTL of one year", |s| s.refresh_token_ttl_seconds = Some(31_536_000)),
        ("a 32-character secret", |s| s.client_secret = Some(SECRET.into())),
        ("a public client", |s| s.public = true),
    ];
    for (what, change) in cases {
        let mut spec = spec();
        change(&mut spec);
        if let Err(errors) = validate(&spec) {
            panic!("{what}: {errors:?}");
        }
    }
}

#[test]
fn duplicate_uris_are_stored_once() {
    let mut spec = spec();
    spec.redirect_uris.push(spec.redirect_uris[0].clone());
    assert_eq!(validate(&spec).unwrap().settings.redirect_uris, ["https://rp.example/cb"]);
}

#[test]
fn redirect_uris_match_exactly() {
    let mut spec = spec();
    spec.post_logout_redirect_uris = vec!["https://rp.example/bye".into()];
    let client = validate(&spec).unwrap().into_client("c".into(), None);
    assert!(client.allows_redirect_uri("https://rp.example/cb"));
    for near_miss in [
        "https://rp.example/cb/",
        "https://rp.example/cb?x=1",
        "https://rp.example/cb#",
        "https://RP.example/cb",
        "https://rp.example:443/cb",
        "https://rp.example/c",
        "https://rp.example/cbx",
        "",
    ] {
        assert!(!client.allows_redirect_uri(near_miss), "{near_miss}");
    }
    assert!(client.allows_post_logout_redirect_uri("https://rp.example/bye"));
    assert!(!client.allows_post_logout_redirect_uri("https://rp.example/bye/"));
    assert!(!client.allows_post_logout_redirect_uri("https://rp.example/cb"));
    assert!(client.allows_grant(GrantType::AuthorizationCode));
    assert!(!client.allows_grant(GrantType::ClientCredentials));
    assert!(client.allows_scope("offline_access"));
    assert!(!client.allows_scope("admin"));
}

#[test]
fn to_spec_validates_back_to_the_same_client() {
    let mut spec = spec();
    spec.allow_http_redirect_uris = true;
    spec.redirect_uris.push("http://rp:3000/cb".into());
    spec.backchannel_logout_uri = Some("https://rp.example/logout".into());
    spec.refresh_token_ttl_seconds = Some(3600);
    spec.id_token_signed_response_alg = Some("EdDSA".into());
    let client = validate(&spec).unwrap().into_client("c".into(), None);
    let again = validate(&client.to_spec()).unwrap().into_client("c".into(), None);
    assert_eq!(again, client);
    assert!(client.to_spec().allow_http_redirect_uris);
}

#[test]
fn secrets_verify_only_the_right_secret_of_a_confidential_client() {
    let secrets = secrets();
    let secret = ClientSecrets::generate();
    assert_eq!(secret.len(), 43);
    let hash = secrets.hash(&secret);
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(ClientSecrets::from_key(b"other key").hash(&secret), hash, "the hash is keyed");

    let mut client = validate(&spec()).unwrap().into_client("c".into(), Some(hash));
    assert!(secrets.verify(&client, &secret));
    assert!(!secrets.verify(&client, &ClientSecrets::generate()));
    assert!(!secrets.verify(&client, &secret[..42]));
    assert!(!secrets.verify(&client, ""));
    assert!(!ClientSecrets::from_key(b"other key").verify(&client, &secret));

    client.settings.public = true;
    assert!(!secrets.verify(&client, &secret), "public clients never authenticate");
    client.settings.public = false;
    client.secret_hash = None;
    assert!(!secrets.verify(&client, &secret));
    assert!(!secrets.verify(&client, ""));
}

#[test]
fn debug_output_hides_secrets() {
    let mut spec = spec();
    spec.client_secret = Some(SECRET.into());
    assert!(!format!("{spec:?}").contains(SECRET));
    let valid = validate(&spec).unwrap();
    assert!(!format!("{valid:?}").contains(SECRET));
    let hash = secrets().hash(SECRET);
    let client = valid.into_client("c".into(), Some(hash.clone()));
    assert!(!format!("{client:?}").contains(&hash));
    assert!(!format!("{:?}", secrets()).contains("test key"));
}

#[tokio::test]
async fn create_stores_a_confidential_client_with_a_hashed_secret() {
    let (db, secrets) = (db().await, secrets());
    let (client, secret) = create(&db, &secrets, &spec(), now()).await.unwrap();
    let secret = secret.expect("confidential clients get a secret");
    assert_eq!(client.client_id.len(), 22);
    assert!(validate_client_id(&client.client_id).is_ok());
    assert!(secrets.verify(&client, &secret));

    let row = rows::find(&db, &client.client_id).await.unwrap().unwrap();
    assert_eq!(row.secret_hash.as_deref(), Some(secrets.hash(&secret).as_str()));
    assert_eq!((row.created_at, row.updated_at), (now(), now()));
    assert_eq!(Client::from_model(row).unwrap(), client);

    let (other, _) = create(&db, &secrets, &spec(), now()).await.unwrap();
    assert_ne!(other.client_id, client.client_id);
}

#[tokio::test]
async fn create_gives_public_clients_no_secret() {
    let (db, secrets) = (db().await, secrets());
    let spec = ClientSpec { public: true, client_id: Some("spa".into()), ..spec() };
    let (client, secret) = create(&db, &secrets, &spec, now()).await.unwrap();
    assert_eq!((client.client_id.as_str(), secret, client.has_secret()), ("spa", None, false));
    let row = rows::find(&db, "spa").await.unwrap().unwrap();
    assert_eq!(row.secret_hash, None);
    assert_eq!(Client::from_model(row).unwrap(), client);
}

#[tokio::test]
async fn create_refuses_a_taken_client_id_an_operator_secret_and_invalid_specs() {
    let (db, secrets) = (db().await, secrets());
    let spec = ClientSpec { client_id: Some("web".into()), ..spec() };
    create(&db, &secrets, &spec, now()).await.unwrap();
    assert!(matches!(create(&db, &secrets, &spec, now()).await, Err(ClientError::Conflict)));

    let with_secret = ClientSpec { client_id: Some("other".into()), client_secret: Some(SECRET.into()), ..spec };
    match create(&db, &secrets, &with_secret, now()).await {
        Err(ClientError::Invalid(errors)) => {
            assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["client_secret"])
        }
        other => panic!("{other:?}"),
    }
    let invalid = ClientSpec { name: String::new(), ..with_secret };
    match create(&db, &secrets, &invalid, now()).await {
        Err(ClientError::Invalid(errors)) => {
            assert_eq!(errors.keys().copied().collect::<Vec<_>>(), ["client_secret", "name"])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rows::list(&db).await.unwrap().len(), 1);
}

#[tokio::test]
async fn upsert_is_idempotent_and_keeps_the_secret() {
    let (db, secrets) = (db().await, secrets());
    let (client, secret, created) = upsert(&db, &secrets, "web", &spec(), now()).await.unwrap();
    let secret = secret.expect("a confidential client without a secret gets one");
    assert!(created);
    let before = rows::find(&db, "web").await.unwrap().unwrap();

    let (again, no_secret, created) = upsert(&db, &secrets, "web", &spec(), later()).await.unwrap();
    assert_eq!((again, no_secret, created), (client, None, false));
    assert_eq!(rows::find(&db, "web").await.unwrap().unwrap(), before, "nothing written, not even updated_at");

    let renamed = ClientSpec { name: "Renamed".into(), ..spec() };
    let (client, no_secret, _) = upsert(&db, &secrets, "web", &renamed, later()).await.unwrap();
    assert_eq!((client.settings.name.as_str(), no_secret), ("Renamed", None));
    assert!(secrets.verify(&client, &secret), "the existing secret is kept");
    let row = rows::find(&db, "web").await.unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.created_at, row.updated_at), ("Renamed", now(), later()));
}

#[tokio::test]
async fn upsert_replaces_every_field() {
    let (db, secrets) = (db().await, secrets());
    let full = ClientSpec {
        first_party: true,
        post_logout_redirect_uris: vec!["https://rp.example/bye".into()],
        backchannel_logout_uri: Some("https://rp.example/logout".into()),
        access_token_ttl_seconds: Some(60),
        id_token_signed_response_alg: Some("ES256".into()),
        ..spec()
    };
    upsert(&db, &secrets, "web", &full, now()).await.unwrap();
    let (client, ..) = upsert(&db, &secrets, "web", &spec(), later()).await.unwrap();
    let stored = Client::from_model(rows::find(&db, "web").await.unwrap().unwrap()).unwrap();
    assert_eq!(stored, client);
    let stored = stored.settings;
    assert!(!stored.first_party);
    assert!(stored.post_logout_redirect_uris.is_empty());
    assert_eq!((stored.backchannel_logout_uri, stored.access_token_ttl), (None, None));
    assert_eq!(stored.id_token_alg, SigningAlg::RS256);
}

#[tokio::test]
async fn upsert_uses_a_given_secret_and_clears_it_for_public_clients() {
    let (db, secrets) = (db().await, secrets());
    let given = ClientSpec { client_secret: Some(SECRET.into()), ..spec() };
    let (client, generated, _) = upsert(&db, &secrets, "web", &given, now()).await.unwrap();
    assert_eq!(generated, None);
    assert!(secrets.verify(&client, SECRET));

    let public = ClientSpec { public: true, ..spec() };
    let (client, generated, _) = upsert(&db, &secrets, "web", &public, later()).await.unwrap();
    assert_eq!((generated, client.has_secret()), (None, false));
    assert_eq!(rows::find(&db, "web").await.unwrap().unwrap().secret_hash, None);

    let (client, generated, _) = upsert(&db, &secrets, "web", &spec(), later()).await.unwrap();
    assert!(secrets.verify(&client, &generated.expect("confidential again: a fresh secret")));
}

#[tokio::test]
async fn upsert_refuses_a_different_client_id_in_the_spec() {
    let (db, secrets) = (db().await, secrets());
    let spec = ClientSpec { client_id: Some("other".into()), ..spec() };
    match upsert(&db, &secrets, "web", &spec, now()).await {
        Err(ClientError::Invalid(errors)) => assert!(errors["client_id"].contains("'web'")),
        other => panic!("{other:?}"),
    }
    match upsert(&db, &secrets, "bad id", &ClientSpec { client_id: None, ..spec }, now()).await {
        Err(ClientError::Invalid(errors)) => assert!(errors.contains_key("client_id")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rotate_secret_replaces_the_secret_of_confidential_clients_only() {
    let (db, secrets) = (db().await, secrets());
    let (client, old) = create(&db, &secrets, &spec(), now()).await.unwrap();
    let new = rotate_secret(&db, &secrets, &client.client_id, later()).await.unwrap().unwrap();
    let row = rows::find(&db, &client.client_id).await.unwrap().unwrap();
    assert_eq!(row.updated_at, later());
    let client = Client::from_model(row).unwrap();
    assert!(secrets.verify(&client, &new));
    assert!(!secrets.verify(&client, &old.unwrap()));

    assert_eq!(rotate_secret(&db, &secrets, "nobody", now()).await.unwrap(), None);
    let public = ClientSpec { public: true, client_id: Some("spa".into()), ..spec() };
    create(&db, &secrets, &public, now()).await.unwrap();
    assert!(matches!(rotate_secret(&db, &secrets, "spa", now()).await, Err(ClientError::Invalid(_))));
}

/// A temporary file that removes itself.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("latchkey-clients-{}.yaml", crate::random_token()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const FILE: &str = r#"
clients:
  - client_id: web
    name: Web app
    redirect_uris: [https://app.example/callback]
    post_logout_redirect_uris: [https://app.example/]
    client_secret: "0123456789abcdef0123456789abcdef"
    first_party: true
  - client_id: cli
    name: Command line
    public: true
    redirect_uris:
      - http://127.0.0.1/callback
    allowed_scopes: [openid, offline_access]
    grant_types: [authorization_code, refresh_token]
"#;

#[tokio::test]
async fn apply_file_upserts_every_client_idempotently() {
    let (db, secrets) = (db().await, secrets());
    let file = TempFile::new(FILE);
    assert_eq!(apply_file(&db, &secrets, &file.0, now()).await.unwrap(), 2);
    let stored = rows::list(&db).await.unwrap();
    assert_eq!(apply_file(&db, &secrets, &file.0, later()).await.unwrap(), 2);
    assert_eq!(rows::list(&db).await.unwrap(), stored, "a second apply changes nothing");

    let web = Client::from_model(rows::find(&db, "web").await.unwrap().unwrap()).unwrap();
    assert!(web.settings.first_party && secrets.verify(&web, SECRET));
    let cli = Client::from_model(rows::find(&db, "cli").await.unwrap().unwrap()).unwrap();
    assert!(cli.settings.public && !cli.has_secret());
    assert_eq!(cli.settings.allowed_scopes, ["offline_access".to_owned(), "openid".to_owned()].into());
}

#[tokio::test]
async fn apply_file_reports_every_problem_and_writes_nothing() {
    let (db, secrets) = (db().await, secrets());
    let file = TempFile::new(
        r#"
clients:
  - client_id: web
    name: Web app
    redirect_uris: [https://app.example/callback]
    client_secret: "0123456789abcdef0123456789abcdef"
  - name: No id
    public: true
    redirect_uris: [https://app.example/callback]
  - client_id: confidential
    name: Confidential without a secret
    redirect_uris: [http://app.example/callback]
  - client_id: web
    name: Twice
    public: true
    redirect_uris: [https://app.example/callback]
"#,
    );
    let error = format!("{:#}", apply_file(&db, &secrets, &file.0, now()).await.unwrap_err());
    for expected in [
        file.0.display().to_string(),
        "clients[1]: client_id: Required".into(),
        "clients[2] (confidential): client_secret: Required".into(),
        "clients[2] (confidential): redirect_uris: 'http://app.example/callback'".into(),
        "clients[3] (web): client_id: 'web' appears more than once".into(),
    ] {
        assert!(error.contains(&expected), "{error} lacks {expected}");
    }
    assert!(!error.contains("clients[0]"), "{error}");
    assert!(rows::list(&db).await.unwrap().is_empty());
}

#[tokio::test]
async fn apply_file_refuses_unknown_fields_and_hides_secrets_in_errors() {
    let (db, secrets) = (db().await, secrets());
    let file = TempFile::new(
        r#"
clients:
  - client_id: web
    name: Web app
    client_secret: "a-secret-that-must-not-be-logged-0123"
    redirect_uri: [https://app.example/callback]
"#,
    );
    let error = format!("{:#}", apply_file(&db, &secrets, &file.0, now()).await.unwrap_err());
    assert!(error.contains("redirect_uri"), "{error}");
    assert!(!error.contains("must-not-be-logged"), "{error}");
    let missing = std::env::temp_dir().join("latchkey-no-such-clients-file.yaml");
    assert!(apply_file(&db, &secrets, &missing, now()).await.is_err());
}
