//! Misbehaving connectors: one loops, one eats memory, one traps. Each job fails
//! with a clear recorded error and the service keeps serving the others.

use std::time::{Duration, Instant};

use recoco_sync_tests::components;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn connection(name: &str, plugin: &str) -> String {
    format!("[[connections]]\nname = {name:?}\nsource = {SOURCE:?}\nplugin = {plugin:?}\n")
}

#[tokio::test]
async fn looping_hogging_and_trapping_plugins_fail_cleanly_while_others_run() {
    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}[runtime]\ndeadline = \"1s\"\nmemory_limit = 33554432\n{}{}{}{}[connections.config]\nurl = \"{}/ok\"\nsecret = \"forward-secret-1\"\n",
        source_block(None),
        connection("looper", "test-looper"),
        connection("hog", "test-hog"),
        connection("trapper", "test-trapper"),
        connection("healthy", "http-forward"),
        target.url,
    );
    let svc = TestService::start(
        &config,
        &[
            ("looper.wasm", &components::looper()),
            ("hog.wasm", &components::hog()),
            ("trapper.wasm", &components::trapper()),
        ],
    )
    .await;
    let started = Instant::now();
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1})))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json["message"],
        "Webhook event stored; 4 job(s) queued"
    );
    let event_id = answer.json["id"].as_str().unwrap().to_string();

    // The healthy connection is not held up by the others.
    target.wait_for(1, WAIT).await;
    let event = svc.settled_event(&event_id, WAIT).await;
    assert_eq!(event.status, "failed");
    let jobs = svc.jobs_of_event(&event_id).await;
    let by_connection = |name: &str| jobs.iter().find(|j| j.connection == name).unwrap().clone();

    let healthy = by_connection("healthy");
    assert_eq!(healthy.state, "succeeded");

    let looper = by_connection("looper");
    assert_eq!(
        looper.state, "failed",
        "a deadline is retried once at most: {looper:?}"
    );
    assert_eq!(looper.attempts, 2);
    assert!(
        looper
            .last_error
            .as_deref()
            .unwrap()
            .contains("CPU deadline of 1s"),
        "{:?}",
        looper.last_error
    );

    let hog = by_connection("hog");
    assert_eq!(hog.state, "failed");
    assert!(
        hog.last_error
            .as_deref()
            .unwrap()
            .contains("memory limit of 32 MiB"),
        "{:?}",
        hog.last_error
    );

    let trapper = by_connection("trapper");
    assert_eq!(trapper.state, "failed");
    let error = trapper.last_error.unwrap();
    assert!(error.starts_with("plugin trapped"), "{error}");
    assert!(
        error.contains("panicked"),
        "the guest's panic message is kept: {error}"
    );

    // Each attempt names the plugin build that ran.
    for job in [&looper, &hog] {
        // The looper's first run, stopped by its deadline, is retried once.
        let attempts = svc.attempts(&job.id).await;
        let attempt = attempts.last().unwrap();
        assert_eq!(attempt.outcome, "failed");
        assert!(attempt.plugin_hash.is_some());
    }
    // The looper was stopped near its 1 s deadline, not after the wall-clock limit.
    assert!(started.elapsed() < Duration::from_secs(15));

    // The service still serves: another event goes through the healthy path.
    let again = svc
        .send(envelope("projects.Project", "update", json!({"id": 2})))
        .await;
    assert_eq!(again.status, 200);
    target.wait_for(2, WAIT).await;
    let health = svc
        .client
        .get(format!("{}/healthz", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    svc.stop().await;
}

#[tokio::test]
async fn a_plugin_missing_from_the_directory_makes_jobs_wait_not_fail() {
    let config = format!(
        "{}{FAST_QUEUE}{}[connections.config]\nurl = \"http://127.0.0.1:9/x\"\n",
        source_block(None),
        connection("echo", "test-echo")
    );
    // The plugin is known (routing needs its subscriptions) but not loaded now.
    let svc = TestService::start(&config, &[("echo.wasm", &components::echo())]).await;
    let dir = svc.stop().await;
    std::fs::remove_file(dir.path().join("connectors/echo.wasm")).unwrap();
    let svc = TestService::start_in(dir, &config, &[]).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 3})))
        .await;
    assert_eq!(answer.json["status"], "queued");
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    let waiting = svc.job_in(&job.id, &["waiting"], WAIT).await;
    assert_eq!(waiting.attempts, 0, "waiting does not use an attempt");
    assert!(waiting
        .last_error
        .unwrap()
        .contains("waiting for plugin \"test-echo\""));
    svc.stop().await;
}

