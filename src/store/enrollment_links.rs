//! Queries over `enrollment_links`. Redeeming is one conditional UPDATE, so of two concurrent
//! redemptions exactly one changes the row.

use chrono::{DateTime, Utc};
use entity::enrollment_link;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set, prelude::Uuid, sea_query::Expr};

/// Stores a link.
pub async fn insert(
    db: &impl ConnectionTrait,
    token_hash: String,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = enrollment_link::ActiveModel {
        token_hash: Set(token_hash),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
    };
    enrollment_link::Entity::insert(row).exec_without_returning(db).await.map(drop)
}

/// The user of an unused, unexpired link.
pub async fn usable_user(
    db: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, DbErr> {
    Ok(enrollment_link::Entity::find_by_id(token_hash.to_owned())
        .one(db)
        .await?
        .filter(|link| link.used_at.is_none() && link.expires_at > now)
        .map(|link| link.user_id))
}

/// Marks the link used if it still is usable for `user_id`; `true` for the one caller that did.
pub async fn redeem(
    db: &impl ConnectionTrait,
    token_hash: &str,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = enrollment_link::Entity::update_many()
        .col_expr(enrollment_link::Column::UsedAt, Expr::value(now))
        .filter(enrollment_link::Column::TokenHash.eq(token_hash))
        .filter(enrollment_link::Column::UserId.eq(user_id))
        .filter(enrollment_link::Column::UsedAt.is_null())
        .filter(enrollment_link::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
