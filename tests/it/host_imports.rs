//! Every host import, exercised by the `test-echo` component against the real
//! service: HTTP, the Recoco source API (token renewal included), state,
//! scheduling, progress, error kinds, and operator-started tasks.

use std::time::Duration;

use recoco_sync::queue::jobs::JobFilter;
use recoco_sync_tests::components;
use recoco_sync_tests::fakes::recoco::FakeRecoco;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const ECHO_SECRET: &str = "echo-secret-value-1";

fn project_fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/project-detail.json")).unwrap()
}

fn echo_config(recoco: &FakeRecoco, target: &Target, extra: &str) -> String {
    format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"echo\"\nsource = {SOURCE:?}\nplugin = \"test-echo\"\n\
         [connections.config]\nurl = \"{}/echo\"\nsource_path = \"/projects/1312/\"\nsecret = {ECHO_SECRET:?}\n{extra}",
        source_block(Some(&recoco.api_url)),
        target.url
    )
}

async fn start(config: &str) -> TestService {
    TestService::start(config, &[("echo.wasm", &components::echo())]).await
}

async fn summary_of_event(svc: &TestService, event_id: &str) -> Value {
    svc.settled_event(event_id, WAIT).await;
    let job = svc.jobs_of_event(event_id).await.remove(0);
    assert_eq!(job.state, "succeeded", "{job:?}");
    serde_json::from_str(job.summary.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn each_invocation_starts_from_a_clean_memory_even_in_a_reused_slot() {
    // Freed instance slots keep their pages mapped and are reset by copying
    // the image back over what the guest dirtied: a static counter written
    // by one invocation must read 0 again in the next, on whichever slot.
    let recoco = FakeRecoco::start().await;
    recoco.add_project(project_fixture());
    let target = Target::start().await;
    let svc = start(&echo_config(&recoco, &target, "")).await;
    for n in 0..6 {
        let answer = svc
            .send(envelope(
                "projects.Project",
                "update",
                json!({"id": 1312, "n": n}),
            ))
            .await;
        let event_id = answer.json["id"].as_str().unwrap().to_string();
        let summary = summary_of_event(&svc, &event_id).await;
        assert_eq!(
            summary["calls_in_this_instance"], 1,
            "invocation {n}: {summary}"
        );
        // The host's state store, unlike memory, carries over.
        assert_eq!(summary["state"]["count_before"], n, "{summary}");
    }
}

#[tokio::test]
async fn every_host_import_works_for_a_connector() {
    let recoco = FakeRecoco::start().await;
    recoco.add_project(project_fixture());
    let target = Target::start().await;
    let schedule = "[connections.config.schedule]\nname = \"echo\"\ndelay_ms = 200\ndedup_key = \"k\"\npayload = { from = \"schedule\" }\n";
    let svc = start(&echo_config(&recoco, &target, schedule)).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1312})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let summary = summary_of_event(&svc, &event_id).await;

    assert_eq!(summary["invocation"], "handle-event");
    assert_eq!(summary["context"]["connection"], "echo");
    assert_eq!(summary["context"]["source"], SOURCE);
    assert_eq!(summary["context"]["attempt"], 1);
    assert_eq!(summary["event"]["id"], event_id.as_str());
    assert_eq!(summary["event"]["object_id"], "1312");
    assert_eq!(summary["state"]["count_before"], 0);
    assert_eq!(summary["state"]["count"], 1);
    assert_eq!(summary["state"]["keys"], json!(["echo:count", "echo:last"]));
    assert_eq!(summary["http"]["status"], 200);
    assert_eq!(summary["source_api"]["status"], 200);
    assert!(summary["source_api"]["body"]
        .as_str()
        .unwrap()
        .contains("1312"));
    assert_eq!(summary["scheduled"]["name"], "echo");
    assert_eq!(summary["secret"], "present");

    // The source API was called with a token the host obtained.
    let log = recoco.log();
    assert_eq!(log[0].path, "/api/token/");
    assert!(log.iter().any(|l| l.path == "/api/projects/1312/"
        && l.status == 200
        && l.authorization.as_deref() == Some("Bearer access-1")));

    // The scheduled task ran later, as a task job of the same connection.
    let task = recoco_sync_tests::wait_for("the scheduled task", WAIT, || async {
        let tasks = svc
            .jobs(JobFilter {
                kind: Some("task".into()),
                state: Some("succeeded".into()),
                ..Default::default()
            })
            .await;
        tasks.into_iter().next()
    })
    .await;
    assert_eq!(task.task_name.as_deref(), Some("echo"));
    assert_eq!(task.payload.as_deref(), Some(r#"{"from":"schedule"}"#));
    assert_eq!(
        task.progress,
        Some(json!({"done": 2, "total": 2, "message": "test-echo: done"}))
    );
    let task_summary: Value = serde_json::from_str(task.summary.as_deref().unwrap()).unwrap();
    assert_eq!(task_summary["task"]["payload"], json!({"from": "schedule"}));
    assert_eq!(
        task_summary["state"]["count_before"], 1,
        "state persists between invocations"
    );

    // The connector saw its secret (decrypted) and sent it where it was told.
    let received = target.wait_for(2, WAIT).await;
    assert!(received
        .iter()
        .all(|r| r.header("x-test-echo-secret") == Some(ECHO_SECRET)));
    // But the secret is not in what was recorded.
    assert!(!task.summary.unwrap().contains(ECHO_SECRET));

    let state = svc
        .admin(reqwest::Method::GET, "/connections/echo/state")
        .await;
    assert_eq!(state.json["state"]["echo:count"], "2");
    svc.stop().await;
}

#[tokio::test]
async fn an_expired_source_api_token_is_renewed_and_the_request_sent_again() {
    let recoco = FakeRecoco::start().await;
    recoco.add_project(project_fixture());
    recoco.with(|s| s.access_lifetime = Duration::from_millis(800));
    let target = Target::start().await;
    let svc = start(&echo_config(&recoco, &target, "")).await;
    for id in [1, 2] {
        if id == 2 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        let answer = svc
            .send(envelope("projects.Project", "update", json!({"id": id})))
            .await;
        let summary = summary_of_event(&svc, answer.json["id"].as_str().unwrap()).await;
        assert_eq!(summary["source_api"]["status"], 200, "{summary}");
    }
    let log = recoco.log();
    let statuses: Vec<(String, u16)> = log.iter().map(|l| (l.path.clone(), l.status)).collect();
    assert_eq!(
        statuses,
        [
            ("/api/token/".to_string(), 200),
            ("/api/projects/1312/".to_string(), 200),
            ("/api/projects/1312/".to_string(), 403),
            ("/api/token/refresh/".to_string(), 200),
            ("/api/projects/1312/".to_string(), 200),
        ]
    );
    assert_eq!(
        recoco.logins(),
        1,
        "renewed with the refresh token, not a new login"
    );
    svc.stop().await;
}

#[tokio::test]
async fn wrong_source_credentials_are_reported_without_the_password() {
    let recoco = FakeRecoco::start().await;
    let target = Target::start().await;
    let config =
        echo_config(&recoco, &target, "").replace("sync-password-123", "wrong-password-456");
    let svc = start(&config).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1})))
        .await;
    let summary = summary_of_event(&svc, answer.json["id"].as_str().unwrap()).await;
    let error = summary["source_api"]["error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("wrong api_username or api_password"),
        "{error}"
    );
    assert!(!error.contains("wrong-password-456"));
    svc.stop().await;
}

