//! PostgreSQL lost during the token exchange, behind a proxy that can cut it (open connections
//! closed, new ones refused). Cut before the exchange, and cut at the very moment the exchange
//! writes the grant: either way the token endpoint answers 503 `temporarily_unavailable`,
//! `/readyz` names the database, no grant or refresh token is left behind, and once the database
//! is back the same code is redeemable, exactly once, with working tokens.

use std::time::{Duration, Instant};

use entity::{grant, refresh_token};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;

use crate::{
    helpers::{Backend, TestApp},
    oidc::{authorize, first_party, redeem_code, register, signed_in_person, userinfo_status},
    proxy::FaultProxy,
};

/// How long a request may wait for a database connection (the pool's acquire timeout, 10 s),
/// with room to spare.
const ACQUIRE_BOUND: Duration = Duration::from_secs(14);

#[tokio::test]
async fn database_lost_during_the_token_exchange() {
    let Some(Backend::Scaled { database_url, redis_url }) = Backend::scaled() else { return };
    let database = FaultProxy::start(&database_url).await;
    // Without TLS, so that the proxy sees the statement it is to cut at.
    let mut proxied = url::Url::parse(&database.url_for(&database_url)).unwrap();
    proxied.query_pairs_mut().append_pair("sslmode", "disable");
    let app = TestApp::spawn(Backend::Scaled { database_url: proxied.into(), redis_url }).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (browser, _, _) = signed_in_person(&app).await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;

    // The database is gone before the request arrives.
    database.cut().await;
    let started = Instant::now();
    let (ready, (status, body, _)) =
        tokio::join!(readyz(&app), redeem_code(&app, &client_id, &secret, &code, &verifier));
    assert!(started.elapsed() < ACQUIRE_BOUND, "answered after {:?}", started.elapsed());
    assert_unavailable(status, &body);
    assert_eq!(ready.0, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.1);
    assert_ne!(ready.1["checks"]["database"], "ok", "/readyz names the database: {}", ready.1);
    assert_eq!(ready.1["checks"]["redis"], "ok");
    database.restore().await;
    wait_until_ready(&app).await;
    assert_eq!(stored(&app).await, (0, 0), "nothing was written");

    // The database goes away at the moment the exchange stores the grant.
    database.cut_when_sent(br#"INSERT INTO "grants""#);
    let (status, body, _) = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_unavailable(status, &body);
    assert_ne!(readyz(&app).await.1["checks"]["database"], "ok", "the cut happened");
    database.restore().await;
    wait_until_ready(&app).await;
    assert_eq!(stored(&app).await, (0, 0), "no grant or refresh token from the failed exchange");

    let (status, tokens, _) = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "the code is still redeemable: {tokens}");
    assert_eq!(userinfo_status(&app, tokens["access_token"].as_str().unwrap()).await, StatusCode::OK);
    assert_eq!(stored(&app).await, (1, 1));
    let (status, replay, _) = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "once only");
    assert_eq!(stored(&app).await, (1, 1));
}

#[track_caller]
fn assert_unavailable(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("Try again"), "{body}");
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn wait_until_ready(app: &TestApp) {
    for _ in 0..100 {
        if readyz(app).await.0 == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Latchkey did not become ready again once the database was back");
}

/// How many grants and refresh tokens the database holds (the schema is this test's own).
async fn stored(app: &TestApp) -> (u64, u64) {
    let grants = grant::Entity::find().count(&app.state.db).await.unwrap();
    let refresh_tokens = refresh_token::Entity::find().count(&app.state.db).await.unwrap();
    (grants, refresh_tokens)
}
