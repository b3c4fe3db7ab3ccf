//! The durable store: connecting to SQLite or PostgreSQL, applying migrations, and the queries
//! each area needs (one module per table group). Queries take the connection and plain values,
//! and return entity models; the rules about *when* to call them live in the domain modules.

pub mod audit;
pub mod checkpoint;
pub mod clients;
pub mod consents;
pub mod enrollment_links;
pub mod grants;
pub mod group_commit;
pub mod kept;
pub mod passkeys;
pub mod pg_group;
pub mod settings;
pub mod signing_keys;
pub mod sqlite_script;
pub mod users;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    Iterable, Selector, SelectorTrait, SqlErr, TransactionTrait,
    sea_query::{Expr, InsertStatement, Query, SelectStatement},
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// Opens the database at `url` with at most `max_connections` pooled connections. SQLite runs
/// in WAL mode with a busy timeout, so readers never block the single writer and short write
/// bursts wait instead of failing.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, default_max_connections(url)).await
}

/// Pool size when none is configured: one connection for SQLite, whose single writer makes
/// concurrent write transactions wait in its busy handler (seconds under load, measured in
/// docs/benchmarks.md) where one connection simply queues them; ten for PostgreSQL.
pub fn default_max_connections(url: &str) -> u32 {
    if url.starts_with("sqlite") { 1 } else { 10 }
}

/// How long a pooled connection may sit idle before it is pinged on the way out of the pool.
/// sqlx pings on *every* acquire by default: one more round trip per statement (to the SQLite
/// worker thread, or to PostgreSQL); without it an embedded login takes 35 context switches
/// instead of 48 (docs/benchmarks.md). A connection that broke while busy fails its statement,
/// which answers 503 (`is_unreachable`) anyway.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

/// [`connect`] with an explicit pool size (`LATCHKEY_DATABASE_MAX_CONNECTIONS`). A SQLite file
/// gets a [`checkpoint`] task, so its pooled connections never checkpoint themselves.
pub async fn connect_with(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                .pragma("wal_autocheckpoint", "0")
        });
    let in_memory = url.starts_with("sqlite::memory:");
    if in_memory {
        // Each in-memory SQLite connection is its own database.
        options.max_connections(1);
    }
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite && !in_memory {
        checkpoint::spawn(url, db.get_sqlite_connection_pool().clone()).await.map_err(connection_error)?;
    }
    Ok(db)
}

/// Applies every pending migration, in one transaction. On PostgreSQL a transaction-scoped
/// advisory lock makes replicas that start together take turns: the first migrates, the
/// others then find nothing pending.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(2026112501)").await?;
    }
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// The row a lookup by a unique key finds, queried without `LIMIT`.
///
/// sea-orm's `one()` appends `LIMIT ?` with 1 bound as a parameter. SQLite's planner reads a bound
/// LIMIT, and a statement whose plan read a parameter is compiled again every time that parameter
/// is bound (`sqlite3VdbeSetVarmask`): a full parse per lookup, about 170,000 instructions, some
/// 6 % of a login's user-space instructions (docs/benchmarks.md). A unique key matches one row
/// at most anyway.
pub async fn unique<S: SelectorTrait>(
    selector: Selector<S>,
    db: &impl ConnectionTrait,
) -> Result<Option<S::Item>, DbErr> {
    Ok(selector.all(db).await?.into_iter().next())
}

/// An instant as PostgreSQL keeps it (to the microsecond, the rest cut off as sqlx cuts it when
/// it binds one), in RFC 3339: for rows sent as JSON ([`pg_group`]).
pub fn to_the_microsecond(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `INSERT INTO <table> (…) SELECT <row's values> …`, where `condition` adds what decides whether
/// the row is written (a `WHERE`, a `FROM` another statement's result): a conditional write in
/// one statement, with no read before it.
pub fn insert_select<A: ActiveModelTrait>(
    row: A,
    condition: impl FnOnce(&mut SelectStatement),
) -> Result<InsertStatement, DbErr> {
    let (columns, values): (Vec<_>, Vec<_>) = <A::Entity as EntityTrait>::Column::iter()
        .filter_map(|column| row.get(column).into_value().map(|value| (column, Expr::val(value))))
        .unzip();
    let mut select = Query::select().exprs(values).to_owned();
    condition(&mut select);
    let mut insert = Query::insert();
    insert
        .into_table(A::Entity::default())
        .columns(columns)
        .select_from(select)
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(insert)
}

/// As sea-orm reports a connection it could not get from the pool, or open.
pub(crate) fn connection_error(err: sea_orm::sqlx::Error) -> DbErr {
    use sea_orm::{ConnAcquireErr, RuntimeErr, sqlx::Error};
    match err {
        Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        err => DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(err))),
    }
}

/// As sea-orm reports a statement that failed.
pub(crate) fn exec_error(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(err)))
}

/// As sea-orm reports a query that failed.
pub(crate) fn query_error(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(err)))
}

/// Whether `err` means the database could not be reached or the connection broke, rather than
/// that a statement failed: the request may succeed later (503, not 500).
pub fn is_unreachable(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => match err.as_ref() {
            Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception) and 57P (the server is shutting down
            // or restarting).
            Error::Database(err) => err.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        },
        _ => false,
    }
}

