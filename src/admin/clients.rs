//! Relying parties as an operator manages them: create (secret generated and shown once),
//! create-or-replace by id (declarative tools), partial update, secret rotation and deletion,
//! each with its audit event in the same transaction. Audit details show the registration as a
//! [`ClientSpec`], which never holds a secret here.
//!
//! Deleting a client deletes its grants (a foreign-key cascade), so its refresh and access
//! tokens stop working at once.

use chrono::{DateTime, Utc};
use entity::client;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::Value;

use super::{Actor, AdminError};
use crate::{
    audit,
    oidc::clients::{self, Client, ClientSecrets, ClientSpec},
    store::clients as rows,
};

/// A stored client and, right after it was created or its secret rotated, the secret (shown
/// once, never stored in clear).
pub struct Written {
    pub row: client::Model,
    pub secret: Option<String>,
}

/// The registration of a stored client, for audit details: no secret, no hash.
fn describe(row: &client::Model) -> Result<Value, AdminError> {
    let client = Client::from_model(row.clone()).map_err(|e| AdminError::App(e.into()))?;
    let mut spec = client.to_spec();
    spec.client_secret = None;
    Ok(serde_json::to_value(spec).unwrap_or(Value::Null))
}

async fn find(db: &impl ConnectionTrait, client_id: &str) -> Result<client::Model, AdminError> {
    rows::find(db, client_id).await?.ok_or_else(|| AdminError::not_found("client"))
}

/// A client by id.
pub async fn get(db: &impl ConnectionTrait, client_id: &str) -> Result<client::Model, AdminError> {
    find(db, client_id).await
}

/// Every client, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<client::Model>, AdminError> {
    Ok(rows::list(db).await?)
}

/// Registers a client; see [`clients::create`].
pub async fn create(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    spec: &ClientSpec,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Written, AdminError> {
    let txn = db.begin().await?;
    let (client, secret) = clients::create(&txn, secrets, spec, now).await?;
    let row = find(&txn, &client.client_id).await?;
    let event = actor.event("admin.client.created", now).client(&client.client_id).with("after", describe(&row)?);
    audit::record(&txn, event).await?;
    txn.commit().await?;
    Ok(Written { row, secret })
}

/// Creates `client_id` or replaces all of it; see [`clients::upsert`]. Returns whether it was
/// created. Applying the same spec again changes nothing and records nothing.
pub async fn put(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    client_id: &str,
    spec: &ClientSpec,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(Written, bool), AdminError> {
    let txn = db.begin().await?;
    let before = rows::find(&txn, client_id).await?;
    let (_, secret, created) = clients::upsert(&txn, secrets, client_id, spec, now).await?;
    let row = find(&txn, client_id).await?;
    let changed = before.as_ref() != Some(&row);
    if changed {
        let kind = if created { "admin.client.created" } else { "admin.client.replaced" };
        let mut event = actor.event(kind, now).client(client_id).with("after", describe(&row)?);
        if let Some(before) = &before {
            event = event.with("before", describe(before)?);
        }
        let secret_changed = before.as_ref().map(|b| &b.secret_hash) != Some(&row.secret_hash);
        event = event.with("secret_changed", secret_changed && row.secret_hash.is_some());
        audit::record(&txn, event).await?;
    }
    txn.commit().await?;
    Ok((Written { row, secret }, created))
}

/// Changes some fields of an existing client: `apply` edits its current registration, which
/// must then pass every rule again. The secret is kept; a client made confidential gets one
/// (returned once).
pub async fn update(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    client_id: &str,
    apply: impl FnOnce(&mut ClientSpec),
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Written, AdminError> {
    let txn = db.begin().await?;
    let before = find(&txn, client_id).await?;
    let mut spec = Client::from_model(before.clone()).map_err(|e| AdminError::App(e.into()))?.to_spec();
    spec.client_secret = None;
    apply(&mut spec);
    let (_, secret, _) = clients::upsert(&txn, secrets, client_id, &spec, now).await?;
    let row = find(&txn, client_id).await?;
    if row != before {
        let event = actor
            .event("admin.client.updated", now)
            .client(client_id)
            .with("before", describe(&before)?)
            .with("after", describe(&row)?);
        audit::record(&txn, event).await?;
    }
    txn.commit().await?;
    Ok(Written { row, secret })
}

/// Deletes a client, its grants (so its tokens) and consents.
pub async fn delete(
    db: &DatabaseConnection,
    client_id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), AdminError> {
    let txn = db.begin().await?;
    let before = find(&txn, client_id).await?;
    rows::delete(&txn, client_id).await?;
    let event = actor.event("admin.client.deleted", now).client(client_id).with("before", describe(&before)?);
    audit::record(&txn, event).await?;
    txn.commit().await?;
    tracing::info!(%client_id, "client deleted by an admin");
    Ok(())
}

/// Gives a confidential client a fresh secret, returned once; the old one stops working.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    client_id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<String, AdminError> {
    let txn = db.begin().await?;
    let secret =
        clients::rotate_secret(&txn, secrets, client_id, now).await?.ok_or_else(|| AdminError::not_found("client"))?;
    audit::record(&txn, actor.event("admin.client.secret_rotated", now).client(client_id)).await?;
    txn.commit().await?;
    Ok(secret)
}
