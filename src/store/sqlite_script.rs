//! Write transactions on SQLite, each in one call to the connection's thread, committed in
//! groups.
//!
//! sqlx runs each SQLite connection on a thread of its own and sends it every statement as a
//! command: a round trip of two context switches, and one more round trip when the connection
//! goes back to the pool. A sea-orm transaction of two INSERTs is five such round trips (BEGIN,
//! INSERT, INSERT, COMMIT, release); on the token endpoint, context switching was the largest
//! single cost (docs/benchmarks.md). A transaction is sent as one script instead.
//!
//! Under load many requests have a transaction to commit at once, and SQLite commits one at a
//! time. [`SqliteScripts`] queues them and sends those waiting as one script, `BEGIN IMMEDIATE;
//! …; COMMIT`: one commit and one round trip for the group, and a page that several of them
//! change goes to the write-ahead log once, not once per transaction. A group is at most
//! [`MAX_GROUP`] transactions in a fixed order, so the same few scripts recur and stay
//! prepared. Should the group fail, each of its transactions runs again alone, so a
//! transaction's failure is its own and the others commit.

use futures_util::{StreamExt, stream::BoxStream};
use sea_orm::{
    ConnAcquireErr, DbErr, Statement,
    sea_query::Values,
    sqlx::{
        self, AssertSqlSafe, Either, Executor, SqlitePool,
        sqlite::{SqliteQueryResult, SqliteRow},
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{mpsc, oneshot};

/// Transactions committed together at most. It bounds how many different scripts there are:
/// a group's script depends only on how many transactions of each kind it has
/// ([`in_script_order`]), so with two kinds (a login's passkey use and its code exchange) there
/// are 44 scripts of up to eight, which stay prepared in sqlx's statement cache (100 per
/// connection). At 64, groups of 20 to 30 gave scripts that never came back: SQLite parsed
/// every one, and the time that took let the next group grow as large (docs/benchmarks.md,
/// thirteenth run).
const MAX_GROUP: usize = 8;

/// The queue of write transactions sent to SQLite as scripts, committed in groups.
pub struct SqliteScripts {
    queue: mpsc::UnboundedSender<Transaction>,
}

/// A queued transaction and where its outcome goes: how many rows its statements returned.
struct Transaction {
    statements: Vec<Statement>,
    done: oneshot::Sender<Result<usize, DbErr>>,
}

impl SqliteScripts {
    /// Starts the task that commits the queue through `pool`; it ends when this is dropped.
    pub fn new(pool: SqlitePool) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(commit_queued(pool, receiver));
        Self { queue }
    }

    /// Runs `statements` as one SQLite transaction, with whatever other transactions are
    /// waiting; returns how many rows they returned (through `RETURNING`).
    pub async fn run(&self, statements: impl IntoIterator<Item = Statement>) -> Result<usize, DbErr> {
        let (done, outcome) = oneshot::channel();
        let stopped = || DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed);
        self.queue.send(Transaction { statements: statements.into_iter().collect(), done }).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// Commits what is queued, in groups of whatever waited while the group before was committed.
async fn commit_queued(pool: SqlitePool, mut queue: mpsc::UnboundedReceiver<Transaction>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        commit_group(&pool, std::mem::take(&mut group)).await;
    }
}

async fn commit_group(pool: &SqlitePool, mut group: Vec<Transaction>) {
    if group.len() > 1 {
        in_script_order(&mut group);
        match run_script(pool, group.iter().flat_map(|t| &t.statements)).await {
            Ok(rows) => return answer_each(group, rows),
            // Every transaction would wait for a connection again: one answer for all.
            Err(err @ DbErr::ConnectionAcquire(_)) => {
                return group.into_iter().for_each(|t| drop(t.done.send(Err(err.clone()))));
            }
            Err(_) => {}
        }
    }
    for transaction in group {
        let outcome = run_script(pool, transaction.statements.iter()).await;
        let _ = transaction.done.send(outcome.map(|rows| rows.iter().sum()));
    }
}

/// Orders a group by its transactions' SQL, so that its script depends only on how many
/// transactions of each kind it has, and the same scripts come back. Any order will do: they
/// were all waiting at once, none after another.
fn in_script_order(group: &mut [Transaction]) {
    group.sort_by(|a, b| a.statements.iter().map(|s| &s.sql).cmp(b.statements.iter().map(|s| &s.sql)));
}

/// Hands each transaction of a committed group the rows its own statements returned.
fn answer_each(group: Vec<Transaction>, rows_per_statement: Vec<usize>) {
    let mut rows = rows_per_statement.into_iter();
    for transaction in group {
        let returned = rows.by_ref().take(transaction.statements.len()).sum();
        let _ = transaction.done.send(Ok(returned));
    }
}

/// `BEGIN IMMEDIATE; …; COMMIT` around some statements, and their values in order.
struct Script {
    sql: String,
    values: Vec<sea_orm::Value>,
    statement_count: usize,
}

impl Script {
    fn of<'a>(statements: impl Iterator<Item = &'a Statement>) -> Self {
        let mut script = Script { sql: String::from("BEGIN IMMEDIATE;"), values: Vec::new(), statement_count: 0 };
        for statement in statements {
            script.sql.push_str(&statement.sql);
            script.sql.push(';');
            script.values.extend(statement.values.iter().flat_map(|v| v.0.iter().cloned()));
            script.statement_count += 1;
        }
        script.sql.push_str("COMMIT");
        script
    }
}