#[tokio::test]
async fn connector_errors_are_retried_or_failed_as_the_connector_says() {
    let recoco = FakeRecoco::start().await;
    let target = Target::start().await;
    let svc = start(&echo_config(
        &recoco,
        &target,
        "fail = \"retryable\"\nretry_after_ms = 300\n",
    ))
    .await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "failed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    assert_eq!(job.state, "dead");
    let attempts = svc.attempts(&job.id).await;
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        // An error with a retry-after is a throttle: `queue.max_throttles` (20)
        // reschedules use no attempt, then the 4 attempts run out.
        [vec!["retry"; 20 + 3], vec!["dead"]].concat()
    );
    let job_row = svc.jobs_of_event(&event_id).await.remove(0);
    assert_eq!(job_row.attempts, 4, "throttles used no attempt");
    for pair in attempts.windows(2) {
        assert!(
            pair[1].started_at - pair[0].started_at >= 280,
            "retry-after of 300 ms honoured"
        );
    }
    assert!(attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("asked to fail"));
    svc.stop().await;

    let svc = start(&echo_config(&recoco, &target, "fail = \"permanent\"\n")).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "failed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 1));
    svc.stop().await;
}

#[tokio::test]
async fn a_pending_task_with_the_same_dedup_key_is_replaced() {
    let recoco = FakeRecoco::start().await;
    let target = Target::start().await;
    let schedule =
        "[connections.config.schedule]\nname = \"echo\"\ndelay_ms = 60000\ndedup_key = \"once\"\n";
    let svc = start(&echo_config(&recoco, &target, schedule)).await;
    for id in 0..3 {
        let answer = svc
            .send(envelope("projects.Project", "update", json!({"id": id})))
            .await;
        svc.settled_event(answer.json["id"].as_str().unwrap(), WAIT)
            .await;
    }
    let pending = svc
        .jobs(JobFilter {
            kind: Some("task".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].state, "queued");
    svc.stop().await;
}

#[tokio::test]
async fn operators_start_tasks_and_unknown_tasks_are_refused() {
    let recoco = FakeRecoco::start().await;
    let target = Target::start().await;
    let svc = start(&echo_config(&recoco, &target, "")).await;
    let started = svc
        .admin(reqwest::Method::POST, "/connections/echo/tasks/echo")
        .await;
    assert_eq!(started.status, 200, "{:?}", started.json);
    let job_id = started.json["job_id"].as_str().unwrap().to_string();
    let job = svc.job_in(&job_id, &["succeeded"], WAIT).await;
    let summary: Value = serde_json::from_str(job.summary.as_deref().unwrap()).unwrap();
    assert_eq!(summary["invocation"], "run-task");
    assert_eq!(summary["task"]["name"], "echo");

    let unknown = svc
        .admin(reqwest::Method::POST, "/connections/echo/tasks/nope")
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.json["detail"]
        .as_str()
        .unwrap()
        .contains("has no task \"nope\""));
    let no_connection = svc
        .admin(reqwest::Method::POST, "/connections/ghost/tasks/echo")
        .await;
    assert_eq!(no_connection.status, 400);
    svc.stop().await;
}
