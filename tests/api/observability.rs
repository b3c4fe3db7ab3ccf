//! What operators read about each request: the `x-request-id` it is logged under, echoed or
//! generated, and `latchkey_http_requests_total` by route template, method and status, whose
//! label values stay few whatever clients send.

use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn requests_carry_an_id_and_are_counted_in_few_series() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let http = reqwest::Client::new();

    let echoed = http.get(format!("{}/healthz", app.base)).header("x-request-id", "trace-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42", "a well-formed id is kept");
    let generated = http.get(format!("{}/healthz", app.base)).header("x-request-id", "bad id!").send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(id != "bad id!" && uuid::Uuid::parse_str(id).is_ok(), "a malformed id is replaced: {id}");

    for _ in 0..3 {
        let brewed = http.request(Method::from_bytes(b"BREW").unwrap(), format!("{}/healthz", app.base)).send().await;
        assert_eq!(brewed.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let metrics = app.browser().get("/metrics").await.body;
    let healthz_ok = metrics
        .lines()
        .find(|line| line.starts_with("latchkey_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"))
        .expect("GET /healthz is counted");
    let count: f64 = healthz_ok.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{healthz_ok}");
    assert!(!metrics.contains("BREW"), "a method of the client's own making is no label value");
    assert!(
        metrics.contains("latchkey_http_requests_total{route=\"/healthz\",method=\"OTHER\",status=\"405\"}"),
        "it is counted as OTHER"
    );
}
