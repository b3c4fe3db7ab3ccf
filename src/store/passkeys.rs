//! Queries over `passkeys`. The webauthn-rs credential is stored as its own JSON; the listing
//! columns (name, flags, transports, last use) are kept beside it.

use chrono::{DateTime, Utc};
use entity::{audit_event, passkey, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QueryTrait,
    Set, Statement,
    prelude::Uuid,
    sea_query::{Alias, CommonTableExpression, Expr, UpdateStatement, WithClause},
};
use serde::{Serialize, Serializer, ser::SerializeStruct};

use super::{group_commit::GroupCommit, pg_group::GroupWrite};

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
#[derive(Clone)]
pub struct CredentialUpdate {
    pub read: String,
    pub new: String,
}

/// What a sign-in changed on a passkey, and the sign-in's audit event: see [`record_use`].
pub struct PasskeyUse {
    pub user_id: Uuid,
    pub id: Uuid,
    pub credential: Option<CredentialUpdate>,
    pub backup_state: bool,
    pub now: DateTime<Utc>,
    pub event: audit_event::Model,
}

/// Saves what a sign-in changed on `user_id`'s passkey `id` (backup state, time of use, and the
/// stored credential when its counter moved, unless another sign-in changed it since it was
/// read: a counter never goes back) and the sign-in's audit event, atomically and in
/// one call to the database: a data-modifying `WITH` on PostgreSQL, with the sign-ins of other
/// requests at the same time ([`PasskeyUse::GROUP_SQL`]), a script on SQLite
/// ([`super::sqlite_script`]). Only while the passkey is still registered and its account
/// enabled, which the UPDATE checks itself; `false` (and nothing written) otherwise.
pub async fn record_use(writes: &GroupCommit, used: PasskeyUse) -> Result<bool, DbErr> {
    if let Some(uses) = writes.passkey_uses() {
        return uses.write(used).await;
    }
    let backend = writes.db().get_database_backend();
    let update = backend.build(&used.update());
    let mut insert_event = super::insert_select(audit_event::ActiveModel::from(used.event), |row| {
        row.and_where(Expr::cust("changes() = 1"));
    })?;
    insert_event.returning_col(audit_event::Column::Id);
    Ok(writes.run([update, backend.build(&insert_event)]).await? == 2)
}

impl PasskeyUse {
    /// `UPDATE passkeys … RETURNING id`, of the passkey while it is registered to an enabled
    /// account.
    fn update(&self) -> UpdateStatement {
        let mut update = passkey::Entity::update_many()
            .col_expr(passkey::Column::BackupState, self.backup_state.into())
            .col_expr(passkey::Column::LastUsedAt, Some(self.now).into());
        if let Some(CredentialUpdate { read, new }) = &self.credential {
            let unchanged = passkey::Column::PasskeyJson.eq(read);
            let json = Expr::case(unchanged, new).finally(Expr::col(passkey::Column::PasskeyJson));
            update = update.col_expr(passkey::Column::PasskeyJson, json.into());
        }
        let mut update = update
            .filter(passkey::Column::Id.eq(self.id))
            .filter(passkey::Column::UserId.eq(self.user_id))
            .filter(super::users::is_enabled(self.user_id))
            .into_query();
        update.returning_col(passkey::Column::Id);
        update
    }
}

