//! Header and markup injection: CR/LF and HTML in `state`, in parameter names that end up in
//! `error_description`, in `client_id`, `redirect_uri` and `login_hint`, in a typed username,
//! a display name and end-session parameters. Redirects carry them percent-encoded (and give
//! them back unchanged), no header is injected, and every page escapes them: no markup from
//! the request ever reaches a page raw.

use reqwest::{StatusCode, header};

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, Page, TestApp, unique_name},
    oidc::{REDIRECT_URI, first_party, redeem_code, register, urlencode},
    on_both_backends,
};

on_both_backends!(redirects_carry_input_percent_encoded, pages_escape_input);

/// A header injection attempt.
const CRLF: &str = "a\r\nSet-Cookie: x=1\r\nLocation: https://evil.example";
/// Markup that would run if a page echoed it raw.
const SCRIPT: &str = "<script>alert(1)</script>";
/// Markup that first closes an attribute.
const ATTRIBUTE: &str = "\"><script>alert(1)</script><x a=\"";
/// The PKCE pair of RFC 7636 Appendix B.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const LOGOUT_URI: &str = "http://localhost:9/signed-out";

/// Asserts that `page` shows no markup from the request, and no injected header.
fn assert_escaped(page: &Page, case: &str) {
    assert!(!page.body.contains("<script>alert"), "{case}: raw markup in the page");
    assert!(!page.body.contains("<x a="), "{case}: an attribute was closed");
    assert_no_injected_header(page, case);
}

fn assert_no_injected_header(page: &Page, case: &str) {
    for cookie in page.headers.get_all(header::SET_COOKIE) {
        assert!(!cookie.to_str().unwrap().starts_with("x="), "{case}: injected cookie");
    }
    assert!(page.headers.get_all(header::LOCATION).iter().count() <= 1, "{case}: one Location at most");
}

/// Asserts a redirect to the client whose query gives `state` back unchanged, percent-encoded.
fn assert_redirect_with_state(page: &Page, state: &str, case: &str) -> url::Url {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{case}: {}", page.body);
    assert_no_injected_header(page, case);
    let location = page.location();
    assert!(location.starts_with(REDIRECT_URI) || location.starts_with(LOGOUT_URI), "{case}: {location}");
    assert!(!location.contains(['\r', '\n', '<', '>', '"', ' ']), "{case}: not percent-encoded: {location}");
    let url = url::Url::parse(location).unwrap();
    let states: Vec<String> = url.query_pairs().filter(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).collect();
    assert_eq!(states, [state], "{case}: state comes back unchanged, once");
    url
}

fn authorize_path(client_id: &str, extra: &str) -> String {
    format!(
        "/authorize?client_id={}&redirect_uri={}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        urlencode(client_id),
        urlencode(REDIRECT_URI)
    )
}

async fn signed_in(app: &TestApp, display_name: &str) -> Browser {
    let browser = app.browser();
    let name = unique_name("inj");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), display_name).await;
    browser
}