/// `[runtime]` quotas: host calls, summary text, log bytes and state bytes per
/// connection; and the CPU deadline counts CPU, not wall-clock time.
#[tokio::test]
async fn runtime_quotas_stop_each_excess_with_a_clear_error() {
    let malicious = |name: &str, attack: &str, extra: &str| {
        format!(
            "{}[connections.config]\nattack = {attack:?}\n{extra}",
            connection(name, "test-malicious")
        )
    };
    let config = format!(
        "{}{FAST_QUEUE}[runtime]\ndeadline = \"2s\"\nevent_timeout = \"8s\"\nmax_host_calls = 100\n\
         max_summary_bytes = 1000\nmax_log_bytes = 20000\nmax_state_bytes = 100000\n{}{}{}{}{}{}",
        source_block(None),
        malicious("calls", "host-call-loop", ""),
        malicious("summary", "huge-summary", ""),
        malicious("logs", "log-flood", ""),
        malicious("state", "state-flood", ""),
        malicious("nap-short", "nap", "nap_ms = 4000\n"),
        malicious("nap-long", "nap", ""),
    );
    let svc = TestService::start(&config, &[("malicious.wasm", &components::malicious())]).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 7})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let jobs = svc.jobs_of_event(&event_id).await;
    let id_of = |name: &str| {
        jobs.iter()
            .find(|j| j.connection == name)
            .unwrap()
            .id
            .clone()
    };
    let settled = |name: &str| {
        let id = id_of(name);
        let svc = &svc;
        async move {
            svc.job_in(&id, &["succeeded", "failed", "dead"], WAIT)
                .await
        }
    };

    let calls = settled("calls").await;
    assert_eq!(calls.state, "failed");
    assert_eq!(
        calls.last_error.as_deref(),
        Some("plugin made more than 100 host calls in one invocation and was stopped")
    );

    let summary = settled("summary").await.summary.unwrap();
    assert!(summary.len() < 1100, "{} bytes", summary.len());
    assert!(
        summary.ends_with(&format!("… [cut: {} more bytes]", (20 << 20) - 1000)),
        "{}",
        &summary[900..]
    );

    settled("logs").await;
    let lines = recoco_sync_tests::logs::containing("flood line ")
        .into_iter()
        .filter(|l| l.contains("\"logs\""))
        .count();
    assert!(
        (80..=100).contains(&lines),
        "{lines} lines within 20000 bytes"
    );
    assert!(recoco_sync_tests::logs::containing("lines dropped")
        .iter()
        .any(|l| l.contains("\"logs\"") && l.contains("20000 bytes")));

    let state = settled("state").await;
    assert_eq!(state.state, "failed");
    assert!(
        state
            .last_error
            .as_deref()
            .unwrap()
            .contains("100000 bytes of state"),
        "{:?}",
        state.last_error
    );

    // Sleeping is not computing: 4 s asleep fits in a 2 s CPU deadline…
    let nap = settled("nap-short").await;
    assert_eq!(nap.state, "succeeded", "{:?}", nap.last_error);
    assert_eq!(nap.summary.as_deref(), Some("slept 4000 ms"));
    // …and the wall-clock limit ends a guest that never returns.
    let id = id_of("nap-long");
    let first = recoco_sync_tests::wait_for("the long nap's first attempt", WAIT, || async {
        svc.attempts(&id).await.into_iter().next()
    })
    .await;
    assert_eq!(
        first
            .error
            .as_deref()
            .map(|e| e.contains("took longer than 8s")),
        Some(true),
        "{first:?}"
    );
    svc.stop().await;
}
