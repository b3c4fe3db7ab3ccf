//! Floods of half-finished sign-ins: one address opening login transactions (pending
//! authorization requests, ceremonies) without end hits 429 at `LATCHKEY_LOGIN_TRANSACTIONS_PER_IP`,
//! while other addresses go on; thousands of addresses, each opening a few, leave the in-process
//! store within `LATCHKEY_MEMORY_STORE_MAX_ENTRIES` — and the people already signed in stay so.

use std::sync::Arc;

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
    oidc::{REDIRECT_URI, first_party, register, urlencode},
    on_both_backends,
};

on_both_backends!(one_address_is_capped);

fn authorize_path(client_id: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        urlencode(REDIRECT_URI)
    )
}

/// A GET from the client address `ip` (the tests' peer is a trusted proxy), as a browser
/// (`Accept: text/html`) or not.
async fn get_from(http: &reqwest::Client, url: &str, ip: &str, browser: bool) -> reqwest::Response {
    let accept = if browser { "text/html" } else { "application/json" };
    http.get(url).header("x-forwarded-for", ip).header(header::ACCEPT, accept).send().await.unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn one_address_is_capped(backend: Backend) {
    let settings = [("LATCHKEY_LOGIN_TRANSACTIONS_PER_IP", "20"), ("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1")];
    let app = TestApp::spawn_with(backend, &settings).await;
    let (client_id, _) = register(&app, first_party()).await;
    let http = no_redirects();
    let authorize = format!("{}{}", app.base, authorize_path(&client_id));
    let before = app.state.ephemeral.entry_count();

    // Pending requests and ceremonies count together: 10 of each.
    for _ in 0..10 {
        assert_eq!(get_from(&http, &authorize, "198.51.100.7", true).await.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            get_from(&http, &format!("{}/login", app.base), "198.51.100.7", true).await.status(),
            StatusCode::OK
        );
    }
    let page = get_from(&http, &authorize, "198.51.100.7", true).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = page.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(page.headers().get(header::LOCATION).is_none());
    assert!(page.headers().get(header::SET_COOKIE).is_none_or(|c| !c.to_str().unwrap().contains("latchkey_authz")));
    let body = page.text().await.unwrap();
    assert!(body.contains("<h1") && body.contains("Too many requests from your address"), "a readable page: {body}");

    let json = get_from(&http, &format!("{}/login", app.base), "198.51.100.7", false).await;
    assert_eq!(json.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json.headers()[header::CONTENT_TYPE], "application/problem+json");
    let problem: Value = json.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert!(problem["detail"].as_str().unwrap().contains("Too many requests"));

    if let (Some(before), Some(after)) = (before, app.state.ephemeral.entry_count()) {
        // 20 transactions, the counters of two limits, nothing from the refused requests.
        assert!(after <= before + 20 + 2, "{before} → {after}");
    }
    // Another address is not affected.
    assert_eq!(get_from(&http, &authorize, "198.51.100.8", true).await.status(), StatusCode::SEE_OTHER);

    // With rate limits off, there is no cap.
    let off = TestApp::spawn_with(Backend::Embedded, &[("LATCHKEY_RATE_LIMITS", "off"), settings[0]]).await;
    let (client_id, _) = register(&off, first_party()).await;
    for _ in 0..25 {
        let response = http.get(format!("{}{}", off.base, authorize_path(&client_id))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
}

/// Half-finished flows from this many addresses, and the store's cap.
const FLOWS: usize = 5_000;
const MAX_ENTRIES: usize = 1_000;

#[tokio::test]
async fn a_flood_from_many_addresses_keeps_the_in_process_store_bounded() {
    let settings = [("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1"), ("LATCHKEY_MEMORY_STORE_MAX_ENTRIES", "1000")];
    let app = Arc::new(TestApp::spawn_with(Backend::Embedded, &settings).await);
    let (client_id, _) = register(&app, first_party()).await;
    let person = app.browser();
    let name = unique_name("flooded");
    person.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Still Here").await;

    let http = no_redirects();
    let authorize = Arc::new(format!("{}{}", app.base, authorize_path(&client_id)));
    let mut peak = 0;
    for batch in 0..FLOWS / 250 {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let (http, authorize, base) = (http.clone(), authorize.clone(), app.base.clone());
            tasks.spawn(async move {
                for i in (worker..250).step_by(8) {
                    let n = batch * 250 + i;
                    let ip = format!("10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256);
                    // Every fifth flow also reaches the passkey step; none goes further.
                    let response = get_from(&http, &authorize, &ip, true).await;
                    assert_eq!(response.status(), StatusCode::SEE_OTHER);
                    if n % 5 == 0 {
                        let csrf = get_from(&http, &format!("{base}/login"), &ip, true).await;
                        assert_eq!(csrf.status(), StatusCode::OK);
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let entries = app.state.ephemeral.entry_count().unwrap();
        assert!(entries <= MAX_ENTRIES, "{entries} entries after {} flows", (batch + 1) * 250);
        peak = peak.max(entries);
    }
    assert!(peak > MAX_ENTRIES / 2, "the flood did fill the store ({peak})");

    // The person signed in before the flood still is; a new sign-in still starts.
    assert_eq!(person.get("/account").await.status, StatusCode::OK, "sessions outlive the flood");
    let fresh = app.browser();
    assert_eq!(fresh.get(&authorize_path(&client_id)).await.location(), "/login");
    assert!(fresh.get("/login").await.body.contains("Username or email"));
    let metrics = app.browser().get("/metrics").await.body;
    assert!(metrics.contains("latchkey_memory_store_entries"), "the store's size is reported");
}
