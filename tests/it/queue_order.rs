//! Per-object order, coalescing and flow control, measured at a target that
//! records when each request started and ended: per project the versions
//! arrive in order and never two at once (with random 503s and a slow target),
//! 50 pending updates of one project collapse into a few runs, a failing
//! target is probed rather than hammered, and a 10 req/s limit holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Router;
use recoco_sync_tests::components;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE};
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};

use super::queue::connection;

const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Hit {
    pub project: u64,
    pub version: u64,
    pub start: Instant,
    pub end: Instant,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    hits: Vec<Hit>,
    in_flight: HashMap<u64, usize>,
    max_in_flight_per_project: usize,
    in_flight_total: usize,
    max_in_flight_total: usize,
    count: u64,
    /// Every n-th request answers 503 (0: never), but not a version's third
    /// try: with as many jobs in flight as `n`, running in lock-step, one job
    /// could take every n-th place and die after `max_attempts`.
    fail_every: u64,
    /// 503s answered so far, per (project, version).
    failed: HashMap<(u64, u64), u32>,
    /// Status of every answer when set (a failing target).
    status: Option<u16>,
    delay: Duration,
}

/// A target that records the start and end of each request, per project.
#[derive(Clone)]
pub struct Recorder {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Recorder {
    pub async fn start(delay: Duration, fail_every: u64) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            delay,
            fail_every,
            ..Default::default()
        }));
        let router = Router::new().fallback(record).with_state(inner.clone());
        Self {
            url: recoco_sync_tests::fakes::serve(router).await,
            inner,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.lock().unwrap().hits.clone()
    }

    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    pub fn set_status(&self, status: Option<u16>) {
        self.inner.lock().unwrap().status = status;
    }

    pub async fn wait_ok(&self, n: usize) -> Vec<Hit> {
        recoco_sync_tests::wait_for(&format!("{n} successful requests"), WAIT, || async {
            let hits = self.hits();
            (hits.iter().filter(|h| h.status == 200).count() >= n).then_some(hits)
        })
        .await
    }
}

/// The project and version of a request from http-forward (the Recoco body in
/// `payload`) or test-coalesce (the Recoco body itself).
fn project_version(body: &[u8]) -> (u64, u64) {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let object = if v["payload"].is_object() {
        &v["payload"]["object"]
    } else {
        &v["object"]
    };
    (
        object["id"].as_u64().unwrap_or(0),
        object["version"].as_u64().unwrap_or(0),
    )
}

async fn record(State(inner): State<Arc<Mutex<Inner>>>, body: Bytes) -> (StatusCode, String) {
    let (project, version) = project_version(&body);
    let start = Instant::now();
    let (delay, status) = {
        let mut i = inner.lock().unwrap();
        i.count += 1;
        let n = i.in_flight.entry(project).or_default();
        *n += 1;
        let now = *n;
        i.max_in_flight_per_project = i.max_in_flight_per_project.max(now);
        i.in_flight_total += 1;
        i.max_in_flight_total = i.max_in_flight_total.max(i.in_flight_total);
        let status = match i.status {
            Some(s) => s,
            None if i.fail_every > 0
                && i.count % i.fail_every == 0
                && i.failed.get(&(project, version)).copied().unwrap_or(0) < 2 =>
            {
                *i.failed.entry((project, version)).or_default() += 1;
                503
            }
            None => 200,
        };
        (i.delay, status)
    };
    tokio::time::sleep(delay).await;
    let mut i = inner.lock().unwrap();
    *i.in_flight.get_mut(&project).unwrap() -= 1;
    i.in_flight_total -= 1;
    i.hits.push(Hit {
        project,
        version,
        start,
        end: Instant::now(),
        status,
    });
    (StatusCode::from_u16(status).unwrap(), "{}".into())
}

fn update(project: u64, version: u64) -> Vec<u8> {
    envelope(
        "projects.Project",
        "update",
        json!({"id": project, "version": version}),
    )
}

