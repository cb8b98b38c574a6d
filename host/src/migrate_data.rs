//! `recoco-sync migrate-data --from sqlite://… --to postgres://…`: moves an
//! installation's whole database to PostgreSQL in one transaction, so the
//! target ends either a full copy or untouched.
//!
//! The source is opened read-only and must be at this binary's schema version
//! (`recoco-sync migrate` upgrades it); the service must be stopped (a
//! replica still beating, or a job with a live lease, refuses the move); the
//! target must be empty (its schema is created or upgraded here). Rows are
//! copied table by table in foreign-key
//! order, streamed and inserted in batches, each value converted to the type
//! of its PostgreSQL column; then identities go on from the largest id copied
//! and every table's row count is compared before the commit. Sealed secrets
//! move as they are: the master key (`secret.key` or `secret_key`) goes with
//! the data.

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{
    Column as _, Postgres, QueryBuilder, Row as _, SqlitePool, Transaction, TypeInfo as _,
    ValueRef as _,
};

use crate::store::postgres;

/// Every table of the schema, parents before children. A migration that adds
/// a table adds it here (a test compares this list with the schema).
pub const TABLES: &[&str] = &[
    "sources",
    "connections",
    "connection_policies",
    "schedules",
    "plugins",
    "events",
    "intake_dedup",
    "jobs",
    "job_keys",
    "attempts",
    "connection_state",
    "admin_keys",
    "admin_sessions",
    "secret_key_check",
    "alert_incidents",
    "replicas",
];

/// PostgreSQL takes at most 65,535 bound values per statement.
const MAX_BINDS: usize = 60_000;
/// Rows per INSERT, at most (bodies are large: keep a batch's memory small).
const MAX_ROWS: usize = 500;

/// What a move copied.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// Rows per table, in copy order.
    pub tables: Vec<TableCount>,
    pub rows: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows: u64,
}

/// Moves the SQLite database at `from` into the empty PostgreSQL database at
/// `to`. `progress` hears each table as it is done.
pub async fn migrate(
    from: &str,
    to: &str,
    mut progress: impl FnMut(&TableCount),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(
        postgres::is_postgres_url(to),
        "--to must be a postgres:// URL, not {}",
        postgres::redacted(to)
    );
    let source = open_source(from).await?;
    check_source(&source).await?;
    let target = postgres::open(to).await?;
    check_target_empty(&target).await?;

    let mut tx = target.begin().await.context("cannot start the copy")?;
    let mut tables = Vec::new();
    for table in TABLES {
        let rows = copy_table(&source, &mut tx, table)
            .await
            .with_context(|| format!("copying table {table}"))?;
        let count = TableCount {
            table: table.to_string(),
            rows,
        };
        progress(&count);
        tables.push(count);
    }
    continue_identities(&mut tx).await?;
    verify_counts(&source, &mut tx).await?;
    tx.commit().await.context("cannot commit the copy")?;
    source.close().await;
    target.close().await;
    Ok(Report {
        rows: tables.iter().map(|t| t.rows).sum(),
        tables,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The source, read-only: a missing file is an error, never a new database.
async fn open_source(from: &str) -> anyhow::Result<SqlitePool> {
    anyhow::ensure!(
        from.starts_with("sqlite:"),
        "--from must be a sqlite:// URL, not {from:?}"
    );
    let options = SqliteConnectOptions::from_str(from)
        .with_context(|| format!("invalid --from URL {from:?}"))?
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let path = options.get_filename().to_path_buf();
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open {}", path.display()))
}

/// The source is at this binary's schema, holds no table the copy would
/// miss, and the service is stopped: no replica beats and no job runs.
async fn check_source(source: &SqlitePool) -> anyhow::Result<()> {
    let latest = crate::store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(source)
            .await
            .context("the source is not a recoco-sync database (no migrations table)")?;
    anyhow::ensure!(
        applied == Some(latest),
        "the source database is at schema version {}, this binary's is {latest}: \
         upgrade it first with `recoco-sync migrate --database-url …`",
        applied.map_or("none".into(), |v| v.to_string())
    );
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(source)
    .await?;
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !TABLES.contains(&n.as_str()))
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "the source has tables this binary does not copy: {unknown:?}"
    );
    let up: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM replicas WHERE stopped_at IS NULL AND last_seen_at + timeout_ms >= ?1",
    )
    .bind(crate::ids::now_ms())
    .fetch_all(source)
    .await?;
    anyhow::ensure!(
        up.is_empty(),
        "the service is running on the source (replica {} sent a heartbeat): stop it before \
         moving its database",
        up.join(", ")
    );
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_until > ?1",
    )
    .bind(crate::ids::now_ms())
    .fetch_one(source)
    .await?;
    anyhow::ensure!(
        running == 0,
        "{running} job(s) are running on the source (their leases are live): \
         stop the service before moving its database"
    );
    Ok(())
}

