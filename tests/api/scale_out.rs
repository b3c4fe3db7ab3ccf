//! Scale-out correctness without Kubernetes: two Latchkey replicas on one PostgreSQL and one
//! Redis, behind a small round-robin proxy on the issuer's port, so consecutive requests of one
//! browser land on alternating replicas. Sign-up, sign-in, the code flow, refresh, sign-out and
//! challenge replay must all work (or fail) exactly as on one replica.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, fresh_schema, redis_prefix, unique_name},
    oidc::{authorize, first_party, redeem_code, register, token_request},
    proxy,
};

/// Two replicas sharing a fresh PostgreSQL schema and Redis prefix, behind a proxy.
struct Cluster {
    issuer: String,
    replicas: [TestApp; 2],
}

async fn cluster() -> Option<Cluster> {
    let Some(Backend::Scaled { database_url, redis_url }) = Backend::scaled() else { return None };
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://localhost:{}", proxy.local_addr().unwrap().port());
    let database = fresh_schema(&database_url).await;
    let prefix = redis_prefix();
    let settings = [
        ("LATCHKEY_ISSUER", issuer.as_str()),
        ("LATCHKEY_DATABASE_URL", database.as_str()),
        ("LATCHKEY_REDIS_URL", redis_url.as_str()),
        ("LATCHKEY_REDIS_PREFIX", prefix.as_str()),
        ("LATCHKEY_KEY_RELOAD_INTERVAL", "1s"),
    ];
    let (a, b) = tokio::join!(
        TestApp::spawn_with(Backend::Embedded, &settings),
        TestApp::spawn_with(Backend::Embedded, &settings)
    );
    proxy::round_robin(proxy, vec![a.local.clone(), b.local.clone()]);
    Some(Cluster { issuer, replicas: [a, b] })
}

/// A browser talking to the issuer (the proxy).
fn browser_at(cluster: &Cluster) -> Browser {
    cluster.replicas[0].browser()
}

#[tokio::test]
async fn any_request_can_land_on_any_replica() {
    let Some(cluster) = cluster().await else { return };
    let browser = browser_at(&cluster);
    let mut auth = SoftAuthenticator::default();
    let name = unique_name("scale");
    // GET /signup, POST /signup and POST /signup/passkey alternate between the replicas.
    let account = browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Sky").await;
    assert!(account.body.contains("Sky"));
    browser.sign_out().await;
    for round in 0..2 {
        // The username step on one replica, the assertion on the other (and the other way round).
        let step = browser.username_step(&name).await;
        let (status, body) = browser.answer_passkey_step(&step, &mut auth).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(browser.get("/account").await.body.contains("Sky"));
        if round == 0 {
            browser.sign_out().await;
        }
    }

    // An authorization request on one replica, the code redeemed on another, refreshes rotating
    // across them.
    let app = &cluster.replicas[0];
    let (client_id, secret) = register(app, first_party()).await;
    let secret = secret.unwrap();
    assert_eq!(app.base, cluster.issuer, "requests go through the proxy");
    let (code, verifier) = authorize(&browser, app, &client_id, "").await;
    let (status, tokens, _) = redeem_code(app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let mut refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let (status, next, _) =
            token_request(app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                .await;
        assert_eq!(status, StatusCode::OK, "{next}");
        refresh = next["refresh_token"].as_str().unwrap().to_owned();
    }

    // Sign-out through one replica ends the session for both.
    browser.sign_out().await;
    for replica in &cluster.replicas {
        assert_eq!(browser.pointed_at(&replica.local).get("/account").await.location(), "/login");
    }
}

#[tokio::test]
async fn a_challenge_taken_on_one_replica_is_gone_on_the_other() {
    let Some(cluster) = cluster().await else { return };
    let browser = browser_at(&cluster);
    let mut auth = SoftAuthenticator { counting: false, ..Default::default() };
    let name = unique_name("replay");
    browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Rae").await;
    browser.sign_out().await;
    let step = browser.username_step(&name).await;
    let assertion = auth.assert(&step.json_block("passkey-options"), &cluster.issuer).unwrap();
    let (on_a, on_b) = (browser.pointed_at(&cluster.replicas[0].local), browser.pointed_at(&cluster.replicas[1].local));
    assert_eq!(on_a.post_json("/login/passkey", &assertion).await.0, StatusCode::OK);
    let (status, body) = on_b.post_json("/login/passkey", &assertion).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("expired")));
}

#[tokio::test]
async fn key_rotation_on_one_replica_reaches_the_other_and_first_starts_agree() {
    let Some(cluster) = cluster().await else { return };
    let [a, b] = &cluster.replicas;
    a.state
        .signing_keys
        .rotate(&a.state.db, Utc::now(), Duration::from_secs(2), Duration::from_secs(3600))
        .await
        .unwrap();
    let rotated = String::from_utf8(a.state.signing_keys.jwks().0.to_vec()).unwrap();
    let mut seen = false;
    // The reload interval is 1 s; 10 s leaves room for a loaded machine (a bound, not a timing).
    for _ in 0..100 {
        let published = reqwest::get(format!("{}/jwks.json", b.local)).await.unwrap().text().await.unwrap();
        if published == rotated {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the other replica publishes the rotated keys within its reload interval");

    // Two replicas starting at the same moment on an empty database create one key per algorithm.
    let Some(Backend::Scaled { database_url, redis_url }) = Backend::scaled() else { return };
    let database = fresh_schema(&database_url).await;
    let settings = [("LATCHKEY_DATABASE_URL", database.as_str()), ("LATCHKEY_REDIS_URL", redis_url.as_str())];
    let (one, _two) = tokio::join!(
        TestApp::spawn_with(Backend::Embedded, &settings),
        TestApp::spawn_with(Backend::Embedded, &settings)
    );
    let keys = entity::signing_key::Entity::find().count(&one.state.db).await.unwrap();
    assert_eq!(keys, 3, "exactly one initial key per algorithm");
}
