//! What a relying party's browser code and an HTTP cache see on the public endpoints: CORS for
//! any origin on discovery, JWKS, token and userinfo (plain requests and preflights, answered
//! the same whatever the origin, so nothing in them varies by request), and the discovery
//! document and JWKS served with an `ETag`, `304` when it matches, and a public `Cache-Control`.

use reqwest::{Method, StatusCode, header};

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn any_origin_may_call_the_public_endpoints() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let http = reqwest::Client::new();
    for origin in ["https://rp.example", "http://localhost:3000"] {
        let discovery = http
            .get(format!("{}/.well-known/openid-configuration", app.base))
            .header(header::ORIGIN, origin)
            .send()
            .await
            .unwrap();
        assert_eq!(discovery.status(), StatusCode::OK);
        assert_eq!(discovery.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(discovery.headers().get(header::VARY).is_none(), "the answer is the same for every origin");

        let preflight = http
            .request(Method::OPTIONS, format!("{}/token", app.base))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), StatusCode::OK);
        let allowed = |name| preflight.headers()[name].to_str().unwrap().to_ascii_lowercase();
        assert_eq!(allowed(header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
        assert!(allowed(header::ACCESS_CONTROL_ALLOW_METHODS).contains("post"));
        assert!(allowed(header::ACCESS_CONTROL_ALLOW_HEADERS).contains("authorization"));
        assert!(allowed(header::ACCESS_CONTROL_ALLOW_HEADERS).contains("content-type"));
        assert!(preflight.headers().get(header::VARY).is_none());
    }
    let userinfo = http.get(format!("{}/userinfo", app.base)).header(header::ORIGIN, "https://rp.example").send();
    let userinfo = userinfo.await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED, "no token, but the browser may read why");
    assert_eq!(userinfo.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn discovery_and_jwks_are_cacheable_and_revalidated() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let http = reqwest::Client::new();
    for (path, max_age) in [("/.well-known/openid-configuration", "3600"), ("/jwks.json", "300")] {
        let first = http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CACHE_CONTROL], format!("public, max-age={max_age}").as_str());
        assert_eq!(first.headers()[header::CONTENT_TYPE], "application/json");
        let etag = first.headers()[header::ETAG].clone();
        assert!(etag.to_str().unwrap().starts_with('"'), "a strong ETag: {etag:?}");
        let body = first.bytes().await.unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());

        let revalidated =
            http.get(format!("{}{path}", app.base)).header(header::IF_NONE_MATCH, etag.clone()).send().await.unwrap();
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(revalidated.headers()[header::ETAG], etag);
        assert!(revalidated.bytes().await.unwrap().is_empty());

        let stale = http.get(format!("{}{path}", app.base)).header(header::IF_NONE_MATCH, "\"old\"").send().await;
        let stale = stale.unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
        assert_eq!(stale.bytes().await.unwrap(), body, "the same bytes every time");
    }
}