impl GroupWrite for PasskeyUse {
    /// The same conditions and changes as [`PasskeyUse::alone`], for every use of the group.
    const GROUP_SQL: &'static str = "WITH i AS (
        SELECT * FROM ROWS FROM (json_to_recordset($1::json) AS (id uuid, user_id uuid, backup_state boolean,
            used_at timestamptz, read_json text, new_json text, event_id uuid, event_at timestamptz, event_type text,
            event_user_id uuid, event_client_id text, event_ip text, event_user_agent text, event_detail text))
        WITH ORDINALITY AS r(id, user_id, backup_state, used_at, read_json, new_json, event_id, event_at, event_type,
            event_user_id, event_client_id, event_ip, event_user_agent, event_detail, n)
    ), used AS (
        UPDATE passkeys SET backup_state = i.backup_state, last_used_at = i.used_at,
            passkey_json = CASE WHEN passkeys.passkey_json = i.read_json THEN i.new_json ELSE passkeys.passkey_json END
        FROM i
        WHERE passkeys.id = i.id AND passkeys.user_id = i.user_id
            AND EXISTS (SELECT 1 FROM users WHERE users.id = i.user_id AND NOT users.disabled)
        RETURNING i.n
    ), events AS (
        INSERT INTO audit_events (id, at, type, user_id, client_id, ip, user_agent, detail)
        SELECT event_id, event_at, event_type, event_user_id, event_client_id, event_ip, event_user_agent, event_detail
        FROM i JOIN used USING (n)
    )
    SELECT n FROM used";

    fn row(&self) -> Uuid {
        self.id
    }

    /// The UPDATE in a `WITH`, and the INSERT of the event from its result.
    fn alone(&self) -> Result<Statement, DbErr> {
        let used = Alias::new("used");
        let mut insert_event = super::insert_select(audit_event::ActiveModel::from(self.event.clone()), |row| {
            row.from(used.clone());
        })?;
        let cte = CommonTableExpression::new().query(self.update()).table_name(used).to_owned();
        insert_event.with_cte(WithClause::new().cte(cte).to_owned());
        Ok(DbBackend::Postgres.build(&insert_event))
    }
}

impl Serialize for PasskeyUse {
    /// The row [`PasskeyUse::GROUP_SQL`] reads; instants to the microsecond, as PostgreSQL keeps
    /// them and as the statement alone would bind them.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = &self.event;
        let mut row = serializer.serialize_struct("PasskeyUse", 14)?;
        row.serialize_field("id", &self.id)?;
        row.serialize_field("user_id", &self.user_id)?;
        row.serialize_field("backup_state", &self.backup_state)?;
        row.serialize_field("used_at", &super::to_the_microsecond(self.now))?;
        row.serialize_field("read_json", &self.credential.as_ref().map(|update| &update.read))?;
        row.serialize_field("new_json", &self.credential.as_ref().map(|update| &update.new))?;
        row.serialize_field("event_id", &event.id)?;
        row.serialize_field("event_at", &super::to_the_microsecond(event.at))?;
        row.serialize_field("event_type", &event.kind)?;
        row.serialize_field("event_user_id", &event.user_id)?;
        row.serialize_field("event_client_id", &event.client_id)?;
        row.serialize_field("event_ip", &event.ip)?;
        row.serialize_field("event_user_agent", &event.user_agent)?;
        row.serialize_field("event_detail", &event.detail)?;
        row.end()
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{DatabaseConnection, DbBackend, Statement};

    use super::*;
    use crate::store::{TempSchema, as_postgres_keeps, kept::KeptConnections, pg_count};

    /// A passkey of `user_id` whose stored credential is `json`; its id.
    async fn passkey(db: &DatabaseConnection, user_id: Uuid, json: &str) -> Uuid {
        let id = Uuid::now_v7();
        let sql = format!(
            "INSERT INTO passkeys (id, user_id, credential_id, passkey_json, name, created_at, backup_eligible, \
             backup_state, transports) VALUES ('{id}', '{user_id}', '{id}', '{json}', 'key', now(), true, false, '')"
        );
        db.execute_unprepared(&sql).await.unwrap();
        id
    }

    fn used(user_id: Uuid, id: Uuid, credential: Option<CredentialUpdate>) -> PasskeyUse {
        let now = Utc::now();
        let event = audit_event::Model {
            id: Uuid::now_v7(),
            at: now,
            kind: "signin.succeeded".to_owned(),
            user_id: Some(user_id),
            client_id: None,
            ip: Some("192.0.2.1".to_owned()),
            user_agent: None,
            detail: format!("{{\"passkey\":\"{id}\"}}"),
        };
        PasskeyUse { user_id, id, credential, backup_state: true, now, event }
    }

    fn update(read: &str, new: &str) -> Option<CredentialUpdate> {
        Some(CredentialUpdate { read: read.to_owned(), new: new.to_owned() })
    }

    async fn stored(db: &DatabaseConnection, id: Uuid) -> passkey::Model {
        passkey::Entity::find_by_id(id).one(db).await.unwrap().unwrap()
    }

