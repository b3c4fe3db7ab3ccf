//! Queries over `grants` and `refresh_tokens`. A grant and its first refresh token are written
//! together; rotation marks the old token used and stores the new one atomically, so of two
//! racing refreshes only one can win. Each of these writes is one statement on PostgreSQL (a
//! data-modifying `WITH`) and one script on SQLite ([`super::sqlite_script`]).

use chrono::{DateTime, Utc};
use entity::{grant, refresh_token};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryTrait,
    prelude::Uuid,
    sea_query::{
        Alias, CommonTableExpression, Expr, InsertStatement, Query, SelectStatement, SimpleExpr, SubQueryStatement,
        WithClause,
    },
};

use super::sqlite_script::GroupCommit;

/// The refresh token stored with a grant: its key ([`crate::oidc::tokens::refresh_token_key`]) and expiry.
pub struct NewRefreshToken {
    pub key: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a grant and (optionally) its first refresh token atomically, if the grant's user exists
/// and is enabled — checked by the INSERT itself, so no separate read of the account is needed
/// and an account disabled meanwhile gets nothing; `false` when it was not stored.
///
/// On PostgreSQL both rows go in with one statement (a data-modifying `WITH`): every statement
/// is a round trip, and `BEGIN`/`COMMIT` would add two more. SQLite has no such `WITH`, so there
/// it is a transaction of two INSERTs sent as one script ([`GroupCommit`]), the second
/// inserting only if the first did.
pub async fn insert_with_refresh(
    writes: &GroupCommit,
    grant: grant::Model,
    refresh: Option<NewRefreshToken>,
) -> Result<bool, DbErr> {
    let db = writes.db();
    let Some(refresh) = refresh else {
        return Ok(db.execute(&insert_for_enabled_user(grant)?).await?.rows_affected() == 1);
    };
    let backend = db.get_database_backend();
    let (created_at, grant_id) = (grant.created_at, grant.id);
    let mut stored_grant = insert_for_enabled_user(grant)?;
    stored_grant.returning_col(grant::Column::Id);
    if backend == DbBackend::Postgres {
        let both = insert_refresh_after(stored_grant, refresh, created_at)?;
        return Ok(db.execute(&both).await?.rows_affected() == 1);
    }
    let grant_exists =
        Query::select().expr(Expr::val(1)).from(grant::Entity).and_where(grant::Column::Id.eq(grant_id)).to_owned();
    let stored_token = insert_refresh_if(Expr::exists(grant_exists), grant_id, refresh, created_at)?;
    let rows = writes.run([backend.build(&stored_grant), backend.build(&stored_token)]).await?;
    Ok(rows == 2)
}

/// `INSERT INTO refresh_tokens (…) SELECT … WHERE condition RETURNING token_hash` (SQLite).
fn insert_refresh_if(
    condition: SimpleExpr,
    grant_id: Uuid,
    refresh: NewRefreshToken,
    now: DateTime<Utc>,
) -> Result<InsertStatement, DbErr> {
    let mut row = token_row(refresh, Expr::val(grant_id), now);
    row.and_where(condition);
    let mut insert = insert_token(row)?;
    insert.returning_col(refresh_token::Column::TokenHash);
    Ok(insert)
}

/// `WITH source (grant_id) AS (statement) INSERT INTO refresh_tokens … SELECT …, grant_id, …
/// FROM source`: the token is stored exactly when `statement` wrote a row, under the grant id
/// it returned (PostgreSQL).
fn insert_refresh_after(
    statement: impl Into<SubQueryStatement>,
    refresh: NewRefreshToken,
    now: DateTime<Utc>,
) -> Result<InsertStatement, DbErr> {
    let (source, grant_id) = (Alias::new("source"), Alias::new("grant_id"));
    let cte =
        CommonTableExpression::new().query(statement).column(grant_id.clone()).table_name(source.clone()).to_owned();
    let mut row = token_row(refresh, Expr::col(grant_id), now);
    row.from(source);
    let mut insert = insert_token(row)?;
    insert.with_cte(WithClause::new().cte(cte).to_owned());
    Ok(insert)
}

/// `SELECT key, grant_id, now, expires_at`: a new refresh token's row, in [`REFRESH_TOKEN_COLUMNS`] order.
fn token_row(refresh: NewRefreshToken, grant_id: SimpleExpr, now: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .expr(Expr::val(refresh.key))
        .expr(grant_id)
        .expr(Expr::val(now))
        .expr(Expr::val(refresh.expires_at))
        .to_owned()
}

/// `INSERT INTO refresh_tokens (…) <row>`.
fn insert_token(row: SelectStatement) -> Result<InsertStatement, DbErr> {
    let mut insert = Query::insert();
    insert
        .into_table(refresh_token::Entity)
        .columns(REFRESH_TOKEN_COLUMNS)
        .select_from(row)
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(insert)
}

/// The columns a new refresh token is written with (`used_at` stays NULL).
const REFRESH_TOKEN_COLUMNS: [refresh_token::Column; 4] = [
    refresh_token::Column::TokenHash,
    refresh_token::Column::GrantId,
    refresh_token::Column::CreatedAt,
    refresh_token::Column::ExpiresAt,
];

/// `INSERT INTO grants (…) SELECT … WHERE EXISTS (the user, enabled)`.
fn insert_for_enabled_user(grant: grant::Model) -> Result<InsertStatement, DbErr> {
    let user_id = grant.user_id;
    super::insert_select(grant::ActiveModel::from(grant), |row| {
        row.and_where(super::users::is_enabled(user_id));
    })
}

/// A grant by id.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<grant::Model>, DbErr> {
    super::unique(grant::Entity::find_by_id(id).into_model(), db).await
}

