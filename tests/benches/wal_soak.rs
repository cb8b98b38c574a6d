//! WAL soak: 60 s of webhooks as fast as 64 senders can send them, while the
//! workers forward every event (http-forward to an in-process target), with
//! the default `storage.wal_max_bytes` (64 MiB). Samples the `-wal` file every
//! 5 ms and fails if it ever reaches the limit. (The end-to-end test
//! `disk::the_wal_stays_under_its_limit_under_sustained_intake` is the short
//! version at 8 MiB.)
//!
//! Run: `cargo bench -p recoco-sync-tests --bench wal_soak` (`SOAK_SECS=N` to
//! change the duration).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt as _;
use recoco_sync::config::{Config, Overrides};
use recoco_sync::store::maintenance;
use recoco_sync::Service;
use recoco_sync_tests::service::{source_block, SECRET, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};

const SENDERS: usize = 64;

fn main() {
    let soak = Duration::from_secs(
        std::env::var("SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let dir = tempfile::tempdir().unwrap();
    let server_rt = recoco_sync_tests::runtime(2);
    let client_rt = recoco_sync_tests::runtime(2);
    let target = client_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let router = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}/hook")
    });
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("connectors")).unwrap();
    let text = format!(
        "database_url = \"sqlite://{d}/soak.db\"\nplugins_dir = \"{d}/connectors\"\nsecret_key_file = \"{d}/secret.key\"\n[intake]\nrate_limit_per_second = 0.0\n{}\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = {target:?}\nsecret = \"soak-secret-1\"\n",
        source_block(None),
    );
    let config = Config::from_parts(&text, &[], &Overrides::default()).unwrap();
    let limit = config.storage.wal_max_bytes;
    let database = config.sqlite_path().unwrap();
    let (url, pool) = server_rt.block_on(async {
        let service = Service::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let pool = service.pool.clone();
        tokio::spawn(service.serve(listener));
        (format!("http://{addr}/api/webhook/{SOURCE}"), pool)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, database) = (stop.clone(), database.clone());
        std::thread::spawn(move || {
            let (mut max, mut truncations, mut last, mut traffic) = (0u64, 0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let size = maintenance::wal_size(&database);
                max = max.max(size);
                truncations += u64::from(size < last);
                traffic += size.saturating_sub(last);
                last = size;
                std::thread::sleep(Duration::from_millis(5));
            }
            (max, truncations, traffic)
        })
    };
    let body = envelope(
        "projects.Project",
        "update",
        serde_json::json!({"id": 1312, "description": "x".repeat(1500)}),
    );
    let signed = Arc::new(headers(&body, &[SECRET], now_secs()));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    println!(
        "WAL soak: {SENDERS} senders for {soak:?}, workers forwarding, storage.wal_max_bytes = {} MiB",
        limit / (1024 * 1024)
    );
    client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (client, url, body, signed, sent) = (
                    client.clone(),
                    url.clone(),
                    body.clone(),
                    signed.clone(),
                    sent.clone(),
                );
                tokio::spawn(async move {
                    while started.elapsed() < soak {
                        let mut request = client.post(&url).body(body.clone());
                        for (k, v) in signed.iter() {
                            request = request.header(k, v);
                        }
                        let response = request.send().await.unwrap();
                        assert_eq!(response.status(), 200);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (max, truncations, traffic) = sampler.join().unwrap();
    let delivered: i64 = server_rt.block_on(async {
        recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    let sent = sent.load(Ordering::Relaxed);
    let db_size = std::fs::metadata(&database).map_or(0, |m| m.len());
    println!(
        "  {sent} webhooks in {elapsed:.1} s ({:.0}/s), {delivered} delivered meanwhile",
        sent as f64 / elapsed
    );
    println!(
        "  WAL: at most {:.1} MiB (limit {} MiB, ratio {:.2}), truncated {truncations} times, >= {} MiB written through it; database {} MiB",
        max as f64 / (1024.0 * 1024.0),
        limit / (1024 * 1024),
        max as f64 / limit as f64,
        traffic / (1024 * 1024),
        db_size / (1024 * 1024)
    );
    assert!(max < limit, "the WAL reached {max} bytes (limit {limit})");
}
