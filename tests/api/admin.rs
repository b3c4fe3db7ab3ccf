//! The admin API (`/admin/v1`) from the outside: the token, problem documents, the OpenAPI
//! document and its routes here; users, clients and the audit log in the submodules.

mod audit;
mod clients;
mod users;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
    on_both_backends,
};

/// The admin token of the test apps (at least 32 characters, as Latchkey requires).
pub const TOKEN: &str = "test-admin-token-0123456789abcdef-0123";

/// The `User-Agent` of [`Admin`] requests, which audit events record.
pub const USER_AGENT: &str = "latchkey-admin-tests/1";

/// Latchkey with the admin API on.
pub async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[("LATCHKEY_ADMIN_TOKEN", TOKEN)]).await
}

/// An answer of the admin API.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `errors` member of a 422 problem, field → message.
    pub fn errors(&self) -> &serde_json::Map<String, Value> {
        assert_eq!(self.status, StatusCode::UNPROCESSABLE_ENTITY, "{self:?}");
        self.body["errors"].as_object().unwrap_or_else(|| panic!("no errors member: {}", self.body))
    }

    /// Asserts this is a problem document with `status`.
    pub fn assert_problem(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["detail"].is_string() && self.body["title"].is_string(), "{}", self.body);
    }
}

/// A client of the admin API.
pub struct Admin {
    http: reqwest::Client,
    pub base: String,
    token: Option<String>,
}

impl Admin {
    /// Sends the right token.
    pub fn new(app: &TestApp) -> Admin {
        Admin::with_token(app, Some(TOKEN))
    }

    /// Sends `token` (or none).
    pub fn with_token(app: &TestApp, token: Option<&str>) -> Admin {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .unwrap();
        Admin { http, base: format!("{}/admin/v1", app.base), token: token.map(str::to_owned) }
    }

