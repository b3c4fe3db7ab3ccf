//! Queries over `grants` and `refresh_tokens`. A grant and its first refresh token are written
//! together; rotation marks the old token used and stores the new one atomically, so of two
//! racing refreshes only one can win. Each of these writes is one statement on PostgreSQL (a
//! data-modifying `WITH`, shared with the same writes of other requests: [`super::pg_group`])
//! and one script on SQLite ([`super::sqlite_script`]). A refresh reads its token, grant and
//! user with one query.

use chrono::{DateTime, Utc};
use entity::{grant, refresh_token, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryTrait, Statement,
    prelude::Uuid,
    sea_query::{
        Alias, CommonTableExpression, Expr, InsertStatement, Query, SelectStatement, SimpleExpr, SubQueryStatement,
        UpdateStatement, WithClause,
    },
};

use serde::{Serialize, Serializer, ser::SerializeStruct};

use super::{group_commit::GroupCommit, pg_group::GroupWrite};

/// The refresh token stored with a grant: its key ([`crate::oidc::tokens::refresh_token_key`]) and expiry.
#[derive(Clone)]
pub struct NewRefreshToken {
    pub key: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a grant and (optionally) its first refresh token atomically, if the grant's user exists
/// and is enabled — checked by the INSERT itself, so no separate read of the account is needed
/// and an account disabled meanwhile gets nothing; `false` when it was not stored.
///
/// On PostgreSQL both rows go in with one statement (a data-modifying `WITH`): every statement
/// is a round trip, and `BEGIN`/`COMMIT` would add two more. Grants that requests store at the
/// same time go in together, one statement for all ([`GrantWrite`]). SQLite has no such
/// `WITH`, so there it is a transaction of two INSERTs sent as one script ([`GroupCommit`]), the
/// second inserting only if the first did.
pub async fn insert_with_refresh(
    writes: &GroupCommit,
    grant: grant::Model,
    refresh: Option<NewRefreshToken>,
) -> Result<bool, DbErr> {
    if let Some(grants) = writes.grants() {
        return grants.write(GrantWrite { grant, refresh }).await;
    }
    let Some(refresh) = refresh else {
        return Ok(writes.db().execute(&insert_for_enabled_user(grant)?).await?.rows_affected() == 1);
    };
    let backend = writes.db().get_database_backend();
    let (created_at, grant_id) = (grant.created_at, grant.id);
    let mut stored_grant = insert_for_enabled_user(grant)?;
    stored_grant.returning_col(grant::Column::Id);
    let grant_exists =
        Query::select().expr(Expr::val(1)).from(grant::Entity).and_where(grant::Column::Id.eq(grant_id)).to_owned();
    let stored_token = insert_refresh_if(Expr::exists(grant_exists), grant_id, refresh, created_at)?;
    let rows = writes.run([backend.build(&stored_grant), backend.build(&stored_token)]).await?;
    Ok(rows == 2)
}

/// A grant and its first refresh token, if any, to be stored on PostgreSQL with others
/// ([`super::pg_group::PgGroup`]): as one JSON row of [`GrantWrite::GROUP_SQL`], or alone with
/// the statement [`insert_with_refresh`] has always used.
pub struct GrantWrite {
    grant: grant::Model,
    refresh: Option<NewRefreshToken>,
}

impl GroupWrite for GrantWrite {
    /// The grants whose users exist and are enabled, each with its refresh token if it has one
    /// (the same conditions as [`insert_for_enabled_user`] and [`insert_refresh_after`]).
    const GROUP_SQL: &'static str = "WITH i AS (
        SELECT * FROM ROWS FROM (json_to_recordset($1::json) AS (id uuid, client_id text, user_id uuid, sid text,
            scope text, auth_time timestamptz, amr text, acr text, created_at timestamptz, expires_at timestamptz,
            revoked_at timestamptz, refresh_key text, refresh_expires_at timestamptz))
        WITH ORDINALITY AS r(id, client_id, user_id, sid, scope, auth_time, amr, acr, created_at, expires_at,
            revoked_at, refresh_key, refresh_expires_at, n)
    ), stored AS (
        INSERT INTO grants (id, client_id, user_id, sid, scope, auth_time, amr, acr, created_at, expires_at, revoked_at)
        SELECT id, client_id, user_id, sid, scope, auth_time, amr, acr, created_at, expires_at, revoked_at FROM i
        WHERE EXISTS (SELECT 1 FROM users WHERE users.id = i.user_id AND NOT users.disabled)
        RETURNING id
    ), tokens AS (
        INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at)
        SELECT i.refresh_key, i.id, i.created_at, i.refresh_expires_at FROM i JOIN stored USING (id)
        WHERE i.refresh_key IS NOT NULL
    )
    SELECT i.n FROM i JOIN stored USING (id)";

    fn row(&self) -> Uuid {
        self.grant.id
    }

    fn alone(&self) -> Result<Statement, DbErr> {
        let mut stored_grant = insert_for_enabled_user(self.grant.clone())?;
        let Some(refresh) = &self.refresh else {
            return Ok(DbBackend::Postgres.build(&stored_grant));
        };
        stored_grant.returning_col(grant::Column::Id);
        Ok(DbBackend::Postgres.build(&insert_refresh_after(stored_grant, refresh.clone(), self.grant.created_at)?))
    }
}

