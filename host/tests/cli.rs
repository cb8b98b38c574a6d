//! The operator commands of issue 10, run as the real binary on a real
//! database: `keys create|list|revoke`, `rekey`, the refusal of a wrong master
//! key, and private files.

use std::path::Path;
use std::process::{Command, Output};

use sha2::Digest as _;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `recoco-sync ARGS` on this environment's database (in `data/`, which
    /// `migrate --create` creates), with `--set` for the key file.
    fn run(&self, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
        let db = format!("sqlite://{}", self.data().join("rs.db").display());
        let key_file = format!(
            "secret_key_file={}",
            self.data().join("secret.key").display()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_recoco-sync"));
        cmd.arg("--database-url")
            .arg(&db)
            .arg("--set")
            .arg(&key_file);
        cmd.args(args).env("RUST_LOG", "warn");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(&[], args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, extra_env: &[(&str, &str)], args: &[&str]) -> String {
        let out = self.run(extra_env, args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[test]
fn keys_are_created_once_listed_without_the_key_and_revoked() {
    let env = Env::new();
    env.ok(&["migrate", "--create"]);
    let key = env
        .ok(&["keys", "create", "--name", "ops", "--scope", "admin"])
        .trim()
        .to_string();
    assert!(key.starts_with("rsk_") && key.len() == 4 + 43, "{key}");
    env.ok(&["keys", "create", "--name", "dashboard", "--scope", "read"]);
    let again = env.fails(
        &[],
        &["keys", "create", "--name", "ops", "--scope", "admin"],
    );
    assert!(again.contains("already exists"), "{again}");
    let bad = env.fails(&[], &["keys", "create", "--name", "x", "--scope", "root"]);
    assert!(
        bad.contains("invalid value 'root'") && bad.contains("[possible values: read, admin]"),
        "{bad}"
    );
    // Only the SHA-256 is stored.
    let db = std::fs::read(env.data().join("rs.db")).unwrap();
    let wal = std::fs::read(env.data().join("rs.db-wal")).unwrap_or_default();
    let needle = key.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the key is stored in clear"
        );
    }
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    assert!(
        db.windows(64).any(|w| w == hash.as_bytes())
            || wal.windows(64).any(|w| w == hash.as_bytes())
    );
    let list = env.ok(&["keys", "list"]);
    assert!(!list.contains(&key));
    assert!(
        list.starts_with("NAME ") && list.lines().next().unwrap().contains("LAST USED"),
        "{list}"
    );
    let ops = list
        .lines()
        .find(|l| l.starts_with("ops "))
        .expect("listed");
    assert!(
        ops.contains("admin") && ops.contains("never") && ops.contains("active"),
        "{ops}"
    );
    assert!(list
        .lines()
        .any(|l| l.starts_with("dashboard ") && l.contains("read")));
    env.ok(&["keys", "revoke", "ops"]);
    let list = env.ok(&["keys", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("ops ") && l.contains("revoked")),
        "{list}"
    );
    assert!(env
        .fails(&[], &["keys", "revoke", "ops"])
        .contains("no active key"));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn the_data_directory_database_wal_and_key_are_private() {
    let env = Env::new();
    env.ok(&["migrate", "--create"]);
    env.ok(&["keys", "create", "--name", "a"]);
    assert_eq!(mode(&env.data()), 0o700);
    for file in ["rs.db", "secret.key"] {
        assert_eq!(mode(&env.data().join(file)), 0o600, "{file}");
    }
    for file in ["rs.db-wal", "rs.db-shm"] {
        let path = env.data().join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
}

const SOURCE: &str = "[[sources]]\ncode = \"portal\"\nsecrets = [\"webhook-secret-value-0001\"]\napi_password = \"api-password-value\"\n";

#[test]
fn rekey_reseals_everything_and_a_wrong_key_is_refused_at_start() {
    let env = Env::new();
    let config = env.dir.path().join("rs.toml");
    std::fs::write(&config, SOURCE).unwrap();
    let cfg = config.to_str().unwrap();
    env.ok(&["--config", cfg, "migrate", "--create"]);
    let old_key = std::fs::read_to_string(env.data().join("secret.key")).unwrap();
    let out = env.ok(&["rekey"]);
    assert!(out.contains("re-encrypted"), "{out}");
    let new_key = std::fs::read_to_string(env.data().join("secret.key")).unwrap();
    assert_ne!(old_key, new_key);
    assert!(!env.data().join("secret.key.new").exists());
    // The service's view still opens (status lists the source and its secret count).
    let status = env.ok(&["--config", cfg, "status", "--json"]);
    assert!(
        status.contains("\"portal\"") && status.contains("\"secrets\": 1"),
        "{status}"
    );
    assert!(!status.contains("webhook-secret-value-0001"));
    // The old key is now a wrong key: refused at start, clearly, without the key.
    let err = env.fails(
        &[("RECOCO_SYNC_SECRET_KEY", old_key.trim())],
        &["--config", cfg, "migrate"],
    );
    assert!(
        err.contains("does not decrypt the secrets stored in this database"),
        "{err}"
    );
    assert!(!err.contains(old_key.trim()));
    // A given new key (RECOCO_NEW_SECRET_KEY) with an inline secret_key.
    let given = "ab".repeat(32);
    let out = env.run(
        &[
            ("RECOCO_SYNC_SECRET_KEY", new_key.trim()),
            ("RECOCO_NEW_SECRET_KEY", &given),
        ],
        &["rekey"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("set secret_key"));
    let status = env.run(
        &[("RECOCO_SYNC_SECRET_KEY", &given)],
        &["--config", cfg, "status", "-o", "json"],
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}