async fn redirects_carry_input_percent_encoded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client_id, secret) = register(&app, first_party()).await;
    let stranger = app.browser();
    for state in [CRLF, SCRIPT, ATTRIBUTE] {
        // An error answer (no response_type) goes back to the client with the state.
        let page = stranger.get(&authorize_path(&client_id, &format!("&state={}", urlencode(state)))).await;
        let url = assert_redirect_with_state(&page, state, "error redirect");
        assert!(url.query_pairs().any(|(k, v)| k == "error" && v == "invalid_request"));
    }
    // A parameter name with markup and line breaks reaches error_description.
    let name = urlencode("<b>\r\nX-Injected: 1</b>");
    let page =
        stranger.get(&authorize_path(&client_id, &format!("&state=s&{name}=1&{name}=2&response_type=code"))).await;
    let url = assert_redirect_with_state(&page, "s", "repeated parameter");
    let description = url.query_pairs().find(|(k, _)| k == "error_description").unwrap().1.into_owned();
    assert_eq!(description, "The parameter <b>\r\nX-Injected: 1</b> appears more than once.");
    assert!(page.headers.get("x-injected").is_none());

    // A successful answer carries the state the same way, and the code still works.
    let browser = signed_in(&app, "Ina").await;
    let page =
        browser.get(&authorize_path(&client_id, &format!("&response_type=code&state={}", urlencode(CRLF)))).await;
    let url = assert_redirect_with_state(&page, CRLF, "code redirect");
    let code = url.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let (status, tokens, _) = redeem_code(&app, &client_id, secret.as_deref().unwrap(), &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // RP-initiated logout back to the client, with the state.
    let hint = tokens["id_token"].as_str().unwrap();
    let logout = format!(
        "/end-session?id_token_hint={hint}&post_logout_redirect_uri={}&state={}",
        urlencode(LOGOUT_URI),
        urlencode(CRLF)
    );
    assert_redirect_with_state(&browser.get(&logout).await, CRLF, "post-logout redirect");
}

async fn pages_escape_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (client_id, _) = register(&app, first_party()).await;
    let stranger = app.browser();

    // Untrusted requests get an error page, which names nothing from the request.
    for (case, path) in [
        ("client_id with markup", authorize_path(SCRIPT, "&response_type=code&state=s")),
        (
            "redirect_uri with markup",
            format!(
                "/authorize?client_id={client_id}&redirect_uri={}&response_type=code&scope=openid",
                urlencode(&format!("{REDIRECT_URI}{ATTRIBUTE}"))
            ),
        ),
    ] {
        let page = stranger.get(&path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{case}");
        assert!(page.location().is_empty(), "{case}: never a redirect");
        assert!(page.body.contains("<h1"), "{case}: an error page");
        assert_escaped(&page, case);
    }

    // form_post answers put state and error_description in the page.
    let name = urlencode(SCRIPT);
    let page = stranger
        .get(&authorize_path(
            &client_id,
            &format!("&response_mode=form_post&state={}&{name}=1&{name}=2", urlencode(ATTRIBUTE)),
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "form_post error answer");
    assert_escaped(&page, "form_post");
    assert!(page.body.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)"), "the state, escaped: {}", page.body);
    assert!(page.body.contains("The parameter &lt;script&gt;alert(1)"), "the description, escaped");

    // login_hint prefills the username step.
    let browser = app.browser();
    let hint = format!("&response_type=code&state=s&login_hint={}", urlencode(ATTRIBUTE));
    assert_eq!(browser.get(&authorize_path(&client_id, &hint)).await.location(), "/login");
    let login = browser.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_escaped(&login, "login_hint");
    assert!(login.body.contains("value=\"&quot;&gt;&lt;script&gt;"), "the hint is prefilled, escaped");

    // A typed username is greeted on the passkey step (and kept in the options' script block).
    for typed in [ATTRIBUTE, CRLF] {
        let step = app.browser().username_step(typed).await;
        assert_eq!(step.status, StatusCode::OK, "{}", step.body);
        assert_escaped(&step, "typed username");
        step.json_block("passkey-options");
    }

    // A display name with markup, on the account page.
    let browser = signed_in(&app, ATTRIBUTE).await;
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert_escaped(&account, "display name");
    assert!(account.body.contains("&lt;script&gt;alert(1)"), "the name is shown, escaped");

    // End-session that cannot be verified asks first, with the parameters in hidden fields.
    let path = format!(
        "/end-session?client_id={}&post_logout_redirect_uri={}&state={}",
        urlencode(&client_id),
        urlencode(&format!("http://evil.example/{SCRIPT}")),
        urlencode(ATTRIBUTE)
    );
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sign out of Latchkey?"));
    assert_escaped(&page, "end-session confirmation");
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "not signed out without confirming");
}
