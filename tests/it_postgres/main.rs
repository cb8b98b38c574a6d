//! The end-to-end modules whose subject is stored state (intake, the queue,
//! delivery, schedules, connectors' state, the admin surface over the
//! database), run again with every service on PostgreSQL (see
//! `recoco_sync_tests::postgres`). Left to `tests/it` alone: what is SQLite's
//! own (the WAL bound, the writer's flush seam, the file after a SIGKILL), the
//! browser and network-namespace tests, and what never reads the database
//! (sandbox limits, WIT versions, the plugin test kit).

#[path = "../it/admin.rs"]
mod admin;
#[path = "../it/alerts.rs"]
mod alerts;
#[path = "../it/console_api.rs"]
mod console_api;
#[path = "../it/convergence.rs"]
mod convergence;
#[path = "../it/convergence_config.rs"]
mod convergence_config;
#[path = "../it/convergence_lescommuns.rs"]
mod convergence_lescommuns;
#[path = "../it/filter.rs"]
mod filter;
#[path = "../it/forward.rs"]
mod forward;
#[path = "../it/grist.rs"]
mod grist;
#[path = "../it/host_imports.rs"]
mod host_imports;
#[path = "../it/hot_swap.rs"]
mod hot_swap;
#[path = "../it/intake.rs"]
mod intake;
#[path = "../it/lescommuns.rs"]
mod lescommuns;
#[path = "../it/managed.rs"]
mod managed;
#[path = "../it/queue.rs"]
mod queue;
#[path = "../it/queue_order.rs"]
#[allow(dead_code)] // a helper only the SQLite-only modules use
mod queue_order;
#[path = "../it/security.rs"]
mod security;

#[test]
fn this_binary_runs_on_postgresql() {
    assert!(recoco_sync_tests::postgres::on_postgres());
}
