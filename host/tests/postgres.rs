//! PostgreSQL: the schema of both engines compared, and `recoco-sync
//! migrate-data` run as an operator does, against a cluster of the test's own
//! (see `pg_support`).

mod cli_support;
mod pg_support;

use std::collections::BTreeMap;
use std::path::Path;

use pg_support::PgCluster;
use sqlx::Row as _;

/// A fresh SQLite database of this binary's schema, in `dir`.
async fn sqlite_in(dir: &Path) -> (String, sqlx::SqlitePool) {
    let url = format!("sqlite://{}", dir.join("recoco-sync.db").display());
    let pool = recoco_sync::store::open(&url).await.unwrap();
    (url, pool.as_sqlite().expect("a SQLite pool").clone())
}

/// table → column → (type, not null), and the index and trigger names.
#[derive(Debug, PartialEq)]
struct Schema {
    columns: BTreeMap<String, BTreeMap<String, (String, bool)>>,
    indexes: Vec<String>,
    triggers: Vec<String>,
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns = BTreeMap::new();
    for table in tables {
        let rows = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(pool)
            .await
            .unwrap();
        let mut cols = BTreeMap::new();
        for row in rows {
            let name: String = row.get("name");
            let declared: String = row.get("type");
            // A primary key column is never NULL, declared so or not.
            let not_null = row.get::<i64, _>("notnull") == 1 || row.get::<i64, _>("pk") > 0;
            // The PostgreSQL type each SQLite declaration maps to.
            let flag = ["enabled", "file_enabled"].contains(&name.as_str());
            let ty = match declared.as_str() {
                "INTEGER" if flag => "boolean",
                "INTEGER" => "bigint",
                "TEXT" => "text",
                "BLOB" => "bytea",
                "REAL" => "double precision",
                other => panic!("{table}.{name}: unexpected SQLite type {other}"),
            };
            cols.insert(name, (ty.to_string(), not_null));
        }
        columns.insert(table, cols);
    }
    let mut indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    indexes.sort();
    let mut triggers: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(pool)
            .await
            .unwrap();
    triggers.sort();
    Schema {
        columns,
        indexes,
        triggers,
    }
}

async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
           FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
    for (table, column, ty, nullable) in rows {
        // jobs.seq stands for SQLite's rowid (arrival order).
        if table == "jobs" && column == "seq" {
            continue;
        }
        columns
            .entry(table)
            .or_default()
            .insert(column, (ty, nullable == "NO"));
    }
    // Indexes made by a constraint (primary keys, UNIQUE columns) have no
    // name of their own on SQLite.
    let mut indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
          WHERE schemaname = current_schema() AND indexname NOT IN
                (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    indexes.sort();
    let mut triggers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT trigger_name::text FROM information_schema.triggers
          WHERE trigger_schema = current_schema()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    triggers.sort();
    Schema {
        columns,
        indexes,
        triggers,
    }
}

#[tokio::test]
async fn both_engines_have_the_same_schema() {
    let Some(pg) = PgCluster::start("both_engines_have_the_same_schema") else {
        return;
    };
    pg.create_database("schema").await;
    let dir = tempfile::tempdir().unwrap();
    let (_, sqlite) = sqlite_in(dir.path()).await;
    let postgres = recoco_sync::store::postgres::open(&pg.url("schema"))
        .await
        .unwrap();
    let (a, b) = (
        sqlite_schema(&sqlite).await,
        postgres_schema(&postgres).await,
    );
    assert!(a.columns.len() >= 15, "{:?}", a.columns.keys());
    assert_eq!(a.columns, b.columns, "tables and columns");
    assert_eq!(a.indexes, b.indexes, "indexes");
    assert_eq!(a.triggers, b.triggers, "triggers");
    // Both migration lists have the same versions.
    let versions = |m: &sqlx::migrate::Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
    assert_eq!(
        versions(&recoco_sync::store::MIGRATOR),
        versions(&recoco_sync::store::postgres::MIGRATOR)
    );
}

