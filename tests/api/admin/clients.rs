//! `/admin/v1/clients` and `/admin/v1/signing-keys`: registering relying parties (the secret
//! shown once), idempotent `PUT`, partial updates, secret rotation, the registration rules, and
//! deleting a client ending its tokens; listing and rotating signing keys.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Admin, spawn, users::userinfo};
use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, unique_name},
    oidc::{REDIRECT_URI, authorize, token_request},
    on_both_backends,
};

on_both_backends!(
    clients_are_created_read_changed_and_deleted,
    put_creates_or_replaces_idempotently,
    secrets_rotate_and_the_old_one_stops_working,
    client_registrations_are_validated,
    deleting_a_client_ends_its_tokens,
    signing_keys_are_listed_and_rotated,
);

fn registration() -> Value {
    json!({"name": "Admin RP", "redirect_uris": ["https://rp.example/callback"]})
}

async fn clients_are_created_read_changed_and_deleted(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let created = admin.post("/clients", &registration()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let client_id = created.body["client_id"].as_str().unwrap().to_owned();
    let secret = created.body["client_secret"].as_str().expect("a confidential client's secret, once");
    assert_eq!(secret.len(), 43);
    // The contract's defaults.
    assert_eq!(created.body["public"], false);
    assert_eq!(created.body["first_party"], false);
    assert_eq!(created.body["allowed_scopes"], json!(["email", "offline_access", "openid", "profile"]));
    assert_eq!(created.body["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(created.body["id_token_signed_response_alg"], "RS256");

    let read = admin.get(&format!("/clients/{client_id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.body.get("client_secret").is_none(), "never shown again");
    assert!(!read.body.to_string().contains(secret));
    let mut without_secret = created.body.clone();
    without_secret.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read.body, without_secret);

    let public = admin
        .post(
            "/clients",
            &json!({"name": "SPA", "public": true, "client_id": "spa", "redirect_uris": ["http://localhost:5173/cb"]}),
        )
        .await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.body);
    assert_eq!(public.body["client_id"], "spa");
    assert!(public.body.get("client_secret").is_none(), "public clients have no secret");
    let listed = admin.get("/clients").await.body;
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [client_id.as_str(), "spa"]);
    assert_eq!(listed["next_cursor"], Value::Null);
    assert!(!listed.to_string().contains(secret));

    let changed = admin
        .patch(
            &format!("/clients/{client_id}"),
            &json!({"name": "Renamed RP", "first_party": true, "backchannel_logout_uri": "https://rp.example/logout",
                    "id_token_signed_response_alg": "EdDSA"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        (changed.body["name"].as_str(), changed.body["first_party"].as_bool()),
        (Some("Renamed RP"), Some(true))
    );
    assert_eq!(changed.body["redirect_uris"], created.body["redirect_uris"], "fields not sent stay");
    assert!(changed.body.get("client_secret").is_none(), "the secret is kept, not regenerated");
    let reset = admin
        .patch(
            &format!("/clients/{client_id}"),
            &json!({"backchannel_logout_uri": null, "id_token_signed_response_alg": null}),
        )
        .await;
    assert_eq!(
        (reset.body["backchannel_logout_uri"].clone(), reset.body["id_token_signed_response_alg"].clone()),
        (Value::Null, json!("RS256"))
    );
    let unchanged = admin.patch(&format!("/clients/{client_id}"), &json!({})).await;
    assert_eq!(unchanged.body, reset.body);

    let confidential = admin.patch("/clients/spa", &json!({"public": false})).await;
    assert_eq!(
        confidential.body["client_secret"].as_str().map(str::len),
        Some(43),
        "made confidential: a secret, once"
    );

    assert_eq!(admin.delete(&format!("/clients/{client_id}")).await.status, StatusCode::NO_CONTENT);
    admin.get(&format!("/clients/{client_id}")).await.assert_problem(StatusCode::NOT_FOUND);
    admin.delete(&format!("/clients/{client_id}")).await.assert_problem(StatusCode::NOT_FOUND);
    admin.patch(&format!("/clients/{client_id}"), &json!({"name": "x"})).await.assert_problem(StatusCode::NOT_FOUND);
    admin.post(&format!("/clients/{client_id}/secret"), &json!({})).await.assert_problem(StatusCode::NOT_FOUND);
}

async fn put_creates_or_replaces_idempotently(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let created = admin.put("/clients/declared", &registration()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["client_id"], "declared");
    assert!(created.body["client_secret"].is_string(), "a generated secret, shown once");

    let again = admin.put("/clients/declared", &registration()).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.get("client_secret").is_none());
    assert_eq!(again.body["updated_at"], created.body["updated_at"], "the same body writes nothing");

    let replaced = admin
        .put(
            "/clients/declared",
            &json!({"name": "Declared", "redirect_uris": ["https://rp.example/other"], "first_party": true}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["redirect_uris"], json!(["https://rp.example/other"]), "every field is replaced");
    assert_eq!(replaced.body["first_party"], true);
    assert_ne!(replaced.body["updated_at"], created.body["updated_at"]);

    let given_secret = json!({"name": "Declared", "redirect_uris": ["https://rp.example/cb"], "client_secret": "a-secret-from-the-vault-0123456789abcdef"});
    let with_secret = admin.put("/clients/vaulted", &given_secret).await;
    assert_eq!(with_secret.status, StatusCode::CREATED);
    assert!(with_secret.body.get("client_secret").is_none(), "the operator's own secret is not echoed");
    let mismatch = admin
        .put("/clients/declared", &json!({"client_id": "other", "name": "x", "redirect_uris": ["https://a.example/"]}))
        .await;
    assert!(mismatch.errors().contains_key("client_id"));
    let bad_id = admin.put("/clients/has%20space", &registration()).await;
    assert!(bad_id.errors().contains_key("client_id"), "{}", bad_id.body);
    assert!(admin.put("/clients/declared", &json!({"name": "x"})).await.errors().contains_key("redirect_uris"));
}

async fn secrets_rotate_and_the_old_one_stops_working(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let machine = json!({"name": "Batch job", "grant_types": ["client_credentials"], "redirect_uris": []});
    let created = admin.post("/clients", &machine).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let client_id = created.body["client_id"].as_str().unwrap();
    let old = created.body["client_secret"].as_str().unwrap();
    let grant = [("grant_type", "client_credentials")];
    assert_eq!(token_request(&app, client_id, old, &grant).await.0, StatusCode::OK);

    let rotated = admin.post(&format!("/clients/{client_id}/secret"), &json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotated.body.as_object().unwrap().len(), 1);
    let new = rotated.body["client_secret"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(token_request(&app, client_id, old, &grant).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(token_request(&app, client_id, new, &grant).await.0, StatusCode::OK);

    admin
        .post(
            "/clients",
            &json!({"name": "SPA", "client_id": "spa", "public": true, "redirect_uris": ["https://a.example/"]}),
        )
        .await;
    let public = admin.post("/clients/spa/secret", &json!({})).await;
    public.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn client_registrations_are_validated(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let refused = |field: &'static str, body: Value| {
        let admin = &admin;
        async move {
            let reply = admin.post("/clients", &body).await;
            assert!(reply.errors().contains_key(field), "{body} → {}", reply.body);
            reply.errors()[field].as_str().unwrap().to_owned()
        }
    };
    let with_uri = |uri: &str| json!({"name": "RP", "redirect_uris": [uri]});
    assert!(refused("redirect_uris", with_uri("https://rp.example/cb#frag")).await.contains("fragment"));
    assert!(refused("redirect_uris", with_uri("https://*.rp.example/cb")).await.contains("wildcard"));
    assert!(refused("redirect_uris", with_uri("https://rp.example/*")).await.contains("wildcard"));
    assert!(refused("redirect_uris", with_uri("http://rp.example/cb")).await.contains("https"));
    assert!(refused("redirect_uris", with_uri("/relative/cb")).await.contains("absolute"));
    assert!(refused("redirect_uris", with_uri("javascript:alert(1)")).await.contains("https"));
    refused("redirect_uris", json!({"name": "RP"})).await;
    refused("post_logout_redirect_uris", json!({"name": "RP", "redirect_uris": ["https://a.example/"], "post_logout_redirect_uris": ["http://a.example/"]})).await;
    refused("name", json!({"name": "", "redirect_uris": ["https://a.example/"]})).await;
    refused(
        "allowed_scopes",
        json!({"name": "RP", "redirect_uris": ["https://a.example/"], "allowed_scopes": ["openid", "admin"]}),
    )
    .await;
    refused("grant_types", json!({"name": "RP", "redirect_uris": ["https://a.example/"], "grant_types": ["implicit"]}))
        .await;
    refused(
        "id_token_signed_response_alg",
        json!({"name": "RP", "redirect_uris": ["https://a.example/"], "id_token_signed_response_alg": "HS256"}),
    )
    .await;
    refused("backchannel_logout_uri", json!({"name": "RP", "redirect_uris": ["https://a.example/"], "backchannel_logout_uri": "http://rp.example/bc"})).await;
    refused(
        "client_secret",
        json!({"name": "RP", "redirect_uris": ["https://a.example/"], "client_secret": "x".repeat(40)}),
    )
    .await;
    refused("redirect_uri", json!({"name": "RP", "redirect_uri": "https://a.example/"})).await;
    refused("client_id", json!({"name": "RP", "redirect_uris": ["https://a.example/"], "client_id": "no spaces"}))
        .await;
    assert_eq!(admin.get("/clients").await.body["items"], json!([]), "nothing was stored");

    for allowed in ["http://127.0.0.1:8000/cb", "http://localhost/cb", "http://[::1]/cb", "com.example.app:/cb"] {
        assert_eq!(admin.post("/clients", &with_uri(allowed)).await.status, StatusCode::CREATED, "{allowed}");
    }
    let dev = json!({"name": "Dev", "redirect_uris": ["http://rp:3000/cb"], "allow_http_redirect_uris": true});
    assert_eq!(admin.post("/clients", &dev).await.status, StatusCode::CREATED);

    let first = admin
        .post("/clients", &json!({"name": "RP", "client_id": "taken", "redirect_uris": ["https://a.example/"]}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let duplicate = admin
        .post("/clients", &json!({"name": "RP", "client_id": "taken", "redirect_uris": ["https://a.example/"]}))
        .await;
    duplicate.assert_problem(StatusCode::CONFLICT);
    assert_eq!(duplicate.body["field"], "client_id");

    let before = admin.get("/clients/taken").await.body;
    assert!(
        admin
            .patch("/clients/taken", &json!({"redirect_uris": ["https://a.example/#x"]}))
            .await
            .errors()
            .contains_key("redirect_uris")
    );
    assert!(admin.patch("/clients/taken", &json!({"client_id": "other"})).await.errors().contains_key("client_id"));
    assert!(
        admin
            .patch("/clients/taken", &json!({"client_secret": "x".repeat(40)}))
            .await
            .errors()
            .contains_key("client_secret")
    );
    assert!(admin.patch("/clients/taken", &json!({"public": "no"})).await.errors().contains_key("public"));
    assert_eq!(admin.get("/clients/taken").await.body, before, "refused changes change nothing");
}

async fn deleting_a_client_ends_its_tokens(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let created =
        admin.post("/clients", &json!({"name": "Doomed", "redirect_uris": [REDIRECT_URI], "first_party": true})).await;
    let client_id = created.body["client_id"].as_str().unwrap();
    let secret = created.body["client_secret"].as_str().unwrap();
    let browser = app.browser();
    let name = unique_name("doomed");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Doomed").await;
    let (code, verifier) = authorize(&browser, &app, client_id, "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &verifier),
    ];
    let (status, tokens, _) = token_request(&app, client_id, secret, &form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await, StatusCode::OK);

    assert_eq!(admin.delete(&format!("/clients/{client_id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(userinfo(&app, access).await, StatusCode::UNAUTHORIZED);
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    assert_eq!(
        token_request(&app, client_id, secret, &refresh).await.0,
        StatusCode::UNAUTHORIZED,
        "the client is gone"
    );
}

async fn signing_keys_are_listed_and_rotated(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let listed = admin.get("/signing-keys").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let keys = listed.body["items"].as_array().unwrap().clone();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);
    for key in &keys {
        assert_eq!((key["state"].as_str(), key["published"].as_bool()), (Some("active"), Some(true)), "{key}");
        assert!(key.get("private_pem").is_none() && !key.to_string().contains("PRIVATE"));
    }

    let rotated = admin.post("/signing-keys/rotate", &json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let after = rotated.body["items"].as_array().unwrap();
    assert_eq!(after.len(), 6);
    let next: Vec<&Value> = after.iter().filter(|k| k["state"] == "next").collect();
    assert_eq!(next.len(), 3, "{}", rotated.body);
    assert!(next.iter().all(|k| k["published"] == true), "published ahead of signing");
    let old_kids: Vec<&Value> = keys.iter().map(|k| &k["kid"]).collect();
    for key in after.iter().filter(|k| old_kids.contains(&&k["kid"])) {
        assert_eq!(key["state"], "active", "old keys sign until the new ones activate");
        assert!(key["retired_at"].is_string());
    }
    assert_eq!(admin.get("/signing-keys").await.body, rotated.body);
}
