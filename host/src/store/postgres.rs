//! PostgreSQL: the schema of `migrations/postgres/` (the same tables, columns
//! and indexes as the SQLite one, version for version) and opening a pool on
//! it. The service runs on it when `database_url` is `postgres://…`.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// PostgreSQL migrations from `migrations/postgres/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The channel on which replicas say that jobs may be claimable (see
/// [`notify_jobs`], [`listen_for_jobs`]).
pub const JOBS_CHANNEL: &str = "recoco_sync_jobs";

/// Tells every replica, when `tx` commits, that jobs may be claimable: a
/// new one, or one freed by an outcome (the next of its key). PostgreSQL
/// sends a notification once per transaction however often it is asked.
pub async fn notify_jobs(tx: &mut crate::store::sql::Tx) -> sqlx::Result<()> {
    crate::store::sql::query("SELECT pg_notify(?, '')")
        .bind(JOBS_CHANNEL)
        .execute(tx)
        .await
        .map(drop)
}

/// Wakes this replica's idle workers on each notification of
/// [`JOBS_CHANNEL`], so that a job stored by another replica starts at once
/// rather than at the next poll. Reconnects after a lost connection (the
/// workers' polling covers the gap).
pub async fn listen_for_jobs(
    pool: PgPool,
    wake: std::sync::Arc<tokio::sync::Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            Err(err) = wake_on_notifications(&pool, &wake) => {
                tracing::warn!(error = %err, "lost the job notifications; listening again in 1 s");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Listens on one connection until it fails.
async fn wake_on_notifications(
    pool: &PgPool,
    wake: &tokio::sync::Notify,
) -> sqlx::Result<std::convert::Infallible> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(JOBS_CHANNEL).await?;
    loop {
        listener.recv().await?;
        wake.notify_waiters();
    }
}

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