/// Rows in every table, with the values SQLite's types make hard: a body that
/// is not UTF-8, a flag off, a real number, NULLs, live and finished jobs with
/// ordering keys (job_keys made by the triggers).
const POPULATE: &str = r#"
INSERT INTO sources (id, code, api_url, secrets, enabled, created_at, updated_at, scheme, rate_per_second, rate_burst, owner, file_enabled)
VALUES (3, 'portal', 'https://recoco.example', 'sealed:v1:AAAA', 1, 1700000000000, 1700000000001, 'recoco', 2.5, 10, 'file', 1),
       (7, 'other', NULL, 'sealed:v1:BBBB', 0, 1700000000000, 1700000000000, 'standard-webhooks', NULL, NULL, 'database', NULL);
INSERT INTO connections (id, name, source_id, plugin, enabled, allowed_hosts, config, created_at, updated_at, filter, owner, file_enabled, limits)
VALUES (5, 'grist-prod', 3, 'grist', 1, '["grist.example"]', '{"doc":"d","api_key":"sealed:v1:CCCC"}', 1, 2, 'event.object_type == "projects.project"', 'file', 1, '{"memory_mib":64}'),
       (9, 'paused', 7, 'http-forward', 0, NULL, '{}', 1, 2, NULL, 'database', NULL, NULL);
INSERT INTO connection_policies (connection_id, policy, updated_at) VALUES (5, '{"max_attempts":4}', 3);
INSERT INTO schedules (connection_id, task, spec, payload, next_run_at, last_run_at, last_job_id, updated_at)
VALUES (5, 'sync-all', 'every 24h', '{}', 1700086400000, NULL, NULL, 4);
INSERT INTO plugins (name, version, hash, manifest, updated_at) VALUES ('grist', '1.2.0', 'sha256:ab', '{"name":"grist"}', 5);
INSERT INTO events (id, source_id, status, topic, object_type, object_id, action, webhook_uuid, body, headers, remote_addr, error, received_at, updated_at, filtered)
VALUES ('evt_1', 3, 'processed', 'project', 'projects.project', '42', 'update', 'u-1', X'00FF7B22C3A9227D', '{}', '127.0.0.1', NULL, 1700000000100, 1700000000200, NULL),
       ('evt_2', 3, 'queued', 'project', 'projects.project', '43', 'update', NULL, CAST('{"a":"é"}' AS BLOB), '{"x":"y"}', NULL, NULL, 1700000000300, 1700000000300, '[{"connection":"paused"}]');
INSERT INTO intake_dedup (source_id, key, event_id, seen_at) VALUES (3, 'k1', 'evt_1', 1700000000100);
INSERT INTO jobs (id, connection_id, plugin, kind, event_id, state, attempts, max_attempts, run_at, created_at, updated_at, finished_at, ordering_key, summary)
VALUES ('job_done', 5, 'grist', 'event', 'evt_1', 'succeeded', 1, 8, 0, 10, 11, 12, '["project:42"]', 'ok');
INSERT INTO jobs (id, connection_id, plugin, kind, event_id, state, attempts, max_attempts, run_at, created_at, updated_at, ordering_key, last_error, coalesced, throttles)
VALUES ('job_live', 5, 'grist', 'event', 'evt_2', 'queued', 2, 8, 1700000000400, 13, 14, '["project:43","project:44"]', '503 from grist', 3, 1);
INSERT INTO jobs (id, connection_id, plugin, kind, task_name, payload, dedup_key, state, max_attempts, run_at, created_at, updated_at)
VALUES ('job_task', 9, 'http-forward', 'task', 'sync-all', '{}', 'nightly', 'paused', 8, 0, 15, 16);
INSERT INTO attempts (id, job_id, number, plugin, plugin_version, plugin_hash, started_at, duration_ms, outcome, error, summary)
VALUES (11, 'job_done', 1, 'grist', '1.2.0', 'sha256:ab', 10, 7, 'succeeded', NULL, 'ok'),
       (12, 'job_live', 1, 'grist', '1.2.0', NULL, 13, 900, 'retry', '503', NULL);
