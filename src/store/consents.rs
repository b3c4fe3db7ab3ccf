//! Queries over `consents`: the scopes a person allowed a client, remembered until revoked.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::consent;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set, prelude::Uuid, sea_query::OnConflict};

/// Whether the person already allowed `client_id` every scope in `scopes`.
pub async fn covers(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: &str,
    scopes: &BTreeSet<String>,
) -> Result<bool, DbErr> {
    let Some(row) = consent::Entity::find_by_id((user_id, client_id.to_owned())).one(db).await? else {
        return Ok(false);
    };
    let allowed: BTreeSet<&str> = row.scopes.split(' ').collect();
    Ok(scopes.iter().all(|s| allowed.contains(s.as_str())))
}

/// Records that the person allowed `scopes` (added to what they allowed before).
pub async fn grant(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: &str,
    scopes: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut all: BTreeSet<String> = match consent::Entity::find_by_id((user_id, client_id.to_owned())).one(db).await? {
        Some(row) => row.scopes.split(' ').map(str::to_owned).collect(),
        None => BTreeSet::new(),
    };
    all.extend(scopes.iter().cloned());
    let row = consent::ActiveModel {
        user_id: Set(user_id),
        client_id: Set(client_id.to_owned()),
        scopes: Set(all.into_iter().collect::<Vec<_>>().join(" ")),
        granted_at: Set(now),
    };
    consent::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([consent::Column::UserId, consent::Column::ClientId])
                .update_columns([consent::Column::Scopes, consent::Column::GrantedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}