impl Serialize for GrantWrite {
    /// The row [`GrantWrite::GROUP_SQL`] reads; instants to the microsecond, as PostgreSQL
    /// keeps them and as the statement alone would bind them.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let instant = super::to_the_microsecond;
        let grant = &self.grant;
        let mut row = serializer.serialize_struct("GrantWrite", 13)?;
        row.serialize_field("id", &grant.id)?;
        row.serialize_field("client_id", &grant.client_id)?;
        row.serialize_field("user_id", &grant.user_id)?;
        row.serialize_field("sid", &grant.sid)?;
        row.serialize_field("scope", &grant.scope)?;
        row.serialize_field("auth_time", &instant(grant.auth_time))?;
        row.serialize_field("amr", &grant.amr)?;
        row.serialize_field("acr", &grant.acr)?;
        row.serialize_field("created_at", &instant(grant.created_at))?;
        row.serialize_field("expires_at", &instant(grant.expires_at))?;
        row.serialize_field("revoked_at", &grant.revoked_at.map(instant))?;
        row.serialize_field("refresh_key", &self.refresh.as_ref().map(|refresh| &refresh.key))?;
        row.serialize_field("refresh_expires_at", &self.refresh.as_ref().map(|refresh| instant(refresh.expires_at)))?;
        row.end()
    }
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

