//! The durable store: connecting to SQLite or PostgreSQL, applying migrations, and the queries
//! each area needs (one module per table group). Queries take the connection and plain values,
//! and return entity models; the rules about *when* to call them live in the domain modules.

pub mod clients;
pub mod consents;
pub mod enrollment_links;
pub mod grants;
pub mod passkeys;
pub mod settings;
pub mod signing_keys;
pub mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// Opens the database at `url`. SQLite runs in WAL mode with a busy timeout, so readers never
/// block the single writer and short write bursts wait instead of failing.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    if url.starts_with("sqlite::memory:") {
        // Each in-memory SQLite connection is its own database.
        options.max_connections(1);
    }
    Database::connect(options).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Which unique column a failed insert or update collided with, if that is why it failed.
pub fn unique_violation(err: &DbErr) -> Option<String> {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => Some(detail),
        _ => None,
    }
}
