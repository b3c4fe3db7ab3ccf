//! Queries over `users`. Lookups by username or email compare the lower-cased copies, which
//! carry the unique indexes.

use chrono::{DateTime, Utc};
use entity::{passkey, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
    prelude::Uuid,
    sea_query::{Expr, Func, LikeExpr, Query, SimpleExpr},
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
    user::Entity::find().filter(login_matches(identifier)).one(db).await
}

/// Like [`find_by_login`], with the user's passkeys (oldest first), in one query.
pub async fn find_by_login_with_passkeys(
    db: &impl ConnectionTrait,
    identifier: &str,
) -> Result<Option<(user::Model, Vec<passkey::Model>)>, DbErr> {
    let found = user::Entity::find()
        .filter(login_matches(identifier))
        .find_with_related(passkey::Entity)
        .order_by_asc(passkey::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(found.into_iter().next())
}

fn login_matches(identifier: &str) -> sea_orm::sea_query::SimpleExpr {
    let normalized = normalize(identifier);
    user::Column::UsernameNormalized.eq(normalized.clone()).or(user::Column::EmailNormalized.eq(normalized))
}

/// `EXISTS (the user `id`, enabled)`: the condition of a write that only an enabled account may
/// cause, checked by the write itself.
pub fn is_enabled(id: Uuid) -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(user::Entity)
            .and_where(user::Column::Id.eq(id))
            .and_where(user::Column::Disabled.eq(false))
            .to_owned(),
    )
}

/// Finds a user by id.
pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, DbErr> {
    super::unique(user::Entity::find_by_id(id).into_model(), db).await
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

/// Up to `limit` users, oldest first (ties broken by id), after the user whose
/// `(created_at, id)` is `after`. With `search`, only users whose username, email or display
/// name contains it, ignoring case (ASCII case for the display name on SQLite).
pub async fn list(
    db: &impl ConnectionTrait,
    search: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<user::Model>, DbErr> {
    let mut query = user::Entity::find();
    if let Some(search) = search.map(normalize).filter(|s| !s.is_empty()) {
        let pattern = || LikeExpr::new(format!("%{}%", super::audit::escape_like(&search))).escape('\\');
        let display_name = Expr::expr(Func::lower(Expr::col((user::Entity, user::Column::DisplayName))));
        query = query.filter(
            Condition::any()
                .add(user::Column::UsernameNormalized.like(pattern()))
                .add(user::Column::EmailNormalized.like(pattern()))
                .add(display_name.like(pattern())),
        );
    }
    if let Some((created_at, id)) = after {
        query = query.filter(
            Condition::any()
                .add(user::Column::CreatedAt.gt(created_at))
                .add(user::Column::CreatedAt.eq(created_at).and(user::Column::Id.gt(id))),
        );
    }
    query.order_by_asc(user::Column::CreatedAt).order_by_asc(user::Column::Id).limit(limit).all(db).await
}

/// New values for some of a user's fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub disabled: Option<bool>,
}

/// Applies `changes` to the user `id` (keeping the lower-cased copies in step) and returns the
/// updated user, or `None` when there is no such user. A username or email taken by another
/// user fails with a unique violation (see [`super::unique_violation`]).
pub async fn update(db: &impl ConnectionTrait, id: Uuid, changes: &UserChanges) -> Result<Option<user::Model>, DbErr> {
    let Some(current) = find_by_id(db, id).await? else {
        return Ok(None);
    };
    let mut row = user::ActiveModel::from(current);
    if let Some(username) = &changes.username {
        row.username = Set(username.trim().to_owned());
        row.username_normalized = Set(normalize(username));
    }
    if let Some(email) = &changes.email {
        row.email = Set(email.trim().to_owned());
        row.email_normalized = Set(normalize(email));
    }
    if let Some(display_name) = &changes.display_name {
        row.display_name = Set(display_name.trim().to_owned());
    }
    if let Some(disabled) = changes.disabled {
        row.disabled = Set(disabled);
    }
    if !row.is_changed() {
        return find_by_id(db, id).await;
    }
    row.update(db).await.map(Some)
}

/// Deletes a user (their passkeys, grants and consents go with them); returns whether the user
/// existed.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    Ok(user::Entity::delete_by_id(id).exec(db).await?.rows_affected > 0)
}
