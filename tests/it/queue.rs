//! The queue keeps its promise: nothing dropped (never-seen, misspelled,
//! disabled and removed connections), a worker that lost its lease records
//! nothing, a time-limit kill is retried once, periodic schedules fire once
//! per period and survive restarts.

use std::time::Duration;

use recoco_sync_tests::components;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A connection `name` of `plugin` posting to `url` (http-forward's config
/// keys; test-coalesce and test-echo read `url` only).
pub fn connection(name: &str, plugin: &str, url: &str, extra: &str) -> String {
    let secret = if plugin.starts_with("http-forw") {
        format!("secret = {WHSEC:?}\n")
    } else {
        String::new()
    };
    format!(
        "[[connections]]\nname = {name:?}\nsource = {SOURCE:?}\nplugin = {plugin:?}\n{extra}\
         [connections.config]\nurl = \"{url}/hooks\"\n{secret}"
    )
}

fn project(id: u64, version: u64) -> Vec<u8> {
    envelope(
        "projects.Project",
        "update",
        json!({"id": id, "name": format!("v{version}"), "version": version}),
    )
}

async fn state_of_event_jobs(svc: &TestService, event_id: &str, state: &str) {
    recoco_sync_tests::wait_for(&format!("jobs of {event_id} {state}"), WAIT, || async {
        let jobs = svc.jobs_of_event(event_id).await;
        (!jobs.is_empty() && jobs.iter().all(|j| j.state == state)).then_some(())
    })
    .await
}

#[tokio::test]
async fn a_never_seen_plugin_gets_its_jobs_when_it_arrives() {
    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection("late", "test-coalesce", &target.url, "")
    );
    let svc = TestService::start(&config, &[]).await;
    let answer = svc.send(project(1, 1)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "queued", "{:?}", answer.json);
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    state_of_event_jobs(&svc, &event_id, "waiting").await;
    assert!(target.received().is_empty());
    // The file arrives: the job is routed and delivered.
    std::fs::copy(
        components::coalesce(),
        svc.plugins_dir.join("test-coalesce.wasm"),
    )
    .unwrap();
    target.wait_for(1, WAIT).await;
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "processed");
    svc.stop().await;
}

#[tokio::test]
async fn a_misspelled_plugin_then_fixed_loses_nothing() {
    let target = Target::start().await;
    let wrong = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection("crm", "http-forwrd", &target.url, "")
    );
    let svc = TestService::start(&wrong, &[]).await;
    let mut ids = Vec::new();
    for v in 1..=3 {
        let answer = svc.send(project(7, v)).await;
        assert_eq!(answer.json["status"], "queued", "{:?}", answer.json);
        ids.push(answer.json["id"].as_str().unwrap().to_string());
    }
    // The first waits for its plugin; the later ones of the project wait behind it.
    state_of_event_jobs(&svc, &ids[0], "waiting").await;
    let dir = svc.stop().await;
    // The operator fixes the name and restarts: every event is delivered, in order.
    let fixed = wrong.replace("http-forwrd", "http-forward");
    let svc = TestService::start_in(dir, &fixed, &[]).await;
    let got = target.wait_for(3, WAIT).await;
    let versions: Vec<u64> = got
        .iter()
        .map(|r| r.json()["payload"]["object"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    for id in &ids {
        assert_eq!(svc.settled_event(id, WAIT).await.status, "processed");
    }
    svc.stop().await;
}

#[tokio::test]
async fn a_disabled_connection_pauses_and_enabling_resumes_it() {
    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection("crm", "http-forward", &target.url, "")
    );
    let svc = TestService::start(&config, &[]).await;
    let off = svc
        .admin(reqwest::Method::POST, "/connections/crm/disable")
        .await;
    assert_eq!(off.status, 200, "{:?}", off.json);
    let mut ids = Vec::new();
    for v in 1..=3 {
        let answer = svc.send(project(9, v)).await;
        assert_eq!(answer.json["status"], "queued", "{:?}", answer.json);
        ids.push(answer.json["id"].as_str().unwrap().to_string());
    }
    // The first pauses; the later ones of the project wait behind it.
    state_of_event_jobs(&svc, &ids[0], "paused").await;
    for id in &ids[1..] {
        let state = svc.jobs_of_event(id).await[0].state.clone();
        assert!(["queued", "paused"].contains(&state.as_str()), "{state}");
    }
    let job = &svc.jobs_of_event(&ids[0]).await[0];
    assert_eq!(job.attempts, 0, "pausing uses no attempt");
    assert!(job.last_error.as_deref().unwrap().contains("disabled"));
    assert!(target.received().is_empty());
    let on = svc
        .admin(reqwest::Method::POST, "/connections/crm/enable")
        .await;
    assert_eq!(on.status, 200);
    let got = target.wait_for(3, WAIT).await;
    let versions: Vec<u64> = got
        .iter()
        .map(|r| r.json()["payload"]["object"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    for id in &ids {
        assert_eq!(svc.settled_event(id, WAIT).await.status, "processed");
    }
    svc.stop().await;
}

#[tokio::test]
async fn a_connection_removed_from_the_configuration_stops_receiving_events() {
    let target = Target::start().await;
    let both = format!(
        "{}{FAST_QUEUE}{}{}",
        source_block(None),
        connection("kept", "http-forward", &target.url, ""),
        connection("gone", "http-forward", &target.url, "")
    );
    let svc = TestService::start(&both, &[]).await;
    let dir = svc.stop().await;
    let one = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection("kept", "http-forward", &target.url, "")
    );
    let svc = TestService::start_in(dir, &one, &[]).await;
    let answer = svc.send(project(3, 1)).await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "processed");
    let jobs = svc.jobs_of_event(&event_id).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].connection, "kept");
    svc.stop().await;
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_and_records_nothing() {
    let target = Target::start().await;
    target.set_delay(Duration::from_secs(4));
    let config = format!(
        "{}{FAST_QUEUE}lease = \"1500ms\"\n{}",
        source_block(None),
        connection("crm", "http-forward", &target.url, "")
    );
    let svc = TestService::start(&config, &[]).await;
    let answer = svc.send(project(4, 1)).await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    state_of_event_jobs(&svc, &event_id, "running").await;
    let job_id = svc.jobs_of_event(&event_id).await[0].id.clone();
    // Another process takes the job over (as after a lease expiry).
    recoco_sync::store::sql::query(
        "UPDATE jobs SET lease_owner = 'thief:1:1:w0', lease_until = ? WHERE id = ?",
    )
    .bind(i64::MAX / 2)
    .bind(&job_id)
    .execute(&svc.pool)
    .await
    .unwrap();
    // The first worker's next heartbeat (every 500 ms) finds out, and its run
    // would have ended by 4 s: wait past both.
    tokio::time::sleep(Duration::from_millis(5000)).await;
    assert!(svc.attempts(&job_id).await.is_empty(), "nothing recorded");
    let job = recoco_sync::queue::jobs::get(&svc.pool, &job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, "running", "the new owner's run is untouched");
    let owner: String =
        recoco_sync::store::sql::query_scalar("SELECT lease_owner FROM jobs WHERE id = ?")
            .bind(&job_id)
            .fetch_one(&svc.pool)
            .await
            .unwrap();
    assert_eq!(owner, "thief:1:1:w0");
    // Clean up the stolen job so the service stops at once.
    recoco_sync::store::sql::query(
        "UPDATE jobs SET state = 'failed', lease_owner = NULL WHERE id = ?",
    )
    .bind(&job_id)
    .execute(&svc.pool)
    .await
    .unwrap();
    svc.stop().await;
}