INSERT INTO connection_state (connection_id, key, value, updated_at) VALUES (5, 'row:42', '17', 20);
INSERT INTO admin_keys (id, name, scope, key_hash, created_at, last_used_at, revoked_at)
VALUES (2, 'ops', 'admin', 'hash-ops', 1, NULL, NULL), (4, 'ops', 'read', 'hash-old', 1, 2, 3);
INSERT INTO admin_sessions (token_hash, key_hash, csrf_token, created_at, expires_at) VALUES ('t', 'hash-ops', 'c', 1, 2);
INSERT INTO secret_key_check (id, sealed) VALUES (1, 'sealed:v1:DDDD');
INSERT INTO alert_incidents (id, connection_id, connection, reason, summary, failures, opened_at, updated_at, attempt)
VALUES (6, 5, 'grist-prod', 'failures', '3 runs failed', 3, 30, 31, 2);
INSERT INTO replicas (id, host, pid, version, listen, plugins, started_at, last_seen_at, timeout_ms, stopped_at)
VALUES ('box:12:1700000000000', 'box', 12, '0.1.0', '127.0.0.1:8000', '[{"name":"grist","version":"1.2.0","hash":"ab"}]', 1, 2, 30000, 3);
"#;

/// Every row of `table` in `$pool` as text, each value read as the type of
/// its PostgreSQL column (`$flag` reads a boolean: SQLite stores 0/1), sorted.
macro_rules! rows_of {
    ($pool:expr, $table:expr, $types:expr, $flag:expr) => {{
        let rows = sqlx::query(&format!("SELECT * FROM {}", $table))
            .fetch_all($pool)
            .await
            .unwrap();
        let mut out: Vec<String> = rows
            .iter()
            .map(|row| {
                $types
                    .iter()
                    .map(|(name, ty): &(String, String)| {
                        let name = name.as_str();
                        match ty.as_str() {
                            "bigint" => format!("{:?}", row.get::<Option<i64>, _>(name)),
                            "boolean" => format!("{:?}", $flag(row, name)),
                            "double precision" => format!("{:?}", row.get::<Option<f64>, _>(name)),
                            "bytea" => format!("{:?}", row.get::<Option<Vec<u8>>, _>(name)),
                            _ => format!("{:?}", row.get::<Option<String>, _>(name)),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        out.sort();
        out
    }};
}

async fn sqlite_rows(
    pool: &sqlx::SqlitePool,
    table: &str,
    types: &[(String, String)],
) -> Vec<String> {
    let flag =
        |row: &sqlx::sqlite::SqliteRow, name: &str| row.get::<Option<i64>, _>(name).map(|v| v != 0);
    rows_of!(pool, table, types, flag)
}

async fn postgres_rows(
    pool: &sqlx::PgPool,
    table: &str,
    types: &[(String, String)],
) -> Vec<String> {
    let flag = |row: &sqlx::postgres::PgRow, name: &str| row.get::<Option<bool>, _>(name);
    rows_of!(pool, table, types, flag)
}

/// The PostgreSQL columns of `table` and their types (jobs.seq aside).
async fn column_types(pool: &sqlx::PgPool, table: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1 AND NOT (table_name = 'jobs' AND column_name = 'seq')
          ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A cluster with database `db`, and a SQLite database in `dir` holding
/// [`POPULATE`]; None when PostgreSQL is missing (see `pg_support`).
async fn populated(
    test: &str,
    db: &str,
    dir: &Path,
) -> Option<(PgCluster, String, sqlx::SqlitePool)> {
    let pg = PgCluster::start(test)?;
    pg.create_database(db).await;
    let (from, sqlite) = sqlite_in(dir).await;
    sqlx::raw_sql(POPULATE).execute(&sqlite).await.unwrap();
    Some((pg, from, sqlite))
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrate_data_moves_every_row_once_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pg, from, sqlite)) =
        populated("migrate_data_moves_every_row_once", "moved", dir.path()).await
    else {
        return;
    };
    let live_keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_keys")
        .fetch_one(&sqlite)
        .await
        .unwrap();
    assert_eq!(
        live_keys, 2,
        "the SQLite triggers hold the live job's two keys"
    );

    let password = "hunter2-not-to-be-seen";
    let to = pg.url_with_password("moved", password);
    let out = cli_support::run(
        dir.path(),
        &[],
        &["-o", "json", "migrate-data", "--from", &from, "--to", &to],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains(password) && !stderr.contains(password),
        "{stdout}{stderr}"
    );
    assert!(stderr.contains("copied events (2 rows)"), "{stderr}");
    assert!(
        stderr.contains("secret key"),
        "the key must go with the data: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();

    let postgres = sqlx::PgPool::connect(&pg.url("moved")).await.unwrap();
    let mut total = 0;
    for entry in report["tables"].as_array().unwrap() {
        let table = entry["table"].as_str().unwrap();
        let types = column_types(&postgres, table).await;
        let there = sqlite_rows(&sqlite, table, &types).await;
        let here = postgres_rows(&postgres, table, &types).await;
        assert!(!there.is_empty(), "{table}: the fixture fills every table");
        assert_eq!(there, here, "{table}: every row, value for value");
        assert_eq!(entry["rows"].as_u64(), Some(there.len() as u64), "{table}");
        total += there.len() as u64;
    }
    assert_eq!(report["tables"].as_array().unwrap().len(), 16);
    assert_eq!(report["rows"].as_u64(), Some(total));

    // Arrival order: jobs.seq is the SQLite rowid.
    let rowids: Vec<(String, i64)> = sqlx::query_as("SELECT id, rowid FROM jobs ORDER BY id")
        .fetch_all(&sqlite)
        .await
        .unwrap();
    let seqs: Vec<(String, i64)> = sqlx::query_as("SELECT id, seq FROM jobs ORDER BY id")
        .fetch_all(&postgres)
        .await
        .unwrap();
    assert_eq!(rowids, seqs);

    // Identities go on after the largest id copied.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sources (code, secrets, created_at, updated_at) VALUES ('new', '[]', 0, 0) RETURNING id",
    )
    .fetch_one(&postgres)
    .await
    .unwrap();
    assert_eq!(id, 8);
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (id, connection_id, plugin, kind, state, max_attempts, run_at, created_at, updated_at, ordering_key)
         VALUES ('job_new', 5, 'grist', 'task', 'queued', 8, 0, 0, 0, '[\"project:43\"]') RETURNING seq",
    )
    .fetch_one(&postgres)
    .await
    .unwrap();
    assert_eq!(seq, rowids.iter().map(|(_, r)| r).max().unwrap() + 1);

    // The PostgreSQL triggers keep job_keys as SQLite's do: the new job holds
    // its key behind the live one, and a finished job lets go of its keys.
    let holders: Vec<(String, i64)> =
        sqlx::query_as("SELECT job_id, seq FROM job_keys WHERE key = 'project:43' ORDER BY seq")
            .fetch_all(&postgres)
            .await
            .unwrap();
    let holders: Vec<&str> = holders.iter().map(|(j, _)| j.as_str()).collect();
    assert_eq!(holders, ["job_live", "job_new"]);
    sqlx::query("UPDATE jobs SET state = 'succeeded' WHERE id = 'job_live'")
        .execute(&postgres)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_keys WHERE job_id = 'job_live'")
        .fetch_one(&postgres)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // A second move (the target named by RECOCO_MIGRATE_TO) is refused and
    // changes nothing.
    let before = count(&postgres, "events").await;
    let stderr = cli_support::fails(
        dir.path(),
        &[("RECOCO_MIGRATE_TO", &to)],
        &["migrate-data", "--from", &from],
    );
    assert!(stderr.contains("already holds data"), "{stderr}");
    assert!(!stderr.contains(password), "{stderr}");
    assert_eq!(count(&postgres, "events").await, before);
}

#[tokio::test]
async fn a_value_that_cannot_move_rolls_the_whole_copy_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pg, from, sqlite)) = populated(
        "a_value_that_cannot_move_rolls_the_whole_copy_back",
        "halfway",
        dir.path(),
    )
    .await
    else {
        return;
    };
    // SQLite keeps text in an INTEGER column; PostgreSQL must not get 0.
    sqlx::query("UPDATE attempts SET duration_ms = 'slow' WHERE id = 12")
        .execute(&sqlite)
        .await
        .unwrap();
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &["migrate-data", "--from", &from, "--to", &pg.url("halfway")],
    );
    assert!(
        stderr.contains("attempts") && stderr.contains("duration_ms") && stderr.contains("TEXT"),
        "the error names the table, the column and the value's type: {stderr}"
    );
    // Tables copied before attempts were rolled back with it.
    let postgres = sqlx::PgPool::connect(&pg.url("halfway")).await.unwrap();
    for table in recoco_sync::migrate_data::TABLES {
        assert_eq!(count(&postgres, table).await, 0, "{table}");
    }
}

