//! Email sign-in end to end against a real SMTP listener, and enrollment links with the
//! software authenticator (including two concurrent redemptions of one link).

use chrono::Utc;
use reqwest::{StatusCode, header};

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, TestApp, between, unique_name},
    oidc::{REDIRECT_URI, first_party, register, urlencode},
    on_both_backends,
    smtp_sink::SmtpSink,
};

on_both_backends!(email_link_signs_in_once_and_resumes_the_application, enrollment_link_is_single_use_even_when_raced);

async fn person_with_passkey(app: &TestApp) -> (String, SoftAuthenticator) {
    let browser = app.browser();
    let mut auth = SoftAuthenticator::default();
    let name = unique_name("mail");
    browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Mae").await;
    (name, auth)
}

/// Asks for a link from the passkey step of `name` in `browser`; returns the page answered.
async fn ask_for_link(browser: &Browser, name: &str) -> crate::helpers::Page {
    let step = browser.username_step(name).await;
    assert!(step.body.contains("Email me a sign-in link"));
    browser.post_form("/login/email", &[("csrf_token", &step.csrf_token())]).await
}

fn link_path(message: &str, base: &str) -> String {
    let token = between(message, &format!("{base}/login/email/"), "\r\n").expect("a sign-in link in the mail");
    format!("/login/email/{}", token.trim())
}

async fn email_link_signs_in_once_and_resumes_the_application(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SMTP_URL", &sink.url())]).await;
    let (name, _) = person_with_passkey(&app).await;
    let (client_id, _) = register(&app, first_party()).await;

    // A new laptop: the application sends the person here, they ask for an email link.
    let laptop = app.browser();
    let authorize = format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        urlencode(REDIRECT_URI)
    );
    assert_eq!(laptop.get(&authorize).await.location(), "/login");
    let answer = ask_for_link(&laptop, &name).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("Check your email"));
    let message = sink.message(0).await;
    assert!(
        message.contains(&format!("To: {name}@example.com")) || message.contains(&format!("<{name}@example.com>")),
        "{message}"
    );
    assert!(message.contains("text/html") && message.contains("text/plain"), "an HTML and a text part");
    let path = link_path(&message, &app.base);

    let page = laptop.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "opening the link does not consume it");
    assert_eq!(laptop.get(&path).await.status, StatusCode::OK);
    let signed_in = laptop.post_form(&path, &[("csrf_token", &page.csrf_token())]).await;
    assert_eq!(signed_in.location(), "/authorize/resume");
    let resumed = laptop.get("/authorize/resume").await;
    assert!(
        resumed.location().starts_with(REDIRECT_URI) && resumed.location().contains("code="),
        "{}",
        resumed.location()
    );

    let again = laptop.post_form(&path, &[("csrf_token", &page.csrf_token())]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "a second press fails");
    assert!(again.body.contains("already used or has expired"));

    // The email session is weaker: it is offered a passkey, cannot delete one, and does not
    // meet a phishing-resistant demand.
    let account = laptop.get("/account").await;
    assert!(account.body.contains("You signed in with an email link"));
    let silent = laptop.get(&format!("{authorize}&acr_values=phr&prompt=none")).await;
    assert!(silent.location().contains("error=unmet_authentication_requirements"), "{}", silent.location());
    let interactive = laptop.get(&format!("{authorize}&acr_values=phr")).await;
    assert_eq!(interactive.location(), "/login", "asked for a passkey sign-in");

    // Unknown names get the same answer and no mail.
    let stranger = app.browser();
    let answer = ask_for_link(&stranger, &unique_name("nobody")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.contains("Check your email"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1);
}

on_both_backends!(expired_links_rate_limits_and_failed_sends);

async fn expired_links_rate_limits_and_failed_sends(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app =
        TestApp::spawn_with(backend.clone(), &[("LATCHKEY_SMTP_URL", &sink.url()), ("LATCHKEY_EMAIL_LINK_TTL", "1s")])
            .await;
    let (name, _) = person_with_passkey(&app).await;
    let browser = app.browser();
    ask_for_link(&browser, &name).await;
    let path = link_path(&sink.message(0).await, &app.base);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(browser.get(&path).await.status, StatusCode::BAD_REQUEST, "an expired link fails");

    for _ in 1..5 {
        assert_eq!(ask_for_link(&browser, &name).await.status, StatusCode::OK);
    }
    let limited = ask_for_link(&browser, &name).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.get(header::RETRY_AFTER).is_some());

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let broken =
        TestApp::spawn_with(backend, &[("LATCHKEY_SMTP_URL", &format!("smtp://127.0.0.1:{closed_port}"))]).await;
    let (name, _) = person_with_passkey(&broken).await;
    let failed = ask_for_link(&broken.browser(), &name).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(failed.body.contains("could not send the email"));
}

async fn enrollment_link_is_single_use_even_when_raced(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_SIGNUP", "closed")]).await;
    assert_eq!(app.browser().get("/signup").await.status, StatusCode::NOT_FOUND);
    let name = unique_name("enrol");
    let user = latchkey::store::users::insert(
        &app.state.db,
        &latchkey::store::users::NewUser {
            id: uuid::Uuid::new_v4(),
            username: name.clone(),
            email: format!("{name}@example.com"),
            display_name: "Eve".into(),
        },
        Utc::now(),
    )
    .await
    .unwrap();
    let link = latchkey::enrollment::issue_link(&app.state, user.id, None, Utc::now()).await.unwrap();
    let path = link.url.strip_prefix(&app.base).unwrap().to_owned();

    let one = app.browser();
    let two = app.browser();
    for browser in [&one, &two] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "opening does not consume");
        assert!(page.body.contains("Create a passkey"));
    }
    let mut responses = Vec::new();
    for browser in [&one, &two] {
        let (status, options) = browser.post_json(&format!("{path}/options"), &serde_json::json!({})).await;
        assert_eq!(status, StatusCode::OK, "{options}");
        responses.push(SoftAuthenticator::default().register(&options, &app.base));
    }
    let (a, b) = tokio::join!(one.post_json(&path, &responses[0]), two.post_json(&path, &responses[1]));
    let statuses = [a.0, b.0];
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?} {a:?} {b:?}");
    let winner = if a.0 == StatusCode::OK { &one } else { &two };
    assert!(winner.get("/account").await.body.contains("Eve"), "the winner is signed in");
    let passkeys = latchkey::store::passkeys::list_for_user(&app.state.db, user.id).await.unwrap();
    assert_eq!(passkeys.len(), 1);
    assert_eq!(app.browser().get(&path).await.status, StatusCode::NOT_FOUND, "used up");
}