/// A grant by id with its user (`None` when the account is gone), in one query.
pub async fn find_with_user(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<(grant::Model, Option<user::Model>)>, DbErr> {
    super::unique(grant::Entity::find_by_id(id).find_also_related(user::Entity).into_model(), db).await
}

/// A refresh token with its grant and the grant's person.
pub struct RefreshWithGrant {
    pub token: refresh_token::Model,
    pub grant: grant::Model,
    /// `None` when the account is gone.
    pub user: Option<user::Model>,
}

/// A refresh token by key, with its grant and the grant's user, in one query: a refresh needs
/// all three, introspection and revocation the first two, and on PostgreSQL every statement is
/// a round trip.
pub async fn find_refresh(db: &impl ConnectionTrait, key: &str) -> Result<Option<RefreshWithGrant>, DbErr> {
    let query = refresh_token::Entity::find_by_id(key.to_owned())
        .find_also_related(grant::Entity)
        .and_also_related(user::Entity)
        .into_model();
    let found = super::unique(query, db).await?;
    // The foreign key guarantees a grant; a token without one is treated as absent.
    Ok(found.and_then(|(token, grant, user)| Some(RefreshWithGrant { token, grant: grant?, user })))
}

/// Marks `old_key` used and stores its successor, atomically. `false` when the old token was
/// already used (a concurrent refresh won): nothing is stored then. One statement on
/// PostgreSQL (the UPDATE in a `WITH`), with the rotations of other requests at the same time
/// ([`RefreshRotation::GROUP_SQL`]); one script on SQLite (the INSERT only if the UPDATE
/// changed a row: `changes()` is the count of the last completed statement).
pub async fn rotate_refresh(writes: &GroupCommit, rotation: RefreshRotation) -> Result<bool, DbErr> {
    if let Some(rotations) = writes.refresh_rotations() {
        return rotations.write(rotation).await;
    }
    let backend = writes.db().get_database_backend();
    let mark_used = backend.build(&rotation.mark_used());
    let store_new = insert_refresh_if(Expr::cust("changes() = 1"), rotation.grant_id, rotation.new, rotation.now)?;
    Ok(writes.run([mark_used, backend.build(&store_new)]).await? == 2)
}

/// A refresh token's rotation: `old_key`, of grant `grant_id`, used at `now` and succeeded by
/// `new` ([`rotate_refresh`]).
pub struct RefreshRotation {
    pub grant_id: Uuid,
    pub old_key: String,
    pub new: NewRefreshToken,
    pub now: DateTime<Utc>,
}

impl RefreshRotation {
    /// `UPDATE refresh_tokens SET used_at = now WHERE key = old_key AND used_at IS NULL
    /// RETURNING grant_id`.
    fn mark_used(&self) -> UpdateStatement {
        let mut mark_used = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(self.now))
            .filter(refresh_token::Column::TokenHash.eq(self.old_key.as_str()))
            .filter(refresh_token::Column::UsedAt.is_null())
            .into_query();
        mark_used.returning_col(refresh_token::Column::GrantId);
        mark_used
    }
}

impl GroupWrite for RefreshRotation {
    /// The old tokens not used yet marked used, each with its successor stored (the same
    /// conditions as [`RefreshRotation::mark_used`] and [`insert_refresh_after`]).
    const GROUP_SQL: &'static str = "WITH i AS (
        SELECT * FROM ROWS FROM (json_to_recordset($1::json) AS (old_key text, new_key text, now timestamptz,
            expires_at timestamptz))
        WITH ORDINALITY AS r(old_key, new_key, now, expires_at, n)
    ), used AS (
        UPDATE refresh_tokens SET used_at = i.now FROM i
        WHERE refresh_tokens.token_hash = i.old_key AND refresh_tokens.used_at IS NULL
        RETURNING refresh_tokens.token_hash, refresh_tokens.grant_id
    ), successors AS (
        INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at)
        SELECT i.new_key, used.grant_id, i.now, i.expires_at FROM i JOIN used ON used.token_hash = i.old_key
    )
    SELECT i.n FROM i JOIN used ON used.token_hash = i.old_key";

    /// The grant: its tokens are rotated one group at a time (two rotations of one token in a
    /// group would both see the UPDATE's one row).
    fn row(&self) -> Uuid {
        self.grant_id
    }

    fn alone(&self) -> Result<Statement, DbErr> {
        Ok(DbBackend::Postgres.build(&insert_refresh_after(self.mark_used(), self.new.clone(), self.now)?))
    }
}

