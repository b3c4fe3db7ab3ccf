//! The request path's statements on PostgreSQL, over connections kept between statements.
//!
//! sqlx's pool pings every connection given back to it (`PoolConnection::return_to_pool`, with
//! no option to turn it off): a second round trip for every statement, which PostgreSQL wakes
//! up for as it does for the statement. [`KeptConnections`] takes connections from the pool and,
//! once a statement on one has completed, keeps it for the next statement instead of giving it
//! back (docs/benchmarks.md, fifteenth run).
//!
//! The pool stays in charge of its connections. The request path may have three quarters of
//! them at once (a pool of one is left alone), so the rest of the application always has some
//! to get; its statements take turns for them first come, first served, and wait for their
//! turn no longer than the pool's acquire timeout. A kept connection goes back (and is pinged,
//! as before) when it has waited unused for [`IDLE`] or has been out of the pool for [`LENT`],
//! so the pool's idle timeout and maximum lifetime still apply, and after any failed
//! statement. A statement cut short (its request dropped) drops its connection, so the pool's
//! ping brings it back in step or closes it, which is what that ping is for.
//!
//! On SQLite every call goes straight to the pool: its one connection must stay there for
//! everyone, and its statements are not a network round trip.

use std::{
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement, Values,
    sqlx::{self, AssertSqlSafe, PgConnection, PgPool, Postgres, pool::PoolConnection},
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a kept connection may wait unused before it goes back to the pool. Under load a
/// connection is reused within milliseconds; after a lull, the pool has them all again.
const IDLE: Duration = Duration::from_secs(1);

/// How long a connection may stay out of the pool in all, however busy: giving it back now and
/// then lets the pool close it once it is past its maximum lifetime.
const LENT: Duration = Duration::from_secs(60);

/// The database, with PostgreSQL connections kept between statements; cheap to clone.
#[derive(Clone)]
pub struct KeptConnections {
    db: DatabaseConnection,
    kept: Option<Arc<Kept>>,
}

/// Connections taken from a PostgreSQL pool and not given back yet.
struct Kept {
    pool: PgPool,
    /// Most recently used last.
    idle: Mutex<Vec<KeptConnection>>,
    /// One per connection the request path may have at once, handed out first come, first
    /// served.
    permits: Semaphore,
}

struct KeptConnection {
    connection: PoolConnection<Postgres>,
    taken: Instant,
    last_used: Instant,
}

impl KeptConnections {
    /// Wraps `db`. On PostgreSQL with a pool of two or more, the request path may have up to
    /// three quarters of its connections, and a task gives back those left unused.
    pub fn new(db: DatabaseConnection) -> Self {
        let share = |pool: &PgPool| pool.options().get_max_connections() as usize * 3 / 4;
        let kept = (db.get_database_backend() == DbBackend::Postgres)
            .then(|| db.get_postgres_connection_pool().clone())
            .filter(|pool| share(pool) > 0)
            .map(|pool| {
                let permits = Semaphore::new(share(&pool));
                let kept = Arc::new(Kept { pool, idle: Mutex::new(Vec::new()), permits });
                tokio::spawn(give_back_unused(Arc::downgrade(&kept)));
                kept
            });
        Self { db, kept }
    }

    /// The database itself, for everything that is not a single statement.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// How many connections are kept now (for tests).
    #[cfg(test)]
    fn kept_count(&self) -> usize {
        self.kept.as_ref().map_or(0, |kept| kept.idle.lock().unwrap().len())
    }
}

/// Every [`IDLE`], gives the pool back the connections kept unused that long, until the
/// connections are dropped.
async fn give_back_unused(kept: Weak<Kept>) {
    let mut ticks = tokio::time::interval(IDLE);
    loop {
        ticks.tick().await;
        let Some(kept) = kept.upgrade() else { return };
        drop(kept.take_stale());
    }
}

impl Kept {
    /// A kept connection, or one from the pool.
    async fn take(&self) -> Result<KeptConnection, DbErr> {
        let stale = self.take_stale();
        let fresh = self.idle.lock().unwrap().pop();
        drop(stale);
        if let Some(kept) = fresh {
            return Ok(kept);
        }
        // Boxed: the pool's acquire is a future of some 14 KB, which would otherwise sit inside
        // every statement's future (boxed and moved for each one) though it is rarely needed.
        let connection = Box::pin(self.pool.acquire()).await.map_err(super::connection_error)?;
        let now = Instant::now();
        Ok(KeptConnection { connection, taken: now, last_used: now })
    }

    /// Takes out the kept connections that are no longer fresh; dropping them gives them back to
    /// the pool (outside the lock: the pool's ping runs in a task of its own).
    fn take_stale(&self) -> Vec<KeptConnection> {
        self.idle.lock().unwrap().extract_if(.., |kept| !kept.is_fresh()).collect()
    }

    /// Keeps `connection` after a completed statement.
    fn keep(&self, mut connection: KeptConnection) {
        connection.last_used = Instant::now();
        if connection.taken.elapsed() < LENT {
            self.idle.lock().unwrap().push(connection);
        }
    }

    /// A statement's turn: a permit at once when one is free (no timer set), else in line for
    /// one, waiting no longer than the pool's acquire timeout.
    async fn turn(&self) -> Result<SemaphorePermit<'_>, DbErr> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let waited = tokio::time::timeout(self.pool.options().get_acquire_timeout(), self.permits.acquire()).await;
        let Ok(Ok(permit)) = waited else { return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) };
        Ok(permit)
    }

    /// Runs one statement on a kept connection; keeps it again only if the statement succeeded.
    async fn run<T>(
        &self,
        statement: &Statement,
        on: impl AsyncFnOnce(PgQuery<'_>, &mut PgConnection) -> Result<T, sqlx::Error>,
        error: fn(sqlx::Error) -> DbErr,
    ) -> Result<T, DbErr> {
        let _turn = self.turn().await?;
        let mut kept = self.take().await?;
        let values = statement.values.clone().unwrap_or(Values(Vec::new()));
        let query = sqlx::query_with(AssertSqlSafe(statement.sql.as_str()), SqlxValues(values));
        let outcome = on(query, &mut kept.connection).await;
        if outcome.is_ok() {
            self.keep(kept);
        }
        outcome.map_err(error)
    }
}

