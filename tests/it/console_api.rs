//! The console's API routes against a real service: dashboard figures, event
//! search (filters, text, time, paging), jobs needing attention, "run now" of
//! a job in backoff and of a dead one, bulk retry and discard with their
//! counting dry run, and `{"error", "field"}` answers to bad input.

use std::time::Duration;

use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn config(target: &Target, delivery: &str) -> String {
    format!(
        "{FAST_QUEUE}\n{}[[connections]]\nname = \"crm\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hooks\"\nsecret = \"forward-secret-000000001\"\n\
         [connections.delivery]\n{delivery}\n",
        source_block(None),
        target.url
    )
}

async fn post(svc: &TestService, path: &str, body: Value) -> (u16, Value) {
    let r = svc
        .client
        .post(format!("{}/admin/api{path}", svc.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn get(svc: &TestService, path: &str) -> Value {
    let a = svc.admin(reqwest::Method::GET, path).await;
    assert_eq!(a.status, 200, "{path}: {:?}", a.json);
    a.json
}

#[tokio::test]
async fn dashboard_and_event_search_show_what_arrived() {
    let target = Target::start().await;
    let svc = TestService::start(&config(&target, "max_attempts = 2"), &[]).await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let name = if n == 3 {
            "Ferme solaire de Kerlann"
        } else {
            "Projet"
        };
        let body = envelope(
            if n % 2 == 0 {
                "projects.Project"
            } else {
                "tasks.Task"
            },
            "update",
            json!({"id": 100 + n, "name": name}),
        );
        let answer = svc.send(body).await;
        assert_eq!(answer.status, 200);
        ids.push(answer.json["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        svc.settled_event(id, WAIT).await;
    }
    let d = get(&svc, "/console/dashboard").await;
    assert_eq!(d["events_24h"], 7, "{d}");
    let per_minute: i64 = d["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["counts"]["processed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(per_minute, 7, "{d}");
    assert_eq!(d["queue"]["depth"], 0);
    assert_eq!(d["queue"]["oldest_due_age_ms"], Value::Null);
    assert_eq!(d["failing"], json!([]));
    assert_eq!(d["open_alerts"], json!([]));

    // Filters, text search, paging.
    let page = get(&svc, "/console/events?object_type=tasks.Task").await;
    assert_eq!(page["total"], 3, "{page}");
    let page = get(&svc, "/console/events?q=Kerlann").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["events"][0]["id"], ids[3].as_str());
    assert_eq!(page["events"][0]["jobs"], 1);
    let page = get(&svc, &format!("/console/events?q={}", ids[5])).await;
    assert_eq!(page["events"][0]["id"], ids[5].as_str());
    let page = get(&svc, "/console/events?q=100%25").await;
    assert_eq!(page["total"], 0, "a % is searched as text: {page}");
    let first = get(&svc, "/console/events?limit=4").await;
    assert_eq!(first["events"].as_array().unwrap().len(), 4);
    assert_eq!(first["events"][0]["id"], ids[6].as_str(), "newest first");
    let before = first["next_before"].as_str().unwrap();
    let second = get(&svc, &format!("/console/events?limit=4&before={before}")).await;
    assert_eq!(second["events"].as_array().unwrap().len(), 3);
    assert_eq!(second["next_before"], Value::Null, "last page");
    assert_eq!(second["events"][2]["id"], ids[0].as_str());
    let later = get(&svc, "/console/events?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later["total"], 0);
    let earlier = get(
        &svc,
        "/console/events?until=2999-01-01T00:00:00Z&status=processed",
    )
    .await;
    assert_eq!(earlier["total"], 7);
    for (query, field) in [
        ("since=yesterday", "since"),
        ("status=bogus", "status"),
        ("limit=0", "limit"),
    ] {
        let bad = svc
            .admin(reqwest::Method::GET, &format!("/console/events?{query}"))
            .await;
        assert_eq!(bad.status, 400, "{query}");
        assert_eq!(bad.json["field"], field, "{query}: {:?}", bad.json);
        assert!(bad.json["error"].as_str().unwrap().contains(field));
    }
    svc.stop().await;
}

#[tokio::test]
async fn failed_jobs_are_listed_run_now_and_retried_or_discarded_in_bulk() {
    let target = Target::start().await;
    target.set_default_status(500);
    // Long retry delays: the first failure leaves the job waiting in backoff.
    let svc = TestService::start(
        &config(
            &target,
            "max_attempts = 2\nretry_schedule = [\"1h\"]\ncircuit_failures = 1000",
        ),
        &[],
    )
    .await;
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 1})))
        .await;
    let event = answer.json["id"].as_str().unwrap().to_string();
    target.wait_for(1, WAIT).await;
    let job = recoco_sync_tests::wait_for("the job in backoff", WAIT, || async {
        let page = get(&svc, "/console/jobs?state=backoff").await;
        page["jobs"].as_array().unwrap().first().cloned()
    })
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["attempts"], 1);
    let d = get(&svc, "/console/dashboard").await;
    assert_eq!(d["queue"]["backoff"], 1, "{d}");
    assert_eq!(d["failing"][0]["name"], "crm", "{d}");
    assert_eq!(d["failing"][0]["consecutive_failures"], 1, "{d}");
    // Run now: the second attempt runs at once (instead of in an hour) and the job is dead.
    let (status, body) = post(&svc, &format!("/console/jobs/{id}/run-now"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["was"], "queued");
    let dead = svc.job_in(&id, &["dead"], WAIT).await;
    assert_eq!(dead.attempts, 2);
    assert_eq!(target.received().len(), 2);
    let page = get(
        &svc,
        "/console/jobs?state=failed,dead&connection=crm&error=500",
    )
    .await;
    assert_eq!(page["total"], 1, "{page}");
    let page = get(&svc, "/console/jobs?state=dead&error=nothing-like-this").await;
    assert_eq!(page["total"], 0);
    let d = get(&svc, "/console/dashboard").await;
    assert_eq!(d["queue"]["dead"], 1);
    assert_eq!(d["failing"][0]["dead_jobs"], 1);
    assert!(d["failing"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("500"));

    // Bulk retry: the dry run counts, the confirmed one queues it again.
    let (status, dry) = post(
        &svc,
        "/console/jobs/bulk",
        json!({"action": "retry", "connection": "crm", "error": "500"}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (dry["matched"].as_i64(), dry["changed"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        svc.job_in(&id, &["dead"], WAIT).await.attempts,
        2,
        "a dry run changes nothing"
    );
    target.set_default_status(200);
    let (_, done) = post(
        &svc,
        "/console/jobs/bulk",
        json!({"action": "retry", "connection": "crm", "confirm": true}),
    )
    .await;
    assert_eq!(done["changed"], 1, "{done}");
    svc.job_in(&id, &["succeeded"], WAIT).await;
    assert_eq!(svc.settled_event(&event, WAIT).await.status, "processed");

    // Bulk discard of a new dead job.
    target.set_default_status(500);
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": 2})))
        .await;
    let event2 = answer.json["id"].as_str().unwrap().to_string();
    let job2 = svc.jobs_of_event(&event2).await.remove(0);
    recoco_sync_tests::wait_for("the job in backoff", WAIT, || async {
        let j = svc.jobs_of_event(&event2).await.remove(0);
        (j.attempts == 1 && j.state == "queued").then_some(())
    })
    .await;
    post(
        &svc,
        &format!("/console/jobs/{}/run-now", job2.id),
        json!({}),
    )
    .await;
    svc.job_in(&job2.id, &["dead"], WAIT).await;
    let (_, done) = post(
        &svc,
        "/console/jobs/bulk",
        json!({"action": "discard", "states": ["dead"], "since": "2000-01-01T00:00:00Z", "confirm": true}),
    )
    .await;
    assert_eq!(
        (done["matched"].as_i64(), done["changed"].as_i64()),
        (Some(1), Some(1)),
        "{done}"
    );
    assert_eq!(
        svc.job_in(&job2.id, &["discarded"], WAIT).await.state,
        "discarded"
    );
    // Nothing left to run: run-now says why.
    let (status, body) = post(
        &svc,
        &format!("/console/jobs/{}/run-now", job2.id),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("discarded"),
        "{body}"
    );
    let (status, body) = post(&svc, "/console/jobs/job_nope/run-now", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["field"], Value::Null);
    for (bad, field) in [
        (json!({"action": "explode"}), "action"),
        (json!({"action": "retry", "states": ["queued"]}), "states"),
        (
            json!({"action": "retry", "connection": "nope"}),
            "connection",
        ),
        (json!({"action": "retry", "until": "soon"}), "until"),
    ] {
        let (status, body) = post(&svc, "/console/jobs/bulk", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["field"], field, "{bad}: {body}");
    }
    let bad = svc
        .admin(reqwest::Method::GET, "/console/jobs?state=succeeded")
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["field"], "state");
    svc.stop().await;
}
