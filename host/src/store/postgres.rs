//! PostgreSQL: the schema of `migrations/postgres/` (the same tables, columns
//! and indexes as the SQLite one, version for version) and opening a pool on
//! it. The service runs on it when `database_url` is `postgres://…`.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// PostgreSQL migrations from `migrations/postgres/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with its password (if any) replaced, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            // Query parameters may carry a password too (`?password=`).
            if parsed.query().is_some() {
                parsed.set_query(Some("redacted"));
            }
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".into(),
    }
}

/// A `database_url` as it may be shown: a PostgreSQL one without its
/// password, a SQLite one as it is.
pub fn redacted_database_url(url: &str) -> String {
    if is_postgres_url(url) {
        redacted(url)
    } else {
        url.to_string()
    }
}

/// Connects to the database at `url` and applies the migrations.
pub async fn open(url: &str) -> anyhow::Result<PgPool> {
    let shown = redacted(url);
    let options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("invalid PostgreSQL URL {shown}"))?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to {shown}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("cannot apply the PostgreSQL migrations to {shown}"))?;
    Ok(pool)
}
