//! Cost of one plugin invocation: a new `Store`, instantiation of the
//! pre-instantiated `test-noop` component and a call of its no-op
//! `handle-event`, as the workers do it. Reported as median and p99, and as a
//! ratio to a fixed CPU baseline measured in the same run (SHA-256 of 4 KiB),
//! since these machines are noisy.
//!
//! Run: `cargo bench -p recoco-sync-tests --bench invocation`

use std::sync::Arc;
use std::time::{Duration, Instant};

use recoco_sync::config::{Config, Overrides};
use recoco_sync::ids::JobId;
use recoco_sync::outbound::AllowList;
use recoco_sync::runtime::{types, Call, Scope};
use recoco_sync::secrets::Scrubber;
use recoco_sync::Service;
use recoco_sync_tests::service::{source_block, SOURCE};
use sha2::Digest;

const WARMUP: usize = 500;
const SAMPLES: usize = 20_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("connectors");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        recoco_sync_tests::components::noop(),
        plugins.join("noop.wasm"),
    )
    .unwrap();
    let text = format!(
        "database_url = \"sqlite://{}/bench.db\"\nplugins_dir = {:?}\nsecret_key_file = \"{}/secret.key\"\n{}",
        dir.path().display(),
        plugins.display().to_string(),
        dir.path().display(),
        source_block(None),
    );
    let config = Config::from_parts(&text, &[], &Overrides::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (invocations, baseline) = rt.block_on(async {
        let service = Service::start(config).await.unwrap();
        let plugin = service.registry.get("test-noop").expect("test-noop loaded");
        let source = service.catalog.get().source_by_code(SOURCE).unwrap().clone();
        let scope = Arc::new(Scope {
            connection_id: 1,
            connection: "bench".into(),
            plugin: "test-noop".into(),
            source,
            allow: AllowList::default(),
            job_id: JobId::new(),
            scrubber: Scrubber::default(),
        });
        let event = types::Event {
            id: "evt_bench".into(),
            source: SOURCE.into(),
            topic: "projects.Project/update".into(),
            object_type: "projects.Project".into(),
            action: "update".into(),
            object_id: Some("1312".into()),
            payload: r#"{"topic": "projects.Project/update", "object": {"id": 1312}, "object_type": "projects.Project", "webhook_uuid": "u"}"#.into(),
            received_at: "2026-11-26T10:00:00.000Z".into(),
        };
        let ctx = types::Context {
            config: "{}".into(),
            connection: "bench".into(),
            source: SOURCE.into(),
            job_id: "job_bench".into(),
            attempt: 1,
        };
        let mut samples = Vec::with_capacity(SAMPLES);
        for n in 0..WARMUP + SAMPLES {
            let started = Instant::now();
            let summary = service
                .runtime
                .invoke(&plugin.pre, scope.clone(), ctx.clone(), Call::Event(event.clone()), Duration::from_secs(10))
                .await
                .expect("no-op invocation");
            let elapsed = started.elapsed();
            assert_eq!(summary, "noop");
            if n >= WARMUP {
                samples.push(elapsed);
            }
        }
        // Baseline: a fixed CPU workload, same thread, same run.
        let block = vec![7u8; 4096];
        let mut baseline = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let started = Instant::now();
            std::hint::black_box(sha2::Sha256::digest(std::hint::black_box(&block)));
            baseline.push(started.elapsed());
        }
        (samples, baseline)
    });
    let mut inv = invocations;
    inv.sort();
    let mut base = baseline;
    base.sort();
    let (median, p99, min) = (percentile(&inv, 0.5), percentile(&inv, 0.99), inv[0]);
    let base_median = percentile(&base, 0.5);
    println!("invocation benchmark: {SAMPLES} invocations of test-noop handle-event (new Store + instantiate + call)");
    println!("  median {median:?}   p99 {p99:?}   min {min:?}   (target: median <= 50 µs)");
    println!("  baseline SHA-256 of 4 KiB: median {base_median:?}");
    println!(
        "  ratio invocation / baseline: {:.1}",
        median.as_secs_f64() / base_median.as_secs_f64()
    );
}