async fn check_target_empty(target: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut holding = Vec::new();
    for table in TABLES {
        let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
            .fetch_one(target)
            .await?;
        if any {
            holding.push(*table);
        }
    }
    anyhow::ensure!(
        holding.is_empty(),
        "the target database already holds data (in {}): migrate-data only fills an empty one",
        holding.join(", ")
    );
    Ok(())
}

/// A value on its way, typed by its PostgreSQL column.
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Bool,
    Real,
    Text,
    Bytes,
}

impl Kind {
    fn of(data_type: &str) -> anyhow::Result<Self> {
        Ok(match data_type {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "boolean" => Kind::Bool,
            "double precision" | "real" => Kind::Real,
            "text" => Kind::Text,
            "bytea" => Kind::Bytes,
            other => anyhow::bail!("no conversion to PostgreSQL type {other}"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Bool => "a boolean",
            Kind::Real => "a number",
            Kind::Text => "text",
            Kind::Bytes => "bytes",
        }
    }

    /// Reads column `i` of a SQLite row as this kind. SQLite types each
    /// value, not each column: a value of another storage class is converted
    /// when that loses nothing (a number as text, text as bytes) and refused
    /// otherwise (text in an integer column), rather than copied as 0.
    fn read(self, row: &SqliteRow, i: usize) -> anyhow::Result<Value> {
        let raw = row.try_get_raw(i)?;
        let class = if raw.is_null() {
            "NULL".to_string()
        } else {
            raw.type_info().name().to_string()
        };
        let null = class == "NULL";
        Ok(match (self, class.as_str()) {
            (Kind::Int, _) if null => Value::Int(None),
            (Kind::Bool, _) if null => Value::Bool(None),
            (Kind::Real, _) if null => Value::Real(None),
            (Kind::Text, _) if null => Value::Text(None),
            (Kind::Bytes, _) if null => Value::Bytes(None),
            (Kind::Int, "INTEGER") => Value::Int(Some(row.try_get_unchecked(i)?)),
            (Kind::Bool, "INTEGER") => Value::Bool(Some(row.try_get_unchecked::<i64, _>(i)? != 0)),
            (Kind::Real, "INTEGER" | "REAL") => Value::Real(Some(row.try_get_unchecked(i)?)),
            (Kind::Text, "TEXT" | "INTEGER" | "REAL") => {
                Value::Text(Some(row.try_get_unchecked(i)?))
            }
            (Kind::Bytes, "BLOB" | "TEXT") => Value::Bytes(Some(row.try_get_unchecked(i)?)),
            (kind, class) => anyhow::bail!(
                "column {}: a {class} value where PostgreSQL takes {}",
                row.columns()[i].name(),
                kind.name()
            ),
        })
    }
}

/// The target's columns of `table`, in order, with their kinds.
async fn columns(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
) -> anyhow::Result<Vec<(String, Kind)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    anyhow::ensure!(!rows.is_empty(), "the target has no table {table}");
    rows.into_iter()
        .map(|(name, ty)| Ok((name, Kind::of(&ty)?)))
        .collect()
}

/// Copies every row of `table`; returns how many.
async fn copy_table(
    source: &SqlitePool,
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
) -> anyhow::Result<u64> {
    let columns = columns(tx, table).await?;
    // jobs.seq is SQLite's rowid of the job: its arrival order.
    let select = columns
        .iter()
        .map(|(name, _)| {
            if table == "jobs" && name == "seq" {
                "rowid AS seq".to_string()
            } else {
                format!("\"{name}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let names = columns
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // The jobs' triggers already made the job_keys of live jobs.
    let on_conflict = if table == "job_keys" {
        " ON CONFLICT DO NOTHING"
    } else {
        ""
    };
    let per_batch = (MAX_BINDS / columns.len()).min(MAX_ROWS);
    let query = format!("SELECT {select} FROM {table}");
    let mut rows = sqlx::query(&query).fetch(source);
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_batch);
    let mut copied = 0u64;
    loop {
        let row = rows.try_next().await?;
        if let Some(row) = &row {
            let values = columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| kind.read(row, i))
                .collect::<anyhow::Result<Vec<_>>>()?;
            batch.push(values);
        }
        if batch.len() == per_batch || (row.is_none() && !batch.is_empty()) {
            copied += batch.len() as u64;
            let mut insert =
                QueryBuilder::<Postgres>::new(format!("INSERT INTO {table} ({names}) "));
            insert.push_values(batch.drain(..), |mut b, values| {
                for value in values {
                    match value {
                        Value::Int(v) => b.push_bind(v),
                        Value::Bool(v) => b.push_bind(v),
                        Value::Real(v) => b.push_bind(v),
                        Value::Text(v) => b.push_bind(v),
                        Value::Bytes(v) => b.push_bind(v),
                    };
                }
            });
            insert.push(on_conflict);
            insert.build().execute(&mut **tx).await?;
        }
        if row.is_none() {
            return Ok(copied);
        }
    }
}

/// Identity columns go on after the largest value copied.
async fn continue_identities(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (table, column) in identities {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                           COALESCE((SELECT MAX({column}) FROM {table}), 1),
                           (SELECT MAX({column}) FROM {table}) IS NOT NULL)"
        ))
        .execute(&mut **tx)
        .await
        .with_context(|| format!("cannot move the identity of {table}.{column} on"))?;
    }
    Ok(())
}

