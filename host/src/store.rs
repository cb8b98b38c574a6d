//! Persistence: the SQLite pool (WAL, full sync, so an answered webhook survives a
//! crash) or a PostgreSQL one, behind one seam ([`sql`]), the embedded
//! migrations of both, and one module per table. Knows nothing of
//! HTTP or Wasm. The queue's table is in [`crate::queue`].

pub mod attempts;
pub mod connections;
pub mod events;
pub mod keys;
pub mod maintenance;
pub mod plugins;
pub mod postgres;
pub mod private;
pub mod replicas;
pub mod sources;
pub mod sql;
pub mod state;
pub mod write_turn;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
pub use sql::{Engine, Pool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Who manages a source or a connection (see `managed`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// Declared in the service's configuration file: applied at each start,
    /// read-only through the CLI, the API and the page (pausing aside).
    File,
    /// Created at run time (CLI, API, page, `config apply`).
    Database,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Database => "database",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "database" {
            Self::Database
        } else {
            Self::File
        }
    }
}

/// Whether saving an entry may update one of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    CreateOrUpdate,
    /// Refused with [`AlreadyExists`] when the name is taken.
    CreateOnly,
}

/// A create found the name taken.
#[derive(Debug, thiserror::Error)]
#[error("{0} already exists")]
pub struct AlreadyExists(pub String);

/// SQLite migrations from `migrations/sqlite/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Default of `storage.wal_max_bytes`.
pub const DEFAULT_WAL_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A plain connection for a thread that writes on its own (intake's writer,
/// the queue's), with the pool's settings; `who` names it in errors.
pub fn open_own_connection(
    database: &std::path::Path,
    who: &str,
) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(database)
        .with_context(|| format!("{who}: cannot open {}", database.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The same settings as the pool (see open_with).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
    )?;
    Ok(conn)
}

/// Opens (creating when missing) the database at `url` and applies migrations.
pub async fn open(url: &str) -> anyhow::Result<Pool> {
    open_with(url, DEFAULT_WAL_MAX_BYTES).await
}

/// [`open`], with the WAL size limit of the service (see [`maintenance`]).
/// A `postgres://` URL opens PostgreSQL instead (see [`postgres`]).
pub async fn open_with(url: &str, wal_max_bytes: u64) -> anyhow::Result<Pool> {
    if postgres::is_postgres_url(url) {
        return Ok(Pool::Postgres(postgres::open(url).await?));
    }
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid database_url {url:?}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL: commits reach the OS in WAL order; intake makes its own commits
        // durable by syncing the WAL before answering (see intake::writer), and
        // every other write is safe to redo (jobs run at least once).
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // Checkpoints copy the WAL into the database and fsync it; done by
        // [`maintenance`] off the commit path rather than inside a commit.
        .pragma("wal_autocheckpoint", "0")
        // A log restarted by one of these connections is cut back to the limit.
        .pragma("journal_size_limit", wal_max_bytes.to_string());
    private::prepare(options.get_filename())?;
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
    Ok(Pool::Sqlite(pool))
}

/// A listing query, newest first: `base WHERE col = ? AND … [AND id < before]
/// ORDER BY id DESC LIMIT n`, absent filters skipped, `limit` kept within 1..=1000.
pub fn newest_first<'a>(
    base: &str,
    id_column: &str,
    equals: &[(&str, &'a Option<String>)],
    before: &'a Option<String>,
    limit: Option<i64>,
) -> sql::Query {
    let mut query = sql::Query::new(format!("{base} WHERE 1 = 1"));
    for (column, value) in equals {
        if let Some(v) = value {
            query
                .push(format!(" AND {column} = "))
                .push_bind(v.as_str());
        }
    }
    if let Some(before) = before {
        query
            .push(format!(" AND {id_column} < "))
            .push_bind(before.as_str());
    }
    query
        .push(format!(" ORDER BY {id_column} DESC LIMIT "))
        .push_bind(limit.unwrap_or(50).clamp(1, 1000));
    query
}
