//! Queries over `signing_keys`, plus the one `settings` row that records how long retired keys
//! stay published. Which key signs, and when keys are created or retired, is decided in
//! [`crate::oidc::keys`].

use chrono::{DateTime, Utc};
use entity::{setting, signing_key};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    sea_query::{Expr, OnConflict},
};

/// The `settings` key holding the publication window of retired keys, in whole seconds.
const RETIRED_PUBLISHED_FOR: &str = "signing_keys.retired_published_for_seconds";

/// Every key, oldest activation first (ties broken by kid, so every replica sees one order).
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<signing_key::Model>, DbErr> {
    signing_key::Entity::find()
        .order_by_asc(signing_key::Column::ActivatesAt)
        .order_by_asc(signing_key::Column::Kid)
        .all(db)
        .await
}

/// Whether any key (in any state) exists for `alg`.
pub async fn exists_for_alg(db: &impl ConnectionTrait, alg: &str) -> Result<bool, DbErr> {
    Ok(signing_key::Entity::find().filter(signing_key::Column::Alg.eq(alg)).count(db).await? > 0)
}

/// Inserts `key` unless a key with the same kid exists; concurrent callers inserting the same
/// kid therefore leave exactly one row, and each reads back the one that won.
pub async fn insert_if_absent(db: &impl ConnectionTrait, key: signing_key::Model) -> Result<(), DbErr> {
    signing_key::Entity::insert(signing_key::ActiveModel::from(key))
        .on_conflict(OnConflict::column(signing_key::Column::Kid).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Inserts `key`; fails if its kid is taken.
pub async fn insert(db: &impl ConnectionTrait, key: signing_key::Model) -> Result<(), DbErr> {
    signing_key::Entity::insert(signing_key::ActiveModel::from(key)).exec_without_returning(db).await?;
    Ok(())
}

/// Marks every key of `alg` not yet retired by `at` as retired at `at`; returns how many.
pub async fn retire_all(db: &impl ConnectionTrait, alg: &str, at: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = signing_key::Entity::update_many()
        .col_expr(signing_key::Column::RetiredAt, Expr::value(Some(at)))
        .filter(signing_key::Column::Alg.eq(alg))
        .filter(signing_key::Column::RetiredAt.is_null().or(signing_key::Column::RetiredAt.gt(at)))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// How long retired keys stay published, in seconds, if a rotation has recorded it.
pub async fn retired_published_for(db: &impl ConnectionTrait) -> Result<Option<i64>, DbErr> {
    let Some(row) = setting::Entity::find_by_id(RETIRED_PUBLISHED_FOR.to_owned()).one(db).await? else {
        return Ok(None);
    };
    row.value.parse().map(Some).map_err(|e| DbErr::Custom(format!("setting {RETIRED_PUBLISHED_FOR}: {e}")))
}

/// Records how long retired keys stay published, in seconds (the latest rotation's choice).
pub async fn set_retired_published_for(db: &impl ConnectionTrait, seconds: i64) -> Result<(), DbErr> {
    let row = setting::ActiveModel { key: Set(RETIRED_PUBLISHED_FOR.to_owned()), value: Set(seconds.to_string()) };
    setting::Entity::insert(row)
        .on_conflict(OnConflict::column(setting::Column::Key).update_column(setting::Column::Value).to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}
