//! The whole path with the shipped `http-forward` connector: a signed Recoco
//! webhook ends as a Standard-Webhooks-signed request at a fake target, and
//! every outcome of the target (success, 5xx, 429, 4xx, silence) is handled.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use recoco_sync_tests::fakes::target::{Received, Target};
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::json;
use sha2::Sha256;

/// A Standard Webhooks secret: `whsec_` + base64 of the key bytes.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

fn config(target: &Target, extra_connection: &str) -> String {
    format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"crm\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n{extra_connection}\
         [connections.config]\nurl = \"{}/hooks/recoco\"\nsecret = {WHSEC:?}\n",
        source_block(None),
        target.url
    )
}

/// Verifies a request the way a Standard Webhooks receiver does.
fn verify_standard_webhook(r: &Received) {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let signatures = r.header("webhook-signature").expect("webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "signature {signatures} != {expected}"
    );
    let age = recoco_sync_tests::webhook::now_secs() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "fresh timestamp");
}

#[tokio::test]
async fn a_signed_webhook_ends_as_a_signed_request_at_the_target() {
    let target = Target::start().await;
    let svc = TestService::start(&config(&target, ""), &[]).await;
    let body = envelope(
        "projects.Project",
        "update",
        json!({"id": 1312, "name": "R\u{e9}habilitation"}),
    );
    let answer = svc.send(body.clone()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "queued");
    let event_id = answer.json["id"].as_str().unwrap().to_string();

    let got = target.wait_for(1, WAIT).await;
    let request = &got[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/recoco");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("webhook-id"), Some(event_id.as_str()));
    verify_standard_webhook(request);
    let forwarded = request.json();
    assert_eq!(forwarded["id"], event_id.as_str());
    assert_eq!(forwarded["topic"], "projects.Project/update");
    assert_eq!(forwarded["source"], SOURCE);
    assert_eq!(
        forwarded["payload"],
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    );

    let event = svc.settled_event(&event_id, WAIT).await;
    assert_eq!(event.status, "processed");
    let jobs = svc.jobs_of_event(&event_id).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, "succeeded");
    assert_eq!(jobs[0].connection, "crm");
    let attempts = svc.attempts(&jobs[0].id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, "succeeded");
    assert_eq!(attempts[0].plugin, "http-forward");
    assert_eq!(attempts[0].plugin_version.as_deref(), Some("0.1.0"));
    assert_eq!(attempts[0].plugin_hash.as_ref().map(|h| h.len()), Some(64));
    svc.stop().await;
}

#[tokio::test]
async fn server_errors_and_429_are_retried_with_backoff_until_success() {
    let target = Target::start().await;
    target.script(&[500, 503]);
    target.script_with_headers(429, &[("retry-after", "1")]);
    let svc = TestService::start(&config(&target, ""), &[]).await;
    let answer = svc
        .send(envelope(
            "tasks.Task",
            "update",
            json!({"id": 4242, "project": 1312}),
        ))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let event = svc.settled_event(&event_id, WAIT).await;
    assert_eq!(event.status, "processed");
    let job = &svc.jobs_of_event(&event_id).await[0];
    let attempts = svc.attempts(&job.id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "retry", "succeeded"]);
    assert!(
        attempts[0].error.as_deref().unwrap().contains("500"),
        "{:?}",
        attempts[0].error
    );
    assert!(attempts[2].error.as_deref().unwrap().contains("429"));
    // Retry-After: 1 s was honoured between the third and fourth attempts.
    let gap = attempts[3].started_at - attempts[2].started_at;
    assert!(
        gap >= 900,
        "waited {gap} ms after a 429 with Retry-After: 1"
    );
    assert_eq!(target.received().len(), 4);
    svc.stop().await;
}

