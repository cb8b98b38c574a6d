//! Webhook intake against the real service: what is accepted, what is refused,
//! and that nothing accepted is lost.

use std::time::Duration;

use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SECRET, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};
use serde_json::json;

const FIXTURE_BODY: &[u8] = include_bytes!("../fixtures/webhook-task-lescommuns.json");
const FIXTURE_SECRET: &str = "demo-webhook-secret-42";
const FIXTURE_TS: i64 = 1767261600;
const FIXTURE_SIGNATURE: &str = "a7021c4956b79921e808b38786c8120d341eec8bbd6cdc2959c977818be50cdf";

async fn event_count(svc: &TestService) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&svc.pool)
        .await
        .unwrap()
}

fn project(id: i64) -> Vec<u8> {
    envelope(
        "projects.Project",
        "update",
        json!({"id": id, "name": "Halle"}),
    )
}

#[tokio::test]
async fn signed_webhook_is_stored_before_the_answer() {
    let svc = TestService::start(&format!("{}{FAST_QUEUE}", source_block(None)), &[]).await;
    let body = project(1312);
    let answer = svc.send(body.clone()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let id = answer.json["id"].as_str().expect("event id");
    assert!(id.starts_with("evt_"));
    assert_eq!(answer.json["status"], "ignored", "no connection subscribes");
    assert!(answer.json["message"].as_str().unwrap().contains("stored"));
    // The answer came after the commit: the event is there, byte for byte.
    let event = svc.event(id).await.expect("stored");
    assert_eq!(event.body, body);
    assert_eq!(event.source, SOURCE);
    assert_eq!(event.topic.as_deref(), Some("projects.Project/update"));
    assert_eq!(event.object_type.as_deref(), Some("projects.Project"));
    assert_eq!(event.object_id.as_deref(), Some("1312"));
    assert_eq!(event.action.as_deref(), Some("update"));
    assert_eq!(
        event.webhook_uuid.as_deref(),
        Some("6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e")
    );
    assert_eq!(event.remote_addr.as_deref(), Some("127.0.0.1"));
    assert!(event
        .headers
        .get("django-webhook-request-timestamp")
        .is_some());
    assert!(
        event.headers.get("django-webhook-signature-v1").is_none(),
        "signatures are not stored"
    );
    svc.stop().await;
}

#[tokio::test]
async fn the_reference_example_passes_and_one_changed_byte_does_not() {
    // The reference was signed on 2026-01-01: widen the window to accept it.
    let config = format!(
        "[intake]\ntimestamp_tolerance = \"3650days\"\n[[sources]]\ncode = \"portal\"\nsecrets = [{FIXTURE_SECRET:?}]\n"
    );
    let svc = TestService::start(&config, &[]).await;
    let mut h = headers(FIXTURE_BODY, &[], FIXTURE_TS);
    h.retain(|(k, _)| k != "django-webhook-signature-v1");
    h.push((
        "Django-Webhook-Signature-v1".into(),
        FIXTURE_SIGNATURE.into(),
    ));
    let ok = svc.post_webhook("portal", FIXTURE_BODY.to_vec(), &h).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    let mut tampered = FIXTURE_BODY.to_vec();
    tampered[40] ^= 1;
    let refused = svc.post_webhook("portal", tampered, &h).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json, json!({"detail": "Invalid signature"}));
    assert_eq!(event_count(&svc).await, 1);
    svc.stop().await;
}