#[tokio::test]
async fn a_cpu_deadline_kill_is_retried_once_and_says_so() {
    let config = format!(
        "{}{FAST_QUEUE}[runtime]\ndeadline = \"200ms\"\n[[connections]]\nname = \"loop\"\nsource = {SOURCE:?}\nplugin = \"test-looper\"\n",
        source_block(None),
    );
    let svc = TestService::start(&config, &[("test-looper.wasm", &components::looper())]).await;
    let answer = svc.send(project(5, 1)).await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "failed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    assert_eq!(job.state, "failed");
    let attempts = svc.attempts(&job.id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["retry", "failed"],
        "one retry, not max_attempts (4)"
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("retried once"),
        "{:?}",
        attempts[0].error
    );
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("not retried again"),
        "{:?}",
        job.last_error
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_periodic_schedule_fires_once_per_period_and_survives_a_restart() {
    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection(
            "echo",
            "test-echo",
            &target.url,
            "schedule = [{task = \"echo\", every = \"1s\", payload = {full = true}}]\n"
        )
    );
    let plugins = [("test-echo.wasm", components::echo())];
    let plugins: Vec<(&str, &std::path::Path)> =
        plugins.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let started = std::time::Instant::now();
    let svc = TestService::start(&config, &plugins).await;
    let listed = svc.admin(reqwest::Method::GET, "/schedules").await;
    let first = &listed.json["schedules"][0];
    assert_eq!(first["connection"], "echo");
    assert_eq!(first["task"], "echo");
    assert_eq!(first["schedule"], "every 1s");
    assert!(first["next_run_at"].as_str().unwrap().ends_with('Z'));
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let runs = svc
        .jobs(recoco_sync::queue::jobs::JobFilter {
            kind: Some("task".into()),
            ..Default::default()
        })
        .await;
    // One run at start, then one per second: never more than the seconds
    // elapsed allow (a loaded machine may stretch the wait itself).
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        runs.len() >= 2 && runs.len() as f64 <= elapsed.floor() + 1.0,
        "about one run per second: {} runs in {elapsed:.1} s",
        runs.len()
    );
    assert!(runs.iter().all(|j| j.task_name.as_deref() == Some("echo")
        && j.payload.as_deref() == Some(r#"{"full":true}"#)));
    let next_before: i64 =
        recoco_sync::store::sql::query_scalar("SELECT next_run_at FROM schedules")
            .fetch_one(&svc.pool)
            .await
            .unwrap();
    let dir = svc.stop().await;
    // Down for 3 periods: one run at restart, not three, and the grid is kept.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let svc = TestService::start_in(dir, &config, &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = svc
        .jobs(recoco_sync::queue::jobs::JobFilter {
            kind: Some("task".into()),
            ..Default::default()
        })
        .await;
    let fired = after.len() - runs.len();
    // Three missed periods fire once (plus at most the next period's run).
    assert!(
        (1..=2).contains(&fired),
        "fired {fired} times after the restart"
    );
    let next_after: i64 =
        recoco_sync::store::sql::query_scalar("SELECT next_run_at FROM schedules")
            .fetch_one(&svc.pool)
            .await
            .unwrap();
    assert_eq!((next_after - next_before) % 1000, 0, "same grid");
    let listed = svc.admin(reqwest::Method::GET, "/schedules").await;
    assert!(listed.json["schedules"][0]["last_job_id"].is_string());
    svc.stop().await;
}
