//! Queries over `users`. Lookups by username or email compare the lower-cased copies, which
//! carry the unique indexes.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QuerySelect, Set, prelude::Uuid,
};

/// The fields of a user not yet stored.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: String,
}

/// The form of a username or email used for comparison.
pub fn normalize(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

/// Finds a user whose username or email equals `identifier`, ignoring case.
pub async fn find_by_login(db: &impl ConnectionTrait, identifier: &str) -> Result<Option<user::Model>, DbErr> {
    let normalized = normalize(identifier);
    user::Entity::find()
        .filter(
            user::Column::UsernameNormalized.eq(normalized.clone()).or(user::Column::EmailNormalized.eq(normalized)),
        )
        .one(db)
        .await
}

/// Finds a user by id.
pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id).one(db).await
}

/// Finds a user by id and locks the row until the surrounding transaction ends (PostgreSQL;
/// SQLite serialises writers anyway), so checks like "not the last passkey" cannot race.
pub async fn find_by_id_for_update(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id).lock_exclusive().one(db).await
}

/// Whether the username or email is taken; returns the name of the first taken field.
pub async fn taken_field(
    db: &impl ConnectionTrait,
    username: &str,
    email: &str,
) -> Result<Option<&'static str>, DbErr> {
    let by = |column: user::Column, value: &str| user::Entity::find().filter(column.eq(normalize(value))).one(db);
    if by(user::Column::UsernameNormalized, username).await?.is_some() {
        return Ok(Some("username"));
    }
    if by(user::Column::EmailNormalized, email).await?.is_some() {
        return Ok(Some("email"));
    }
    Ok(None)
}

/// Inserts a new user.
pub async fn insert(db: &impl ConnectionTrait, new: &NewUser, now: DateTime<Utc>) -> Result<user::Model, DbErr> {
    let row = user::ActiveModel {
        id: Set(new.id),
        username: Set(new.username.trim().to_owned()),
        username_normalized: Set(normalize(&new.username)),
        email: Set(new.email.trim().to_owned()),
        email_normalized: Set(normalize(&new.email)),
        display_name: Set(new.display_name.trim().to_owned()),
        created_at: Set(now),
        disabled: Set(false),
    };
    user::Entity::insert(row).exec_with_returning(db).await
}
