//! Hot swap timings: from the moment a new `test-swap` file is renamed into the
//! plugins directory to the moment the registry serves it, cold (compiled by
//! Cranelift) and with the disk cache; plus a service restart, cold and warm.
//! Baselines measured in the same run, so figures can be read as ratios on any
//! machine: one event end to end (webhook in → connector's request out), and
//! an in-memory compile of the same component with the service's engine.
//!
//! `cargo bench -p recoco-sync-tests --bench hot_swap` (add `-- --rounds N`).

use std::path::Path;
use std::time::{Duration, Instant};

use recoco_sync::config::RuntimeConfig;
use recoco_sync::registry::watch::SETTLE;
use recoco_sync_tests::components;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use sha2::{Digest, Sha256};

const FILE: &str = "swap.wasm";
const TIMEOUT: Duration = Duration::from_secs(60);
const INVOCATIONS: usize = 20;

fn main() -> anyhow::Result<()> {
    let rounds = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5usize);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(rounds))
}

async fn run(rounds: usize) -> anyhow::Result<()> {
    let v1 = std::fs::read(components::swap_v1())?;
    let v2 = std::fs::read(components::swap_v2())?;
    let (h1, h2) = (hash(&v1), hash(&v2));
    let compile = median(&compile_times(&v2, 3)?);

    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"swap\"\nsource = {SOURCE:?}\nplugin = \"test-swap\"\n\
         [connections.config]\nurl = \"{}/report\"\n",
        source_block(None),
        target.url
    );
    let clock = Instant::now();
    let svc = TestService::start(&config, &[(FILE, &components::swap_v1())]).await;
    let start_cold = clock.elapsed();

    let mut invoke = Vec::new();
    for n in 0..INVOCATIONS {
        let before = target.received().len();
        let clock = Instant::now();
        let answer = svc
            .send(envelope(
                "projects.Project",
                "update",
                serde_json::json!({"id": n}),
            ))
            .await;
        anyhow::ensure!(answer.status == 200, "webhook refused: {:?}", answer.json);
        until(|| async { target.received().len() > before }).await?;
        invoke.push(clock.elapsed());
    }
    let invoke = median(&invoke);

    let cache = svc.dir.path().join("plugin-cache");
    let (mut cold, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // The file holds v1 here. Cold: v2 is new to the cache (its entry is
        // deleted first); then three swaps between versions the cache holds.
        remove_entries(&cache, &h2)?;
        cold.push(swap(&svc, &v2, &h2).await?);
        cached.push(swap(&svc, &v1, &h1).await?);
        cached.push(swap(&svc, &v2, &h2).await?);
        cached.push(swap(&svc, &v1, &h1).await?);
    }
    let dir = svc.stop().await;
    let clock = Instant::now();
    let svc = TestService::start_in(dir, &config, &[(FILE, &components::swap_v1())]).await;
    let start_warm = clock.elapsed();
    svc.stop().await;

    let (cold_med, cached_med) = (median(&cold), median(&cached));
    println!("hot swap: {rounds} rounds, settle window {}", ms(SETTLE));
    println!(
        "  baseline  one event end to end (median of {INVOCATIONS})  {}",
        ms(invoke)
    );
    println!(
        "  baseline  in-memory compile of test-swap v2 (median of 3) {}",
        ms(compile)
    );
    println!(
        "  swap cold (compile)     median {}  min {}  max {}",
        ms(cold_med),
        ms(min(&cold)),
        ms(max(&cold))
    );
    println!(
        "  swap with the cache     median {}  min {}  max {}",
        ms(cached_med),
        ms(min(&cached)),
        ms(max(&cached))
    );
    // The settle window is a fixed wait; what follows it is the actual work.
    let (cold_work, cached_work) = (
        cold_med.saturating_sub(SETTLE),
        cached_med.saturating_sub(SETTLE),
    );
    println!(
        "  after the settle window: cold {}  with the cache {}  (cold/cached {:.1})",
        ms(cold_work),
        ms(cached_work),
        ratio(cold_work, cached_work)
    );
    println!(
        "  ratios: cold/compile {:.2}  cached/compile {:.2}  cached/event {:.2}  cold/cached {:.2}",
        ratio(cold_med, compile),
        ratio(cached_med, compile),
        ratio(cached_med, invoke),
        ratio(cold_med, cached_med)
    );
    println!(
        "  service start: cold {}  with the cache {}  (ratio {:.2})",
        ms(start_cold),
        ms(start_warm),
        ratio(start_warm, start_cold)
    );
    println!(
        "  target: a swap under 1 s with the cache: {}",
        if cached_med < Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}

/// Renames `bytes` into place and times until the listing serves `hash`.
async fn swap(svc: &TestService, bytes: &[u8], hash: &str) -> anyhow::Result<Duration> {
    let temp = svc.plugins_dir.join(format!(".{FILE}.tmp"));
    std::fs::write(&temp, bytes)?;
    let clock = Instant::now();
    std::fs::rename(&temp, svc.plugins_dir.join(FILE))?;
    until(|| async {
        let listing = svc.admin(reqwest::Method::GET, "/plugins").await.json;
        listing["plugins"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "test-swap" && p["hash"] == hash)
        })
    })
    .await?;
    Ok(clock.elapsed())
}

/// In-memory compiles of `bytes` with the engine the service builds.
fn compile_times(bytes: &[u8], n: usize) -> anyhow::Result<Vec<Duration>> {
    let engine = recoco_sync::runtime::engine::build(&RuntimeConfig::default())?;
    (0..n)
        .map(|_| {
            let clock = Instant::now();
            wasmtime::component::Component::from_binary(&engine, bytes)
                .map_err(anyhow::Error::from)?;
            Ok(clock.elapsed())
        })
        .collect()
}

fn remove_entries(cache: &Path, hash: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(cache)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(hash) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Polls `check` every millisecond, up to [`TIMEOUT`].
async fn until<F, Fut>(mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        anyhow::ensure!(Instant::now() < deadline, "timed out after {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn median(d: &[Duration]) -> Duration {
    let mut sorted = d.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn min(d: &[Duration]) -> Duration {
    d.iter().copied().min().unwrap_or_default()
}

fn max(d: &[Duration]) -> Duration {
    d.iter().copied().max().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
