//! Queries over `clients`. Rows go in and come out as entity models; turning them into
//! validated [`crate::oidc::clients::Client`]s, and deciding when to write, is the domain's job.

use chrono::{DateTime, Utc};
use entity::client;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    sea_query::Expr,
};

/// The client with this `client_id`.
pub async fn find(db: &impl ConnectionTrait, client_id: &str) -> Result<Option<client::Model>, DbErr> {
    super::unique(client::Entity::find_by_id(client_id.to_owned()).into_model(), db).await
}

/// Every client, oldest first (ties broken by `client_id`, so the order is stable).
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<client::Model>, DbErr> {
    client::Entity::find().order_by_asc(client::Column::CreatedAt).order_by_asc(client::Column::ClientId).all(db).await
}

/// Inserts a new client; a taken `client_id` fails with a unique violation
/// (see [`super::unique_violation`]).
pub async fn insert(db: &impl ConnectionTrait, row: client::Model) -> Result<client::Model, DbErr> {
    client::Entity::insert(row.into_active_model().reset_all()).exec_with_returning(db).await
}

/// Overwrites every column of the client with `row.client_id`; fails with
/// [`DbErr::RecordNotUpdated`] when there is no such client.
pub async fn replace(db: &impl ConnectionTrait, row: client::Model) -> Result<client::Model, DbErr> {
    row.into_active_model().reset_all().update(db).await
}

/// Deletes a client; returns whether it existed.
pub async fn delete(db: &impl ConnectionTrait, client_id: &str) -> Result<bool, DbErr> {
    let result = client::Entity::delete_by_id(client_id.to_owned()).exec(db).await?;
    Ok(result.rows_affected > 0)
}

/// Sets (or, with `None`, clears) a client's secret hash; returns whether the client exists.
pub async fn set_secret_hash(
    db: &impl ConnectionTrait,
    client_id: &str,
    secret_hash: Option<String>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = client::Entity::update_many()
        .col_expr(client::Column::SecretHash, Expr::value(secret_hash))
        .col_expr(client::Column::UpdatedAt, Expr::value(now))
        .filter(client::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}