    /// Forty sign-ins recorded at once go to PostgreSQL in groups: every fourth by the disabled
    /// user (not recorded), every fifth of a passkey deleted meanwhile (not recorded), and two
    /// of one passkey, both read before either was recorded, so that the second's counter must
    /// not replace the first's. Each must be told its own outcome, with an audit event exactly
    /// for each recorded one.
    #[tokio::test]
    async fn sign_ins_recorded_together_on_postgres_each_get_their_own_outcome() {
        let Some(schema) = TempSchema::new().await else { return };
        let (db, enabled, disabled) = schema.migrated_with_users().await;
        let writes = Arc::new(GroupCommit::new(KeptConnections::new(db.clone())));
        let mut expected = Vec::new();
        for n in 0..40 {
            let user = if n % 4 == 0 { disabled } else { enabled };
            let id = passkey(&db, user, "read").await;
            if n % 5 == 0 {
                assert!(delete(&db, user, id).await.unwrap());
            }
            expected.push((used(user, id, update("read", &format!("new-{n}"))), n % 4 != 0 && n % 5 != 0));
        }
        let twice = passkey(&db, enabled, "read").await;
        expected.push((used(enabled, twice, update("read", "first")), true));
        expected.push((used(enabled, twice, update("read", "second")), true));
        let mut sent = tokio::task::JoinSet::new();
        for (n, (use_, recorded)) in expected.into_iter().enumerate() {
            let (writes, id) = (writes.clone(), use_.id);
            sent.spawn(async move { (n, id, recorded, record_use(&writes, use_).await.unwrap()) });
        }
        let mut recorded_count = 0;
        while let Some(joined) = sent.join_next().await {
            let (n, id, recorded, outcome) = joined.unwrap();
            assert_eq!(outcome, recorded, "sign-in {n}");
            if recorded && id != twice {
                let row = stored(&db, id).await;
                assert_eq!((row.passkey_json, row.backup_state), (format!("new-{n}"), true));
                assert!(row.last_used_at.is_some());
            }
            recorded_count += i64::from(recorded);
        }
        assert_eq!(stored(&db, twice).await.passkey_json, "first", "the second read a counter already moved");
        assert_eq!(pg_count(&db, "SELECT count(*) FROM audit_events").await, recorded_count);
        db.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// The group's statement records what the statement alone records.
    #[tokio::test]
    async fn a_sign_in_recorded_in_a_group_is_the_sign_in_recorded_alone() {
        let Some(schema) = TempSchema::new().await else { return };
        let (db, enabled, _) = schema.migrated_with_users().await;
        let kept = KeptConnections::new(db.clone());
        let (first, second, third) = (
            passkey(&db, enabled, "read").await,
            passkey(&db, enabled, "read").await,
            passkey(&db, enabled, "read").await,
        );
        let uses = [used(enabled, first, update("read", "new")), used(enabled, second, None)];
        let rows = serde_json::to_string(&uses).unwrap();
        let group = Statement::from_sql_and_values(DbBackend::Postgres, PasskeyUse::GROUP_SQL, [rows.into()]);
        let written = kept.query_all_raw(group).await.unwrap();
        assert_eq!(written.len(), 2, "both recorded by the group's statement");
        let alone = used(enabled, third, update("read", "new"));
        assert_eq!(kept.execute_raw(alone.alone().unwrap()).await.unwrap().rows_affected(), 1);
        let (in_group, unchanged, by_itself) =
            (stored(&db, first).await, stored(&db, second).await, stored(&db, third).await);
        assert_eq!((in_group.passkey_json.as_str(), unchanged.passkey_json.as_str()), ("new", "read"));
        for (row, use_) in [(in_group, &uses[0]), (by_itself, &alone)] {
            let at = as_postgres_keeps(use_.now);
            assert_eq!((row.passkey_json.as_str(), row.backup_state, row.last_used_at), ("new", true, Some(at)));
            let event = audit_event::Entity::find_by_id(use_.event.id).one(&db).await.unwrap().unwrap();
            assert_eq!(event, audit_event::Model { at, ..use_.event.clone() });
        }
        db.close().await.unwrap();
        schema.drop_schema().await;
    }
}
