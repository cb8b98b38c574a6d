//! The end-to-end suite on PostgreSQL: the `it_postgres` test binary runs
//! modules of `tests/it` with every [`crate::service::TestService`] on a
//! database of its own in one cluster started for the process (the same
//! `initdb` + `pg_ctl` on 127.0.0.1 as `host/tests`), stopped at exit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

#[path = "../../host/tests/pg_support/mod.rs"]
pub mod cluster;

pub use cluster::PgCluster;

/// Whether this process is the PostgreSQL run of the suite (the `it_postgres`
/// binary: the test modules are shared, the binary decides).
pub fn on_postgres() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .is_some_and(|name| name.starts_with("it_postgres"))
    })
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        cluster.stop();
    }
}

/// The process's cluster, started on first use. Without PostgreSQL (and
/// without `RECOCO_SYNC_REQUIRE_POSTGRES=1`, which makes it a failure) the
/// whole binary says loudly that it did not run and exits with success, as
/// the other tests that need PostgreSQL do.
fn cluster() -> &'static PgCluster {
    CLUSTER.get_or_init(|| {
        let Some(cluster) = PgCluster::start("the PostgreSQL end-to-end suite (it_postgres)") else {
            // Straight to the descriptor: the test harness captures eprintln!.
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(
                b"\n!!!!!!!! it_postgres DID NOT RUN: no PostgreSQL here (initdb, pg_ctl). \
                  Install Debian's postgresql; RECOCO_SYNC_REQUIRE_POSTGRES=1 makes this a failure. !!!!!!!!\n",
            );
            std::process::exit(0);
        };
        // SAFETY: registers a plain function, run once when the process exits.
        unsafe { libc::atexit(stop_at_exit) };
        cluster
    })
}

/// The URL of a new, empty database for one test service.
pub async fn new_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = tokio::task::spawn_blocking(cluster)
        .await
        .expect("cluster starts");
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    cluster.create_database(&name).await;
    cluster.url(&name)
}
