//! A slow Redis: every reply delayed by 5 s, then also a reconnect through the slow link. The
//! Redis store's per-call timeout (2 s) bounds every request that needs Redis: a page answers
//! 503 with a readable page, the token endpoint `temporarily_unavailable`, `/readyz` names
//! Redis; requests that need no Redis (discovery, JWKS, `/healthz`) are not held up meanwhile.
//! Once the latency is gone everything works again without a restart, and the authorization
//! code that could not be redeemed during the fault still can be, once.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::{
    helpers::{Backend, Browser, TestApp},
    oidc::{authorize, first_party, redeem_code, register, signed_in_person, userinfo_status},
    proxy::FaultProxy,
};

/// Well above the 2 s per-call timeout, well below the 5 s latency: a request bounded by the
/// timeout answers in time, one waiting for a reply does not.
const BOUND: Duration = Duration::from_millis(4500);

#[tokio::test]
async fn slow_redis_answers_503_in_bounded_time_and_recovers() {
    let Some(Backend::Scaled { database_url, redis_url }) = Backend::scaled() else { return };
    let redis = FaultProxy::start(&redis_url).await;
    let app = TestApp::spawn(Backend::Scaled { database_url, redis_url: redis.url_for(&redis_url) }).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let secret = secret.unwrap();
    let (browser, _, _) = signed_in_person(&app).await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    let visitor = app.browser();

    redis.set_latency(Duration::from_secs(5));
    let needs_redis = async {
        tokio::join!(
            timed(login_page(&visitor)),
            timed(redeem_code(&app, &client_id, &secret, &code, &verifier)),
            timed(readyz(&app)),
        )
    };
    let needs_no_redis = async {
        let started = Instant::now();
        for path in ["/.well-known/openid-configuration", "/jwks.json", "/healthz"] {
            assert_eq!(browser.get(path).await.status, StatusCode::OK, "{path}");
        }
        started.elapsed()
    };
    let ((login, token, ready), unaffected) = tokio::join!(needs_redis, needs_no_redis);
    assert!(unaffected < Duration::from_secs(1), "requests without Redis were held up for {unaffected:?}");
    assert_unavailable_page(login);
    let ((status, body, headers), took) = token;
    assert!(took < BOUND, "the token endpoint answered after {took:?}");
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    assert!(body["error_description"].as_str().unwrap().contains("Try again"), "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_redis_named(ready);

    // A reconnect through the slow link is bounded by the same timeout.
    redis.drop_connections();
    assert_unavailable_page(timed(login_page(&visitor)).await);
    assert_redis_named(timed(readyz(&app)).await);

    redis.set_latency(Duration::ZERO);
    let recovered = super::login_page_answers_within(&visitor, Duration::from_secs(10)).await;
    assert!(recovered, "Latchkey recovers once Redis answers promptly again");
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    let (status, tokens, _) = redeem_code(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "the code survived the fault: {tokens}");
    assert_eq!(userinfo_status(&app, tokens["access_token"].as_str().unwrap()).await, StatusCode::OK);
}

async fn timed<T>(request: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let answer = request.await;
    (answer, started.elapsed())
}

/// `GET /login` as a browser sends it (asking for HTML): status, content type, body.
async fn login_page(browser: &Browser) -> (StatusCode, String, String) {
    let response = browser
        .client
        .get(format!("{}/login", browser.base))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    (response.status(), content_type, response.text().await.unwrap())
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[track_caller]
fn assert_unavailable_page(((status, content_type, body), took): ((StatusCode, String, String), Duration)) {
    assert!(took < BOUND, "the page answered after {took:?}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(content_type.starts_with("text/html"), "a page for a browser, not {content_type}");
    assert!(body.contains("cannot reach its storage"), "{body}");
}

#[track_caller]
fn assert_redis_named(((status, body), took): ((StatusCode, Value), Duration)) {
    assert!(took < BOUND, "/readyz answered after {took:?}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "ok");
    assert_ne!(body["checks"]["redis"], "ok", "{body}");
}