/// Which unique column a failed insert or update collided with, if that is why it failed.
pub fn unique_violation(err: &DbErr) -> Option<String> {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => Some(detail),
        _ => None,
    }
}

/// A SQLite file database for unit tests that need one (a closed in-memory connection takes its
/// database with it, and only a file has a write-ahead log), removed with its log when dropped.
#[cfg(test)]
pub(crate) struct TempDatabase {
    pub path: std::path::PathBuf,
    pub db: DatabaseConnection,
}

#[cfg(test)]
impl TempDatabase {
    /// A fresh file, opened as the embedded default opens one (one pooled connection).
    pub async fn new() -> Self {
        let path = std::env::temp_dir().join(format!("latchkey-test-{}.db", uuid::Uuid::new_v4().simple()));
        let db = connect_with(&format!("sqlite://{}?mode=rwc", path.display()), 1).await.unwrap();
        Self { path, db }
    }

    /// The path of its write-ahead log.
    pub fn log_file(&self) -> String {
        format!("{}-wal", self.path.display())
    }
}

#[cfg(test)]
impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// An instant as PostgreSQL keeps it (cut to the microsecond), for tests that compare stored rows.
#[cfg(test)]
pub(crate) fn as_postgres_keeps(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    at.with_nanosecond(at.timestamp_subsec_micros() * 1_000).unwrap()
}

/// What a PostgreSQL `SELECT count(*) …` answers, for tests.
#[cfg(test)]
pub(crate) async fn pg_count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(sea_orm::Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

/// A fresh PostgreSQL schema at `LATCHKEY_TEST_DATABASE_URL`, for tests; `None`, with a
/// notice, when that is not set.
#[cfg(test)]
pub(crate) struct TempSchema {
    admin: DatabaseConnection,
    name: String,
    url: String,
}

#[cfg(test)]
impl TempSchema {
    pub async fn new() -> Option<Self> {
        let Ok(url) = std::env::var("LATCHKEY_TEST_DATABASE_URL") else {
            eprintln!("notice: LATCHKEY_TEST_DATABASE_URL not set; skipping the PostgreSQL run");
            return None;
        };
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&url).await.unwrap();
        admin.execute_unprepared(&format!("CREATE SCHEMA {name}")).await.unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options[search_path]={name}");
        Some(Self { admin, name, url })
    }

    /// A pool of `max_connections` whose `search_path` is the schema.
    pub async fn connect(&self, max_connections: u32) -> DatabaseConnection {
        connect_with(&self.url, max_connections).await.unwrap()
    }

    /// A pool of ten, the schema migrated, and two users in it: the ids of one enabled and one
    /// disabled.
    pub async fn migrated_with_users(&self) -> (DatabaseConnection, uuid::Uuid, uuid::Uuid) {
        let db = self.connect(10).await;
        migrate(&db).await.unwrap();
        let (enabled, disabled) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let sql = format!(
            "INSERT INTO users (id, username, username_normalized, email, email_normalized, display_name, created_at, \
             disabled) VALUES ('{enabled}', 'a', 'a', 'a@x', 'a@x', 'A', now(), false), \
             ('{disabled}', 'b', 'b', 'b@x', 'b@x', 'B', now(), true)"
        );
        db.execute_unprepared(&sql).await.unwrap();
        (db, enabled, disabled)
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        self.admin.execute_unprepared(&format!("DROP SCHEMA {} CASCADE", self.name)).await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::*;

    #[tokio::test]
    async fn a_schema_from_a_newer_version_is_refused() {
        let db = connect("sqlite::memory:").await.unwrap();
        migrate(&db).await.unwrap();
        migrate(&db).await.expect("migrating twice is a no-op");
        db.execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_future', 0)",
        )
        .await
        .unwrap();
        let refused = migrate(&db).await.expect_err("a migration this binary does not know");
        assert!(refused.to_string().contains("m29990101_000001_future"), "{refused}");
    }

    /// The bundled SQLite is compiled with the options `.cargo/config.toml` gives it: setting
    /// `LIBSQLITE3_FLAGS` in the environment replaces them.
    #[tokio::test]
    async fn the_bundled_sqlite_has_the_configured_compile_options() {
        let db = connect("sqlite::memory:").await.unwrap();
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(DbBackend::Sqlite, "PRAGMA compile_options"))
            .await
            .unwrap();
        let options: Vec<String> = rows.iter().map(|row| row.try_get_by_index(0).unwrap()).collect();
        for wanted in ["DEFAULT_MEMSTATUS=0", "ENABLE_QPSG"] {
            assert!(options.iter().any(|option| option == wanted), "{wanted} not in {options:?}");
        }
    }

    #[tokio::test]
    async fn a_broken_connection_is_unreachable_a_failed_statement_is_not() {
        use std::{io, sync::Arc};

        use sea_orm::{RuntimeErr, sqlx};
        let broken = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed");
        let lost = DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(broken))));
        assert!(is_unreachable(&lost));
        assert!(is_unreachable(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut)))));

        let db = connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await.unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
        let duplicate = db.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap_err();
        assert!(!is_unreachable(&duplicate), "{duplicate}");
        let bad = db.execute_unprepared("SELECT nothing FROM nowhere").await.unwrap_err();
        assert!(!is_unreachable(&bad), "{bad}");
    }
}
