//! Writes of concurrent requests gathered into one PostgreSQL statement.
//!
//! On PostgreSQL a statement costs far more than the rows it writes: waking the backend,
//! starting the executor, the commit's flush. Inserting a grant with its refresh token, one
//! statement each, ran at 10,300 rows/s on the seventeenth run's machine (`pgbench`, eight
//! clients); four to a statement, 23,500; eight, 29,400 (docs/benchmarks.md). [`PgGroup`]
//! queues one kind of write ([`GroupWrite`]) and sends those that waited while the statement
//! before was in flight as one statement (or a few, [`MAX_GROUP_BYTES`] each): the rows travel
//! as one JSON parameter (`json_to_recordset`), and the statement returns the ordinal of each
//! row it wrote, so each request learns its own outcome. No request waits on purpose: under
//! light load a group is one write, sent at once.
//!
//! Should a group's statement fail, each of its writes runs again alone with the statement it
//! would have had anyway, so a failure is its own and the others are written.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, prelude::Uuid};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::kept::KeptConnections;

/// Writes taken from the queue at once.
const MAX_GROUP: usize = 32;

/// The JSON of one statement's rows at most; a group larger than that is sent as several
/// statements. sqlx 0.9 leaves Nagle's algorithm on for PostgreSQL's sockets, so a statement
/// that leaves in more than one piece may have its last piece held back until PostgreSQL
/// acknowledges the rest, which it may delay by 40 ms: groups of sign-ins, each row with the
/// credential's JSON twice, took 80 ms a statement (docs/benchmarks.md, seventeenth run).
const MAX_GROUP_BYTES: usize = 12 * 1024;

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
    let (first, repeats) = first_write_of_each_row(group);
    let mut alone = Vec::new();
    for batch in batches(first) {
        match batch.len() {
            1 => alone.extend(batch.into_iter().map(|(pending, _)| pending)),
            _ => alone.extend(write_together(db, batch).await),
        }
    }
    for pending in alone.into_iter().chain(repeats) {
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

/// The writes with their JSON rows, in batches of [`MAX_GROUP_BYTES`] at most (a write larger
/// than that, or that cannot be serialised, is a batch of its own).
fn batches<W: GroupWrite>(writes: Vec<Pending<W>>) -> Vec<Vec<(Pending<W>, String)>> {
    let mut batches: Vec<Vec<(Pending<W>, String)>> = Vec::new();
    let mut bytes = 0;
    for pending in writes {
        let row = serde_json::to_string(&pending.write).unwrap_or_default();
        let fits = !row.is_empty() && bytes + row.len() < MAX_GROUP_BYTES;
        match batches.last_mut() {
            Some(batch) if fits => {
                bytes += row.len() + 1;
                batch.push((pending, row));
            }
            _ => {
                // A write that cannot be serialised closes its batch: no other joins it.
                bytes = if row.is_empty() { MAX_GROUP_BYTES } else { row.len() };
                batches.push(vec![(pending, row)]);
            }
        }
    }
    batches
}

/// Makes `batch`'s writes with one statement and answers each; gives the writes back when
/// that statement failed, to be made alone.
async fn write_together<W: GroupWrite>(db: &KeptConnections, batch: Vec<(Pending<W>, String)>) -> Vec<Pending<W>> {
    let rows = format!("[{}]", batch.iter().map(|(_, row)| row.as_str()).collect::<Vec<_>>().join(","));
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, W::GROUP_SQL, [rows.into()]);
    let written = db
        .query_all_raw(statement)
        .await
        .and_then(|written| written.iter().map(|row| row.try_get::<i64>("", "n")).collect::<Result<Vec<_>, _>>());
    let batch = batch.into_iter().map(|(pending, _)| pending);
    match written {
        Ok(written) => {
            for (ordinal, pending) in (1..).zip(batch) {
                let _ = pending.done.send(Ok(written.contains(&ordinal)));
            }
            Vec::new()
        }
        // Each write would wait for a connection again: one answer for all.
        Err(err @ DbErr::ConnectionAcquire(_)) => {
            batch.for_each(|pending| drop(pending.done.send(Err(err.clone()))));
            Vec::new()
        }
        // One bad write fails the statement of all: each is made alone, and told its own
        // outcome. Should this happen all the time (a statement that no longer fits the
        // schema), every write would go one at a time, so it is worth a line in the log. It
        // carries PostgreSQL's message only: sqlx leaves out the detail, where a key's value
        // would be.
        Err(error) => {
            let writes = batch.len();
            tracing::warn!(%error, writes, "a group of PostgreSQL writes failed; making them one at a time");
            batch.collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write of `row` whose JSON is about `bytes` long; with no bytes at all, one that cannot
    /// be serialised.
    struct Filler {
        row: Uuid,
        text: String,
    }

    impl Serialize for Filler {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            if self.text.is_empty() {
                return Err(serde::ser::Error::custom("no text"));
            }
            (self.row, &self.text).serialize(serializer)
        }
    }

    impl GroupWrite for Filler {
        const GROUP_SQL: &'static str = "";

        fn row(&self) -> Uuid {
            self.row
        }

        fn alone(&self) -> Result<Statement, DbErr> {
            Err(DbErr::Custom("not in these tests".into()))
        }
    }

    fn pending(row: u128, bytes: usize) -> Pending<Filler> {
        Pending { write: Filler { row: Uuid::from_u128(row), text: "x".repeat(bytes) }, done: oneshot::channel().0 }
    }

    fn rows<'a>(writes: impl IntoIterator<Item = &'a Pending<Filler>>) -> Vec<u128> {
        writes.into_iter().map(|pending| pending.write.row.as_u128()).collect()
    }

    #[test]
    fn batches_stay_within_their_bound_in_the_order_the_writes_came() {
        let sizes = [5_000, 5_000, 5_000, 20_000, 100, 100, 12_200, 100];
        let writes = sizes.iter().enumerate().map(|(n, &bytes)| pending(n as u128, bytes)).collect();
        let batches = batches(writes);
        let shape: Vec<Vec<u128>> =
            batches.iter().map(|batch| rows(batch.iter().map(|(pending, _)| pending))).collect();
        assert_eq!(shape, [vec![0, 1], vec![2], vec![3], vec![4, 5], vec![6], vec![7]]);
        for batch in &batches {
            let json: usize = batch.iter().map(|(_, row)| row.len() + 1).sum();
            assert!(batch.len() == 1 || json < MAX_GROUP_BYTES, "{json} bytes in a batch of {}", batch.len());
        }
    }

    #[test]
    fn a_write_that_cannot_be_serialised_is_a_batch_of_its_own() {
        let writes = vec![pending(0, 10), pending(1, 0), pending(2, 10), pending(3, 10)];
        let shape: Vec<Vec<u128>> =
            batches(writes).iter().map(|batch| rows(batch.iter().map(|(pending, _)| pending))).collect();
        assert_eq!(shape, [vec![0], vec![1], vec![2, 3]]);
    }

    #[test]
    fn a_second_write_of_a_row_waits_for_the_group() {
        let group = vec![pending(1, 10), pending(2, 10), pending(1, 10), pending(3, 10), pending(2, 10)];
        let (first, repeats) = first_write_of_each_row(group);
        assert_eq!((rows(&first), rows(&repeats)), (vec![1, 2, 3], vec![1, 2]));
    }
}
