//! `/admin/v1/users`: the life cycle of a user, validation, duplicates that differ in case,
//! paging and search, passkeys, enrollment links, and disabling or deleting a user ending
//! their tokens and sessions at once.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Admin, spawn};
use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
    oidc::{REDIRECT_URI, authorize, first_party, register, token_request},
    on_both_backends,
};

on_both_backends!(
    users_are_created_read_changed_and_deleted,
    user_fields_are_validated,
    duplicates_differing_only_in_case_conflict,
    users_are_paged_and_searched,
    passkeys_are_listed_and_removed,
    enrollment_links_are_issued,
    disabling_a_user_ends_their_tokens_and_sessions,
    deleting_a_user_ends_their_tokens_and_sessions,
);

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("not a time: {value}"))).unwrap().into()
}

async fn users_are_created_read_changed_and_deleted(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let name = unique_name("ada");
    let created = admin.post("/users", &json!({"username": name, "email": format!("  {name}@Example.com ")})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let user = created.body;
    let id = user["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(user["username"], name);
    assert_eq!(user["email"], format!("{name}@Example.com"), "trimmed, case kept");
    assert_eq!(user["display_name"], name, "defaults to the username");
    assert_eq!(user["disabled"], false);
    assert!((Utc::now() - time(&user["created_at"])).num_seconds().abs() < 60);
    assert_eq!(user.as_object().unwrap().len(), 6, "no more than the contract's fields: {user}");

    assert_eq!(admin.get(&format!("/users/{id}")).await.body, user);
    let changed = admin
        .patch(&format!("/users/{id}"), &json!({"display_name": "Ada Lovelace", "email": "ada@example.org"}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        (changed.body["display_name"].as_str(), changed.body["email"].as_str()),
        (Some("Ada Lovelace"), Some("ada@example.org"))
    );
    assert_eq!(changed.body["username"], name, "fields not sent stay");
    let renamed = admin.patch(&format!("/users/{id}"), &json!({"username": format!("{name}-2")})).await;
    assert_eq!(renamed.body["username"], format!("{name}-2"));
    assert_eq!(admin.get(&format!("/users/{id}")).await.body, renamed.body);

    let created_with_name = admin
        .post("/users", &json!({"username": unique_name("b"), "email": "b@example.com", "display_name": " Bea "}))
        .await;
    assert_eq!(created_with_name.body["display_name"], "Bea");

    assert_eq!(admin.delete(&format!("/users/{id}")).await.status, StatusCode::NO_CONTENT);
    admin.get(&format!("/users/{id}")).await.assert_problem(StatusCode::NOT_FOUND);
    admin.delete(&format!("/users/{id}")).await.assert_problem(StatusCode::NOT_FOUND);
    admin.patch(&format!("/users/{id}"), &json!({"disabled": true})).await.assert_problem(StatusCode::NOT_FOUND);
    let remaining = admin.get("/users").await.body;
    assert_eq!(remaining["items"].as_array().unwrap().len(), 1);
    assert_eq!(remaining["next_cursor"], Value::Null);
}

async fn user_fields_are_validated(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    for email in ["", "ann", "ann@localhost", "@example.com", "ann @example.com", "ann@example.com.", "a@b@example.com"]
    {
        let reply = admin.post("/users", &json!({"username": "ann", "email": email})).await;
        assert_eq!(reply.errors().keys().collect::<Vec<_>>(), ["email"], "{email}: {}", reply.body);
    }
    let too_long = "a".repeat(65);
    for username in ["", "has space", "ünïcode", "semi;colon", "at@sign", too_long.as_str()] {
        let reply = admin.post("/users", &json!({"username": username, "email": "ann@example.com"})).await;
        assert_eq!(reply.errors().keys().collect::<Vec<_>>(), ["username"], "{username}: {}", reply.body);
    }
    let everything =
        admin.post("/users", &json!({"username": "no good", "email": "nope", "display_name": "tab\there"})).await;
    assert_eq!(everything.errors().keys().collect::<Vec<_>>(), ["display_name", "email", "username"]);
    let typed = admin.post("/users", &json!({"username": "ann", "email": "ann@example.com", "disabled": true})).await;
    assert!(typed.errors().contains_key("disabled"), "creation takes no disabled field: {}", typed.body);
    assert_eq!(admin.get("/users").await.body["items"], json!([]), "nothing was stored");

    let user = admin.create_user("valid-user").await;
    let path = format!("/users/{}", user["id"].as_str().unwrap());
    assert!(admin.patch(&path, &json!({"email": "not-an-email"})).await.errors().contains_key("email"));
    assert!(admin.patch(&path, &json!({"username": ""})).await.errors().contains_key("username"));
    assert!(admin.patch(&path, &json!({"display_name": "x".repeat(101)})).await.errors().contains_key("display_name"));
    assert!(admin.patch(&path, &json!({"disabled": "yes"})).await.errors().contains_key("disabled"));
    assert!(
        admin.patch(&path, &json!({"created_at": "2020-01-01T00:00:00Z"})).await.errors().contains_key("created_at")
    );
    assert_eq!(admin.get(&path).await.body, user, "refused changes change nothing");
}

async fn duplicates_differing_only_in_case_conflict(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let alice = admin.post("/users", &json!({"username": "alice", "email": "alice@example.com"})).await.body;
    let taken_name = admin.post("/users", &json!({"username": "ALICE", "email": "other@example.com"})).await;
    taken_name.assert_problem(StatusCode::CONFLICT);
    assert_eq!(taken_name.body["field"], "username");
    let taken_email = admin.post("/users", &json!({"username": "alice2", "email": "Alice@EXAMPLE.com"})).await;
    taken_email.assert_problem(StatusCode::CONFLICT);
    assert_eq!(taken_email.body["field"], "email");

    let bob = admin.post("/users", &json!({"username": "bob", "email": "bob@example.com"})).await.body;
    let bob_path = format!("/users/{}", bob["id"].as_str().unwrap());
    let rename = admin.patch(&bob_path, &json!({"username": "Alice"})).await;
    assert_eq!((rename.status, rename.body["field"].as_str()), (StatusCode::CONFLICT, Some("username")));
    let re_email = admin.patch(&bob_path, &json!({"email": "ALICE@example.com", "display_name": "Bob"})).await;
    assert_eq!((re_email.status, re_email.body["field"].as_str()), (StatusCode::CONFLICT, Some("email")));
    assert_eq!(admin.get(&bob_path).await.body, bob, "a refused change writes nothing");

    // Changing the case of one's own username or email is no conflict.
    let alice_path = format!("/users/{}", alice["id"].as_str().unwrap());
    let recased = admin.patch(&alice_path, &json!({"username": "Alice", "email": "ALICE@example.com"})).await;
    assert_eq!(recased.status, StatusCode::OK, "{}", recased.body);
    assert_eq!(recased.body["username"], "Alice");
}

async fn users_are_paged_and_searched(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let mut ids = Vec::new();
    for (username, display_name) in [
        ("carol", "Carol Danvers"),
        ("dave", "Dave"),
        ("erin", "Erin O'Neil"),
        ("frank_50", "Frank"),
        ("grace", "Grace Hopper"),
    ] {
        let body =
            json!({"username": username, "email": format!("{username}@corp.example"), "display_name": display_name});
        ids.push(admin.post("/users", &body).await.body["id"].as_str().unwrap().to_owned());
    }

    // Three pages of 2, 2 and 1, in creation order, following next_cursor.
    let mut seen = Vec::new();
    let mut path = "/users?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        let items = page.body["items"].as_array().unwrap();
        assert_eq!(items.len(), if pages < 3 { 2 } else { 1 }, "{}", page.body);
        seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "the pages hold every user once, oldest first");
    let all = admin.get("/users").await.body;
    let listed: Vec<String> =
        all["items"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, ids);
    assert_eq!(all["next_cursor"], Value::Null);

    for bad in ["0", "201", "-3", "lots", "1.5"] {
        let reply = admin.get(&format!("/users?limit={bad}")).await;
        assert!(reply.errors().contains_key("limit"), "{bad}");
    }
    assert_eq!(admin.get("/users?limit=200").await.status, StatusCode::OK);
    assert!(admin.get("/users?cursor=garbage").await.errors().contains_key("cursor"));

    let search = |q: &'static str| {
        let admin = &admin;
        async move {
            let reply = admin.get(&format!("/users?q={}", crate::oidc::urlencode(q))).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let mut names: Vec<String> = reply.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(search("CAROL").await, ["carol"], "username, ignoring case");
    assert_eq!(search("hopper").await, ["grace"], "display name, ignoring case");
    assert_eq!(search("erin@corp").await, ["erin"], "email");
    assert_eq!(search("CORP.EXAMPLE").await.len(), 5);
    assert_eq!(search("%").await, Vec::<String>::new(), "LIKE wildcards are literal");
    assert_eq!(search("_").await, ["frank_50"], "an underscore matches only itself");
    assert_eq!(search("").await.len(), 5, "an empty search matches everyone");
    let searched_page = admin.get("/users?q=corp&limit=4").await.body;
    let cursor = searched_page["next_cursor"].as_str().unwrap();
    let rest = admin.get(&format!("/users?q=corp&limit=4&cursor={cursor}")).await.body;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
}

async fn passkeys_are_listed_and_removed(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let browser = app.browser();
    let name = unique_name("keyholder");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Key Holder").await;
    let user_id = admin.find_user(&name).await["id"].as_str().unwrap().to_owned();

    let listed = admin.get(&format!("/users/{user_id}/passkeys")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["next_cursor"], Value::Null);
    let passkey = &listed.body["items"][0];
    let mut fields: Vec<&str> = passkey.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["created_at", "id", "last_used_at", "name", "synced", "transports"]);
    assert_eq!(passkey["synced"], false);
    assert_eq!(passkey["transports"], json!(["hybrid", "internal"]));
    assert!(passkey["last_used_at"].is_null(), "not used since sign-up");
    time(&passkey["created_at"]);
    let passkey_id = passkey["id"].as_str().unwrap();

    let other = admin.create_user(&unique_name("other")).await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(admin.get(&format!("/users/{other_id}/passkeys")).await.body["items"], json!([]));
    admin.delete(&format!("/users/{other_id}/passkeys/{passkey_id}")).await.assert_problem(StatusCode::NOT_FOUND);

    assert_eq!(admin.delete(&format!("/users/{user_id}/passkeys/{passkey_id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(admin.get(&format!("/users/{user_id}/passkeys")).await.body["items"], json!([]), "even the last one");
    admin.delete(&format!("/users/{user_id}/passkeys/{passkey_id}")).await.assert_problem(StatusCode::NOT_FOUND);
    admin.delete(&format!("/users/{user_id}/passkeys/not-a-uuid")).await.assert_problem(StatusCode::NOT_FOUND);
    admin.get(&format!("/users/{}/passkeys", uuid::Uuid::new_v4())).await.assert_problem(StatusCode::NOT_FOUND);
}

async fn enrollment_links_are_issued(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let user = admin.create_user(&unique_name("enrollee")).await;
    let path = format!("/users/{}/enrollment-links", user["id"].as_str().unwrap());

    let link = admin.post(&path, &json!({})).await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
    let url = link.body["url"].as_str().unwrap();
    let token = url.strip_prefix(&format!("{}/enroll/", app.base)).unwrap_or_else(|| panic!("{url}"));
    assert!(token.len() >= 43, "256 bits: {token}");
    let hours = (time(&link.body["expires_at"]) - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "24 h by default: {hours}");
    let again = admin.post(&path, &json!({"ttl_seconds": 600})).await;
    assert_ne!(again.body["url"], link.body["url"], "every link is new");
    let seconds = (time(&again.body["expires_at"]) - Utc::now()).num_seconds();
    assert!((590..=600).contains(&seconds), "{seconds}");
    assert_eq!(app.browser().get(url.strip_prefix(&app.base).unwrap()).await.status, StatusCode::OK);

    for ttl in [json!(0), json!(-5), json!(2_592_001)] {
        let reply = admin.post(&path, &json!({"ttl_seconds": ttl})).await;
        assert!(reply.errors().contains_key("ttl_seconds"), "{ttl}: {}", reply.body);
    }
    assert!(admin.post(&path, &json!({"ttl_seconds": "600"})).await.errors().contains_key("ttl_seconds"));
    assert!(admin.post(&path, &json!({"ttl": 600})).await.errors().contains_key("ttl"));
    let unknown = format!("/users/{}/enrollment-links", uuid::Uuid::new_v4());
    admin.post(&unknown, &json!({})).await.assert_problem(StatusCode::NOT_FOUND);

    admin.patch(&format!("/users/{}", user["id"].as_str().unwrap()), &json!({"disabled": true})).await;
    let disabled = admin.post(&path, &json!({})).await;
    disabled.assert_problem(StatusCode::CONFLICT);
}

/// A signed-up person with tokens from a relying party: (user id, browser, access, refresh,
/// client id, client secret).
async fn person_with_tokens(
    app: &TestApp,
    admin: &Admin,
) -> (String, crate::helpers::Browser, String, String, String, String) {
    let (client_id, secret) = register(app, first_party()).await;
    let secret = secret.unwrap();
    let browser = app.browser();
    let name = unique_name("holder");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Token Holder").await;
    let (code, verifier) = authorize(&browser, app, &client_id, "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, tokens, _) = token_request(app, &client_id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(app, &access).await, StatusCode::OK);
    let user_id = admin.find_user(&name).await["id"].as_str().unwrap().to_owned();
    (user_id, browser, access, refresh, client_id, secret)
}

pub async fn userinfo(app: &TestApp, access_token: &str) -> StatusCode {
    let http = reqwest::Client::new();
    http.get(format!("{}/userinfo", app.base)).bearer_auth(access_token).send().await.unwrap().status()
}

async fn refresh_error(app: &TestApp, client_id: &str, secret: &str, refresh: &str) -> Value {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    token_request(app, client_id, secret, &form).await.1["error"].clone()
}

async fn disabling_a_user_ends_their_tokens_and_sessions(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let (user_id, browser, access, refresh, client_id, secret) = person_with_tokens(&app, &admin).await;
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);

    let disabled = admin.patch(&format!("/users/{user_id}"), &json!({"disabled": true})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(userinfo(&app, &access).await, StatusCode::UNAUTHORIZED, "the access token died at once");
    assert_eq!(refresh_error(&app, &client_id, &secret, &refresh).await, "invalid_grant");
    assert_eq!(browser.get("/account").await.location(), "/login", "the session ended");
    assert_eq!(admin.get(&format!("/users/{user_id}")).await.body["disabled"], true);

    let enabled = admin.call(Method::PATCH, &format!("/users/{user_id}"), Some(&json!({"disabled": false}))).await;
    assert_eq!(enabled.body["disabled"], false);
    assert_eq!(userinfo(&app, &access).await, StatusCode::UNAUTHORIZED, "enabling does not revive tokens");
}

async fn deleting_a_user_ends_their_tokens_and_sessions(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let (user_id, browser, access, refresh, client_id, secret) = person_with_tokens(&app, &admin).await;
    assert_eq!(admin.delete(&format!("/users/{user_id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(userinfo(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_error(&app, &client_id, &secret, &refresh).await, "invalid_grant");
    assert_eq!(browser.get("/account").await.location(), "/login");
    admin.get(&format!("/users/{user_id}/passkeys")).await.assert_problem(StatusCode::NOT_FOUND);
}
