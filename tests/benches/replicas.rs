//! Replicas on PostgreSQL, in one run: intake and end-to-end delivery
//! (signed webhooks in, http-forward POSTs out to a fast local target) with
//! 1, 2 and 3 replicas sharing one local PostgreSQL database, as ratios
//! against one replica and against SQLite (one replica, its embedded default).
//!
//! A replica here is a whole service (its pool, intake writer, queue, workers
//! and HTTP listener) started in this process on the shared database; the
//! senders spread their webhooks over the replicas' listeners. PostgreSQL
//! runs durable (fsync and synchronous commit on, as SQLite's intake is).
//! This machine's cores are shared by every replica, the database and the
//! load generator: the figures say what sharing one database costs and what
//! the extra replicas' queues and writers add, not what more machines give.
//!
//! Needs Debian's `postgresql`. Run: `cargo bench -p recoco-sync-tests --bench replicas`
//! (`BENCH_EVENTS` webhooks per setup, 6000 by default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use recoco_sync::config::{Config, Overrides};
use recoco_sync::Service;
use recoco_sync_tests::nginx::Nginx;
use recoco_sync_tests::postgres::PgCluster;
use recoco_sync_tests::service::{source_block, SOURCE};
use recoco_sync_tests::succeeded;
use recoco_sync_tests::webhook::{envelope, post_signed as post};

const EVENTS: usize = 6000;
const SENDERS: usize = 48;
const PROJECTS: usize = 1000;
/// Longest wait for a backlog to drain before reporting what was delivered.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

struct Figures {
    intake: f64,
    end_to_end: f64,
    delivered: u64,
    sent: u64,
}

/// `replicas` services on `database_url`; returns their webhook URLs and a pool.
async fn start(
    dir: &std::path::Path,
    database_url: &str,
    replicas: usize,
    target: &str,
) -> (
    Vec<String>,
    recoco_sync::store::Pool,
    Vec<tokio_util::sync::CancellationToken>,
) {
    let d = dir.display();
    let text = format!(
        "database_url = {database_url:?}\nplugins_dir = \"{d}/connectors\"\nsecret_key_file = \"{d}/secret.key\"\n\
         [intake]\nrate_limit_per_second = 0.0\n{}\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = {target:?}\nsecret = \"bench-secret-1\"\n",
        source_block(None),
    );
    std::fs::create_dir_all(dir.join("connectors")).unwrap();
    let mut urls = Vec::new();
    let mut stops = Vec::new();
    let mut pool = None;
    for _ in 0..replicas {
        let config = Config::from_parts(&text, &[], &Overrides::default()).unwrap();
        let service = Service::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        pool.get_or_insert_with(|| service.pool.clone());
        stops.push(service.shutdown.clone());
        tokio::spawn(service.serve(listener));
        urls.push(format!("http://{addr}/api/webhook/{SOURCE}"));
    }
    (urls, pool.unwrap(), stops)
}

fn run(label: &str, database_url: &str, replicas: usize, target: &str, events: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let server_rt = recoco_sync_tests::runtime(2);
    let client_rt = recoco_sync_tests::runtime(2);
    let (urls, pool, stops) = server_rt.block_on(start(dir.path(), database_url, replicas, target));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let body = |n: usize| {
        envelope(
            "projects.Project",
            "update",
            serde_json::json!({"id": 1000 + n % PROJECTS, "name": "Halle du Vieux-Bourg", "version": n, "description": "x".repeat(600)}),
        )
    };
    // Warm-up: connections, compiled connector, pages.
    let warm = 100u64;
    client_rt.block_on(async {
        for n in 0..warm as usize {
            post(&client, &urls[n % urls.len()], &body(n)).await;
        }
    });
    while server_rt.block_on(succeeded(&pool)) < warm {
        std::thread::sleep(Duration::from_millis(50));
    }
    let per_sender = events / SENDERS;
    let sent = (per_sender * SENDERS) as u64;
    let started = Instant::now();
    client_rt.block_on(async {
        let tasks: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let (client, url) = (client.clone(), urls[sender % urls.len()].clone());
                tokio::spawn(async move {
                    for i in 0..per_sender {
                        post(&client, &url, &body(warm as usize + i * SENDERS + sender)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let intake_secs = started.elapsed().as_secs_f64();
    let delivered = loop {
        let done = server_rt.block_on(succeeded(&pool)) - warm;
        if done >= sent || started.elapsed() > DRAIN_LIMIT {
            break done;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let figures = Figures {
        intake: sent as f64 / intake_secs,
        end_to_end: delivered as f64 / started.elapsed().as_secs_f64(),
        delivered,
        sent,
    };
    println!(
        "  {label:<24} intake {:>6.0} events/s   delivered end to end {:>6.0} events/s   ({}/{} delivered)",
        figures.intake, figures.end_to_end, figures.delivered, figures.sent
    );
    for stop in stops {
        stop.cancel();
    }
    server_rt.shutdown_timeout(Duration::from_secs(5));
    figures
}

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(EVENTS);
    let scratch = tempfile::tempdir().unwrap();
    let target_rt = recoco_sync_tests::runtime(1);
    let nginx = Nginx::start(scratch.path());
    let (target, target_name) = match &nginx {
        Some(n) => (n.url.clone(), "nginx-light".to_string()),
        None => (
            target_rt.block_on(async {
                let ok = axum::Router::new().fallback(|| async { "ok" });
                format!("{}/hook", recoco_sync_tests::fakes::serve(ok).await)
            }),
            "in-process server (nginx not installed)".to_string(),
        ),
    };
    let Some(pg) = PgCluster::start_durable("the replicas benchmark") else {
        eprintln!("the replicas benchmark needs PostgreSQL (apt-get install postgresql)");
        std::process::exit(1);
    };
    println!(
        "replicas benchmark: http-forward to {target_name}, {events} webhooks per setup, {SENDERS} senders spread over the replicas"
    );
    let sqlite_url = format!("sqlite://{}/bench.db", scratch.path().display());
    let sqlite = run("SQLite, 1 replica", &sqlite_url, 1, &target, events);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut on_pg = Vec::new();
    for replicas in 1..=3 {
        let db = format!("bench{replicas}");
        rt.block_on(pg.create_database(&db));
        let label = format!(
            "PostgreSQL, {replicas} replica{}",
            if replicas > 1 { "s" } else { "" }
        );
        on_pg.push(run(&label, &pg.url(&db), replicas, &target, events));
    }
    println!("  ratios (intake, delivery):");
    for (n, f) in on_pg.iter().enumerate() {
        println!(
            "    PostgreSQL {} replica{}: {:.2}, {:.2} of one PostgreSQL replica; {:.2}, {:.2} of SQLite",
            n + 1,
            if n > 0 { "s" } else { " " },
            f.intake / on_pg[0].intake,
            f.end_to_end / on_pg[0].end_to_end,
            f.intake / sqlite.intake,
            f.end_to_end / sqlite.end_to_end,
        );
    }
    drop(nginx);
}