/// The refusals that come before any PostgreSQL is reached.
#[tokio::test]
async fn migrate_data_refuses_a_missing_an_old_or_a_busy_source() {
    let dir = tempfile::tempdir().unwrap();
    let to = "postgres://postgres@127.0.0.1:1/none";

    let fails_with = |from: &str, to: &str| {
        cli_support::fails(
            dir.path(),
            &[],
            &["migrate-data", "--from", from, "--to", to],
        )
    };
    let missing = format!("sqlite://{}", dir.path().join("absent.db").display());
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &["migrate-data", "--from", &missing, "--to", to],
    );
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(
        !dir.path().join("absent.db").exists(),
        "nothing created by accident"
    );

    let (from, sqlite) = sqlite_in(dir.path()).await;
    sqlx::raw_sql(POPULATE).execute(&sqlite).await.unwrap();
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &["migrate-data", "--from", &from, "--to", "mysql://db/x"],
    );
    assert!(
        stderr.contains("--to must be a postgres:// URL"),
        "{stderr}"
    );

    // A replica's fresh heartbeat: the service is running on it.
    sqlx::query("UPDATE replicas SET stopped_at = NULL, last_seen_at = ?1")
        .bind(recoco_sync::ids::now_ms())
        .execute(&sqlite)
        .await
        .unwrap();
    let stderr = fails_with(&from, to);
    assert!(
        stderr.contains("the service is running on the source"),
        "{stderr}"
    );
    sqlx::query("UPDATE replicas SET stopped_at = last_seen_at")
        .execute(&sqlite)
        .await
        .unwrap();

    // A live lease: a job still runs on it.
    sqlx::query("UPDATE jobs SET state = 'running', lease_owner = 'h:1:w0', lease_until = ?1 WHERE id = 'job_live'")
        .bind(recoco_sync::ids::now_ms() + 60_000)
        .execute(&sqlite)
        .await
        .unwrap();
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &["migrate-data", "--from", &from, "--to", to],
    );
    assert!(stderr.contains("stop the service"), "{stderr}");

    // An older schema must be upgraded first.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&sqlite)
    .await
    .unwrap();
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &["migrate-data", "--from", &from, "--to", to],
    );
    assert!(stderr.contains("upgrade it first"), "{stderr}");
}

#[test]
fn an_unreachable_postgresql_is_named_without_its_password_and_other_schemes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &[
            "--database-url",
            "postgres://app:do-not-show@127.0.0.1:1/recoco",
            "migrate",
            "--create",
        ],
    );
    assert!(
        stderr.contains("cannot connect to postgres://app:***@127.0.0.1:1/recoco"),
        "{stderr}"
    );
    assert!(!stderr.contains("do-not-show"), "{stderr}");
    let stderr = cli_support::fails(
        dir.path(),
        &[],
        &[
            "--database-url",
            "mysql://app@127.0.0.1/recoco",
            "migrate",
            "--create",
        ],
    );
    assert!(
        stderr.contains("database_url must start with sqlite: or postgres:"),
        "{stderr}"
    );
}
