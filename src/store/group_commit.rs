//! The request path's writes, committed in groups on either database: SQLite's as scripts of
//! several transactions ([`super::sqlite_script`]), PostgreSQL's as one statement for the same
//! write of several requests ([`super::pg_group`]). A write module asks [`GroupCommit`] for its
//! queue on the database at hand.

use sea_orm::{DbBackend, DbErr, Statement};

use super::{
    grants::{GrantWrite, RefreshRotation},
    kept::KeptConnections,
    passkeys::PasskeyUse,
    pg_group::PgGroup,
    sqlite_script::SqliteScripts,
};

/// The database for the request path's writes ([`KeptConnections`]): on SQLite with the queue
/// of write transactions sent as scripts, on PostgreSQL with the queues of a login's two writes
/// and of refresh rotations.
pub struct GroupCommit {
    db: KeptConnections,
    sqlite: Option<SqliteScripts>,
    postgres: Option<PostgresGroups>,
}

/// The queues of writes made in groups on PostgreSQL.
struct PostgresGroups {
    grants: PgGroup<GrantWrite>,
    passkey_uses: PgGroup<PasskeyUse>,
    refresh_rotations: PgGroup<RefreshRotation>,
}

impl GroupCommit {
    /// Wraps `db` and starts the tasks that write its queues, which end when this is dropped.
    pub fn new(db: KeptConnections) -> Self {
        let backend = db.db().get_database_backend();
        let sqlite =
            (backend == DbBackend::Sqlite).then(|| SqliteScripts::new(db.db().get_sqlite_connection_pool().clone()));
        let postgres = (backend == DbBackend::Postgres).then(|| PostgresGroups {
            grants: PgGroup::new(db.clone()),
            passkey_uses: PgGroup::new(db.clone()),
            refresh_rotations: PgGroup::new(db.clone()),
        });
        Self { db, sqlite, postgres }
    }

    /// The database, for everything else.
    pub fn db(&self) -> &KeptConnections {
        &self.db
    }

    /// On PostgreSQL, the queue of grants to store in groups.
    pub fn grants(&self) -> Option<&PgGroup<GrantWrite>> {
        self.postgres.as_ref().map(|groups| &groups.grants)
    }

    /// On PostgreSQL, the queue of passkey uses to record in groups.
    pub fn passkey_uses(&self) -> Option<&PgGroup<PasskeyUse>> {
        self.postgres.as_ref().map(|groups| &groups.passkey_uses)
    }

    /// On PostgreSQL, the queue of refresh-token rotations to make in groups.
    pub fn refresh_rotations(&self) -> Option<&PgGroup<RefreshRotation>> {
        self.postgres.as_ref().map(|groups| &groups.refresh_rotations)
    }

    /// Runs `statements` as one SQLite transaction, with whatever other transactions are
    /// waiting ([`SqliteScripts::run`]). On any other database there is no script to run: use
    /// a statement of its own.
    pub async fn run(&self, statements: impl IntoIterator<Item = Statement>) -> Result<usize, DbErr> {
        let scripts = self.sqlite.as_ref().ok_or_else(|| DbErr::Custom("SQLite scripts need SQLite".into()))?;
        scripts.run(statements).await
    }
}