/// Every table holds as many rows on both sides.
async fn verify_counts(
    source: &SqlitePool,
    tx: &mut Transaction<'_, Postgres>,
) -> anyhow::Result<()> {
    for table in TABLES {
        let query = format!("SELECT COUNT(*) FROM {table}");
        let there: i64 = sqlx::query_scalar(&query).fetch_one(source).await?;
        let here: i64 = sqlx::query_scalar(&query).fetch_one(&mut **tx).await?;
        anyhow::ensure!(
            there == here,
            "table {table}: {there} rows in the source but {here} copied; nothing was committed"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_copy_list_is_the_whole_schema() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let pool = crate::store::open(&url).await.unwrap();
        let mut names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
        )
        .fetch_all(pool.as_sqlite().unwrap())
        .await
        .unwrap();
        names.sort();
        let mut listed: Vec<&str> = TABLES.to_vec();
        listed.sort();
        assert_eq!(names, listed);
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            postgres::redacted("postgres://app:s3cret@db.example:5432/recoco"),
            "postgres://app:***@db.example:5432/recoco"
        );
        assert_eq!(
            postgres::redacted("postgres://db/recoco?password=s3cret"),
            "postgres://db/recoco?redacted"
        );
        assert!(postgres::is_postgres_url("postgresql://db/x"));
        assert!(!postgres::is_postgres_url("sqlite://x.db"));
    }
}
