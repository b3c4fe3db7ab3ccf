//! A write transaction on SQLite in one call to the connection's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and sends it every statement as a
//! command: a round trip of two context switches, and one more round trip when the connection
//! goes back to the pool. A sea-orm transaction of two INSERTs is five such round trips (BEGIN,
//! INSERT, INSERT, COMMIT, release); on the token endpoint, context switching was the largest
//! single cost (docs/benchmarks.md). [`run`] sends the whole transaction as one script instead.

use std::sync::Arc;

use sea_orm::{
    ConnAcquireErr, DatabaseConnection, DbErr, RuntimeErr, Statement,
    sea_query::Values,
    sqlx::{self, AssertSqlSafe},
};
use sea_query_sqlx::SqlxValues;

/// Runs `statements` as one transaction, `BEGIN IMMEDIATE; …; COMMIT`, sent to SQLite as one
/// script; returns how many rows the statements returned (through `RETURNING`).
///
/// A script that fails part-way leaves its transaction open on the connection, so that
/// connection is closed, which rolls the transaction back, rather than returned to the pool.
pub async fn run(db: &DatabaseConnection, statements: impl IntoIterator<Item = Statement>) -> Result<usize, DbErr> {
    let mut script = String::from("BEGIN IMMEDIATE;");
    let mut values = Vec::new();
    for statement in statements {
        script.push_str(&statement.sql);
        script.push(';');
        values.extend(statement.values.into_iter().flat_map(|v| v.0));
    }
    script.push_str("COMMIT");
    let mut connection = db.get_sqlite_connection_pool().acquire().await.map_err(connection_error)?;
    let query = sqlx::query_with(AssertSqlSafe(script), SqlxValues(Values(values)));
    match query.fetch_all(&mut *connection).await {
        Ok(rows) => Ok(rows.len()),
        Err(err) => {
            connection.close_on_drop();
            Err(DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err))))
        }
    }
}

/// As sea-orm reports a connection it could not get from the pool, or open.
pub(super) fn connection_error(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        err => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err))),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend};

    use super::*;
    use crate::store::TempDatabase;

    async fn database() -> TempDatabase {
        let temp = TempDatabase::new().await;
        temp.db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await.unwrap();
        temp
    }

    fn insert(id: i64, name: Option<&str>) -> Statement {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t (id, name) VALUES (?, ?) RETURNING id",
            [id.into(), name.map(str::to_owned).into()],
        )
    }

    async fn names(db: &DatabaseConnection) -> usize {
        db.query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT id FROM t")).await.unwrap().len()
    }

    #[tokio::test]
    async fn binds_each_statements_values_in_order_and_counts_returned_rows() {
        let TempDatabase { db, .. } = &database().await;
        assert_eq!(run(db, [insert(1, Some("a")), insert(2, Some("b"))]).await.unwrap(), 2);
        let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT id, name FROM t")).await.unwrap();
        let pairs: Vec<(i64, String)> =
            rows.iter().map(|r| (r.try_get("", "id").unwrap(), r.try_get("", "name").unwrap())).collect();
        assert_eq!(pairs, [(1, "a".to_owned()), (2, "b".to_owned())]);
    }

    #[tokio::test]
    async fn a_failing_statement_leaves_nothing_and_the_next_transaction_works() {
        let TempDatabase { db, .. } = &database().await;
        // The second INSERT breaks NOT NULL after the first has run.
        assert!(run(db, [insert(1, Some("a")), insert(2, None)]).await.is_err());
        assert_eq!(names(db).await, 0, "the first INSERT was rolled back");
        assert_eq!(run(db, [insert(3, Some("c"))]).await.unwrap(), 1);
        assert_eq!(names(db).await, 1);
    }
}
