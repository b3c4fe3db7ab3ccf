//! Username enumeration: the username step (`POST /login`, answered with the passkey step and
//! its request options) must not tell a name with an account from one without — not by status,
//! cookies or page, and not by how long it takes.
//!
//! Timing is measured over the real HTTP stack: warm-up, then known and unknown names strictly
//! interleaved (the order within each pair alternating, so drift of a busy machine hits both
//! alike), compared by median and by a Mann–Whitney U test. A round only counts as "different"
//! when the difference is both significant (|z| > 2.58, p < 0.01) and material (medians more
//! than 10 % apart); the test fails only when three rounds in a row differ in the same
//! direction. Skipping the passkey query made unknown names 15–40 % faster in every round
//! (the bug this test found); noise on a loaded 2-core machine does not repeat three times the
//! same way.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, Page, TestApp, between, unique_name},
    on_both_backends,
};

on_both_backends!(
    the_username_step_looks_the_same_for_unknown_names,
    the_username_step_takes_as_long_for_unknown_names
);

/// Latchkey without rate limits (the same checks run for every name anyway) and three people
/// with a passkey each; returns their usernames.
async fn app_with_people(backend: Backend) -> (TestApp, Vec<String>) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    let mut names = Vec::new();
    for _ in 0..3 {
        let name = unique_name("known");
        let browser = app.browser();
        browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), &name).await;
        names.push(name);
    }
    (app, names)
}

/// The username step as a fresh browser sees it.
async fn username_step(app: &TestApp, name: &str) -> Page {
    let browser = app.browser();
    let csrf = browser.get("/login").await.csrf_token();
    browser.post_form("/login", &[("csrf_token", &csrf), ("username", name)]).await
}

/// `Set-Cookie` headers with their values blanked: names and attributes only.
fn cookie_attributes(page: &Page) -> Vec<String> {
    let mut cookies: Vec<String> = page
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            let (name, rest) = v.to_str().unwrap().split_once('=').unwrap();
            format!("{name}=…{}", rest.find(';').map_or("", |at| &rest[at..]))
        })
        .collect();
    cookies.sort();
    cookies
}

/// The page with everything that legitimately differs blanked: the typed name, the CSRF token,
/// and in the request options the challenge and credential ids (one entry kept: a person may
/// have one passkey or several, and decoys have one or two).
fn page_shape(page: &Page, name: &str) -> String {
    let mut options = page.json_block("passkey-options");
    options["publicKey"]["challenge"] = json!("");
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert!(!allowed.is_empty(), "an allow list, never an empty one");
    let mut first = allowed[0].clone();
    first["id"] = json!("");
    options["publicKey"]["allowCredentials"] = json!([first]);
    let raw_options = between(&page.body, "id=\"passkey-options\">", "</script>").unwrap();
    page.body.replace(raw_options, &options.to_string()).replace(&page.csrf_token(), "CSRF").replace(name, "NAME")
}

/// Header names of an answer, without those that differ per request or with the body length.
fn header_names(page: &Page) -> Vec<String> {
    let mut names: Vec<String> = page
        .headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| !matches!(k.as_str(), "date" | "x-request-id" | "content-length"))
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn the_username_step_looks_the_same_for_unknown_names(backend: Backend) {
    let (app, known) = app_with_people(backend).await;
    for (i, name) in known.iter().enumerate() {
        let unknown = unique_name("nobody");
        let typed_known = if i == 1 { format!("{name}@example.com") } else { name.clone() };
        let known_page = username_step(&app, &typed_known).await;
        let unknown_page = username_step(&app, &unknown).await;
        assert_eq!(known_page.status, StatusCode::OK);
        assert_eq!(unknown_page.status, StatusCode::OK);
        assert_eq!(header_names(&known_page), header_names(&unknown_page));
        assert_eq!(
            known_page.headers[header::CONTENT_TYPE],
            unknown_page.headers[header::CONTENT_TYPE],
            "same content type"
        );
        let cookies = cookie_attributes(&known_page);
        assert_eq!(cookies, cookie_attributes(&unknown_page), "same cookies with the same attributes");
        assert!(cookies.iter().any(|c| c.starts_with("latchkey_ceremony=…") && c.contains("HttpOnly")), "{cookies:?}");
        assert!(cookies.iter().any(|c| c.starts_with("latchkey_remember=…")), "{cookies:?}");
        assert_eq!(page_shape(&known_page, &typed_known), page_shape(&unknown_page, &unknown), "same page");
    }
}

