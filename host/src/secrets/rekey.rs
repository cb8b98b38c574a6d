//! The master key's life cycle: checked against the database at start (a wrong
//! key is refused before anything is sealed under it), and changed by
//! `recoco-sync rekey`, which re-seals every sealed value in one transaction.
//!
//! A sealed value is any TEXT cell starting with `sealed:v1:`, in any table, so a
//! table added later is covered without changing this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rand::RngCore as _;

use super::{write_private, Sealer, SEALED_PREFIX};
use crate::store::sql::{self, Tx, Value};
use crate::store::{Engine, Pool};

/// What the check row holds, sealed.
const CHECK_TEXT: &str = "recoco-sync secret key check v1";

/// Where the key comes from, as configured.
pub struct KeySource<'a> {
    /// `secret_key` (hex), when set; wins over the file.
    pub hex_key: Option<&'a str>,
    pub key_file: &'a Path,
}

impl KeySource<'_> {
    fn describe(&self) -> String {
        match self.hex_key {
            Some(_) => "the configured secret_key".into(),
            None => format!("the key in {}", self.key_file.display()),
        }
    }
}

/// A key file being replaced: `secret.key.new` until the database is re-sealed.
fn pending_file(key_file: &Path) -> PathBuf {
    let mut s = key_file.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// Loads the master key and checks it opens this database's secrets. Finishes a
/// rekey interrupted between its commit and the key file's rename.
pub async fn open_checked(pool: &Pool, source: &KeySource<'_>) -> anyhow::Result<Sealer> {
    let sealer = Sealer::load(source.hex_key, source.key_file)?;
    let pending = pending_file(source.key_file);
    match check(pool, &sealer).await? {
        Check::Matches => {
            if source.hex_key.is_none() && pending.exists() {
                // A rekey that did not commit: the old key is still the one.
                std::fs::remove_file(&pending).ok();
            }
            Ok(sealer)
        }
        Check::Wrong => {
            if source.hex_key.is_none() && pending.exists() {
                let next = Sealer::load(None, &pending)?;
                if matches!(check(pool, &next).await?, Check::Matches) {
                    std::fs::rename(&pending, source.key_file)
                        .with_context(|| format!("cannot move {} into place", pending.display()))?;
                    tracing::warn!(path = %source.key_file.display(), "finished an interrupted rekey: the new key file is now in place");
                    return Ok(next);
                }
            }
            bail!(
                "{} does not decrypt the secrets stored in this database (wrong secret_key or \
                 secret_key_file?). Refusing to start: nothing would be readable and new secrets \
                 would be sealed under a different key. Restore the key this database was sealed \
                 with.",
                source.describe()
            )
        }
    }
}

enum Check {
    Matches,
    Wrong,
}

/// Compares `sealer` with the check row; a database without one (new, or made
/// before the check existed) is checked against every sealed value, then given one.
async fn check(pool: &Pool, sealer: &Sealer) -> anyhow::Result<Check> {
    let stored: Option<String> =
        sql::query_scalar("SELECT sealed FROM secret_key_check WHERE id = 1")
            .fetch_optional(pool)
            .await?;
    if let Some(sealed) = stored {
        return Ok(match sealer.open(&sealed) {
            Ok(text) if text == CHECK_TEXT => Check::Matches,
            _ => Check::Wrong,
        });
    }
    let mut tx = pool.begin().await?;
    for cell in sealed_cells(&mut tx).await? {
        if sealer.open(&cell.value).is_err() {
            return Ok(Check::Wrong);
        }
    }
    sql::query("INSERT INTO secret_key_check (id, sealed) VALUES (1, ?) ON CONFLICT DO NOTHING")
        .bind(sealer.seal(CHECK_TEXT))
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Check::Matches)
}

