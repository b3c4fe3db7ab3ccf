//! Writes of concurrent requests gathered into one PostgreSQL statement.
//!
//! On PostgreSQL a statement costs far more than the rows it writes: waking the backend,
//! starting the executor, the commit's flush. Inserting a grant with its refresh token, one
//! statement each, ran at 10,300 rows/s on the seventeenth run's machine (`pgbench`, eight
//! clients); four to a statement, 23,500; eight, 29,400 (docs/benchmarks.md). [`PgGroup`]
//! queues one kind of write ([`GroupWrite`]) and sends those that waited while the statement
//! before was in flight as one statement: the rows travel as one JSON parameter
//! (`json_to_recordset`), and the statement returns the ordinal of each row it wrote, so each
//! request learns its own outcome. No request waits on purpose: under light load a group is
//! one write, sent at once.
//!
//! Should a group's statement fail, each of its writes runs again alone with the statement it
//! would have had anyway, so a failure is its own and the others are written.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, prelude::Uuid};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::kept::KeptConnections;

/// Writes sent in one statement at most: a bound on the JSON parameter and on how long the
/// statement holds its rows' locks.
const MAX_GROUP: usize = 32;

/// One kind of write that can go to PostgreSQL in groups.
pub trait GroupWrite: Serialize + Send + Sync + 'static {
    /// The statement writing a group: `$1` is the JSON array of the group's writes as they
    /// serialise, and it returns the 1-based ordinal `n` of each write it made (`WITH
    /// ORDINALITY`).
    const GROUP_SQL: &'static str;

    /// The row this write changes: two writes of one row never share a group (an `UPDATE …
    /// FROM` changes a row once, whatever number of the group's rows match it).
    fn row(&self) -> Uuid;

    /// The statement making this write alone; it affects one row when it wrote.
    fn alone(&self) -> Result<Statement, DbErr>;
}

/// The queue of one kind of write, and the task that sends it in groups.
pub struct PgGroup<W> {
    queue: mpsc::UnboundedSender<Pending<W>>,
}

/// A queued write and where its outcome goes: whether it was written.
struct Pending<W> {
    write: W,
    done: oneshot::Sender<Result<bool, DbErr>>,
}

impl<W: GroupWrite> PgGroup<W> {
    /// Starts the task that writes the queue through `db`; it ends when this is dropped.
    pub fn new(db: KeptConnections) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_queued(db, receiver));
        Self { queue }
    }

    /// Makes `write`, with whatever others are waiting; whether it was written.
    pub async fn write(&self, write: W) -> Result<bool, DbErr> {
        let (done, outcome) = oneshot::channel();
        let stopped = || DbErr::Custom("the PostgreSQL write queue has stopped".into());
        self.queue.send(Pending { write, done }).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// Writes what is queued, in groups of whatever waited while the group before was written.
async fn write_queued<W: GroupWrite>(db: KeptConnections, mut queue: mpsc::UnboundedReceiver<Pending<W>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        write_group(&db, std::mem::take(&mut group)).await;
    }
}

async fn write_group<W: GroupWrite>(db: &KeptConnections, group: Vec<Pending<W>>) {
    let (together, after) = first_write_of_each_row(group);
    let alone = if together.len() > 1 { write_together(db, together).await } else { together };
    for pending in alone.into_iter().chain(after) {
        let outcome = match pending.write.alone() {
            Ok(statement) => db.execute_raw(statement).await.map(|result| result.rows_affected() == 1),
            Err(err) => Err(err),
        };
        let _ = pending.done.send(outcome);
    }
}

/// The group's first write of each row, and the writes of a row already written (in the order
/// they came, to be made one at a time after the others).
fn first_write_of_each_row<W: GroupWrite>(group: Vec<Pending<W>>) -> (Vec<Pending<W>>, Vec<Pending<W>>) {
    let mut rows = HashSet::with_capacity(group.len());
    group.into_iter().partition(|pending| rows.insert(pending.write.row()))
}

/// Makes `group`'s writes with one statement and answers each; gives the writes back when
/// that statement failed, to be made alone.
async fn write_together<W: GroupWrite>(db: &KeptConnections, group: Vec<Pending<W>>) -> Vec<Pending<W>> {
    match written_ordinals(db, &group).await {
        Ok(written) => {
            for (ordinal, pending) in (1..).zip(group) {
                let _ = pending.done.send(Ok(written.contains(&ordinal)));
            }
            Vec::new()
        }
        // Each write would wait for a connection again: one answer for all.
        Err(err @ DbErr::ConnectionAcquire(_)) => {
            group.into_iter().for_each(|pending| drop(pending.done.send(Err(err.clone()))));
            Vec::new()
        }
        Err(_) => group,
    }
}

/// Runs the group's statement; the ordinals of the writes it made.
async fn written_ordinals<W: GroupWrite>(db: &KeptConnections, group: &[Pending<W>]) -> Result<Vec<i64>, DbErr> {
    let writes: Vec<&W> = group.iter().map(|pending| &pending.write).collect();
    let rows = serde_json::to_string(&writes).map_err(|err| DbErr::Custom(err.to_string()))?;
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, W::GROUP_SQL, [rows.into()]);
    let written = db.query_all_raw(statement).await?;
    written.iter().map(|row| row.try_get::<i64>("", "n")).collect()
}