#[tokio::test]
async fn bad_signatures_and_timestamps_are_refused_and_nothing_is_stored() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let body = project(1);
    let now = now_secs();
    type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no signature",
            headers(&body, &[], now),
            "Missing Django-Webhook-Signature-v1",
        ),
        (
            "wrong secret",
            headers(&body, &["another-secret-value"], now),
            "Invalid signature",
        ),
        (
            "stale timestamp",
            headers(&body, &[SECRET], now - 3600),
            "Stale timestamp",
        ),
        (
            "future timestamp",
            headers(&body, &[SECRET], now + 3600),
            "Stale timestamp",
        ),
        (
            "no timestamp",
            headers(&body, &[SECRET], now)
                .into_iter()
                .filter(|(k, _)| k != "django-webhook-request-timestamp")
                .collect(),
            "Timestamp",
        ),
    ];
    for (case, h, expected) in cases {
        let answer = svc.post_webhook(SOURCE, body.clone(), &h).await;
        assert_eq!(answer.status, 401, "{case}: {:?}", answer.json);
        let detail = answer.json["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{case}: {detail}");
    }
    // A signature made for another body (a replayed capture with new bytes).
    let other = headers(&project(2), &[SECRET], now);
    assert_eq!(
        svc.post_webhook(SOURCE, body.clone(), &other).await.status,
        401
    );
    assert_eq!(event_count(&svc).await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn any_signature_matching_any_secret_is_accepted() {
    let config = "[[sources]]\ncode = \"rotating\"\nsecrets = [\"new-secret-000001\", \"old-secret-000002\"]\n";
    let svc = TestService::start(config, &[]).await;
    let body = project(7);
    // Recoco still signs with the old secret and one we never had.
    let h = headers(
        &body,
        &["unknown-secret-9", "old-secret-000002"],
        now_secs(),
    );
    let answer = svc.post_webhook("rotating", body, &h).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    svc.stop().await;
}

#[tokio::test]
async fn unknown_code_is_404_and_nothing_is_stored() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let body = project(1);
    let answer = svc
        .post_webhook("nope", body.clone(), &headers(&body, &[SECRET], now_secs()))
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json["detail"], "Unknown webhook code");
    assert_eq!(event_count(&svc).await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_and_nothing_is_stored() {
    let svc = TestService::start(
        &format!("[intake]\nmax_body_bytes = 2048\n{}", source_block(None)),
        &[],
    )
    .await;
    let body = envelope(
        "projects.Project",
        "update",
        json!({"id": 1, "description": "x".repeat(4096)}),
    );
    let answer = svc
        .post_webhook(SOURCE, body.clone(), &headers(&body, &[SECRET], now_secs()))
        .await;
    assert_eq!(answer.status, 413, "{:?}", answer.json);
    assert!(answer.json["detail"].as_str().unwrap().contains("2048"));
    // Just under the limit is fine.
    let small = envelope(
        "projects.Project",
        "update",
        json!({"id": 1, "description": "x".repeat(1500)}),
    );
    assert!(small.len() < 2048);
    assert_eq!(svc.send(small).await.status, 200);
    assert_eq!(event_count(&svc).await, 1);
    svc.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_and_kept_as_invalid_events() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (br#"["a list"]"#.to_vec(), "JSON object"),
        (br#"{"object": {"id": 1}, "object_type": "projects.Project", "webhook_uuid": "u"}"#.to_vec(), "missing field `topic`"),
        (br#"{"topic": "projects.Project/update", "object": 5, "object_type": "projects.Project", "webhook_uuid": "u"}"#.to_vec(), "`object` must be"),
    ];
    for (body, expected) in cases {
        let answer = svc.send(body.clone()).await;
        assert_eq!(answer.status, 400, "{:?}", answer.json);
        assert!(
            answer.json["detail"].as_str().unwrap().contains(expected),
            "{:?}",
            answer.json
        );
        assert_eq!(answer.json["status"], "invalid");
        let event = svc
            .event(answer.json["id"].as_str().unwrap())
            .await
            .expect("kept");
        assert_eq!(event.status, "invalid");
        assert_eq!(event.body, body, "raw request kept byte for byte");
        assert!(event.error.unwrap().contains(expected));
    }
    svc.stop().await;
}

#[tokio::test]
async fn disabled_source_events_are_skipped_then_replayed() {
    let target = recoco_sync_tests::fakes::target::Target::start().await;
    let config = format!(
        "{FAST_QUEUE}[[sources]]\ncode = {SOURCE:?}\nsecrets = [{SECRET:?}]\nenabled = false\n\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hook\"\nsecret = \"forward-secret-1\"\n",
        target.url
    );
    let svc = TestService::start(&config, &[]).await;
    let answer = svc.send(project(99)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "skipped");
    let id = answer.json["id"].as_str().unwrap().to_string();
    assert!(svc.jobs_of_event(&id).await.is_empty());
    // Replaying while disabled is refused with a reason.
    let refused = svc
        .admin(reqwest::Method::POST, &format!("/events/{id}/replay"))
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.json["detail"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    // Enable, replay: the event goes through.
    assert_eq!(
        svc.admin(reqwest::Method::POST, &format!("/sources/{SOURCE}/enable"))
            .await
            .status,
        200
    );
    let replayed = svc
        .admin(reqwest::Method::POST, &format!("/events/{id}/replay"))
        .await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.json);
    assert_eq!(replayed.json["jobs"].as_array().unwrap().len(), 1);
    let event = svc.settled_event(&id, Duration::from_secs(20)).await;
    assert_eq!(event.status, "processed");
    assert_eq!(target.received().len(), 1);
    svc.stop().await;
}

#[tokio::test]
async fn accepted_events_survive_a_restart_and_are_processed_after_it() {
    let target = recoco_sync_tests::fakes::target::Target::start().await;
    let connection = format!(
        "[[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hook\"\nsecret = \"forward-secret-1\"\n",
        target.url
    );
    // First run: intake only (no workers), as if the process died before working.
    let first = format!("{}[queue]\nworkers = 0\n{connection}", source_block(None));
    let svc = TestService::start(&first, &[]).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let answer = svc.send(project(n)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json["status"], "queued");
        ids.push(answer.json["id"].as_str().unwrap().to_string());
    }
    let dir = svc.stop().await;
    assert!(target.received().is_empty());
    let svc = TestService::start_in(
        dir,
        &format!("{}{FAST_QUEUE}{connection}", source_block(None)),
        &[],
    )
    .await;
    for id in &ids {
        assert_eq!(
            svc.settled_event(id, Duration::from_secs(20)).await.status,
            "processed"
        );
    }
    assert_eq!(target.received().len(), 5);
    svc.stop().await;
}
