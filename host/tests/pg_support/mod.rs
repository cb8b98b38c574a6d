//! A PostgreSQL cluster of the test's own: `initdb` in a temp dir, `pg_ctl`
//! on a free port of 127.0.0.1 (no Unix socket, trust auth, fsync off unless
//! durable), stopped
//! when dropped. The binaries come from PATH or Debian's
//! `/usr/lib/postgresql/<version>/bin`; as root they run as the `postgres`
//! user (initdb refuses root). Without PostgreSQL a test says loudly that it
//! did not run, unless `RECOCO_SYNC_REQUIRE_POSTGRES=1` (set by `.ci/run`)
//! makes that a failure.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

impl PgCluster {
    /// A running cluster, or None (said on stderr) when PostgreSQL is not
    /// installed and not required.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(
            test,
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        )
    }

    /// A cluster that syncs its commits as a production server does, for
    /// benchmarks set against SQLite's durable commits.
    pub fn start_durable(test: &str) -> Option<Self> {
        Self::start_with(test, "")
    }

    fn start_with(test: &str, durability: &str) -> Option<Self> {
        let Some(bin) = find_bin() else {
            let required = std::env::var("RECOCO_SYNC_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: RECOCO_SYNC_REQUIRE_POSTGRES=1 but no initdb/pg_ctl found \
                 (PATH, /usr/lib/postgresql/*/bin): install Debian's postgresql"
            );
            eprintln!(
                "\n!!!!!!!! {test} DID NOT RUN: no PostgreSQL here (initdb, pg_ctl). \
                 Install Debian's postgresql; RECOCO_SYNC_REQUIRE_POSTGRES=1 makes this a failure. !!!!!!!!\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let owned = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                owned.success(),
                "cannot give the cluster's directory to postgres"
            );
        }
        let cluster = Self {
            dir,
            bin,
            as_postgres,
            port: free_port(),
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' {durability}",
            cluster.port
        );
        let log = format!("{}/server.log", cluster.dir.path().display());
        cluster.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        );
        Some(cluster)
    }

    /// The URL of database `db` (see [`Self::create_database`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of database `db` with a password, which trust auth ignores:
    /// for checking that a password never shows.
    pub fn url_with_password(&self, db: &str, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    pub async fn create_database(&self, db: &str) {
        let pool = sqlx::PgPool::connect(&self.url("postgres"))
            .await
            .expect("the cluster answers");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&pool)
            .await
            .expect("CREATE DATABASE");
        pool.close().await;
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        // runuser keeps the working directory, which postgres may not read.
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PgCluster {
    /// Stops the server (at once: its data is thrown away). Also what a
    /// cluster kept for a whole test process runs at exit.
    pub fn stop(&self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .current_dir(self.dir.path())
            .output();
    }
}

fn find_bin() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(paths) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&paths).find(|d| has(d)) {
            return Some(dir);
        }
    }
    // Debian keeps the server's programs out of PATH; the newest version wins.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