impl Serialize for RefreshRotation {
    /// The row [`RefreshRotation::GROUP_SQL`] reads.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let instant = super::to_the_microsecond;
        let mut row = serializer.serialize_struct("RefreshRotation", 4)?;
        row.serialize_field("old_key", &self.old_key)?;
        row.serialize_field("new_key", &self.new.key)?;
        row.serialize_field("now", &instant(self.now))?;
        row.serialize_field("expires_at", &instant(self.new.expires_at))?;
        row.end()
    }
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

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, sync::Arc};

    use chrono::TimeDelta;
    use sea_orm::{DatabaseConnection, DbBackend, Statement};

    use super::*;
    use crate::store::{TempSchema, as_postgres_keeps, kept::KeptConnections, pg_count};

    const CLIENT: &str = "app";

    /// A migrated schema with client [`CLIENT`], an enabled user and a disabled one.
    async fn postgres() -> Option<(TempSchema, DatabaseConnection, Uuid, Uuid)> {
        let schema = TempSchema::new().await?;
        let (db, enabled, disabled) = schema.migrated_with_users().await;
        let sql = format!(
            "INSERT INTO clients (client_id, name, public, first_party, redirect_uris, post_logout_redirect_uris, \
             allowed_scopes, grant_types, id_token_signed_response_alg, created_at, updated_at) \
             VALUES ('{CLIENT}', 'App', true, true, '[]', '[]', 'openid', 'authorization_code', 'ES256', now(), now())"
        );
        db.execute_unprepared(&sql).await.unwrap();
        Some((schema, db, enabled, disabled))
    }

    fn grant(user_id: Uuid, client_id: &str) -> grant::Model {
        let now = Utc::now();
        grant::Model {
            id: Uuid::now_v7(),
            client_id: client_id.to_owned(),
            user_id,
            sid: "sid".to_owned(),
            scope: "openid".to_owned(),
            auth_time: now,
            amr: "hwk user".to_owned(),
            acr: "acr".to_owned(),
            created_at: now,
            expires_at: now + TimeDelta::days(1),
            revoked_at: None,
        }
    }

    /// Sixty grants stored at once go to PostgreSQL in groups: every third for the disabled user
    /// (not stored), every other with a refresh token, and one for a client that does not
    /// exist, which fails its group's statement. Each request must be told its own outcome, the
    /// failing one must fail alone, and what is stored must be exactly what each asked for.
    #[tokio::test]
    async fn grants_stored_together_on_postgres_each_get_their_own_outcome() {
        let Some((schema, db, enabled, disabled)) = postgres().await else { return };
        let writes = Arc::new(GroupCommit::new(KeptConnections::new(db.clone())));
        let mut sent = tokio::task::JoinSet::new();
        for n in 0..60 {
            let user = if n % 3 == 0 { disabled } else { enabled };
            let row = grant(user, if n == 31 { "no-such-client" } else { CLIENT });
            let refresh = (n % 2 == 0)
                .then(|| NewRefreshToken { key: format!("key-{n}"), expires_at: row.created_at + TimeDelta::days(30) });
            let writes = writes.clone();
            sent.spawn(async move { (n, insert_with_refresh(&writes, row, refresh).await) });
        }
        while let Some(joined) = sent.join_next().await {
            match joined.unwrap() {
                (31, outcome) => assert!(outcome.is_err(), "an unknown client fails its own write"),
                (n, outcome) => assert_eq!(outcome.unwrap(), n % 3 != 0, "grant {n}"),
            }
        }
        let stored = (0..60).filter(|n| n % 3 != 0 && *n != 31);
        assert_eq!(pg_count(&db, "SELECT count(*) FROM grants").await, stored.clone().count() as i64);
        let tokens = stored.filter(|n| n % 2 == 0).count() as i64;
        let sql = "SELECT count(*) FROM refresh_tokens JOIN grants ON grants.id = grant_id \
                   WHERE refresh_tokens.created_at = grants.created_at AND token_hash LIKE 'key-%'";
        assert_eq!(pg_count(&db, sql).await, tokens, "each token with its own grant");
        db.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// A grant for each of `users`, the `n`th with refresh token `old-<n>`.
    async fn grants_with_tokens(writes: &GroupCommit, users: &[Uuid]) -> Vec<grant::Model> {
        let mut grants = Vec::new();
        for (n, user) in users.iter().enumerate() {
            let row = grant(*user, CLIENT);
            let refresh = NewRefreshToken { key: format!("old-{n}"), expires_at: row.created_at + TimeDelta::days(30) };
            assert!(insert_with_refresh(writes, row.clone(), Some(refresh)).await.unwrap());
            grants.push(row);
        }
        grants
    }

    fn rotation(grant: &grant::Model, old_key: &str, new_key: &str) -> RefreshRotation {
        let new = NewRefreshToken { key: new_key.to_owned(), expires_at: grant.expires_at };
        RefreshRotation { grant_id: grant.id, old_key: old_key.to_owned(), new, now: Utc::now() }
    }

    /// A token is read with its grant and its user, and a grant with its user, disabled or
    /// not, in one query each.
    #[tokio::test]
    async fn refresh_tokens_and_grants_are_read_with_their_user() {
        let Some((schema, db, enabled, _)) = postgres().await else { return };
        let writes = GroupCommit::new(KeptConnections::new(db.clone()));
        let stored = grants_with_tokens(&writes, &[enabled]).await.remove(0);
        for disabled in [false, true] {
            db.execute_unprepared(&format!("UPDATE users SET disabled = {disabled} WHERE id = '{enabled}'"))
                .await
                .unwrap();
            let found = find_refresh(&db, "old-0").await.unwrap().unwrap();
            assert_eq!((found.token.grant_id, found.token.used_at), (stored.id, None));
            assert_eq!(found.grant.id, stored.id);
            let user = found.user.unwrap();
            assert_eq!((user.id, user.disabled), (enabled, disabled));
            let (grant, user) = find_with_user(&db, stored.id).await.unwrap().unwrap();
            assert_eq!((grant.id, user.map(|user| (user.id, user.disabled))), (stored.id, Some((enabled, disabled))));
        }
        assert!(find_refresh(&db, "no-such-key").await.unwrap().is_none());
        assert!(find_with_user(&db, Uuid::now_v7()).await.unwrap().is_none());
        db.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// Rotations sent at once go to PostgreSQL in groups. First one of each of 16 grants'
    /// tokens, a rival rotation of every fourth token (exactly one of the two may win) and
    /// rotations of keys that do not exist; then four more with one whose new key is taken,
    /// which fails its group's statement. Each request must be told its own outcome, and what
    /// is stored must match.
    #[tokio::test]
    async fn refresh_tokens_rotated_together_on_postgres_each_get_their_own_outcome() {
        let Some((schema, db, enabled, _)) = postgres().await else { return };
        let writes = Arc::new(GroupCommit::new(KeptConnections::new(db.clone())));
        let grants = grants_with_tokens(&writes, &[enabled; 21]).await;
        let named = |n: usize, new_key: &str| (new_key.to_owned(), rotation(&grants[n], &format!("old-{n}"), new_key));
        let mut first = Vec::new();
        for n in 0..16 {
            first.push(named(n, &format!("new-{n}")));
            if n % 4 == 0 {
                first.push(named(n, &format!("rival-{n}")));
            }
        }
        for (n, grant) in grants.iter().take(4).enumerate() {
            let unknown = rotation(grant, &format!("unknown-{n}"), &format!("never-{n}"));
            first.push((format!("never-{n}"), unknown));
        }
        let mut then: Vec<_> = (16..20).map(|n| named(n, &format!("new-{n}"))).collect();
        then.push(named(20, "old-0"));

        let mut won = HashSet::new();
        for rotations in [first, then] {
            let mut sent = tokio::task::JoinSet::new();
            for (name, rotation) in rotations {
                let writes = writes.clone();
                sent.spawn(async move { (name, rotate_refresh(&writes, rotation).await) });
            }
            while let Some(joined) = sent.join_next().await {
                let (name, outcome) = joined.unwrap();
                match name.as_str() {
                    "old-0" => assert!(outcome.is_err(), "a taken key fails its own write"),
                    _ if outcome.unwrap() => assert!(won.insert(name)),
                    _ => {}
                }
            }
        }
        for n in 0..20 {
            let winners = [format!("new-{n}"), format!("rival-{n}")].into_iter().filter(|name| won.contains(name));
            assert_eq!(winners.count(), 1, "token {n} is rotated exactly once");
        }
        assert_eq!(won.len(), 20, "nothing else was rotated: {won:?}");
        assert_eq!(pg_count(&db, "SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL").await, 20);
        let successors = format!(
            "SELECT count(*) FROM refresh_tokens new JOIN refresh_tokens old ON old.grant_id = new.grant_id \
             WHERE new.token_hash IN ('{}') AND old.token_hash LIKE 'old-%' AND old.used_at = new.created_at",
            won.iter().map(String::as_str).collect::<Vec<_>>().join("','")
        );
        assert_eq!(pg_count(&db, &successors).await, 20, "each successor with its predecessor's grant");
        assert_eq!(pg_count(&db, "SELECT count(*) FROM refresh_tokens").await, 21 + 20);
        db.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// The group's statement and the statement alone rotate alike, to the microsecond.
    #[tokio::test]
    async fn a_rotation_made_in_a_group_is_the_rotation_made_alone() {
        let Some((schema, db, enabled, _)) = postgres().await else { return };
        let kept = KeptConnections::new(db.clone());
        let grants = grants_with_tokens(&GroupCommit::new(kept.clone()), &[enabled; 3]).await;
        let rotations: Vec<_> = grants
            .iter()
            .enumerate()
            .map(|(n, grant)| rotation(grant, &format!("old-{n}"), &format!("new-{n}")))
            .collect();
        let rows = serde_json::to_string(&rotations[..2]).unwrap();
        let group = Statement::from_sql_and_values(DbBackend::Postgres, RefreshRotation::GROUP_SQL, [rows.into()]);
        assert_eq!(kept.query_all_raw(group).await.unwrap().len(), 2);
        assert_eq!(kept.execute_raw(rotations[2].alone().unwrap()).await.unwrap().rows_affected(), 1);
        for (n, rotation) in rotations.into_iter().enumerate() {
            let old = find_refresh(&db, &format!("old-{n}")).await.unwrap().unwrap().token;
            assert_eq!(old.used_at, Some(as_postgres_keeps(rotation.now)));
            let new = find_refresh(&db, &format!("new-{n}")).await.unwrap().unwrap().token;
            let expected = refresh_token::Model {
                token_hash: rotation.new.key,
                grant_id: rotation.grant_id,
                created_at: as_postgres_keeps(rotation.now),
                expires_at: as_postgres_keeps(rotation.new.expires_at),
                used_at: None,
            };
            assert_eq!(new, expected);
        }
        db.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// The group's statement and the statement alone store the same row, to the microsecond.
    #[tokio::test]
    async fn a_grant_stored_in_a_group_is_the_grant_stored_alone() {
        let Some((schema, db, enabled, _)) = postgres().await else { return };
        let kept = KeptConnections::new(db.clone());
        let (first, second) = (grant(enabled, CLIENT), grant(enabled, CLIENT));
        let writes = [first.clone(), second.clone()].map(|grant| GrantWrite { grant, refresh: None });
        let rows = serde_json::to_string(&writes).unwrap();
        let group = Statement::from_sql_and_values(DbBackend::Postgres, GrantWrite::GROUP_SQL, [rows.into()]);
        let ordinals: Vec<i64> =
            kept.query_all_raw(group).await.unwrap().iter().map(|row| row.try_get("", "n").unwrap()).collect();
        assert_eq!(ordinals.len(), 2);
        let alone = GrantWrite { grant: grant(enabled, CLIENT), refresh: None };
        assert_eq!(kept.execute_raw(alone.alone().unwrap()).await.unwrap().rows_affected(), 1);
        for expected in [first, second, alone.grant] {
            let stored = find(&db, expected.id).await.unwrap().unwrap();
            let auth_time = as_postgres_keeps(expected.auth_time);
            assert_eq!(
                stored,
                grant::Model {
                    auth_time,
                    created_at: auth_time,
                    expires_at: as_postgres_keeps(expected.expires_at),
                    ..expected
                }
            );
        }
        db.close().await.unwrap();
        schema.drop_schema().await;
    }
}