/// A statement with its values bound, as sqlx runs it.
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, SqlxValues>;

impl KeptConnection {
    fn is_fresh(&self) -> bool {
        self.last_used.elapsed() < IDLE && self.taken.elapsed() < LENT
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for KeptConnections {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        let Some(kept) = &self.kept else { return self.db.execute_raw(statement).await };
        let done =
            kept.run(&statement, async |query, connection| query.execute(connection).await, super::exec_error).await;
        done.map(ExecResult::from)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        let Some(kept) = &self.kept else { return self.db.query_one_raw(statement).await };
        let row =
            kept.run(&statement, async |query, connection| query.fetch_optional(connection).await, super::query_error);
        Ok(row.await?.map(QueryResult::from))
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let Some(kept) = &self.kept else { return self.db.query_all_raw(statement).await };
        let rows =
            kept.run(&statement, async |query, connection| query.fetch_all(connection).await, super::query_error);
        Ok(rows.await?.into_iter().map(QueryResult::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::DbBackend;

    use super::*;

    /// A pool of `size` PostgreSQL connections, when `LATCHKEY_TEST_DATABASE_URL` is set.
    async fn postgres(size: u32) -> Option<KeptConnections> {
        let Ok(url) = std::env::var("LATCHKEY_TEST_DATABASE_URL") else {
            eprintln!("notice: LATCHKEY_TEST_DATABASE_URL not set; skipping the PostgreSQL run");
            return None;
        };
        Some(KeptConnections::new(crate::store::connect_with(&url, size).await.unwrap()))
    }

    async fn backend_pid(db: &impl ConnectionTrait) -> i32 {
        let sql = Statement::from_string(DbBackend::Postgres, "SELECT pg_backend_pid() AS pid");
        db.query_one_raw(sql).await.unwrap().unwrap().try_get("", "pid").unwrap()
    }

    #[tokio::test]
    async fn statements_reuse_a_kept_connection_and_the_pool_keeps_the_rest() {
        let Some(kept) = postgres(2).await else { return };
        let first = backend_pid(&kept).await;
        assert_eq!(backend_pid(&kept).await, first, "the second statement ran on the kept connection");
        assert_eq!(kept.kept_count(), 1);
        let other = backend_pid(kept.db()).await;
        assert_ne!(other, first, "the pool's other connection is free for everything else");
    }

    #[tokio::test]
    async fn statements_take_turns_for_their_share_of_the_pool() {
        let Some(kept) = postgres(2).await else { return };
        let inner = kept.kept.as_deref().unwrap();
        let busy = inner.permits.acquire().await.unwrap();
        let waiting = tokio::spawn({
            let kept = kept.clone();
            async move { backend_pid(&kept).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a pool of two lets the request path have one at once");
        backend_pid(kept.db()).await;
        drop(busy);
        waiting.await.unwrap();
        assert_eq!(kept.kept_count(), 1);
    }

    #[tokio::test]
    async fn a_pool_of_one_is_left_alone() {
        let Some(kept) = postgres(1).await else { return };
        backend_pid(&kept).await;
        assert_eq!(kept.kept_count(), 0);
    }

    #[tokio::test]
    async fn connections_left_unused_go_back_to_the_pool() {
        let Some(kept) = postgres(2).await else { return };
        backend_pid(&kept).await;
        assert_eq!(kept.kept_count(), 1);
        tokio::time::sleep(IDLE * 2 + Duration::from_millis(200)).await;
        assert_eq!(kept.kept_count(), 0, "given back after a lull");
        backend_pid(&kept).await;
        assert_eq!(kept.kept_count(), 1, "and kept again when used");
    }

    #[tokio::test]
    async fn a_failed_statement_gives_its_connection_back_and_fails_as_sea_orm_would() {
        let Some(kept) = postgres(2).await else { return };
        let bad = Statement::from_string(DbBackend::Postgres, "INSERT INTO nowhere VALUES (1)");
        let err = kept.execute_raw(bad).await.unwrap_err();
        assert!(matches!(err, DbErr::Exec(_)), "{err}");
        assert!(!crate::store::is_unreachable(&err), "{err}");
        assert_eq!(kept.kept_count(), 0);

        let none = Statement::from_string(DbBackend::Postgres, "SELECT 1 AS one WHERE false");
        assert!(kept.query_one_raw(none.clone()).await.unwrap().is_none());
        assert!(kept.query_all_raw(none).await.unwrap().is_empty());
        assert_eq!(kept.kept_count(), 1, "a statement that found nothing succeeded");
    }

    #[tokio::test]
    async fn on_sqlite_nothing_is_kept() {
        let temp = crate::store::TempDatabase::new().await;
        let kept = KeptConnections::new(temp.db.clone());
        let sql = Statement::from_string(DbBackend::Sqlite, "SELECT 1 AS one");
        let one: i32 = kept.query_one_raw(sql).await.unwrap().unwrap().try_get("", "one").unwrap();
        assert_eq!((one, kept.kept_count()), (1, 0));
    }
}
