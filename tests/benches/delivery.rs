//! End-to-end delivery: signed webhooks in, Standard-Webhooks POSTs out through
//! the shipped `http-forward` connector, to a fast local target, in one run:
//! - intake events/s and delivered events/s under the same sustained load, and
//!   their ratio (delivery must keep up, or any load builds a backlog);
//! - p50 / p90 / p99 latency from sending the webhook to the target receiving
//!   the forwarded request, at a steady 100 events/s.
//!
//! The throughput target is Debian's `nginx-light` answering 200 when
//! `/usr/sbin/nginx` exists (`apt-get install nginx-light`), else an in-process
//! hyper server with TCP_NODELAY; the latency target is always the in-process
//! one (it timestamps arrivals). Everything runs on 127.0.0.1, bounded.
//!
//! Run: `cargo bench -p recoco-sync-tests --bench delivery`. Settings:
//! `BENCH_EVENTS` (webhooks of the throughput run), `BENCH_SENDERS` (how many
//! send them at once, 64 by default), `BENCH_WORKERS` (queue
//! workers; default: the service's), `BENCH_PACING` (intake's
//! `pacing_min_delivered_ratio`; 0 = off, to compare against the default).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::serve::ListenerExt as _;
use recoco_sync::config::{Config, Overrides};
use recoco_sync::Service;
use recoco_sync_tests::nginx::Nginx;
use recoco_sync_tests::service::{source_block, SECRET, SOURCE};
use recoco_sync_tests::succeeded;
use recoco_sync_tests::webhook::{envelope, post_signed as post};

/// Webhooks of the throughput run (`BENCH_EVENTS` to change), and how many
/// senders send them (`BENCH_SENDERS`).
const EVENTS: usize = 20_000;
const SENDERS: usize = 64;
/// Projects the webhooks update, round robin.
const PROJECTS: usize = 1000;
/// The latency run: events per second, for how long.
const LATENCY_RATE: u64 = 100;
const LATENCY_SECS: u64 = 5;
/// Longest wait for a backlog to drain before reporting what was delivered.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
const LATENCY_SOURCE: &str = "recoco-latency";