    /// Sends `body` as raw bytes (JSON when `body` is a `Value`).
    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, headers, body }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.send(method, path, body.map(|b| serde_json::to_vec(b).unwrap())).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a user; returns it.
    pub async fn create_user(&self, username: &str) -> Value {
        let reply =
            self.post("/users", &json!({"username": username, "email": format!("{username}@example.com")})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// The user with this username (exactly one must match).
    pub async fn find_user(&self, username: &str) -> Value {
        let reply = self.get(&format!("/users?q={username}")).await;
        let items = reply.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{}", reply.body);
        items[0].clone()
    }
}

on_both_backends!(
    the_token_is_required_everywhere_but_the_document,
    every_documented_route_answers,
    bodies_queries_and_paths_are_checked,
);

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let admin = Admin::new(&app);
    for (method, path) in [
        (Method::GET, "/openapi.json"),
        (Method::GET, "/users"),
        (Method::POST, "/clients"),
        (Method::GET, "/signing-keys"),
        (Method::POST, "/signing-keys/rotate"),
        (Method::GET, ""),
        (Method::GET, "/no-such-thing"),
    ] {
        let reply = admin.call(method.clone(), path, Some(&json!({}))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {reply:?}");
    }
}

/// Every operation of the OpenAPI document as (method, path), lower-case method.
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

async fn the_token_is_required_everywhere_but_the_document(backend: Backend) {
    let app = spawn(backend).await;
    let anonymous = Admin::with_token(&app, None);
    let document = anonymous.get("/openapi.json").await;
    assert_eq!(document.status, StatusCode::OK, "served without a token");
    assert_eq!(document.body["openapi"], "3.1.0");
    assert_eq!(document.body["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
    assert_eq!(document.body["security"], json!([{"admin_token": []}]));
    assert_eq!(document.body["servers"][0]["url"], format!("{}/admin/v1", app.base));

    let wrong = Admin::with_token(&app, Some("test-admin-token-0123456789abcdef-0124"));
    let truncated = Admin::with_token(&app, Some(&TOKEN[..TOKEN.len() - 1]));
    for (method, path) in operations(&document.body) {
        let path = path.replace("{id}", &uuid::Uuid::new_v4().to_string()).replace("{client_id}", "some-client");
        let path = path.replace("{passkey_id}", &uuid::Uuid::new_v4().to_string());
        let method: Method = method.to_uppercase().parse().unwrap();
        for (who, admin) in [("no token", &anonymous), ("wrong token", &wrong), ("truncated token", &truncated)] {
            let reply = admin.call(method.clone(), &path, Some(&json!({}))).await;
            reply.assert_problem(StatusCode::UNAUTHORIZED);
            let challenge = reply.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{who} {method} {path}: {challenge}");
            assert_eq!(challenge.contains("invalid_token"), who != "no token", "{challenge}");
        }
    }
    let basic = reqwest::Client::new()
        .get(format!("{}/admin/v1/users", app.base))
        .basic_auth("admin", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let lower_case = reqwest::Client::new()
        .get(format!("{}/admin/v1/users", app.base))
        .header(header::AUTHORIZATION, format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower_case.status(), StatusCode::OK, "the scheme is case-insensitive");
}

async fn every_documented_route_answers(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let document = admin.get("/openapi.json").await.body;
    let mut found = operations(&document);
    found.sort();
    let mut expected: Vec<(String, String)> = [
        ("post", "/users"),
        ("get", "/users"),
        ("get", "/users/{id}"),
        ("patch", "/users/{id}"),
        ("delete", "/users/{id}"),
        ("get", "/users/{id}/passkeys"),
        ("delete", "/users/{id}/passkeys/{passkey_id}"),
        ("post", "/users/{id}/enrollment-links"),
        ("post", "/clients"),
        ("get", "/clients"),
        ("get", "/clients/{client_id}"),
        ("put", "/clients/{client_id}"),
        ("patch", "/clients/{client_id}"),
        ("delete", "/clients/{client_id}"),
        ("post", "/clients/{client_id}/secret"),
        ("get", "/signing-keys"),
        ("post", "/signing-keys/rotate"),
        ("get", "/audit-events"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    expected.sort();
    assert_eq!(found, expected, "the document lists exactly the contract's routes");
    for schema in ["User", "UserCreate", "UserUpdate", "Client", "ClientBody", "ClientUpdate", "Problem", "AuditEvent"]
    {
        assert!(document["components"]["schemas"].get(schema).is_some(), "schema {schema}");
    }

    // A real user with a real passkey, and a real client, so no call is a 404.
    let browser = app.browser();
    let name = unique_name("routes");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Route Walker").await;
    let user = admin.find_user(&name).await;
    let user_id = user["id"].as_str().unwrap();
    let passkeys = admin.get(&format!("/users/{user_id}/passkeys")).await;
    let passkey_id = passkeys.body["items"][0]["id"].as_str().unwrap().to_owned();
    let client = admin.post("/clients", &json!({"name": "Route RP", "redirect_uris": ["https://rp.example/cb"]})).await;
    let client_id = client.body["client_id"].as_str().unwrap().to_owned();
    let bodies = |method: &str, path: &str| match (method, path) {
        ("post", "/users") => {
            Some(json!({"username": unique_name("new"), "email": format!("{}@example.com", unique_name("n"))}))
        }
        ("patch", "/users/{id}") => Some(json!({"display_name": "Renamed"})),
        ("post", "/clients") | ("put", "/clients/{client_id}") => {
            Some(json!({"name": "Route RP", "redirect_uris": ["https://rp.example/cb"]}))
        }
        ("patch", "/clients/{client_id}") => Some(json!({"first_party": true})),
        ("post", "/users/{id}/enrollment-links") => Some(json!({})),
        _ => None,
    };
    // Deletions last, the passkey before its user.
    found.sort_by_key(|(method, path)| (method == "delete", std::cmp::Reverse(path.len())));
    for (method, template) in found {
        let path =
            template.replace("{id}", user_id).replace("{passkey_id}", &passkey_id).replace("{client_id}", &client_id);
        let reply =
            admin.call(method.to_uppercase().parse().unwrap(), &path, bodies(&method, &template).as_ref()).await;
        assert!(reply.status.is_success(), "{method} {path}: {reply:?}");
        let declared = &document["paths"][&template][&method]["responses"];
        assert!(declared.get(reply.status.as_str()).is_some(), "{method} {template} documents {}", reply.status);
    }
}

async fn bodies_queries_and_paths_are_checked(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);

    let not_json = admin.send(Method::POST, "/users", Some(b"{\"username\": ".to_vec())).await;
    not_json.assert_problem(StatusCode::BAD_REQUEST);
    assert!(not_json.body["detail"].as_str().unwrap().contains("not valid JSON"), "{}", not_json.body);
    admin.send(Method::PATCH, "/clients/x", Some(b"nope".to_vec())).await.assert_problem(StatusCode::BAD_REQUEST);

    let unknown = admin.post("/users", &json!({"username": "ann", "email": "ann@example.com", "emial": "x"})).await;
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.errors()["emial"].as_str().unwrap().starts_with("Unknown field"), "{}", unknown.body);
    let missing = admin.post("/users", &json!({"email": "ann@example.com"})).await;
    assert_eq!(missing.errors()["username"], "Required.");
    let wrong_type =
        admin.post("/users", &json!({"username": "ann", "email": "ann@example.com", "display_name": 5})).await;
    assert!(wrong_type.errors()["display_name"].as_str().unwrap().contains("expected a string"), "{}", wrong_type.body);
    let not_an_object = admin.post("/users", &json!(["ann"])).await;
    not_an_object.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let nested = admin.post("/clients", &json!({"name": "x", "redirect_uris": ["https://a.example/", 5]})).await;
    assert!(nested.errors()["redirect_uris"].as_str().unwrap().contains("redirect_uris[1]"), "{}", nested.body);

    let huge = json!({"username": "ann", "email": "ann@example.com", "display_name": "x".repeat(70 * 1024)});
    admin.post("/users", &huge).await.assert_problem(StatusCode::PAYLOAD_TOO_LARGE);

    let user = admin.create_user(&unique_name("checks")).await;
    let id = user["id"].as_str().unwrap();
    let empty = admin.send(Method::PATCH, &format!("/users/{id}"), None).await;
    assert_eq!(empty.status, StatusCode::OK, "an empty body changes nothing: {empty:?}");
    assert_eq!(empty.body, user);
    assert_eq!(
        admin.send(Method::POST, &format!("/users/{id}/enrollment-links"), None).await.status,
        StatusCode::CREATED
    );
    admin.patch(&format!("/users/{id}"), &json!({"id": "x"})).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);

    for path in ["/users/not-a-uuid", "/users/123", "/users/%FF", "/nothing-here", "/users/{id}/nothing"] {
        admin.get(path).await.assert_problem(StatusCode::NOT_FOUND);
    }
    admin.get(&format!("/users/{}", uuid::Uuid::new_v4())).await.assert_problem(StatusCode::NOT_FOUND);
    admin.delete("/users/not-a-uuid/passkeys/also-not").await.assert_problem(StatusCode::NOT_FOUND);
    admin.call(Method::PUT, "/users", Some(&json!({}))).await.assert_problem(StatusCode::METHOD_NOT_ALLOWED);

    let typo = admin.get("/users?limt=5").await;
    assert!(typo.errors().contains_key("limt"), "{}", typo.body);
    let twice = admin.get("/audit-events?type=a&type=b").await;
    twice.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(admin.get("/users").await.headers[header::CACHE_CONTROL], "no-store");
}
