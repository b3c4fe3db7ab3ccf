//! Queries over `passkeys`. The webauthn-rs credential is stored as its own JSON; the listing
//! columns (name, flags, transports, last use) are kept beside it.

use chrono::{DateTime, Utc};
use entity::{audit_event, passkey, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QueryTrait,
    Set,
    prelude::Uuid,
    sea_query::{Alias, CommonTableExpression, Expr, WithClause},
};

use super::sqlite_script::GroupCommit;

/// A verified credential ready to be stored.
#[derive(Clone, Debug)]
pub struct NewPasskey {
    pub credential_id: String,
    pub passkey_json: String,
    pub name: String,
    pub aaguid: Option<Uuid>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
}

/// Stores a new passkey for `user_id`.
pub async fn insert(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    new: NewPasskey,
    now: DateTime<Utc>,
) -> Result<passkey::Model, DbErr> {
    let row = passkey::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        credential_id: Set(new.credential_id),
        passkey_json: Set(new.passkey_json),
        name: Set(new.name),
        aaguid: Set(new.aaguid),
        created_at: Set(now),
        last_used_at: Set(None),
        backup_eligible: Set(new.backup_eligible),
        backup_state: Set(new.backup_state),
        transports: Set(new.transports.join(",")),
    };
    passkey::Entity::insert(row).exec_with_returning(db).await
}

/// A user's passkeys, oldest first.
pub async fn list_for_user(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<passkey::Model>, DbErr> {
    passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .all(db)
        .await
}

/// How many passkeys a user has.
pub async fn count_for_user(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    passkey::Entity::find().filter(passkey::Column::UserId.eq(user_id)).count(db).await
}

/// The passkey with this credential id (base64url) and its owner, in one query.
pub async fn find_with_owner(
    db: &impl ConnectionTrait,
    credential_id: &str,
) -> Result<Option<(passkey::Model, user::Model)>, DbErr> {
    let query = passkey::Entity::find()
        .filter(passkey::Column::CredentialId.eq(credential_id))
        .find_also_related(user::Entity)
        .into_model();
    let found = super::unique(query, db).await?;
    // The foreign key guarantees an owner; a row without one is treated as absent.
    Ok(found.and_then(|(passkey, owner)| Some((passkey, owner?))))
}

/// A stored credential's new JSON (its counter moved) and the JSON it was computed from.
pub struct CredentialUpdate {
    pub read: String,
    pub new: String,
}

/// Saves what a sign-in changed on `user_id`'s passkey `id` (backup state, time of use, and the
/// stored credential when its counter moved, unless another sign-in changed it since it was
/// read: a counter never goes back) and the sign-in's audit event, atomically and in
/// one call to the database: a data-modifying `WITH` on PostgreSQL, a script on SQLite
/// ([`super::sqlite_script`]). Only while the passkey is still registered and its account
/// enabled, which the UPDATE checks itself; `false` (and nothing written) otherwise.
pub async fn record_use(
    writes: &GroupCommit,
    user_id: Uuid,
    id: Uuid,
    credential: Option<CredentialUpdate>,
    backup_state: bool,
    now: DateTime<Utc>,
    event: audit_event::Model,
) -> Result<bool, DbErr> {
    let mut update = passkey::Entity::update_many()
        .col_expr(passkey::Column::BackupState, backup_state.into())
        .col_expr(passkey::Column::LastUsedAt, Some(now).into());
    if let Some(CredentialUpdate { read, new }) = credential {
        let unchanged = passkey::Column::PasskeyJson.eq(read);
        let json = Expr::case(unchanged, new).finally(Expr::col(passkey::Column::PasskeyJson));
        update = update.col_expr(passkey::Column::PasskeyJson, json.into());
    }
    let mut update = update
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .filter(super::users::is_enabled(user_id))
        .into_query();
    update.returning_col(passkey::Column::Id);
    let event = audit_event::ActiveModel::from(event);
    let db = writes.db();
    let backend = db.get_database_backend();
    if backend == DbBackend::Postgres {
        let used = Alias::new("used");
        let mut insert_event = super::insert_select(event, |row| {
            row.from(used.clone());
        })?;
        let cte = CommonTableExpression::new().query(update).table_name(used).to_owned();
        insert_event.with_cte(WithClause::new().cte(cte).to_owned());
        return Ok(db.execute(&insert_event).await?.rows_affected() == 1);
    }
    let mut insert_event = super::insert_select(event, |row| {
        row.and_where(Expr::cust("changes() = 1"));
    })?;
    insert_event.returning_col(audit_event::Column::Id);
    Ok(writes.run([backend.build(&update), backend.build(&insert_event)]).await? == 2)
}

/// Renames one of a user's passkeys; `false` when the user has no such passkey.
pub async fn rename(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid, name: &str) -> Result<bool, DbErr> {
    let result = passkey::Entity::update_many()
        .col_expr(passkey::Column::Name, name.into())
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes one of a user's passkeys; `false` when the user has no such passkey.
pub async fn delete(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let result = passkey::Entity::delete_many()
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
