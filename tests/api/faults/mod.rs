//! Faults: lost and slow dependencies, crashes, shutdown under load and racing clients. Each test
//! checks the exact answer (status, OAuth error code, readable body), that nothing was
//! half-written or wrongly issued, and that Latchkey recovers without a restart.
//!
//! This file: when Redis goes away, pages and JSON endpoints answer 503 with a readable message
//! (never a panic), `/readyz` names the failed dependency, and Latchkey recovers when Redis is
//! back. The other faults have a module each.

mod code_race;
mod crash;
mod database_cut;
mod shutdown;
mod slow_redis;

use std::{process::Stdio, time::Duration};

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{Backend, Browser, TestApp, free_port};

/// Whether `/login` answers 200 to `browser` within `limit` (tried every 100 ms): recovery
/// after a fault, without a restart.
async fn login_page_answers_within(browser: &Browser, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if browser.get("/login").await.status == StatusCode::OK {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A private redis-server on a free port, so the test can stop it without disturbing others.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<PrivateRedis> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        std::thread::sleep(Duration::from_millis(300));
        Some(PrivateRedis { child, port })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn redis_outage_answers_503_and_recovers() {
    let Some(Backend::Scaled { database_url, .. }) = Backend::scaled() else { return };
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start(port) else {
        eprintln!("notice: redis-server is not installed; skipping the Redis outage test");
        return;
    };
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn(Backend::Scaled { database_url, redis_url }).await;
    let browser = app.browser();
    assert_eq!(browser.get("/login").await.status, StatusCode::OK);

    redis.stop();
    let page = browser.get("/login").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("cannot reach its storage"), "{}", page.body);
    let (status, body) = browser.post_json("/login/passkey", &json!({"id": "x", "rawId": "eA", "type": "public-key", "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"}})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], 503);
    let ready = browser.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.headers()[header::CONTENT_TYPE], "application/json");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_ne!(body["checks"]["redis"], "ok");

    let _restarted = PrivateRedis::start(port).expect("redis restarts");
    assert!(login_page_answers_within(&browser, Duration::from_secs(10)).await, "Latchkey recovers when Redis is back");
}
