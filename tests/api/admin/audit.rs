//! `/admin/v1/audit-events`: every admin change leaves one event (with who and, where it
//! matters, before/after, never a secret), and the log filters by user, type and time and pages
//! newest first.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Admin, USER_AGENT, spawn};
use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, unique_name},
    oidc::urlencode,
    on_both_backends,
};

on_both_backends!(admin_changes_are_audited, the_audit_log_filters_and_pages);

fn ids(reply: &Value) -> Vec<String> {
    reply["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

fn kinds(reply: &Value) -> Vec<String> {
    reply["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    urlencode(&at.to_rfc3339_opts(SecondsFormat::Micros, false))
}

async fn admin_changes_are_audited(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let mut secrets = Vec::new();

    let ann = admin.create_user(&unique_name("ann")).await;
    let ann_id = ann["id"].as_str().unwrap();
    admin.patch(&format!("/users/{ann_id}"), &json!({"email": "ann@example.org"})).await;
    admin.patch(&format!("/users/{ann_id}"), &json!({"display_name": ann["display_name"]})).await; // no change
    admin.patch(&format!("/users/{ann_id}"), &json!({"disabled": true})).await;
    let link = admin.post(&format!("/users/{ann_id}/enrollment-links"), &json!({})).await;
    assert_eq!(link.status, StatusCode::CONFLICT, "refused: no event");
    let browser = app.browser();
    let name = unique_name("keyed");
    browser.sign_up(&mut SoftAuthenticator::default(), &name, &format!("{name}@example.com"), "Keyed").await;
    let keyed_id = admin.find_user(&name).await["id"].as_str().unwrap().to_owned();
    let passkeys = admin.get(&format!("/users/{keyed_id}/passkeys")).await.body;
    let passkey_id = passkeys["items"][0]["id"].as_str().unwrap();
    let link = admin.post(&format!("/users/{keyed_id}/enrollment-links"), &json!({})).await.body;
    admin.delete(&format!("/users/{keyed_id}/passkeys/{passkey_id}")).await;
    admin.delete(&format!("/users/{keyed_id}")).await;

    let client =
        admin.post("/clients", &json!({"name": "Audited", "redirect_uris": ["https://rp.example/cb"]})).await.body;
    secrets.push(client["client_secret"].as_str().unwrap().to_owned());
    let client_id = client["client_id"].as_str().unwrap();
    let declared =
        admin.put("/clients/declared", &json!({"name": "Declared", "redirect_uris": ["https://rp.example/cb"]})).await;
    secrets.push(declared.body["client_secret"].as_str().unwrap().to_owned());
    admin.put("/clients/declared", &json!({"name": "Declared", "redirect_uris": ["https://rp.example/cb"]})).await; // no change
    admin.put("/clients/declared", &json!({"name": "Declared 2", "redirect_uris": ["https://rp.example/cb"]})).await;
    admin.patch(&format!("/clients/{client_id}"), &json!({"first_party": true})).await;
    let rotated = admin.post(&format!("/clients/{client_id}/secret"), &json!({})).await.body;
    secrets.push(rotated["client_secret"].as_str().unwrap().to_owned());
    admin.delete(&format!("/clients/{client_id}")).await;
    admin.post("/signing-keys/rotate", &json!({})).await;

    let log = admin.get("/audit-events?type=admin.*&limit=200").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let mut found = kinds(&log.body);
    found.reverse();
    assert_eq!(
        found,
        [
            "admin.user.created",
            "admin.user.updated",
            "admin.user.disabled",
            "admin.enrollment_link.created",
            "admin.passkey.removed",
            "admin.user.deleted",
            "admin.client.created",
            "admin.client.created",
            "admin.client.replaced",
            "admin.client.updated",
            "admin.client.secret_rotated",
            "admin.client.deleted",
            "admin.signing_keys.rotated",
        ],
        "one event per change, none for refused or empty ones"
    );
    let text = log.body.to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "no client secret in the audit log");
    }
    let token = link["url"].as_str().unwrap().rsplit('/').next().unwrap();
    assert!(!text.contains(token), "no enrollment token in the audit log");

    let events = log.body["items"].as_array().unwrap();
    for event in events {
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert_eq!(event["user_agent"], USER_AGENT);
        assert_eq!(event["detail"]["actor"], "admin_api");
        DateTime::parse_from_rfc3339(event["at"].as_str().unwrap()).unwrap();
    }
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(
        times
            .windows(2)
            .all(|w| DateTime::parse_from_rfc3339(w[0]).unwrap() >= DateTime::parse_from_rfc3339(w[1]).unwrap())
    );
    let by_kind = |kind: &str| events.iter().find(|e| e["type"] == kind).unwrap().clone();
    let updated = by_kind("admin.user.updated");
    assert_eq!(updated["user_id"], ann_id);
    assert_eq!(updated["detail"]["before"], json!({"email": ann["email"]}));
    assert_eq!(updated["detail"]["after"], json!({"email": "ann@example.org"}));
    assert_eq!(by_kind("admin.user.disabled")["detail"]["after"], json!({"disabled": true}));
    assert_eq!(by_kind("admin.user.created")["detail"]["after"]["username"], ann["username"]);
    assert_eq!(by_kind("admin.passkey.removed")["detail"]["passkey_id"], passkey_id);
    assert_eq!(by_kind("admin.user.deleted")["detail"]["before"]["username"], name.as_str());
    let client_updated = by_kind("admin.client.updated");
    assert_eq!(client_updated["client_id"], client_id);
    assert_eq!(
        (
            client_updated["detail"]["before"]["first_party"].clone(),
            client_updated["detail"]["after"]["first_party"].clone()
        ),
        (json!(false), json!(true))
    );
    assert!(client_updated.get("user_id").is_none(), "absent, not null: {client_updated}");
    assert_eq!(by_kind("admin.client.replaced")["detail"]["before"]["name"], "Declared");
    assert_eq!(by_kind("admin.signing_keys.rotated")["detail"]["new_kids"].as_array().unwrap().len(), 3);

    // A deleted user's history stays.
    let history = admin.get(&format!("/audit-events?user_id={keyed_id}&type=admin.*")).await.body;
    assert_eq!(kinds(&history), ["admin.user.deleted", "admin.passkey.removed", "admin.enrollment_link.created"]);
}

async fn the_audit_log_filters_and_pages(backend: Backend) {
    let app = spawn(backend).await;
    let admin = Admin::new(&app);
    let start = Utc::now() - Duration::seconds(1);
    let mut users = Vec::new();
    for n in 0..3 {
        let user = admin.create_user(&unique_name(&format!("filtered{n}"))).await;
        let id = user["id"].as_str().unwrap().to_owned();
        admin.patch(&format!("/users/{id}"), &json!({"display_name": format!("Person {n}")})).await;
        users.push(id);
    }
    let middle = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    admin.post("/clients", &json!({"name": "Late", "redirect_uris": ["https://rp.example/cb"]})).await;
    let end = Utc::now() + Duration::seconds(1);

    let admin_events = admin.get("/audit-events?type=admin.*").await.body;
    assert_eq!(admin_events["items"].as_array().unwrap().len(), 7);
    let user_events = admin.get(&format!("/audit-events?user_id={}", users[1])).await.body;
    assert_eq!(kinds(&user_events), ["admin.user.updated", "admin.user.created"]);
    assert!(user_events["items"].as_array().unwrap().iter().all(|e| e["user_id"] == users[1].as_str()));
    let created = admin.get("/audit-events?type=admin.user.created").await.body;
    assert_eq!(kinds(&created), ["admin.user.created"; 3]);
    let both = admin.get(&format!("/audit-events?type=admin.user.updated&user_id={}", users[2])).await.body;
    assert_eq!(kinds(&both), ["admin.user.updated"]);
    assert_eq!(kinds(&admin.get("/audit-events?type=admin.client.*").await.body), ["admin.client.created"]);
    assert_eq!(kinds(&admin.get("/audit-events?type=admin.user").await.body), Vec::<String>::new(), "exact unless .*");
    assert_eq!(kinds(&admin.get("/audit-events?type=admin_*").await.body), Vec::<String>::new());

    let window = |since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>| {
        let admin = &admin;
        async move {
            let mut path = "/audit-events?type=admin.*".to_owned();
            if let Some(since) = since {
                path += &format!("&since={}", rfc3339(since));
            }
            if let Some(until) = until {
                path += &format!("&until={}", rfc3339(until));
            }
            let reply = admin.get(&path).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
            kinds(&reply.body)
        }
    };
    assert_eq!(window(Some(start), Some(end)).await.len(), 7);
    assert_eq!(window(Some(middle), None).await, ["admin.client.created"]);
    assert_eq!(window(None, Some(middle)).await.len(), 6);
    assert_eq!(window(Some(end), None).await.len(), 0);
    assert_eq!(window(None, Some(start)).await.len(), 0);
    let offset = urlencode(&(middle.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())).to_rfc3339());
    assert_eq!(
        kinds(&admin.get(&format!("/audit-events?type=admin.*&since={offset}")).await.body),
        ["admin.client.created"],
        "any offset"
    );

    // Pages of 3, 3 and 1, newest first, adding up to the whole list.
    let whole = ids(&admin_events);
    let mut walked = Vec::new();
    let mut path = "/audit-events?type=admin.*&limit=3".to_owned();
    let mut sizes = Vec::new();
    loop {
        let page = admin.get(&path).await.body;
        sizes.push(page["items"].as_array().unwrap().len());
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/audit-events?type=admin.*&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!((sizes, walked.clone()), (vec![3, 3, 1], whole));
    assert_eq!(walked.iter().collect::<BTreeSet<_>>().len(), 7);

    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("user_id=nobody", "user_id"),
        ("limit=0", "limit"),
        ("limit=500", "limit"),
        ("cursor=bogus", "cursor"),
        ("kind=admin.*", "kind"),
    ] {
        let reply = admin.get(&format!("/audit-events?{query}")).await;
        assert!(reply.errors().contains_key(field), "{query}: {}", reply.body);
    }
}
