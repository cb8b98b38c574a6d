//! Components of the previous minor version of `recoco:connector` (0.1.0) load
//! and run beside current (0.2.0) ones: every import is served across the
//! version boundary, errors cross it back, and the listing says which version
//! each plugin was built against.

use std::time::Duration;

use recoco_sync::queue::jobs::JobFilter;
use recoco_sync_tests::components;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_0_1_0_component_runs_beside_0_2_0_ones() {
    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"old\"\nsource = {SOURCE:?}\nplugin = \"test-wit-v0-1\"\n\
         [connections.config]\nurl = \"{}/hooks\"\n",
        source_block(None),
        target.url
    );
    let old = components::wit_v0_1();
    let echo = components::echo();
    let svc = TestService::start(
        &config,
        &[
            ("test-wit-v0-1.wasm", old.as_path()),
            ("test-echo.wasm", echo.as_path()),
        ],
    )
    .await;

    // The listing: the old component says 0.1.0 (no authors: 0.1.0 has none),
    // the shipped ones, built with the SDK, say 0.2.0.
    let listing = svc.admin(reqwest::Method::GET, "/plugins").await;
    assert_eq!(listing.status, 200);
    let plugins = listing.json["plugins"].as_array().unwrap();
    let by_name = |n: &str| plugins.iter().find(|p| p["name"] == n).cloned().unwrap();
    let v01 = by_name("test-wit-v0-1");
    assert_eq!(v01["wit_version"], "0.1.0", "{v01}");
    assert_eq!(v01["version"], "0.1.7");
    assert_eq!(v01["authors"], json!([]));
    assert_eq!(v01["homepage"], serde_json::Value::Null);

    // One event, answered 503 first: the old error type (retryable, with
    // Retry-After) crosses back, the retry delivers.
    target.script(&[503]);
    let body = envelope(
        "projects.Project",
        "update",
        json!({"id": 41, "name": "Halle"}),
    );
    let answer = svc.send(body.clone()).await;
    assert_eq!(answer.json["status"], "queued", "{:?}", answer.json);
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let got = target.wait_for(2, WAIT).await;
    assert_eq!(svc.settled_event(&event_id, WAIT).await.status, "processed");
    // http: the webhook body byte for byte; state: the id stored and read back.
    assert_eq!(got[1].body, body);
    // context: the attempt number (a retry that named a Retry-After counts as
    // a throttle, not an attempt).
    assert_eq!(got[0].header("x-attempt"), Some("1"));
    assert_eq!(got[1].header("x-state"), Some(event_id.as_str()));
    let job = &svc.jobs_of_event(&event_id).await[0];
    assert_eq!(
        job.summary.as_deref(),
        Some("v0.1 delivered 200"),
        "{job:?}"
    );
    let attempts = svc.attempts(&job.id).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].error.as_deref(),
        // Retryable, with its Retry-After: both fields crossed the boundary.
        Some("target answered 503 (throttled: retried after 200ms, no attempt used)"),
        "{attempts:?}"
    );
    // scheduler: its task `ping` is pending, once (dedup key), an hour away.
    let tasks = svc
        .jobs(JobFilter {
            kind: Some("task".into()),
            connection: Some("old".into()),
            ..JobFilter::default()
        })
        .await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].task_name.as_deref(), Some("ping"));
    assert_eq!(by_name("http-forward")["wit_version"], "0.2.0");
    // What a 0.2.0 manifest adds: authors, homepage, license.
    let echo = by_name("test-echo");
    assert_eq!(echo["wit_version"], "0.2.0");
    assert_eq!(
        echo["authors"],
        json!(["recoco-sync tests <tests@example.org>"])
    );
    assert_eq!(echo["homepage"], "https://example.org/test-echo");
    assert_eq!(echo["license"], "AGPL-3.0-or-later");
    svc.stop().await;
}