#[tokio::test]
async fn per_project_order_holds_with_random_503s_and_a_slow_target() {
    let target = Recorder::start(Duration::from_millis(40), 4).await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection(
            "crm",
            "http-forward",
            &target.url,
            "[connections.delivery]\nmax_concurrency = 4\n"
        )
    );
    let svc = TestService::start(&config, &[]).await;
    let (projects, versions) = (5u64, 8u64);
    for v in 1..=versions {
        for p in 1..=projects {
            assert_eq!(svc.send(update(p, v)).await.status, 200);
        }
    }
    target.wait_ok((projects * versions) as usize).await;
    let hits = target.hits();
    for p in 1..=projects {
        let mine: Vec<&Hit> = hits.iter().filter(|h| h.project == p).collect();
        let seen: Vec<u64> = mine.iter().map(|h| h.version).collect();
        // A 503'd version is retried before the next one: never goes back.
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "project {p}: {seen:?}"
        );
        let ok: Vec<u64> = mine
            .iter()
            .filter(|h| h.status == 200)
            .map(|h| h.version)
            .collect();
        assert_eq!(ok, (1..=versions).collect::<Vec<_>>(), "project {p}");
        // Never two at once: each request starts after the previous one ended.
        let mut by_start = mine.clone();
        by_start.sort_by_key(|h| h.start);
        assert!(by_start.windows(2).all(|w| w[1].start >= w[0].end));
    }
    {
        let inner = target.inner.lock().unwrap();
        assert_eq!(inner.max_in_flight_per_project, 1);
        assert!(
            inner.max_in_flight_total > 1,
            "different projects run in parallel"
        );
    }
    assert!(hits.iter().any(|h| h.status == 503), "503s happened");
    svc.stop().await;
}

#[tokio::test]
async fn fifty_pending_updates_of_one_project_coalesce_into_a_few_runs() {
    let target = Recorder::start(Duration::from_millis(300), 0).await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection("grist-like", "test-coalesce", &target.url, "")
    );
    let svc = TestService::start(&config, &[("test-coalesce.wasm", &components::coalesce())]).await;
    for v in 1..=50 {
        assert_eq!(svc.send(update(1312, v)).await.status, 200);
    }
    recoco_sync_tests::wait_for("version 50 at the target", WAIT, || async {
        target.hits().iter().any(|h| h.version == 50).then_some(())
    })
    .await;
    // The target answers before the last job is recorded: wait for that too.
    recoco_sync_tests::wait_for("every event processed", WAIT, || async {
        let n: i64 = recoco_sync::store::sql::query_scalar(
            "SELECT COUNT(*) FROM events WHERE status = 'processed'",
        )
        .fetch_one(&svc.pool)
        .await
        .unwrap();
        (n == 50).then_some(())
    })
    .await;
    let hits = target.hits();
    assert!(hits.len() <= 10, "{} calls for 50 updates", hits.len());
    assert_eq!(
        hits.last().unwrap().version,
        50,
        "the final state is the latest"
    );
    let versions: Vec<u64> = hits.iter().map(|h| h.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    // Every update is accounted for: runs plus the jobs folded into them.
    let coalesced: i64 =
        recoco_sync::store::sql::query_scalar("SELECT CAST(SUM(coalesced) AS BIGINT) FROM jobs")
            .fetch_one(&svc.pool)
            .await
            .unwrap();
    let folded: i64 = recoco_sync::store::sql::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE state = 'coalesced'",
    )
    .fetch_one(&svc.pool)
    .await
    .unwrap();
    assert_eq!(coalesced, folded);
    assert_eq!(coalesced as usize + hits.len(), 50);
    // `/metrics` counts the folded jobs (the recorder is process-wide; the
    // connection name is this test's own).
    let metrics = recoco_sync::metrics::handle().render();
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"recoco_jobs_coalesced_total{connection="grist-like"} "#))
        .unwrap_or_else(|| panic!("no coalesced counter:\n{metrics}"));
    assert_eq!(counted.parse::<i64>().unwrap(), folded);
    let shown = svc
        .jobs(recoco_sync::queue::jobs::JobFilter {
            state: Some("succeeded".into()),
            ..Default::default()
        })
        .await;
    assert!(shown.iter().any(|j| j.coalesced > 0), "the count is shown");
    let events: i64 = recoco_sync::store::sql::query_scalar(
        "SELECT COUNT(*) FROM events WHERE status = 'processed'",
    )
    .fetch_one(&svc.pool)
    .await
    .unwrap();
    assert_eq!(events, 50);
    svc.stop().await;
}