/// A refresh token by key.
pub async fn find_refresh(db: &impl ConnectionTrait, key: &str) -> Result<Option<refresh_token::Model>, DbErr> {
    super::unique(refresh_token::Entity::find_by_id(key.to_owned()).into_model(), db).await
}

/// Marks `old_key` used and stores its successor, atomically. `false` when the old token was
/// already used (a concurrent refresh won): nothing is stored then. One statement on
/// PostgreSQL (the UPDATE in a `WITH`), one script on SQLite (the INSERT only if the UPDATE
/// changed a row: `changes()` is the count of the last completed statement).
pub async fn rotate_refresh(
    writes: &GroupCommit,
    grant_id: Uuid,
    old_key: &str,
    new: NewRefreshToken,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut mark_used = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(old_key))
        .filter(refresh_token::Column::UsedAt.is_null())
        .into_query();
    mark_used.returning_col(refresh_token::Column::GrantId);
    let db = writes.db();
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        return Ok(db.execute(&insert_refresh_after(mark_used, new, now)?).await?.rows_affected() == 1);
    }
    let store_new = insert_refresh_if(Expr::cust("changes() = 1"), grant_id, new, now)?;
    Ok(writes.run([backend.build(&mark_used), backend.build(&store_new)]).await? == 2)
}

/// Revokes one grant (every token it issued dies with it).
pub async fn revoke(db: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), DbErr> {
    revoke_where(db, grant::Column::Id.eq(id), now).await.map(drop)
}

/// Revokes every live grant of an SSO session and returns them (for back-channel logout).
pub async fn revoke_for_session(
    db: &impl ConnectionTrait,
    sid: &str,
    now: DateTime<Utc>,
) -> Result<Vec<grant::Model>, DbErr> {
    revoke_where(db, grant::Column::Sid.eq(sid), now).await
}

/// Revokes every live grant of a user and returns them.
pub async fn revoke_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<grant::Model>, DbErr> {
    revoke_where(db, grant::Column::UserId.eq(user_id), now).await
}

async fn revoke_where(
    db: &impl ConnectionTrait,
    condition: sea_orm::sea_query::SimpleExpr,
    now: DateTime<Utc>,
) -> Result<Vec<grant::Model>, DbErr> {
    let live =
        grant::Entity::find().filter(condition.clone()).filter(grant::Column::RevokedAt.is_null()).all(db).await?;
    if !live.is_empty() {
        grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now))
            .filter(condition)
            .filter(grant::Column::RevokedAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(live)
}

/// Whether a grant is live: not revoked and not expired.
pub fn is_live(grant: &grant::Model, now: DateTime<Utc>) -> bool {
    grant.revoked_at.is_none() && grant.expires_at > now
}
