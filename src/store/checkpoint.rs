//! Copying SQLite's write-ahead log into the database file off the request path.
//!
//! The embedded default has one pooled connection. SQLite's automatic checkpoint would run on
//! it inside the commit that takes the log past 1,000 pages: it copies those pages into the
//! database file and `fsync`s it while every request queued on the connection waits, which
//! was the token endpoint's p99 (docs/benchmarks.md). Instead the pooled connections never
//! checkpoint (`wal_autocheckpoint=0`, set by [`super::connect_with`]) and a task with a
//! connection of its own, [`spawn`], does it every [`TICK`]:
//!
//! - PASSIVE checkpoints copy and sync what has been committed without taking the write lock,
//!   so the pool goes on committing meanwhile. Each pass after the first has only what was
//!   committed during the one before to copy; once a pass finds nothing new, the whole log is
//!   in the database file and the next commit starts the log over by itself.
//! - Under a load that never pauses that moment may not come. Once the log holds
//!   [`RESTART_AT`] pages the task takes a pooled connection, so no commit can come in between,
//!   and runs a RESTART checkpoint on it, which copies the little left and starts the log over.
//!   Requests wait for that connection in the pool, which wakes them the moment it is back; a
//!   RESTART from the task's own connection would make the committing connection wait in
//!   SQLite's busy handler, which sleeps 1, 2, 5, 10… ms (p99 23 ms instead of 11 at full
//!   speed, measured).
//!
//! The task holds a handle on the pool and ends when the pool is closed (or the runtime
//! stops); the last connection to close copies what is left and removes the log, as SQLite
//! always does.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, SystemTime},
};

use sea_orm::sqlx::{
    self, ConnectOptions, Connection, SqliteConnection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
};

/// How often the log is copied. At the token endpoint's full speed some 1,500 pages are
/// committed per tick. Ticks of 200 ms saved 3–4 % of a login's CPU (fewer passes, each with
/// its two `fsync`s) but raised the token request's p99 at half load from about 3 ms to 4–7 ms:
/// a longer pass holds the server's one core longer (docs/benchmarks.md, seventeenth run).
pub const TICK: Duration = Duration::from_millis(100);

/// Pages in the log (4 KiB each) from which it is started over on a pooled connection: a 16 MB
/// log at most, plus a tick's commits. At half the token endpoint's full speed 2,000, 4,000 and
/// 8,000 gave a p99 of 3.1–3.3 ms; 1,000, a restart every tick, 6 ms (docs/benchmarks.md).
pub const RESTART_AT: i64 = 4_000;

/// Passive copies after the first while each finds new commits.
const CATCH_UP_PASSES: usize = 4;

/// Starts the checkpointer of the SQLite database at `url`, which `pool` has open; it stops
/// when `pool` closes. A failure is logged once and retried every tick.
pub async fn spawn(url: &str, pool: SqlitePool) -> Result<(), sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .disable_statement_logging();
    let mut log_file = options.get_filename().as_os_str().to_owned();
    log_file.push("-wal");
    let mut checkpointer =
        Checkpointer { connection: SqliteConnection::connect_with(&options).await?, pool, log_file: log_file.into() };
    let closed = checkpointer.pool.close_event();
    tokio::spawn(async move {
        tokio::select! {
            () = closed => {}
            () = checkpointer.run() => {}
        }
    });
    Ok(())
}

struct Checkpointer {
    connection: SqliteConnection,
    pool: SqlitePool,
    log_file: PathBuf,
}

impl Checkpointer {
    /// A pass every [`TICK`], skipped while the log file is as it was before a pass that
    /// copied it all: it changes with every commit and with nothing a checkpoint does, so an
    /// idle database costs one `stat` per tick rather than statements on another thread.
    async fn run(&mut self) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut copied_at, mut failing) = (None, false);
        loop {
            ticks.tick().await;
            let before = log_stamp(&self.log_file);
            if before.is_some() && before == copied_at {
                continue;
            }
            match self.checkpoint().await {
                Ok(copied_all) => {
                    failing = false;
                    copied_at = before.filter(|_| copied_all);
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "copying the SQLite write-ahead log failed; retrying every tick");
                }
                Err(_) => {}
            }
        }
    }

    /// One pass: passive copies until one finds nothing committed since the one before (then
    /// the next commit starts the log over), at most [`CATCH_UP_PASSES`] after the first;
    /// then, if the log is still [`RESTART_AT`] pages long, a restart on a pooled connection.
    /// Returns whether the whole log was copied.
    async fn checkpoint(&mut self) -> Result<bool, sqlx::Error> {
        let mut log_pages = run(&mut self.connection, "PRAGMA wal_checkpoint(PASSIVE)").await?;
        for _ in 0..CATCH_UP_PASSES {
            let pages_now = run(&mut self.connection, "PRAGMA wal_checkpoint(PASSIVE)").await?;
            if pages_now <= log_pages {
                return Ok(true);
            }
            log_pages = pages_now;
        }
        if log_pages < RESTART_AT {
            return Ok(false);
        }
        run(&mut *self.pool.acquire().await?, "PRAGMA wal_checkpoint(RESTART)").await?;
        Ok(true)
    }
}

/// The log file's length and modification time, if it exists.
fn log_stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

/// Runs a `wal_checkpoint` pragma and returns how many pages the log held.
async fn run(connection: &mut SqliteConnection, pragma: &'static str) -> Result<i64, sqlx::Error> {
    let (_busy, log_pages, _copied): (i64, i64, i64) = sqlx::query_as(pragma).fetch_one(connection).await?;
    Ok(log_pages)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

    use crate::store::TempDatabase;

    async fn wal_autocheckpoint(db: &DatabaseConnection) -> i64 {
        let row = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_autocheckpoint")).await;
        row.unwrap().unwrap().try_get_by_index(0).unwrap()
    }

    /// Commits without pause for many ticks: the log must be started over, not grow with every
    /// commit. 10,000 commits of a 4 KiB row write 129 MB of log when nothing copies it; with
    /// the task the log stays near [`super::RESTART_AT`] pages (16 MB) plus what is committed
    /// while a tick waits. A test binary runs tests side by side on few cores, so the task may
    /// be late by many ticks; the bound allows for that and still fails without the task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_started_over_while_commits_go_on() {
        let temp = TempDatabase::new().await;
        let (db, wal) = (&temp.db, temp.log_file());
        assert_eq!(wal_autocheckpoint(db).await, 0, "the pooled connection must not checkpoint");
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)").await.unwrap();
        let mut largest = 0;
        for id in 0..10_000_i64 {
            let insert = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO t (id, body) VALUES (?, zeroblob(4096))",
                [id.into()],
            );
            db.execute_raw(insert).await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        let bound = 64 << 20;
        assert!(largest < bound, "the log grew to {largest} bytes (bound {bound})");
    }
}
