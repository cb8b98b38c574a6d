//! Bounded disk: the write-ahead log stays under `storage.wal_max_bytes` while
//! webhooks pour in, and the retention pass deletes finished work past
//! `storage.retention`, and only that. (`cargo bench --bench wal_soak` holds
//! the load for 60 s at the default limit.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recoco_sync::config::{Config, Overrides};
use recoco_sync::ids::now_ms;
use recoco_sync::store::maintenance;
use recoco_sync_tests::components;
use recoco_sync_tests::service::{source_block, TestService, SECRET, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WAL_LIMIT: u64 = 8 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_under_its_limit_under_sustained_intake() {
    // Intake only (workers off); every event also queues a job.
    let config = format!(
        "{}[queue]\nworkers = 0\n[storage]\nwal_max_bytes = {WAL_LIMIT}\n[intake]\nrate_limit_per_second = 0.0\n\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"test-noop\"\n",
        source_block(None)
    );
    let svc = TestService::start(&config, &[("noop.wasm", &components::noop())]).await;
    let database = svc.dir.path().join("recoco-sync.db");

    // The load runs until enough has gone through the WAL to prove the bound
    // (five times the limit), or 40 s, or 200,000 webhooks: bounded either way.
    let stop = Arc::new(AtomicBool::new(false));
    let enough = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, enough, database) = (stop.clone(), enough.clone(), database.clone());
        tokio::spawn(async move {
            let (mut max, mut drops, mut last, mut traffic) = (0u64, 0u32, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let size = maintenance::wal_size(&database);
                max = max.max(size);
                drops += u32::from(size < last);
                traffic += size.saturating_sub(last);
                last = size;
                if traffic > 5 * WAL_LIMIT {
                    enough.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (max, drops, traffic)
        })
    };
    // 32 senders, 2 KiB bodies, each one distinct (an identical signed request
    // is a duplicate, answered without being stored).
    let description = Arc::new("x".repeat(2048));
    let url = format!("{}/api/webhook/{SOURCE}", svc.url);
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (client, url, description, sent, enough) = (
                svc.client.clone(),
                url.clone(),
                description.clone(),
                sent.clone(),
                enough.clone(),
            );
            tokio::spawn(async move {
                while !enough.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(40)
                {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    if n >= 200_000 {
                        break;
                    }
                    let body = envelope(
                        "projects.Project",
                        "update",
                        json!({"id": 1312, "n": n, "description": description.as_str()}),
                    );
                    let signed = headers(&body, &[SECRET], now_secs());
                    let mut request = client.post(&url).body(body);
                    for (k, v) in signed.iter() {
                        request = request.header(k, v);
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), 200);
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (max, drops, traffic) = sampler.await.unwrap();
    let stored: i64 = recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&svc.pool)
        .await
        .unwrap();
    println!(
        "{stored} webhooks in {:.1?}: at least {} MiB went through the WAL, which was at most {} KiB (limit {} KiB), truncated {drops} times",
        started.elapsed(),
        traffic / (1024 * 1024),
        max / 1024,
        WAL_LIMIT / 1024
    );
    // Without truncation the file would hold all of that traffic.
    assert!(
        traffic > 4 * WAL_LIMIT,
        "the load must write well past the limit to prove anything ({traffic} bytes)"
    );
    assert!(
        max < WAL_LIMIT,
        "WAL reached {max} bytes, limit {WAL_LIMIT}"
    );
    assert!(drops > 0, "the WAL was cut back while the load ran");
    svc.stop().await;
}

/// One job row; `finished` is its age in days when it finished (None: not finished).
async fn job(
    pool: &recoco_sync::store::Pool,
    id: &str,
    event: Option<&str>,
    state: &str,
    finished_days_ago: Option<i64>,
    attempts: i64,
) {
    let connection: i64 = recoco_sync::store::sql::query_scalar("SELECT id FROM connections")
        .fetch_one(pool)
        .await
        .unwrap();
    let day = 24 * 3600 * 1000;
    let at = now_ms() - finished_days_ago.unwrap_or(40) * day;
    recoco_sync::store::sql::query(
        "INSERT INTO jobs (id, connection_id, plugin, kind, event_id, task_name, state, attempts, max_attempts, run_at, created_at, updated_at, finished_at)
         VALUES (?, ?, 'test-noop', ?, ?, ?, ?, ?, 8, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(connection)
    .bind(if event.is_some() { "event" } else { "task" })
    .bind(event)
    .bind(event.is_none().then_some("sync-all"))
    .bind(state)
    .bind(attempts)
    .bind(at)
    .bind(at)
    .bind(at)
    .bind(finished_days_ago.map(|_| at))
    .execute(pool)
    .await
    .unwrap();
    for n in 1..=attempts {
        recoco_sync::store::sql::query("INSERT INTO attempts (job_id, number, plugin, started_at, duration_ms, outcome) VALUES (?, ?, 'test-noop', ?, 5, 'retry')")
            .bind(id)
            .bind(n)
            .bind(at)
            .execute(pool)
            .await
            .unwrap();
    }
}

async fn event(pool: &recoco_sync::store::Pool, id: &str, status: &str, days_ago: i64) {
    let at = now_ms() - days_ago * 24 * 3600 * 1000;
    recoco_sync::store::sql::query(
        "INSERT INTO events (id, source_id, status, topic, object_type, body, headers, received_at, updated_at)
         VALUES (?, (SELECT id FROM sources), ?, 'projects.Project/update', 'projects.Project', x'7b7d', '{}', ?, ?)",
    )
    .bind(id)
    .bind(status)
    .bind(at)
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
}

async fn ids(pool: &recoco_sync::store::Pool, table: &str) -> Vec<String> {
    let column = if table == "attempts" { "job_id" } else { "id" };
    let mut ids: Vec<String> =
        recoco_sync::store::sql::query_scalar(format!("SELECT {column} FROM {table}"))
            .fetch_all(pool)
            .await
            .unwrap();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test]
async fn retention_prunes_succeeded_work_past_its_age_and_nothing_else() {
    let config = format!(
        "{}[queue]\nworkers = 0\n[storage]\nretention = \"7days\"\n\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"test-noop\"\n",
        source_block(None)
    );
    // The rows are written while a service without retention runs: a pass at its start
    // would otherwise race the inserts below (an event pruned before its job is written).
    let keep_all = config.replace("retention = \"7days\"", "retention = \"0s\"");
    let svc = TestService::start(&keep_all, &[("noop.wasm", &components::noop())]).await;
    let pool = svc.pool.clone();
    // Old and processed: gone with its job and attempts.
    event(&pool, "evt_1_old_processed", "processed", 10).await;
    job(
        &pool,
        "job_1_old_ok",
        Some("evt_1_old_processed"),
        "succeeded",
        Some(10),
        2,
    )
    .await;
    // Old and failed: the event and the failed job stay; its succeeded sibling goes.
    event(&pool, "evt_2_old_failed", "failed", 10).await;
    job(
        &pool,
        "job_2_old_ok",
        Some("evt_2_old_failed"),
        "succeeded",
        Some(10),
        1,
    )
    .await;
    job(
        &pool,
        "job_3_old_failed",
        Some("evt_2_old_failed"),
        "failed",
        Some(10),
        1,
    )
    .await;
    // Processed recently: stays.
    event(&pool, "evt_3_new_processed", "processed", 2).await;
    job(
        &pool,
        "job_4_new_ok",
        Some("evt_3_new_processed"),
        "succeeded",
        Some(2),
        1,
    )
    .await;
    // Old event, but its job succeeded recently (an operator retry): stays.
    event(&pool, "evt_4_old_retried", "processed", 10).await;
    job(
        &pool,
        "job_5_retried_ok",
        Some("evt_4_old_retried"),
        "succeeded",
        Some(1),
        3,
    )
    .await;
    // Old events with nothing to do: ignored goes; skipped and invalid stay.
    event(&pool, "evt_5_old_ignored", "ignored", 10).await;
    event(&pool, "evt_6_old_skipped", "skipped", 10).await;
    event(&pool, "evt_7_old_invalid", "invalid", 10).await;
    // Old but never finished: dead, paused, waiting, queued all stay.
    event(&pool, "evt_8_old_pending", "queued", 40).await;
    job(
        &pool,
        "job_6_old_dead",
        Some("evt_8_old_pending"),
        "dead",
        Some(40),
        8,
    )
    .await;
    job(
        &pool,
        "job_7_old_paused",
        Some("evt_8_old_pending"),
        "paused",
        None,
        0,
    )
    .await;
    job(
        &pool,
        "job_8_old_waiting",
        Some("evt_8_old_pending"),
        "waiting",
        None,
        0,
    )
    .await;
    job(
        &pool,
        "job_9_old_queued",
        Some("evt_8_old_pending"),
        "queued",
        None,
        1,
    )
    .await;
    // An old succeeded task: gone with its attempts.
    job(&pool, "job_a_old_task", None, "succeeded", Some(30), 1).await;

    // The pass runs at start: restart on the same database.
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, &config, &[("noop.wasm", &components::noop())]).await;
    let pool = svc.pool.clone();
    recoco_sync_tests::wait_for("the retention pass", Duration::from_secs(10), || async {
        (!ids(&pool, "events")
            .await
            .contains(&"evt_1_old_processed".to_string()))
        .then_some(())
    })
    .await;
    // Let the pass finish (events are deleted after jobs, in one pass).
    recoco_sync_tests::wait_for(
        "the ignored event to go",
        Duration::from_secs(10),
        || async {
            (!ids(&pool, "events")
                .await
                .contains(&"evt_5_old_ignored".to_string()))
            .then_some(())
        },
    )
    .await;
    assert_eq!(
        ids(&pool, "events").await,
        [
            "evt_2_old_failed",
            "evt_3_new_processed",
            "evt_4_old_retried",
            "evt_6_old_skipped",
            "evt_7_old_invalid",
            "evt_8_old_pending"
        ]
    );
    assert_eq!(
        ids(&pool, "jobs").await,
        [
            "job_3_old_failed",
            "job_4_new_ok",
            "job_5_retried_ok",
            "job_6_old_dead",
            "job_7_old_paused",
            "job_8_old_waiting",
            "job_9_old_queued"
        ]
    );
    assert_eq!(
        ids(&pool, "attempts").await,
        [
            "job_3_old_failed",
            "job_4_new_ok",
            "job_5_retried_ok",
            "job_6_old_dead",
            "job_9_old_queued"
        ]
    );
    svc.stop().await;
}

#[tokio::test]
async fn retention_deletes_in_small_batches_until_done() {
    let config = format!(
        "{}[queue]\nworkers = 0\n[storage]\nretention = \"0s\"\n\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"test-noop\"\n",
        source_block(None)
    );
    // retention = "0s" keeps everything: the service prunes nothing itself.
    let svc = TestService::start(&config, &[("noop.wasm", &components::noop())]).await;
    let pool = svc.pool.clone();
    for i in 0..7 {
        let (e, j) = (format!("evt_{i}"), format!("job_{i}"));
        event(&pool, &e, "processed", 40).await;
        job(&pool, &j, Some(&e), "succeeded", Some(40), 2).await;
    }
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, &config, &[("noop.wasm", &components::noop())]).await;
    assert_eq!(
        ids(&svc.pool, "events").await.len(),
        7,
        "0s keeps everything"
    );

    let cutoff = now_ms() - 30 * 24 * 3600 * 1000;
    let pruned = maintenance::prune(&svc.pool, cutoff, 2, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        pruned,
        maintenance::Pruned {
            events: 7,
            jobs: 7,
            attempts: 14
        }
    );
    assert!(ids(&svc.pool, "events").await.is_empty());
    svc.stop().await;
}

#[test]
fn storage_settings_are_checked() {
    let c = Config::from_parts("", &[], &Overrides::default()).unwrap();
    assert_eq!(c.storage.wal_max_bytes, 64 * 1024 * 1024);
    assert_eq!(c.storage.retention, Duration::from_secs(30 * 24 * 3600));
    let err = Config::from_parts(
        "[storage]\nwal_max_bytes = 1000\n",
        &[],
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("storage.wal_max_bytes"), "{err}");
    let c = Config::from_parts(
        "[storage]\nretention = \"90days\"\nwal_max_bytes = 16777216\n",
        &[],
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.storage.retention, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(c.storage.wal_max_bytes, 16 * 1024 * 1024);
}