#[tokio::test]
async fn a_failing_target_is_probed_not_hammered() {
    let target = Recorder::start(Duration::from_millis(5), 0).await;
    target.set_status(Some(502));
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection(
            "crm",
            "http-forward",
            &target.url,
            "[connections.delivery]\nmax_attempts = 50\ncircuit_failures = 3\ncircuit_cool_down = \"1s\"\n"
        )
    );
    let svc = TestService::start(&config, &[]).await;
    for p in 1..=10 {
        svc.send(update(p, 1)).await;
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let failed = target.hits().len();
    // 3 failures open it (plus what was in flight), then about one probe a
    // second; without the breaker, 10 jobs retrying every 0.1-2 s send dozens.
    assert!(
        (3..=9).contains(&failed),
        "{failed} requests to a failing target"
    );
    let circuits = svc.admin(reqwest::Method::GET, "/circuits").await;
    let c = &circuits.json["circuits"][0];
    assert_eq!(c["connection"], "crm");
    assert!(c["opened"].as_u64().unwrap() >= 2, "{c}");
    assert!(
        ["open", "half-open"].contains(&c["circuit"].as_str().unwrap()),
        "{c}"
    );
    // The target recovers: the next probe closes the circuit and all is delivered.
    target.set_status(None);
    target.wait_ok(10).await;
    let circuits = svc.admin(reqwest::Method::GET, "/circuits").await;
    assert_eq!(circuits.json["circuits"][0]["circuit"], "closed");
    svc.stop().await;
}

#[tokio::test]
async fn a_rate_limit_of_ten_per_second_holds_at_the_target() {
    let target = Recorder::start(Duration::ZERO, 0).await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection(
            "crm",
            "http-forward",
            &target.url,
            "[connections.delivery]\nrate_limit = 10\nmax_concurrency = 4\n"
        )
    );
    let svc = TestService::start(&config, &[]).await;
    for p in 1..=30 {
        svc.send(update(p, 1)).await;
    }
    let hits = target.wait_ok(30).await;
    let mut starts: Vec<Instant> = hits.iter().map(|h| h.start).collect();
    starts.sort();
    let span = *starts.last().unwrap() - starts[0];
    assert!(
        span >= Duration::from_millis(2700),
        "30 requests in {span:?}"
    );
    // No one-second window holds more than 10 (+1 for the window's edges).
    for (i, s) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|t| **t - *s < Duration::from_secs(1))
            .count();
        assert!(within <= 11, "{within} requests within a second");
    }
    svc.stop().await;
}

#[tokio::test]
async fn one_connection_cannot_hold_every_worker() {
    let slow = Recorder::start(Duration::from_millis(1500), 0).await;
    let fast = Recorder::start(Duration::ZERO, 0).await;
    let config = format!(
        "{}{FAST_QUEUE}{}{}",
        source_block(None),
        connection("slow", "http-forward", &slow.url, ""),
        connection("fast", "test-coalesce", &fast.url, "")
    );
    let svc = TestService::start(&config, &[("test-coalesce.wasm", &components::coalesce())]).await;
    // Eight slow deliveries of distinct projects, then one event for both.
    for p in 1..=8 {
        svc.send(update(p, 1)).await;
    }
    let started = Instant::now();
    svc.send(update(100, 1)).await;
    recoco_sync_tests::wait_for("the fast connection's delivery", WAIT, || async {
        fast.hits().iter().any(|h| h.project == 100).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the fast connection waited {:?} behind the slow one",
        started.elapsed()
    );
    {
        let inner = slow.inner.lock().unwrap();
        assert!(
            inner.max_in_flight_total <= 2,
            "half of the 4 workers at most: {}",
            inner.max_in_flight_total
        );
    }
    svc.stop().await;
}