struct Cell {
    table: String,
    column: String,
    /// The row's address: its rowid on SQLite, its ctid on PostgreSQL.
    row: Value,
    value: String,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Every sealed TEXT cell of every table, each row locked until `tx` ends.
/// SQLite cells are addressed by rowid, so `WITHOUT ROWID` tables (intake
/// dedup keys, job ordering keys: indexes the host keeps, never secrets) are
/// not searched.
async fn sealed_cells(tx: &mut Tx) -> anyhow::Result<Vec<Cell>> {
    let engine = tx.engine();
    let tables: Vec<String> = match engine {
        Engine::Sqlite => sql::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'
             AND upper(sql) NOT LIKE '%WITHOUT ROWID%' ORDER BY name",
        ),
        Engine::Postgres => sql::query_scalar(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
               AND table_name <> '_sqlx_migrations' ORDER BY table_name",
        ),
    }
    .fetch_all(&mut *tx)
    .await?;
    let mut cells = Vec::new();
    for table in tables {
        let columns: Vec<String> = match engine {
            Engine::Sqlite => sql::query_scalar("SELECT name FROM pragma_table_info(?)"),
            Engine::Postgres => sql::query_scalar(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ? AND data_type = 'text'",
            ),
        }
        .bind(&table)
        .fetch_all(&mut *tx)
        .await?;
        for column in columns {
            let (c, t, n) = (quote(&column), quote(&table), SEALED_PREFIX.len());
            let select = match engine {
                Engine::Sqlite => format!(
                    "SELECT rowid AS rid, {c} AS v FROM {t} WHERE typeof({c}) = 'text' AND substr({c}, 1, {n}) = ?"
                ),
                Engine::Postgres => format!(
                    "SELECT CAST(ctid AS TEXT) AS rid, {c} AS v FROM {t} WHERE substr({c}, 1, {n}) = ? FOR UPDATE"
                ),
            };
            let rows = sql::query(select)
                .bind(SEALED_PREFIX)
                .fetch_all(&mut *tx)
                .await
                .with_context(|| format!("cannot read {table}.{column}"))?;
            cells.extend(rows.into_iter().map(|r| Cell {
                table: table.clone(),
                column: column.clone(),
                row: r.get("rid"),
                value: r.get("v"),
            }));
        }
    }
    Ok(cells)
}

/// Re-seals every sealed value from `old` to `new` in one transaction; returns
/// how many. Nothing changes when any value does not open.
pub async fn reseal(pool: &Pool, old: &Sealer, new: &Sealer) -> anyhow::Result<usize> {
    // The write lock first (see Pool::begin), so no value is sealed under the
    // old key by another process between the read and the commit.
    let mut tx = pool.begin().await?;
    let result = async {
        let cells = sealed_cells(&mut tx).await?;
        // One UPDATE per row: a PostgreSQL row moves (new ctid) when updated.
        let mut rows: BTreeMap<(String, String), Vec<(&str, String)>> = BTreeMap::new();
        for cell in &cells {
            let plain = old.open(&cell.value).with_context(|| {
                format!(
                    "a value in {}.{} (row {}) does not open with the current key",
                    cell.table,
                    cell.column,
                    shown(&cell.row)
                )
            })?;
            rows.entry((cell.table.clone(), shown(&cell.row)))
                .or_default()
                .push((cell.column.as_str(), new.seal(&plain)));
        }
        let address = match tx.engine() {
            Engine::Sqlite => "rowid = ?",
            Engine::Postgres => "ctid = CAST(? AS TID)",
        };
        for cell in &cells {
            let Some(columns) = rows.remove(&(cell.table.clone(), shown(&cell.row))) else {
                continue;
            };
            let set: Vec<String> = columns
                .iter()
                .map(|(c, _)| format!("{} = ?", quote(c)))
                .collect();
            let mut update = sql::query(format!(
                "UPDATE {} SET {} WHERE {address}",
                quote(&cell.table),
                set.join(", ")
            ));
            for (_, sealed) in columns {
                update = update.bind(sealed);
            }
            update.bind(cell.row.clone()).execute(&mut tx).await?;
        }
        if !cells.iter().any(|c| c.table == "secret_key_check") {
            sql::query(
                "INSERT INTO secret_key_check (id, sealed) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed",
            )
            .bind(new.seal(CHECK_TEXT))
            .execute(&mut tx)
            .await?;
        }
        anyhow::Ok(cells.len())
    }
    .await;
    match result {
        Ok(n) => {
            tx.commit().await?;
            Ok(n)
        }
        Err(err) => {
            tx.rollback().await.ok();
            Err(err)
        }
    }
}