/// One username step from `browser`, timed from sending to the last byte of the page.
async fn timed_step(browser: &Browser, csrf: &str, name: &str) -> Duration {
    let started = Instant::now();
    let response = browser
        .client
        .post(format!("{}/login", browser.base))
        .form(&[("csrf_token", csrf), ("username", name)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap();
    started.elapsed()
}

/// How one round compared the two paths.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Same,
    UnknownFaster,
    UnknownSlower,
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] }
}

/// The Mann–Whitney U statistic of `a` against `b` as a z-score (normal approximation, tied
/// values ranked by their mean rank): positive when values of `a` tend to be larger.
fn mann_whitney_z(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = a.iter().map(|&x| (x, true)).chain(b.iter().map(|&x| (x, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_sum_a = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += rank * all[i..=j].iter().filter(|(_, from_a)| *from_a).count() as f64;
        i = j + 1;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    (u - n1 * n2 / 2.0) / (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt()
}

/// Samples per path and round, after this many warm-up steps per path.
const SAMPLES: usize = 100;
const WARM_UP: usize = 10;

/// One round: interleaved samples of both paths, then the verdict.
async fn measure(browser: &Browser, csrf: &str, known: &[String], unknown: &[String]) -> Verdict {
    for i in 0..WARM_UP {
        timed_step(browser, csrf, &known[i % known.len()]).await;
        timed_step(browser, csrf, &unknown[i % unknown.len()]).await;
    }
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let (k, u) = (&known[i % known.len()], &unknown[i % unknown.len()]);
        if i % 2 == 0 {
            known_times.push(timed_step(browser, csrf, k).await.as_secs_f64());
            unknown_times.push(timed_step(browser, csrf, u).await.as_secs_f64());
        } else {
            unknown_times.push(timed_step(browser, csrf, u).await.as_secs_f64());
            known_times.push(timed_step(browser, csrf, k).await.as_secs_f64());
        }
    }
    let z = mann_whitney_z(&unknown_times, &known_times);
    let (known_median, unknown_median) = (median(&known_times), median(&unknown_times));
    let ratio = unknown_median / known_median;
    eprintln!(
        "username step: known median {:.0} µs, unknown median {:.0} µs (ratio {ratio:.3}), Mann–Whitney z = {z:.2}",
        known_median * 1e6,
        unknown_median * 1e6
    );
    match (z.abs() > 2.58, (ratio - 1.0).abs() > 0.1) {
        (true, true) if ratio < 1.0 => Verdict::UnknownFaster,
        (true, true) => Verdict::UnknownSlower,
        _ => Verdict::Same,
    }
}

async fn the_username_step_takes_as_long_for_unknown_names(backend: Backend) {
    let (app, known) = app_with_people(backend).await;
    let unknown: Vec<String> = (0..3).map(|_| unique_name("nobody")).collect();
    let browser = app.browser();
    let csrf = browser.get("/login").await.csrf_token();
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let verdict = measure(&browser, &csrf, &known, &unknown).await;
        if verdict == Verdict::Same {
            return;
        }
        verdicts.push(verdict);
    }
    assert!(
        verdicts.windows(2).any(|pair| pair[0] != pair[1]),
        "the username step takes measurably different time for names without an account: {verdicts:?}"
    );
}
