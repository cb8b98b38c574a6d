//! Intake throughput: signed webhooks stored per second, against the same
//! server answering without storing (same process, same run), as a ratio.
//!
//! Both servers verify the signature, parse the envelope and route it to one
//! connection; one commits the event and its job to SQLite and flushes the WAL
//! to disk before answering (group commit), the other answers at once. Workers
//! are off so only intake is measured. Rounds alternate to spread noise.
//!
//! A stored webhook waits for at least one flush to disk, so with `c` senders
//! the stored rate cannot exceed `c / fsync latency`; the benchmark measures
//! the disk's fsync latency and sweeps several sender counts to show it.
//!
//! Run: `cargo bench -p recoco-sync-tests --bench intake`

use std::time::{Duration, Instant};

use recoco_sync::config::{Config, Overrides};
use recoco_sync::intake::EventSink;
use recoco_sync::Service;
use recoco_sync_tests::service::{source_block, SECRET, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};

const REQUESTS_PER_ROUND: usize = 6_144;
/// Concurrent senders of each measurement; the last one is the headline.
/// 16 is what Recoco's few senders look like.
const SENDERS: [usize; 4] = [16, 32, 128, 256];
const ROUNDS: usize = 3;

async fn serve(service: &Service, sink: EventSink) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/webhook/{SOURCE}",
        listener.local_addr().unwrap()
    );
    let router = service.router(sink);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    url
}

/// A body and its signed headers.
type Signed = (bytes::Bytes, Vec<(String, String)>);

/// Sends `REQUESTS_PER_ROUND` signed webhooks from `senders` concurrent
/// clients; returns requests per second. Every request is a distinct event (its
/// own body and signature, as Recoco sends them): intake refuses exact
/// duplicates, so repeating one request would measure the duplicate path.
/// Bodies are signed before the clock starts.
async fn round(client: &reqwest::Client, url: &str, senders: usize) -> f64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = now_secs();
    let per_sender = REQUESTS_PER_ROUND / senders;
    let prepared: Vec<Vec<Signed>> = (0..senders)
        .map(|_| {
            (0..per_sender)
                .map(|_| {
                    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let body = envelope(
                        "projects.Project",
                        "update",
                        serde_json::json!({"id": 1312, "seq": seq, "name": "Halle du Vieux-Bourg", "description": "x".repeat(600)}),
                    );
                    let signed = headers(&body, &[SECRET], now);
                    (bytes::Bytes::from(body), signed)
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for requests in prepared {
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            for (body, signed) in requests {
                let mut request = client.post(&url).body(body);
                for (k, v) in signed.iter() {
                    request = request.header(k, v);
                }
                let response = request.send().await.expect("request");
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (per_sender * senders) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median time of `fdatasync` after a 4 KiB append, in the database's directory.
fn fsync_latency(dir: &std::path::Path) -> Duration {
    use std::io::Write as _;
    let mut file = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            file.write_all(&[0u8; 4096]).unwrap();
            let started = Instant::now();
            file.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server_rt = recoco_sync_tests::runtime(2);
    let client_rt = recoco_sync_tests::runtime(2);
    let text = format!(
        "database_url = \"sqlite://{d}/bench.db\"\nplugins_dir = \"{d}/connectors\"\nsecret_key_file = \"{d}/secret.key\"\n\
         [intake]\nrate_limit_per_second = 1000000.0\nrate_limit_burst = 1000000\n\
         [queue]\nworkers = 0\n{}\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"bench-secret-1\"\n",
        source_block(None),
        d = dir.path().display(),
    );
    let config = Config::from_parts(&text, &[], &Overrides::default()).unwrap();
    let (stored_url, discard_url, pool) = server_rt.block_on(async {
        let service = Service::start(config).await.unwrap();
        // The background loops (workers are off): WAL checkpoints, catalog refresh.
        std::mem::forget(service.spawn_background().unwrap());
        let stored = serve(&service, service.event_writer().unwrap()).await;
        let discard = serve(&service, EventSink::Discard).await;
        (stored, discard, service.pool.clone())
    });
    let fsync = fsync_latency(dir.path());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let mut sent = 0;
    println!("intake benchmark: {REQUESTS_PER_ROUND} signed webhooks per round, {ROUNDS} rounds per figure, 2 server threads");
    println!("  disk: fdatasync median {fsync:?}, so at most {:.0} stored webhooks/s per concurrent sender", 1.0 / fsync.as_secs_f64());
    let mut headline = 0.0;
    for senders in SENDERS {
        let (mut stored, mut discard) = (Vec::new(), Vec::new());
        client_rt.block_on(async {
            // Warm-up: connections, SQLite pages, allocator.
            round(&client, &discard_url, senders).await;
            round(&client, &stored_url, senders).await;
            for _ in 0..ROUNDS {
                discard.push(round(&client, &discard_url, senders).await);
                stored.push(round(&client, &stored_url, senders).await);
            }
        });
        sent += (ROUNDS + 1) * (REQUESTS_PER_ROUND / senders * senders);
        let (s, d) = (median(stored.clone()), median(discard.clone()));
        headline = s / d;
        println!(
            "  {senders:>3} senders: baseline (not storing) {d:>7.0} req/s, stored {s:>7.0} req/s, ratio {:.2}   rounds stored {stored:.0?} baseline {discard:.0?}",
            s / d
        );
    }
    let events: i64 = server_rt.block_on(async {
        recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    let jobs: i64 = server_rt.block_on(async {
        recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    println!(
        "  ratio stored / baseline at {} senders: {headline:.2}   (target >= 0.5)",
        SENDERS[SENDERS.len() - 1]
    );
    println!("  rows written: {events} events, {jobs} jobs");
    assert_eq!(events as usize, sent, "every answered webhook is stored");
    assert_eq!(jobs as usize, sent, "with its job");
}
