//! Support for the end-to-end tests and benchmarks: the real service started
//! in-process on 127.0.0.1 with a SQLite file in a temporary directory
//! ([`service`]), the components built for the tests ([`components`]), Recoco's
//! signing ([`webhook`]), and small real HTTP servers that stand in for third
//! parties ([`fakes`]).

pub mod components;
pub mod fakes;
pub mod logs;
pub mod nginx;
pub mod postgres;
pub mod service;
pub mod webhook;

use std::future::Future;
use std::time::Duration;

/// A multi-thread tokio runtime of `threads` workers (the benchmarks run
/// the service, the senders and the target on runtimes of their own).
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    named_runtime("tokio-rt-worker", threads)
}

/// The same, its threads named `name` (so `top -H` or `perf` tells the
/// service's threads from the load generator's).
pub fn named_runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Jobs that succeeded so far (the benchmarks' delivered count).
pub async fn succeeded(pool: &recoco_sync::store::Pool) -> u64 {
    recoco_sync::store::sql::query_scalar::<i64>(
        "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'",
    )
    .fetch_one(pool)
    .await
    .expect("count succeeded jobs") as u64
}

/// Polls `check` until it yields `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Logs to the test output once (`RUST_LOG` picks the level).
/// Also keeps the lines in memory for [`logs::containing`].
pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,recoco_sync=info,connector=info")
            }),
        )
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs::Capture),
        )
        .try_init();
}