#[tokio::test]
async fn a_client_error_fails_at_once_and_an_operator_can_retry_it() {
    let target = Target::start().await;
    target.script(&[400]);
    let svc = TestService::start(&config(&target, ""), &[]).await;
    let answer = svc
        .send(envelope("projects.Project", "create", json!({"id": 5})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let event = svc.settled_event(&event_id, WAIT).await;
    assert_eq!(event.status, "failed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    assert_eq!(job.state, "failed");
    assert_eq!(job.attempts, 1, "a permanent error is not retried");
    assert!(
        job.last_error.as_deref().unwrap().contains("400"),
        "{:?}",
        job.last_error
    );
    // The target is fixed; the operator retries.
    let retried = svc
        .admin(reqwest::Method::POST, &format!("/jobs/{}/retry", job.id))
        .await;
    assert_eq!(retried.status, 200, "{:?}", retried.json);
    svc.job_in(&job.id, &["succeeded"], WAIT).await;
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "processed");
    let outcomes: Vec<String> = svc
        .attempts(&job.id)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["failed", "succeeded"]);
    svc.stop().await;
}

#[tokio::test]
async fn a_target_that_keeps_failing_makes_the_job_dead() {
    let target = Target::start().await;
    target.set_default_status(502);
    let svc = TestService::start(&config(&target, ""), &[]).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 6})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let event = svc.settled_event(&event_id, WAIT).await;
    assert_eq!(event.status, "failed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    assert_eq!(job.state, "dead");
    assert_eq!(job.attempts, 4, "max_attempts of the test queue");
    assert!(job
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("gave up after 4 attempts"));
    svc.stop().await;
}

#[tokio::test]
async fn a_target_that_does_not_answer_in_time_is_retried() {
    let target = Target::start().await;
    target.set_delay(Duration::from_secs(3));
    let svc = TestService::start(
        &config(&target, "").replace(
            "[connections.config]\n",
            "[connections.config]\ntimeout_ms = 500\n",
        ),
        &[],
    )
    .await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 8})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    let attempts = recoco_sync_tests::wait_for("a timed-out attempt", WAIT, || async {
        let a = svc.attempts(&job.id).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(attempts[0].outcome, "retry");
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains("timed out"),
        "{:?}",
        attempts[0].error
    );
    svc.stop().await;
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_refused_with_the_entry_to_add() {
    let target = Target::start().await;
    let svc = TestService::start(
        &config(&target, "allowed_hosts = [\"crm.example.org\"]\n"),
        &[],
    )
    .await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 9})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "failed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    let port = target.url.rsplit(':').next().unwrap();
    let error = job.last_error.unwrap();
    assert!(
        error.contains("not allowed") && error.contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
    assert!(target.received().is_empty());
    svc.stop().await;
}

#[tokio::test]
async fn connection_secrets_are_sealed_at_rest_and_redacted_in_the_api() {
    let target = Target::start().await;
    let svc = TestService::start(&config(&target, ""), &[]).await;
    let answer = svc.admin(reqwest::Method::GET, "/connections").await;
    assert_eq!(answer.status, 200);
    let text = answer.json.to_string();
    assert!(!text.contains(WHSEC), "secret leaked in the API: {text}");
    assert_eq!(
        answer.json["connections"][0]["config"]["secret"],
        "[redacted]"
    );
    assert!(answer.json["connections"][0]["config"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/hooks/recoco"));
    let sources = svc
        .admin(reqwest::Method::GET, "/sources")
        .await
        .json
        .to_string();
    assert!(!sources.contains(recoco_sync_tests::service::SECRET));
    // Nothing in the database file holds the secrets in clear.
    let db = svc.database_url.trim_start_matches("sqlite://").to_string();
    svc.stop().await;
    for file in [db.clone(), format!("{db}-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            for secret in [WHSEC, recoco_sync_tests::service::SECRET] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in clear in {file}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_job_cut_by_shutdown_runs_again_after_restart() {
    let target = Target::start().await;
    target.set_delay(Duration::from_secs(30));
    // A short lease so the cut job is taken again quickly, a short grace so
    // shutdown does not wait for it.
    let config = config(&target, "")
        .replace(
            "[connections.config]\n",
            "[connections.config]\ntimeout_ms = 60000\n",
        )
        .replace(
            "[queue]\n",
            "[queue]\nlease = \"2s\"\nshutdown_grace = \"500ms\"\n",
        );
    let svc = TestService::start(&config, &[]).await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 11})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    target.wait_for(1, WAIT).await; // the job is running, waiting on the slow target
    let stopping = std::time::Instant::now();
    let dir = svc.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown did not wait for the slow job"
    );
    target.set_delay(Duration::ZERO);
    let svc = TestService::start_in(dir, &config, &[]).await;
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "processed");
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    let outcomes: Vec<String> = svc
        .attempts(&job.id)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["retry", "succeeded"],
        "the cut attempt is recorded, then the job ran again"
    );
    assert_eq!(target.received().len(), 2);
    svc.stop().await;
}
