//! Persistence: the SQLite pool (WAL, full sync, so an answered webhook survives a
//! crash), the embedded migrations, and one module per table. Knows nothing of
//! HTTP or Wasm. The queue's table is in [`crate::queue`].

pub mod attempts;
pub mod connections;
pub mod events;
pub mod plugins;
pub mod sources;
pub mod state;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
pub use sqlx::SqlitePool as Pool;

/// Migrations from `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Opens (creating when missing) the database at `url` and applies migrations.
pub async fn open(url: &str) -> anyhow::Result<Pool> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid database_url {url:?}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before we answer 2xx.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(dir) = std::path::Path::new(options.get_filename()).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open database {url:?}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .context("cannot apply database migrations")?;
    Ok(pool)
}

/// Whether a database error is SQLite's "busy/locked" (worth retrying).
pub fn is_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5") | Some("6") | Some("517")))
}