/// Arrival time of each forwarded event (by `webhook-id`, our event id).
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// The in-process target: 200 at once, arrivals recorded.
async fn rust_target(arrivals: Arrivals, count: Arc<AtomicU64>) -> String {
    let router = axum::Router::new().fallback(move |headers: HeaderMap| {
        let (arrivals, count) = (arrivals.clone(), count.clone());
        async move {
            let now = Instant::now();
            count.fetch_add(1, Ordering::Relaxed);
            if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                arrivals.lock().unwrap().insert(id.to_string(), now);
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/hook")
}

/// CPU time this process has used (user + system, every thread).
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A `BENCH_…` setting, if given (a value that does not parse stops the run
/// rather than measuring something else).
fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

fn main() {
    let events: usize = setting("BENCH_EVENTS").unwrap_or(EVENTS);
    let senders: usize = setting("BENCH_SENDERS").unwrap_or(SENDERS);
    let dir = tempfile::tempdir().unwrap();
    let server_rt = recoco_sync_tests::named_runtime("service", 2);
    let client_rt = recoco_sync_tests::named_runtime("senders", 2);
    let target_rt = recoco_sync_tests::named_runtime("target", 1);
    let arrivals: Arrivals = Arc::default();
    let at_rust_target = Arc::new(AtomicU64::new(0));
    let rust_url = target_rt.block_on(rust_target(arrivals.clone(), at_rust_target.clone()));
    let nginx = Nginx::start(dir.path());
    let (throughput_url, target_name) = match &nginx {
        Some(n) => (n.url.clone(), "nginx-light"),
        None => (rust_url.clone(), "in-process hyper (nginx not installed)"),
    };

    let d = dir.path().display();
    // The service's default worker count unless `BENCH_WORKERS` says otherwise.
    let queue = setting::<usize>("BENCH_WORKERS")
        .map_or_else(String::new, |n| format!("[queue]\nworkers = {n}\n"));
    // Intake's pacing against delivery: the default unless `BENCH_PACING`
    // gives another ratio (0 = off, to compare).
    let pacing = setting::<f64>("BENCH_PACING").map_or_else(String::new, |r| {
        format!("pacing_min_delivered_ratio = {r}\n")
    });
    let text = format!(
        "database_url = \"sqlite://{d}/bench.db\"\nplugins_dir = \"{d}/connectors\"\nsecret_key_file = \"{d}/secret.key\"\n[intake]\nrate_limit_per_second = 0.0\n{pacing}{queue}\
         {}\
         [[sources]]\ncode = {LATENCY_SOURCE:?}\nsecrets = [{SECRET:?}]\n\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = {throughput_url:?}\nsecret = \"bench-secret-1\"\n\
         [[connections]]\nname = \"fwd-latency\"\nsource = {LATENCY_SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = {rust_url:?}\nsecret = \"bench-secret-1\"\n",
        source_block(None),
    );
    std::fs::create_dir_all(dir.path().join("connectors")).unwrap();
    let config = Config::from_parts(&text, &[], &Overrides::default()).unwrap();
    let workers = config.queue.workers;
    let pacing = config.intake.pacing_min_delivered_ratio;
    let (base, pool) = server_rt.block_on(async {
        let service = Service::start(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let pool = service.pool.clone();
        tokio::spawn(service.serve(listener));
        (format!("http://{addr}/api/webhook"), pool)
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    // Every webhook is distinct (identical signed bodies are duplicates that
    // create no job) and updates one of PROJECTS projects, so the queue's
    // per-project ordering is exercised as in production.
    let body = |n: usize| {
        envelope(
            "projects.Project",
            "update",
            serde_json::json!({"id": 1000 + n % PROJECTS, "name": "Halle du Vieux-Bourg", "version": n, "description": "x".repeat(600)}),
        )
    };
    println!(
        "delivery benchmark: http-forward to {target_name}, {workers} workers, 2 server threads, {senders} senders, intake pacing {pacing}"
    );

    // Warm-up: connections, compiled connector, SQLite pages.
    let throughput_in = format!("{base}/{SOURCE}");
    client_rt.block_on(async {
        for n in 0..200 {
            post(&client, &throughput_in, &body(n)).await;
        }
    });
    let warm = 200;
    while server_rt.block_on(succeeded(&pool)) < warm {
        std::thread::sleep(Duration::from_millis(50));
    }

    // Throughput: EVENTS webhooks as fast as `senders` clients can send them.
    let started = Instant::now();
    client_rt.block_on(async {
        let tasks: Vec<_> = (0..senders)
            .map(|sender| {
                let (client, url) = (client.clone(), throughput_in.clone());
                tokio::spawn(async move {
                    for i in 0..events / senders {
                        post(&client, &url, &body(200 + i * senders + sender)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let delivered_at_end_of_intake = server_rt.block_on(succeeded(&pool)) - warm;
    let intake_secs = started.elapsed().as_secs_f64();
    // On stderr at once, for a profiler to attach to the drain phase only.
    eprintln!("intake finished; draining");
    // The backlog's drain, with nothing else running in this process: the
    // service's own delivery rate and CPU per delivered event.
    let (drain_cpu, drain_clock) = (cpu_time(), Instant::now());
    let sent = (events / senders * senders) as u64;
    let (delivered, drain_secs) = loop {
        let done = server_rt.block_on(succeeded(&pool)) - warm;
        if done >= sent || started.elapsed() > DRAIN_LIMIT {
            break (done, started.elapsed().as_secs_f64());
        }
        // Counting is a query over the jobs the service is writing: rarely
        // until the end is near (it took 8 % of the drain's CPU every 20 ms).
        let near = done * 20 >= sent * 19;
        std::thread::sleep(Duration::from_millis(if near { 10 } else { 100 }));
    };
    let drain_cpu = cpu_time() - drain_cpu;
    let drain_clock = drain_clock.elapsed().as_secs_f64();
    let drained = delivered.saturating_sub(delivered_at_end_of_intake).max(1);
    let intake_rate = sent as f64 / intake_secs;
    let during = delivered_at_end_of_intake as f64 / intake_secs;
    let end_to_end = delivered as f64 / drain_secs;
    println!("  intake:    {sent} webhooks in {intake_secs:.2} s = {intake_rate:.0} events/s");
    println!(
        "  delivery:  {during:.0} events/s while intake ran ({delivered_at_end_of_intake} delivered by then); \
         all {delivered} delivered after {drain_secs:.2} s = {end_to_end:.0} events/s end to end"
    );
    println!(
        "  after the load: {drained} events in {drain_clock:.2} s = {:.0} events/s, {:.0} µs of CPU per event ({:.2} cores busy)",
        drained as f64 / drain_clock,
        drain_cpu.as_micros() as f64 / drained as f64,
        drain_cpu.as_secs_f64() / drain_clock
    );
    println!(
        "  ratio delivered / intake: {:.2} end to end, {:.2} during the load   (targets: >= 5000 events/s, >= 0.8)",
        end_to_end / intake_rate,
        during / intake_rate
    );
    if delivered < sent {
        println!(
            "  NOTE: {} events were still undelivered after {DRAIN_LIMIT:?}",
            sent - delivered
        );
    }

    // Latency at a steady 100 events/s.
    let latency_in = format!("{base}/{LATENCY_SOURCE}");
    let sent_at: Vec<(String, Instant)> = client_rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / LATENCY_RATE));
        let mut tasks = Vec::new();
        for n in 0..(LATENCY_RATE * LATENCY_SECS) as usize {
            tick.tick().await;
            let (client, url, body) = (client.clone(), latency_in.clone(), body(n));
            tasks.push(tokio::spawn(async move {
                let at = Instant::now();
                (post(&client, &url, &body).await, at)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    // The throughput run's events are in `arrivals` too when it used the
    // in-process target: count only the latency run's.
    let latency_arrived = || {
        let arrived = arrivals.lock().unwrap();
        sent_at
            .iter()
            .filter(|(id, _)| arrived.contains_key(id))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while latency_arrived() < sent_at.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let arrived = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = sent_at
        .iter()
        .filter_map(|(id, at)| arrived.get(id).map(|got| got.duration_since(*at)))
        .collect();
    latencies.sort();
    if latencies.is_empty() {
        println!("  latency: nothing arrived at the target");
    } else {
        println!(
            "  latency webhook -> target at {LATENCY_RATE} events/s ({} events): p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}   (target p50 <= 5 ms)",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
    assert_eq!(
        latencies.len(),
        sent_at.len(),
        "every latency event arrived"
    );
    // The whole process (service, senders, in-process target): compare runs.
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        });
    println!(
        "  peak memory of the process: {}",
        peak.as_deref()
            .map_or("unknown", |l| l["VmHWM:".len()..].trim())
    );
    drop(nginx);
}