fn shown(row: &Value) -> String {
    match row {
        Value::Int(i) => i.to_string(),
        Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// What `recoco-sync rekey` did.
pub struct Rekeyed {
    pub values: usize,
    /// Set when the key was generated here and written to the key file.
    pub key_file: Option<PathBuf>,
}

/// `recoco-sync rekey`: a new master key (`new_hex`, else generated), every
/// value re-sealed under it. With a key file, the new key is written beside it
/// first (`.new`, 0600) and moved into place after the commit, so an
/// interruption at any point leaves a key that opens the database.
pub async fn rekey(
    pool: &Pool,
    source: &KeySource<'_>,
    new_hex: Option<&str>,
) -> anyhow::Result<Rekeyed> {
    let old = open_checked(pool, source).await?;
    if source.hex_key.is_some() {
        let Some(new_hex) = new_hex else {
            bail!("secret_key is set in the configuration: give the new key with --new-key (or RECOCO_NEW_SECRET_KEY), then set secret_key to it");
        };
        let new = Sealer::load(Some(new_hex), Path::new(""))?;
        let values = reseal(pool, &old, &new).await?;
        return Ok(Rekeyed {
            values,
            key_file: None,
        });
    }
    let new_hex = match new_hex {
        Some(hex) => hex.trim().to_string(),
        None => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            hex::encode(key)
        }
    };
    let new = Sealer::load(Some(&new_hex), Path::new(""))?;
    let pending = pending_file(source.key_file);
    std::fs::remove_file(&pending).ok();
    write_private(&pending, &new_hex)?;
    let values = match reseal(pool, &old, &new).await {
        Ok(n) => n,
        Err(err) => {
            std::fs::remove_file(&pending).ok();
            return Err(err);
        }
    };
    std::fs::rename(&pending, source.key_file)
        .with_context(|| format!("cannot move {} into place", pending.display()))?;
    Ok(Rekeyed {
        values,
        key_file: Some(source.key_file.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool(dir: &Path) -> Pool {
        crate::store::open(&format!("sqlite://{}", dir.join("t.db").display()))
            .await
            .unwrap()
    }

    async fn seal_into_sources(pool: &Pool, sealer: &Sealer) {
        sql::query(
            "INSERT INTO sources (code, secrets, api_password, created_at, updated_at) VALUES ('a', ?, ?, 0, 0)",
        )
        .bind(sealer.seal("[\"hook-secret-value\"]"))
        .bind(sealer.seal("api-password-value"))
        .execute(pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_at_start_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let file = dir.path().join("secret.key");
        let right = KeySource {
            hex_key: None,
            key_file: &file,
        };
        let sealer = open_checked(&pool, &right).await.unwrap();
        seal_into_sources(&pool, &sealer).await;
        let wrong_hex = hex::encode([9u8; 32]);
        let wrong = KeySource {
            hex_key: Some(&wrong_hex),
            key_file: &file,
        };
        let err = match open_checked(&pool, &wrong).await {
            Ok(_) => panic!("a wrong key was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("does not decrypt") && err.contains("secret_key"),
            "{err}"
        );
        assert!(!err.contains(&wrong_hex));
        // A database from before the check row: checked against its sealed values.
        sql::query("DELETE FROM secret_key_check")
            .execute(&pool)
            .await
            .unwrap();
        assert!(open_checked(&pool, &wrong).await.is_err());
        open_checked(&pool, &right).await.unwrap();
    }

    #[tokio::test]
    async fn rekey_reseals_every_value_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let file = dir.path().join("secret.key");
        let source = KeySource {
            hex_key: None,
            key_file: &file,
        };
        let old = open_checked(&pool, &source).await.unwrap();
        seal_into_sources(&pool, &old).await;
        let old_file = std::fs::read_to_string(&file).unwrap();
        let done = rekey(&pool, &source, None).await.unwrap();
        assert_eq!(done.values, 3, "two source values and the check row");
        let new_file = std::fs::read_to_string(&file).unwrap();
        assert_ne!(old_file, new_file);
        assert!(!pending_file(&file).exists());
        let new = open_checked(&pool, &source).await.unwrap();
        let row = sql::query("SELECT secrets, api_password FROM sources")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            new.open(row.get("api_password")).unwrap(),
            "api-password-value"
        );
        assert!(old.open(row.get("secrets")).is_err());
        // A value that does not open aborts everything: nothing is half re-sealed.
        sql::query("UPDATE sources SET api_password = ?")
            .bind(Sealer::from_key(&[1; 32]).seal("foreign"))
            .execute(&pool)
            .await
            .unwrap();
        sql::query("DELETE FROM secret_key_check")
            .execute(&pool)
            .await
            .unwrap();
        let before: String = sql::query_scalar("SELECT secrets FROM sources")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(reseal(&pool, &new, &Sealer::from_key(&[2; 32]))
            .await
            .is_err());
        let after: String = sql::query_scalar("SELECT secrets FROM sources")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(before, after);
    }

    #[tokio::test]
    async fn an_interrupted_rekey_is_finished_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let file = dir.path().join("secret.key");
        let source = KeySource {
            hex_key: None,
            key_file: &file,
        };
        let old = open_checked(&pool, &source).await.unwrap();
        seal_into_sources(&pool, &old).await;
        // Committed, but the process stopped before the rename.
        let new_hex = hex::encode([5u8; 32]);
        write_private(&pending_file(&file), &new_hex).unwrap();
        reseal(&pool, &old, &Sealer::from_key(&[5; 32]))
            .await
            .unwrap();
        let sealer = open_checked(&pool, &source).await.unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), new_hex);
        let row = sql::query("SELECT api_password FROM sources")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            sealer.open(row.get("api_password")).unwrap(),
            "api-password-value"
        );
    }
}