/// Runs `statements` as one transaction, `BEGIN IMMEDIATE; …; COMMIT`, sent to SQLite as one
/// script; returns how many rows each statement returned.
///
/// A script that fails part-way leaves its transaction open on the connection, so that
/// connection is closed, which rolls the transaction back, rather than returned to the pool.
async fn run_script<'a>(
    pool: &SqlitePool,
    statements: impl Iterator<Item = &'a Statement>,
) -> Result<Vec<usize>, DbErr> {
    let Script { sql, values, statement_count } = Script::of(statements);
    let mut connection = pool.acquire().await.map_err(super::connection_error)?;
    let query = sqlx::query_with(AssertSqlSafe(sql), SqlxValues(Values(values)));
    let outcome = rows_per_statement((&mut *connection).fetch_many(query)).await;
    match outcome {
        // BEGIN and COMMIT returned nothing; every statement in between completed.
        Ok(rows) if rows.len() == statement_count + 2 => Ok(rows[1..=statement_count].to_vec()),
        Ok(_) => {
            connection.close_on_drop();
            Err(DbErr::Custom("SQLite ended the script before its COMMIT".into()))
        }
        Err(err) => {
            connection.close_on_drop();
            Err(super::exec_error(err))
        }
    }
}

/// Counts the rows of each statement of a script: sqlx yields a `Left` as each statement
/// completes, after the rows it returned.
async fn rows_per_statement(
    mut results: BoxStream<'_, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>,
) -> Result<Vec<usize>, sqlx::Error> {
    let (mut counts, mut rows) = (Vec::new(), 0);
    while let Some(result) = results.next().await {
        match result? {
            Either::Right(_row) => rows += 1,
            Either::Left(_done) => counts.push(std::mem::take(&mut rows)),
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

    use super::*;
    use crate::store::TempDatabase;

    async fn database() -> (TempDatabase, Arc<SqliteScripts>) {
        let temp = TempDatabase::new().await;
        temp.db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await.unwrap();
        let writes = Arc::new(SqliteScripts::new(temp.db.get_sqlite_connection_pool().clone()));
        (temp, writes)
    }

    fn insert(id: i64, name: Option<&str>) -> Statement {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t (id, name) VALUES (?, ?) RETURNING id",
            [id.into(), name.map(str::to_owned).into()],
        )
    }

    async fn ids(db: &DatabaseConnection) -> Vec<i64> {
        let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT id FROM t ORDER BY id")).await;
        rows.unwrap().iter().map(|r| r.try_get("", "id").unwrap()).collect()
    }

    #[tokio::test]
    async fn binds_each_statements_values_in_order_and_counts_returned_rows() {
        let (TempDatabase { db, .. }, writes) = &database().await;
        assert_eq!(writes.run([insert(1, Some("a")), insert(2, Some("b"))]).await.unwrap(), 2);
        let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT id, name FROM t")).await.unwrap();
        let pairs: Vec<(i64, String)> =
            rows.iter().map(|r| (r.try_get("", "id").unwrap(), r.try_get("", "name").unwrap())).collect();
        assert_eq!(pairs, [(1, "a".to_owned()), (2, "b".to_owned())]);
    }

    #[tokio::test]
    async fn a_failing_statement_leaves_nothing_and_the_next_transaction_works() {
        let (TempDatabase { db, .. }, writes) = &database().await;
        // The second INSERT breaks NOT NULL after the first has run.
        assert!(writes.run([insert(1, Some("a")), insert(2, None)]).await.is_err());
        assert_eq!(ids(db).await, [0_i64; 0], "the first INSERT was rolled back");
        assert_eq!(writes.run([insert(3, Some("c"))]).await.unwrap(), 1);
        assert_eq!(ids(db).await, [3]);
    }

    /// Sends 40 transactions at once (they are committed as groups): transaction `n` inserts
    /// `n % 3` rows, with ids from `first_id`, and `failing`, if any, breaks NOT NULL in its
    /// second INSERT. Each must be told the rows its own statements returned, and the failing
    /// one must fail alone. Returns the ids that should now be stored.
    async fn send_together(writes: &Arc<SqliteScripts>, first_id: i64, failing: Option<i64>) -> Vec<i64> {
        let mut sent = tokio::task::JoinSet::new();
        for n in 0..40_i64 {
            let writes = writes.clone();
            let statements: Vec<_> = (0..n % 3)
                .map(|k| insert(first_id + n * 10 + k, (Some(n) != failing || k == 0).then_some("x")))
                .collect();
            sent.spawn(async move { (n, writes.run(statements).await) });
        }
        while let Some(joined) = sent.join_next().await {
            match joined.unwrap() {
                (n, outcome) if Some(n) == failing => assert!(outcome.is_err(), "transaction {n} must fail"),
                (n, outcome) => assert_eq!(outcome.unwrap(), (n % 3) as usize, "rows of transaction {n}"),
            }
        }
        let stored = (0..40_i64).filter(|&n| Some(n) != failing);
        stored.flat_map(|n| (0..n % 3).map(move |k| first_id + n * 10 + k)).collect()
    }

    fn update(id: i64, name: &str) -> Statement {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE t SET name = ? WHERE id = ?",
            [name.to_owned().into(), id.into()],
        )
    }

    fn transaction(statements: Vec<Statement>) -> Transaction {
        Transaction { statements, done: oneshot::channel().0 }
    }

    #[test]
    fn a_groups_script_depends_only_on_how_many_transactions_of_each_kind_it_has() {
        let script_of = |mut group: Vec<Transaction>| {
            in_script_order(&mut group);
            Script::of(group.iter().flat_map(|t| &t.statements))
        };
        let first = script_of(vec![
            transaction(vec![update(1, "a")]),
            transaction(vec![insert(2, Some("b")), update(2, "c")]),
            transaction(vec![insert(3, Some("d"))]),
        ]);
        let second = script_of(vec![
            transaction(vec![insert(4, Some("e"))]),
            transaction(vec![update(5, "f")]),
            transaction(vec![insert(6, Some("g")), update(6, "h")]),
        ]);
        assert_eq!(first.sql, second.sql, "the same kinds in another order make the same script");
        assert_eq!((first.statement_count, first.values.len()), (4, 8));
        let sorted_ids: Vec<_> = [&first, &second].map(|script| script.values[0].clone()).into();
        assert_eq!(sorted_ids, [sea_orm::Value::from(3_i64), 4_i64.into()], "values go with their statements");
    }

    #[tokio::test]
    async fn transactions_sent_together_each_get_their_own_outcome() {
        let (TempDatabase { db, .. }, writes) = &database().await;
        let mut expected = send_together(writes, 0, None).await;
        assert_eq!(ids(db).await, expected);
        expected.extend(send_together(writes, 1_000, Some(17)).await);
        assert_eq!(ids(db).await, expected);
    }
}
